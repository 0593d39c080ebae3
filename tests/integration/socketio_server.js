// The Socket.IO server side of tests/integration/socketio_sink.py: the official socket.io
// package (examples/socketio-relay/node_modules) in well-behaved and misbehaving modes, and
// a raw http server for what socket.io itself never sends (garbage, bodies cut short).
//
//   node socketio_server.js MODE      env: SIO_TOKEN (expected auth.token), SIO_NAMESPACE, SIO_PORT
//
// Modes (socket.io): ack (ack every mining_reward), kick:N (ack N, then disconnect the
// client from the server side instead of acking the next one, once), noack-first (the first mining_reward is never acked),
// noack (nothing is acked), refuse (every CONNECT is refused; the message quotes the auth
// the client sent, to prove the client redacts it), websocket-only (transports:
// ["websocket"], which the engine cannot use: docs/notifications.md says so).
// Modes (raw http): garbage (valid open packet, then a garbage body on each poll),
// midbody (alternately the handshake and the poll answer are cut mid-body), unknown-sid
// (valid open packet, then HTTP 400 "Session ID unknown" like engine.io), silent (the
// namespace is connected, then polls are never answered: no pings).
//
// stdout, one JSON object a line: {"listening":port} first, then {"connect":...},
// {"event":{"ack_id":N,"payload":"<raw JSON text as received>"}}, {"pong":true},
// {"refused":true}, {"disconnect":"<reason>"}, {"request":"<method> <kind>"}.
// The token is never printed.
"use strict";
const http = require("http");
const path = require("path");

const REPO = path.resolve(__dirname, "..", "..");
const { Server } = require(path.join(REPO, "examples/socketio-relay/node_modules/socket.io"));

const mode = process.argv[2] || "ack";
const token = process.env.SIO_TOKEN || "";
const nsp = process.env.SIO_NAMESPACE || "/";
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// "2/game,17[\"mining_reward\",{...}]" -> {ack_id: 17, payload: "{...}"} (the raw text,
// so the test can compare it byte for byte with what the engine was given).
function parseEvent(data) {
  const m = /^2(?:\/[^,]*,)?(\d*)\["mining_reward",([\s\S]*)\]$/.exec(data);
  return m ? { ack_id: m[1] === "" ? null : Number(m[1]), payload: m[2] } : null;
}

function socketioServer() {
  const httpServer = http.createServer();
  // Short heartbeat so that every run exercises ping/pong; polling only, like the engine.
  const io = new Server(httpServer, { pingInterval: 200, pingTimeout: 2000,
    transports: mode === "websocket-only" ? ["websocket"] : ["polling"] });
  const space = io.of(nsp);
  let acked = 0, kicked = false, first = true;
  space.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    if (mode === "refuse" || auth.token !== token) {
      out({ refused: true });
      return next(new Error("bad token " + JSON.stringify(auth)));
    }
    next();
  });
  space.on("connection", (socket) => {
    out({ connect: { namespace: socket.nsp.name } });
    socket.conn.on("packet", (p) => { if (p.type === "pong") out({ pong: true }); });
    // The raw Socket.IO packet carries the ack id, which the event handler does not see.
    socket.conn.on("packet", (p) => {
      if (p.type !== "message") return;
      const ev = parseEvent(String(p.data));
      if (ev) out({ event: ev });
    });
    socket.on("mining_reward", (payload, ack) => {
      if (typeof ack !== "function") return out({ error: "mining_reward without ack" });
      if (mode === "noack" || (mode === "noack-first" && first)) { first = false; return; }
      const m = /^kick:(\d+)$/.exec(mode);
      if (m && !kicked && acked >= Number(m[1])) {
        kicked = true;   // this event and those behind it stay unacked
        return socket.disconnect(true);
      }
      ack();
      acked++;
    });
    socket.on("disconnect", (reason) => out({ disconnect: reason }));
  });
  return httpServer;
}

const OPEN = '0{"sid":"rawsession1","upgrades":[],"pingInterval":200,"pingTimeout":2000,' +
             '"maxPayload":1000000}';
// What a broken server might answer to a poll: each is refused by the client for a
// different reason (the test checks that several reasons show up).
const GARBAGE = [
  Buffer.from("\x00\xff\xfe garbage"),
  Buffer.from("6\x1e1"),   // noop, then close: a clean end of the session, not garbage
  Buffer.from("7unknown packet type"),
  Buffer.from("bAQIDBA=="),
  Buffer.from("4{{{{not socket.io"),
  Buffer.from("42[\"mining_reward\""),
  Buffer.from("40{\"sid\":1}\x1e\x1e"),
  Buffer.from("0" + OPEN.slice(1)),
];

function rawServer() {
  let polls = 0, handshakes = 0;
  return http.createServer((req, res) => {
    const hasSid = /[?&]sid=/.test(req.url);
    const kind = req.method === "POST" ? "post" : hasSid ? "poll" : "handshake";
    out({ request: req.method + " " + kind });
    req.resume();
    req.on("end", () => {
      if (kind === "post") return res.end("ok");
      if (kind === "handshake") {
        handshakes++;
        if (mode === "midbody" && handshakes % 2 === 1) {
          res.writeHead(200, { "Content-Length": String(OPEN.length) });
          res.write(OPEN.slice(0, 20));
          return setTimeout(() => res.socket.destroy(), 20);
        }
        return res.end(mode === "silent" ? OPEN.replace("2000", "200") : OPEN);
      }
      polls++;
      if (mode === "silent") {   // connect, then never answer a poll: no more pings
        if (polls % 2 === 1) return res.end("40{\"sid\":\"nspsid\"}");
        return;
      }
      if (mode === "unknown-sid") {
        res.writeHead(400, { "Content-Type": "application/json" });
        return res.end('{"code":1,"message":"Session ID unknown"}');
      }
      if (mode === "midbody") {
        res.writeHead(200, { "Content-Length": "1000" });
        res.write("40{\"sid\":\"x\"}\x1e2\x1e42[\"mining");
        return setTimeout(() => res.socket.destroy(), 20);
      }
      // garbage: first poll of a session accepts the namespace, later ones are garbage.
      if (polls % 2 === 1) return res.end("40{\"sid\":\"nspsid\"}");
      res.end(GARBAGE[(polls / 2 - 1) % GARBAGE.length | 0]);
    });
  });
}

const RAW_MODES = ["garbage", "midbody", "unknown-sid", "silent"];
const server = RAW_MODES.includes(mode) ? rawServer() : socketioServer();
// SIO_PORT (default 0: a free one) lets a test put another server on the same URL later.
server.listen(Number(process.env.SIO_PORT || 0), "127.0.0.1",
  () => out({ listening: server.address().port }));
process.on("SIGTERM", () => process.exit(0));
