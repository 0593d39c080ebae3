/* The address natives of engine/script/script_crypto.c against their specification, the Lua
 * versions in engine/script/prelude.lua: tests/unit/script_crypto_compare.lua runs both on
 * thousands of random and edge inputs and counts every result or error text that differs.
 * Also: known digests, and every error branch of base58check and bech32 reached. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "check.h"
#include "embedded.h"
#include "script_internal.h"

/* Each reason m2p.base58check and m2p.bech32 can give (a prefix, where it carries a number). */
static const char *const expected_reasons[] = {
    "base58check: not base58 (empty)",
    "base58check: not base58check (longer than 128 characters)",
    "base58check: not base58 (a character outside the base58 alphabet)",
    "base58check: wrong length: too short for base58check",
    "base58check: bad base58check checksum",
    "bech32: not bech32 (empty)",
    "bech32: not bech32 (longer than 90 characters)",
    "bech32: not bech32 (a character outside US-ASCII 33-126)",
    "bech32: bech32 in mixed case",
    "bech32: not bech32 (no '1' separator)",
    "bech32: not bech32 (empty human-readable part)",
    "bech32: not bech32 (checksum shorter than 6 characters)",
    "bech32: not bech32 (a character outside the bech32 alphabet)",
    "bech32: bad bech32 checksum\n",
    "bech32: bech32 without a witness version (empty data part)",
    "bech32: bech32 witness version 17 (at most 16)",
    "bech32: bad bech32 checksum: witness version 0 needs bech32 (BIP-173), not bech32m",
    "bech32: bad bech32 checksum: witness version 1 needs bech32m (BIP-350)",
    "bech32: bech32 padding longer than 4 bits",
    "bech32: bech32 padding is not zero",
    "bech32: wrong length: a witness program of 1 bytes (2-40)",
    "bech32: wrong length: a witness program of 41 bytes (2-40)",
    "bech32: wrong length: a witness version 0 program of 21 bytes (20 or 32)",
    "advc_address: wrong length: ",
    "advc_address: version 0 is not an ADVC address (ADVC_ADDRESS_VERSIONS=23,51)",
    "btc_address: not a string",
    "btc_address: version 23 is not a Bitcoin mainnet address (0 or 5)",
    "btc_address: wrong length: ",
    "btc_address: bech32 hrp ",
};

/* Calls the native `name` of a fresh crypto table with s; leaves its results on the stack. */
static int call_native(lua_State *L, const char *name, const char *s, size_t len)
{
    lua_settop(L, 0);
    lua_newtable(L);
    script_crypto_register(L);
    lua_getfield(L, 1, name);
    lua_pushlstring(L, s, len);
    return lua_pcall(L, 1, LUA_MULTRET, 0);
}

static void test_known_values(lua_State *L)
{
    CHECK(call_native(L, "sha256_hex", "abc", 3) == 0, "sha256_hex runs");
    CHECK(strcmp(lua_tostring(L, -1),
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "sha256_hex(abc) = %s", lua_tostring(L, -1));
    CHECK(call_native(L, "sha256", "", 0) == 0 && lua_objlen(L, -1) == 32, "binary digest");
    CHECK(memcmp(lua_tostring(L, -1), "\xe3\xb0\xc4\x42", 4) == 0, "sha256('') starts e3b0c442");
    const char *genesis = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa";
    CHECK(call_native(L, "base58check", genesis, strlen(genesis)) == 0, "base58check runs");
    CHECK(lua_gettop(L) == 3 && lua_tointeger(L, 2) == 0 && lua_objlen(L, 3) == 20,
          "genesis: version 0, 20 bytes");
    CHECK(memcmp(lua_tostring(L, 3), "\x62\xe9\x07\xb1", 4) == 0, "genesis hash 62e907b1...");
    const char *segwit = "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4";
    CHECK(call_native(L, "bech32", segwit, strlen(segwit)) == 0 && lua_gettop(L) == 4,
          "bech32 runs and succeeds");
    CHECK(strcmp(lua_tostring(L, 2), "bc") == 0 && lua_tointeger(L, 3) == 0 &&
              lua_objlen(L, 4) == 20,
          "BIP-173 example: bc, version 0, 20 bytes");
    char big[65537];
    memset(big, 'a', sizeof big);
    CHECK(call_native(L, "sha256_hex", big, sizeof big) != 0, "sha256 input capped");
    CHECK_CONTAINS(lua_tostring(L, -1), "at most 65536 bytes");
}

static void test_against_lua(lua_State *L)
{
    lua_settop(L, 0);
    const embedded_file *prelude = embedded_find("prelude.lua");
    int loaded = luaL_loadfile(L, "tests/unit/script_crypto_compare.lua");
    CHECK(loaded == 0, "load the comparison: %s", lua_tostring(L, -1));
    if (loaded != 0)
        return;
    CHECK(luaL_loadbuffer(L, prelude->text, prelude->len, "=prelude.lua") == 0, "prelude");
    lua_newtable(L);
    script_crypto_register(L);
    if (lua_pcall(L, 2, 4, 0) != 0) {
        CHECK(0, "the comparison failed: %s", lua_tostring(L, -1));
        return;
    }
    int mismatches = (int)lua_tointeger(L, 1);
    CHECK(mismatches == 0, "%d results differ, the first:\n%s", mismatches, lua_tostring(L, 2));
    CHECK(lua_tointeger(L, 3) > 50000, "%d comparisons", (int)lua_tointeger(L, 3));
    lua_pushliteral(L, "\n");
    lua_concat(L, 2); /* every reason seen, each followed by a newline */
    const char *seen = lua_tostring(L, -1);
    for (size_t i = 0; i < sizeof expected_reasons / sizeof *expected_reasons; i++)
        CHECK_CONTAINS(seen, expected_reasons[i]);
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    test_known_values(L);
    test_against_lua(L);
    lua_close(L);
    return check_summary();
}
