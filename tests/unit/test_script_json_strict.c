/* Strict JSON from pools (issue 12): a body that is not UTF-8 (RFC 8259) or has an object that
 * repeats a key is refused by script_json_push_text, on both decoders (the yajl fast path and
 * the cJSON tree), with a reason that says where or which key. Before, a hostile "paid" beside
 * invalid bytes, or a second "paid" after the honest one, was decoded and awarded.
 * script_utf8_invalid_at is checked against an independent decoder on every sequence of up to
 * three bytes (from a lead byte of 0xc0 or more for three) and on many of four. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "script_json.h"
#include "script_json_stream.h"
#include "script_utf8.h"

/* The reference: decode the code point, then refuse what RFC 3629 forbids. Returns the length
 * of the valid sequence at s, or 0. */
static size_t reference_sequence(const unsigned char *s, size_t left)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] >> 5 == 6 ? 2 : s[0] >> 4 == 14 ? 3 : s[0] >> 3 == 30 ? 4 : 0;
    if (!n || left < n)
        return 0;
    uint32_t cp = n == 1 ? s[0] : s[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if (s[i] >> 6 != 2)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    static const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < smallest[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static size_t reference_invalid_at(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = reference_sequence(s + i, len - i);
        if (!n)
            return i;
        i += n;
    }
    return len;
}

/* Each sequence alone, and behind 9 ASCII bytes (the 8-byte step, then the byte loop). */
static int utf8_agrees(const unsigned char *seq, size_t n)
{
    unsigned char buf[16] = "abcdefghi";
    memcpy(buf + 9, seq, n);
    size_t mine = script_utf8_invalid_at((const char *)seq, n);
    size_t after = script_utf8_invalid_at((const char *)buf, 9 + n);
    return mine == reference_invalid_at(seq, n) && after == 9 + mine;
}

static void test_utf8_exhaustive(void)
{
    int wrong = 0;
    unsigned char s[4];
    for (uint32_t v = 0; v < 1u << 24; v++) {
        s[0] = (unsigned char)(v >> 16), s[1] = (unsigned char)(v >> 8), s[2] = (unsigned char)v;
        if (v < 256)
            wrong += !utf8_agrees(s + 2, 1);
        if (v < 65536)
            wrong += !utf8_agrees(s + 1, 2);
        /* three bytes from every lead byte that can begin one (an ASCII or continuation
         * byte first is one byte, then the two-byte cases above): a quarter of the time */
        if (v >= 0xc00000)
            wrong += !utf8_agrees(s, 3);
    }
    /* four bytes: every lead byte from 0xe0 with every second byte, the rest sampled */
    for (uint32_t v = 0xe000; v < 0x10000; v++)
        for (uint32_t t = 0; t < 256; t += 17) {
            s[0] = (unsigned char)(v >> 8), s[1] = (unsigned char)v;
            s[2] = (unsigned char)(0x80 + (t & 0x3f)), s[3] = (unsigned char)t;
            wrong += !utf8_agrees(s, 4);
        }
    CHECK(wrong == 0, "%d sequences judged unlike the reference decoder", wrong);
}

static void test_utf8_cases(void)
{
    static const struct {
        const char *text;
        size_t bad_at; /* SIZE_MAX: valid */
    } cases[] = {
        {"", SIZE_MAX}, {"plain ascii, longer than a word", SIZE_MAX},
        {"\xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9\xef\xbf\xbf\xf4\x8f\xbf\xbf", SIZE_MAX},
        {"12345678\xff", 8}, {"\xc0\xaf", 0} /* overlong '/' */, {"\xe0\x80\xaf", 0},
        {"ab\xed\xa0\x80", 2} /* a surrogate */, {"\xf4\x90\x80\x80", 0} /* past U+10FFFF */,
        {"\xf5\x80\x80\x80", 0}, {"x\x80", 1}, {"\xe2\x82", 0} /* cut short */,
        {"\xe2\x82x", 0}, {"\xc3\xa9\xc3", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].text);
        size_t want = cases[i].bad_at == SIZE_MAX ? len : cases[i].bad_at;
        size_t got = script_utf8_invalid_at(cases[i].text, len);
        CHECK(got == want, "case %zu: invalid at %zu, expected %zu", i, got, want);
    }
}

/* Decodes text with script_json_push_text: the error, or "" when it decoded (the value is
 * left in the global `v`). The stack must be as it was either way but for the value. */
static const char *decode(lua_State *L, const char *text)
{
    static char err[128];
    int top = lua_gettop(L);
    err[0] = '\0';
    if (script_json_push_text(L, text, strlen(text), err, sizeof err) == 0) {
        CHECK(lua_gettop(L) == top + 1, "one value for %s", text);
        lua_setglobal(L, "v");
        err[0] = '\0';
    } else {
        CHECK(lua_gettop(L) == top, "stack changed on refusing %s", text);
        CHECK(err[0] != '\0', "no reason for refusing %s", text);
    }
    return err;
}

static int lua_true(lua_State *L, const char *expression)
{
    lua_pushfstring(L, "return %s", expression);
    CHECK(luaL_dostring(L, lua_tostring(L, -1)) == 0, "%s", lua_tostring(L, -1));
    int yes = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return yes;
}

/* The body of pool_faults.py's case: invalid bytes in a field no script reads, beside a
 * hostile paid; before the fix it decoded, and paid 999.5 was awarded. */
