/* The exact bytes a poll hands to C: the observation JSON (its FNV-1a hash says whether a poll
 * changed anything) and the state JSON (stored per account in the database). The fixtures
 * compare a subset of the decoded values; this test pins every byte, step by step, for recorded
 * cpu-pool, rplant and zpool answers, so that a faster pipeline (encode once, a cheaper context)
 * cannot change what is stored or hashed. The expected lines are in script_bytes.txt next to
 * this file ("@NOW@" stands for the poll's clock); M2P_PRINT_BYTES=1 prints the lines got
 * (then the summary line) on stdout. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "check.h"
#include "log.h"
#include "script.h"

static const char *FIXTURES[] = {
    "tests/fixtures/cpu-pool/02-payout-after-baseline.json",
    "tests/fixtures/cpu-pool/17-paid-decrease-then-increase.json",
    "tests/fixtures/rplant/24-payments-with-tx.json",
    "tests/fixtures/rplant/29-payments-appear-counted-by-counter.json",
    "tests/fixtures/zpool/03-tx-seen-twice.json",
    "tests/fixtures/zpool/06-paid24h-fallback-increase.json",
    "tests/fixtures/zpool/26-list-appears-for-paid24h-account.json",
};

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    size_t got = fread(text, 1, (size_t)n, f);
    text[got] = '\0';
    fclose(f);
    return text;
}

static const char *env_lookup(void *user, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive((const cJSON *)user, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

typedef struct response {
    script_response r;
    const char *names[16], *values[16];
    char *body;
} response;

static void build(const cJSON *spec, response *s)
{
    memset(s, 0, sizeof *s);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(spec, "status");
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(spec, "headers");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(spec, "body");
    s->r.status = cJSON_IsNumber(status) ? (long)status->valuedouble : 200;
    for (const cJSON *h = headers ? headers->child : NULL; h && s->r.n_headers < 16; h = h->next)
        if (cJSON_IsString(h)) {
            s->names[s->r.n_headers] = h->string;
            s->values[s->r.n_headers++] = h->valuestring;
        }
    s->r.header_names = s->names;
    s->r.header_values = s->values;
    s->body = cJSON_IsString(body) ? strdup(body->valuestring)
              : body               ? cJSON_PrintUnformatted(body)
                                   : strdup("");
    s->r.body = s->body;
    s->r.body_len = strlen(s->body);
}

static void append_raw(char **out, size_t *len, const char *text)
{
    size_t n = strlen(text);
    *out = realloc(*out, *len + n + 1);
    memcpy(*out + *len, text, n + 1);
    *len += n;
}

/* `text` with every decimal occurrence of a time from t0 to t1 as "@NOW@": t0 is when the
 * fixture's first poll began, since a state keeps an earlier poll's clock (`since`), and the
 * second may have ticked between polls. */
static void append_timeless(char **out, size_t *len, const char *text, time_t t0, time_t t1)
{
    size_t n = strlen(text);
    *out = realloc(*out, *len + n * 2 + 8);
    for (const char *p = text; *p;) {
        size_t skip = 0;
        for (time_t t = t0; t <= t1 && !skip; t++) {
            char a[32];
            int k = snprintf(a, sizeof a, "%lld", (long long)t);
            if (!strncmp(p, a, (size_t)k))
                skip = (size_t)k;
        }
        if (skip) {
            memcpy(*out + *len, "@NOW@", 5);
            *len += 5;
            p += skip;
        } else {
            (*out)[(*len)++] = *p++;
        }
    }
    (*out)[*len] = '\0';
}

static void give_metadata(script_runtime *rt, int pool, const cJSON *spec)
{
    if (!cJSON_IsObject(spec) || cJSON_GetObjectItemCaseSensitive(spec, "error"))
        return;
    response s;
    build(spec, &s);
    char err[256], *json = NULL;
    script_metadata_parse(rt, pool, &s.r, &json, err, sizeof err);
    free(json);
    free(s.body);
}

/* One line per successful step: "<fixture>#<step> <observation JSON> <state JSON>". */
static void run_fixture(const char *path, bool checked, char **out, size_t *len)
{
    char *text = read_file(path);
    CHECK(text != NULL, "cannot read %s", path);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    CHECK(doc != NULL, "%s is not JSON", path);
    if (!doc)
        return;
    script_options o;
    script_options_defaults(&o);
    o.pools_dir = "pools";
    o.scripts_dir = "scripts";
    o.env = env_lookup;
    o.env_user = cJSON_GetObjectItemCaseSensitive(doc, "env");
    char err[1024];
    script_runtime *rt = script_runtime_new(&o, err, sizeof err);
    CHECK(rt != NULL, "runtime: %s", err);
    const char *pool_name = cJSON_GetObjectItemCaseSensitive(doc, "pool")->valuestring;
    const char *wallet = cJSON_GetObjectItemCaseSensitive(doc, "wallet")->valuestring;
    int pool = rt ? script_pool_find(rt, pool_name) : -1;
    CHECK(pool >= 0, "pool %s", pool_name);
    if (pool < 0) {
        script_runtime_free(rt);
        cJSON_Delete(doc);
        return;
    }
    give_metadata(rt, pool, cJSON_GetObjectItemCaseSensitive(doc, "metadata"));
    char *state = NULL;
    int step = 0;
    const time_t begun = time(NULL);
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(doc, "steps"))
    {
        step++;
        give_metadata(rt, pool, cJSON_GetObjectItemCaseSensitive(s, "metadata"));
        response r;
        build(cJSON_GetObjectItemCaseSensitive(s, "response"), &r);
        script_account a = {1, "fixture", wallet, state};
        poll_outcome po;
        int rc = (checked ? script_poll_checked_wallet : script_poll)(rt, pool, &a, &r.r, &po);
        time_t t1 = time(NULL);
        free(r.body);
        if (rc == 0) {
            char head[256];
            snprintf(head, sizeof head, "%s#%d ", strrchr(path, '/') + 1, step);
            append_raw(out, len, head);
            append_timeless(out, len, po.observation_json, begun, t1);
            append_raw(out, len, " ");
            append_timeless(out, len, po.state_json, begun, t1);
            append_raw(out, len, "\n");
            free(state);
            state = strdup(po.state_json);
        }
        poll_outcome_clear(&po);
    }
    free(state);
    script_runtime_free(rt);
    cJSON_Delete(doc);
}

int main(void)
{
    log_configure(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
    char *expected = read_file("tests/unit/script_bytes.txt");
    CHECK(expected != NULL, "tests/unit/script_bytes.txt is missing");
    for (int checked = 0; checked <= 1; checked++) {
        char *got = calloc(1, 1);
        size_t len = 0;
        for (size_t i = 0; i < sizeof FIXTURES / sizeof *FIXTURES; i++)
            run_fixture(FIXTURES[i], checked, &got, &len);
        if (getenv("M2P_PRINT_BYTES") && !checked)
            fputs(got, stdout);
        CHECK(expected && !strcmp(got, expected),
              "the bytes differ from tests/unit/script_bytes.txt (checked wallet: %d); got:\n%s",
              checked, got);
        free(got);
    }
    free(expected);
    return check_summary();
}
