/* The scheduler: when each account is polled.
 *
 * Pure logic with the time passed in, so its behaviour is tested with a simulated clock
 * (tests/unit/test_scheduler.c); engine/poll/poller.c drives it from the libev loop.
 *
 * - Every account of a pool is polled once per effective interval, the accounts spread evenly
 *   across it (stratified jitter), never a burst at the start of a cycle.
 * - Effective interval of a pool = max(POLL_INTERVAL_SECONDS, limits.interval,
 *   accounts / limits.per_second): a rate-limited pool's cycle is stretched, never its limit.
 * - A pool whose data only covers a window (limits.max_interval) is reported when its
 *   effective interval is longer than that window: the caller must say so, never silently.
 * - Per pool: a concurrency cap, a token bucket (per_second), a pause for Retry-After, and a
 *   circuit breaker. Each pool has its own queue, so a failing pool never delays another.
 * - Per account: exponential backoff with jitter after failures.
 */
#ifndef M2P_SCHEDULER_H
#define M2P_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct scheduler scheduler;

typedef struct sched_pool_limits {
    int concurrency;     /* 0 = default (SCHED_DEFAULT_CONCURRENCY) */
    double per_second;   /* 0 = unlimited */
    double interval;     /* minimum seconds between polls of one account; 0 = base */
    double max_interval; /* the pool's data goes stale after this many seconds; 0 = never */
} sched_pool_limits;

#define SCHED_DEFAULT_CONCURRENCY 64
#define SCHED_BREAKER_THRESHOLD 10 /* consecutive pool failures that open the breaker */
#define SCHED_BREAKER_PROBE_MIN 5.0
#define SCHED_BREAKER_PROBE_MAX 300.0

typedef enum {
    SCHED_OK,           /* observation taken */
    SCHED_FAIL,         /* this account's poll failed (bad answer for this wallet) */
    SCHED_POOL_FAIL,    /* the pool failed: transport error, timeout, 5xx, 429 */
    SCHED_NOT_POLLED,   /* never started (e.g. shutting down): back to the queue as it was */
} sched_result;

typedef enum { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_PROBING } breaker_state;

typedef struct sched_pool_status {
    size_t accounts, queued, in_flight; /* queued: waiting, due or not */
    double effective_interval;
    breaker_state breaker;
    double paused_until;
    /* Pacing against limits.max_interval (0 when the pool declares none): */
    double max_interval;
    size_t capacity;  /* accounts this pool can poll within max_interval (SIZE_MAX: any) */
    bool exceeds_max; /* accounts > capacity: some accounts wait longer than max_interval */
    /* Why the interval is what it is, and when an open breaker probes (for --explain): */
    double base_interval, min_interval, per_second; /* POLL_INTERVAL_SECONDS, limits */
    unsigned consecutive_failures; /* of the pool, towards SCHED_BREAKER_THRESHOLD */
    double probe_at;               /* breaker open: when the next probe may start */
} sched_pool_status;

/* One account as the scheduler has it (for --explain / GET /accounts). */
typedef struct sched_account_status {
    bool known;     /* added and not removed */
    bool in_flight; /* being polled now */
    double due;     /* queued: when its next poll may start (before the pool's gates) */
    unsigned failures; /* consecutive failures of this account: its backoff */
} sched_account_status;

/* Scheduler lag: how late polls start, now - due when scheduler_next hands an account out
 * (pacing, the concurrency cap, a Retry-After pause and the breaker all show here). A
 * histogram per pool, totals since the pool was first set; exposed as
 * m2p_scheduler_lag_seconds. Bucket counts are per bucket (not cumulative); a lag over the
 * last bound is only in `count`. */
#define SCHED_LAG_BUCKETS 10
extern const double sched_lag_bounds[SCHED_LAG_BUCKETS];

typedef struct sched_lag {
    uint64_t buckets[SCHED_LAG_BUCKETS];
    uint64_t count;
    double sum; /* seconds */
} sched_lag;

scheduler *scheduler_new(double base_interval, uint64_t seed);
void scheduler_free(scheduler *s);

/* Pools are numbered 0..n-1 by the caller; (re)setting a pool's limits keeps its accounts. */
void scheduler_set_pool(scheduler *s, unsigned pool, const sched_pool_limits *limits);

/* Accounts are numbered by the caller (dense ids). Adding spreads the pool's new accounts
 * over the interval starting at `now`; removing an account in flight is allowed (its done()
 * is then ignored). */
void scheduler_add(scheduler *s, uint32_t account, unsigned pool, double now);
/* Adds an account due at exactly `due` (no spreading): for --once, as fast as limits allow. */
void scheduler_add_at(scheduler *s, uint32_t account, unsigned pool, double due);
void scheduler_remove(scheduler *s, uint32_t account);

/* The next account to poll now, or -1. *wake_at is when to ask again if nothing is ready
 * (HUGE_VAL when only a done() can make progress). */
int64_t scheduler_next(scheduler *s, double now, double *wake_at);

/* A poll of `account` finished. retry_after > 0 pauses the whole pool that long. */
void scheduler_done(scheduler *s, uint32_t account, double now, sched_result result,
                    double retry_after);

/* Changes the base interval (POLL_INTERVAL_SECONDS) for future cycles. */
void scheduler_set_base_interval(scheduler *s, double base_interval);

void scheduler_pool_status(const scheduler *s, unsigned pool, sched_pool_status *out);
/* Zeroed (known = false) for an account never added or removed. */
void scheduler_account_status(const scheduler *s, uint32_t account, sched_account_status *out);
/* The lag histogram of `pool` (zeroed for a pool never set). */
void scheduler_pool_lag(const scheduler *s, unsigned pool, sched_lag *out);
size_t scheduler_in_flight(const scheduler *s);
/* Accounts waiting in the queues (not in flight). */
size_t scheduler_queued(const scheduler *s);
/* Removes every queued account of `pool` (for --once when a pool's breaker opened); writes
 * their ids to `out` (capacity `max`) and returns how many were removed. */
size_t scheduler_drain(scheduler *s, unsigned pool, uint32_t *out, size_t max);

#endif
