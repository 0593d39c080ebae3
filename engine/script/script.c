/* The scripting runtime: LuaJIT state, sandbox, budgets and loading (see script.h for the
 * interface, script_calls.c for the calls into pool and rule scripts and
 * engine/script/pipeline.lua for the Lua side).
 *
 * Budget mechanism. LuaJIT only runs count hooks in the interpreter: a loop compiled to a
 * trace never checks them, so a `while true do end` would escape any budget once it gets hot.
 * The runtime therefore switches the JIT off for its whole state and relies on the count
 * hook, which then provably fires every HOOK_STEP instructions (tests/unit/test_script.c
 * shows a JIT-compiled loop escaping the hook and the same loop stopped with the JIT off;
 * docs/performance.md has the measured cost). Memory is capped by the allocator: growth past
 * the ceiling fails inside a call, which Lua turns into an ordinary catchable error.
 */
#include "script.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "embedded.h"
#include "log.h"
#include "script_internal.h"
#include "script_json.h"

#define HOOK_STEP 1000                 /* instructions between two budget checks */
#define MAX_SCRIPT_BYTES (1024 * 1024) /* a pool script larger than this is refused */


void script_options_defaults(script_options *o)
{
    memset(o, 0, sizeof *o);
    o->pools_dir = "pools";
    o->scripts_dir = "scripts";
    o->instruction_budget = 10000000;
    o->memory_limit_bytes = 256u * 1024 * 1024;
    o->max_body_bytes = 1024 * 1024;
}

static script_runtime *runtime_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* =========================================================================== Limits */

/* The allocator and the memory ceiling: script_alloc.c. */

static int budget_value(const script_runtime *rt)
{
    return (int)(rt->opts.instruction_budget > 2000000000 ? 2000000000
                                                          : rt->opts.instruction_budget);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    script_runtime *rt = runtime_of(L);
    if (!rt->in_call)
        return;
    rt->instructions += HOOK_STEP;
    if (rt->instructions <= rt->opts.instruction_budget)
        return;
    rt->aborted = ABORT_BUDGET;
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: instruction budget exceeded (%d instructions)", ar->short_src,
                    ar->currentline, budget_value(rt));
    lua_error(L);
}

void script_charge(lua_State *L, long long n)
{
    script_runtime *rt = runtime_of(L);
    if (!rt->in_call || n <= 0)
        return;
    /* Saturating: a charge can only bring the end of the budget nearer, never wrap the
     * count around (a charge computed from a script's NaN or 1e300 must not switch it off). */
    long long room = rt->opts.instruction_budget - rt->instructions;
    rt->instructions = n > room ? rt->opts.instruction_budget + 1 : rt->instructions + n;
    if (rt->instructions <= rt->opts.instruction_budget)
        return;
    rt->aborted = ABORT_BUDGET;
    luaL_where(L, 1); /* the script's line that called the C function */
    lua_pushfstring(L, "%sinstruction budget exceeded (%d instructions)", lua_tostring(L, -1),
                    budget_value(rt));
    lua_error(L);
}

/* The stack grows down on every platform the engine runs on (x86-64, arm64). The frame
 * address, not a local's: AddressSanitizer may keep locals on a heap "fake stack". */
static bool cstack_exceeded(lua_State *L)
{
    script_runtime *rt = runtime_of(L);
    const char *here = __builtin_frame_address(0);
    return rt->in_call && rt->cstack_base && rt->cstack_base - here > SCRIPT_CSTACK_LIMIT;
}

void script_check_cstack(lua_State *L)
{
    if (cstack_exceeded(L))
        luaL_error(L, "C stack overflow (calls nested too deeply)");
}

static int native_cstack_ok(lua_State *L)
{
    lua_pushboolean(L, !cstack_exceeded(L));
    return 1;
}

