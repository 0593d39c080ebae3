/* Fuzz target: each shipped pool's parse path (pools/cpu-pool.lua, rplant.lua, zpool.lua with
 * scripts/convert.lua and rewards.lua) through script_poll, as the engine runs it: the real
 * runtime (its allocator, memory ceiling and instruction budget), a hostile response.
 *
 * Input framing (documented in docs/reliability.md, "Fuzzing"):
 *   byte 0     flags: bits 0-1 the pool (0 cpu-pool, 1 rplant, 2 zpool, 3 cpu-pool);
 *              bit 2: poll twice, the second time with the state the first poll returned;
 *              bit 3: a state_json part follows the headers (the account's stored state)
 *   status     decimal HTTP status, then a NUL
 *   headers    "Name: value" lines separated by \n, then a NUL
 *   state      (bit 3 only) the account's state_json, then a NUL
 *   body       every remaining byte (NULs included)
 * A failed poll is an expected outcome; a crash, a sanitizer report, a hang or an outcome
 * that breaks script.h's contract (awards without a state, an error with awards) is not.
 *
 * Run from the repository root (pools/, scripts/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "log.h"
#include "script.h"

#define MAX_HEADERS 32

static const char *const POOLS[4] = {"cpu-pool", "rplant", "zpool", "cpu-pool"};
static const char *const WALLETS[4] = {"AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY",
                                       "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY",
                                       "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                                       "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY"};

/* The env of the fixtures (tests/fixtures/zpool): zpool needs a BTC rate to award. */
static const char *fixture_env(void *user, const char *name)
{
    (void)user;
    if (strcmp(name, "BTC_TO_ADVC_RATE") == 0)
        return "1000000";
    if (strcmp(name, "AP_PER_ADVC") == 0)
        return "100";
    return NULL;
}

static script_runtime *rt;
static int pool_index[4];

/* rplant reads its exponent from the metadata (tests/fixtures/rplant/08-*.json). */
static void give_rplant_metadata(void)
{
    static const char body[] = "{\"tbs\":{\"advc\":{\"symbol\":\"ADVC\",\"info\":{\"div2\":8}}}}";
    static const char *const names[] = {"content-type"}, *const values[] = {"application/json"};
    script_response r = {200, names, values, 1, body, sizeof body - 1};
    char err[512];
    if (script_metadata_parse(rt, pool_index[1], &r, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_pool: rplant metadata: %s\n", err);
        abort();
    }
}

/* At exit, before LeakSanitizer's check (atexit runs last-registered first): LuaJIT's heap
 * references are tagged, so LSan cannot follow them and would call a live state's objects
 * leaked. For the same reason run.sh fuzzes this target with -detect_leaks=0; the replay
 * (ASan suite) checks for leaks over the whole corpus at exit. */
static void close_runtime(void)
{
    script_runtime_free(rt);
    rt = NULL;
}

static void open_runtime(void)
{
    static FILE *devnull;
    devnull = fopen("/dev/null", "w");
    log_configure(LOG_ERROR, LOG_FORMAT_TEXT, devnull ? devnull : stderr);
    script_options o;
    script_options_defaults(&o);
    o.pools_dir = "pools";
    o.scripts_dir = "scripts";
    o.env = fixture_env;
    char err[1024];
    rt = script_runtime_new(&o, err, sizeof err);
    for (int i = 0; rt && i < 4; i++)
        pool_index[i] = script_pool_find(rt, POOLS[i]);
    if (!rt || pool_index[0] < 0 || pool_index[1] < 0 || pool_index[2] < 0) {
        fprintf(stderr, "fuzz_pool: cannot load pools/ and scripts/ (run from the repository "
                        "root): %s\n", rt ? "a pool is missing" : err);
        abort();
    }
    give_rplant_metadata();
    atexit(close_runtime);
}

typedef struct parsed {
    long status;
    const char *names[MAX_HEADERS], *values[MAX_HEADERS];
    size_t n_headers;
    char *header_text; /* owns the header strings */
    char *state;       /* NULL: none */
} parsed;

static char *strndup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Cuts the header part into names and values in place ("Name: value" per line). */
static void split_headers(parsed *p)
{
    char *save = NULL;
    for (char *line = strtok_r(p->header_text, "\n", &save); line && p->n_headers < MAX_HEADERS;
         line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ')
            value++;
        p->names[p->n_headers] = line;
        p->values[p->n_headers++] = value;
    }
}

static void check_outcome(const poll_outcome *out, int rc)
{
    if (rc != 0 && (!out->error || out->n_awards || out->state_json))
        abort(); /* a failed poll sets the error and nothing else (script.h) */
    if (rc == 0 && (out->error || !out->state_json || !out->observation_json))
        abort(); /* a successful one has an observation and a state to keep */
    for (size_t i = 0; i < out->n_awards; i++)
        if (!out->awards[i].key || !out->awards[i].key[0])
            abort(); /* every award carries its idempotency key */
}

/* Exactly-once: the same response polled again with the state the first poll returned awards
 * nothing. States are written with numbers that read back as the same double (regression
 * state-15-digits-reaward; docs/reliability.md, "Found: a stored state could award the same
 * payout again"), so any award here is a broken promise. */
static void poll_again(int which, script_account *a, const script_response *r,
                       const char *state)
{
    poll_outcome out;
    a->state_json = state;
    int rc = script_poll(rt, pool_index[which], a, r, &out);
    check_outcome(&out, rc);
    if (rc == 0 && out.n_awards != 0)
        abort();
    poll_outcome_clear(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rt)
        open_runtime();
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    const uint8_t *part;
    parsed p = {0};
    size_t n = fuzz_next_part(&data, &size, &part);
    char *status = strndup_bytes(part, n);
    p.status = status ? strtol(status, NULL, 10) : 0;
    free(status);
    n = fuzz_next_part(&data, &size, &part);
    p.header_text = strndup_bytes(part, n);
    if (p.header_text)
        split_headers(&p);
    if (flags & 8) {
        n = fuzz_next_part(&data, &size, &part);
        p.state = strndup_bytes(part, n);
    }
    int which = flags & 3;
    script_account a = {1, "player1", WALLETS[which], p.state};
    script_response r = {p.status, p.names, p.values, p.n_headers, (const char *)data, size};
    poll_outcome out;
    int rc = script_poll(rt, pool_index[which], &a, &r, &out);
    check_outcome(&out, rc);
    if (rc == 0 && (flags & 4))
        poll_again(which, &a, &r, out.state_json);
    poll_outcome_clear(&out);
    free(p.header_text);
    free(p.state);
    return 0;
}
