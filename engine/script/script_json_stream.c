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
 * what cJSON accepts, with the same values. A duplicate key in an object also hands back
 * (script_json.c refuses it and names the key): see has_duplicate_key. yajl's UTF-8 check is
 * off: script_json.c validates the whole text before either decoder runs (script_utf8.c),
 * once, rather than yajl per string and cJSON not at all.
 *
 * Memory: yajl allocates from one arena per Lua state (script_json_arena.c), not from malloc,
 * and no userdata is made per parse. Each parse runs under lua_pcall, so a Lua error raised
 * by a callback's allocation (the memory ceiling) unwinds to here, where the arena is reset,
 * and is then raised on unchanged (same error object; as any error re-raised from C, a
 * LUA_ERRMEM arrives as LUA_ERRRUN, the engine tells the ceiling by its own flag).
 */
#include "script_json_stream.h"

#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yajl/yajl_parse.h>

#include "script_json.h"
#include "script_json_arena.h"

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
    int room;         /* free stack slots above the top that lua_checkstack vouched for */
} builder;

/* Slots asked of lua_checkstack at a time: one call per this many values, not one each. */
#define ROOM_STEP 64

/* At least `slots` free slots above the top; 0 stops the parse when the stack is full. */
static int ensure_room(builder *b, int slots)
{
    if (b->room >= slots)
        return 1;
    if (!lua_checkstack(b->L, ROOM_STEP))
        return 0;
    b->room = ROOM_STEP;
    return 1;
}

/* Room for one more value, which the caller pushes (containers: at their close). */
static int begin_value(builder *b, const char *type)
{
    if (b->depth == 0 && !b->type)
        b->type = type;
    if (b->depth > SCRIPT_JSON_MAX_DEPTH || !ensure_room(b, 1))
        return 0;
    b->room--;
    return 1;
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
    if (!ensure_room(b, 1))
        return 0;
    b->room--;
    lua_pushlstring(b->L, (const char *)s, len);
    return 1;
}

static int open_container(builder *b, int is_array)
{
    if (!begin_value(b, is_array ? "array" : "object"))
        return 0;
    b->room++; /* nothing is pushed until the close */
    if (b->depth >= SCRIPT_JSON_MAX_DEPTH + 1)
        return 0;
    frame *f = &b->frames[b->depth++];
    f->base = lua_gettop(b->L) + 1;
    f->is_array = is_array;
    return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, 0); }
static int on_start_array(void *ctx) { return open_container(ctx, 1); }

/* Up to this many keys, an object's keys are compared by identity: LuaJIT interns every
 * string, so equal keys are one object. 120 pointer compares at most, far cheaper than a
 * table lookup per key (which was about 130 instructions a key, 2,000 a poll). */
#define SMALL_OBJECT_KEYS 16

/* 1 when two of the `keys` keys at base, base + 2, ... are equal, 0 when none are, -1 when
 * there are too many to compare here (the caller looks up each slot before setting it). */
static int has_duplicate_key(lua_State *L, int base, int keys)
{
    if (keys > SMALL_OBJECT_KEYS)
        return -1;
    const void *seen[SMALL_OBJECT_KEYS];
    for (int i = 0; i < keys; i++) {
        seen[i] = lua_topointer(L, base + 2 * i);
        for (int j = 0; j < i; j++)
            if (seen[j] == seen[i])
                return 1;
    }
    return 0;
}

