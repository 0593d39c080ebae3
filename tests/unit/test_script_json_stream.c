/* The yajl fast path of JSON decoding (engine/script/script_json_stream.c) against the cJSON
 * path it stands in for: whatever it accepts must decode to the same Lua values, in tables of
 * the same sizes, and whatever it is not sure of
 * (errors, \u escapes, cJSON's limits) it must hand back to cJSON untouched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "script_json.h"
#include "script_json_stream.h"

/* Lua: a value as text, keys sorted, numbers to the last bit (and -0 told). Sorted, not in
 * pairs() order: this LuaJIT places a string key by the string's creation serial, so pairs()
 * order depends on which strings the state made before, on the tree path too. */
static const char *DUMP =
    "local function dump(v)\n"
    "  if type(v) == 'table' then\n"
    "    local keys = {}\n"
    "    for k in pairs(v) do keys[#keys + 1] = k end\n"
    "    table.sort(keys, function(a, b)\n"
    "      if type(a) ~= type(b) then return type(a) < type(b) end return a < b end)\n"
    "    local parts = {'#' .. #v}\n"
    "    for _, k in ipairs(keys) do\n"
    "      parts[#parts + 1] = string.format('%q', k) .. '=' .. dump(v[k])\n"
    "    end\n"
    "    return '{' .. table.concat(parts, ',') .. '}'\n"
    "  elseif type(v) == 'number' then\n"
    "    return string.format('%.17g', v) .. ((v == 0 and 1 / v < 0) and '(-0)' or '')\n"
    "  elseif type(v) == 'string' then return string.format('%q', v)\n"
    "  else return type(v) .. ':' .. tostring(v) end\n"
    "end\n"
    "return dump\n";

static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x9e3779b97f4a7c15u;
}

/* Replaces the value on top of the stack by its dump. */
static void dump_top(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "test.dump");
    lua_insert(L, -2);
    lua_call(L, 1, 1);
}

/* The reference: cJSON's tree pushed as tables, as the decoder did before the fast path.
 * Returns its dump (malloc'd) or NULL when cJSON refuses the text or it is too deep. */
static char *reference(lua_State *L, const char *text, size_t len)
{
    cJSON *tree = cJSON_ParseWithLength(text, len);
    if (!tree)
        return NULL;
    int top = lua_gettop(L);
    char *out = NULL;
    lua_getglobal(L, "push_tree");
    lua_pushlightuserdata(L, tree);
    if (lua_pcall(L, 1, 1, 0) == 0) {
        dump_top(L);
        out = strdup(lua_tostring(L, -1));
    }
    lua_settop(L, top);
    cJSON_Delete(tree);
    return out;
}

static int push_tree(lua_State *L)
{
    script_json_push(L, lua_touserdata(L, 1));
    return 1;
}

static int compared, handed_back, differ;

/* Decodes with the fast path; when it accepts, the result must equal the reference. Returns
 * 1 when the fast path accepted. */
static int check_text(lua_State *L, const char *text, size_t len)
{
    char *ref = reference(L, text, len);
    const char *type = NULL;
    int top = lua_gettop(L);
    if (script_json_stream_push(L, text, len, &type) != 0) {
        CHECK(lua_gettop(L) == top, "stack changed on hand-back");
        handed_back++;
        free(ref);
        return 0;
    }
    CHECK(lua_gettop(L) == top + 1, "one value pushed");
    dump_top(L);
    const char *mine = lua_tostring(L, -1);
    compared++;
    if (!ref || strcmp(ref, mine) != 0) {
        if (differ++ < 10)
            fprintf(stderr, "%.*s\n  yajl:  %.300s\n  cJSON: %.300s\n",
                    (int)(len > 300 ? 300 : len), text, mine, ref ? ref : "(refused)");
    }
    cJSON *tree = cJSON_ParseWithLength(text, len);
    const char *expected = !tree                 ? "?"
                           : cJSON_IsObject(tree) ? "object"
                           : cJSON_IsArray(tree)  ? "array"
                           : cJSON_IsString(tree) ? "string"
                           : cJSON_IsNumber(tree) ? "number"
                           : cJSON_IsBool(tree)   ? "boolean"
                                                  : "null";
    CHECK(type && strcmp(type, expected) == 0, "type %s, expected %s for %.60s", type, expected,
          text);
    cJSON_Delete(tree);
    lua_settop(L, top);
    free(ref);
    return 1;
}

