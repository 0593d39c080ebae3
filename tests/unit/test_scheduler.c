/* The scheduler under a simulated clock: spread and cadence, per-pool rate limits, isolation
 * of a failing pool, backoff, circuit breaking and recovery, Retry-After. Deterministic: no
 * real time is involved. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "scheduler.h"

#define MAX_POLLS 200000

/* What a simulated pool does with a poll: how long it takes and how it ends. */
typedef struct fake_pool {
    double latency;
    sched_result result;
    double retry_after;
} fake_pool;

typedef struct poll_record {
    uint32_t account;
    unsigned pool;
    double at;
} poll_record;

typedef struct sim {
    scheduler *s;
    fake_pool pools[4];
    unsigned account_pool[4096];
    poll_record polls[MAX_POLLS];
    size_t n_polls;
    struct { uint32_t account; double done_at; } flight[4096];
    size_t n_flight;
    double now;
} sim;

static void sim_run_until(sim *m, double end)
{
    while (m->now < end) {
        double wake;
        int64_t id;
        while ((id = scheduler_next(m->s, m->now, &wake)) >= 0) {
            unsigned pool = m->account_pool[id];
            if (m->n_polls < MAX_POLLS)
                m->polls[m->n_polls++] = (poll_record){(uint32_t)id, pool, m->now};
            m->flight[m->n_flight].account = (uint32_t)id;
            m->flight[m->n_flight++].done_at = m->now + m->pools[pool].latency;
        }
        double next = fmin(wake, end);
        for (size_t i = 0; i < m->n_flight; i++)
            next = fmin(next, m->flight[i].done_at);
        m->now = fmax(next, m->now);
        for (size_t i = 0; i < m->n_flight;) {
            if (m->flight[i].done_at <= m->now) {
                uint32_t id = m->flight[i].account;
                fake_pool *fp = &m->pools[m->account_pool[id]];
                scheduler_done(m->s, id, m->now, fp->result, fp->retry_after);
                m->flight[i] = m->flight[--m->n_flight];
            } else {
                i++;
            }
        }
        if (next >= end && m->n_flight == 0 && wake >= end)
            m->now = end;
    }
}

static sim *sim_new(double interval)
{
    sim *m = calloc(1, sizeof *m);
    m->s = scheduler_new(interval, 42);
    return m;
}

static void sim_add(sim *m, unsigned pool, uint32_t first, uint32_t count)
{
    for (uint32_t i = first; i < first + count; i++) {
        m->account_pool[i] = pool;
        scheduler_add(m->s, i, pool, m->now);
    }
}

static void sim_free(sim *m)
{
    scheduler_free(m->s);
    free(m);
}

static size_t polls_of_pool(const sim *m, unsigned pool, double from, double to)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_polls; i++)
        if (m->polls[i].pool == pool && m->polls[i].at >= from && m->polls[i].at < to)
            n++;
    return n;
}

/* Largest and smallest gap between consecutive polls of the same account in [from, to). */
static void gaps_of_pool(const sim *m, unsigned pool, double from, double *min_gap,
                         double *max_gap)
{
    double last[4096];
    for (int i = 0; i < 4096; i++)
        last[i] = -1;
    *min_gap = HUGE_VAL;
    *max_gap = 0;
    for (size_t i = 0; i < m->n_polls; i++) {
        const poll_record *p = &m->polls[i];
        if (p->pool != pool || p->at < from)
            continue;
        if (last[p->account] >= 0) {
            *min_gap = fmin(*min_gap, p->at - last[p->account]);
            *max_gap = fmax(*max_gap, p->at - last[p->account]);
        }
        last[p->account] = p->at;
    }
}

