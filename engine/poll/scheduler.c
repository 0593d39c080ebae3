/* The scheduler (see scheduler.h for the rules it enforces).
 *
 * Data: one small record per account (24 bytes, for a million accounts), and per pool a
 * 4-ary min-heap of queued accounts ordered by due time, a token bucket, a concurrency
 * count, a Retry-After pause and a circuit breaker. scheduler_next() asks the pools in turn
 * (round-robin, so no pool starves another) for an account that is due and allowed to start.
 *
 * The heap's layout is for a million accounts, where neither the heap nor the records fit in
 * the CPU's caches (bench/sched_bench.c measures it): each entry carries its due time, so a
 * sift compares entries without reading an account record (which would be a cache miss per
 * comparison, each waiting on the one before); the four children of an entry are one 64-byte
 * cache line, and four children per level halve the depth of a binary heap. Only the moved
 * entries' heap_pos writes still go to the records, and those do not wait on each other.
 */
#include "scheduler.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NOT_QUEUED UINT32_MAX
#define GOLDEN 0.6180339887498949 /* Weyl sequence: any prefix is spread evenly */
#define MAX_BACKOFF_DOUBLINGS 4
#define MAX_PAUSE 3600.0

enum { ACCOUNT_ACTIVE = 1, ACCOUNT_IN_FLIGHT = 2 };

typedef struct sched_account {
    double due;  /* when the next poll may start */
    double slot; /* nominal time of this cycle's poll: keeps the account's phase */
    uint32_t heap_pos;
    uint16_t pool;
    uint8_t failures;
    uint8_t flags;
} sched_account;

/* A queued account: its due time is a copy of the record's, fixed while it is queued. */
typedef struct heap_entry {
    double due;
    uint32_t id;
} heap_entry;

#define HEAP_ARITY 4
#define CACHE_LINE 64
/* heap[1..4], heap[5..8]...: the children of one entry start on a cache line. */
#define HEAP_SKEW (CACHE_LINE / sizeof(heap_entry) - 1)

typedef struct sched_pool {
    sched_pool_limits limits;
    heap_entry *heap;  /* HEAP_SKEW entries into `heap_mem`, which is cache-line aligned */
    void *heap_mem;
    size_t heap_len, heap_cap;
    size_t accounts, in_flight;
    uint64_t added;  /* accounts ever added: index into the Weyl sequence */
    double phase;    /* random start of the sequence: the jitter */
    double tokens, refilled_at;
    double paused_until;
    breaker_state breaker;
    unsigned consecutive_failures;
    double probe_at, probe_delay;
    sched_lag lag;
} sched_pool;

struct scheduler {
    double base_interval;
    sched_account *accounts;
    size_t accounts_cap;
    sched_pool *pools;
    unsigned n_pools;
    unsigned next_pool; /* round-robin start */
    uint64_t rng;
    size_t in_flight;
};

/* From "on time" (the loop's wake-up latency) to a quarter of an hour (a paused pool, an
 * open breaker, a pool paced far beyond its accounts). */
const double sched_lag_bounds[SCHED_LAG_BUCKETS] = {0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900};

/* xorshift64*: deterministic per seed, good enough for jitter. */
static double random_unit(scheduler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

scheduler *scheduler_new(double base_interval, uint64_t seed)
{
    scheduler *s = calloc(1, sizeof *s);
    s->base_interval = base_interval;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
    return s;
}

void scheduler_free(scheduler *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->n_pools; i++)
        free(s->pools[i].heap_mem);
    free(s->pools);
    free(s->accounts);
    free(s);
}

void scheduler_set_base_interval(scheduler *s, double base_interval)
{
    s->base_interval = base_interval;
}

static double effective_interval(const scheduler *s, const sched_pool *p)
{
    double interval = fmax(s->base_interval, p->limits.interval);
    if (p->limits.per_second > 0)
        interval = fmax(interval, (double)p->accounts / p->limits.per_second);
    return interval;
}

/* How many accounts fit in one max_interval: every poll costs 1 / per_second of the pool's
 * time, and no account is polled more often than the base interval allows. */
static size_t capacity_of(const scheduler *s, const sched_pool *p)
{
    double max = p->limits.max_interval;
    if (max <= 0)
        return SIZE_MAX;
    if (fmax(s->base_interval, p->limits.interval) > max)
        return 0;
    if (p->limits.per_second <= 0)
        return SIZE_MAX;
    /* The epsilon keeps exact products (10 s x 1/s) from rounding down to one fewer. */
    double n = floor(max * p->limits.per_second + 1e-9);
    return n >= (double)SIZE_MAX ? SIZE_MAX : (size_t)n;
}

static int concurrency_of(const sched_pool *p)
{
    return p->limits.concurrency > 0 ? p->limits.concurrency : SCHED_DEFAULT_CONCURRENCY;
}