static int accepted(lua_State *L, const char *text) { return check_text(L, text, strlen(text)); }

static void test_fixed_cases(lua_State *L)
{
    static const char *const same[] = {
        "{}", "[]", "[[]]", "{\"a\":{}}", "0", "-0", "-0.0", "1.5", "\"s\"", "true", "false",
        "null", "  {\"a\" : 1 , \"b\":[1,2,3]}\n", "[{\"a\":1},{\"a\":2}]", "{\"a\":{\"a\":1}}",
        "{\"paid\":0.12345678,\"balance\":\"12.5\",\"hashrate\":123456789.123}",
        "[1e400,-1e400,1e-400,5e-324,1.7976931348623157e308,123456789012345678901234567890]",
        "[0.1,0.2,0.30000000000000004,1e22,1e23,9007199254740993,0.000000000000000000001]",
        "[999999999999999,1000000000000000,12345678.12345678,-98765.4321,3.0e2,2E-3]",
        /* not UTF-8, passed through: script_json.c refuses it before either decoder runs */
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\xff\xfe not UTF-8 \xe2\x82\xac\"", "{\"\":\"\"}",
        "{\"workers\":{\"w1\":{\"hashrate\":1.5},\"w2\":{\"hashrate\":2.5}},\"history\":[[1,2]]}",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        CHECK(accepted(L, same[i]), "fast path refused %s", same[i]);
    /* Handed back to cJSON: its errors and its rules, not yajl's. */
    static const char *const back[] = {
        "", " ", "{", "[1,", "{\"a\":1", "[1]x", "{\"a\":1}{}", "nul", "[01]", "[1.]", "[.5]",
        "[\"\\u0041\"]", "[\"\\u0000\"]", "[\"\\ud800\"]", "{\"k\\u00e9\":1}", "[+1]", "[NaN]",
        "[Infinity]", "[\"tab\there\"]", "{\"dup\":1,\"dup\":2}", "{\"a\":null,\"a\":null}",
        "[1,{\"x\":{\"y\":[],\"y\":[]}}]", "\xef\xbb\xbf{}", "/* comment */ {}", "{a:1}", "['x']",
        /* 65 digits: cJSON reads 63 and then fails; yajl would take it */
        "[12345678901234567890123456789012345678901234567890123456789012345]",
    };
    for (size_t i = 0; i < sizeof back / sizeof back[0]; i++)
        CHECK(!accepted(L, back[i]), "fast path took %s", back[i]);
    CHECK(!check_text(L, "[\"a\0b\"]", 7), "raw NUL in a string taken");
    CHECK(!check_text(L, "[1]\0", 4), "raw NUL after the value taken");
}

static void test_depth(lua_State *L)
{
    char text[300];
    for (int levels = 63; levels <= 66; levels++) {
        for (int i = 0; i < levels; i++)
            text[i] = '[';
        text[levels] = '1';
        for (int i = 0; i < levels; i++)
            text[levels + 1 + i] = ']';
        size_t len = (size_t)(2 * levels + 1);
        /* 64 containers around a value: the value is at depth 64, the last the limit takes */
        CHECK(check_text(L, text, len) == (levels <= 64), "%d levels", levels);
        text[levels] = ' ';
        CHECK(check_text(L, text, len) == (levels <= 65), "%d levels, innermost empty", levels);
    }
    /* Far deeper than the limit: handed back before yajl's own stack grows without end. */
    size_t deep = 100000;
    char *big = malloc(deep);
    memset(big, '[', deep);
    CHECK(!check_text(L, big, deep), "100000 levels taken");
    free(big);
}

/* More values than the Lua stack takes at once: handed back, not an error. */
static void test_wide(lua_State *L)
{
    size_t n = 20000, len = 0;
    char *text = malloc(n * 2 + 2);
    text[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        text[len++] = '1';
        text[len++] = ',';
    }
    text[len - 1] = ']';
    check_text(L, text, len);
    CHECK(differ == 0, "wide array differs");
    free(text);
}

/* Arrays and objects around the sizes at which the decoder asks the Lua stack for more room
 * (it asks for 64 slots at a time), nested too: taken, and the same values. */
static void test_stack_room_steps(lua_State *L)
{
    static const int sizes[] = {1, 31, 32, 33, 62, 63, 64, 65, 66, 127, 128, 129, 3000};
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int n = sizes[k];
        for (int shape = 0; shape < 3; shape++) {
            size_t len = (size_t)snprintf(text, cap, "%s", shape == 1 ? "{" : "[");
            for (int i = 0; i < n; i++) {
                const char *sep = i ? "," : "";
                if (shape == 0)
                    len += (size_t)snprintf(text + len, cap - len, "%s%d", sep, i);
                else if (shape == 1)
                    len += (size_t)snprintf(text + len, cap - len, "%s\"k%d\":[%d]", sep, i, i);
                else
                    len += (size_t)snprintf(text + len, cap - len, "%s{\"a\":%d,\"b\":[1,{}]}",
                                            sep, i);
            }
            len += (size_t)snprintf(text + len, cap - len, "%s", shape == 1 ? "}" : "]");
            CHECK(check_text(L, text, len), "%d members, shape %d refused", n, shape);
        }
    }
    free(text);
}