static void test_spread_and_cadence(void)
{
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){0});
    m->pools[0] = (fake_pool){.latency = 0.2, .result = SCHED_OK};
    sim_add(m, 0, 0, 1200);
    sim_run_until(m, 600);
    CHECK(m->n_polls >= 1200 * 10 - 1200 && m->n_polls <= 1200 * 10 + 1200,
          "expected ~12000 polls in 10 intervals, got %zu", m->n_polls);
    double lo, hi;
    gaps_of_pool(m, 0, 0, &lo, &hi);
    CHECK(lo >= 59.0 && hi <= 61.0, "each account once per interval: gaps %.2f..%.2f", lo, hi);
    /* No burst: 1200 accounts over 60 s is 20/s; no second may carry more than 3x that. */
    size_t worst = 0;
    for (int t = 0; t < 600; t++) {
        size_t n = polls_of_pool(m, 0, t, t + 1);
        worst = n > worst ? n : worst;
    }
    CHECK(worst <= 60, "burst of %zu polls in one second", worst);
    sim_free(m);
}

static void test_rate_limit_stretches_cycle(void)
{
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){.concurrency = 1, .per_second = 2});
    m->pools[0] = (fake_pool){.latency = 0.1, .result = SCHED_OK};
    sim_add(m, 0, 0, 300); /* 300 accounts at 2/s: a cycle needs 150 s, not 60 */
    sched_pool_status st;
    scheduler_pool_status(m->s, 0, &st);
    CHECK(fabs(st.effective_interval - 150) < 1e-9, "effective interval %.1f", st.effective_interval);
    sim_run_until(m, 900);
    for (int t = 0; t + 10 <= 900; t += 10) {
        size_t n = polls_of_pool(m, 0, t, t + 10);
        CHECK(n <= 21, "rate limit 2/s broken: %zu polls in [%d, %d)", n, t, t + 10);
    }
    double lo, hi;
    gaps_of_pool(m, 0, 0, &lo, &hi);
    CHECK(lo >= 149 && hi <= 152, "stretched cycle gaps %.2f..%.2f", lo, hi);
    sim_free(m);
}

static void test_failing_pool_isolated(void)
{
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){.concurrency = 8});
    scheduler_set_pool(m->s, 1, &(sched_pool_limits){.concurrency = 8});
    m->pools[0] = (fake_pool){.latency = 10, .result = SCHED_POOL_FAIL}; /* timeouts */
    m->pools[1] = (fake_pool){.latency = 0.2, .result = SCHED_OK};
    sim_add(m, 0, 0, 500);
    sim_add(m, 1, 500, 500);
    sim_run_until(m, 900);
    double lo, hi;
    gaps_of_pool(m, 1, 0, &lo, &hi);
    CHECK(lo >= 59 && hi <= 61, "healthy pool delayed by the failing one: gaps %.2f..%.2f", lo, hi);
    sched_pool_status st;
    scheduler_pool_status(m->s, 0, &st);
    CHECK(st.breaker != BREAKER_CLOSED, "breaker should be open");
    size_t late = polls_of_pool(m, 0, 300, 900);
    CHECK(late < 20, "open breaker still sent %zu requests in 10 minutes", late);
    /* Recovery: the fault goes away, the breaker closes, every account is polled again. */
    m->pools[0] = (fake_pool){.latency = 0.2, .result = SCHED_OK};
    size_t before = m->n_polls;
    sim_run_until(m, 900 + 300 + 60 * 16 * 1.25 + 60);
    scheduler_pool_status(m->s, 0, &st);
    CHECK(st.breaker == BREAKER_CLOSED, "breaker did not close after recovery");
    char seen[500] = {0};
    for (size_t i = before; i < m->n_polls; i++)
        if (m->polls[i].pool == 0)
            seen[m->polls[i].account] = 1;
    int missing = 0;
    for (int i = 0; i < 500; i++)
        missing += !seen[i];
    CHECK(missing == 0, "%d accounts of the recovered pool never polled again", missing);
    sim_free(m);
}

/* A probe answered with something the script refused for that wallet (an HTML page, a wrong
 * miner) still proves the pool reachable: the breaker must not stay half-open for ever. */
