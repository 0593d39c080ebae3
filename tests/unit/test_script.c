/* The scripting runtime under attack: sandbox escapes, runaway loops (including loops the JIT
 * would compile), memory bombs, hostile JSON bodies and hostile wallet strings. Each must end
 * as an error naming the script, and the runtime must keep working afterwards. */
#include "check.h"
#include "log.h"
#include "script_fixture.h"

static void test_sandbox_escapes(void)
{
    static const struct {
        const char *name, *code, *error;
    } cases[] = {
        {"os_execute", "os.execute('touch /tmp/m2p-pwned')", "os_execute.lua:4:"},
        {"io_open", "io.open('/etc/passwd')", "io_open.lua:4:"},
        {"require_ffi", "require('ffi')", "require"},
        {"ffi_global", "ffi.C.system('true')", "ffi"},
        {"debug_lib", "debug.getinfo(1)", "debug"},
        {"string_dump", "string.dump(function() end)", "dump"},
        {"getfenv", "getfenv(0).io.open('/etc/passwd')", "getfenv"},
        {"collectgarbage", "collectgarbage('stop')", "collectgarbage"},
        {"dofile", "dofile('/etc/passwd')", "dofile"},
        {"bytecode_load", "assert(load('\\27LJ\\2'))", "binary"},
        {"string_metatable", "getmetatable('').__index.rep = nil", "string_metatable.lua:4:"},
        {"rawget_io", "assert(rawget(_G, 'io'), 'no io')", "no io"},
        {"jit_off", "jit.on()", "jit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        write_parse_pool(cases[i].name, cases[i].code);
    script_runtime *rt = load(0, 0, false);
    for (size_t i = 0; rt && i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = poll_error(rt, cases[i].name, "{}");
        CHECK(err != NULL, "%s: escape was not refused", cases[i].name);
        CHECK_CONTAINS(err, cases[i].error);
    }
    CHECK(access("/tmp/m2p-pwned", F_OK) != 0, "os.execute ran");
    /* The string library still works for everyone after the metatable attempt. */
    write_parse_pool("uses_rep", "assert(('ab'):rep(2) == 'abab')");
    script_runtime_free(rt);
    rt = load(0, 0, false);
    CHECK(rt && poll_error(rt, "uses_rep", "{}") == NULL, "string methods broken");
    script_runtime_free(rt);
    remove_pools();
}

static void test_globals_are_private(void)
{
    write_parse_pool("a_writer", "SHARED = 'leak'; string.leak = true; m2p.leak = true");
    write_parse_pool("b_reader", "assert(SHARED == nil and string.leak == nil and "
                                 "m2p.leak == nil, 'saw the globals of another script')");
    script_runtime *rt = load(0, 0, false);
    CHECK(rt && poll_error(rt, "a_writer", "{}") == NULL, "writer failed");
    CHECK(rt && poll_error(rt, "b_reader", "{}") == NULL, "globals leaked between scripts");
    script_runtime_free(rt);
    remove_pools();
}

static void test_load_errors(void)
{
    write_pool("syntax", "return { currency = 'ADVC',\n  request = function( end }\n");
    write_pool("execute_at_load", "os.execute('true')\nreturn {}\n");
    write_pool("bytecode", "\033LJ\002\000garbage");
    write_pool("not_a_table", "return 42\n");
    write_pool("no_parse", "return { currency = 'ADVC', request = function() end }\n");
    write_pool("bad_limits", "return { currency = 'ADVC', request = function() end,"
                             " parse = function() end, limits = { concurrency = 0 } }\n");
    write_pool("loop_at_load", "local x = 0\nwhile true do x = x + 1 end\n");
    write_parse_pool("good", "");
    script_runtime *rt = load(1000000, 0, false);
    if (!rt)
        return;
    CHECK(script_pool_count(rt) == 1, "only the good pool loads, got %zu", script_pool_count(rt));
    CHECK_CONTAINS(load_error_of(rt, "syntax.lua"), "syntax.lua:2:");
    CHECK_CONTAINS(load_error_of(rt, "execute_at_load.lua"), "execute_at_load.lua:1:");
    CHECK_CONTAINS(load_error_of(rt, "bytecode.lua"), "bytecode");
    CHECK_CONTAINS(load_error_of(rt, "not_a_table.lua"), "must return a table");
    CHECK_CONTAINS(load_error_of(rt, "no_parse.lua"), "field 'parse' must be a function");
    CHECK_CONTAINS(load_error_of(rt, "bad_limits.lua"), "limits.concurrency");
    CHECK_CONTAINS(load_error_of(rt, "loop_at_load.lua"),
                   "loop_at_load.lua:2: instruction budget exceeded");
    script_runtime_free(rt);
    remove_pools();
}

static void test_budget(void)
{
    write_parse_pool("spin", "while true do end");
    write_parse_pool("hot_for", "local x = 0\nfor i = 1, 1e15 do x = x + i end");
    write_parse_pool("pcall_spin",
                     "while true do pcall(function() while true do end end) end");
    write_parse_pool("coroutine_spin",
                     "local co = coroutine.wrap(function() while true do end end)\nco()");
    write_parse_pool("fine", "local x = 0\nfor i = 1, 1000 do x = x + i end");
    script_runtime *rt = load(1000000, 0, false);
    if (!rt)
        return;
    CHECK_CONTAINS(poll_error(rt, "spin", "{}"), "spin.lua:4: instruction budget exceeded");
    CHECK_CONTAINS(poll_error(rt, "hot_for", "{}"), "hot_for.lua:5: instruction budget exceeded");
    CHECK_CONTAINS(poll_error(rt, "pcall_spin", "{}"), "instruction budget exceeded");
    CHECK_CONTAINS(poll_error(rt, "coroutine_spin", "{}"), "instruction budget exceeded");
    CHECK(poll_error(rt, "fine", "{}") == NULL, "runtime unusable after a runaway script");
    script_runtime_free(rt);
    remove_pools();
}

/* Why the JIT is off: with it on, a hot loop is compiled and the count hook never runs, so
 * 10^8 iterations finish under a budget of 10^6 instructions. With it off, they are stopped. */
static void test_jit_escapes_count_hooks(void)
{
    write_parse_pool("bounded_hot_loop", "local x = 0\nfor i = 1, 1e8 do x = x + i end");
    script_runtime *rt = load(1000000, 0, true);
    CHECK(rt && poll_error(rt, "bounded_hot_loop", "{}") == NULL,
          "expected the JIT-compiled loop to escape the hook (LuaJIT changed?)");
    script_runtime_free(rt);
    rt = load(1000000, 0, false);
    CHECK_CONTAINS(rt ? poll_error(rt, "bounded_hot_loop", "{}") : NULL,
                   "instruction budget exceeded");
    script_runtime_free(rt);
    remove_pools();
}

static void test_memory_ceiling(void)
{
    write_parse_pool("hog", "local t = {}\nwhile true do t[#t + 1] = string.rep('x', 1e6) .. #t end");
    write_parse_pool("rep_bomb", "local s = string.rep('x', 2^30)");
    write_parse_pool("caught_hog",
                     "pcall(function() local t = {} while true do t[#t+1] = {1,2,3,4} end end)");
    write_parse_pool("fine", "");
    script_runtime *rt = load(0, 64u * 1024 * 1024, false);
    if (!rt)
        return;
    CHECK_CONTAINS(poll_error(rt, "hog", "{}"), "memory limit exceeded");
    CHECK_CONTAINS(poll_error(rt, "rep_bomb", "{}"), "memory limit exceeded");
    CHECK_CONTAINS(poll_error(rt, "caught_hog", "{}"), "memory limit exceeded");
    CHECK(poll_error(rt, "fine", "{}") == NULL, "runtime unusable after a memory bomb");
    CHECK(script_memory_used(rt) < 32u * 1024 * 1024, "memory not given back: %zu",
          script_memory_used(rt));
    script_runtime_free(rt);
    remove_pools();
}

/* The memory ceiling reached while a body is decoded (inside yajl's callbacks, 300,000 empty
 * objects in nested lists): the poll fails, nothing leaks (ASan), the runtime goes on. */
static void test_memory_ceiling_in_json(void)
{
    write_parse_pool("fine", "");
    script_runtime *rt = load(0, 16u * 1024 * 1024, false);
    if (!rt)
        return;
    size_t cap = 1000 * (300 * 3 + 3) + 3, len = 0;
    char *body = malloc(cap);
    body[len++] = '[';
    for (int i = 0; i < 1000; i++) {
        body[len++] = '[';
        for (int j = 0; j < 300; j++) {
            memcpy(body + len, "{},", 3);
            len += 3;
        }
        body[len - 1] = ']';
        body[len++] = ',';
    }
    body[len - 1] = ']';
    body[len] = '\0';
    CHECK_CONTAINS(poll_error(rt, "fine", body), "memory limit exceeded");
    CHECK(poll_error(rt, "fine", "{}") == NULL, "runtime unusable after a JSON memory bomb");
    CHECK(script_memory_used(rt) < 8u * 1024 * 1024, "memory not given back: %zu",
          script_memory_used(rt));
    free(body);
    script_runtime_free(rt);
    remove_pools();
}

static void test_hostile_json(void)
{
    write_pool("echo",
               "return { currency = 'ADVC',\n"
               "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
               "  parse = function(r)\n"
               "    if not r.json then return nil, 'bad json: ' .. r.json_error end\n"
               "    if r.json.null_field ~= m2p.null then return nil, 'null lost' end\n"
               "    return { paid = r.json.paid } end }\n");
    write_pool("kind",
               "return { currency = 'ADVC',\n"
               "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
               "  parse = function(r)\n"
               "    local obj, why = m2p.json_object(r)\n"
               "    return nil, tostring(r.json_type) .. ': ' .. tostring(why) end }\n");
    script_runtime *rt = load(0, 0, false);
    if (!rt)
        return;
    /* After the bridge an array is a table too: json_type tells, and json_object refuses it. */
    CHECK_CONTAINS(poll_error(rt, "kind", "[{\"paid\": 1}]"),
                   "array: response is not a JSON object (got an array)");
    CHECK_CONTAINS(poll_error(rt, "kind", " []"), "array: response is not a JSON object");
    CHECK_CONTAINS(poll_error(rt, "kind", "{}"), "object: nil");
    CHECK_CONTAINS(poll_error(rt, "kind", "\"text\""), "string: response is not a JSON object");
    CHECK_CONTAINS(poll_error(rt, "kind", "null"), "null: response is not a JSON object");
    char deep[512] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    CHECK_CONTAINS(poll_error(rt, "echo", deep), "bad json");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": 1, \"null_field\": nu"),
                   "truncated JSON (28 bytes)");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": 1, \"null_field\": \"cut her"),
                   "truncated JSON (34 bytes)");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": 1]"), "invalid JSON at byte 10 of 11");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": 1, \"m\": \"w\\u0000evil\", \"null_field\": null}"),
                   "NUL character in the JSON at byte 19 of");
    /* An escaped backslash followed by the text u0000 is no NUL. */
    CHECK(poll_error(rt, "echo", "{\"paid\": 1, \"m\": \"w\\\\u0000\", \"null_field\": null}") == NULL,
          "an escaped backslash before u0000 was taken for a NUL");
    static const char raw_nul[] = "{\"paid\": 1, \"m\": \"w\0evil\", \"null_field\": null}";
    CHECK_CONTAINS(poll_error_bytes(rt, "echo", raw_nul, sizeof raw_nul - 1),
                   "NUL character in the JSON at byte 19 of");
    CHECK_CONTAINS(poll_error(rt, "echo", "<html>502 Bad Gateway</html>"), "invalid JSON at byte 0");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": \"abc\", \"null_field\": null}"),
                   "observation.paid: not a decimal number");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": \"nan\", \"null_field\": null}"),
                   "not a decimal number");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": -5, \"null_field\": null}"), "negative");
    CHECK_CONTAINS(poll_error(rt, "echo", "{\"paid\": 1}"), "null lost");
    CHECK(poll_error(rt, "echo", "{\"paid\": \"1e-8\", \"null_field\": null}") == NULL,
          "a valid body failed");
    char *huge = malloc(2 * 1024 * 1024 + 1);
    memset(huge, ' ', 2 * 1024 * 1024);
    huge[2 * 1024 * 1024] = '\0';
    huge[0] = '{';
    CHECK_CONTAINS(poll_error(rt, "echo", huge), "response body too large");
    free(huge);
    script_runtime_free(rt);
    remove_pools();
}

