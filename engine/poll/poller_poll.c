/* One poll's path through its callbacks (see poller.c for the whole picture):
 * poller_start_poll -> load (poller_preload.c, or store->load) -> send_request -> on_response
 * -> on_script_result -> commit -> on_committed -> finish, which hands the account back to
 * the scheduler and pumps again. Every step checks that the account is still the one the poll
 * started for (its epoch): a poll overtaken by a deactivation or a reload changes nothing.
 */
#include <ev.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "poller_internal.h"
#include "pool_metadata.h"
#include "scheduler.h"
#include "utf8.h"

static char *copy_string(const char *s) { return s ? strdup(s) : NULL; }

/* ===================================================================== Finish */

static bool current(const poll_ctx *c)
{
    const account *a = &c->p->accounts[c->account];
    return a->active && a->epoch == c->epoch;
}

static void finish(poll_ctx *c, sched_result result, double retry_after)
{
    poller *p = c->p;
    account *a = &p->accounts[c->account];
    pool_slot *slot = &p->slots[a->slot];
    if (result != SCHED_NOT_POLLED) {
        slot->attempts++;
        slot->successes += result == SCHED_OK;
    }
    a->in_flight--;
    if (result != SCHED_NOT_POLLED) {
        a->last_poll_at = ev_now(p->loop);
        a->last_result = (uint8_t)result;
    }
    if (current(c)) {
        scheduler_done(p->sched, c->account, ev_now(p->loop), result, retry_after);
        if (p->opts.once && result != SCHED_NOT_POLLED)
            scheduler_remove(p->sched, c->account);
    }
    poller_generation_release(c->gen);
    for (size_t i = 0; c->held_why && i < c->outcome.n_awards; i++)
        free(c->held_why[i]);
    free(c->held_why);
    free(c->held);
    poll_outcome_clear(&c->outcome);
    free(c->previous_state);
    free(c);
    p->in_flight--;
    poller_pump(p);
    poller_check_finished(p);
}

static cJSON *poll_fields(const poll_ctx *c) { return poller_account_fields(c->p, c->account); }

/* Keeps the failure for --explain and the status page; the log line is the caller's. */
static void note_failure(const poll_ctx *c, const char *why)
{
    poller *p = c->p;
    account *a = &p->accounts[c->account];
    free(a->last_error);
    a->last_error = strdup(why);
    if (!a->last_error)
        return;
    /* A pool's text may be cut inside a character: the database, JSON readers and the
     * status page need valid UTF-8. */
    utf8_scrub(a->last_error);
    a->last_error_at = ev_now(p->loop);
    metrics_record_failure(&p->metrics, p->slots[a->slot].metrics, player_of(p, c->account)->id,
                           a->last_error);
}

static void log_poll_failure(const poll_ctx *c, const char *event, const char *error, long status)
{
    char why[512];
    if (status)
        snprintf(why, sizeof why, "%s (HTTP %ld)", error, status);
    else
        snprintf(why, sizeof why, "%s", error);
    note_failure(c, why);
    cJSON *f = poll_fields(c);
    if (status)
        cJSON_AddNumberToObject(f, "status", (double)status);
    cJSON_AddStringToObject(f, "error", error);
    log_emit(LOG_WARNING, event, f);
}

/* ===================================================================== Commit */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* The stored state applies only to the wallet it was observed for: a changed wallet starts
 * from a new baseline. */
void poller_adopt_stored(poller *p, uint32_t id, const stored_account *stored)
{
    account *a = &p->accounts[id];
    free(a->state_json);
    a->state_json = NULL;
    a->observation_hash = 0;
    a->version = stored->found ? stored->version : 0;
    /* The history belongs to the account, not to the wallet: a new wallet keeps the bar. */
    a->history = stored->found ? stored->history : (award_history){0};
    a->last_snapshot = ev_now(p->loop);
    a->loaded = true;
    if (!stored->found)
        return;
    if (stored->wallet && strcmp(stored->wallet, wallet_of(p, id)) != 0) {
        cJSON *f = poller_account_fields(p, id);
        cJSON_AddStringToObject(f, "message", "wallet changed: the next observation is a baseline");
        log_emit(LOG_INFO, "account_rebaselined", f);
        return;
    }
    a->state_json = copy_string(stored->state);
    if (stored->observation_hash)
        a->observation_hash = strtoull(stored->observation_hash, NULL, 16);
}