static void test_probe_with_account_failure_closes_breaker(void)
{
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){.concurrency = 4});
    m->pools[0] = (fake_pool){.latency = 0.1, .result = SCHED_POOL_FAIL};
    sim_add(m, 0, 0, 50);
    sim_run_until(m, 120);
    sched_pool_status st;
    scheduler_pool_status(m->s, 0, &st);
    CHECK(st.breaker != BREAKER_CLOSED, "breaker should be open");
    m->pools[0] = (fake_pool){.latency = 0.1, .result = SCHED_FAIL}; /* garbage answers */
    sim_run_until(m, 120 + SCHED_BREAKER_PROBE_MAX + 10);
    m->pools[0] = (fake_pool){.latency = 0.1, .result = SCHED_OK}; /* healthy again */
    size_t before = m->n_polls;
    sim_run_until(m, 120 + SCHED_BREAKER_PROBE_MAX + 10 + 60 * 16 * 1.25 + 60);
    CHECK(m->n_polls - before >= 50, "pool stuck after a probe failed for one account: %zu polls",
          m->n_polls - before);
    sim_free(m);
}

static void test_account_backoff(void)
{
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){0});
    m->pools[0] = (fake_pool){.latency = 0, .result = SCHED_FAIL};
    sim_add(m, 0, 0, 1);
    sim_run_until(m, 60 * 40);
    CHECK(m->n_polls >= 6, "only %zu polls", m->n_polls);
    for (size_t i = 1; i < m->n_polls && i < 7; i++) {
        double gap = m->polls[i].at - m->polls[i - 1].at;
        int doublings = (int)i - 1 < 4 ? (int)i - 1 : 4;
        double nominal = 60.0 * (1 << doublings);
        CHECK(gap >= nominal * 0.75 - 1e-9 && gap <= nominal * 1.25 + 1e-9,
              "failure %zu: gap %.1f, expected %.0f +-25%%", i, gap, nominal);
    }
    sim_free(m);
}

static void test_retry_after_pauses_pool(void)
{
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){.concurrency = 1});
    m->pools[0] = (fake_pool){.latency = 0.1, .result = SCHED_POOL_FAIL, .retry_after = 120};
    sim_add(m, 0, 0, 100);
    sim_run_until(m, 100);
    size_t first = polls_of_pool(m, 0, 0, 100);
    CHECK(first == 1, "Retry-After 120 s ignored: %zu requests in 100 s", first);
    sim_free(m);
}

static void test_remove_in_flight(void)
{
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){0});
    m->pools[0] = (fake_pool){.latency = 5, .result = SCHED_OK};
    sim_add(m, 0, 0, 1);
    double wake;
    int64_t id = scheduler_next(m->s, 60, &wake);
    CHECK(id == 0, "account not due");
    scheduler_remove(m->s, 0);
    scheduler_done(m->s, 0, 65, SCHED_OK, 0);
    CHECK(scheduler_next(m->s, 1000, &wake) == -1, "a removed account was polled");
    CHECK(scheduler_in_flight(m->s) == 0, "in-flight count leaked");
    sim_free(m);
}

/* An account removed and added again while its poll is in flight (a player row change, a
 * change of ownership, a reload) must not keep the old poll's slot: the poller drops that
 * poll's result without reporting it. With concurrency 1 a leaked slot stopped the pool for
 * good (zpool in the three-engine test). */
static void test_readd_in_flight_frees_the_slot(void)
{
    sim *m = sim_new(10);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){.concurrency = 1});
    sim_add(m, 0, 0, 2);
    double wake;
    int64_t id = scheduler_next(m->s, 20, &wake);
    CHECK(id >= 0, "no account due");
    scheduler_remove(m->s, (uint32_t)id);
    scheduler_add_at(m->s, (uint32_t)id, 0, 20);
    /* the old poll finishes unreported; both accounts must still be polled */
    int64_t again = scheduler_next(m->s, 20, &wake);
    CHECK(again >= 0, "the pool stopped after an account was added again while in flight");
    scheduler_done(m->s, (uint32_t)again, 21, SCHED_OK, 0);
    int64_t other = scheduler_next(m->s, 30, &wake);
    CHECK(other >= 0 && other != again, "the other account was never polled again");
    scheduler_done(m->s, (uint32_t)other, 31, SCHED_OK, 0);
    CHECK(scheduler_in_flight(m->s) == 0, "in-flight count leaked: %zu",
          scheduler_in_flight(m->s));
    sim_free(m);
}

