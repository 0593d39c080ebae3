/* The notifiers the configuration asks for: the Socket.IO client (SOCKETIO_URL) and one
 * webhook per URL of WEBHOOK_URLS, as sinks for the outbox. PostgreSQL NOTIFY
 * (PG_NOTIFY_CHANNEL) is not built here: it is sent inside each award's transaction. */
#ifndef M2P_NOTIFY_NOTIFIERS_H
#define M2P_NOTIFY_NOTIFIERS_H

#include <stddef.h>

#include "config.h"
#include "notify/sink.h"

struct ev_loop;

/* Builds every configured sink into *sinks (caller frees the array and, unless it hands them
 * to the outbox, each sink). Returns the number built (0 = none configured), or -1 with the
 * reason in err (nothing is left allocated then). */
int notifiers_new(struct ev_loop *loop, const config *cfg, notify_sink ***sinks, char *err,
                  size_t errlen);

#endif
