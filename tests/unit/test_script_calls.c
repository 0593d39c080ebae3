/* What the calls into scripts pass and skip: a request for a wallet the engine has checked is
 * built without a second check, ctx.wallet_id is computed only when the rules read it (and is
 * then the id of the canonical wallet, whatever the rules did to ctx), and the account state
 * is the encoding of exactly what decide left, whatever decide did to the observation (the
 * contract any shortcut around the second encode must keep). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "check.h"
#include "log.h"
#include "script.h"

static char dir[256], pools_dir[300], scripts_dir[300];

static void write_file(const char *folder, const char *name, const char *source)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    FILE *f = fopen(path, "wb");
    fputs(source, f);
    fclose(f);
}

static script_runtime *load(void)
{
    script_options o;
    script_options_defaults(&o);
    o.pools_dir = pools_dir;
    o.scripts_dir = scripts_dir;
    char err[1024];
    script_runtime *rt = script_runtime_new(&o, err, sizeof err);
    CHECK(rt != NULL, "runtime: %s", err);
    CHECK(rt && script_load_error_count(rt) == 0, "load error: %s",
          rt && script_load_error_count(rt) ? script_load_error(rt, 0) : "");
    return rt;
}

/* The pool counts its wallet checks and says how many in every URL. */
static const char *COUNTING_POOL =
    "local checks = 0\n"
    "return { currency = 'ADVC',\n"
    "  wallet_pattern = function(w) checks = checks + 1 return true end,\n"
    "  request = function(w) return { url = 'http://127.0.0.1/' .. w .. '/' .. checks } end,\n"
    "  parse = function(r) return { paid = r.json.paid, balance = r.json.balance } end }\n";

static char *request_url(script_runtime *rt, const char *wallet, bool checked)
{
    script_request req;
    char err[512];
    int rc = (checked ? script_request_build_checked_wallet : script_request_build)(
        rt, 0, wallet, &req, err, sizeof err);
    CHECK(rc == 0, "request for %s: %s", wallet, err);
    char *url = rc == 0 ? strdup(req.url) : strdup("");
    script_request_clear(&req);
    return url;
}

/* The pipeline remembers the last 4096 wallets it checked; a 4097th makes it forget the
 * first, as a million accounts do all the time. A request for it checked by the engine
 * must not run the wallet check again. */
static void test_request_with_checked_wallet(void)
{
    script_runtime *rt = load();
    char canonical[300], err[512] = "", wallet[64];
    int refused = 0;
    for (int i = 0; i <= 4096; i++) {
        snprintf(wallet, sizeof wallet, "W%d", i);
        if (script_wallet_check(rt, 0, wallet, canonical, sizeof canonical, err, sizeof err))
            refused++;
    }
    CHECK(refused == 0, "%d wallets refused, the last: %s", refused, err);
    char *url = request_url(rt, "W0", true);
    CHECK(strcmp(url, "http://127.0.0.1/W0/4097") == 0, "checked wallet checked again: %s", url);
    free(url);
    url = request_url(rt, "W0", false);
    CHECK(strcmp(url, "http://127.0.0.1/W0/4098") == 0, "unchecked wallet not checked: %s", url);
    free(url);
    script_request req;
    CHECK(script_request_build(rt, 0, "bad wallet", &req, err, sizeof err) != 0,
          "a wallet with a space was accepted");
    CHECK_CONTAINS(err, "invalid wallet");
    script_runtime_free(rt);
}

/* The URL's characters are checked in C (script_calls.c, url_valid), the header lines are
 * checked once per pool and remembered (pipeline.lua, header_line), the wallet's spaces and
 * control characters are scanned in C: each must refuse exactly what the patterns refuse,
 * with the pipeline's own error. The pool returns the request named by the wallet. */
static const char *REQUEST_POOL =
    "local cases = {\n"
    "  space = { url = 'http://127.0.0.1/a b' }, tab = { url = 'http://127.0.0.1/a\\tb' },\n"
    "  nul = { url = 'http://127.0.0.1/a\\0b' }, del = { url = 'http://127.0.0.1/a\\127' },\n"
    "  ftp = { url = 'ftp://127.0.0.1/' }, bare = { url = 'http://' },\n"
    "  number = { url = 5 }, http = { url = 'http:/127.0.0.1/' },\n"
    "  long = { url = 'http://127.0.0.1/' .. string.rep('a', 4080) },\n"
    "  longest = { url = 'https://127.0.0.1/' .. string.rep('a', 4078) },\n"
    "  high = { url = 'https://127.0.0.1/\\195\\169' },\n"
    "  both = { url = 'http://x y', headers = { Accept = 'a\\r\\nb' } },\n"
    "  key = { url = 'http://x/', headers = { ['Bad Key'] = 'v' } },\n"
    "  good = { url = 'http://x/', headers = { Accept = 'text/plain', ['X-A'] = 'b' } },\n"
    "  value = { url = 'http://x/', headers = { Accept = 'text/plain\\r\\n' } },\n"
    "  nonstring = { url = 'http://x/', headers = { Accept = 5 } },\n"
    "}\n"
    "return { currency = 'ADVC', wallet_pattern = function(w) return true end,\n"
    "  request = function(w)\n"
    "    return cases[w] or { url = 'http://x/', headers = { ['X-N'] = w } } end,\n"
    "  parse = function(r) return { paid = 1 } end }\n";

