/* The JSON text encoder (engine/script/script_json_encode.c) against cJSON itself: every
 * stored account state, observation hash and snapshot depends on the text staying byte for
 * byte what cJSON_PrintUnformatted printed, so each case here is encoded both ways (the old
 * way: script_json_from_lua's cJSON tree, printed by cJSON) and must match. Numbers are also
 * read back: the fast paths (whole numbers, multiples of 1e-8) must give the same double. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "script_json.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    /* xorshift64*: reproducible, so a failure can be replayed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static double random_bits_double(void)
{
    for (;;) {
        uint64_t bits = rng();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d))
            return d;
    }
}

/* ------------------------------------------------------------------ numbers */

static char *cjson_number(double d)
{
    cJSON *n = cJSON_CreateNumber(d);
    char *text = cJSON_PrintUnformatted(n);
    cJSON_Delete(n);
    return text;
}

static int mismatches, reported;

/* The same text as cJSON, except where cJSON's text reads back as another double (its
 * tolerance of one ulp): there the encoder prints "%1.17g", checked by round_trips. */
static void same_as_cjson(double d)
{
    char mine[SCRIPT_JSON_NUMBER_MAX];
    size_t n = script_json_format_number(d, mine);
    char *theirs = cjson_number(d);
    double back = strtod(theirs, NULL);
    bool cjson_exact = back == d || (d != d);
    if (cjson_exact && (strcmp(mine, theirs) != 0 || n != strlen(mine))) {
        mismatches++;
        if (reported++ < 10)
            fprintf(stderr, "number %.17g: encoder \"%s\", cJSON \"%s\"\n", d, mine, theirs);
    }
    free(theirs);
}

static int round_trip_failures;

static void round_trips(double d)
{
    char mine[SCRIPT_JSON_NUMBER_MAX];
    if (!isfinite(d))
        return; /* printed "null": never reached from Lua */
    script_json_format_number(d, mine);
    double back = strtod(mine, NULL);
    if (memcmp(&back, &d, sizeof d) != 0 && !(d == 0 && back == 0)) {
        round_trip_failures++;
        if (reported++ < 10)
            fprintf(stderr, "number %.17g printed \"%s\" reads back %.17g\n", d, mine, back);
    }
}

/* Every number reads back as the same double (a stored state is exactly what was decided);
 * `exact` is kept for the callers that always expected it. */
static void check_number(double d, int exact)
{
    (void)exact;
    same_as_cjson(d);
    round_trips(d);
}

static void test_numbers_edge_cases(void)
{
    static const double cases[] = {
        0.0, -0.0, 1, -1, 0.5, -0.5, 0.1, 0.2, 0.3, 1.5, 100, 1e-8, 2e-8, 1e-4, 9.99e-5,
        1e-5, 0.00012345, 1e7, 1e7 - 1e-8, 9999999.99999999, 1e15, 1e15 - 1, 999999999999999,
        1e15 + 2, 1e16, 1e17, 1e21, 1e22, 1e300, DBL_MAX, -DBL_MAX, DBL_MIN, 5e-324, 1e-300,
        2147483647, 2147483648.0, -2147483648.0, -2147483649.0, 4294967296.0,
        9007199254740992.0, 9007199254740993.0, 123456789.12345678, 0.12345678, 12.00000001,
        3.14159265358979, 2.718281828459045, 1.0 / 3, 2.0 / 3, 123.456, 21000000, 0.00001,
        1e-9, 1.5e-8, 49.99999999, 0.30000000000000004,
    };
    mismatches = reported = round_trip_failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_number(cases[i], 0);
        check_number(-cases[i], 0);
        check_number(nextafter(cases[i], INFINITY), 0);
        check_number(nextafter(cases[i], -INFINITY), 0);
    }
    CHECK(mismatches == 0, "%d edge-case numbers differ from cJSON", mismatches);
    char out[SCRIPT_JSON_NUMBER_MAX];
    script_json_format_number(-0.0, out);
    CHECK(strcmp(out, "-0") == 0, "-0 printed as %s", out);
    script_json_format_number(0.00012345, out);
    CHECK(strcmp(out, "0.00012345") == 0, "got %s", out);
    script_json_format_number(-12.5, out);
    CHECK(strcmp(out, "-12.5") == 0, "got %s", out);
    script_json_format_number(1e15, out);
    CHECK(strcmp(out, "1e+15") == 0, "got %s", out);
    script_json_format_number(1e-8, out);
    CHECK(strcmp(out, "1e-08") == 0, "got %s", out);
    /* cJSON printed these within its tolerance, one ulp away: a state of paid = the first
     * read back lower and awarded 0.00012207 ADVC again on every poll (fuzz_pool regression
     * state-15-digits-reaward). */
    script_json_format_number(1000000000000.0001220703125, out);
    CHECK(strcmp(out, "1000000000000.0001") == 0, "got %s", out);
    script_json_format_number(0.1 * 3, out);
    CHECK(strcmp(out, "0.30000000000000004") == 0, "got %s", out);
    CHECK(round_trip_failures == 0, "%d edge-case numbers do not read back", round_trip_failures);
}

