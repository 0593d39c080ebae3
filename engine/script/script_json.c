/* cJSON <-> Lua conversion for the scripting runtime.
 *
 * Decoding: in C (no Lua code runs on hostile bytes). The text must be UTF-8 (RFC 8259) and no
 * object may repeat a key (parsers disagree on which one wins, so a check may see one value
 * and the award another): both are refused. First yajl's events straight onto the
 * Lua stack (script_json_stream.c); whenever that gives up, cJSON parses, and the tree is
 * pushed as tables, or cJSON's error is described. The parsed tree is anchored in a userdata
 * with a __gc while it is pushed, so a Lua error half-way (memory ceiling) cannot leak it.
 * Lua -> cJSON tree: for log fields (native.log); the text encoder that scripts, observations
 * and account state use is script_json_encode.c. Both refuse anything that would not come
 * back unchanged (functions, NaN, inf, mixed keys, strings with NUL bytes).
 */
#include "script_json.h"
#include "script_json_stream.h"
#include "script_utf8.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define ANCHOR "m2p.c_anchor"

/* A userdata that owns one malloc'd C object while Lua code that may raise runs, so a Lua
 * error (for instance the memory ceiling) cannot leak it: the GC frees what is left. */
typedef struct anchor {
    void *ptr;
    void (*release)(void *);
} anchor;

static int anchor_gc(lua_State *L)
{
    anchor *a = luaL_checkudata(L, 1, ANCHOR);
    if (a->ptr)
        a->release(a->ptr);
    a->ptr = NULL;
    return 0;
}