static void log_award(const poll_ctx *c, const award *aw)
{
    const player *pl = player_of(c->p, c->account);
    cJSON *f = poll_fields(c);
    cJSON_AddStringToObject(f, "username", pl->username ? pl->username : "");
    cJSON_AddNumberToObject(f, "advc_amount", aw->advc);
    cJSON_AddNumberToObject(f, "ap_awarded", aw->ap);
    cJSON_AddStringToObject(f, "key", aw->key);
    cJSON_AddStringToObject(f, "reason", aw->reason);
    log_emit(LOG_INFO, "mining_reward_detected", f);
}

static void log_award_held(const poll_ctx *c, size_t i)
{
    const award *aw = &c->outcome.awards[i];
    cJSON *f = poll_fields(c);
    cJSON_AddStringToObject(f, "key", aw->key);
    cJSON_AddNumberToObject(f, "advc", aw->advc);
    cJSON_AddNumberToObject(f, "ap", aw->ap);
    cJSON_AddStringToObject(f, "why", hold_reason_setting(c->held[i]));
    cJSON_AddStringToObject(f, "message", c->held_why[i]);
    log_emit(LOG_WARNING, "award_held", f);
}

static void log_awards(poll_ctx *c)
{
    for (size_t i = 0; i < c->outcome.n_awards; i++) {
        const award *aw = &c->outcome.awards[i];
        bool held = c->held && c->held[i] != HOLD_NONE;
        if (held)
            log_award_held(c, i);
        else
            log_award(c, aw);
        metrics_record_award(&c->p->metrics, c->p->slots[c->p->accounts[c->account].slot].metrics,
                             player_of(c->p, c->account)->id, aw->advc, aw->ap, held);
    }
}

/* Applies the award limits to this poll's awards before they are stored: a held award is
 * stored as held (not paid), and the account's state still advances past it, so the same
 * payout is never decided again. */
static void hold_suspicious(poll_ctx *c)
{
    const poll_outcome *o = &c->outcome;
    const account *a = &c->p->accounts[c->account];
    if (o->n_awards == 0)
        return;
    hold_reason *why = calloc(o->n_awards, sizeof *why);
    if (award_limits_check(&c->p->limits, &a->history, o->awards, o->n_awards, why) == 0) {
        free(why);
        return;
    }
    double poll_advc = 0;
    for (size_t i = 0; i < o->n_awards; i++)
        poll_advc += o->awards[i].advc;
    c->held = why;
    c->held_why = calloc(o->n_awards, sizeof *c->held_why);
    for (size_t i = 0; i < o->n_awards; i++) {
        if (why[i] == HOLD_NONE)
            continue;
        char text[256];
        hold_reason_explain(why[i], &c->p->limits, &a->history, poll_advc, o->awards[i].advc,
                            text, sizeof text);
        c->held_why[i] = strdup(text);
    }
}

static void on_committed(void *ctx, commit_status status, long long version,
                         const stored_account *now_stored)
{
    poll_ctx *c = ctx;
    poller *p = c->p;
    account *a = &p->accounts[c->account];
    if (!current(c)) {
        finish(c, SCHED_NOT_POLLED, 0);
        return;
    }
    if (status == COMMIT_FAILED) {
        log_poll_failure(c, "pool_poll_commit_failed", "the result could not be stored", 0);
        a->loaded = false; /* it may have committed: read the store again before deciding */
        finish(c, SCHED_FAIL, 0);
        return;
    }
    if (status == COMMIT_CONFLICT) {
        cJSON *f = poll_fields(c);
        cJSON_AddStringToObject(f, "message", "the account moved on in the store; decided again next poll");
        log_emit(LOG_INFO, "account_conflict", f);
        poller_adopt_stored(c->p, c->account, now_stored);
        finish(c, SCHED_OK, 0);
        return;
    }
    if (version != a->version)
        a->last_snapshot = ev_now(p->loop); /* a real commit stores the due snapshot */
    free(a->state_json);
    a->state_json = c->outcome.state_json; /* the account's state advances only now */
    c->outcome.state_json = NULL;
    a->version = version;
    a->observation_hash = c->observation_hash;
    award_history_add(&a->history, c->outcome.awards, c->outcome.n_awards, c->held);
    log_awards(c);
    finish(c, SCHED_OK, 0);
}

