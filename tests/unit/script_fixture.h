/* The scripting runtime's test setup, shared by the unit tests that load pool scripts into the
 * engine's own runtime (test_script.c, test_script_hostile.c): a private pools directory, pool
 * scripts written into it, a runtime over it with the repository's scripts/ rules, and one
 * poll of a pool. Include after check.h. */
#ifndef M2P_TEST_SCRIPT_FIXTURE_H
#define M2P_TEST_SCRIPT_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "script.h"

static char pools_dir[256];
static const char *WALLET = "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy";

/* Creates the private pools directory; false (and a message) if it cannot. */
static inline bool fixture_init(const char *tag)
{
    snprintf(pools_dir, sizeof pools_dir, "/tmp/m2p-%s-XXXXXX", tag);
    if (mkdtemp(pools_dir))
        return true;
    perror("mkdtemp");
    return false;
}

static inline void write_pool_bytes(const char *name, const char *source, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.lua", pools_dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(source, 1, len, f);
    fclose(f);
}

static inline void write_pool(const char *name, const char *source)
{
    write_pool_bytes(name, source, strlen(source));
}

static inline void remove_pools(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -f %s/*.lua", pools_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* A runtime over the pools directory; 0 keeps the default budget / memory ceiling. */
static inline script_runtime *load(long long budget, size_t memory, bool jit)
{
    script_options o;
    script_options_defaults(&o);
    o.pools_dir = pools_dir;
    o.scripts_dir = "scripts";
    if (budget)
        o.instruction_budget = budget;
    if (memory)
        o.memory_limit_bytes = memory;
    o.unsafe_allow_jit = jit;
    char err[1024];
    script_runtime *rt = script_runtime_new(&o, err, sizeof err);
    CHECK(rt != NULL, "runtime: %s", err);
    return rt;
}

/* A pool whose parse runs `body` (Lua statements) and then returns a valid observation. */
static inline void write_parse_pool(const char *name, const char *body)
{
    char src[8192];
    snprintf(src, sizeof src,
             "return { currency = 'ADVC',\n"
             "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
             "  parse = function(r)\n%s\n  return { paid = 1 } end }\n",
             body);
    write_pool(name, src);
}

/* One poll of pool `name` with `body` (len bytes) and the account's stored state (NULL: none);
 * returns the error (static) or NULL, and the number of awards in *n_awards (may be NULL). */
static inline const char *poll_full(script_runtime *rt, const char *name, const char *body,
                                    size_t len, const char *state, size_t *n_awards)
{
    static char error[1024];
    script_response r = {.status = 200, .body = body, .body_len = len};
    script_account a = {.player_id = 1, .wallet = WALLET, .state_json = state};
    poll_outcome out;
    int pool = script_pool_find(rt, name);
    CHECK(pool >= 0, "pool %s not loaded", name);
    int rc = script_poll(rt, pool, &a, &r, &out);
    snprintf(error, sizeof error, "%s", rc ? out.error : "");
    if (n_awards)
        *n_awards = rc ? 0 : out.n_awards;
    CHECK(!rc || out.n_awards == 0, "%s: a failed poll carries %zu awards", name, out.n_awards);
    poll_outcome_clear(&out);
    return rc ? error : NULL;
}

/* Polls pool `name` once with a small JSON body; returns the error (static) or NULL. */
static inline const char *poll_error(script_runtime *rt, const char *name, const char *body)
{
    return poll_full(rt, name, body, strlen(body), NULL, NULL);
}

/* poll_error for a body that may hold NUL bytes. */
static inline const char *poll_error_bytes(script_runtime *rt, const char *name,
                                           const char *body, size_t len)
{
    return poll_full(rt, name, body, len, NULL, NULL);
}

static inline const char *load_error_of(script_runtime *rt, const char *file)
{
    for (size_t i = 0; i < script_load_error_count(rt); i++)
        if (strstr(script_load_error(rt, i), file))
            return script_load_error(rt, i);
    return NULL;
}

#endif
