/* Hostile pool scripts (issue 12), each loaded into the engine's own runtime: every trick ends
 * as its own expected error, the poll awards nothing (poll_full checks it), and the runtime
 * serves the next poll. Several of these hung the engine or crashed it before the fixes in
 * engine/script/script_pattern.c, script_guards.c and pipeline.lua (docs/reliability.md,
 * "Hostile scripts").
 *
 * M2P_HOSTILE_LONG=1 adds the slow cases (seconds each): a loop of `load` of a large source,
 * charged through the allocator. */
#include "check.h"
#include "log.h"
#include "script_fixture.h"

/* Small limits keep the runaway cases short. Allocation is charged too (16 bytes an
 * instruction): a memory bomb must reach the ceiling before the budget, so the budget is
 * well above CEILING / 16. */
#define BUDGET 8000000
#define CEILING (16u * 1024 * 1024)

typedef struct {
    const char *name, *code, *error;
} trick;

static const trick TRICKS[] = {
    /* getfenv/setfenv escapes: neither exists in the sandbox, nor in what load() compiles */
    {"getfenv", "getfenv(1).x = 1", "global 'getfenv' (a nil value)"},
    {"setfenv", "setfenv(print, {})", "global 'setfenv' (a nil value)"},
    {"fenv_in_load", "load('return getfenv(0)')()", "global 'getfenv' (a nil value)"},
    {"fenv_rawget", "assert(rawget(_G, 'getfenv') or rawget(_G, 'newproxy'), 'no fenv')",
     "no fenv"},
    /* string metatable tricks: locked, and ("").dump reaches no dump */
    {"string_mt_index", "getmetatable('').__index.find = nil", "attempt to index a boolean value"},
    {"string_mt_set", "setmetatable('', {})", "table expected, got string"},
    {"string_method_dump", "local s = ('').dump(print)", "field 'dump' (a nil value)"},
    /* memory bombs */
    {"rep_memory", "local s = string.rep('x', 2^30)", "memory limit exceeded"},
    {"rep_sep_memory", "local s = ('x'):rep(2^26, ('y'):rep(16))", "memory limit exceeded"},
    {"table_memory", "local t = {}\n"
                     "while true do t[#t + 1] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} end",
     "memory limit exceeded"},
    {"concat_memory", "local s, t = ('x'):rep(2^20), {}\n"
                      "for i = 1, 64 do t[i] = s end s = table.concat(t)",
     "memory limit exceeded"},
    /* string.rep of an interned string allocates nothing: charged by its length */
    {"rep_time", "for i = 1, 1e6 do local s = string.rep('x', 5e6) end",
     "rep_time.lua:4: instruction budget exceeded"},
    /* a count that is NaN or 1e300 must not turn the charge (and so the budget) off */
    {"rep_nan_count", "string.rep('', math.huge) string.rep('x', 1e300) string.rep('x', 0/0)\n"
                      "while true do end",
     "rep_nan_count.lua:5: instruction budget exceeded"},
    /* table.insert/remove at the front move every element in C */
    {"table_front_insert", "local t = {} for i = 1, 1e6 do table.insert(t, 1, i) end",
     "instruction budget exceeded"},
    {"table_front_remove", "local t = {} for i = 1, 2e5 do t[i] = i end\n"
                           "while true do table.remove(t, 1) t[#t + 1] = 0 end",
     "instruction budget exceeded"},
    /* a set is read in full on every step, a back-reference compares its whole capture */
    {"pattern_long_set", "local s = ('c'):rep(20000)\n"
                         "s:find('[' .. ('a'):rep(200000) .. 'b]')",
     "pattern_long_set.lua:5: instruction budget exceeded"},
    {"pattern_frontier_set", "local s = ('c'):rep(20000)\n"
                             "s:find('%f[' .. ('a'):rep(200000) .. 'b]')",
     "instruction budget exceeded"},
    {"pattern_backref", "local s = ('x'):rep(2^20)\n"
                        "while true do s:find('(.*)%1y') end",
     "instruction budget exceeded"},
    /* backtracking patterns run in C: charged per matcher step */
    {"pattern_find", "local n = 40\n"
                     "string.find(('a'):rep(n), ('a?'):rep(n) .. ('a'):rep(n))",
     "pattern_find.lua:5: instruction budget exceeded"},
    {"pattern_method", "local n = 40\n"
                       "local s = ('a'):rep(n) s:match(('a?'):rep(n) .. ('a'):rep(n))",
     "pattern_method.lua:5: instruction budget exceeded"},
    {"pattern_gsub", "local n = 40\n"
                     "local s = ('a'):rep(n) s:gsub(('a?'):rep(n) .. ('a'):rep(n), '')",
     "instruction budget exceeded"},
    {"pattern_gmatch", "local n = 40\n"
                       "for x in ('a'):rep(n):gmatch(('a?'):rep(n) .. ('a'):rep(n)) do end",
     "instruction budget exceeded"},
    {"pattern_deep", "string.find(('a'):rep(5000), ('a?'):rep(5000) .. ('a'):rep(5000))",
     "pattern too complex"},
    /* pcall, xpcall and coroutines cannot swallow the budget or the ceiling */
    {"xpcall_looping_handler",
     "xpcall(function() while true do end end, function(e) while true do end end)",
     "instruction budget exceeded"},
    {"xpcall_memory", "local ok = xpcall(function() local t = {}\n"
                      "  while true do t[#t + 1] = ('x'):rep(4096) .. #t end end,\n"
                      "  function() return 'swallowed' end)\n"
                      "while not ok do end",
     "memory limit exceeded"},
    {"pcall_pattern", "local n = 40 local s = ('a'):rep(n)\n"
                      "while true do pcall(s.find, s, ('a?'):rep(n) .. ('a'):rep(n)) end",
     "instruction budget exceeded"},
    {"coroutine_dead_resume",
     "local co = coroutine.create(function() while true do end end)\n"
     "while true do coroutine.resume(co) end",
     "instruction budget exceeded"},
    {"coroutine_wrap_pcall",
     "local co = coroutine.wrap(function() while true do end end)\n"
     "pcall(co) while true do end",
     "instruction budget exceeded"},
    /* recursion: through Lua (the Lua stack), and through C (resume, gsub, sort, format) */
    {"lua_recursion", "local function f() return 1 + f() end f()", "stack overflow"},
    {"coroutine_recursion", "local function f() coroutine.wrap(f)() end f()",
     "coroutine_recursion.lua:4: C stack overflow"},
    {"gsub_recursion", "local function f() return ('x'):gsub('.', f) end f()",
     "C stack overflow"},
    {"sort_recursion",
     "local function f() table.sort({3, 2, 1}, function(a, b) f() return a < b end) end f()",
     "stack overflow"},
    {"format_recursion",
     "local mt = {} mt.__tostring = function() return ('%s'):format(setmetatable({}, mt)) end\n"
     "print(setmetatable({}, mt))",
     "C stack overflow"},
    /* bytecode: refused behind a UTF-8 byte order mark or a "#" line too */
    {"load_bytecode", "assert(load('\\27LJ\\2'))", "binary (bytecode) chunks are refused"},
    {"load_bom_bytecode", "assert(load('\\239\\187\\191\\27LJ\\2\\0'))",
     "binary (bytecode) chunks are refused"},
    {"load_hash_bytecode", "assert(load('#!/bin/lua\\n\\27LJ\\2\\0'))",
     "binary (bytecode) chunks are refused"},
    /* require "ffi" and friends */
    {"require_ffi", "local ffi = require 'ffi'", "global 'require' (a nil value)"},
    {"package_ffi", "local ffi = package.loaded.ffi", "global 'package' (a nil value)"},
};

