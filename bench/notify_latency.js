#!/usr/bin/env node
// bench/notify_latency.js: the Node half of bench/notify_latency.py (which starts it; run
// that, not this). Two roles, each a separate process so that the receiver's event loop is
// never the sender's:
//
//   receiver [--socketio-port N] [--webhook-port N]
//       The game's side: the official `socket.io` 4.x server (acks every `mining_reward`)
//       and a plain node:http webhook receiver (answers 200). Prints
//       {"listening":"socketio","port":N} and {"listening":"webhook","port":N}, then one JSON
//       line per event received: {"r":"sio"|"wh","id":event_id,"mono":ns,"wall":ms,"ts":...}
//       ("tr": the Engine.IO transport the event came over, for Socket.IO).
//   client --url URL [--rate R] [--seconds S] [--block B] [--transports polling,websocket]
//       A bare `socket.io-client` per transport (forced with `transports: [t]`), all connected
//       to the same server at once. They take turns in blocks of B seconds; the one whose
//       block it is emits `mining_reward` R times a second with an ack, for S seconds in all
//       per transport. Prints {"ready":...} once connected, then one line per emit:
//       {"c":transport,"id":...,"send":ns,"ack":ns|null}.
//
// Times: "mono" / "send" / "ack" are process.hrtime.bigint() (libuv's uv_hrtime, that is
// CLOCK_MONOTONIC), the clock Python's time.monotonic_ns() and the libpq listener
// (notify_latency.c) read too, so times from different processes on this machine compare
// directly. "wall" is Date.now(), compared with the event's own "timestamp" field.
//
// Packages come from examples/socketio-relay/node_modules (`npm ci` there), or NODE_PATH.
"use strict";

const http = require("node:http");
const path = require("node:path");

const MODULES = path.join(__dirname, "..", "examples", "socketio-relay", "node_modules");

function load(name) {
  try {
    return require(path.join(MODULES, name));
  } catch (e) {
    return require(name);  // NODE_PATH
  }
}

function options(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
      throw new Error("expected --name value pairs, got " + JSON.stringify(argv[i]));
    }
    out[argv[i].slice(2)] = argv[++i];
  }
  return out;
}

// Lines go out in batches: a write() per event would put a syscall into the path being
// measured (stdout writes to a pipe are synchronous on Linux). Every time is taken before.
let pending = [];
function emitLine(obj) {
  pending.push(JSON.stringify(obj));
}
function flushLines() {
  if (pending.length) {
    process.stdout.write(pending.join("\n") + "\n");
    pending = [];
  }
}
setInterval(flushLines, 100).unref();

const now = () => process.hrtime.bigint();

// ============================================================================ receiver

function startSocketio(port, ready) {
  const { Server } = load("socket.io");
  const server = http.createServer();
  const io = new Server(server, { serveClient: false });
  io.on("connection", (socket) => {
    socket.on("mining_reward", (event, ack) => {
      const mono = now();
      emitLine({ r: "sio", id: event && String(event.event_id), mono: mono.toString(),
                 wall: Date.now(), ts: event && event.timestamp,
                 tr: socket.conn.transport.name });
      if (typeof ack === "function") ack({ ok: true });
    });
  });
  server.listen(port, "127.0.0.1", () => ready("socketio", server.address().port));
}

function startWebhook(port, ready) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const mono = now();
      let ts = null;
      try {
        ts = JSON.parse(Buffer.concat(chunks).toString("utf8")).timestamp;
      } catch (e) {
        ts = null;
      }
      emitLine({ r: "wh", id: req.headers["x-m2p-event-id"] || null, mono: mono.toString(),
                 wall: Date.now(), ts });
      res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": "3" });
      res.end("ok\n");
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(port, "127.0.0.1", () => ready("webhook", server.address().port));
}

function receiver(o) {
  const ready = (what, port) => {
    emitLine({ listening: what, port });
    flushLines();
  };
  startSocketio(Number(o["socketio-port"] || 0), ready);
  startWebhook(Number(o["webhook-port"] || 0), ready);
}

// ============================================================================== client

// The same fields as the engine's event, so that the bare client's packets are as long.
function reward(id) {
  return { event_id: id, player_id: 123, username: "player123", pool: "cpu-pool",
           advc_amount: 1.23456789, ap_awarded: 123.456789, total_ap: 12345.5,
           total_advc_mined: 123.45, timestamp: new Date().toISOString(), room: "player_123" };
}

function connect(url, transport) {
  const { io } = load("socket.io-client");
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: [transport], forceNew: true, reconnection: false });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (e) => reject(new Error(transport + ": " + e.message)));
  });
}

async function client(o) {
  const rate = Number(o.rate || 100);
  const seconds = Number(o.seconds || 60);
  const block = Number(o.block || 5);
  const transports = (o.transports || "polling,websocket").split(",");
  const sockets = {};
  for (const t of transports) sockets[t] = await connect(o.url, t);
  emitLine({ ready: transports });
  flushLines();

  const periodNs = BigInt(Math.round(1e9 / rate));
  const perBlock = Math.max(1, Math.round(rate * block));
  const total = Math.round(rate * seconds);
  const sent = Object.fromEntries(transports.map((t) => [t, 0]));
  const open = new Map();  // id -> record, until acked
  let next = now();

  const fire = (t) => {
    const id = "bare-" + t + "-" + sent[t]++;
    const rec = { c: t, id, send: null, ack: null };
    open.set(id, rec);
    const payload = reward(id);
    const t0 = now();
    rec.send = t0.toString();
    sockets[t].emit("mining_reward", payload, () => {
      rec.ack = now().toString();
      open.delete(id);
      emitLine(rec);
    });
  };

  // Absolute schedule: emit k is due at start + k * period, whatever the timers' jitter.
  for (let b = 0; transports.some((t) => sent[t] < total); b++) {
    const t = transports[b % transports.length];
    for (let k = 0; k < perBlock && sent[t] < total; k++) {
      next += periodNs;
      const wait = Number(next - now()) / 1e6;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      fire(t);
    }
  }
  // Acks still due get a generous 10 s; whatever is left is reported unacked.
  const deadline = now() + 10000000000n;
  while (open.size && now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const rec of open.values()) emitLine(rec);
  emitLine({ done: sent });
  flushLines();
  for (const t of transports) sockets[t].close();
  setTimeout(() => process.exit(0), 100);
}

// ================================================================================ main

function main() {
  const [role, ...rest] = process.argv.slice(2);
  const o = options(rest);
  if (role === "receiver") return receiver(o);
  if (role === "client") {
    if (!o.url) throw new Error("client: --url is required");
    return client(o).catch((e) => {
      process.stderr.write("notify_latency.js client: " + e.message + "\n");
      process.exit(1);
    });
  }
  process.stderr.write("usage: notify_latency.js receiver|client [--name value ...]\n");
  process.exit(2);
}

main();