static void test_wallet_validation(void)
{
    write_parse_pool("plain", "");
    script_runtime *rt = load(0, 0, false);
    if (!rt)
        return;
    static const char *const bad[] = {
        "", "short", "AGwBxFjnhMYit2YBRQpE x4WbPpJad9VNAy", "../../../../etc/passwd/AAAAAAAAAAA",
        "AGwBxFjnhMYit2YBRQpEx4Wb?x=1&y=2AAAA", "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy\r\nHost: evil",
        "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy\"'<>",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 129 characters */
    };
    char err[256];
    script_request req;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(script_request_build(rt, 0, bad[i], &req, err, sizeof err) != 0,
              "wallet \"%s\" accepted", bad[i]);
        CHECK_CONTAINS(err, "invalid wallet");
    }
    CHECK(script_request_build(rt, 0, WALLET, &req, err, sizeof err) == 0, "good wallet: %s", err);
    CHECK(req.url && strcmp(req.url, "http://127.0.0.1/AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy") == 0,
          "url %s", req.url ? req.url : "(null)");
    script_request_clear(&req);
    script_runtime_free(rt);
    remove_pools();
}

/* Request caching's part of the runtime (docs/scripting.md, "Requests are cached"): a pool
 * says whether its request may be kept (cache_request, default true), and request_serial
 * moves whenever its metadata.parse ran, succeeded or not: what a request() may depend on. */