/* Amounts as pools report them: k * 1e-8, over a walk of consecutive steps in several
 * magnitudes and random k up to the 15 digits the fast path takes; whole numbers likewise. */
static void test_numbers_amounts(void)
{
    mismatches = reported = round_trip_failures = 0;
    static const int64_t starts[] = {0, 9990, 10000, 12345678, 99999990, 100000000,
                                     123456789012, 999999999990000, 999999999999000};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++)
        for (int64_t k = starts[s]; k < starts[s] + 20000; k++) {
            check_number((double)k / 1e8, 1);
            check_number(-(double)k / 1e8, 1);
        }
    for (int i = 0; i < 50000; i++) {
        int64_t k = (int64_t)(rng() % 1000000000000000u);
        check_number((double)k / 1e8, 1);
        check_number((double)(k >> (rng() % 50)) / 1e8, 1);
        check_number((double)(k >> (rng() % 50)), 1); /* whole numbers */
        check_number((double)k * 1e-8, 0); /* not always the nearest to k/1e8: cJSON's way */
    }
    CHECK(mismatches == 0, "%d amounts differ from cJSON", mismatches);
    CHECK(round_trip_failures == 0, "%d amounts do not read back", round_trip_failures);
}

/* Anything else falls back to cJSON's own routine: still the same text (and, cJSON's
 * tolerance aside, the same double). */
static void test_numbers_random(void)
{
    mismatches = reported = round_trip_failures = 0;
    for (int i = 0; i < 50000; i++) {
        check_number(random_bits_double(), 0);
        double scale = pow(10, (double)(rng() % 40) - 20);
        check_number((double)(rng() % 100000000) / 1e8 * scale, 0);
        check_number(ldexp((double)(rng() >> 11), (int)(rng() % 200) - 100), 0);
    }
    CHECK(mismatches == 0, "%d random doubles differ from cJSON", mismatches);
    CHECK(round_trip_failures == 0, "%d random doubles do not read back", round_trip_failures);
}

/* ------------------------------------------------------------------ values */

/* The old encoder: a cJSON tree of the value at the top of the stack, printed by cJSON. */
static char *old_encode(lua_State *L, char *err, size_t errlen)
{
    cJSON *tree = script_json_from_lua(L, -1, err, errlen);
    if (!tree)
        return NULL;
    char *text = cJSON_PrintUnformatted(tree);
    cJSON_Delete(tree);
    return text;
}

/* True when `mine` is cJSON's text `old` byte for byte, except numbers where cJSON printed
 * 15 digits within its one-ulp tolerance: there `mine` must be the exact double and `old`
 * within that tolerance of it (the encoder's one deliberate difference, format_like_cjson). */
static bool same_but_exact_numbers(const char *mine, const char *old)
{
    bool in_string = false;
    while (*mine && *old) {
        if (!in_string && (*mine == '-' || (*mine >= '0' && *mine <= '9'))) {
            char *end_mine, *end_old;
            double a = strtod(mine, &end_mine), b = strtod(old, &end_old);
            double max = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
            if (end_old == old || fabs(a - b) > max * DBL_EPSILON)
                return false;
            mine = end_mine;
            old = end_old;
            continue;
        }
        if (*mine != *old)
            return false;
        if (in_string && *mine == '\\' && mine[1]) {
            if (mine[1] != old[1])
                return false;
            mine += 2;
            old += 2;
            continue;
        }
        if (*mine == '"')
            in_string = !in_string;
        mine++;
        old++;
    }
    return *mine == *old;
}

/* Encodes the value at the top of the stack both ways and compares text or error. */
static void same_encoding(lua_State *L, const char *what)
{
    char err[160] = "";
    char *old = old_encode(L, err, sizeof err);
    lua_pushcfunction(L, script_json_encode_fn);
    lua_pushvalue(L, -2);
    int rc = lua_pcall(L, 1, 1, 0);
    const char *mine = lua_tostring(L, -1);
    if (old) {
        CHECK(rc == 0 && mine && same_but_exact_numbers(mine, old), "%s: encoder %s, cJSON %s",
              what, mine ? mine : "(error)", old);
    } else {
        char expected[200];
        snprintf(expected, sizeof expected, "json_encode: %s", err);
        CHECK(rc != 0 && mine && strcmp(mine, expected) == 0, "%s: encoder says %s, cJSON %s",
              what, mine ? mine : "(nothing)", expected);
    }
    free(old);
    lua_pop(L, 2);
}

