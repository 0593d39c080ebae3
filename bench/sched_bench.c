/* sched_bench: the scheduler alone (engine/poll/scheduler.c) at N accounts, to see how its
 * cost per poll grows with N. No HTTP, no Lua, no real time: a simulated clock, one pool with
 * concurrency C, every poll taking LATENCY simulated seconds and succeeding, like the engine's
 * service mode on a healthy pool (or, with --once, every account due at once, like --once).
 *
 *   usage: sched_bench N [CYCLES] [--once]     e.g. sched_bench 1000000 2
 *
 * It first runs one whole cycle (every account polled once: the heap reaches its steady
 * shape), then measures CYCLES more cycles in measured_polls() and prints one JSON line:
 * accounts, polls, seconds (CPU), ns_per_poll. CPU time is noisy on a shared machine; for
 * exact counts run it under valgrind and count only measured_polls():
 *
 *   valgrind --tool=callgrind --cache-sim=yes --toggle-collect=measured_polls \
 *       build/bench/sched_bench 1000000 1
 *
 * (instructions and simulated cache misses per poll = the totals / polls).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler.h"

#define INTERVAL 60.0
#define LATENCY 0.002
#define CONCURRENCY 64

typedef struct bench {
    scheduler *s;
    double now;
    uint32_t flight[CONCURRENCY];
    double done_at[CONCURRENCY];
    size_t head, n_flight; /* a FIFO: every poll takes the same time */
    bool once;
} bench;

/* One step of the simulated loop: start what may start, else finish the oldest poll or jump
 * the clock to the next due time. Returns whether a poll finished. */
static bool step(bench *b)
{
    double wake;
    int64_t id;
    while (b->n_flight < CONCURRENCY && (id = scheduler_next(b->s, b->now, &wake)) >= 0) {
        size_t tail = (b->head + b->n_flight++) % CONCURRENCY;
        b->flight[tail] = (uint32_t)id;
        b->done_at[tail] = b->now + LATENCY;
    }
    if (b->n_flight == 0 || (b->n_flight < CONCURRENCY && wake < b->done_at[b->head])) {
        b->now = wake;
        return false;
    }
    b->now = fmax(b->now, b->done_at[b->head]);
    scheduler_done(b->s, b->flight[b->head], b->now, SCHED_OK, 0);
    if (b->once) /* --once: the poller removes a polled account, then adds it again */
        scheduler_add_at(b->s, b->flight[b->head], 0, b->now);
    b->head = (b->head + 1) % CONCURRENCY;
    b->n_flight--;
    return true;
}

static void run_polls(bench *b, unsigned long long polls)
{
    for (unsigned long long done = 0; done < polls;)
        done += step(b);
}

/* Not inlined: valgrind's --toggle-collect names it. */
__attribute__((noinline)) void measured_polls(bench *b, unsigned long long polls)
{
    run_polls(b, polls);
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sched_bench N [CYCLES] [--once]\n");
        return 2;
    }
    char *end;
    unsigned long n = strtoul(argv[1], &end, 10);
    unsigned long cycles = argc > 2 && argv[2][0] != '-' ? strtoul(argv[2], NULL, 10) : 2;
    bench b = {.once = argc > 2 && strcmp(argv[argc - 1], "--once") == 0};
    if (*end || n == 0 || n > 50000000 || cycles == 0 || cycles > 1000) {
        fprintf(stderr, "sched_bench: N must be 1..50000000 and CYCLES 1..1000\n");
        return 2;
    }
    b.s = scheduler_new(INTERVAL, 42);
    scheduler_set_pool(b.s, 0, &(sched_pool_limits){.concurrency = CONCURRENCY});
    for (uint32_t i = 0; i < n; i++) {
        if (b.once)
            scheduler_add_at(b.s, i, 0, 0);
        else
            scheduler_add(b.s, i, 0, 0);
    }
    run_polls(&b, n); /* the first cycle */
    unsigned long long polls = (unsigned long long)n * cycles;
    double t0 = cpu_seconds();
    measured_polls(&b, polls);
    double seconds = cpu_seconds() - t0;
    printf("{\"accounts\":%lu,\"polls\":%llu,\"once\":%s,\"seconds\":%.3f,\"ns_per_poll\":%.1f}\n",
           n, polls, b.once ? "true" : "false", seconds, 1e9 * seconds / (double)polls);
    scheduler_free(b.s);
    return 0;
}
