/* Private to the scripting runtime: what script.c (the Lua state, sandbox, budgets and
 * loading) and script_calls.c (the calls into pool and rule scripts) share. */
#ifndef M2P_SCRIPT_INTERNAL_H
#define M2P_SCRIPT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

#include "script.h"

typedef enum { ABORT_NONE, ABORT_BUDGET, ABORT_MEMORY } abort_reason;

/* Freed small Lua blocks kept for reuse, one list per 16-byte size class up to 256 bytes
 * (engine/script/script_alloc.c says why). */
#define SCRIPT_ALLOC_CLASSES 16
typedef struct {
    void *free[SCRIPT_ALLOC_CLASSES];
    unsigned count[SCRIPT_ALLOC_CLASSES];
} script_block_cache;

struct script_runtime {
    lua_State *L;
    script_options opts;
    size_t memory_used;  /* bytes Lua asked for (what the ceiling counts) */
    script_block_cache blocks;
    bool in_call; /* limits apply only while Lua runs on the engine's behalf */
    long long instructions;
    abort_reason aborted;
    int pipeline_ref;
    script_pool *pools;
    size_t n_pools;
    char **load_errors;
    size_t n_load_errors;
    uint64_t rules_hash;
    char rules_generation[17];
    char **env_reads; /* names scripts looked up with m2p.env, for --record */
    size_t n_env_reads;
};

/* The lua_Alloc of every state (ud = the runtime): the memory ceiling, armed while in_call,
 * with a bounded small-block cache in front of malloc. */
void *script_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Blocks now held by the cache; script_alloc_release gives them all back (after lua_close). */
size_t script_alloc_cached(const script_runtime *rt);
void script_alloc_release(script_runtime *rt);

/* Runs fn(arg) in protected mode with the budget and the memory ceiling armed; 0, or -1 with
 * the error (file:line, or the limit that was hit) in err. */
int script_run_protected(script_runtime *rt, lua_CFunction fn, void *arg, char *err,
                         size_t errlen);
/* Pushes pipeline.<name> (engine/script/pipeline.lua). */
void script_push_pipeline(lua_State *L, const char *name);
/* Sets native.sha256, sha256_hex, base58check and bech32 (engine/script/script_crypto.c) in
 * the table on top of the stack; raises a Lua error if OpenSSL has no SHA-256. */
void script_crypto_register(lua_State *L);
/* A field of the table at `table` as a new string ("" when absent) / a number (0). */
char *script_field_strdup(lua_State *L, int table, const char *key);
double script_field_number(lua_State *L, int table, const char *key);

#endif