static void same_encoding_of(lua_State *L, const char *expression)
{
    char chunk[4096];
    snprintf(chunk, sizeof chunk, "return %s", expression);
    if (luaL_dostring(L, chunk) != 0) {
        CHECK(0, "bad test expression %s: %s", expression, lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    same_encoding(L, expression);
}

static void test_values(lua_State *L)
{
    static const char *const cases[] = {
        "nil", "true", "false", "0", "-0.0", "1.5", "'text'", "''", "{}", "{{}}", "{1, 2, 3}",
        "{a = 1, b = 'two', c = {true, false}}",
        "{paid = 0.12345678, balance = 12.5, hashrate = 123456789.5, workers = 3}",
        "{z = 1, a = 2, A = 3, ['_'] = 4, ['a b'] = 5, aa = 6, ['\\xc3\\xa9'] = 7}",
        "{['q\"uote'] = 'back\\\\slash \"quoted\"', ['\\n'] = '\\b\\f\\n\\r\\t\\1\\31\\127'}",
        "'\\xff\\xfe invalid UTF-8 as it is, \\xe2\\x82\\xac'",
        "{nested = {deeper = {deepest = {1, {x = m2p_null}}}}}", "m2p_null", "{m2p_null, 1}",
        "{[1] = 'a', [2] = 'b'}", "{[1] = 'a', [3] = 'c'}", "{1, x = 2}", "{[1.5] = 1}",
        "{[0] = 1}", "{[true] = 1}", "{f = print}", "{0/0}", "{1/0}", "{-1/0}",
        "{s = 'nul\\0byte'}", "coroutine.create(print)", "{ud = newproxy()}",
        "{big = 2^53, small = 2^-30, neg = -123.456, e = 1e300, t = 5e-324}",
        "(function() local t = {} for i = 1, 40 do t['k' .. i] = i / 3 end return t end)()",
        "(function() local t = {} for i = 1, 100 do t[i] = i * 1e-8 end return t end)()",
        "(function() local t = {} t.self = t return t end)()",
        "(function() local t = 1 for i = 1, 64 do t = {t} end return t end)()",
        "(function() local t = 1 for i = 1, 65 do t = {t} end return t end)()",
        "(function() local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end "
        "return {table.concat(t)} end)()",
    };
    lua_pushlightuserdata(L, NULL);
    lua_setglobal(L, "m2p_null");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_encoding_of(L, cases[i]);
}

/* Random nested values: objects with random keys, lists, numbers of every kind. */
static void push_random_value(lua_State *L, int depth)
{
    int kind = (int)(rng() % (depth > 4 ? 5 : 7));
    char key[16];
    switch (kind) {
    case 0: lua_pushnumber(L, (double)(int64_t)(rng() % 2000000000000u) / 1e8); break;
    case 1: lua_pushnumber(L, random_bits_double()); break;
    case 2: lua_pushnumber(L, (double)(int64_t)(rng() % 100000) - 50000); break;
    case 3: {
        char s[12];
        for (size_t i = 0; i < sizeof s; i++)
            s[i] = (char)(1 + rng() % 255);
        lua_pushlstring(L, s, rng() % sizeof s);
        break;
    }
    case 4: lua_pushboolean(L, (int)(rng() & 1)); break;
    case 5: {
        int n = (int)(rng() % 6);
        lua_createtable(L, n, 0);
        for (int i = 1; i <= n; i++) {
            push_random_value(L, depth + 1);
            lua_rawseti(L, -2, i);
        }
        break;
    }
    default: {
        int n = 1 + (int)(rng() % 40);
        lua_createtable(L, 0, n);
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof key, "%c%u", (char)('a' + rng() % 26), (unsigned)(rng() % 50));
            push_random_value(L, depth + 1);
            lua_setfield(L, -2, key);
        }
        break;
    }
    }
}

static void test_random_values(lua_State *L)
{
    for (int i = 0; i < 3000; i++) {
        push_random_value(L, 0);
        same_encoding(L, "a random value");
    }
}

int main(void)
{
    test_numbers_edge_cases();
    test_numbers_amounts();
    test_numbers_random();
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    test_values(L);
    test_random_values(L);
    CHECK(lua_gettop(L) == 0, "stack left with %d values", lua_gettop(L));
    lua_close(L);
    return check_summary();
}