static anchor *anchor_push(lua_State *L, void *ptr, void (*release)(void *))
{
    anchor *a = lua_newuserdata(L, sizeof *a);
    a->ptr = ptr;
    a->release = release;
    if (luaL_newmetatable(L, ANCHOR)) {
        lua_pushcfunction(L, anchor_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return a;
}

static void anchor_release(anchor *a)
{
    a->release(a->ptr);
    a->ptr = NULL;
}

static void release_tree(void *tree) { cJSON_Delete(tree); }

static int absolute_index(lua_State *L, int idx)
{
    return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}

/* Pushes the key of an object member, unless the table below already has it (cJSON keeps
 * every duplicate, in order): then pushes nothing and returns 0. */
static int push_new_key(lua_State *L, const char *key)
{
    lua_pushstring(L, key);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    int is_new = lua_isnil(L, -1); /* no decoded value is nil: null is m2p.null */
    lua_pop(L, is_new ? 1 : 2);
    return is_new;
}

/* Pushes item as a Lua value; NULL, or the member whose key its object has already had,
 * with partly filled tables left on the stack (the caller resets it). */
static const cJSON *push_value(lua_State *L, const cJSON *item, int depth)
{
    if (depth > SCRIPT_JSON_MAX_DEPTH)
        luaL_error(L, "JSON nested deeper than %d levels", SCRIPT_JSON_MAX_DEPTH);
    luaL_checkstack(L, 4, "JSON too deep");
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        int is_array = cJSON_IsArray(item);
        int n = cJSON_GetArraySize(item);
        lua_createtable(L, is_array ? n : 0, is_array ? 0 : n);
        int i = 1;
        for (const cJSON *child = item->child; child; child = child->next) {
            if (!is_array && !push_new_key(L, child->string))
                return child;
            const cJSON *duplicate = push_value(L, child, depth + 1);
            if (duplicate)
                return duplicate;
            if (is_array)
                lua_rawseti(L, -2, i++);
            else
                lua_rawset(L, -3);
        }
    } else if (cJSON_IsString(item)) {
        lua_pushstring(L, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        lua_pushnumber(L, item->valuedouble);
    } else if (cJSON_IsBool(item)) {
        lua_pushboolean(L, cJSON_IsTrue(item));
    } else {
        lua_pushlightuserdata(L, NULL); /* null */
    }
    return NULL;
}

/* The key is hostile text that ends up in logs: at most 40 bytes of it, printable ASCII only
 * (every other byte, quotes and backslashes shown as '?'). */
static void describe_duplicate(const char *key, char *err, size_t errlen)
{
    char shown[44];
    size_t n = 0;
    for (; key[n] && n < 40; n++) {
        unsigned char c = (unsigned char)key[n];
        shown[n] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    strcpy(shown + n, key[n] ? "..." : "");
    snprintf(err, errlen, "duplicate key \"%s\" in a JSON object", shown);
}

void script_json_push(lua_State *L, const cJSON *item)
{
    const cJSON *duplicate = push_value(L, item, 0);
    if (duplicate) {
        char err[96];
        describe_duplicate(duplicate->string, err, sizeof err);
        luaL_error(L, "%s", err);
    }
}

/* What a lexical pass over the raw bytes tells that cJSON's tree cannot: cJSON turns a
 * "\u0000" escape (or a raw NUL byte inside a string) into a C string cut at the NUL, so
 * "<wallet>\u0000evil" would reach a script as "<wallet>"; and its error offset does not say
 * whether the input merely stopped early. Not a parser: it only tracks strings, escapes and
 * bracket depth, and only cJSON decides what is valid. */
typedef struct json_scan {
    size_t nul_at;      /* offset of the first NUL (raw byte or \u0000 escape), or len */
    size_t open_string; /* offset of the quote of a string still open at the end, or len */
    int ends_in_value;  /* the input ends inside a string or an unclosed object/array */
} json_scan;

static int is_nul_escape(const char *p, size_t left)
{
    return left >= 6 && p[1] == 'u' && memcmp(p + 2, "0000", 4) == 0;
}

static json_scan scan_json(const char *text, size_t len)
{
    json_scan r = {len, len, 0};
    int in_string = 0;
    size_t string_start = 0;
    long depth = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '\0' && r.nul_at == len)
            r.nul_at = i;
        if (in_string) {
            if (ch == '\\') {
                if (is_nul_escape(text + i, len - i) && r.nul_at == len)
                    r.nul_at = i;
                i++; /* the escaped byte: "\\u0000" is a backslash, then plain text */
            } else if (ch == '"') {
                in_string = 0;
            }
        } else if (ch == '"') {
            in_string = 1;
            string_start = i;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    if (in_string)
        r.open_string = string_start;
    r.ends_in_value = in_string || depth > 0;
    return r;
}

/* True when nothing after cJSON's error offset but the unfinished token itself remains: the
 * text stopped early (a body cut off in transit) rather than going wrong in the middle. */
static int error_runs_to_end(const char *text, size_t len, size_t offset)
{
    for (size_t i = offset + 1; i < len; i++)
        if (memchr(" \t\r\n,:{}[]", text[i], 10))
            return 0;
    return 1;
}

static void describe_parse_error(const char *text, size_t len, char *err, size_t errlen)
{
    const char *at = cJSON_GetErrorPtr();
    size_t offset = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
    json_scan scan = scan_json(text, len);
    /* cJSON points just after the quote of an unterminated string and clamps "ran off the
     * end" to the last byte, so truncation is told from the scan, not from the offset. */
    int truncated = offset >= len || (scan.ends_in_value && (offset > scan.open_string ||
                                                             error_runs_to_end(text, len, offset)));
    if (truncated)
        snprintf(err, errlen, "truncated JSON (%zu bytes)", len);
    else
        snprintf(err, errlen, "invalid JSON at byte %zu of %zu", offset, len);
}

/* What the decoded value was in JSON: after the bridge an array and an object are both
 * tables (and [] and {} the same empty table), so this is the only way to tell. */
static const char *json_type_name(const cJSON *item)
{
    if (cJSON_IsObject(item))
        return "object";
    if (cJSON_IsArray(item))
        return "array";
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsBool(item))
        return "boolean";
    return "null";
}

/* Pushes the tree as tables, or explains why not (a duplicate key) and pushes nothing. */
static int push_tree(lua_State *L, cJSON *tree, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    anchor *a = anchor_push(L, tree, release_tree);
    const cJSON *duplicate = push_value(L, tree, 0);
    if (duplicate)
        describe_duplicate(duplicate->string, err, errlen); /* before the tree is freed */
    lua_settop(L, top + 1 + !duplicate);
    anchor_release(a);
    lua_remove(L, top + 1);
    return duplicate ? -1 : 0;
}

/* Pushes `len` bytes of text with each byte that does not begin or continue a valid UTF-8
 * sequence replaced by U+FFFD, the way the store cleans text for PostgreSQL (db_values.c).
 * A Lua string, so that a Lua error while it is decoded cannot leak it. */
static void push_replaced_utf8(lua_State *L, const char *text, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t i = 0;
    while (i < len) {
        size_t bad = i + script_utf8_invalid_at(text + i, len - i);
        luaL_addlstring(&b, text + i, bad - i);
        if (bad < len)
            luaL_addlstring(&b, "\xEF\xBF\xBD", 3);
        i = bad + 1;
    }
    luaL_pushresult(&b);
}

static int push_text(lua_State *L, const char *text, size_t len, const char **type, char *err,
                     size_t errlen, bool replace_invalid);

/* The text again with U+FFFD for its invalid bytes, decoded; the copy leaves the stack. */
static int push_replaced_text(lua_State *L, const char *text, size_t len, const char **type,
                              char *err, size_t errlen)
{
    push_replaced_utf8(L, text, len);
    size_t n;
    const char *copy = lua_tolstring(L, -1, &n);
    int rc = push_text(L, copy, n, type, err, errlen, false);
    lua_remove(L, rc == 0 ? -2 : -1);
    return rc;
}

static int push_text(lua_State *L, const char *text, size_t len, const char **type, char *err,
                     size_t errlen, bool replace_invalid)
{
    size_t bad_utf8 = script_utf8_invalid_at(text, len);
    if (bad_utf8 == len && script_json_stream_push(L, text, len, type) == 0)
        return 0; /* the common case; below, cJSON decides and explains */
    if (bad_utf8 < len && replace_invalid)
        return push_replaced_text(L, text, len, type, err, errlen);
    cJSON *tree = cJSON_ParseWithLength(text, len);
    if (!tree) {
        /* cJSON's reason first: a body cut inside a character is "truncated", as any other */
        describe_parse_error(text, len, err, errlen);
        return -1;
    }
    if (bad_utf8 < len) {
        cJSON_Delete(tree);
        snprintf(err, errlen, "not valid UTF-8 at byte %zu of %zu", bad_utf8, len);
        return -1;
    }
    /* Refused, never truncated: a string cut at its NUL could pass a check it should fail. */
    size_t nul_at = scan_json(text, len).nul_at;
    if (nul_at < len) {
        cJSON_Delete(tree);
        snprintf(err, errlen, "NUL character in the JSON at byte %zu of %zu", nul_at, len);
        return -1;
    }
    *type = json_type_name(tree);
    return push_tree(L, tree, err, errlen);
}

int script_json_push_text(lua_State *L, const char *text, size_t len, char *err, size_t errlen)
{
    const char *type;
    return push_text(L, text, len, &type, err, errlen, false);
}

void script_json_set_response(lua_State *L, int idx, const char *body, size_t len)
{
    char reason[128];
    const char *type;
    idx = absolute_index(L, idx);
    if (len && push_text(L, body, len, &type, reason, sizeof reason, false) == 0) {
        lua_setfield(L, idx, "json");
        lua_pushstring(L, type);
        lua_setfield(L, idx, "json_type");
    } else {
        lua_pushstring(L, len ? reason : "empty body");
        lua_setfield(L, idx, "json_error");
    }
}

/* ------------------------------------------------------------------ Lua -> JSON */

static cJSON *from_lua(lua_State *L, int idx, int depth, char *err, size_t errlen);

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void script_json_sorted_keys(lua_State *L, int idx, size_t n, const char **keys)
{
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        keys[k++] = lua_tostring(L, -1); /* anchored by the table itself */
    }
    qsort(keys, n, sizeof *keys, compare_keys);
}

int script_json_table_shape(lua_State *L, int idx, size_t *count, char *err, size_t errlen)
{
    size_t n = 0, strings = 0;
    double max_index = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            double k = lua_tonumber(L, -1);
            if (k < 1 || k != floor(k)) {
                lua_pop(L, 1);
                snprintf(err, errlen, "cannot encode table key %g", k);
                return -1;
            }
            if (k > max_index)
                max_index = k;
        } else {
            snprintf(err, errlen, "cannot encode a table key of type %s",
                     lua_typename(L, lua_type(L, -1)));
            lua_pop(L, 1);
            return -1;
        }
    }
    *count = n;
    if (strings == n)
        return n == 0 ? 1 : 0;
    if (strings == 0 && max_index == (double)n)
        return 1;
    snprintf(err, errlen, "cannot encode a table that mixes list and named entries");
    return -1;
}