static void commit(poll_ctx *c, const http_response *r)
{
    poller *p = c->p;
    account *a = &p->accounts[c->account];
    char hash[17];
    c->observation_hash = fnv1a(c->outcome.observation_json);
    snprintf(hash, sizeof hash, "%016" PRIx64, c->observation_hash);
    hold_suspicious(c);
    poll_commit pc = {
        .player = player_of(p, c->account),
        .pool = p->slots[a->slot].name,
        .wallet = wallet_of(p, c->account),
        .version = a->version,
        .previous_state = c->previous_state,
        .outcome = &c->outcome,
        .observation_hash = hash,
        .observation_changed = !c->previous_state || c->observation_hash != a->observation_hash ||
                               (p->opts.snapshot_heartbeat > 0 &&
                                ev_now(p->loop) - a->last_snapshot >= p->opts.snapshot_heartbeat),
        .raw_response = r->body,
        .rules_generation = script_rules_generation(c->gen->rt),
        .held = (const char *const *)c->held_why,
    };
    p->store->commit(p->store, &pc, on_committed, c);
}

/* ==================================================================== Response */

/* Seconds of a Retry-After the pool may ask for (the scheduler pauses at most MAX_PAUSE of
 * them); `*refused` is the header's text when it had one that is not used: an HTTP-date,
 * garbage, a negative or absurd number. The breaker and backoff handle that answer. */
static double retry_after_of(const http_response *r, const char **refused)
{
    *refused = NULL;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcmp(r->header_names[i], "retry-after") != 0)
            continue;
        char *end;
        double s = strtod(r->header_values[i], &end);
        if (end != r->header_values[i] && *end == '\0' && s > 0 && s <= 86400)
            return s;
        *refused = r->header_values[i];
    }
    return 0;
}

static void on_script_result(poll_ctx *c, const http_response *r)
{
    poller *p = c->p;
    account *a = &p->accounts[c->account];
    pool_slot *slot = &p->slots[a->slot];
    const player *pl = player_of(p, c->account);
    script_response sr = {r->status, r->header_names, r->header_values, r->n_headers,
                          r->body, r->body_len};
    script_account sa = {pl->id, pl->username, wallet_of(p, c->account), a->state_json};
    c->previous_state = copy_string(a->state_json);
    /* The wallet check of this generation passed, the wallet its own canonical form: the poll
     * need not compute the address checksum again (poller_wallets.c, load_wallet). */
    bool checked = c->gen == p->gen && a->checked_gen == p->gen_seq && !a->canonical_differs &&
                   !a->refused;
    if ((checked ? script_poll_checked_wallet : script_poll)(c->gen->rt, c->script_index, &sa,
                                                             &sr, &c->outcome) != 0) {
        metrics_record_poll(&p->metrics, slot->metrics, false, r->total_ms);
        log_poll_failure(c, r->status >= 200 && r->status < 300 ? "pool_poll_rejected"
                                                                 : "pool_poll_http_error",
                         c->outcome.error, r->status);
        finish(c, SCHED_FAIL, 0);
        return;
    }
    metrics_record_poll(&p->metrics, slot->metrics, true, r->total_ms);
    if (log_enabled(LOG_DEBUG)) {
        cJSON *f = poll_fields(c);
        cJSON_AddNumberToObject(f, "response_time_ms", r->total_ms);
        log_emit(LOG_DEBUG, "pool_poll_success", f);
    }
    commit(c, r);
}

static void on_response(void *user, const http_response *r)
{
    poll_ctx *c = user;
    poller *p = c->p;
    pool_metrics *m = p->slots[p->accounts[c->account].slot].metrics;
    if (!r->ok && strcmp(r->error, "cancelled") == 0) {
        finish(c, SCHED_NOT_POLLED, 0);
    } else if (!current(c)) {
        finish(c, SCHED_NOT_POLLED, 0); /* the account went away while we waited */
    } else if (!r->ok) {
        metrics_record_poll(&p->metrics, m, false, -1);
        log_poll_failure(c, r->timed_out ? "pool_poll_timeout" : "pool_poll_http_error", r->error, 0);
        finish(c, SCHED_POOL_FAIL, 0);
    } else if (r->status == 429 || r->status >= 500) {
        metrics_record_poll(&p->metrics, m, false, r->total_ms);
        const char *refused;
        double retry_after = retry_after_of(r, &refused);
        char why[128];
        snprintf(why, sizeof why, "the pool answered HTTP %ld%s", r->status,
                 r->status == 429 ? " (too many requests)" : "");
        note_failure(c, why);
        cJSON *f = poll_fields(c);
        cJSON_AddNumberToObject(f, "status", (double)r->status);
        if (retry_after > 0)
            cJSON_AddNumberToObject(f, "retry_after", retry_after);
        else if (refused) { /* named (and cut: it is the pool's text), so that an operator
                               sees why the pool's pause was not kept */
            char text[80];
            snprintf(text, sizeof text, "%.64s%s", refused, strlen(refused) > 64 ? "..." : "");
            cJSON_AddStringToObject(f, "retry_after_refused", text);
        }
        log_emit(LOG_WARNING, "pool_poll_http_error", f);
        finish(c, SCHED_POOL_FAIL, retry_after);
    } else {
        on_script_result(c, r);
    }
}

