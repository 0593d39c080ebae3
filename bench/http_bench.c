/* http_bench: the engine's HTTP layer alone (engine/http.c: libcurl multi on libev), without
 * the scheduler, the poller or any Lua. It sends N requests for the cpu-pool endpoint, keeping
 * C in flight like `m2p-engine --once` with concurrency C does (a new request starts from the
 * completion callback of the previous one), with the engine's request: the same URL form
 * (wallet(i) of bench/bench.py as the query string) and the same `Accept` header.
 *
 *   usage: http_bench URL N C     e.g. http_bench http://127.0.0.1:PORT/api/worker_stats 100000 64
 *   (HTTP_CLIENT=libcurl in the environment: every request through libcurl, as the setting)
 *
 * Prints one JSON line: requests, seconds, per_second, cpu_seconds (this process, user+system),
 * cpu_user, cpu_system. bench/run.sh runs it pinned like the engine and reports it beside the
 * engine and wrk: the difference between this and the engine is what the rest of a poll costs.
 */
#include <ev.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "http.h"

static const char BASE58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* wallet() of bench/bench.py and bench/wrk-wallets.lua: a checksum-valid ADVC address, version
 * 23, payload = the first 20 bytes of SHA-256("m2p-bench-<i>"), checksum = the first 4 bytes of
 * SHA-256(SHA-256(version + payload)); always 34 base58 characters for version 23. */
static void wallet(unsigned long long i, char out[35])
{
    unsigned char raw[25], digest[SHA256_DIGEST_LENGTH], twice[SHA256_DIGEST_LENGTH];
    char seed[40];
    int len = snprintf(seed, sizeof seed, "m2p-bench-%llu", i);
    SHA256((const unsigned char *)seed, (size_t)len, digest);
    raw[0] = 23;
    memcpy(raw + 1, digest, 20);
    SHA256(raw, 21, digest);
    SHA256(digest, sizeof digest, twice);
    memcpy(raw + 21, twice, 4);
    /* Base58: repeated long division of the 25 big-endian bytes by 58, least significant
     * digit first into out[33..0]. */
    for (int k = 33; k >= 0; k--) {
        unsigned rem = 0;
        for (size_t b = 0; b < sizeof raw; b++) {
            unsigned v = rem * 256 + raw[b];
            raw[b] = (unsigned char)(v / 58);
            rem = v % 58;
        }
        out[k] = BASE58[rem];
    }
    out[34] = '\0';
}

static struct {
    struct ev_loop *loop;
    http_client *client;
    const char *base;
    char (*wallets)[35]; /* computed before the clock starts, like the engine's accounts file */
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
    char url[1024];
    snprintf(url, sizeof url, "%s?%s", g.base, g.wallets[g.started % g.n]);
    static const char *const headers[] = {"Accept: application/json"};
    http_request req = {.url = url, .headers = headers, .n_headers = 1};
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
    g.wallets = malloc((size_t)g.n * sizeof *g.wallets);
    if (!g.wallets)
        return 1;
    for (long i = 0; i < g.n; i++)
        wallet((unsigned long long)i + 1, g.wallets[i]);
    g.loop = EV_DEFAULT;
    if (http_global_init() != 0)
        return 1;
    http_options o;
    http_options_defaults(&o);
    /* HTTP_CLIENT=libcurl: the engine's setting of that name, to compare the two clients. */
    const char *which = getenv("HTTP_CLIENT");
    o.libcurl_only = which && strcmp(which, "libcurl") == 0;
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
    free(g.wallets);
    return g.failed ? 1 : 0;
}