static void test_request_checks(void)
{
    write_file(pools_dir, "counting.lua", REQUEST_POOL);
    script_runtime *rt = load();
    static const struct {
        const char *wallet, *error; /* NULL: built */
    } cases[] = {
        {"space", "invalid url \"http://127.0.0.1/a b\""}, {"tab", "invalid url"},
        {"nul", "invalid url"}, {"del", "invalid url"}, {"ftp", "invalid url \"ftp://"},
        {"bare", "invalid url \"http://\" (need"}, {"number", "invalid url 5 (need"},
        {"http", "invalid url"}, {"long", "invalid url"}, {"longest", NULL}, {"high", NULL},
        {"both", "invalid url \"http://x y\""}, {"key", "invalid header \"Bad Key\""},
        {"good", NULL}, {"value", "invalid header \"Accept\""}, {"good", NULL},
        {"nonstring", "invalid header \"Accept\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        script_request req;
        char err[512] = "";
        int rc = script_request_build_checked_wallet(rt, 0, cases[i].wallet, &req, err,
                                                     sizeof err);
        if (cases[i].error) {
            CHECK(rc != 0, "%s: built %s", cases[i].wallet, rc == 0 ? req.url : "");
            CHECK_CONTAINS(err, cases[i].error);
            CHECK_CONTAINS(err, "counting.lua: request()");
        } else {
            CHECK(rc == 0, "%s: %s", cases[i].wallet, err);
        }
        if (rc == 0 && strcmp(cases[i].wallet, "good") == 0)
            CHECK(req.n_headers == 2 && strcmp(req.headers[0], "Accept: text/plain") == 0 &&
                      strcmp(req.headers[1], "X-A: b") == 0,
                  "headers of good: %zu", req.n_headers);
        if (rc == 0)
            script_request_clear(&req);
    }
    /* More header values than the pipeline remembers: each is still the wallet's own. */
    char wallet[32], expected[64];
    for (int i = 0; i < 600; i++) {
        snprintf(wallet, sizeof wallet, "w%d", i);
        snprintf(expected, sizeof expected, "X-N: w%d", i);
        script_request req;
        char err[512] = "";
        int rc = script_request_build_checked_wallet(rt, 0, wallet, &req, err, sizeof err);
        CHECK(rc == 0 && req.n_headers == 1 && strcmp(req.headers[0], expected) == 0,
              "%s: %s", wallet, rc == 0 ? req.headers[0] : err);
        if (rc == 0)
            script_request_clear(&req);
    }
    static const char *refused[] = {"bad wallet", "bad\twallet", "bad\x7fwallet", "bad\x01w"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char canonical[300], err[512] = "";
        CHECK(script_wallet_check(rt, 0, refused[i], canonical, sizeof canonical, err,
                                  sizeof err) != 0,
              "wallet %zu accepted", i);
        CHECK_CONTAINS(err, "contains spaces or control characters");
    }
    char canonical[8], err[512] = "";
    CHECK(script_wallet_check(rt, 0, "\xc3\xa9-long-wallet", canonical, sizeof canonical, err,
                              sizeof err) == 0 && strcmp(canonical, "\xc3\xa9-long") == 0,
          "canonical cut to its buffer: %s %s", canonical, err);
    script_runtime_free(rt);
    write_file(pools_dir, "counting.lua", COUNTING_POOL);
}

/* decide reports what it saw of ctx in `accounted`. */
static const char *CTX_RULES =
    "return { decide = function(previous, current, ctx)\n"
    "  local lazy = rawget(ctx, 'wallet_id') == nil\n"
    "  ctx.wallet = 'changed by the rules'\n"
    "  current.accounted = { lazy = lazy, id = ctx.wallet_id, again = ctx.wallet_id,\n"
    "    raw = rawget(ctx, 'wallet_id'), advc = ctx.to_advc(2), pool = ctx.pool,\n"
    "    currency = ctx.currency, player = ctx.player_id, user = ctx.username }\n"
    "end }\n";

static const char *CONVERT = "return { to_advc = function(a, c, ctx) return a * 3 end }\n";

static char *poll_state(script_runtime *rt, const char *wallet, const char *body, bool checked,
                        char **error)
{
    script_response r = {.status = 200, .body = body, .body_len = strlen(body)};
    script_account a = {.player_id = 7, .username = "ann", .wallet = wallet};
    poll_outcome out;
    int rc = (checked ? script_poll_checked_wallet : script_poll)(rt, 0, &a, &r, &out);
    char *state = rc == 0 ? strdup(out.state_json) : NULL;
    if (error)
        *error = rc == 0 ? NULL : strdup(out.error);
    poll_outcome_clear(&out);
    return state;
}

static void hex16(const char *text, char out[17])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, strlen(text), md);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_context(void)
{
    write_file(scripts_dir, "rewards.lua", CTX_RULES);
    script_runtime *rt = load();
    char id[17], expected[512];
    hex16("W1", id);
    for (int checked = 0; checked <= 1; checked++) {
        char *state = poll_state(rt, "W1", "{\"paid\": 1.5, \"balance\": 0.25}", checked, NULL);
        snprintf(expected, sizeof expected,
                 "{\"accounted\":{\"advc\":6,\"again\":\"%s\",\"currency\":\"ADVC\",\"id\":\"%s\","
                 "\"lazy\":true,\"player\":7,\"pool\":\"counting\",\"raw\":\"%s\",\"user\":\"ann\"},"
                 "\"balance\":0.25,\"paid\":1.5}",
                 id, id, id);
        CHECK(state && strcmp(state, expected) == 0, "ctx as the rules saw it (checked %d): %s",
              checked, state ? state : "(failed)");
        free(state);
    }
    script_runtime_free(rt);
}

