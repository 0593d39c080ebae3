/* The address natives: SHA-256, base58check and bech32/bech32m in C (prelude.lua's m2p.sha256,
 * m2p.base58check and m2p.bech32 call them).
 *
 * Why C: every account's wallet is checked before its first poll and every poll hashes its
 * wallet (ctx.wallet_id). In Lua the base58 big-number arithmetic, the bech32 polymod and the
 * hex formatting cost tens of thousands of instructions per wallet; and OpenSSL 3's one-shot
 * SHA256() fetches the algorithm from the provider on every call (12-18k instructions), so
 * the digest is fetched once per Lua state and one EVP_MD_CTX is reused.
 *
 * prelude.lua keeps the Lua versions as the specification (and for the busted specs, which
 * run the prelude without the engine): tests/unit/test_script_crypto.c compares the two on
 * thousands of inputs, error texts included. Inputs are bounded as in Lua (128 characters of
 * base58, 90 of bech32, 64 KiB for SHA-256) because the count hook does not run inside C.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>

#include "script_internal.h"

#define SHA256_LEN 32
#define MAX_SHA256_INPUT (64 * 1024)
#define BASE58_MAX 128 /* characters; far longer than any address */
#define BECH32_MAX 90  /* characters (BIP-173) */
#define BECH32_CONST 1u
#define BECH32M_CONST 0x2bc830a3u /* BIP-350 */
#define SHA256_STATE "m2p.sha256_state"

/* The fetched digest and a reusable context: one per Lua state, an upvalue of the natives,
 * freed by the userdata's __gc when the state closes. */
typedef struct {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
} sha256_state;

static int sha256_state_gc(lua_State *L)
{
    sha256_state *st = lua_touserdata(L, 1);
    EVP_MD_CTX_free(st->ctx);
    EVP_MD_free(st->md);
    st->ctx = NULL;
    st->md = NULL;
    return 0;
}

static void push_sha256_state(lua_State *L)
{
    sha256_state *st = lua_newuserdata(L, sizeof *st);
    st->md = NULL;
    st->ctx = NULL;
    if (luaL_newmetatable(L, SHA256_STATE)) {
        lua_pushcfunction(L, sha256_state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2); /* from here on __gc frees whatever was allocated */
    st->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    st->ctx = EVP_MD_CTX_new();
    if (!st->md || !st->ctx)
        luaL_error(L, "OpenSSL: SHA-256 is not available");
}

/* SHA-256 of len bytes at data into out; false only if OpenSSL fails (it does not, short of
 * running out of memory). */
static bool digest(lua_State *L, const void *data, size_t len, unsigned char out[SHA256_LEN])
{
    sha256_state *st = lua_touserdata(L, lua_upvalueindex(1));
    unsigned int n = 0;
    return EVP_DigestInit_ex2(st->ctx, st->md, NULL) == 1 &&
           EVP_DigestUpdate(st->ctx, data, len) == 1 &&
           EVP_DigestFinal_ex(st->ctx, out, &n) == 1 && n == SHA256_LEN;
}

/* The argument of native.sha256 / native.sha256_hex (docs/scripting.md: at most 64 KiB), with
 * the error text luaL_argcheck gave in native.sha256 whatever name the caller calls it by. */
static const char *sha256_input(lua_State *L, size_t *len)
{
    const char *s = luaL_checklstring(L, 1, len);
    if (*len > MAX_SHA256_INPUT)
        luaL_error(L, "bad argument #1 to 'sha256' (at most 65536 bytes)");
    return s;
}

/* native.sha256(s): the 32-byte binary digest. */
static int native_sha256(lua_State *L)
{
    size_t len;
    const char *s = sha256_input(L, &len);
    unsigned char out[SHA256_LEN];
    if (!digest(L, s, len, out))
        return luaL_error(L, "OpenSSL: SHA-256 failed");
    lua_pushlstring(L, (const char *)out, sizeof out);
    return 1;
}

/* native.sha256_hex(s): the digest as 64 lower-case hex digits (m2p.sha256). */
static int native_sha256_hex(lua_State *L)
{
    static const char hex[] = "0123456789abcdef";
    size_t len;
    const char *s = sha256_input(L, &len);
    unsigned char out[SHA256_LEN];
    if (!digest(L, s, len, out))
        return luaL_error(L, "OpenSSL: SHA-256 failed");
    char text[2 * SHA256_LEN];
    for (size_t i = 0; i < SHA256_LEN; i++) {
        text[2 * i] = hex[out[i] >> 4];
        text[2 * i + 1] = hex[out[i] & 15];
    }
    lua_pushlstring(L, text, sizeof text);
    return 1;
}

/* nil, reason: how the Lua versions refuse (a bad address is an answer, not an error). */
static int fail(lua_State *L, const char *reason)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    return 2;
}

