/* Lua value -> JSON text, written straight into one buffer (no cJSON tree in between).
 *
 * Why not cJSON here: this runs twice per poll (observation and account state) and cJSON's
 * tree plus its number printing (sprintf "%1.15g", then sscanf to check, sometimes sprintf
 * "%1.17g" again) was a quarter of a poll's instructions. The text must stay byte for byte
 * what cJSON_PrintUnformatted printed before: the stored state, the observation hash and the
 * snapshots are compared with it. So this file reproduces cJSON 1.7's output rules exactly
 * (escapes, number format, key order by strcmp) and tests/unit/test_script_json.c checks it
 * against cJSON itself on random and edge-case values. Only writing is done here: every JSON
 * parse is still cJSON's (engine/script/script_json.c).
 */
#include "script_json.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define OUT_BUFFER "m2p.json_out"            /* the metatable */
#define OUT_BUFFER_KEY "m2p.json_out_buffer" /* the registry's one buffer */

/* ------------------------------------------------------------------ numbers */

static size_t format_uint(uint64_t v, char *out)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* What cJSON 1.7.15's print_number does for the doubles the fast paths below do not cover
 * (tiny, huge, not a multiple of 1e-8), with one difference: "%1.15g" is kept only when it
 * reads back as the same double, else "%1.17g" (which always does). cJSON kept "%1.15g"
 * within a tolerance of one ulp (0.1 * 3 printed "0.3"), and a state stored one ulp low
 * awarded the same large payout again on every poll (docs/reliability.md, "Money exact to
 * 1e-8"). The texts differ from cJSON's only for those doubles; the cost is the same (one
 * snprintf and one sscanf, a second snprintf when needed), and the fast paths run first. */
static size_t format_like_cjson(double d, char *out)
{
    char point = localeconv()->decimal_point[0];
    double test = 0;
    int n = snprintf(out, SCRIPT_JSON_NUMBER_MAX, "%1.15g", d);
    if (sscanf(out, "%lg", &test) != 1 || test != d)
        n = snprintf(out, SCRIPT_JSON_NUMBER_MAX, "%1.17g", d);
    for (int i = 0; i < n; i++)
        if (out[i] == point)
            out[i] = '.'; /* as cJSON does: JSON's decimal point whatever the locale */
    return (size_t)n;
}

/* A double that is the nearest one to k * 1e-8 with |k| < 1e15 (every amount a pool reports
 * in satoshi-like units, and most hash rates) printed from the integer k. "%1.15g" prints the
 * same digits: k has at most 15 digits, the double is within half an ulp of k * 1e-8, far
 * less than half a unit in the 15th digit, so rounding to 15 digits gives back k * 1e-8 and
 * sscanf gives back the double. 1e-4 <= |d| keeps "%g" in fixed notation (below it prints
 * "1e-05"), as |d| < 1e7 does at the top. Returns 0 when d is not such a value. */
static size_t format_eight_decimals(double d, char *out)
{
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e7))
        return 0;
    double scaled = nearbyint(a * 1e8);
    uint64_t k = (uint64_t)scaled;
    if ((double)k / 1e8 != a) /* exact: k < 2^53 and IEEE division rounds correctly */
        return 0;
    size_t n = 0;
    if (d < 0)
        out[n++] = '-';
    n += format_uint(k / 100000000u, out + n);
    uint64_t frac = k % 100000000u;
    if (frac) {
        char digits[8];
        for (int i = 7; i >= 0; i--, frac /= 10)
            digits[i] = (char)('0' + frac % 10);
        size_t last = 8;
        while (digits[last - 1] == '0')
            last--;
        out[n++] = '.';
        memcpy(out + n, digits, last);
        n += last;
    }
    return n;
}

size_t script_json_format_number(double d, char *out)
{
    size_t n;
    if (!isfinite(d)) {
        n = 4;
        memcpy(out, "null", 4); /* never reached from Lua: non-finite numbers are refused */
    } else if (d == floor(d) && fabs(d) < 1e15) {
        /* cJSON 1.7.15 prints these with "%1.15g" too: below 1e15 that is the plain digits,
         * and "-0" for minus zero. */
        n = 0;
        if (signbit(d))
            out[n++] = '-';
        n += format_uint((uint64_t)fabs(d), out + n);
    } else if ((n = format_eight_decimals(d, out)) == 0) {
        n = format_like_cjson(d, out);
    }
    out[n] = '\0';
    return n;
}

/* ------------------------------------------------------------------ the buffer */

/* One per Lua state, kept in the registry and reused: a fresh buffer per call cost more in
 * realloc than the encoding itself. Owned by Lua, so a Lua error half-way (the memory ceiling,
 * a stack overflow) leaks nothing; the encoder runs no Lua code (raw gets only), so it is never
 * entered twice at once. */
typedef struct out_buffer {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
} out_buffer;

/* A buffer grown past this for one large value is given back after it. */
#define KEEP_BYTES (64 * 1024)

static int out_buffer_gc(lua_State *L)
{
    out_buffer *b = luaL_checkudata(L, 1, OUT_BUFFER);
    free(b->data);
    b->data = NULL;
    return 0;
}