void scheduler_set_pool(scheduler *s, unsigned pool, const sched_pool_limits *limits)
{
    if (pool >= s->n_pools) {
        s->pools = realloc(s->pools, (pool + 1) * sizeof *s->pools);
        memset(s->pools + s->n_pools, 0, (pool + 1 - s->n_pools) * sizeof *s->pools);
        for (unsigned i = s->n_pools; i <= pool; i++) {
            s->pools[i].tokens = 1;
            s->pools[i].probe_delay = SCHED_BREAKER_PROBE_MIN;
            s->pools[i].phase = random_unit(s);
        }
        s->n_pools = pool + 1;
    }
    s->pools[pool].limits = *limits;
}

/* ======================================================================== Heap */

static void heap_place(scheduler *s, sched_pool *p, size_t pos, heap_entry e)
{
    p->heap[pos] = e;
    s->accounts[e.id].heap_pos = (uint32_t)pos;
}

static void sift_up(scheduler *s, sched_pool *p, size_t pos)
{
    heap_entry e = p->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / HEAP_ARITY;
        if (!(e.due < p->heap[parent].due))
            break;
        heap_place(s, p, pos, p->heap[parent]);
        pos = parent;
    }
    heap_place(s, p, pos, e);
}

static void sift_down(scheduler *s, sched_pool *p, size_t pos)
{
    heap_entry e = p->heap[pos];
    for (;;) {
        size_t first = HEAP_ARITY * pos + 1;
        if (first >= p->heap_len)
            break;
        size_t last = first + HEAP_ARITY < p->heap_len ? first + HEAP_ARITY : p->heap_len;
        size_t child = first;
        for (size_t c = first + 1; c < last; c++)
            if (p->heap[c].due < p->heap[child].due)
                child = c;
        if (!(p->heap[child].due < e.due))
            break;
        heap_place(s, p, pos, p->heap[child]);
        pos = child;
    }
    heap_place(s, p, pos, e);
}

