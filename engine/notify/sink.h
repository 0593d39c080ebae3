/* A notification sink: one receiver of mining_reward events (the Socket.IO server, one
 * webhook URL). The outbox (outbox.h) claims events from m2p_outbox for each sink and hands
 * them to it one by one; a sink only carries an event to its receiver and says how it went.
 * PostgreSQL NOTIFY is not a sink: it is sent inside the award's own transaction.
 *
 * Contract for an implementation:
 *   - name: stable across restarts and engines ("socketio", "webhook:http://host/path"); it
 *     keys the m2p_deliveries rows, so it must not contain secrets.
 *   - ready(): true when deliver() would be attempted now (Socket.IO connected; a webhook
 *     that answered 410 Gone is never ready again). The outbox claims nothing for a sink
 *     that is not ready, so an outage costs no attempts. When readiness turns true, the sink
 *     calls notify_sink_ready_changed() so the outbox claims at once.
 *   - deliver(): starts carrying one event; returns 0 and later calls done exactly once
 *     (never from inside deliver), or returns -1 (done is not called; the outbox retries).
 *     Any number of deliveries may be in flight at once; they are for different players.
 *   - free(): finishes every delivery in flight with NOTIFY_RETRY "shutting down" (callbacks
 *     run inside free) and releases everything.
 * Everything runs on the loop's thread. */
#ifndef M2P_NOTIFY_SINK_H
#define M2P_NOTIFY_SINK_H

#include <stdbool.h>
#include <stddef.h>

typedef enum notify_outcome {
    NOTIFY_DELIVERED = 0, /* the receiver has it (Socket.IO ack, webhook 2xx) */
    NOTIFY_RETRY,         /* not delivered; try again later (backoff) */
    NOTIFY_GONE,          /* the receiver will never take events (webhook 410): the sink
                             stops for good; error says why */
} notify_outcome;

/* One event to carry. Valid only during deliver(): copy what is kept. */
typedef struct notify_event {
    const char *event_id;  /* mining_events.id as text */
    long long player_id;
    const char *payload;   /* the mining_reward JSON object, as stored */
    size_t payload_len;
} notify_event;

/* error: NULL when delivered; otherwise a short reason without secrets ("HTTP 500",
 * "ack timeout after 10000 ms", "not connected"). */
typedef void (*notify_done_fn)(void *user, notify_outcome outcome, const char *error);

typedef struct notify_sink notify_sink;

typedef struct notify_sink_ops {
    bool (*ready)(notify_sink *s);
    int (*deliver)(notify_sink *s, const notify_event *ev, notify_done_fn done, void *user);
    void (*free)(notify_sink *s);
} notify_sink_ops;

/* Embed as the first member of an implementation's struct. */
struct notify_sink {
    const notify_sink_ops *ops;
    char name[320];
    void (*on_ready)(void *user, notify_sink *s); /* set by the outbox */
    void *on_ready_user;
};

static inline void notify_sink_ready_changed(notify_sink *s)
{
    if (s->on_ready)
        s->on_ready(s->on_ready_user, s);
}

#endif