static cJSON *array_from_lua(lua_State *L, int idx, size_t n, int depth, char *err,
                             size_t errlen)
{
    cJSON *array = cJSON_CreateArray();
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        cJSON *item = from_lua(L, lua_gettop(L), depth + 1, err, errlen);
        lua_pop(L, 1);
        if (!item) {
            cJSON_Delete(array);
            return NULL;
        }
        cJSON_AddItemToArray(array, item);
    }
    return array;
}

static cJSON *object_from_lua(lua_State *L, int idx, size_t n, int depth, char *err,
                              size_t errlen)
{
    const char **keys = malloc(n * sizeof *keys);
    cJSON *object = cJSON_CreateObject();
    script_json_sorted_keys(L, idx, n, keys);
    for (size_t i = 0; i < n && object; i++) {
        lua_pushstring(L, keys[i]);
        lua_rawget(L, idx); /* raw: a script's metatable must not run inside the encoder */
        cJSON *item = from_lua(L, lua_gettop(L), depth + 1, err, errlen);
        lua_pop(L, 1);
        if (!item) {
            cJSON_Delete(object);
            object = NULL;
        } else {
            cJSON_AddItemToObject(object, keys[i], item);
        }
    }
    free(keys);
    return object;
}

static cJSON *from_lua(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
    if (depth > SCRIPT_JSON_MAX_DEPTH) {
        snprintf(err, errlen, "value nested deeper than %d levels (or a cycle)",
                 SCRIPT_JSON_MAX_DEPTH);
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return cJSON_CreateNull();
    case LUA_TBOOLEAN:
        return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double x = lua_tonumber(L, idx);
        if (!isfinite(x)) {
            snprintf(err, errlen, "cannot encode the non-finite number %g", x);
            return NULL;
        }
        return cJSON_CreateNumber(x);
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len) {
            snprintf(err, errlen, "cannot encode a string containing a NUL byte");
            return NULL;
        }
        return cJSON_CreateString(s);
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return cJSON_CreateNull();
        break;
    case LUA_TTABLE: {
        size_t n;
        luaL_checkstack(L, 4, "JSON too deep");
        int shape = script_json_table_shape(L, idx, &n, err, errlen);
        if (shape < 0)
            return NULL;
        return shape ? array_from_lua(L, idx, n, depth, err, errlen)
                     : object_from_lua(L, idx, n, depth, err, errlen);
    }
    default:
        break;
    }
    snprintf(err, errlen, "cannot encode a value of type %s", lua_typename(L, lua_type(L, idx)));
    return NULL;
}

cJSON *script_json_from_lua(lua_State *L, int idx, char *err, size_t errlen)
{
    return from_lua(L, absolute_index(L, idx), 0, err, errlen);
}

int script_json_decode_fn(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    char err[128];
    if (script_json_push_text(L, text, len, err, sizeof err) != 0)
        return luaL_error(L, "json_decode: %s", err);
    return 1;
}

/* native.json_decode_state(s): the engine's own account state. A custom rule may have put a
 * string with invalid UTF-8 into it; the store keeps such a state with U+FFFD in place of
 * those bytes (db_values.c), so that is how it is read back here too. Refusing it, as
 * json_decode does, would make the next poll see no previous state at all. */
int script_json_decode_state_fn(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    char err[128];
    const char *type;
    if (push_text(L, text, len, &type, err, sizeof err, true) != 0)
        return luaL_error(L, "json_decode: %s", err);
    return 1;
}
