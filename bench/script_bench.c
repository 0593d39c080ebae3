/* script_bench: the scripting path alone, JIT off (what the engine runs) vs JIT on.
 *
 * The engine switches LuaJIT's compiler off so the instruction budget's count hook always
 * fires (engine/script/script.c). This measures what that costs on the real per-poll work: the
 * shipped pools/cpu-pool.lua and scripts/{convert,rewards}.lua through script_request_build()
 * and script_poll(), on a cpu-pool response recorded from the simulator (tests/sim, wallet
 * below, after two hours of sim time). Same runtime options as the engine's defaults except
 * unsafe_allow_jit.
 *
 * Cases, each run for --seconds of CPU time (in 5 rounds alternating JIT off and on, median
 * round kept) after a warm-up:
 *   poll, steady state    the account's state is the one this same response produced: paid
 *                         unchanged, no award (almost every poll in production)
 *   poll, award           state from the previous snapshot (paid 640.55...), response paid
 *                         644.95...: one award per call
 *   poll, first           no state yet (an account's first poll)
 *   request build         script_request_build() for the wallet
 *
 *   usage: script_bench [--seconds S] [--pools DIR] [--scripts DIR] [--json]
 * Run from the repository root (defaults: pools, scripts). bench/run.sh runs it pinned to one
 * CPU and puts the numbers in its report; docs/performance.md explains them.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "script.h"

static const char WALLET[] = "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY";

/* GET /api/worker_stats?<WALLET> from m2p-sim (seed 1) at sim time 7200 s ... */
static const char BODY[] =
    "{\"miner\":\"AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY\",\"totalHash\":84521,\"totalShares\":6085512,"
    "\"networkSols\":0,\"immature\":0.05846976,\"balance\":0.11693954,\"paid\":644.95309555,"
    "\"workers\":{\"AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY.rig1\":{\"name\":"
    "\"AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY.rig1\",\"shares\":6085512,\"invalidshares\":0,"
    "\"hashrate\":84521,\"hashrateString\":\"84.52 KH\"}},\"history\":{}}";

/* ... and 30 s earlier (one payout less). */
static const char BODY_BEFORE[] =
    "{\"miner\":\"AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY\",\"totalHash\":84521,\"totalShares\":6060155,"
    "\"networkSols\":0,\"immature\":1.28079179,\"balance\":2.56158360,\"paid\":640.55006798,"
    "\"workers\":{\"AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY.rig1\":{\"name\":"
    "\"AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY.rig1\",\"shares\":6060155,\"invalidshares\":0,"
    "\"hashrate\":84521,\"hashrateString\":\"84.52 KH\"}},\"history\":{}}";

/* The headers the simulator sends (libcurl hands the engine lower-cased names). */
static const char *const HEADER_NAMES[] = {"date", "content-type", "content-length"};
static const char *const HEADER_VALUES[] = {"Tue, 24 Nov 2026 00:03:35 GMT", "application/json",
                                            "363"};

typedef enum { CASE_STEADY, CASE_AWARD, CASE_FIRST, CASE_REQUEST, CASE_COUNT } case_kind;
static const char *const CASE_NAMES[CASE_COUNT] = {
    "script_poll, steady state (no award)", "script_poll, award",
    "script_poll, first observation", "script_request_build"};

typedef struct bench {
    script_runtime *rt;
    int pool;
    char *steady_state; /* state_json after BODY */
    char *before_state; /* state_json after BODY_BEFORE */
} bench;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static script_response response_of(const char *body)
{
    return (script_response){200, HEADER_NAMES, HEADER_VALUES, 3, body, strlen(body)};
}

/* One poll of `body` with `state`; returns the new state (malloc'd) or exits on failure. */
static char *poll_once(bench *b, const char *state, const char *body, size_t want_awards)
{
    script_account a = {1, "player1", WALLET, state};
    script_response r = response_of(body);
    poll_outcome out;
    if (script_poll(b->rt, b->pool, &a, &r, &out) != 0) {
        fprintf(stderr, "script_bench: poll failed: %s\n", out.error);
        exit(1);
    }
    if (out.n_awards != want_awards) {
        fprintf(stderr, "script_bench: expected %zu award(s), got %zu\n", want_awards,
                out.n_awards);
        exit(1);
    }
    char *next = out.state_json;
    out.state_json = NULL;
    poll_outcome_clear(&out);
    return next;
}

static void run_one(bench *b, case_kind k)
{
    switch (k) {
    case CASE_STEADY:
        free(poll_once(b, b->steady_state, BODY, 0));
        break;
    case CASE_AWARD:
        free(poll_once(b, b->before_state, BODY, 1));
        break;
    case CASE_FIRST:
        free(poll_once(b, NULL, BODY, 0));
        break;
    case CASE_REQUEST: {
        script_request req;
        char err[512];
        if (script_request_build(b->rt, b->pool, WALLET, &req, err, sizeof err) != 0) {
            fprintf(stderr, "script_bench: request failed: %s\n", err);
            exit(1);
        }
        script_request_clear(&req);
        break;
    }
    default:
        break;
    }
}

typedef struct result {
    double per_second, us, wall_per_second;
    long long calls;
} result;

