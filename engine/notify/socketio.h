/* The Socket.IO sink: the engine as a Socket.IO v5 client of the game's server, over
 * Engine.IO v4 HTTP long-polling (engine/http.h; docs/notifications.md says why not
 * WebSocket). Each mining_reward is emitted with an ack id and counts as delivered only when
 * the server's ACK for that id arrives.
 *
 * One session at a time: handshake GET, then the namespace CONNECT (with the auth payload),
 * then exactly one long-poll GET outstanding and at most one POST in flight (outgoing
 * packets are queued and batched into the next POST). A session that ends for any reason
 * fails its deliveries in flight with NOTIFY_RETRY and is replaced after an exponential
 * backoff with jitter; a refused CONNECT (CONNECT_ERROR) waits at least 30 s.
 *
 * Log events: socketio_connected (info), socketio_disconnected (warning, reason),
 * socketio_connect_failed (warning, reason), socketio_connect_refused (error, the server's
 * message). The auth payload is a secret: it is never logged, and a server message that
 * quotes one of its values is logged with that value replaced by "[redacted]". */
#ifndef M2P_NOTIFY_SOCKETIO_H
#define M2P_NOTIFY_SOCKETIO_H

#include "notify/sink.h"

struct ev_loop;

typedef struct socketio_options {
    const char *url;        /* SOCKETIO_URL: http, https, ws (= http), wss (= https); only
                               scheme and authority are used */
    const char *namespace;  /* SOCKETIO_NAMESPACE: "/" or "/name"; NULL = "/" */
    const char *path;       /* SOCKETIO_PATH; NULL = "/socket.io/" */
    const char *auth;       /* SOCKETIO_AUTH: JSON object text; NULL or "" = none. Secret */
    double ack_timeout;     /* NOTIFY_TIMEOUT, seconds; <= 0 = 10 */
    double reconnect_min;   /* seconds; <= 0 = 0.5 */
    double reconnect_max;   /* seconds; <= 0 = 30 */
    double refused_retry;   /* seconds after a CONNECT_ERROR; <= 0 = max(30, reconnect_max) */
} socketio_options;

/* Starts connecting from the loop (nothing happens inside this call). NULL for an unusable
 * URL, namespace, path or auth text, logged as socketio_config_invalid (level error; the
 * auth text is never quoted), or when out of memory. */
notify_sink *socketio_sink_new(struct ev_loop *loop, const socketio_options *o);

#endif