/* Rules that change the observation: the state is what decide left, fully encoded. */
static void test_state_after_decide(void)
{
    static const struct {
        const char *decide, *expected;
    } cases[] = {
        {"current.paid = current.paid + 1", "{\"balance\":0,\"paid\":2.5}"},
        {"current.balance = -0", "{\"balance\":-0,\"paid\":1.5}"},
        {"current.balance = nil current.accounted = 1", "{\"accounted\":1,\"paid\":1.5}"},
        {"current.extra = true", "{\"balance\":0,\"extra\":true,\"paid\":1.5}"},
        {"current.accounted = { n = 2 }", "{\"accounted\":{\"n\":2},\"balance\":0,\"paid\":1.5}"},
        {"", "{\"balance\":0,\"paid\":1.5}"},
        {"setmetatable(current, { __index = { accounted = 5 } })", "{\"balance\":0,\"paid\":1.5}"},
    };
    char src[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(src, sizeof src,
                 "return { decide = function(previous, current, ctx) %s end }\n",
                 cases[i].decide);
        write_file(scripts_dir, "rewards.lua", src);
        script_runtime *rt = load();
        char *state = poll_state(rt, "W1", "{\"paid\": 1.5, \"balance\": 0}", true, NULL);
        CHECK(state && strcmp(state, cases[i].expected) == 0, "after `%s`: %s", cases[i].decide,
              state ? state : "(failed)");
        free(state);
        script_runtime_free(rt);
    }
    /* Nested as deep as the encoder allows at the depth `accounted` has in the state, and one
     * level deeper: the same limit as a full encode. */
    for (int extra = 0; extra <= 1; extra++) {
        snprintf(src, sizeof src,
                 "return { decide = function(previous, current, ctx)\n"
                 "  local t = {} for i = 1, %d do t = { t } end current.accounted = t end }\n",
                 63 + extra);
        write_file(scripts_dir, "rewards.lua", src);
        script_runtime *rt = load();
        char *error = NULL;
        char *state = poll_state(rt, "W1", "{\"paid\": 1.5}", true, &error);
        if (extra) {
            CHECK(state == NULL, "nested too deep, yet stored: %.80s", state ? state : "");
            CHECK_CONTAINS(error, "not JSON-serialisable");
        } else {
            CHECK(state != NULL, "nested 64 deep: %s", error ? error : "");
        }
        free(state);
        free(error);
        script_runtime_free(rt);
    }
}

int main(void)
{
    log_configure(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
    snprintf(dir, sizeof dir, "/tmp/m2p-test-calls-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(pools_dir, sizeof pools_dir, "%s/pools", dir);
    snprintf(scripts_dir, sizeof scripts_dir, "%s/scripts", dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p %s %s", pools_dir, scripts_dir);
    if (system(cmd) != 0)
        return 1;
    write_file(pools_dir, "counting.lua", COUNTING_POOL);
    write_file(scripts_dir, "convert.lua", CONVERT);
    write_file(scripts_dir, "rewards.lua", "return { decide = function() end }\n");
    test_request_with_checked_wallet();
    test_context();
    test_state_after_decide();
    test_request_checks();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return check_summary();
}