/* =========================================================================== Base58 */

/* The value of a base58 digit (the alphabet leaves out 0, O, I and l), or -1. */
static int base58_digit(unsigned char c)
{
    if (c >= '1' && c <= '9')
        return c - '1';
    if (c >= 'A' && c <= 'H')
        return c - 'A' + 9;
    if (c >= 'J' && c <= 'N')
        return c - 'J' + 17;
    if (c >= 'P' && c <= 'Z')
        return c - 'P' + 22;
    if (c >= 'a' && c <= 'k')
        return c - 'a' + 33;
    if (c >= 'm' && c <= 'z')
        return c - 'm' + 44;
    return -1;
}

/* The bytes of a base58 number into out (room for len bytes: a digit never adds more than one
 * byte), big-endian, one zero byte per leading '1'; their count, or -1 when a character is not
 * a base58 digit. The same bytes as prelude.lua's base58_decode, and built the same way, five
 * digits at a time into 32-bit limbs: 58^5 < 2^30, so limb * 58^5 + carry fits in 64 bits. */
static int base58_decode(const char *s, size_t len, unsigned char *out)
{
    uint32_t limbs[BASE58_MAX / 4 + 1]; /* little-endian; 128 digits need at most 24 */
    size_t n = 0;
    for (size_t i = 0; i < len; i += 5) {
        uint64_t carry = 0, scale = 1;
        for (size_t j = i; j < len && j < i + 5; j++) {
            int digit = base58_digit((unsigned char)s[j]);
            if (digit < 0)
                return -1;
            carry = carry * 58 + (unsigned)digit;
            scale *= 58;
        }
        for (size_t k = 0; k < n; k++) {
            carry += (uint64_t)limbs[k] * scale;
            limbs[k] = (uint32_t)carry;
            carry >>= 32;
        }
        for (; carry > 0; carry >>= 32)
            limbs[n++] = (uint32_t)carry;
    }
    size_t m = 0;
    while (m < len && s[m] == '1')
        out[m++] = 0;
    bool started = false; /* the top limb's leading zero bytes are not part of the number */
    for (size_t k = n; k-- > 0;) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            unsigned char byte = (unsigned char)(limbs[k] >> shift);
            started |= byte != 0;
            if (started)
                out[m++] = byte;
        }
    }
    return (int)m;
}

/* native.base58check(s) -> version (0-255), payload | nil, reason: m2p.base58check. */
static int native_base58check(lua_State *L)
{
    size_t len = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    if (!s || len == 0)
        return fail(L, "not base58 (empty)");
    if (len > BASE58_MAX)
        return fail(L, "not base58check (longer than 128 characters)");
    unsigned char raw[BASE58_MAX];
    int n = base58_decode(s, len, raw);
    if (n < 0)
        return fail(L, "not base58 (a character outside the base58 alphabet)");
    if (n < 5)
        return fail(L, "wrong length: too short for base58check");
    unsigned char first[SHA256_LEN], second[SHA256_LEN];
    size_t body = (size_t)n - 4;
    if (!digest(L, raw, body, first) || !digest(L, first, sizeof first, second))
        return luaL_error(L, "OpenSSL: SHA-256 failed");
    if (memcmp(second, raw + body, 4) != 0)
        return fail(L, "bad base58check checksum");
    lua_pushinteger(L, raw[0]);
    lua_pushlstring(L, (const char *)raw + 1, body - 1);
    return 2;
}

/* =========================================================================== Bech32 */

static int bech32_digit(unsigned char c)
{
    static const char alphabet[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const char *at = c ? strchr(alphabet, c) : NULL;
    return at ? (int)(at - alphabet) : -1;
}

/* BIP-173's BCH checksum, one 5-bit value at a time. */
static uint32_t polymod_step(uint32_t chk, unsigned value)
{
    static const uint32_t generator[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd,
                                          0x2a1462b3};
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ value;
    for (int k = 0; k < 5; k++)
        if ((top >> k) & 1)
            chk ^= generator[k];
    return chk;
}

/* The checks of m2p.bech32 that need no decoding, in its order: the reason, or NULL with the
 * lower-cased string in lower and the separator's index (the last '1') in *sep. */
static const char *bech32_shape(const char *s, size_t len, char *lower, size_t *sep)
{
    if (len > BECH32_MAX)
        return "not bech32 (longer than 90 characters)";
    bool has_lower = false, has_upper = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126)
            return "not bech32 (a character outside US-ASCII 33-126)";
        has_lower |= c >= 'a' && c <= 'z';
        has_upper |= c >= 'A' && c <= 'Z';
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    if (has_lower && has_upper)
        return "bech32 in mixed case";
    size_t one = len;
    while (one > 0 && lower[one - 1] != '1')
        one--;
    if (one == 0)
        return "not bech32 (no '1' separator)";
    *sep = one - 1;
    if (*sep == 0)
        return "not bech32 (empty human-readable part)";
    if (len - 1 - *sep < 6)
        return "not bech32 (checksum shorter than 6 characters)";
    return NULL;
}

