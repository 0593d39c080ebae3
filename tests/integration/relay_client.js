// A Socket.IO client for the relay tests, with the official socket.io-client from the relay's
// node_modules: a player's browser (--join ID) or the engine (--token T, long-polling only as
// the engine speaks it). It prints one JSON object per line on stdout:
//   {"connected": true}  {"joined": "player_1"}  {"connect_error": "unauthorized"}
//   {"reward": {...}}    {"ack": SEQ, "reply": ...}  {"disconnected": "reason"}
// and reads commands, one JSON object per line, on stdin:
//   {"seq": SEQ, "emit": {...}}   emits mining_reward with an ack callback (ack line above)
// It exits when stdin closes.
//
//   node relay_client.js http://127.0.0.1:PORT [--token T] [--join ID] [--polling]
"use strict";

const path = require("path");
const readline = require("readline");
const { io } = require(path.join(__dirname, "..", "..", "examples", "socketio-relay",
                                 "node_modules", "socket.io-client"));

function parseArgs(argv) {
  const opts = { url: argv[0], token: null, join: null, polling: false };
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === "--token") opts.token = argv[++i];
    else if (argv[i] === "--join") opts.join = argv[++i];
    else if (argv[i] === "--polling") opts.polling = true;
    else throw new Error("unknown argument " + argv[i]);
  }
  if (!opts.url) throw new Error("usage: relay_client.js URL [--token T] [--join ID] [--polling]");
  return opts;
}

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const opts = parseArgs(process.argv.slice(2));
const socket = io(opts.url, {
  auth: opts.token === null ? {} : { token: opts.token },
  transports: opts.polling ? ["polling"] : ["polling", "websocket"],
  reconnection: false, // a refused connection is reported once, not retried
});

socket.on("connect", () => {
  say({ connected: true });
  if (opts.join !== null) {
    socket.emit("join", opts.join, (reply) => {
      say(reply && reply.ok ? { joined: reply.room } : { join_error: reply });
    });
  }
});
socket.on("connect_error", (err) => say({ connect_error: err.message }));
socket.on("disconnect", (reason) => say({ disconnected: reason }));
socket.on("mining_reward", (data) => say({ reward: data }));

const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
  const cmd = JSON.parse(line);
  socket.emit("mining_reward", cmd.emit, (reply) => say({ ack: cmd.seq, reply: reply }));
});
input.on("close", () => {
  socket.close();
  process.exit(0);
});
