/* JSON text -> Lua values straight from yajl's events, without a cJSON tree in between.
 *
 * Why: decoding every response body into a cJSON tree, then copying the tree into tables and
 * freeing it, was about 45,000 instructions a poll (a third of them strtod). yajl (Debian's
 * libyajl2, a maintained event parser) calls back per token, and the values go on the Lua
 * stack; a container becomes a table when it closes, created with its exact size and filled
 * in document order, as the tree path did. (pairs() order was never fixed: this LuaJIT places
 * string keys by each string's creation serial, so it depends on what the state made before.)
 *
 * This is a fast path only. It gives up, and script_json.c decodes with cJSON exactly as
 * before, whenever the result or the error might not be what cJSON gives: any parse error
 * (cJSON's own message and offset are reported), any "\u" escape (cJSON's surrogate and NUL
 * rules stay cJSON's), a number longer than cJSON's 63 characters, nesting deeper than the
 * limit, or more values than the Lua stack takes. So what yajl accepts here is a subset of
 * what cJSON accepts, with the same values. yajl's UTF-8 check is off: cJSON passes bytes
 * through as they are.
 */
#include "script_json_stream.h"

#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yajl/yajl_parse.h>

#include "script_json.h"

#define HANDLE "m2p.yajl_handle"

/* cJSON copies at most 63 characters of a number before strtod. */
#define CJSON_NUMBER_CHARS 63

typedef struct frame {
    int base;     /* stack index of the container's first child (a key, for objects) */
    int is_array; /* else an object: children are key, value pairs */
} frame;

typedef struct builder {
    lua_State *L;
    int depth; /* containers open */
    frame frames[SCRIPT_JSON_MAX_DEPTH + 1];
    const char *type; /* the top-level value's JSON type */
} builder;

/* Room for one more value (and its key); 0 stops the parse when the stack is full. */
static int begin_value(builder *b, const char *type)
{
    if (b->depth == 0 && !b->type)
        b->type = type;
    return b->depth <= SCRIPT_JSON_MAX_DEPTH && lua_checkstack(b->L, 4);
}

static int on_null(void *ctx)
{
    builder *b = ctx;
    if (!begin_value(b, "null"))
        return 0;
    lua_pushlightuserdata(b->L, NULL);
    return 1;
}

static int on_boolean(void *ctx, int value)
{
    builder *b = ctx;
    if (!begin_value(b, "boolean"))
        return 0;
    lua_pushboolean(b->L, value);
    return 1;
}

static const double POWERS_OF_TEN[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The double strtod gives for a plain decimal of at most 15 significant digits and no
 * exponent: the digits as an integer (exact below 2^53) divided by an exact power of ten is
 * one correctly rounded operation, so the same double. 0 when the text is anything else. */
static int plain_decimal(const char *s, size_t len, double *out)
{
    size_t i = 0;
    int negative = s[0] == '-';
    i += (size_t)negative;
    uint64_t mantissa = 0;
    int digits = 0, decimals = 0, in_fraction = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            mantissa = mantissa * 10 + (uint64_t)(c - '0');
            if (mantissa)
                digits++;
            decimals += in_fraction;
        } else if (c == '.' && !in_fraction) {
            in_fraction = 1;
        } else {
            return 0; /* an exponent: strtod */
        }
        if (digits > 15 || decimals > 22)
            return 0;
    }
    double v = (double)mantissa / POWERS_OF_TEN[decimals];
    *out = negative ? -v : v;
    return 1;
}

static int on_number(void *ctx, const char *text, size_t len)
{
    builder *b = ctx;
    if (!begin_value(b, "number") || len > CJSON_NUMBER_CHARS)
        return 0;
    double v;
    if (!plain_decimal(text, len, &v)) {
        /* as cJSON does: strtod on a copy, with the locale's decimal point */
        char copy[CJSON_NUMBER_CHARS + 1];
        char point = localeconv()->decimal_point[0];
        for (size_t i = 0; i < len; i++)
            copy[i] = text[i] == '.' ? point : text[i];
        copy[len] = '\0';
        v = strtod(copy, NULL);
    }
    lua_pushnumber(b->L, v);
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    builder *b = ctx;
    if (!begin_value(b, "string"))
        return 0;
    lua_pushlstring(b->L, (const char *)s, len);
    return 1;
}

