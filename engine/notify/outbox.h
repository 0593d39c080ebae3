/* Delivery of the notification outbox: one worker per sink, fed from m2p_outbox.
 *
 * Every award's transaction writes a mining_reward event into m2p_outbox (and NOTIFYs
 * 'm2p_outbox'). A worker claims its sink's next events with a lease (m2p_claim_deliveries:
 * FOR UPDATE SKIP LOCKED, so several engines sharing the database never carry the same event
 * at the same time, and a killed engine's events are taken over when its lease runs out),
 * hands each to the sink, and records the outcome in m2p_deliveries: delivered, or retried
 * later with backoff, or given up after NOTIFY_MAX_AGE (logged as notification_expired, never
 * silently). Only a player's oldest undelivered event is claimable, so a sink receives each
 * player's events in award order; a player whose event keeps failing holds back no one else,
 * and a sink that is down (not ready) claims nothing and holds back no other sink.
 *
 * Wakes: the 'm2p_outbox' NOTIFY (this engine's commits and every other engine's), a sink
 * becoming ready, a delivery finishing, and a timer (retries that come due, a lost NOTIFY).
 *
 * Logs: notification_delivered (debug), notification_failed (warning, each failed attempt),
 * notification_expired (error), notification_sink_gone (error), outbox_claim_failed
 * (warning).
 */
#ifndef M2P_NOTIFY_OUTBOX_H
#define M2P_NOTIFY_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "notify/sink.h"

struct ev_loop;

typedef struct outbox outbox;

typedef struct outbox_options {
    const char *engine_id; /* owner of this engine's leases; copied */
    double max_age;        /* NOTIFY_MAX_AGE, seconds */
    double timeout;        /* NOTIFY_TIMEOUT, seconds: the lease is 3x this plus 5 s */
    int batch;             /* events claimed per round and in flight per sink; 0 = 100 */
    double tick;           /* seconds between timer wakes; 0 = 1 */
} outbox_options;

typedef struct outbox_sink_stats {
    const char *name;
    int ready, gone;
    size_t in_flight;
    uint64_t delivered, failed, expired;
} outbox_sink_stats;

/* Takes ownership of the n sinks (freed by outbox_stop) and starts delivering. */
outbox *outbox_new(struct ev_loop *loop, db *d, notify_sink **sinks, size_t n,
                   const outbox_options *o);
/* Stops claiming, frees the sinks (deliveries in flight end as retries) and hands this
 * engine's unfinished claims back. Queries already sent still answer: free the outbox only
 * after the db. */
void outbox_stop(outbox *ob);
/* Call after db_free (no callback may still be pending). NULL is a no-op. */
void outbox_free(outbox *ob);

size_t outbox_sink_count(const outbox *ob);
/* Stats of sink i (0 <= i < outbox_sink_count). */
outbox_sink_stats outbox_stats(const outbox *ob, size_t i);
/* Every sink's stats as {"<sink>": {ready, in_flight, delivered, failed_attempts, expired[,
 * gone]}}, for the logs and /status; {} for a NULL outbox. Caller owns the object. */
struct cJSON *outbox_stats_json(const outbox *ob);

#endif