static void random_number(char *out, size_t size)
{
    static const char *const forms[] = {"%d", "%d.%d", "-%d.%0*d", "%d.%de%d", "%dE-%d",
                                        "0.%0*d", "-0.%d", "%d%d%d"};
    int form = (int)(rng() % 8);
    int a = (int)(rng() % 1000000000), b = (int)(rng() % 100000000), c = (int)(rng() % 40);
    switch (form) {
    case 0: snprintf(out, size, forms[0], a); break;
    case 1: snprintf(out, size, forms[1], a, b); break;
    case 2: snprintf(out, size, forms[2], a % 1000, 8, b); break;
    case 3: snprintf(out, size, forms[3], a, b, c - 20); break;
    case 4: snprintf(out, size, forms[4], a, c); break;
    case 5: snprintf(out, size, forms[5], (int)(rng() % 20), b); break;
    case 6: snprintf(out, size, forms[6], b); break;
    default: snprintf(out, size, forms[7], a + 1, a, b); break;
    }
}

static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    while (*len + n + 1 > *cap) {
        *cap *= 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

static void random_value(char **buf, size_t *len, size_t *cap, int depth)
{
    int kind = (int)(rng() % (depth > 5 ? 5 : 7));
    char tmp[64];
    if (rng() % 4 == 0)
        append(buf, len, cap, " \n\t\r"[rng() % 4] == ' ' ? " " : "\n");
    switch (kind) {
    case 0:
    case 1: random_number(tmp, sizeof tmp); append(buf, len, cap, tmp); break;
    case 2: {
        static const char *const strings[] = {"\"\"", "\"plain\"", "\"q\\\"uote\"",
                                              "\"\\\\\\n\\t\"", "\"\xc3\xa9t\xc3\xa9\"",
                                              "\"\x80\x81\"", "\"AGwBxFjnhMYit2YBRQpEx4W\""};
        append(buf, len, cap, strings[rng() % 7]);
        break;
    }
    case 3: append(buf, len, cap, rng() & 1 ? "true" : "false"); break;
    case 4: append(buf, len, cap, "null"); break;
    case 5: {
        int n = (int)(rng() % 6);
        append(buf, len, cap, "[");
        for (int i = 0; i < n; i++) {
            if (i)
                append(buf, len, cap, ",");
            random_value(buf, len, cap, depth + 1);
        }
        append(buf, len, cap, "]");
        break;
    }
    default: {
        int n = (int)(rng() % 30);
        append(buf, len, cap, "{");
        for (int i = 0; i < n; i++) {
            /* keys unique in their object: a duplicate is handed back (test_fixed_cases) */
            snprintf(tmp, sizeof tmp, "%s\"%c%d\":", i ? "," : "", (char)('a' + rng() % 26), i);
            append(buf, len, cap, tmp);
            random_value(buf, len, cap, depth + 1);
        }
        append(buf, len, cap, "}");
        break;
    }
    }
}

static void test_random_documents(lua_State *L)
{
    size_t cap = 1024;
    char *buf = malloc(cap);
    int taken = 0;
    for (int i = 0; i < 3000; i++) {
        size_t len = 0;
        buf[0] = '\0';
        random_value(&buf, &len, &cap, 0);
        taken += check_text(L, buf, len);
    }
    CHECK(taken == 3000, "only %d of 3000 valid documents took the fast path", taken);
    free(buf);
}

/* A string with escapes longer than the decoder's arena: yajl's decode buffer grows past it
 * into malloc'd blocks, which must come out the same (and, under ASan, be freed). */
static void test_long_escaped_string(lua_State *L)
{
    size_t n = 30000, len = 0;
    char *text = malloc(n + 16);
    text[len++] = '[';
    text[len++] = '"';
    while (len < n) {
        memcpy(text + len, "ab\\n\\\"cd", 8);
        len += 8;
    }
    memcpy(text + len, "\",1]", 4);
    len += 4;
    CHECK(check_text(L, text, len), "long escaped string refused");
    free(text);
}

/* An allocator that refuses every allocation after the first `allow` (counted from when the
 * test arms it): a Lua memory error raised in the middle of a parse, as the ceiling does. */
typedef struct failing_alloc {
    int armed;
    long allow;
} failing_alloc;

static void *failing_realloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    failing_alloc *f = ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (f->armed && nsize > (ptr ? osize : 0) && f->allow-- <= 0)
        return NULL;
    return realloc(ptr, nsize);
}