static void test_tricks(void)
{
    size_t n = sizeof TRICKS / sizeof TRICKS[0];
    for (size_t i = 0; i < n; i++)
        write_parse_pool(TRICKS[i].name, TRICKS[i].code);
    write_parse_pool("fine", "local x = 0 for i = 1, 1000 do x = x + i end\n"
                             "assert(('a1b2'):gsub('%d', '') == 'ab')");
    script_runtime *rt = load(BUDGET, CEILING, false);
    if (!rt)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t awards = 1;
        const char *err = poll_full(rt, TRICKS[i].name, "{}", 2, NULL, &awards);
        CHECK(err != NULL, "%s: not refused", TRICKS[i].name);
        if (err && !check_contains(err, TRICKS[i].error))
            CHECK(0, "%s: expected \"%s\" in \"%s\"", TRICKS[i].name, TRICKS[i].error, err);
        CHECK(awards == 0, "%s: %zu awards", TRICKS[i].name, awards);
        const char *next = poll_error(rt, "fine", "{}");
        CHECK(next == NULL, "after %s the next poll failed: %s", TRICKS[i].name, next);
    }
    CHECK(script_memory_used(rt) < CEILING / 2, "memory not given back: %zu",
          script_memory_used(rt));
    script_runtime_free(rt);
    remove_pools();
}

