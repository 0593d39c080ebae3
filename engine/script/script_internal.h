/* Private to the scripting runtime: what script.c (the Lua state, sandbox, budgets and
 * loading) and script_calls.c (the calls into pool and rule scripts) share. */
#ifndef M2P_SCRIPT_INTERNAL_H
#define M2P_SCRIPT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

#include "script.h"

typedef enum { ABORT_NONE, ABORT_BUDGET, ABORT_MEMORY } abort_reason;

struct script_runtime {
    lua_State *L;
    script_options opts;
    size_t memory_used;
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

/* Runs fn(arg) in protected mode with the budget and the memory ceiling armed; 0, or -1 with
 * the error (file:line, or the limit that was hit) in err. */
int script_run_protected(script_runtime *rt, lua_CFunction fn, void *arg, char *err,
                         size_t errlen);
/* Pushes pipeline.<name> (engine/script/pipeline.lua). */
void script_push_pipeline(lua_State *L, const char *name);
/* A field of the table at `table` as a new string ("" when absent) / a number (0). */
char *script_field_strdup(lua_State *L, int table, const char *key);
double script_field_number(lua_State *L, int table, const char *key);

#endif