/* The witness program from the data part (after the version, before the checksum) into out
 * (room for n bytes); its length, or -1 with *reason when the padding is wrong. */
static int bech32_program(const unsigned char *data, size_t n, unsigned char *out,
                          const char **reason)
{
    unsigned acc = 0, bits = 0;
    int m = 0;
    for (size_t i = 1; i + 6 < n; i++) {
        acc = (acc << 5) | data[i];
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[m++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 5) {
        *reason = "bech32 padding longer than 4 bits";
        return -1;
    }
    if (acc != 0) {
        *reason = "bech32 padding is not zero";
        return -1;
    }
    return m;
}

/* After the checksum: the witness version and the program's length rules of BIP-173/350. */
static int bech32_finish(lua_State *L, const char *hrp, size_t hrp_len, const unsigned char *data,
                         size_t n, uint32_t constant)
{
    char reason[96];
    if (n < 7)
        return fail(L, "bech32 without a witness version (empty data part)");
    unsigned version = data[0];
    if (version > 16) {
        snprintf(reason, sizeof reason, "bech32 witness version %u (at most 16)", version);
        return fail(L, reason);
    }
    if (version == 0 && constant != BECH32_CONST)
        return fail(L, "bad bech32 checksum: witness version 0 needs bech32 (BIP-173), "
                       "not bech32m");
    if (version > 0 && constant != BECH32M_CONST) {
        snprintf(reason, sizeof reason,
                 "bad bech32 checksum: witness version %u needs bech32m (BIP-350)", version);
        return fail(L, reason);
    }
    unsigned char program[BECH32_MAX];
    const char *why = NULL;
    int m = bech32_program(data, n, program, &why);
    if (m < 0)
        return fail(L, why);
    if (m < 2 || m > 40) {
        snprintf(reason, sizeof reason, "wrong length: a witness program of %d bytes (2-40)", m);
        return fail(L, reason);
    }
    if (version == 0 && m != 20 && m != 32) {
        snprintf(reason, sizeof reason,
                 "wrong length: a witness version 0 program of %d bytes (20 or 32)", m);
        return fail(L, reason);
    }
    lua_pushlstring(L, hrp, hrp_len);
    lua_pushinteger(L, (lua_Integer)version);
    lua_pushlstring(L, (const char *)program, (size_t)m);
    return 3;
}

/* native.bech32(s) -> hrp (lower-case), witness_version, program | nil, reason: m2p.bech32. */
static int native_bech32(lua_State *L)
{
    size_t len = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    if (!s || len == 0)
        return fail(L, "not bech32 (empty)");
    char lower[BECH32_MAX];
    size_t sep = 0;
    const char *reason = bech32_shape(s, len, lower, &sep);
    if (reason)
        return fail(L, reason);
    uint32_t chk = 1;
    for (size_t i = 0; i < sep; i++)
        chk = polymod_step(chk, (unsigned char)lower[i] >> 5);
    chk = polymod_step(chk, 0);
    for (size_t i = 0; i < sep; i++)
        chk = polymod_step(chk, (unsigned char)lower[i] & 31);
    unsigned char data[BECH32_MAX];
    size_t n = 0;
    for (size_t i = sep + 1; i < len; i++) {
        int digit = bech32_digit((unsigned char)lower[i]);
        if (digit < 0)
            return fail(L, "not bech32 (a character outside the bech32 alphabet)");
        data[n++] = (unsigned char)digit;
        chk = polymod_step(chk, (unsigned)digit);
    }
    if (chk != BECH32_CONST && chk != BECH32M_CONST)
        return fail(L, "bad bech32 checksum");
    return bech32_finish(L, lower, sep, data, n, chk);
}

void script_crypto_register(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"sha256", native_sha256},
        {"sha256_hex", native_sha256_hex},
        {"base58check", native_base58check},
        {"bech32", native_bech32},
        {NULL, NULL},
    };
    push_sha256_state(L);
    for (const luaL_Reg *f = functions; f->name; f++) {
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -3, f->name);
    }
    lua_pop(L, 1);
}