/* zpool's case: one request per 65 s and payouts that stay listed for 24 h, of which the
 * pool script allows 20 h. 1107 accounts fit (1107 x 65 = 71955 s); with 1108 a round takes
 * 72020 s and the scheduler must say so. Simulated, the warning is the truth: below the
 * capacity no account waits longer than max_interval between two polls, above it some do. */
static void test_max_interval_capacity(void)
{
    sched_pool_limits zpool = {.concurrency = 1, .per_second = 1.0 / 65, .max_interval = 72000};
    for (int extra = 0; extra <= 1; extra++) {
        sim *m = sim_new(60);
        scheduler_set_pool(m->s, 0, &zpool);
        m->pools[0] = (fake_pool){.latency = 0.5, .result = SCHED_OK};
        uint32_t n = 1107 + (uint32_t)extra;
        sim_add(m, 0, 0, n);
        sched_pool_status st;
        scheduler_pool_status(m->s, 0, &st);
        CHECK(st.capacity == 1107, "capacity %zu, expected 1107 (72000 s / 65 s)", st.capacity);
        CHECK(st.max_interval == 72000, "max_interval %.0f", st.max_interval);
        CHECK(st.exceeds_max == (extra == 1), "%u accounts: exceeds_max %d", n, st.exceeds_max);
        sim_run_until(m, 3 * 72100.0);
        double lo, hi;
        gaps_of_pool(m, 0, 0, &lo, &hi);
        if (extra)
            CHECK(hi > 72000, "%u accounts: longest gap %.0f s should exceed 72000", n, hi);
        else
            CHECK(hi <= 72000, "%u accounts: longest gap %.0f s exceeds 72000", n, hi);
        sim_free(m);
    }
    /* Removing an account brings the pool back within its max_interval. */
    sim *m = sim_new(60);
    scheduler_set_pool(m->s, 0, &zpool);
    sim_add(m, 0, 0, 1108);
    scheduler_remove(m->s, 1107);
    sched_pool_status st;
    scheduler_pool_status(m->s, 0, &st);
    CHECK(!st.exceeds_max && st.accounts == 1107, "after a removal: %zu accounts, exceeds %d",
          st.accounts, st.exceeds_max);
    sim_free(m);
}

/* A base interval longer than max_interval cannot be met by any number of accounts; a pool
 * without max_interval, or without a rate limit, is never over it. */
static void test_max_interval_edges(void)
{
    sim *m = sim_new(7200);
    scheduler_set_pool(m->s, 0, &(sched_pool_limits){.max_interval = 3600});
    scheduler_set_pool(m->s, 1, &(sched_pool_limits){.per_second = 1});
    scheduler_set_pool(m->s, 2, &(sched_pool_limits){.per_second = 1, .max_interval = 10});
    sim_add(m, 0, 0, 1);
    sim_add(m, 1, 1, 4000);
    sched_pool_status st;
    scheduler_pool_status(m->s, 0, &st);
    CHECK(st.capacity == 0 && st.exceeds_max, "interval 7200 > max 3600: capacity %zu",
          st.capacity);
    scheduler_pool_status(m->s, 1, &st);
    CHECK(st.max_interval == 0 && st.capacity == SIZE_MAX && !st.exceeds_max,
          "no max_interval: capacity %zu exceeds %d", st.capacity, st.exceeds_max);
    scheduler_pool_status(m->s, 2, &st);
    CHECK(st.capacity == 0 && st.exceeds_max == false, "no accounts: exceeds %d", st.exceeds_max);
    scheduler_set_base_interval(m->s, 5);
    scheduler_pool_status(m->s, 2, &st);
    CHECK(st.capacity == 10, "10 s at 1/s: capacity %zu (an exact product must not round down)",
          st.capacity);
    scheduler_set_pool(m->s, 3, &(sched_pool_limits){.max_interval = 100});
    sim_add(m, 3, 4001, 50);
    scheduler_pool_status(m->s, 3, &st);
    CHECK(st.capacity == SIZE_MAX && !st.exceeds_max, "no rate limit: capacity %zu exceeds %d",
          st.capacity, st.exceeds_max);
    sim_free(m);
}

/* now - due when scheduler_next hands an account out, per pool: on time, held back by the
 * concurrency cap, and long overdue. */
