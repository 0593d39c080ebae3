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
    const char *cstack_base; /* the C stack where the engine called into Lua */
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
/* Adds n instructions' worth of work done in C (pattern matching, allocation) to the call's
 * count; raises the budget error at the calling script's line once past the budget. */
void script_charge(lua_State *L, long long n);
/* Raises "C stack overflow" when the C stack used since the engine called into Lua is past
 * SCRIPT_CSTACK_LIMIT: for C functions that call back into Lua (gsub, coroutine.resume). */
#define SCRIPT_CSTACK_LIMIT (1024 * 1024)
void script_check_cstack(lua_State *L);
/* Replaces string.find/match/gmatch/gsub with the budgeted matcher (script_pattern.c). */
void script_pattern_install(lua_State *L);
/* script_pattern_install, and the budget and C-stack wrappers of script_guards.c. */
void script_guards_install(lua_State *L);
/* Pushes pipeline.<name> (engine/script/pipeline.lua). */
void script_push_pipeline(lua_State *L, const char *name);
/* Sets native.sha256, sha256_hex, base58check and bech32 (engine/script/script_crypto.c) in
 * the table on top of the stack; raises a Lua error if OpenSSL has no SHA-256. */
void script_crypto_register(lua_State *L);
/* A field of the table at `table` as a new string ("" when absent) / a number (0). */
char *script_field_strdup(lua_State *L, int table, const char *key);
double script_field_number(lua_State *L, int table, const char *key);

#endif