static void test_request_cache_flags(void)
{
    write_parse_pool("cached", "");
    write_pool("nonce", "return { currency = 'ADVC', cache_request = false,\n"
                        "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
                        "  parse = function() return { paid = 1 } end }\n");
    write_pool("meta", "local seen\n"
                       "return { currency = 'ADVC',\n"
                       "  metadata = { url = 'http://127.0.0.1/meta', refresh = 60,\n"
                       "    parse = function(r) seen = r.body if r.body == 'bad' then\n"
                       "      return nil, 'bad' end return { ok = true } end },\n"
                       "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
                       "  parse = function() return { paid = 1 } end }\n");
    script_runtime *rt = load(0, 0, false);
    if (!rt)
        return;
    const script_pool *cached = script_pool_at(rt, (size_t)script_pool_find(rt, "cached"));
    const script_pool *nonce = script_pool_at(rt, (size_t)script_pool_find(rt, "nonce"));
    int meta_index = script_pool_find(rt, "meta");
    const script_pool *meta = script_pool_at(rt, (size_t)meta_index);
    CHECK(cached->cache_request, "a pool without cache_request is not cached");
    CHECK(!nonce->cache_request, "cache_request = false is cached");
    CHECK(meta->cache_request && meta->request_serial == 0, "meta: serial %u", meta->request_serial);
    char err[256];
    script_response ok = {.status = 200, .body = "good", .body_len = 4};
    script_response bad = {.status = 200, .body = "bad", .body_len = 3};
    CHECK(script_metadata_parse(rt, meta_index, &ok, NULL, err, sizeof err) == 0, "parse: %s", err);
    CHECK(meta->request_serial == 1, "serial after a parse: %u", meta->request_serial);
    CHECK(script_metadata_parse(rt, meta_index, &bad, NULL, err, sizeof err) != 0, "bad parsed");
    CHECK(meta->request_serial == 2, "serial after a failed parse: %u", meta->request_serial);
    CHECK(cached->request_serial == 0, "another pool's serial moved: %u", cached->request_serial);
    script_runtime_free(rt);

    write_pool("nonce", "return { currency = 'ADVC', cache_request = 'no',\n"
                        "  request = function() end, parse = function() end }\n");
    rt = load(0, 0, false);
    if (rt) {
        const char *e = load_error_of(rt, "nonce.lua");
        CHECK(e != NULL, "cache_request = 'no' loaded");
        if (e)
            CHECK_CONTAINS(e, "field 'cache_request' must be a boolean");
        script_runtime_free(rt);
    }
    remove_pools();
}