/* Pushes the state's buffer (creating it the first time), emptied. */
static out_buffer *out_buffer_get(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, OUT_BUFFER_KEY);
    out_buffer *b = lua_touserdata(L, -1);
    if (!b) {
        lua_pop(L, 1);
        b = lua_newuserdata(L, sizeof *b);
        memset(b, 0, sizeof *b);
        if (luaL_newmetatable(L, OUT_BUFFER)) {
            lua_pushcfunction(L, out_buffer_gc);
            lua_setfield(L, -2, "__gc");
        }
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, OUT_BUFFER_KEY);
    }
    if (b->cap > KEEP_BYTES) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
    b->failed = 0;
    return b;
}

static char *reserve(out_buffer *b, size_t n)
{
    if (b->failed)
        return NULL;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->failed = 1;
            return NULL;
        }
        b->data = data;
        b->cap = cap;
    }
    return b->data + b->len;
}

static void put(out_buffer *b, const char *s, size_t n)
{
    char *p = reserve(b, n);
    if (p) {
        memcpy(p, s, n);
        b->len += n;
    }
}

static void put_char(out_buffer *b, char c) { put(b, &c, 1); }

/* cJSON's escapes: the two-character ones, \u00xx (lower-case hex) for the other control
 * characters, every other byte (UTF-8 included, DEL included) as it is. */
static void put_string(out_buffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t need = len + 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 32)
            need += c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' ? 1 : 5;
        else if (c == '"' || c == '\\')
            need += 1;
    }
    char *p = reserve(b, need);
    if (!p)
        return;
    char *start = p;
    *p++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 31 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        default:
            memcpy(p, "u00", 3);
            p[3] = hex[c >> 4];
            p[4] = hex[c & 15];
            p += 5;
            break;
        }
    }
    *p++ = '"';
    b->len += (size_t)(p - start);
}

/* ------------------------------------------------------------------ Lua -> text */

static int encode(lua_State *L, int idx, int depth, out_buffer *b, char *err, size_t errlen);

static int encode_array(lua_State *L, int idx, size_t n, int depth, out_buffer *b, char *err,
                        size_t errlen)
{
    put_char(b, '[');
    for (size_t i = 1; i <= n; i++) {
        if (i > 1)
            put_char(b, ',');
        lua_rawgeti(L, idx, (int)i);
        int rc = encode(L, lua_gettop(L), depth + 1, b, err, errlen);
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    put_char(b, ']');
    return 0;
}

/* Keys in strcmp order, each looked up again by its C string: exactly what the cJSON encoder
 * did (a key holding a NUL byte is cut there, as it was). */
static int encode_object(lua_State *L, int idx, size_t n, int depth, out_buffer *b, char *err,
                         size_t errlen)
{
    const char *small[32];
    const char **keys = n <= 32 ? small : malloc(n * sizeof *keys);
    if (!keys) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    script_json_sorted_keys(L, idx, n, keys);
    int rc = 0;
    put_char(b, '{');
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            put_char(b, ',');
        put_string(b, keys[i], strlen(keys[i]));
        put_char(b, ':');
        lua_pushstring(L, keys[i]);
        lua_rawget(L, idx); /* raw: a script's metatable must not run inside the encoder */
        rc = encode(L, lua_gettop(L), depth + 1, b, err, errlen);
        lua_pop(L, 1);
    }
    put_char(b, '}');
    if (keys != small)
        free(keys);
    return rc;
}

static int encode_number(lua_State *L, int idx, out_buffer *b, char *err, size_t errlen)
{
    double x = lua_tonumber(L, idx);
    if (!isfinite(x)) {
        snprintf(err, errlen, "cannot encode the non-finite number %g", x);
        return -1;
    }
    char text[SCRIPT_JSON_NUMBER_MAX];
    put(b, text, script_json_format_number(x, text));
    return 0;
}

static int encode_string(lua_State *L, int idx, out_buffer *b, char *err, size_t errlen)
{
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (memchr(s, '\0', len)) {
        snprintf(err, errlen, "cannot encode a string containing a NUL byte");
        return -1;
    }
    put_string(b, s, len);
    return 0;
}

static int encode(lua_State *L, int idx, int depth, out_buffer *b, char *err, size_t errlen)
{
    if (depth > SCRIPT_JSON_MAX_DEPTH) {
        snprintf(err, errlen, "value nested deeper than %d levels (or a cycle)",
                 SCRIPT_JSON_MAX_DEPTH);
        return -1;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        put(b, "null", 4);
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put(b, "true", 4);
        else
            put(b, "false", 5);
        return 0;
    case LUA_TNUMBER:
        return encode_number(L, idx, b, err, errlen);
    case LUA_TSTRING:
        return encode_string(L, idx, b, err, errlen);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            put(b, "null", 4);
            return 0;
        }
        break;
    case LUA_TTABLE: {
        size_t n;
        luaL_checkstack(L, 4, "JSON too deep");
        int shape = script_json_table_shape(L, idx, &n, err, errlen);
        if (shape < 0)
            return -1;
        return shape ? encode_array(L, idx, n, depth, b, err, errlen)
                     : encode_object(L, idx, n, depth, b, err, errlen);
    }
    default:
        break;
    }
    snprintf(err, errlen, "cannot encode a value of type %s", lua_typename(L, lua_type(L, idx)));
    return -1;
}

int script_json_encode_fn(lua_State *L)
{
    char err[160];
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    out_buffer *b = out_buffer_get(L);
    if (encode(L, 1, 0, b, err, sizeof err) != 0)
        return luaL_error(L, "json_encode: %s", err);
    if (b->failed)
        return luaL_error(L, "json_encode: out of memory");
    lua_pushlstring(L, b->data, b->len);
    return 1;
}