/* A finaliser cannot be installed: tables take no __gc (Lua 5.1) and newproxy is not in the
 * sandbox, so a looping __gc never runs, in this poll's collections or a later one's. */
static void test_gc_finaliser(void)
{
    write_parse_pool("finaliser",
                     "assert(newproxy == nil, 'newproxy reachable')\n"
                     "assert(not FINALISED, 'a __gc finaliser ran')\n"
                     "local mt = { __gc = function() FINALISED = true while true do end end }\n"
                     "for i = 1, 20000 do setmetatable({ i }, mt) end");
    script_runtime *rt = load(BUDGET, CEILING, false);
    if (!rt)
        return;
    for (int i = 0; i < 3; i++) {
        const char *err = poll_error(rt, "finaliser", "{}");
        CHECK(err == NULL, "poll %d: %s", i, err);
    }
    script_runtime_free(rt); /* closing the state runs no finaliser either: no hang */
    remove_pools();
}

/* A pool's wallet_pattern is matched against the wallet a player typed: a backtracking one
 * is stopped by the budget, not left to run for the age of the universe. */
static void test_wallet_pattern_bomb(void)
{
    write_pool("bomb", "return { currency = 'ADVC',\n"
                       "  wallet_pattern = ('a?'):rep(60) .. ('a'):rep(60),\n"
                       "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
                       "  parse = function() return { paid = 1 } end }\n");
    write_parse_pool("fine", "");
    script_runtime *rt = load(BUDGET, CEILING, false);
    if (!rt)
        return;
    char wallet[61], canonical[300], err[512];
    memset(wallet, 'a', 60);
    wallet[60] = '\0';
    CHECK(script_wallet_check(rt, script_pool_find(rt, "bomb"), wallet, canonical,
                              sizeof canonical, err, sizeof err) != 0,
          "the pattern bomb finished");
    CHECK_CONTAINS(err, "instruction budget exceeded");
    CHECK(poll_error(rt, "fine", "{}") == NULL, "runtime unusable after the wallet bomb");
    script_runtime_free(rt);
    remove_pools();
}

/* Bytecode pool files behind a byte order mark or a "#" first line: refused at load with the
 * reason, not loaded, not "malformed". */
static void test_bytecode_files(void)
{
    static const char bom[] = "\xEF\xBB\xBF\033LJ\002\000garbage";
    static const char hash[] = "#!/usr/bin/luajit\n\033LJ\002\000garbage";
    write_pool_bytes("bom_bytecode", bom, sizeof bom - 1);
    write_pool_bytes("hash_bytecode", hash, sizeof hash - 1);
    write_pool("bom_source", "\xEF\xBB\xBFreturn { currency = 'ADVC',\n"
                             "  request = function(w) return { url = 'http://x/' .. w } end,\n"
                             "  parse = function() return { paid = 1 } end }\n");
    script_runtime *rt = load(BUDGET, CEILING, false);
    if (!rt)
        return;
    CHECK_CONTAINS(load_error_of(rt, "bom_bytecode.lua"), "binary (bytecode) chunks are refused");
    CHECK_CONTAINS(load_error_of(rt, "hash_bytecode.lua"), "binary (bytecode) chunks are refused");
    CHECK(script_pool_find(rt, "bom_source") >= 0, "a source file with a BOM did not load: %s",
          load_error_of(rt, "bom_source.lua"));
    script_runtime_free(rt);
    remove_pools();
}

/* The parser's work is charged through its allocations (script_alloc.c). */
static void test_load_loop(void)
{
    write_parse_pool("load_loop", "local src = string.rep('local a = 1 ', 1e5)\n"
                                  "for i = 1, 1e6 do load(src) end");
    script_runtime *rt = load(0, 0, false);
    if (!rt)
        return;
    CHECK_CONTAINS(poll_error(rt, "load_loop", "{}"), "instruction budget exceeded");
    script_runtime_free(rt);
    remove_pools();
}

int main(void)
{
    log_configure(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
    if (!fixture_init("test-hostile"))
        return 1;
    test_tricks();
    test_gc_finaliser();
    test_wallet_pattern_bomb();
    test_bytecode_files();
    if (getenv("M2P_HOSTILE_LONG"))
        test_load_loop();
    rmdir(pools_dir);
    return check_summary();
}