static int push_stream(lua_State *L)
{
    size_t len;
    const char *text = lua_tolstring(L, 1, &len);
    const char *type;
    if (script_json_stream_push(L, text, len, &type) != 0)
        lua_pushliteral(L, "handed back");
    return 1;
}

/* A document with many tables and strings, and an escaped string past the arena. */
static char *allocating_document(size_t *len)
{
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    size_t n = (size_t)snprintf(text, cap, "{\"s\":\"");
    for (int i = 0; i < 1500; i++)
        n += (size_t)snprintf(text + n, cap - n, "x\\ty");
    n += (size_t)snprintf(text + n, cap - n, "\",\"list\":[");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s{\"k%d\":[%d,\"v%d\"]}", i ? "," : "", i, i,
                              i);
    n += (size_t)snprintf(text + n, cap - n, "]}");
    *len = n;
    return text;
}

/* A Lua error from an allocation inside a parse (wherever it lands) must leave nothing
 * allocated (ASan's leak check) and the decoder usable: the next parse takes the fast path
 * again and gives the same value. */
static void test_error_mid_parse(void)
{
    failing_alloc f = {0, 0};
    lua_State *L = lua_newstate(failing_realloc, &f);
    luaL_openlibs(L);
    CHECK(luaL_dostring(L, DUMP) == 0, "dump: %s", lua_tostring(L, -1));
    lua_setfield(L, LUA_REGISTRYINDEX, "test.dump");
    lua_register(L, "push_tree", push_tree);
    size_t len;
    char *text = allocating_document(&len);
    char *ref = reference(L, text, len);
    int failed = 0, recovered = 0;
    for (long allow = 0; allow < 1200; allow += 7) {
        lua_pushcfunction(L, push_stream);
        lua_pushlstring(L, text, len);
        f.allow = allow;
        f.armed = 1;
        int rc = lua_pcall(L, 1, 1, 0);
        f.armed = 0;
        if (rc != 0) {
            failed++;
            lua_pop(L, 1);
            continue;
        }
        dump_top(L);
        recovered += ref && strcmp(lua_tostring(L, -1), ref) == 0;
        lua_pop(L, 1);
    }
    CHECK(failed > 50, "only %d parses were cut short", failed);
    CHECK(recovered > 0, "no parse succeeded with enough memory");
    const char *type;
    CHECK(script_json_stream_push(L, text, len, &type) == 0, "fast path not usable after errors");
    dump_top(L);
    CHECK(ref && strcmp(lua_tostring(L, -1), ref) == 0, "value after errors differs");
    lua_pop(L, 1);
    free(ref);
    free(text);
    lua_close(L);
}

