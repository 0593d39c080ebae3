/* "Why was I not rewarded?": this engine's view of one player's accounts (poller.h,
 * poller_explain), for GET /accounts and --explain.
 *
 * Everything here only reads: the account's last poll and error (kept by poller.c), the
 * scheduler's due time and the pool's gates (breaker, Retry-After pause, pacing), and what the
 * rules say about the state (script_explain). The text names the cause of a late poll in the
 * order that decides it: a poll in flight, a refused wallet, the breaker, a pause, the
 * account's backoff, then the pool's pacing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "poller_internal.h"

static void add_time(cJSON *o, const char *name, double t)
{
    if (t <= 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    char buf[32];
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, name, buf);
}

static const char *result_name(uint8_t r)
{
    switch (r) {
    case SCHED_OK:
        return "ok";
    case SCHED_FAIL:
        return "failed";
    case SCHED_POOL_FAIL:
        return "pool failed";
    default:
        return "not polled";
    }
}

/* Why the pool's accounts wait as long as they do when nothing is wrong. */
static void pacing_reason(const sched_pool_status *ps, char *buf, size_t len)
{
    double base = ps->base_interval;
    if (ps->per_second > 0 && ps->effective_interval > fmax(base, ps->min_interval) + 1e-9)
        snprintf(buf, len,
                 "pool pacing: %zu accounts at %g requests/s stretch each account's interval "
                 "to %.0f s (POLL_INTERVAL_SECONDS is %g)",
                 ps->accounts, ps->per_second, ps->effective_interval, base);
    else if (ps->min_interval > base)
        snprintf(buf, len, "the pool's script polls an account at most every %.0f s "
                 "(POLL_INTERVAL_SECONDS is %g)", ps->min_interval, base);
    else
        snprintf(buf, len, "the regular interval of %.0f s", ps->effective_interval);
}

/* When the next poll can start and why then; next = 0 when it is not scheduled. */
static void next_poll(const sched_account_status *as, const sched_pool_status *ps, double now,
                      double *next, char *buf, size_t len)
{
    *next = as->due;
    if (as->in_flight) {
        *next = now;
        snprintf(buf, len, "being polled now");
    } else if (ps->breaker != BREAKER_CLOSED) {
        *next = fmax(as->due, ps->probe_at);
        snprintf(buf, len,
                 "the pool's circuit breaker is %s after %u consecutive failures of the pool "
                 "(threshold %d): one probe poll at a time until the pool answers again",
                 ps->breaker == BREAKER_OPEN ? "open" : "probing", ps->consecutive_failures,
                 SCHED_BREAKER_THRESHOLD);
    } else if (ps->paused_until > as->due && ps->paused_until > now) {
        *next = ps->paused_until;
        snprintf(buf, len, "the pool asked to wait (HTTP 429/503 with Retry-After)");
    } else if (as->failures > 0) {
        snprintf(buf, len, "backing off after %u consecutive failed poll(s) of this account",
                 as->failures);
    } else {
        pacing_reason(ps, buf, len);
    }
}

/* Why an account of the player is not polled at all; NULL when it is. */
static const char *not_polled(const account *a, bool have_wallet)
{
    if (!have_wallet)
        return "the player has no wallet for this pool";
    if (!a->active)
        return "not polled by this engine (another engine owns it, or the pool is disabled)";
    if (a->refused == REFUSED_DUPLICATE)
        return "refused: another player owns this wallet on this pool (wallet_refused)";
    return NULL;
}

static void add_rules_view(poller *p, uint32_t id, cJSON *o)
{
    const account *a = &p->accounts[id];
    const pool_slot *slot = &p->slots[a->slot];
    if (slot->script_index < 0 || !a->loaded)
        return; /* the store's state is read at the first poll: --explain shows it */
    const player *pl = player_of(p, id);
    script_account sa = {pl->id, pl->username, wallet_of(p, id), a->state_json};
    char *json = NULL, err[512];
    if (script_explain(p->gen->rt, slot->script_index, &sa, &json, err, sizeof err) != 0) {
        cJSON_AddStringToObject(o, "rules_error", err);
        return;
    }
    cJSON *t = cJSON_Parse(json);
    free(json);
    cJSON *item;
    cJSON_ArrayForEach(item, t)
        if (cJSON_IsString(item))
            cJSON_AddStringToObject(o, item->string, item->valuestring);
    cJSON_Delete(t);
}

