// A Socket.IO server for the notification tests: the official `socket.io` package from
// examples/socketio-relay/node_modules. It accepts a client whose auth token is TOKEN, acks
// every mining_reward and prints one JSON line per event to stdout:
//   {"received": <ms since epoch>, "socket": "<id>", "event": {...}}
// and {"listening": <port>} once it listens (PORT=0 picks a free port; a port given is
// reused after a restart, so the engine finds the server again).
const path = require("path");
const http = require("http");
const { Server } = require(path.join(__dirname, "../../examples/socketio-relay/node_modules/socket.io"));

const token = process.env.TOKEN || "";
const port = Number(process.env.PORT || 0);
const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false });

io.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === token) return next();
  next(new Error("unauthorized"));
});

io.on("connection", (socket) => {
  console.log(JSON.stringify({ connected: socket.id }));
  socket.on("mining_reward", (event, ack) => {
    console.log(JSON.stringify({ received: Date.now(), socket: socket.id, event }));
    if (typeof ack === "function") ack({ ok: true });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(JSON.stringify({ listening: httpServer.address().port }));
});
process.on("SIGTERM", () => process.exit(0));
