/* The pure parts of "why was I not rewarded?": the --explain request over NOTIFY and its
 * answers (engine/admin/explain_responder.h), the player=ID argument of GET /accounts
 * (engine/admin/accounts.h) and the merge of the engines' live views into the database's
 * report (engine/store/player_report.h). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "admin/accounts.h"
#include "cli/cli_output.h"
#include "utf8.h"
#include "admin/explain_responder.h"
#include "check.h"
#include "player_report.h"

static void test_requests(void)
{
    char reply[64];
    int64_t id = 0;
    CHECK(explain_request_parse("m2p_explain_123_456 42", reply, sizeof reply, &id) &&
              strcmp(reply, "m2p_explain_123_456") == 0 && id == 42,
          "a request: reply channel and player id");
    const char *bad[] = {NULL, "", "42", "m2p_explain_ 42", "m2p_explain_x", "m2p_explain_x ",
                         "m2p_explain_X 1", "m2p_explain_a;drop 1", "other_channel 1",
                         "m2p_explain_a 0", "m2p_explain_a -1", "m2p_explain_a 1x",
                         "m2p_explain_a 2147483648", "m2p_explain_a 99999999999",
                         "m2p_explain_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!explain_request_parse(bad[i], reply, sizeof reply, &id), "refused: %s",
              bad[i] ? bad[i] : "(null)");
}

static void test_player_argument(void)
{
    int64_t id = 0;
    char err[128];
    CHECK(accounts_player_arg("7", &id, err, sizeof err) && id == 7, "player=7");
    const char *bad[] = {NULL, "", "0", "-3", "7a", "1 ", "2147483648", "12345678901"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!accounts_player_arg(bad[i], &id, err, sizeof err) && strstr(err, "positive"),
              "player=%s refused", bad[i] ? bad[i] : "(null)");
}

/* An entry too large for one NOTIFY is cut, at a character boundary, and never exceeds it. */
static void test_payload_fits(void)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "pool", "cpu-pool");
    char *big = malloc(9000);
    for (size_t i = 0; i + 1 < 9000; i += 2)
        memcpy(big + i, "\xc3\xa9", 2); /* é: two bytes each */
    big[8998] = '\0';
    cJSON_AddStringToObject(e, "last_error", big);
    char *p = explain_entry_payload(e);
    CHECK(p && strlen(p) <= EXPLAIN_PAYLOAD_MAX, "cut to fit: %zu", p ? strlen(p) : 0);
    cJSON *back = cJSON_Parse(p);
    const char *cut = cJSON_GetStringValue(cJSON_GetObjectItem(back, "last_error"));
    CHECK(cut && strlen(cut) < 400 && strstr(cut, "...") && cut[strlen(cut) - 4] != '\xc3',
          "a long text is cut at a character and marked");
    cJSON_Delete(back);
    free(p);
    for (int i = 0; i < 40; i++) { /* many long texts: the entry is replaced */
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        cJSON_AddStringToObject(e, name, big + 8000);
    }
    p = explain_entry_payload(e);
    CHECK(p && strlen(p) <= EXPLAIN_PAYLOAD_MAX && strstr(p, "\"truncated\":true") &&
              strstr(p, "cpu-pool"),
          "an entry that cannot fit says so: %s", p ? p : "(null)");
    free(p);
    free(big);
    cJSON_Delete(e);
}

static cJSON *live_entry(const char *pool, bool here, const char *engine)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "pool", pool);
    cJSON_AddBoolToObject(o, "polled_here", here);
    cJSON_AddStringToObject(o, "engine", engine);
    return o;
}

static const char *live_engine(cJSON *report, const char *pool)
{
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(report, "accounts"))
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(a, "pool")), pool) == 0)
            return cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(a, "live"), "engine"));
    return NULL;
}

/* Two engines answer: the one that polls an account wins, whatever the order. */
static void test_merge(void)
{
    cJSON *report = cJSON_Parse("{\"accounts\":[{\"pool\":\"cpu-pool\",\"version\":3}]}");
    cJSON *live = cJSON_CreateArray();
    cJSON_AddItemToArray(live, live_entry("cpu-pool", true, "a"));
    cJSON_AddItemToArray(live, live_entry("cpu-pool", false, "b"));
    cJSON_AddItemToArray(live, live_entry("zpool", false, "a"));
    cJSON_AddItemToArray(live, live_entry("zpool", true, "b"));
    cJSON_AddItemToArray(live, cJSON_CreateString("not an entry"));
    player_report_merge(report, live);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(report, "accounts")) == 2,
          "a pool without stored state gets its account");
    CHECK(live_engine(report, "cpu-pool") && strcmp(live_engine(report, "cpu-pool"), "a") == 0,
          "the polling engine's view is kept");
    CHECK(live_engine(report, "zpool") && strcmp(live_engine(report, "zpool"), "b") == 0,
          "the polling engine's view replaces another's");
    cJSON_Delete(report);
    unsigned status = 0;
    char *body = accounts_without_db(9, cJSON_CreateArray(), &status);
    CHECK(status == 404 && strstr(body, "no such player"), "unknown without a database: %s",
          body);
    free(body);
}

/* Text from pools and players is made valid UTF-8 before PostgreSQL or a browser sees it,
 * and harmless before a terminal does. */
static void test_utf8(void)
{
    char cut[] = "a\xc3\xa9\xc3"; /* é, then half of another */
    utf8_scrub(cut);
    CHECK(strcmp(cut, "a\xc3\xa9?") == 0, "a cut sequence: %s", cut);
    char bad[] = "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\x80ok";
    utf8_scrub(bad); /* overlong '/', a surrogate, above U+10FFFF, a stray continuation */
    CHECK(strcmp(bad, "??????????ok") == 0, "invalid forms: %s", bad);
    char good[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    utf8_scrub(good);
    CHECK(strcmp(good, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == 0, "valid text kept");
    char out[128] = "";
    FILE *f = fmemopen(out, sizeof out, "w");
    cli_put_clean(f, "a\tb\x1b[2J\xc2\x9b" "1m\xe2\x80\xae" "evil\xc3 \xc3\xa9");
    fclose(f);
    CHECK(strcmp(out, "a?b?[2J?1m?evil? \xc3\xa9") == 0,
          "controls, C1, bidi override and invalid bytes printed as '?': %s", out);
}

int main(void)
{
    test_utf8();
    test_requests();
    test_player_argument();
    test_payload_fits();
    test_merge();
    return check_summary();
}