/* Queued accounts of the same pool due before `due` (a support request: a scan is fine). */
static size_t queued_before(const poller *p, uint32_t id, double due)
{
    size_t n = 0;
    for (uint32_t i = 0; i < p->n_accounts; i++) {
        if (i == id || p->accounts[i].slot != p->accounts[id].slot || !p->accounts[i].active)
            continue;
        sched_account_status other;
        scheduler_account_status(p->sched, i, &other);
        n += other.known && !other.in_flight && other.due < due;
    }
    return n;
}

static void add_schedule(poller *p, uint32_t id, cJSON *o)
{
    const account *a = &p->accounts[id];
    sched_account_status as;
    sched_pool_status ps;
    scheduler_account_status(p->sched, id, &as);
    scheduler_pool_status(p->sched, a->slot, &ps);
    cJSON_AddNumberToObject(o, "consecutive_failures", as.failures);
    cJSON_AddNumberToObject(o, "effective_interval_seconds", ps.effective_interval);
    if (!as.known) {
        cJSON_AddNullToObject(o, "next_poll_at");
        cJSON_AddStringToObject(o, "next_poll_why", "not scheduled");
        return;
    }
    double now = ev_now(p->loop), next;
    char why[512];
    next_poll(&as, &ps, now, &next, why, sizeof why);
    if (!as.in_flight && ps.per_second > 0) {
        /* The pool starts per_second polls a second: those due first go first. */
        double turn = now + (double)queued_before(p, id, as.due) / ps.per_second;
        next = fmax(next, turn);
    }
    size_t n = strlen(why);
    if (a->last_poll_at <= 0 && !as.in_flight && !a->loaded)
        snprintf(why + n, sizeof why - n, "; the first poll since this engine started or took "
                 "the account over (its stored state is read then), spread over the interval");
    else if (a->last_poll_at <= 0 && !as.in_flight && !a->state_json)
        snprintf(why + n, sizeof why - n, "; never observed: the first successful poll is the "
                 "baseline");
    add_time(o, "next_poll_at", next);
    cJSON_AddNumberToObject(o, "next_poll_in_seconds", fmax(0, round(next - now)));
    cJSON_AddStringToObject(o, "next_poll_why", why);
}

static cJSON *explain_account(poller *p, uint32_t id, const char *engine_id)
{
    const account *a = &p->accounts[id];
    const char *wallet = wallet_of(p, id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "pool", p->slots[a->slot].name);
    if (wallet)
        cJSON_AddStringToObject(o, "wallet", wallet);
    else
        cJSON_AddNullToObject(o, "wallet");
    if (engine_id)
        cJSON_AddStringToObject(o, "engine", engine_id);
    const char *why_not = not_polled(a, wallet != NULL);
    char invalid[600];
    if (!why_not && a->refused == REFUSED_INVALID) {
        char canonical[WALLET_TEXT_MAX], err[512] = "invalid wallet";
        if (p->slots[a->slot].script_index >= 0)
            script_wallet_check(p->gen->rt, p->slots[a->slot].script_index, wallet, canonical,
                                sizeof canonical, err, sizeof err);
        snprintf(invalid, sizeof invalid, "refused: %s (wallet_refused)", err);
        why_not = invalid;
    }
    cJSON_AddBoolToObject(o, "polled_here", why_not == NULL);
    if (why_not) {
        cJSON_AddStringToObject(o, "not_polled", why_not);
        return o;
    }
    add_time(o, "last_poll_at", a->last_poll_at);
    cJSON_AddStringToObject(o, "last_outcome", a->last_poll_at > 0 ? result_name(a->last_result)
                                                                   : "never polled");
    if (a->last_error)
        cJSON_AddStringToObject(o, "last_error", a->last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    add_time(o, "last_error_at", a->last_error_at);
    add_schedule(p, id, o);
    add_rules_view(p, id, o);
    return o;
}

cJSON *poller_explain(poller *p, int64_t player_id, const char *engine_id)
{
    cJSON *list = cJSON_CreateArray();
    const player_entry *e = poller_find_player(p, player_id);
    for (uint16_t k = 0; e && e->present && k < e->n_accounts; k++)
        cJSON_AddItemToArray(list, explain_account(p, e->accounts[k], engine_id));
    return list;
}