/* Calls the case in batches until `seconds` of this thread's CPU time have passed. */
static result measure(bench *b, case_kind k, double seconds)
{
    for (int i = 0; i < 500; i++) /* warm-up: lets the JIT (when on) compile its traces */
        run_one(b, k);
    long long calls = 0;
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC), c1;
    do {
        for (int i = 0; i < 500; i++)
            run_one(b, k);
        calls += 500;
        c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    } while (c1 - c0 < seconds);
    double w1 = clock_s(CLOCK_MONOTONIC);
    result r = {(double)calls / (c1 - c0), 1e6 * (c1 - c0) / (double)calls,
                (double)calls / (w1 - w0), calls};
    return r;
}

#define ROUNDS 5

static int by_rate(const void *a, const void *b)
{
    double x = ((const result *)a)->per_second, y = ((const result *)b)->per_second;
    return (x > y) - (x < y);
}

static result median(result *rounds)
{
    qsort(rounds, ROUNDS, sizeof *rounds, by_rate);
    return rounds[ROUNDS / 2];
}

static void bench_open(bench *b, const char *pools, const char *scripts, bool jit)
{
    script_options o;
    script_options_defaults(&o);
    o.pools_dir = pools;
    o.scripts_dir = scripts;
    o.unsafe_allow_jit = jit;
    char err[1024];
    b->rt = script_runtime_new(&o, err, sizeof err);
    if (!b->rt) {
        fprintf(stderr, "script_bench: %s\n", err);
        exit(1);
    }
    for (size_t i = 0; i < script_load_error_count(b->rt); i++)
        fprintf(stderr, "script_bench: load error: %s\n", script_load_error(b->rt, i));
    b->pool = script_pool_find(b->rt, "cpu-pool");
    if (b->pool < 0) {
        fprintf(stderr, "script_bench: no cpu-pool pool in %s\n", pools);
        exit(1);
    }
    b->steady_state = poll_once(b, NULL, BODY, 0);
    b->before_state = poll_once(b, NULL, BODY_BEFORE, 0);
}

static void bench_close(bench *b)
{
    free(b->steady_state);
    free(b->before_state);
    script_runtime_free(b->rt);
}

int main(int argc, char **argv)
{
    double seconds = 3;
    const char *pools = "pools", *scripts = "scripts";
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--pools") == 0 && i + 1 < argc)
            pools = argv[++i];
        else if (strcmp(argv[i], "--scripts") == 0 && i + 1 < argc)
            scripts = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "usage: script_bench [--seconds S] [--pools DIR] [--scripts DIR] "
                            "[--json]\n");
            return 2;
        }
    }
    if (seconds <= 0)
        seconds = 3;
    log_configure(LOG_WARNING, LOG_FORMAT_TEXT, stderr);

    /* Both runtimes live side by side and take turns, ROUNDS times per case, so a change in
     * the machine's speed during the run (other tenants, frequency) hits both alike; each
     * number is the median round. */
    bench b[2];
    for (int jit = 0; jit < 2; jit++)
        bench_open(&b[jit], pools, scripts, jit != 0);
    result res[2][CASE_COUNT];
    for (int k = 0; k < CASE_COUNT; k++) {
        result rounds[2][ROUNDS];
        for (int r = 0; r < ROUNDS; r++)
            for (int jit = 0; jit < 2; jit++)
                rounds[jit][r] = measure(&b[jit], (case_kind)k, seconds / ROUNDS);
        for (int jit = 0; jit < 2; jit++)
            res[jit][k] = median(rounds[jit]);
    }
    size_t memory[2];
    for (int jit = 0; jit < 2; jit++) {
        memory[jit] = script_memory_used(b[jit].rt);
        bench_close(&b[jit]);
    }

    if (json) {
        printf("{\"seconds\": %g, \"body_bytes\": %zu, \"lua_memory_bytes\": [%zu, %zu], "
               "\"cases\": [",
               seconds, strlen(BODY), memory[0], memory[1]);
        for (int k = 0; k < CASE_COUNT; k++)
            printf("%s{\"name\": \"%s\", \"off_per_second\": %.1f, \"off_us\": %.3f, "
                   "\"off_calls\": %lld, \"off_wall_per_second\": %.1f, \"on_per_second\": "
                   "%.1f, \"on_us\": %.3f, \"on_calls\": %lld, \"on_wall_per_second\": %.1f}",
                   k ? ", " : "", CASE_NAMES[k], res[0][k].per_second, res[0][k].us,
                   res[0][k].calls, res[0][k].wall_per_second, res[1][k].per_second,
                   res[1][k].us, res[1][k].calls, res[1][k].wall_per_second);
        printf("]}\n");
        return 0;
    }
    printf("script_bench: %zu-byte cpu-pool response, %.1f s of CPU per case\n\n", strlen(BODY),
           seconds);
    printf("%-38s %22s %22s %7s\n", "case", "JIT off (engine)", "JIT on", "on/off");
    for (int k = 0; k < CASE_COUNT; k++)
        printf("%-38s %9.0f/s (%6.1f us) %9.0f/s (%6.1f us) %6.2fx\n", CASE_NAMES[k],
               res[0][k].per_second, res[0][k].us, res[1][k].per_second, res[1][k].us,
               res[1][k].per_second / res[0][k].per_second);
    return 0;
}