/* A parse started inside a parse (a finalizer that decodes, run by a garbage collection step
 * of an allocation in a callback) must not share the running parse's memory: it is handed
 * back to cJSON, and both values come out right. The engine's sandbox offers no finalizers;
 * this is the guard for when something does. */
static const char *NESTED =
    "local text, inner_text = ...\n"
    "local nested, wrong = 0, 0\n"
    "local function arm()\n"
    "  for i = 1, 50 do\n"
    "    local p = newproxy(true)\n"
    "    getmetatable(p).__gc = function()\n"
    "      local v = stream(inner_text)\n"
    "      if v == 'handed back' then nested = nested + 1\n"
    "      elseif type(v) ~= 'table' or v.n[3] ~= 3 then wrong = wrong + 1 end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "collectgarbage('setpause', 1)\n"
    "collectgarbage('setstepmul', 400)\n"
    "local results = {}\n"
    "for round = 1, 40 do\n"
    "  arm()\n"
    "  results[round] = dump(stream(text))\n"
    "end\n"
    "collectgarbage('setpause', 200)\n"
    "collectgarbage('setstepmul', 200)\n"
    "for round = 2, 40 do\n"
    "  if results[round] ~= results[1] then wrong = wrong + 1 end\n"
    "end\n"
    "return nested, wrong, results[1]\n";

static void test_nested_parse(lua_State *L)
{
    size_t len;
    char *text = allocating_document(&len);
    char *ref = reference(L, text, len);
    lua_register(L, "stream", push_stream);
    lua_getfield(L, LUA_REGISTRYINDEX, "test.dump");
    lua_setglobal(L, "dump");
    CHECK(luaL_loadstring(L, NESTED) == 0, "nested: %s", lua_tostring(L, -1));
    lua_pushlstring(L, text, len);
    lua_pushliteral(L, "{\"n\":[1,2,3]}");
    CHECK(lua_pcall(L, 2, 3, 0) == 0, "nested: %s", lua_tostring(L, -1));
    CHECK(lua_tointeger(L, -3) > 0, "no decode ran inside a parse (the test proves nothing)");
    CHECK(lua_tointeger(L, -2) == 0, "%d wrong values", (int)lua_tointeger(L, -2));
    CHECK(ref && strcmp(lua_tostring(L, -1), ref) == 0, "nested value differs");
    lua_pop(L, 3);
    free(ref);
    free(text);
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    CHECK(luaL_dostring(L, DUMP) == 0, "dump: %s", lua_tostring(L, -1));
    lua_setfield(L, LUA_REGISTRYINDEX, "test.dump");
    lua_register(L, "push_tree", push_tree);
    test_fixed_cases(L);
    test_depth(L);
    test_wide(L);
    test_stack_room_steps(L);
    test_random_documents(L);
    test_long_escaped_string(L);
    test_nested_parse(L);
    CHECK(differ == 0, "%d of %d decoded differently from cJSON", differ, compared);
    CHECK(lua_gettop(L) == 0, "stack left with %d values", lua_gettop(L));
    printf("%d compared, %d handed back to cJSON\n", compared, handed_back);
    lua_close(L);
    test_error_mid_parse();
    return check_summary();
}