static int panic_handler(lua_State *L)
{
    log_message(LOG_ERROR, "script_panic", "unprotected Lua error: %s",
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    abort();
}

/* ================================================================= Native primitives */

static int native_log(lua_State *L)
{
    log_level level;
    if (!log_level_parse(luaL_checkstring(L, 1), &level))
        return luaL_error(L, "m2p.log: unknown level");
    const char *event = luaL_checkstring(L, 2);
    cJSON *fields = NULL;
    if (!lua_isnoneornil(L, 3)) {
        char err[160];
        fields = script_json_from_lua(L, 3, err, sizeof err);
        if (!fields)
            return luaL_error(L, "m2p.log: fields: %s", err);
        if (!cJSON_IsObject(fields)) {
            cJSON_Delete(fields); /* an empty or list table has no named fields */
            fields = NULL;
        }
    }
    log_emit(level, event, fields);
    return 0;
}

/* Secrets are not for scripts: they would end up in a log line or a recorded fixture. */
static bool secret_name(const char *name)
{
    return strcmp(name, "DATABASE_URL") == 0 || strstr(name, "SECRET") ||
           strstr(name, "PASSWORD") || strstr(name, "TOKEN");
}

static void note_env_read(script_runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->n_env_reads; i++)
        if (strcmp(rt->env_reads[i], name) == 0)
            return;
    rt->env_reads = realloc(rt->env_reads, (rt->n_env_reads + 1) * sizeof(char *));
    rt->env_reads[rt->n_env_reads++] = strdup(name);
}

static int native_env(lua_State *L)
{
    script_runtime *rt = runtime_of(L);
    const char *name = luaL_checkstring(L, 1);
    if (secret_name(name)) {
        lua_pushnil(L);
        return 1;
    }
    note_env_read(rt, name);
    const char *value = rt->opts.env ? rt->opts.env(rt->opts.env_user, name) : getenv(name);
    if (value)
        lua_pushstring(L, value);
    else
        lua_pushnil(L);
    return 1;
}

static int native_aborted(lua_State *L)
{
    lua_pushboolean(L, runtime_of(L)->aborted != ABORT_NONE);
    return 1;
}

static void push_native(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"log", native_log},
        {"env", native_env},
        {"aborted", native_aborted},
        {"cstack_ok", native_cstack_ok},
        {"json_decode", script_json_decode_fn},
        {"json_decode_state", script_json_decode_state_fn},
        {"json_encode", script_json_encode_fn},
        {NULL, NULL},
    };
    lua_newtable(L);
    for (const luaL_Reg *f = functions; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    script_crypto_register(L); /* sha256, sha256_hex, base58check, bech32 */
}

/* ================================================================ Protected calls */

static void record_error(script_runtime *rt, int rc, char *err, size_t errlen)
{
    lua_State *L = rt->L;
    if (rt->aborted == ABORT_MEMORY || rc == LUA_ERRMEM) {
        snprintf(err, errlen, "script memory limit exceeded (%zu MiB)",
                 rt->opts.memory_limit_bytes / (1024 * 1024));
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
    } else {
        snprintf(err, errlen, "script raised a non-string error (%s)",
                 lua_typename(L, lua_type(L, -1)));
    }
}

/* Runs fn(arg) in protected mode with the budget and the memory ceiling armed. Everything
 * that touches Lua for one operation happens inside, so no Lua error can escape. */
int script_run_protected(script_runtime *rt, lua_CFunction fn, void *arg, char *err,
                         size_t errlen)
{
    lua_State *L = rt->L;
    int top = lua_gettop(L);
    rt->cstack_base = __builtin_frame_address(0);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, arg);
    rt->instructions = 0;
    rt->aborted = ABORT_NONE;
    rt->in_call = true;
    int rc = lua_pcall(L, 1, 0, 0);
    rt->in_call = false;
    rt->cstack_base = NULL;
    if (rc != 0)
        record_error(rt, rc, err, errlen);
    lua_settop(L, top);
    if (rt->aborted != ABORT_NONE)
        lua_gc(L, LUA_GCCOLLECT, 0); /* give back what the runaway script took */
    return rc == 0 ? 0 : -1;
}

