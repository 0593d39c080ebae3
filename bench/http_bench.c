/* http_bench: the engine's HTTP layer alone (engine/http.c: libcurl multi on libev), without
 * the scheduler, the poller or any Lua. It sends N requests for the cpu-pool endpoint, keeping
 * C in flight like `m2p-engine --once` with concurrency C does (a new request starts from the
 * completion callback of the previous one), with the engine's request: the same URL form
 * (wallet(i) of bench/bench.py as the query string) and the same `Accept` header.
 *
 *   usage: http_bench URL N C     e.g. http_bench http://127.0.0.1:PORT/api/worker_stats 100000 64
 *
 * Prints one JSON line: requests, seconds, per_second, cpu_seconds (this process, user+system),
 * cpu_user, cpu_system. bench/run.sh runs it pinned like the engine and reports it beside the
 * engine and wrk: the difference between this and the engine is what the rest of a poll costs.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "http.h"

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void b62(unsigned long long x, int digits, char *out)
{
    for (int k = digits - 1; k >= 0; k--) {
        out[k] = B62[x % 62];
        x /= 62;
    }
}

/* wallet() of bench/bench.py and bench/wrk-wallets.lua: 34 characters. */
static void wallet(unsigned long long i, char out[35])
{
    const unsigned long long m8 = 218340105584896ULL; /* 62^8 */
    out[0] = 'A';
    b62((i * 2654435761ULL) % m8, 8, out + 1);
    b62((i * 40503ULL + 7) % m8, 8, out + 9);
    b62((i * 7919ULL) % m8, 8, out + 17);
    b62(i, 9, out + 25);
    out[34] = '\0';
}

static struct {
    struct ev_loop *loop;
    http_client *client;
    const char *base;
    long n, started, done, failed;
} g;

static void start_one(void);

static void on_done(void *user, const http_response *r)
{
    (void)user;
    g.done++;
    if (!r->ok || r->status != 200)
        g.failed++;
    if (g.started < g.n)
        start_one();
    else if (g.done == g.n)
        ev_break(g.loop, EVBREAK_ALL);
}

static void start_one(void)
{
    char w[35], url[1024];
    wallet((unsigned long long)(g.started % g.n) + 1, w);
    snprintf(url, sizeof url, "%s?%s", g.base, w);
    static const char *const headers[] = {"Accept: application/json"};
    http_request req = {url, headers, 1, NULL, NULL};
    g.started++;
    if (http_get(g.client, &req, on_done, NULL) != 0) {
        fprintf(stderr, "http_bench: http_get failed\n");
        exit(1);
    }
}

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv)
{
    if (argc != 4 || atol(argv[2]) < 1 || atol(argv[3]) < 1) {
        fprintf(stderr, "usage: http_bench URL N C\n");
        return 2;
    }
    g.base = argv[1];
    g.n = atol(argv[2]);
    long c = atol(argv[3]);
    g.loop = EV_DEFAULT;
    if (http_global_init() != 0)
        return 1;
    http_options o;
    http_options_defaults(&o);
    g.client = http_client_new(g.loop, &o);
    struct timespec t0, t1;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < c && g.started < g.n; i++)
        start_one();
    ev_run(g.loop, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &r1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double user = seconds(r1.ru_utime) - seconds(r0.ru_utime);
    double sys = seconds(r1.ru_stime) - seconds(r0.ru_stime);
    printf("{\"requests\": %ld, \"failed\": %ld, \"seconds\": %.3f, \"per_second\": %.1f, "
           "\"cpu_seconds\": %.3f, \"cpu_user\": %.3f, \"cpu_system\": %.3f}\n",
           g.done, g.failed, wall, (double)g.done / wall, user + sys, user, sys);
    http_client_free(g.client);
    http_global_cleanup();
    return g.failed ? 1 : 0;
}