static void heap_grow(sched_pool *p)
{
    size_t cap = p->heap_cap ? p->heap_cap * 2 : 64;
    /* aligned_alloc wants a size that is a multiple of the alignment */
    size_t bytes = (cap + HEAP_SKEW) * sizeof(heap_entry);
    bytes = (bytes + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    void *mem = aligned_alloc(CACHE_LINE, bytes);
    if (!mem)
        abort(); /* out of memory: the scheduler cannot go on without its queue */
    heap_entry *heap = (heap_entry *)mem + HEAP_SKEW;
    if (p->heap_len)
        memcpy(heap, p->heap, p->heap_len * sizeof *heap);
    free(p->heap_mem);
    p->heap_mem = mem;
    p->heap = heap;
    p->heap_cap = cap;
}

static void heap_push(scheduler *s, uint32_t id)
{
    sched_pool *p = &s->pools[s->accounts[id].pool];
    if (p->heap_len == p->heap_cap)
        heap_grow(p);
    p->heap[p->heap_len] = (heap_entry){s->accounts[id].due, id};
    sift_up(s, p, p->heap_len++);
}

static void heap_remove(scheduler *s, uint32_t id)
{
    sched_pool *p = &s->pools[s->accounts[id].pool];
    size_t pos = s->accounts[id].heap_pos;
    s->accounts[id].heap_pos = NOT_QUEUED;
    heap_entry last = p->heap[--p->heap_len];
    if (pos == p->heap_len)
        return;
    heap_place(s, p, pos, last);
    sift_up(s, p, pos);
    sift_down(s, p, s->accounts[last.id].heap_pos);
}

/* ==================================================================== Accounts */

static void add_account(scheduler *s, uint32_t id, unsigned pool, double now, bool spread)
{
    if (id >= s->accounts_cap) {
        size_t cap = s->accounts_cap ? s->accounts_cap : 1024;
        while (cap <= id)
            cap *= 2;
        s->accounts = realloc(s->accounts, cap * sizeof *s->accounts);
        memset(s->accounts + s->accounts_cap, 0, (cap - s->accounts_cap) * sizeof *s->accounts);
        s->accounts_cap = cap;
    }
    sched_account *a = &s->accounts[id];
    if (a->flags & ACCOUNT_ACTIVE)
        scheduler_remove(s, id);
    sched_pool *p = &s->pools[pool];
    p->accounts++;
    double offset = spread ? fmod(p->phase + (double)p->added++ * GOLDEN, 1.0) : 0;
    *a = (sched_account){.pool = (uint16_t)pool, .flags = ACCOUNT_ACTIVE,
                         .heap_pos = NOT_QUEUED};
    a->slot = a->due = now + offset * effective_interval(s, p);
    heap_push(s, id);
}

void scheduler_add(scheduler *s, uint32_t id, unsigned pool, double now)
{
    add_account(s, id, pool, now, true);
}

void scheduler_add_at(scheduler *s, uint32_t id, unsigned pool, double due)
{
    add_account(s, id, pool, due, false);
}

void scheduler_remove(scheduler *s, uint32_t id)
{
    if (id >= s->accounts_cap || !(s->accounts[id].flags & ACCOUNT_ACTIVE))
        return;
    sched_account *a = &s->accounts[id];
    sched_pool *p = &s->pools[a->pool];
    if (a->heap_pos != NOT_QUEUED)
        heap_remove(s, id);
    p->accounts--;
    /* A poll in flight frees its slot now: the poller drops the result of a poll whose
     * account went away and never reports it, and an account added again starts afresh.
     * Keeping the slot charged would leak it for good: with concurrency 1 (zpool) the pool
     * would never start another poll. A removed probe leaves the breaker open, not probing. */
    if (a->flags & ACCOUNT_IN_FLIGHT) {
        p->in_flight--;
        s->in_flight--;
        if (p->breaker == BREAKER_PROBING)
            p->breaker = BREAKER_OPEN;
    }
    a->flags = 0;
}

/* ==================================================================== Dispatch */

static void refill(sched_pool *p, double now)
{
    if (p->limits.per_second <= 0)
        return;
    double capacity = fmax(1.0, p->limits.per_second);
    p->tokens = fmin(capacity, p->tokens + (now - p->refilled_at) * p->limits.per_second);
    p->refilled_at = now;
}

/* The earliest time this pool may start a poll (HUGE_VAL: only a done() can help). */
static double pool_ready_at(sched_pool *p, double now)
{
    if (p->in_flight >= (size_t)concurrency_of(p))
        return HUGE_VAL;
    double at = fmax(now, p->paused_until);
    if (p->breaker == BREAKER_PROBING)
        return HUGE_VAL; /* one probe at a time */
    if (p->breaker == BREAKER_OPEN) {
        if (p->in_flight > 0)
            return HUGE_VAL;
        at = fmax(at, p->probe_at);
    }
    if (p->limits.per_second > 0) {
        refill(p, now);
        if (p->tokens < 1)
            at = fmax(at, now + (1 - p->tokens) / p->limits.per_second);
    }
    return at;
}

static uint32_t start_poll(scheduler *s, sched_pool *p)
{
    uint32_t id = p->heap[0].id;
    heap_remove(s, id);
    if (p->limits.per_second > 0)
        p->tokens -= 1;
    if (p->breaker == BREAKER_OPEN)
        p->breaker = BREAKER_PROBING;
    p->in_flight++;
    s->in_flight++;
    s->accounts[id].flags |= ACCOUNT_IN_FLIGHT;
    return id;
}

static void record_lag(sched_pool *p, double lag)
{
    if (lag < 0)
        lag = 0;
    p->lag.count++;
    p->lag.sum += lag;
    for (size_t i = 0; i < SCHED_LAG_BUCKETS; i++)
        if (lag <= sched_lag_bounds[i]) {
            p->lag.buckets[i]++;
            break;
        }
}

int64_t scheduler_next(scheduler *s, double now, double *wake_at)
{
    double wake = HUGE_VAL;
    for (unsigned i = 0; i < s->n_pools; i++) {
        unsigned index = (s->next_pool + i) % s->n_pools;
        sched_pool *p = &s->pools[index];
        if (p->heap_len == 0)
            continue;
        double ready = fmax(pool_ready_at(p, now), p->heap[0].due);
        if (ready <= now) {
            s->next_pool = (index + 1) % s->n_pools;
            *wake_at = now;
            record_lag(p, now - p->heap[0].due);
            return start_poll(s, p);
        }
        wake = fmin(wake, ready);
    }
    *wake_at = wake;
    return -1;
}

/* ==================================================================== Results */

static void breaker_record(sched_pool *p, sched_result result, double now)
{
    if (result == SCHED_OK) {
        p->consecutive_failures = 0;
        p->breaker = BREAKER_CLOSED;
        p->probe_delay = SCHED_BREAKER_PROBE_MIN;
        return;
    }
    if (result == SCHED_FAIL && p->breaker == BREAKER_PROBING) {
        /* The probe got an answer (a 2xx the script refused for this wallet): the pool is
         * reachable again. Staying half-open here would never send another request. */
        p->consecutive_failures = 0;
        p->breaker = BREAKER_CLOSED;
        p->probe_delay = SCHED_BREAKER_PROBE_MIN;
        return;
    }
    if (result != SCHED_POOL_FAIL)
        return;
    p->consecutive_failures++;
    if (p->breaker == BREAKER_PROBING) {
        p->probe_delay = fmin(p->probe_delay * 2, SCHED_BREAKER_PROBE_MAX);
        p->breaker = BREAKER_OPEN;
        p->probe_at = now + p->probe_delay;
    } else if (p->breaker == BREAKER_CLOSED &&
               p->consecutive_failures >= SCHED_BREAKER_THRESHOLD) {
        p->breaker = BREAKER_OPEN;
        p->probe_at = now + p->probe_delay;
    }
}

static void reschedule(scheduler *s, sched_account *a, sched_pool *p, sched_result result,
                       double now)
{
    double interval = effective_interval(s, p);
    if (result == SCHED_OK) {
        a->failures = 0;
        a->slot += interval;
        if (a->slot < now)
            a->slot = now; /* fell behind (pause, breaker): resume, do not catch up in a burst */
        a->due = a->slot;
        return;
    }
    if (a->failures < 255)
        a->failures++;
    int doublings = a->failures - 1 < MAX_BACKOFF_DOUBLINGS ? a->failures - 1
                                                            : MAX_BACKOFF_DOUBLINGS;
    double delay = interval * (double)(1 << doublings) * (0.75 + 0.5 * random_unit(s));
    a->slot = a->due = now + delay;
}

void scheduler_done(scheduler *s, uint32_t id, double now, sched_result result,
                    double retry_after)
{
    if (id >= s->accounts_cap || !(s->accounts[id].flags & ACCOUNT_IN_FLIGHT))
        return;
    sched_account *a = &s->accounts[id];
    sched_pool *p = &s->pools[a->pool];
    a->flags &= (uint8_t)~ACCOUNT_IN_FLIGHT;
    p->in_flight--;
    s->in_flight--;
    if (result == SCHED_NOT_POLLED && p->breaker == BREAKER_PROBING)
        p->breaker = BREAKER_OPEN;
    else
        breaker_record(p, result, now);
    if (retry_after > 0)
        p->paused_until = fmax(p->paused_until, now + fmin(retry_after, MAX_PAUSE));
    if (!(a->flags & ACCOUNT_ACTIVE))
        return; /* removed while in flight */
    if (result != SCHED_NOT_POLLED)
        reschedule(s, a, p, result, now);
    if (retry_after > 0)
        a->due = fmax(a->due, p->paused_until);
    heap_push(s, id);
}

/* ==================================================================== Status */

void scheduler_pool_status(const scheduler *s, unsigned pool, sched_pool_status *out)
{
    memset(out, 0, sizeof *out);
    if (pool >= s->n_pools)
        return;
    const sched_pool *p = &s->pools[pool];
    out->accounts = p->accounts;
    out->queued = p->heap_len;
    out->in_flight = p->in_flight;
    out->effective_interval = effective_interval(s, p);
    out->breaker = p->breaker;
    out->paused_until = p->paused_until;
    out->max_interval = p->limits.max_interval > 0 ? p->limits.max_interval : 0;
    out->capacity = capacity_of(s, p);
    out->exceeds_max = p->accounts > out->capacity;
    out->base_interval = s->base_interval;
    out->min_interval = p->limits.interval;
    out->per_second = p->limits.per_second;
    out->consecutive_failures = p->consecutive_failures;
    out->probe_at = p->breaker == BREAKER_OPEN ? p->probe_at : 0;
}

void scheduler_account_status(const scheduler *s, uint32_t account, sched_account_status *out)
{
    memset(out, 0, sizeof *out);
    if (account >= s->accounts_cap)
        return;
    const sched_account *a = &s->accounts[account];
    if (!(a->flags & ACCOUNT_ACTIVE))
        return;
    out->known = true;
    out->in_flight = (a->flags & ACCOUNT_IN_FLIGHT) != 0;
    out->due = a->due;
    out->failures = a->failures;
}

void scheduler_pool_lag(const scheduler *s, unsigned pool, sched_lag *out)
{
    memset(out, 0, sizeof *out);
    if (pool < s->n_pools)
        *out = s->pools[pool].lag;
}

size_t scheduler_in_flight(const scheduler *s) { return s->in_flight; }

size_t scheduler_queued(const scheduler *s)
{
    size_t n = 0;
    for (unsigned i = 0; i < s->n_pools; i++)
        n += s->pools[i].heap_len;
    return n;
}

size_t scheduler_drain(scheduler *s, unsigned pool, uint32_t *out, size_t max)
{
    if (pool >= s->n_pools)
        return 0;
    sched_pool *p = &s->pools[pool];
    size_t n = 0;
    while (p->heap_len > 0 && n < max) {
        uint32_t id = p->heap[0].id;
        out[n++] = id;
        scheduler_remove(s, id);
    }
    return n;
}