/* Address checks through the C interface (script_wallet_check, script_request_build) with the
 * prelude's helpers on OpenSSL's SHA-256: the canonical form comes back, a refused wallet
 * comes back as "invalid wallet: <reason>" and never reaches request(). */
static void test_wallet_addresses(void)
{
    write_pool("advc", "return { currency = 'ADVC', wallet_pattern = m2p.advc_address,\n"
                       "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
                       "  parse = function(r) return { paid = 1 } end }\n");
    write_pool("btc", "return { currency = 'BTC', wallet_pattern = m2p.btc_address,\n"
                      "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
                      "  parse = function(r) return { paid = 1 } end }\n");
    write_parse_pool("hashes",
                     "assert(m2p.sha256('abc') == 'ba7816bf8f01cfea414140de5dae2223'\n"
                     "  .. 'b00361a396177a9cb410ff61f20015ad', 'sha256 of abc')\n"
                     "assert(#m2p.sha256(string.rep('a', 65536)) == 64)\n"
                     "assert(not pcall(m2p.sha256, string.rep('a', 65537)), 'input cap')");
    script_runtime *rt = load(0, 0, false);
    if (!rt)
        return;
    int advc = script_pool_find(rt, "advc"), btc = script_pool_find(rt, "btc");
    char canonical[300], err[256];
    CHECK(script_wallet_check(rt, advc, WALLET, canonical, sizeof canonical, err, sizeof err) == 0,
          "ADVC wallet: %s", err);
    CHECK(strcmp(canonical, WALLET) == 0, "canonical %s", canonical);
    CHECK(script_wallet_check(rt, advc, "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNA", canonical,
                              sizeof canonical, err, sizeof err) != 0,
          "a truncated ADVC wallet was accepted");
    CHECK_CONTAINS(err, "invalid wallet: bad base58check checksum");
    CHECK(script_wallet_check(rt, btc, "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ", canonical,
                              sizeof canonical, err, sizeof err) == 0,
          "upper-case bech32: %s", err);
    CHECK(strcmp(canonical, "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq") == 0, "canonical %s",
          canonical);
    script_request req;
    CHECK(script_request_build(rt, btc, WALLET, &req, err, sizeof err) != 0,
          "an ADVC address was polled on a BTC pool");
    CHECK_CONTAINS(err, "invalid wallet: version 23 is not a Bitcoin mainnet address");
    CHECK(script_request_build(rt, btc, "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ", &req, err,
                               sizeof err) == 0,
          "upper-case bech32 request: %s", err);
    const char *url = "http://127.0.0.1/bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
    CHECK(req.url && strcmp(req.url, url) == 0, "url %s", req.url ? req.url : "(null)");
    script_request_clear(&req);
    const char *e = poll_error(rt, "hashes", "{}");
    CHECK(e == NULL, "m2p.sha256 in the engine: %s", e ? e : "");
    script_runtime_free(rt);
    remove_pools();
}

int main(void)
{
    log_configure(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
    if (!fixture_init("test-script"))
        return 1;
    test_sandbox_escapes();
    test_globals_are_private();
    test_load_errors();
    test_budget();
    test_jit_escapes_count_hooks();
    test_memory_ceiling();
    test_hostile_json();
    test_memory_ceiling_in_json();
    test_wallet_validation();
    test_wallet_addresses();
    test_request_cache_flags();
    rmdir(pools_dir);
    return check_summary();
}
