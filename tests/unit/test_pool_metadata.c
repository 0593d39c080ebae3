/* The pool-script metadata contract (docs/scripting.md, "Pool metadata") on the script side:
 * the declaration is checked at load with file and field, metadata.parse's result is what a
 * poll's parse sees as response.metadata, a failure keeps the last good result, and while
 * there is none the poll's parse sees response.metadata_error. (The fetching, its schedule
 * and reloads are engine/poll/pool_metadata.c: tests/integration/rplant_units.py.) */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "script.h"

static char pools_dir[256];
static const char *WALLET = "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy";

static void write_pool(const char *name, const char *source)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.lua", pools_dir, name);
    FILE *f = fopen(path, "wb");
    fputs(source, f);
    fclose(f);
}

static void remove_pools(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -f %s/*.lua", pools_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

/* A pool with `metadata = <declaration>` whose parse reports what it was given: paid = the
 * metadata's `scale`, or it fails with "no metadata: <metadata_error>". */
static void write_metadata_pool(const char *name, const char *declaration)
{
    char src[4096];
    snprintf(src, sizeof src,
             "return { currency = 'ADVC', metadata = %s,\n"
             "  request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
             "  parse = function(r)\n"
             "    if r.metadata == nil then return nil, 'no metadata: ' .. tostring(r.metadata_error) end\n"
             "    local seen = r.metadata.scale\n"
             "    r.metadata.scale = -1 -- a poll that changes its copy changes nothing for the next\n"
             "    return { paid = seen } end }\n",
             declaration);
    write_pool(name, src);
}

static script_runtime *load(void)
{
    script_options o;
    script_options_defaults(&o);
    o.pools_dir = pools_dir;
    o.scripts_dir = "scripts";
    o.instruction_budget = 1000000;
    char err[1024];
    script_runtime *rt = script_runtime_new(&o, err, sizeof err);
    CHECK(rt != NULL, "runtime: %s", err);
    return rt;
}

static const char *load_error_of(script_runtime *rt, const char *file)
{
    for (size_t i = 0; i < script_load_error_count(rt); i++)
        if (strstr(script_load_error(rt, i), file))
            return script_load_error(rt, i);
    return NULL;
}

/* One poll of pool `name`; returns its paid (>= 0) or -1 with the error in `error`. */
static double poll_paid(script_runtime *rt, const char *name, char *error, size_t len)
{
    const char *body = "{}";
    script_response r = {.status = 200, .body = body, .body_len = strlen(body)};
    script_account a = {.player_id = 1, .wallet = WALLET};
    poll_outcome out;
    int rc = script_poll(rt, script_pool_find(rt, name), &a, &r, &out);
    double paid = -1;
    snprintf(error, len, "%s", rc ? out.error : "");
    if (rc == 0) {
        const char *p = strstr(out.observation_json, "\"paid\":");
        paid = p ? atof(p + 7) : -2;
    }
    poll_outcome_clear(&out);
    return paid;
}

static int give(script_runtime *rt, const char *name, long status, const char *body, char **json,
                char *err, size_t errlen)
{
    script_response r = {.status = status, .body = body, .body_len = strlen(body)};
    return script_metadata_parse(rt, script_pool_find(rt, name), &r, json, err, errlen);
}

static void test_declaration_checked_at_load(void)
{
    const char *parse = "function(r) return { scale = r.json.scale } end";
    char good[512];
    snprintf(good, sizeof good, "{ url = 'https://pool.example/api/dash', refresh = 60, parse = %s }",
             parse);
    write_metadata_pool("good", good);
    write_metadata_pool("default_refresh", "{ url = 'http://127.0.0.1:1/dash', parse = function() end }");
    write_metadata_pool("not_a_table", "'https://pool.example/api/dash'");
    write_metadata_pool("bad_url", "{ url = 'ftp://pool.example/dash', parse = function() end }");
    write_metadata_pool("spaces", "{ url = 'https://pool.example/a b', parse = function() end }");
    write_metadata_pool("short_refresh", "{ url = 'https://p.example/', refresh = 1, parse = function() end }");
    write_metadata_pool("no_parse", "{ url = 'https://pool.example/api/dash' }");
    write_metadata_pool("unknown_field", "{ url = 'https://p.example/', parse = function() end, headers = {} }");
    script_runtime *rt = load();
    if (!rt)
        return;
    CHECK(script_pool_count(rt) == 2, "good and default_refresh load, got %zu", script_pool_count(rt));
    const script_pool *sp = script_pool_at(rt, (size_t)script_pool_find(rt, "good"));
    CHECK(sp->metadata_url && strcmp(sp->metadata_url, "https://pool.example/api/dash") == 0,
          "metadata_url %s", sp->metadata_url ? sp->metadata_url : "(null)");
    CHECK(sp->metadata_refresh == 60, "refresh %g", sp->metadata_refresh);
    sp = script_pool_at(rt, (size_t)script_pool_find(rt, "default_refresh"));
    CHECK(sp->metadata_refresh == 3600, "default refresh %g", sp->metadata_refresh);
    CHECK_CONTAINS(load_error_of(rt, "not_a_table.lua"), "not_a_table.lua: field 'metadata' must be a table");
    CHECK_CONTAINS(load_error_of(rt, "bad_url.lua"), "bad_url.lua: metadata.url must be an http:// or https:// URL");
    CHECK_CONTAINS(load_error_of(rt, "spaces.lua"), "metadata.url");
    CHECK_CONTAINS(load_error_of(rt, "short_refresh.lua"),
                   "short_refresh.lua: metadata.refresh must be a number of seconds in [10, 604800] (got 1)");
    CHECK_CONTAINS(load_error_of(rt, "no_parse.lua"), "no_parse.lua: metadata.parse must be a function");
    CHECK_CONTAINS(load_error_of(rt, "unknown_field.lua"), "metadata.headers is not a known field");
    script_runtime_free(rt);
    remove_pools();
}

static void test_polls_see_the_last_good_metadata(void)
{
    write_metadata_pool("meta", "{ url = 'https://pool.example/api/dash', parse = function(r)\n"
                                "  if r.json.scale == nil then return nil, 'no scale' end\n"
                                "  if r.json.scale == 'loop' then while true do end end\n"
                                "  return { scale = r.json.scale } end }");
    write_pool("plain", "return { currency = 'ADVC', request = function(w) return { url = 'http://127.0.0.1/' .. w } end,\n"
                        "  parse = function(r) return { paid = r.metadata == nil and r.metadata_error == nil and 1 or 0 } end }\n");
    script_runtime *rt = load();
    if (!rt)
        return;
    char err[1024], *json = NULL;
    CHECK(poll_paid(rt, "meta", err, sizeof err) == -1, "a poll before any metadata fails");
    CHECK_CONTAINS(err, "no metadata: not fetched yet");

    script_metadata_failed(rt, script_pool_find(rt, "meta"), "timeout after 10000 ms");
    poll_paid(rt, "meta", err, sizeof err);
    CHECK_CONTAINS(err, "no metadata: timeout after 10000 ms");
    CHECK(give(rt, "meta", 503, "<html>", &json, err, sizeof err) == -1 && !json, "a 503 is refused");
    CHECK_CONTAINS(err, "HTTP 503");
    poll_paid(rt, "meta", err, sizeof err);
    CHECK_CONTAINS(err, "no metadata: HTTP 503");

    CHECK(give(rt, "meta", 200, "{\"scale\": 8, \"noise\": [1, 2, 3]}", &json, err, sizeof err) == 0,
          "a good answer: %s", err);
    CHECK(json && strcmp(json, "{\"scale\":8}") == 0, "result JSON %s", json ? json : "(null)");
    free(json);
    json = NULL;
    CHECK(poll_paid(rt, "meta", err, sizeof err) == 8, "the poll sees the metadata: %s", err);
    CHECK(poll_paid(rt, "meta", err, sizeof err) == 8, "a fresh copy for each poll: %s", err);

    /* Failures after a good answer keep it. */
    CHECK(give(rt, "meta", 200, "{\"other\": 1}", &json, err, sizeof err) == -1, "refused");
    CHECK_CONTAINS(err, "metadata.parse: no scale");
    CHECK(give(rt, "meta", 200, "{\"scale\": \"loop\"}", &json, err, sizeof err) == -1, "runaway");
    CHECK_CONTAINS(err, "instruction budget exceeded");
    CHECK(give(rt, "meta", 200, "   ", &json, err, sizeof err) == -1, "an empty body is refused");
    script_metadata_failed(rt, script_pool_find(rt, "meta"), "HTTP 502");
    CHECK(poll_paid(rt, "meta", err, sizeof err) == 8, "the last good metadata stays: %s", err);
    CHECK(give(rt, "meta", 200, "{\"scale\": 12}", NULL, err, sizeof err) == 0, "a newer one");
    CHECK(poll_paid(rt, "meta", err, sizeof err) == 12, "replaces it: %s", err);

    CHECK(poll_paid(rt, "plain", err, sizeof err) == 1, "a pool without metadata sees neither field");
    CHECK(give(rt, "plain", 200, "{}", &json, err, sizeof err) == -1, "no declaration");
    CHECK_CONTAINS(err, "declares no metadata");
    script_runtime_free(rt);
    remove_pools();
}

static void test_result_must_be_a_small_json_table(void)
{
    write_metadata_pool("number", "{ url = 'https://p.example/', parse = function() return 8 end }");
    write_metadata_pool("huge", "{ url = 'https://p.example/', parse = function()\n"
                                "  local t = {} for i = 1, 20000 do t[i] = 'xxxx' end return t end }");
    write_metadata_pool("function_inside", "{ url = 'https://p.example/', parse = function()\n"
                                           "  return { f = function() end } end }");
    script_runtime *rt = load();
    if (!rt)
        return;
    char err[1024];
    CHECK(give(rt, "number", 200, "{}", NULL, err, sizeof err) == -1, "a number is refused");
    CHECK_CONTAINS(err, "metadata.parse() must return a table (got 8)");
    CHECK(give(rt, "huge", 200, "{}", NULL, err, sizeof err) == -1, "a huge result is refused");
    CHECK_CONTAINS(err, "keep only what parse needs");
    CHECK(give(rt, "function_inside", 200, "{}", NULL, err, sizeof err) == -1, "not JSON");
    CHECK_CONTAINS(err, "not JSON");
    script_runtime_free(rt);
    remove_pools();
}

int main(void)
{
    log_configure(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
    snprintf(pools_dir, sizeof pools_dir, "/tmp/m2p-test-metadata-XXXXXX");
    if (!mkdtemp(pools_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_declaration_checked_at_load();
    test_polls_see_the_last_good_metadata();
    test_result_must_be_a_small_json_table();
    rmdir(pools_dir);
    return check_summary();
}
