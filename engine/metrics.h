/* Counters of the polling work, in the shape of the old service's `polling_cycle_complete`
 * log event: totals since start, per pool request statistics, failures of the last cycle. */
#ifndef M2P_METRICS_H
#define M2P_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct pool_metrics {
    char *name;
    uint64_t requests, successes, failures;
    double response_ms_total; /* over requests that got an HTTP answer */
    uint64_t timed_responses;
} pool_metrics;

typedef struct metrics {
    uint64_t polls_total, polls_successful, rewards_detected;
    uint64_t cycle_failures; /* since the last polling_cycle_complete */
    uint64_t script_reloads, script_reload_failures;
    pool_metrics *pools;
    size_t n_pools;
} metrics;

void metrics_init(metrics *m);
void metrics_free(metrics *m);

/* The counters of pool `name`, created on first use. The pointer stays valid until
 * metrics_free. */
pool_metrics *metrics_pool(metrics *m, const char *name);

/* One finished poll. response_ms < 0: no HTTP answer (transport failure). */
void metrics_record_poll(metrics *m, pool_metrics *pool, bool success, double response_ms);

/* {"polls_total": .., "polls_successful": .., "rewards_detected": .., "pools": {..}} */
cJSON *metrics_to_json(const metrics *m);

/* Logs polling_cycle_complete (with the members of `extra` added, which it takes; may be
 * NULL) and starts a new cycle's failure count. */
void metrics_log_cycle(metrics *m, size_t player_count, cJSON *extra);

#endif
