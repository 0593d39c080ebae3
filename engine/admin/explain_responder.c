/* Answers --explain over LISTEN/NOTIFY (see explain_responder.h). */
#include "explain_responder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "utf8.h"

#define MAX_ACCOUNTS 256 /* per player answered (a player has one account per pool) */
#define TEXT_CUT 300     /* characters kept of a long text when an entry is too large */
#define PER_SECOND 20    /* requests answered per second: a NOTIFY flood cannot fill the queue */

struct explain_responder {
    db *db;
    char *engine_id;
    cJSON *(*live)(void *user, int64_t player);
    void *user;
    time_t second;     /* the second `answered` and `invalid` count in */
    int answered;      /* valid requests this second */
    int invalid;       /* malformed ones this second (logged once) */
};

bool explain_request_parse(const char *payload, char *reply, size_t reply_len, int64_t *player)
{
    if (!payload)
        return false;
    const char *space = strchr(payload, ' ');
    size_t n = space ? (size_t)(space - payload) : 0;
    size_t prefix = strlen(EXPLAIN_REPLY_PREFIX);
    /* The reply channel is used verbatim by pg_notify: lower-case letters, digits and '_'. */
    if (n <= prefix || n > 63 || n >= reply_len || strncmp(payload, EXPLAIN_REPLY_PREFIX, prefix))
        return false;
    for (size_t i = prefix; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_", payload[i]))
            return false;
    const char *id = space + 1;
    size_t digits = strspn(id, "0123456789");
    if (digits == 0 || digits > 10 || id[digits] != '\0')
        return false;
    long long v = strtoll(id, NULL, 10);
    if (v <= 0 || v > 2147483647)
        return false;
    memcpy(reply, payload, n);
    reply[n] = '\0';
    *player = v;
    return true;
}

/* In place, at a UTF-8 character boundary: the payload must stay valid text for the server. */
static void cut_texts(cJSON *o)
{
    cJSON *item;
    cJSON_ArrayForEach(item, o) {
        if (!cJSON_IsString(item) || strlen(item->valuestring) <= TEXT_CUT)
            continue;
        char *s = item->valuestring;
        size_t cut = TEXT_CUT - 3;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        memcpy(s + cut, "...", 4);
    }
}

char *explain_entry_payload(const cJSON *entry)
{
    char *text = cJSON_PrintUnformatted(entry);
    if (text)
        utf8_scrub(text); /* pg_notify refuses invalid UTF-8: the whole answer would be lost */
    if (text && strlen(text) <= EXPLAIN_PAYLOAD_MAX)
        return text;
    free(text);
    cJSON *copy = cJSON_Duplicate(entry, 1);
    cut_texts(copy);
    text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (text && strlen(text) <= EXPLAIN_PAYLOAD_MAX)
        return text;
    free(text);
    cJSON *small = cJSON_CreateObject();
    cJSON *pool = cJSON_GetObjectItemCaseSensitive(entry, "pool");
    cJSON *engine = cJSON_GetObjectItemCaseSensitive(entry, "engine");
    if (cJSON_IsString(pool) && strlen(pool->valuestring) < 200)
        cJSON_AddStringToObject(small, "pool", pool->valuestring);
    if (cJSON_IsString(engine) && strlen(engine->valuestring) < 200)
        cJSON_AddStringToObject(small, "engine", engine->valuestring);
    cJSON_AddBoolToObject(small, "truncated", true);
    text = cJSON_PrintUnformatted(small);
    cJSON_Delete(small);
    return text;
}

static void on_sent(void *user, const db_result *results, int n)
{
    (void)user;
    if (n > 0 && !results[0].ok)
        log_message(LOG_WARNING, "explain_reply_failed", "%s", results[0].error);
}

/* One transaction: the entries, then the done marker, in order. */
static void reply(explain_responder *r, const char *channel, cJSON *live)
{
    int n = cJSON_GetArraySize(live);
    if (n > MAX_ACCOUNTS)
        n = MAX_ACCOUNTS;
    char **payloads = calloc((size_t)n + 1, sizeof *payloads);
    const char **params = calloc(2 * ((size_t)n + 1), sizeof *params);
    db_stmt *stmts = calloc((size_t)n + 1, sizeof *stmts);
    if (!payloads || !params || !stmts)
        goto out;
    for (int i = 0; i < n; i++)
        payloads[i] = explain_entry_payload(cJSON_GetArrayItem(live, i));
    cJSON *done = cJSON_CreateObject();
    cJSON_AddStringToObject(done, "engine", r->engine_id);
    cJSON_AddBoolToObject(done, "done", true);
    cJSON_AddNumberToObject(done, "accounts", n);
    payloads[n] = cJSON_PrintUnformatted(done);
    cJSON_Delete(done);
    for (int i = 0; i <= n; i++) {
        params[2 * i] = channel;
        params[2 * i + 1] = payloads[i] ? payloads[i] : "{}";
        stmts[i] = (db_stmt){"SELECT pg_notify($1, $2)", 2, &params[2 * i]};
    }
    if (db_transaction(r->db, stmts, n + 1, on_sent, r) != 0)
        log_message(LOG_WARNING, "explain_reply_failed", "the database queue is full");
out:
    for (int i = 0; payloads && i <= n; i++)
        free(payloads[i]);
    free(payloads);
    free(params);
    free(stmts);
    cJSON_Delete(live);
}

/* The counts are per second: a new second starts them again. */
static void start_second(explain_responder *r)
{
    time_t now = time(NULL);
    if (now != r->second) {
        r->second = now;
        r->answered = r->invalid = 0;
    }
}

static void on_request(void *user, const char *channel, const char *payload)
{
    (void)channel;
    explain_responder *r = user;
    char reply_channel[64];
    int64_t player;
    if (!payload)
        return; /* (re)subscribed: nothing to catch up on, a request is answered or lost */
    start_second(r);
    /* Junk is counted apart: it must not crowd out real requests. */
    if (!explain_request_parse(payload, reply_channel, sizeof reply_channel, &player)) {
        if (r->invalid++ == 0)
            log_message(LOG_WARNING, "explain_request_invalid",
                        "a NOTIFY on " EXPLAIN_CHANNEL " that is not '<reply channel> <player "
                        "id>' (said once a second)");
        return;
    }
    if (++r->answered > PER_SECOND) {
        if (r->answered == PER_SECOND + 1)
            log_message(LOG_WARNING, "explain_requests_dropped",
                        "more than %d --explain requests in one second: the rest are ignored",
                        PER_SECOND);
        return;
    }
    reply(r, reply_channel, r->live(r->user, player));
}

explain_responder *explain_responder_start(db *d, const char *engine_id,
                                           cJSON *(*live)(void *user, int64_t player),
                                           void *user)
{
    explain_responder *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->db = d;
    r->engine_id = strdup(engine_id ? engine_id : "");
    r->live = live;
    r->user = user;
    if (!r->engine_id || db_listen(d, EXPLAIN_CHANNEL, on_request, r) != 0) {
        explain_responder_free(r);
        return NULL;
    }
    return r;
}

void explain_responder_free(explain_responder *r)
{
    if (!r)
        return;
    free(r->engine_id);
    free(r);
}