static void test_lag_histogram(void)
{
    scheduler *s = scheduler_new(60, 1);
    scheduler_set_pool(s, 0, &(sched_pool_limits){.concurrency = 1});
    scheduler_set_pool(s, 1, &(sched_pool_limits){0});
    for (uint32_t id = 0; id < 3; id++)
        scheduler_add_at(s, id, 0, 10);
    double wake;
    int64_t a = scheduler_next(s, 10, &wake);
    CHECK(a >= 0 && scheduler_next(s, 10, &wake) < 0, "concurrency 1: one poll at a time");
    scheduler_done(s, (uint32_t)a, 12, SCHED_OK, 0);
    int64_t b = scheduler_next(s, 12, &wake); /* due at 10, started at 12: 2 s late */
    scheduler_done(s, (uint32_t)b, 13, SCHED_OK, 0);
    int64_t c = scheduler_next(s, 400, &wake); /* 390 s late */
    CHECK(b >= 0 && c >= 0, "every account started");
    sched_lag lag;
    scheduler_pool_lag(s, 0, &lag);
    CHECK(lag.count == 3 && fabs(lag.sum - 392) < 1e-9, "count %llu sum %g",
          (unsigned long long)lag.count, lag.sum);
    CHECK(lag.buckets[0] == 1, "on time: first bucket (%llu)", (unsigned long long)lag.buckets[0]);
    CHECK(sched_lag_bounds[5] == 5 && lag.buckets[5] == 1, "2 s late: the 5 s bucket");
    CHECK(sched_lag_bounds[9] == 900 && lag.buckets[9] == 1, "390 s late: the 900 s bucket");
    scheduler_pool_lag(s, 1, &lag);
    CHECK(lag.count == 0, "another pool's lag is its own");
    scheduler_pool_lag(s, 7, &lag);
    CHECK(lag.count == 0, "a pool never set has none");
    scheduler_free(s);
}

/* The heap at a size with many levels, under arbitrary removals and re-adds (which sift up as
 * well as down from the middle): every queued account comes out once, in due order. */
static void test_heap_order_many(void)
{
    enum { N = 5000 };
    static double due[N];
    static bool queued[N], seen[N];
    scheduler *s = scheduler_new(60, 7);
    scheduler_set_pool(s, 0, &(sched_pool_limits){.concurrency = N});
    uint64_t x = 88172645463325252ULL;
    for (uint32_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        due[i] = (double)(x % 1000000) / 1000.0; /* ties happen: order among them is free */
        scheduler_add_at(s, i, 0, due[i]);
        queued[i] = true;
    }
    for (uint32_t i = 0; i < N; i += 3) {
        if (i % 2) {
            scheduler_remove(s, i);
            queued[i] = false;
        } else {
            due[i] = 1000.0 - due[i]; /* again, elsewhere in the order */
            scheduler_add_at(s, i, 0, due[i]);
        }
    }
    size_t expected = 0;
    for (uint32_t i = 0; i < N; i++)
        expected += queued[i];
    CHECK(scheduler_queued(s) == expected, "%zu queued, expected %zu", scheduler_queued(s),
          expected);
    double last = -1, wake;
    size_t out = 0, disorder = 0, wrong = 0;
    int64_t id;
    while ((id = scheduler_next(s, 2000.0, &wake)) >= 0) {
        if (!queued[id] || seen[id])
            wrong++;
        seen[id] = true;
        disorder += due[id] < last;
        last = due[id];
        out++;
    }
    CHECK(out == expected, "%zu accounts came out, expected %zu", out, expected);
    CHECK(wrong == 0, "%zu removed or repeated accounts came out", wrong);
    CHECK(disorder == 0, "%zu accounts came out before an earlier one", disorder);
    scheduler_free(s);
}

int main(void)
{
    test_spread_and_cadence();
    test_rate_limit_stretches_cycle();
    test_failing_pool_isolated();
    test_account_backoff();
    test_probe_with_account_failure_closes_breaker();
    test_retry_after_pauses_pool();
    test_remove_in_flight();
    test_readd_in_flight_frees_the_slot();
    test_max_interval_capacity();
    test_max_interval_edges();
    test_lag_histogram();
    test_heap_order_many();
    return check_summary();
}