void script_push_pipeline(lua_State *L, const char *name)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, runtime_of(L)->pipeline_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* ==================================================================== Loading */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_SCRIPT_BYTES + 1);
    size_t n = fread(buf, 1, MAX_SCRIPT_BYTES + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n > MAX_SCRIPT_BYTES) {
        snprintf(err, errlen, "%s: %s", path,
                 failed ? "read error" : "larger than 1 MiB, refused");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct load_call {
    const char *path, *source, *extra;
    size_t len;
    bool is_pool;
    script_pool *pool; /* filled for pools */
};

char *script_field_strdup(lua_State *L, int table, const char *key)
{
    lua_getfield(L, table, key);
    char *s = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    return s;
}

static char *field_strdup_or_null(lua_State *L, int table, const char *key)
{
    lua_getfield(L, table, key);
    char *s = lua_isstring(L, -1) ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return s;
}

double script_field_number(lua_State *L, int table, const char *key)
{
    lua_getfield(L, table, key);
    double x = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return x;
}

static int load_entry(lua_State *L)
{
    struct load_call *c = lua_touserdata(L, 1);
    script_push_pipeline(L, c->is_pool ? "load_pool" : "load_rules");
    lua_pushstring(L, c->path);
    lua_pushlstring(L, c->source, c->len);
    lua_pushstring(L, c->extra);
    lua_call(L, 3, c->is_pool ? 2 : 0);
    if (!c->is_pool)
        return 0;
    int info = lua_gettop(L);
    lua_getfield(L, info, "limits");
    int limits = lua_gettop(L);
    /* Nothing below can raise: only reads of validated fields. */
    c->pool->limits.concurrency = (int)script_field_number(L, limits, "concurrency");
    c->pool->limits.per_second = script_field_number(L, limits, "per_second");
    c->pool->limits.interval = script_field_number(L, limits, "interval");
    c->pool->limits.max_interval = script_field_number(L, limits, "max_interval");
    lua_getfield(L, info, "enabled");
    c->pool->enabled = lua_toboolean(L, -1);
    c->pool->proxy = field_strdup_or_null(L, info, "proxy");
    c->pool->interface = field_strdup_or_null(L, info, "interface");
    lua_getfield(L, info, "same_host_redirects");
    c->pool->same_host_redirects = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, info, "cache_request");
    c->pool->cache_request = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->pool->metadata_url = field_strdup_or_null(L, info, "metadata_url");
    c->pool->metadata_refresh = script_field_number(L, info, "metadata_refresh");
    c->pool->name = script_field_strdup(L, info, "name");
    c->pool->currency = script_field_strdup(L, info, "currency");
    c->pool->file = strdup(c->path);
    return 0;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static void prefix_path(const char *path, char *err, size_t errlen)
{
    char *message = strdup(err);
    snprintf(err, errlen, "%s: %s", path, message);
    free(message);
}

static int load_script(script_runtime *rt, const char *path, const char *extra,
                       script_pool *pool, char *err, size_t errlen)
{
    size_t len;
    char *source = read_file(path, &len, err, errlen);
    if (!source)
        return -1;
    if (!pool)
        rt->rules_hash = fnv1a(rt->rules_hash, source, len);
    struct load_call call = {path, source, extra, len, pool != NULL, pool};
    int rc = script_run_protected(rt, load_entry, &call, err, errlen);
    free(source);
    if (rc != 0 && !strstr(err, path)) /* "stack overflow" and the like name no file */
        prefix_path(path, err, errlen);
    return rc;
}

static void add_load_error(script_runtime *rt, const char *message)
{
    rt->load_errors = realloc(rt->load_errors, (rt->n_load_errors + 1) * sizeof(char *));
    rt->load_errors[rt->n_load_errors++] = strdup(message);
}

static int has_lua_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".lua") == 0 && name[0] != '.';
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pool scripts load in name order, so a generation is the same whatever the directory. */
static int load_pools(script_runtime *rt, char *err, size_t errlen)
{
    DIR *dir = opendir(rt->opts.pools_dir);
    if (!dir) {
        snprintf(err, errlen, "pools directory %s: %s", rt->opts.pools_dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (!has_lua_suffix(e->d_name))
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    rt->pools = calloc(n ? n : 1, sizeof *rt->pools);
    for (size_t i = 0; i < n; i++) {
        char path[4096], message[1024];
        snprintf(path, sizeof path, "%s/%s", rt->opts.pools_dir, names[i]);
        names[i][strlen(names[i]) - 4] = '\0';
        script_pool *pool = &rt->pools[rt->n_pools];
        if (load_script(rt, path, names[i], pool, message, sizeof message) == 0)
            rt->n_pools++;
        else
            add_load_error(rt, message);
        free(names[i]);
    }
    free(names);
    return 0;
}

static int load_rules(script_runtime *rt, char *err, size_t errlen)
{
    rt->rules_hash = 0xcbf29ce484222325ULL;
    static const char *const kinds[] = {"convert", "rewards"};
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.lua", rt->opts.scripts_dir, kinds[i]);
        if (load_script(rt, path, kinds[i], NULL, err, errlen) != 0)
            return -1;
    }
    snprintf(rt->rules_generation, sizeof rt->rules_generation, "%016" PRIx64, rt->rules_hash);
    return 0;
}

const char *script_rules_generation(const script_runtime *rt) { return rt->rules_generation; }

/* Loads the embedded prelude and pipeline; the pipeline table is kept in the registry. */
static int boot_entry(lua_State *L)
{
    const embedded_file *prelude = embedded_find("prelude.lua");
    const embedded_file *pipeline = embedded_find("pipeline.lua");
    if (luaL_loadbuffer(L, pipeline->text, pipeline->len, "=pipeline.lua") != 0 ||
        luaL_loadbuffer(L, prelude->text, prelude->len, "=prelude.lua") != 0)
        return lua_error(L);
    push_native(L);
    lua_insert(L, -2); /* pipeline(native, prelude) */
    lua_call(L, 2, 1);
    runtime_of(L)->pipeline_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Strings share one metatable whose __index is the real string library; locking it keeps a
 * sandboxed getmetatable("") from reaching (and changing) what every script uses. */
static void lock_string_metatable(lua_State *L)
{
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

static lua_State *new_state(script_runtime *rt)
{
    lua_State *L = lua_newstate(script_limited_alloc, rt);
    if (!L)
        return NULL;
    lua_atpanic(L, panic_handler);
    luaL_openlibs(L);
    if (!rt->opts.unsafe_allow_jit)
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
    script_guards_install(L);
    lock_string_metatable(L);
    return L;
}

script_runtime *script_runtime_new(const script_options *opts, char *err, size_t errlen)
{
    script_runtime *rt = calloc(1, sizeof *rt);
    rt->opts = *opts;
    rt->pipeline_ref = LUA_NOREF;
    rt->L = new_state(rt);
    if (!rt->L) {
        snprintf(err, errlen, "cannot create a Lua state");
        free(rt);
        return NULL;
    }
    if (script_run_protected(rt, boot_entry, NULL, err, errlen) != 0 || load_rules(rt, err, errlen) != 0 ||
        load_pools(rt, err, errlen) != 0) {
        script_runtime_free(rt);
        return NULL;
    }
    return rt;
}

void script_runtime_free(script_runtime *rt)
{
    if (!rt)
        return;
    if (rt->L)
        lua_close(rt->L);
    script_alloc_release(rt); /* after lua_close: closing frees into the cache */
    for (size_t i = 0; i < rt->n_pools; i++) {
        free((char *)rt->pools[i].name);
        free((char *)rt->pools[i].currency);
        free((char *)rt->pools[i].file);
        free((char *)rt->pools[i].proxy);
        free((char *)rt->pools[i].interface);
        free((char *)rt->pools[i].metadata_url);
    }
    free(rt->pools);
    for (size_t i = 0; i < rt->n_load_errors; i++)
        free(rt->load_errors[i]);
    free(rt->load_errors);
    for (size_t i = 0; i < rt->n_env_reads; i++)
        free(rt->env_reads[i]);
    free(rt->env_reads);
    free(rt);
}

size_t script_load_error_count(const script_runtime *rt) { return rt->n_load_errors; }
const char *script_load_error(const script_runtime *rt, size_t i) { return rt->load_errors[i]; }
size_t script_pool_count(const script_runtime *rt) { return rt->n_pools; }
const script_pool *script_pool_at(const script_runtime *rt, size_t i) { return &rt->pools[i]; }
size_t script_memory_used(const script_runtime *rt) { return rt->memory_used; }
size_t script_env_read_count(const script_runtime *rt) { return rt->n_env_reads; }
const char *script_env_read(const script_runtime *rt, size_t i) { return rt->env_reads[i]; }

const char *script_env_value(const script_runtime *rt, const char *name)
{
    return rt->opts.env ? rt->opts.env(rt->opts.env_user, name) : getenv(name);
}

int script_pool_find(const script_runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->n_pools; i++)
        if (strcmp(rt->pools[i].name, name) == 0)
            return (int)i;
    return -1;
}