static int on_key(void *ctx, const unsigned char *s, size_t len)
{
    builder *b = ctx;
    lua_pushlstring(b->L, (const char *)s, len); /* room was made by the object's start */
    return 1;
}

static int open_container(builder *b, int is_array)
{
    if (!begin_value(b, is_array ? "array" : "object"))
        return 0;
    if (b->depth >= SCRIPT_JSON_MAX_DEPTH + 1)
        return 0;
    frame *f = &b->frames[b->depth++];
    f->base = lua_gettop(b->L) + 1;
    f->is_array = is_array;
    return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, 0); }
static int on_start_array(void *ctx) { return open_container(ctx, 1); }

/* Replaces the container's children on the stack by its table. */
static int close_container(builder *b)
{
    lua_State *L = b->L;
    frame *f = &b->frames[--b->depth];
    int n = lua_gettop(L) - f->base + 1;
    if (!lua_checkstack(L, 3))
        return 0;
    if (f->is_array) {
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, f->base + i);
            lua_rawseti(L, -2, i + 1);
        }
    } else {
        lua_createtable(L, 0, n / 2);
        for (int i = 0; i < n; i += 2) {
            lua_pushvalue(L, f->base + i);
            lua_pushvalue(L, f->base + i + 1);
            lua_rawset(L, -3);
        }
    }
    if (n > 0) { /* else the new table is already where the container began */
        lua_replace(L, f->base);
        lua_settop(L, f->base);
    }
    return 1;
}

static int on_end(void *ctx) { return close_container(ctx); }

static const yajl_callbacks CALLBACKS = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/* The handle lives in a userdata while yajl runs: a Lua error inside a callback (the memory
 * ceiling) unwinds past yajl, and the GC then frees the handle. */
static int handle_gc(lua_State *L)
{
    yajl_handle *h = luaL_checkudata(L, 1, HANDLE);
    if (*h)
        yajl_free(*h);
    *h = NULL;
    return 0;
}

static yajl_handle *handle_push(lua_State *L)
{
    yajl_handle *h = lua_newuserdata(L, sizeof *h);
    *h = NULL;
    if (luaL_newmetatable(L, HANDLE)) {
        lua_pushcfunction(L, handle_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return h;
}

static int has_unicode_escape(const char *text, size_t len)
{
    for (const char *p = text; (p = memchr(p, '\\', len - (size_t)(p - text))); p++)
        if ((size_t)(p - text) + 1 < len && p[1] == 'u')
            return 1;
    return 0;
}

int script_json_stream_push(lua_State *L, const char *text, size_t len, const char **type)
{
    if (has_unicode_escape(text, len) || !lua_checkstack(L, 4))
        return -1;
    int top = lua_gettop(L);
    yajl_handle *h = handle_push(L);
    builder b = {.L = L, .depth = 0, .type = NULL};
    *h = yajl_alloc(&CALLBACKS, NULL, &b);
    if (!*h) {
        lua_settop(L, top);
        return -1;
    }
    yajl_config(*h, yajl_dont_validate_strings, 1);
    int ok = yajl_parse(*h, (const unsigned char *)text, len) == yajl_status_ok &&
             yajl_complete_parse(*h) == yajl_status_ok && lua_gettop(L) == top + 2;
    yajl_free(*h);
    *h = NULL;
    if (!ok) {
        lua_settop(L, top);
        return -1;
    }
    lua_remove(L, top + 1); /* the handle's userdata */
    *type = b.type;
    return 0;
}