static void send_request(poll_ctx *c);

/* The pool's first metadata fetch has finished: the waiting poll goes on, unless the world
 * changed meanwhile (a reload: it starts again with the new generation). */
static void on_metadata_ready(void *user)
{
    poll_ctx *c = user;
    if (!current(c) || c->p->stopping || c->gen != c->p->gen)
        finish(c, SCHED_NOT_POLLED, 0);
    else
        send_request(c);
}

static void send_request(poll_ctx *c)
{
    poller *p = c->p;
    pool_slot *slot = &p->slots[p->accounts[c->account].slot];
    if (pool_metadata_wait(p->metadata, slot->name, on_metadata_ready, c))
        return;
    char err[1024];
    poller_request req;
    if (poller_request_get(p, c, &req, err, sizeof err) != 0) {
        metrics_record_poll(&p->metrics, slot->metrics, false, -1);
        log_poll_failure(c, "pool_poll_rejected", err, 0);
        finish(c, SCHED_FAIL, 0);
        return;
    }
    const script_pool *sp = script_pool_at(c->gen->rt, (size_t)c->script_index);
    http_request hr = {.url = req.url,
                       .headers = req.headers,
                       .n_headers = req.n_headers,
                       .proxy = sp->proxy,
                       .interface = sp->interface,
                       .tls_no_verify = slot->tls_no_verify,
                       .redirects = sp->same_host_redirects ? HTTP_REDIRECTS_SAME_HOST
                                                            : HTTP_REDIRECTS_NONE};
    int started = p->http ? http_get(p->http, &hr, on_response, c) : -1;
    poller_request_release(&req);
    if (started != 0) {
        metrics_record_poll(&p->metrics, slot->metrics, false, -1);
        log_poll_failure(c, "pool_poll_http_error", "request could not be started", 0);
        finish(c, SCHED_FAIL, 0);
    }
}

static void on_loaded(void *ctx, bool ok, const stored_account *stored)
{
    poll_ctx *c = ctx;
    if (!current(c)) {
        finish(c, SCHED_NOT_POLLED, 0);
    } else if (!ok) {
        log_poll_failure(c, "account_load_failed", "the account state could not be read", 0);
        finish(c, SCHED_FAIL, 0);
    } else if (!poller_owned(c->p, c->account, stored)) {
        finish(c, SCHED_NOT_POLLED, 0); /* another player's wallet: parked */
    } else {
        poller_adopt_stored(c->p, c->account, stored);
        send_request(c);
    }
}

static void load_account(poll_ctx *c, const char *canonical)
{
    poller *p = c->p;
    p->store->load(p->store, player_of(p, c->account)->id,
                   p->slots[p->accounts[c->account].slot].name, wallet_of(p, c->account),
                   canonical, on_loaded, c);
}

/* After the page of states the poll waited for (poller_preload.c): the account is loaded,
 * or its own load decides its wallet's claim. Stopping: nothing more is asked of the store. */
void poller_load_resume(poll_ctx *c)
{
    poller *p = c->p;
    char canonical[WALLET_TEXT_MAX] = "";
    if (!current(c) || p->stopping)
        finish(c, SCHED_NOT_POLLED, 0);
    else if (p->accounts[c->account].loaded)
        send_request(c);
    else if (!poller_may_poll(p, c->account, canonical, sizeof canonical))
        finish(c, SCHED_NOT_POLLED, 0); /* a reload meanwhile refused the wallet: parked */
    else
        load_account(c, canonical);
}

void poller_start_poll(poller *p, uint32_t id)
{
    account *a = &p->accounts[id];
    pool_slot *slot = &p->slots[a->slot];
    char canonical[WALLET_TEXT_MAX] = "";
    if (!poller_may_poll(p, id, canonical, sizeof canonical)) {
        scheduler_done(p->sched, id, ev_now(p->loop), SCHED_NOT_POLLED, 0); /* parked */
        return;
    }
    poll_ctx *c = calloc(1, sizeof *c);
    c->p = p;
    c->account = id;
    c->epoch = a->epoch;
    c->gen = p->gen;
    c->gen->refs++;
    c->script_index = slot->script_index;
    a->in_flight++;
    p->in_flight++;
    if (a->loaded)
        send_request(c);
    else if (!poller_preload(p, c, canonical))
        load_account(c, canonical);
}

