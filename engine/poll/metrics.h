/* Counters of the polling work, in the shape of the old service's `polling_cycle_complete`
 * log event: totals since start, per pool request statistics, failures of the last cycle,
 * and per pool what the operator must not miss: refused wallets and whether the pool's
 * accounts can be polled within its max_interval. */
#ifndef M2P_METRICS_H
#define M2P_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "scheduler.h"

/* Upper bounds (seconds) of the response-time histogram buckets that GET /metrics exposes
 * as m2p_poll_duration_seconds; a response slower than the last bound is counted only in
 * timed_responses (the +Inf bucket). */
#define METRICS_LATENCY_BUCKETS 11
extern const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS];

typedef struct pool_metrics {
    char *name;
    uint64_t requests, successes, failures;
    uint64_t awards;          /* awards paid (held ones are not) */
    uint64_t awards_held;     /* awards stored as held (award limits), not paid */
    double advc_awarded, ap_awarded; /* sums over the paid awards */
    double response_ms_total; /* over requests that got an HTTP answer */
    uint64_t timed_responses;
    /* per bucket, responses in (previous bound, bound]: not cumulative */
    uint64_t latency_buckets[METRICS_LATENCY_BUCKETS];
    /* Kept current by the poller (gauges, not totals): */
    size_t wallets_refused; /* accounts parked: invalid wallet, or another player's */
    bool scheduled;         /* the fields below are set */
    size_t accounts;        /* scheduled on this pool */
    double effective_interval;
    double max_interval; /* the pool's limits.max_interval; 0 = none */
    size_t capacity;     /* accounts one egress can poll within max_interval (SIZE_MAX: any) */
    bool exceeds_max;
    /* Copied from the scheduler and the account table by poller_refresh_gauges (for the
     * admin endpoint, at each request): */
    breaker_state breaker;  /* BREAKER_CLOSED / OPEN / PROBING: m2p_pool_breaker_state */
    sched_lag lag;          /* m2p_scheduler_lag_seconds */
    size_t accounts_tracked; /* players with a wallet on this (enabled) pool */
    size_t accounts_owned;   /* of those, the ones this engine polls (scale-out membership) */
} pool_metrics;

typedef struct metrics {
    uint64_t polls_total, polls_successful, rewards_detected;
    uint64_t cycle_failures; /* since the last polling_cycle_complete */
    uint64_t script_reloads, script_reload_failures;
    pool_metrics *pools;
    size_t n_pools;
    /* Kept current by the poller: the entries its player and account tables hold, in use or
     * free for reuse. They follow the players present, not every player ever seen (churn). */
    size_t player_entries, account_entries;
    struct activity *activity; /* recent awards, failures and series (status page); may be NULL */
} metrics;

void metrics_init(metrics *m);
void metrics_free(metrics *m);

/* The counters of pool `name`, created on first use. The pointer stays valid until
 * metrics_free. */
pool_metrics *metrics_pool(metrics *m, const char *name);

/* One finished poll. response_ms < 0: no HTTP answer (transport failure). */
void metrics_record_poll(metrics *m, pool_metrics *pool, bool success, double response_ms);

/* One award committed for `player_id` on `pool`: paid, or stored as held. */
void metrics_record_award(metrics *m, pool_metrics *pool, int64_t player_id, double advc,
                          double ap, bool held);

/* One failed poll of `player_id`'s account on `pool`, `why` in words (no secret: the
 * poller's log text). Counted by metrics_record_poll; this keeps what the status page shows. */
void metrics_record_failure(metrics *m, pool_metrics *pool, int64_t player_id, const char *why);

/* {"polls_total": .., "polls_successful": .., "rewards_detected": .., "wallets_refused": ..,
 *  "pools": {..}} */
cJSON *metrics_to_json(const metrics *m);

/* Logs polling_cycle_complete (with the members of `extra` added, which it takes; may be
 * NULL) and starts a new cycle's failure count. */
void metrics_log_cycle(metrics *m, size_t player_count, cJSON *extra);

#endif
