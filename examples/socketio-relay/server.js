// The game's side of m2p-engine's Socket.IO notifications, as small as it can be while being
// correct: the engine connects as a Socket.IO client with its token and emits one
// `mining_reward` per award (with an acknowledgement); this server relays each one to the
// room `player_<id>`, where that player's browser tabs listen, and acks it to the engine.
// GET / serves a page that joins a room and lists rewards as they arrive.
//
//   RELAY_ENGINE_TOKEN=secret PORT=3000 HOST=127.0.0.1 node server.js
//
// and the engine: SOCKETIO_URL=http://127.0.0.1:3000 SOCKETIO_AUTH='{"token":"secret"}'.
// docs/notifications.md ("How a game receives them") explains the conventions.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const path = require("path");
const { Server } = require("socket.io");

const PORT = parsePort(process.env.PORT === undefined ? "3000" : process.env.PORT);
const HOST = process.env.HOST || "127.0.0.1";
const ENGINE_TOKEN = process.env.RELAY_ENGINE_TOKEN || "";

if (ENGINE_TOKEN === "") {
  fatal("RELAY_ENGINE_TOKEN is required: the secret the engine sends as SOCKETIO_AUTH " +
        "'{\"token\":\"...\"}'");
}

function fatal(message) {
  console.error("relay: " + message);
  process.exit(2);
}

function parsePort(text) {
  const port = Number(text);
  if (!/^[0-9]+$/.test(text) || port > 65535) {
    fatal("PORT must be a number from 0 to 65535, got " + JSON.stringify(text));
  }
  return port;
}

// Compares digests, not the strings: timingSafeEqual needs equal lengths, and comparing the
// raw strings would reveal the token's length through the time taken.
function isEngineToken(candidate) {
  if (typeof candidate !== "string") return false;
  const digest = (s) => crypto.createHash("sha256").update(s).digest();
  return crypto.timingSafeEqual(digest(candidate), digest(ENGINE_TOKEN));
}

// A player id as the engine sends it (players.id): a positive integer.
function isPlayerId(value) {
  return Number.isSafeInteger(value) && value > 0;
}

function roomOf(playerId) {
  return "player_" + playerId;
}

const page = fs.readFileSync(path.join(__dirname, "index.html"));

const httpServer = http.createServer((req, res) => {
  // Socket.IO answers its own path (/socket.io/...: the protocol and the client bundle
  // /socket.io/socket.io.js from node_modules/socket.io/client-dist) before this runs.
  const url = new URL(req.url, "http://relay");
  if (req.method === "GET" && url.pathname === "/") {
    res.writeHead(200, {
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
    });
    res.end(page);
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
  res.end("not found\n");
});

// Both transports stay allowed: the engine speaks HTTP long-polling (docs/notifications.md),
// browsers upgrade to WebSocket.
const io = new Server(httpServer, { serveClient: true });

// Who is who, decided once per connection. A socket that presents a token must present the
// engine's: a wrong one is refused with connect_error "unauthorized" and never reaches the
// handlers. A socket without a token is a player's browser, which may only join a room.
io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (auth.token === undefined) {
    socket.data.role = "player";
    return next();
  }
  if (!isEngineToken(auth.token)) {
    console.log("relay: refused a connection from %s: wrong engine token",
                socket.handshake.address);
    return next(new Error("unauthorized"));
  }
  socket.data.role = "engine";
  return next();
});

io.on("connection", (socket) => {
  if (socket.data.role === "engine") {
    onEngine(socket);
  } else {
    onPlayer(socket);
  }
});

function onEngine(socket) {
  console.log("relay: engine connected (%s, %s)", socket.id, socket.conn.transport.name);
  socket.on("mining_reward", (data, ack) => relayReward(data, ack));
  socket.on("disconnect", (reason) => {
    console.log("relay: engine disconnected (%s): %s", socket.id, reason);
  });
}

// Relays first, then acks: the engine counts the event as delivered only when the ack
// arrives, so an ack must mean "the game has it". The relay keeps nothing: a player who is
// offline misses the live message (a real game would also store it, or read mining_events).
// A malformed event is not acked (the engine keeps it and says so), and never relayed.
function relayReward(data, ack) {
  const problem = rewardProblem(data);
  if (problem !== null) {
    console.log("relay: rejected a mining_reward: %s", problem);
    return;
  }
  const room = roomOf(data.player_id);
  io.to(room).emit("mining_reward", data);
  const listeners = io.sockets.adapter.rooms.get(room);
  console.log("relay: mining_reward event_id=%s player_id=%d -> %s (%d client%s)",
              String(data.event_id).slice(0, 40), data.player_id, room,
              listeners ? listeners.size : 0, listeners && listeners.size === 1 ? "" : "s");
  if (typeof ack === "function") ack({ ok: true });
}

function rewardProblem(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    return "not a JSON object";
  }
  if (!isPlayerId(data.player_id)) return "player_id is not a positive integer";
  return null;
}

// A real game authenticates the player here (its session cookie or a signed token in the
// handshake) and joins the socket to that player's room only. This demo trusts the id typed
// into the page, which is fine on loopback and nowhere else.
function onPlayer(socket) {
  // An engine started without SOCKETIO_AUTH lands here: say so instead of dropping silently.
  socket.on("mining_reward", () => {
    console.log("relay: ignored a mining_reward from a connection without the engine token " +
                "(is SOCKETIO_AUTH set on the engine?)");
  });
  socket.on("join", (playerId, ack) => {
    const id = typeof playerId === "string" && /^[0-9]+$/.test(playerId)
      ? Number(playerId) : playerId;
    const reply = typeof ack === "function" ? ack : () => {};
    if (!isPlayerId(id)) {
      reply({ ok: false, error: "player id must be a positive integer" });
      return;
    }
    for (const room of socket.rooms) {
      if (room.startsWith("player_")) socket.leave(room);
    }
    socket.join(roomOf(id));
    reply({ ok: true, room: roomOf(id) });
  });
}

function shutdown(signal) {
  console.log("relay: %s, stopping", signal);
  io.close(() => process.exit(0));
  // Browsers on long-polling can hold the close open; do not outlive the demo by much.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

httpServer.on("error", (err) => fatal("cannot listen on " + HOST + ":" + PORT + ": " +
                                       err.message));
httpServer.listen(PORT, HOST, () => {
  const address = httpServer.address();
  const shown = address.family === "IPv6" ? "[" + address.address + "]" : address.address;
  console.log("relay: listening on http://%s:%d/", shown, address.port);
});
