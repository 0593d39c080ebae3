/* Library functions that run long in C or call back into Lua from C, wrapped for the
 * instruction budget and the C stack (script_pattern.c does the pattern functions).
 *
 * - string.rep is charged by the length of its result: a string that is
 *   already interned costs its memset but allocates nothing, so the allocator's charge
 *   (script_alloc.c) never sees it, and a loop of string.rep("x", 5e7) would run for hours.
 * - string.format ("%s" calls __tostring), table.sort (the comparator and __lt) and
 *   table.foreach/foreachi call Lua from C: a script that recurses through them nests the C
 *   stack, so each first checks it (script_check_cstack) rather than let the process die.
 *
 * The wrappers replace the functions in the state's own tables, which the strings' __index
 * is: every script, the prelude and the pipeline use them. */
#include <lauxlib.h>
#include <lua.h>

#include "script_internal.h"

#define REP_BYTES_PER_INSTRUCTION 16 /* as the allocator's charge */

/* Calls upvalue 1 with this call's arguments and returns what it returns. */
static int call_original(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int charged_rep(lua_State *L)
{
    /* Charged after the call, by the length of what it built (not from the count, which may
     * be NaN or 1e300): a result past the memory ceiling fails there first, with the memory
     * error. */
    int results = call_original(L);
    if (results > 0 && lua_type(L, -results) == LUA_TSTRING)
        script_charge(L, (long long)(lua_objlen(L, -results) / REP_BYTES_PER_INSTRUCTION));
    return results;
}

/* table.insert(t, pos, v) and table.remove(t, pos) move every element after pos in C, where
 * no count hook fires: a loop of front inserts is quadratic. One instruction per element
 * that may move (the table's length: an upper bound, cheap to read). */
static void charge_shift(lua_State *L, int args_with_pos)
{
    if (lua_gettop(L) >= args_with_pos && lua_type(L, 1) == LUA_TTABLE)
        script_charge(L, (long long)lua_objlen(L, 1));
}

static int charged_insert(lua_State *L)
{
    charge_shift(L, 3);
    return call_original(L);
}

static int charged_remove(lua_State *L)
{
    charge_shift(L, 2);
    return call_original(L);
}

static int stack_checked(lua_State *L)
{
    script_check_cstack(L);
    return call_original(L);
}

static void wrap(lua_State *L, const char *library, const char *name, lua_CFunction wrapper)
{
    lua_getglobal(L, library);
    lua_getfield(L, -1, name);
    if (lua_isnil(L, -1)) { /* table.foreach is gone from some builds */
        lua_pop(L, 2);
        return;
    }
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

void script_guards_install(lua_State *L)
{
    script_pattern_install(L);
    wrap(L, "string", "rep", charged_rep);
    wrap(L, "table", "insert", charged_insert);
    wrap(L, "table", "remove", charged_remove);
    wrap(L, "string", "format", stack_checked);
    wrap(L, "table", "sort", stack_checked);
    wrap(L, "table", "foreach", stack_checked);
    wrap(L, "table", "foreachi", stack_checked);
}