/* Replaces the container's children on the stack by its table. */
static int close_container(builder *b)
{
    lua_State *L = b->L;
    frame *f = &b->frames[--b->depth];
    int n = lua_gettop(L) - f->base + 1;
    if (!ensure_room(b, 4)) /* the table, one key, value pair being copied, a lookup */
        return 0;
    if (f->is_array) {
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, f->base + i);
            lua_rawseti(L, -2, i + 1);
        }
    } else {
        int duplicate = has_duplicate_key(L, f->base, n / 2);
        if (duplicate > 0)
            return 0; /* cJSON's path refuses it and names the key */
        lua_createtable(L, 0, n / 2);
        for (int i = 0; i < n; i += 2) {
            lua_pushvalue(L, f->base + i);
            if (duplicate < 0) { /* a big object: its slot, before it is set */
                lua_pushvalue(L, -1);
                lua_rawget(L, -3);
                if (!lua_isnil(L, -1)) /* no value decodes to nil: null is a light userdata */
                    return 0;
                lua_pop(L, 1);
            }
            lua_pushvalue(L, f->base + i + 1);
            lua_rawset(L, -3);
        }
    }
    if (n > 0) { /* else the new table is already where the container began */
        lua_replace(L, f->base);
        lua_settop(L, f->base);
    }
    b->room += n - 1; /* n children gone, one table in their place */
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

/* One per Lua state, in the registry: the arena yajl allocates from. A parse runs inside
 * lua_pcall, so that a Lua error from a callback (the memory ceiling) comes back here, where
 * the arena is reset (nothing leaks, nothing stays "in use") before the error goes on. */
typedef struct decoder {
    int busy; /* a parse is running: one started inside it (from a finalizer) goes to cJSON */
    script_json_arena arena;
} decoder;

typedef struct parse_job {
    decoder *d; /* set once the parse owns the decoder */
    const char *text;
    size_t len;
    const char *type;
    int ok;
} parse_job;

static char PARSE_KEY; /* its address is the registry key of parse_protected's closure */

static int decoder_gc(lua_State *L)
{
    script_json_arena_reset(&((decoder *)lua_touserdata(L, 1))->arena);
    return 0;
}

static void run_yajl(parse_job *job, lua_State *L)
{
    script_json_arena *arena = &job->d->arena;
    builder b = {.L = L, .depth = 0, .type = NULL, .room = 0};
    script_json_arena_reset(arena);
    yajl_alloc_funcs funcs = script_json_arena_funcs(arena);
    yajl_handle h = yajl_alloc(&CALLBACKS, &funcs, &b);
    if (h) {
        yajl_config(h, yajl_dont_validate_strings, 1);
        job->ok = yajl_parse(h, (const unsigned char *)job->text, job->len) == yajl_status_ok &&
                  yajl_complete_parse(h) == yajl_status_ok && lua_gettop(L) == 2;
        yajl_free(h);
    }
    script_json_arena_reset(arena);
    job->type = b.type;
}

/* lua_pcall'd with a parse_job, the decoder its upvalue: leaves the value, or nil with ok
 * unset. A parse already running (this one began inside it) leaves the decoder alone. */
static int parse_protected(lua_State *L)
{
    parse_job *job = lua_touserdata(L, 1);
    decoder *d = lua_touserdata(L, lua_upvalueindex(1));
    if (!d->busy) {
        d->busy = 1;
        job->d = d;
        run_yajl(job, L);
    }
    if (!job->ok)
        lua_pushnil(L);
    return 1;
}

/* Made on first use: the decoder userdata, as the upvalue of parse_protected's closure. */
static void parser_create(lua_State *L)
{
    decoder *d = lua_newuserdata(L, sizeof *d);
    d->busy = 0;
    script_json_arena_init(&d->arena);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, decoder_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, parse_protected, 1);
    lua_pushlightuserdata(L, &PARSE_KEY);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
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
    parse_job job = {.d = NULL, .text = text, .len = len, .type = NULL, .ok = 0};
    lua_pushlightuserdata(L, &PARSE_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        parser_create(L);
    }
    lua_pushlightuserdata(L, &job);
    int rc = lua_pcall(L, 1, 1, 0);
    if (job.d) {
        job.d->busy = 0;
        if (rc != 0) /* what yajl held when the error unwound it */
            script_json_arena_reset(&job.d->arena);
    }
    if (rc != 0)
        lua_error(L); /* the same error object, raised on */
    if (!job.ok) {
        lua_settop(L, top);
        return -1;
    }
    *type = job.type;
    return 0;
}
