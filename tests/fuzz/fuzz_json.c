/* Fuzz target: the JSON -> Lua bridge (engine/script/script_json_stream.c, script_json.c,
 * script_json_encode.c). Input: JSON text, any bytes.
 *
 * Besides "no crash, no sanitizer report" it checks what the bridge promises:
 *   - the yajl fast path accepts a subset of what cJSON accepts, with the same values
 *     (script_json_stream.h): whenever it succeeds, cJSON parses the text too and the two Lua
 *     values encode to the same text; a text with a NUL byte is never accepted;
 *   - when the fast path gives up, the stack is as it was;
 *   - native.json_encode (script_json_encode.c) writes byte for byte what
 *     cJSON_PrintUnformatted of script_json_from_lua's tree gives, or fails when it fails;
 *   - script_json_set_response never raises (deeper than the limit aside), and never decodes a
 *     text that is not UTF-8 or has an object with a duplicate key (both refused, issue 12);
 *     a duplicate key also makes the fast path give up (it never picks one of the values).
 * A broken promise aborts, which the fuzzer reports as a crash.
 *
 * A fresh luaL_newstate per input keeps runs independent; the engine's own state (its
 * allocator and memory ceiling) is exercised by fuzz_pool.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz.h"
#include "script_json.h"
#include "script_json_stream.h"
#include "script_utf8.h"

typedef struct input {
    const char *text;
    size_t len;
} input;

static void broken(const char *what, const input *in)
{
    fprintf(stderr, "fuzz_json: %s (input of %zu bytes)\n", what, in->len);
    abort();
}

/* The value at idx as text by both encoders; NULL when they refuse it. Aborts when they
 * disagree. Caller frees. */
/* Whether two encodings are the same JSON value. native.json_encode writes every number so
 * that it reads back as the same double (%1.17g where cJSON's %1.15g would not); cJSON keeps
 * its %1.15g within its own tolerance. So the texts may differ in a number's last digits only:
 * compared as values, with cJSON_Compare's tolerance for numbers and exactness elsewhere. */
static int same_json(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return 1;
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    int same = x && y && cJSON_Compare(x, y, 1);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

static char *encode_both(lua_State *L, int idx, const input *in)
{
    char err[160];
    cJSON *tree = script_json_from_lua(L, idx, err, sizeof err);
    char *via_tree = tree ? cJSON_PrintUnformatted(tree) : NULL;
    cJSON_Delete(tree);
    lua_pushcfunction(L, script_json_encode_fn);
    lua_pushvalue(L, idx);
    int rc = lua_pcall(L, 1, 1, 0);
    const char *direct = rc == 0 ? lua_tostring(L, -1) : NULL;
    if ((via_tree == NULL) != (direct == NULL))
        broken("json_encode and script_json_from_lua disagree on success", in);
    if (via_tree && !same_json(via_tree, direct))
        broken("json_encode differs from cJSON_PrintUnformatted", in);
    lua_pop(L, 1);
    return via_tree;
}

/* Whether an object in the tree repeats a key (cJSON keeps every member). Quadratic, on
 * fuzzer-sized inputs; deeper than the bridge takes is not looked at. */
static int has_duplicate_key(const cJSON *item, int depth)
{
    if (depth > SCRIPT_JSON_MAX_DEPTH + 1)
        return 0;
    for (const cJSON *a = item->child; a; a = a->next) {
        if (cJSON_IsObject(item))
            for (const cJSON *b = a->next; b; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    return 1;
        if (has_duplicate_key(a, depth + 1))
            return 1;
    }
    return 0;
}

/* A decoded response must be strict JSON: UTF-8, and no key twice in an object. */
static void check_response(lua_State *L, const input *in)
{
    lua_getfield(L, 1, "json_type");
    int decoded = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!decoded)
        return;
    if (script_utf8_invalid_at(in->text, in->len) != in->len)
        broken("a response that is not UTF-8 was decoded", in);
    cJSON *tree = cJSON_ParseWithLength(in->text, in->len);
    int duplicate = tree && has_duplicate_key(tree, 0);
    cJSON_Delete(tree);
    if (duplicate)
        broken("a response with a duplicate key was decoded", in);
}

/* Runs under lua_cpcall: a Lua error (too deep) ends it and is fine. */
static int check(lua_State *L)
{
    const input *in = lua_touserdata(L, 1);
    lua_settop(L, 0);
    const char *type = NULL;
    if (script_json_stream_push(L, in->text, in->len, &type) != 0) {
        if (lua_gettop(L) != 0)
            broken("fast path gave up with values left on the stack", in);
    } else {
        if (lua_gettop(L) != 1 || !type)
            broken("fast path succeeded without exactly one value and a type", in);
        if (memchr(in->text, '\0', in->len))
            broken("fast path accepted a NUL byte", in);
        cJSON *tree = cJSON_ParseWithLength(in->text, in->len);
        if (!tree)
            broken("fast path accepted what cJSON refuses", in);
        if (has_duplicate_key(tree, 0))
            broken("fast path accepted a duplicate key", in);
        script_json_push(L, tree);
        cJSON_Delete(tree);
        char *a = encode_both(L, 1, in), *b = encode_both(L, 2, in);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
            broken("fast path and cJSON give different values", in);
        free(a);
        free(b);
    }
    lua_settop(L, 0);
    lua_newtable(L);
    script_json_set_response(L, 1, in->text, in->len);
    check_response(L, in);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return 0;
    input in = {(const char *)data, size};
    lua_cpcall(L, check, &in);
    lua_close(L);
    return 0;
}
