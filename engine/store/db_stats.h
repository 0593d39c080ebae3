/* Numbers only the database knows, for GET /metrics and GET /status: held awards awaiting
 * release (every engine's), and per notification sink the outbox events not yet delivered
 * (or given up) and the age of the oldest of them.
 *
 * One small query every `interval` seconds (DATABASE_STATS_INTERVAL) on the engine's db
 * queue, never two at once (a slow or absent database does not pile them up). It reads the
 * partial indexes of pending rows (m2p_held_awards_pending, m2p_outbox_pending,
 * m2p_deliveries_pending), so its cost follows the backlog, not the size of the tables.
 * Until the first answer nothing is known (db_stats_known); after a failed query the last
 * answer stays (logged once as database_stats_failed, warning, until one succeeds again).
 */
#ifndef M2P_DB_STATS_H
#define M2P_DB_STATS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "db.h"

struct ev_loop;
typedef struct db_stats db_stats;

typedef struct db_stats_sink {
    const char *name;
    long long depth;           /* events this sink has not delivered nor given up */
    double oldest_age_seconds; /* age of the oldest of them; 0 when there is none */
} db_stats_sink;

/* `sinks` (n names, copied): the engine's notification sinks, as outbox_stats names them.
 * The first query is queued at once. NULL when out of memory. */
db_stats *db_stats_new(struct ev_loop *loop, db *d, const char *const *sinks, size_t n,
                       double interval);
/* Stops the timer (no new query); one in flight still answers. NULL is a no-op. */
void db_stats_stop(db_stats *s);
/* Call after db_free (no callback may still be pending). NULL is a no-op. */
void db_stats_free(db_stats *s);

/* A query has answered once: the numbers below mean something. */
bool db_stats_known(const db_stats *s);
long long db_stats_held_awaiting_release(const db_stats *s);
size_t db_stats_sink_count(const db_stats *s);
db_stats_sink db_stats_sink_at(const db_stats *s, size_t i);

/* {"held_awaiting_release": N, "sinks": {"<sink>": {"depth": N, "oldest_age_seconds": S}}},
 * or NULL while nothing is known (and for a NULL s). Caller owns it. */
cJSON *db_stats_json(const db_stats *s);

#endif