static void test_invalid_utf8_refused(lua_State *L)
{
    const char *body = "{\"miner\":\"w\",\"networkSols\":\"\xff\xfe\xc3(\",\"paid\":999.5}";
    CHECK_CONTAINS(decode(L, body), "not valid UTF-8 at byte 28 of 47");
    /* in a key, after a \u escape (the cJSON path), and outside any string */
    CHECK_CONTAINS(decode(L, "{\"a\xc0\xaf\":1}"), "not valid UTF-8 at byte 3 of");
    CHECK_CONTAINS(decode(L, "[\"\\u00e9\",\"\xed\xa0\x80\"]"), "not valid UTF-8 at byte 11");
    CHECK_CONTAINS(decode(L, "[1,\xff]"), "invalid JSON at byte 3");
    /* a body cut inside a character stays "truncated", as it was */
    CHECK_CONTAINS(decode(L, "{\"a\":\"caf\xc3"), "truncated JSON (10 bytes)");
    /* valid UTF-8 of every length decodes, on both paths, to the same bytes */
    CHECK_CONTAINS(decode(L, "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}"), "");
    CHECK(lua_true(L, "v.k == '\\195\\169\\226\\130\\172\\240\\159\\152\\128'"), "fast path");
    CHECK_CONTAINS(decode(L, "{\"k\":\"\\u00e9\xe2\x82\xac\"}"), "");
    CHECK(lua_true(L, "v.k == '\\195\\169\\226\\130\\172'"), "cJSON path");
}

static void test_duplicate_keys_refused(lua_State *L)
{
    static const char *const refused[][2] = {
        /* pool_faults.py's case: the honest paid first, the hostile one last (which won) */
        {"{\"miner\":\"w\",\"paid\":10.5,\"paid\":999.5}",
         "duplicate key \"paid\" in a JSON object"},
        {"{\"a\":{\"x\":null,\"x\":null}}", "duplicate key \"x\""},
        {"[1,[{\"y\":[],\"z\":2,\"y\":{}}]]", "duplicate key \"y\""},
        /* the same key once escaped: cJSON's path, equal once decoded */
        {"{\"paid\":1,\"pa\\u0069d\":2}", "duplicate key \"paid\""},
        {"{\"\":1,\"\":2}", "duplicate key \"\""},
        /* hostile key text: control bytes, quotes and non-ASCII shown as '?' */
        {"{\"\\u001b[2J\\\"\xc3\xa9\":1,\"\\u001b[2J\\\"\xc3\xa9\":2}",
         "duplicate key \"?[2J???\" in a JSON object"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        CHECK_CONTAINS(decode(L, refused[i][0]), refused[i][1]);
    /* a long key is cut */
    char text[200];
    snprintf(text, sizeof text, "{\"%s\":1,\"%s\":2}", "0123456789012345678901234567890123456789XY",
             "0123456789012345678901234567890123456789XY");
    CHECK_CONTAINS(decode(L, text), "\"0123456789012345678901234567890123456789...\"");
    /* the same key in different objects is no duplicate */
    CHECK_CONTAINS(decode(L, "[{\"a\":1},{\"a\":2},{\"a\":{\"a\":3}}]"), "");
    CHECK(lua_true(L, "v[3].a.a == 3"), "nested same keys");
    CHECK_CONTAINS(decode(L, "{\"1\":1,\"a\":2,\"A\":3}"), "");
    /* the fast path hands a duplicate back untouched */
    const char *type;
    int top = lua_gettop(L);
    CHECK(script_json_stream_push(L, "{\"a\":1,\"a\":1}", 13, &type) != 0, "fast path took it");
    CHECK(lua_gettop(L) == top, "fast path left values");
    /* script_json_push (the tree) raises rather than choosing one */
    CHECK(luaL_dostring(L, "return push_tree('{\"p\":1,\"p\":2}')") != 0, "tree took it");
    CHECK_CONTAINS(lua_tostring(L, -1), "duplicate key \"p\"");
    lua_pop(L, 1);
}

/* The engine's own state (a custom rule put "\255" into it): read back with U+FFFD, as the
 * store keeps it, not refused (the next poll then saw no previous state, every other poll). A
 * pool body stays refused; text that is not JSON stays an error. */
static void test_state_reads_invalid_utf8_as_stored(lua_State *L)
{
    lua_register(L, "decode_state", script_json_decode_state_fn);
    CHECK(lua_true(L, "decode_state('{\"note\":\"a\\255b\\195\",\"paid\":1.5}').note "
                      "== 'a\\239\\191\\189b\\239\\191\\189'"), "state with bad bytes");
    CHECK(lua_true(L, "decode_state('{\"paid\":1.5}').paid == 1.5"), "valid state");
    CHECK(lua_true(L, "not pcall(decode_state, '{\"paid\":\\255')"), "not JSON");
    CHECK(lua_true(L, "select(2, pcall(decode_state, '{\"a\\255\":1,\"a\\254\":2}'))"
                      ":find('duplicate key', 1, true) ~= nil"), "keys equal once replaced");
    CHECK_CONTAINS(decode(L, "{\"note\":\"a\xff" "b\"}"), "not valid UTF-8 at byte 10");
}

static int push_tree_protected(lua_State *L)
{
    script_json_push(L, lua_touserdata(L, 1));
    return 0;
}

static int push_tree(lua_State *L)
{
    cJSON *tree = cJSON_Parse(luaL_checkstring(L, 1));
    int rc = lua_cpcall(L, push_tree_protected, tree);
    cJSON_Delete(tree);
    if (rc != 0)
        return lua_error(L);
    return 0;
}

int main(void)
{
    test_utf8_cases();
    test_utf8_exhaustive();
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "push_tree", push_tree);
    test_invalid_utf8_refused(L);
    test_duplicate_keys_refused(L);
    test_state_reads_invalid_utf8_as_stored(L);
    CHECK(lua_gettop(L) == 0, "stack left with %d values", lua_gettop(L));
    lua_close(L);
    return check_summary();
}
