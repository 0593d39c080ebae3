/* The poller (see poller.h). Each poll is a small state carried through callbacks:
 *
 *   pump() -> start_poll(): store->load first if the account's state is not in memory
 *   send_request(): waits for the pool's first metadata fetch if it declares one and that
 *                   has not finished (pool_metadata.h), then script_request_build + http_get
 *   on_response(): classify transport/HTTP failures, else script_poll
 *   commit(): hold awards above the limits (award_limits.h), then store->commit()
 *   on_committed(): advance the account state, log awards and held awards
 *   finish(): scheduler_done, release the script generation, pump() again
 *
 * Accounts exist once per (player, pool) and are "active" (scheduled) while the player is
 * present, the pool enabled, the player has a wallet for it and this engine owns it; an
 * active account whose wallet is invalid or another player's is parked instead (see
 * poller_wallets.c). Every deactivation bumps the account's epoch, so a poll in flight at the
 * time finishes without touching the account. Script generations are reference counted: a
 * reload swaps in a new one while polls that started with the old one finish with it.
 *
 * The structures live in poller_internal.h, shared with poller_wallets.c (wallet refusals) and
 * poller_pacing.c (max_interval warnings); the in-memory store is store_memory.c.
 */
#include "poller.h"

#include <ev.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "poller_internal.h"
#include "pool_metadata.h"
#include "scheduler.h"
#include "wallet_owners.h"

/* ================================================================= Generations */

static generation *generation_new(script_runtime *rt)
{
    generation *g = calloc(1, sizeof *g);
    g->rt = rt;
    g->refs = 1;
    return g;
}

static void generation_release(generation *g)
{
    if (g && --g->refs == 0) {
        script_runtime_free(g->rt);
        free(g);
    }
}

/* ===================================================================== Players */

static size_t id_hash(int64_t id, size_t cap)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x >> 17) & (cap - 1);
}

static void index_insert(poller *p, int64_t id, uint32_t index)
{
    size_t i = id_hash(id, p->player_index_cap);
    while (p->player_index[i])
        i = (i + 1) & (p->player_index_cap - 1);
    p->player_index[i] = index + 1;
}

static void index_grow(poller *p)
{
    free(p->player_index);
    p->player_index_cap = p->player_index_cap ? p->player_index_cap * 2 : 1024;
    p->player_index = calloc(p->player_index_cap, sizeof *p->player_index);
    for (size_t i = 0; i < p->n_players; i++)
        index_insert(p, p->players[i].p.id, (uint32_t)i);
}

static player_entry *find_player(const poller *p, int64_t id)
{
    if (!p->player_index_cap)
        return NULL;
    for (size_t i = id_hash(id, p->player_index_cap); p->player_index[i];
         i = (i + 1) & (p->player_index_cap - 1)) {
        player_entry *e = &p->players[p->player_index[i] - 1];
        if (e->p.id == id)
            return e;
    }
    return NULL;
}

static player_entry *new_player_entry(poller *p, int64_t id)
{
    if (p->n_players == p->players_cap) {
        p->players_cap = p->players_cap ? p->players_cap * 2 : 1024;
        p->players = realloc(p->players, p->players_cap * sizeof *p->players);
    }
    if ((p->n_players + 1) * 2 > p->player_index_cap)
        index_grow(p);
    player_entry *e = &p->players[p->n_players];
    memset(e, 0, sizeof *e);
    e->p.id = id;
    index_insert(p, id, (uint32_t)p->n_players++);
    return e;
}

static char *copy_string(const char *s) { return s ? strdup(s) : NULL; }

static void player_copy(player *dst, const player *src)
{
    dst->id = src->id;
    dst->username = copy_string(src->username);
    dst->wallet = copy_string(src->wallet);
    dst->n_wallets = src->n_wallets;
    dst->wallets = src->n_wallets ? calloc(src->n_wallets, sizeof *dst->wallets) : NULL;
    for (size_t i = 0; i < src->n_wallets; i++) {
        dst->wallets[i].pool = strdup(src->wallets[i].pool);
        dst->wallets[i].wallet = strdup(src->wallets[i].wallet);
    }
}

static void player_clear(player *pl)
{
    player_list one = {pl, 1};
    player_list_free_items(&one);
}

/* ==================================================================== Accounts */

static uint32_t account_for(poller *p, uint32_t player, uint16_t slot)
{
    player_entry *e = &p->players[player];
    for (uint16_t i = 0; i < e->n_accounts; i++)
        if (p->accounts[e->accounts[i]].slot == slot)
            return e->accounts[i];
    if (p->n_accounts == p->accounts_cap) {
        p->accounts_cap = p->accounts_cap ? p->accounts_cap * 2 : 1024;
        p->accounts = realloc(p->accounts, p->accounts_cap * sizeof *p->accounts);
    }
    uint32_t id = (uint32_t)p->n_accounts++;
    p->accounts[id] = (account){.player = player, .slot = slot};
    e->accounts = realloc(e->accounts, (e->n_accounts + 1) * sizeof *e->accounts);
    e->accounts[e->n_accounts++] = id;
    return id;
}

cJSON *poller_account_fields(const poller *p, uint32_t id)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "player_id", (double)player_of(p, id)->id);
    cJSON_AddStringToObject(f, "pool", p->slots[p->accounts[id].slot].name);
    return f;
}

/* ================================================================== Activation */

static void deactivate(poller *p, uint32_t id)
{
    account *a = &p->accounts[id];
    if (!a->active)
        return;
    scheduler_remove(p->sched, id);
    poller_set_refusal(p, a, REFUSED_NONE); /* refusal_logged stays: a flap of ownership is quiet */
    a->active = false;
    a->loaded = false;
    a->epoch++; /* a poll in flight finishes without touching the account */
    free(a->state_json);
    a->state_json = NULL;
    free(a->last_error); /* it was about a wallet or an ownership that no longer holds */
    a->last_error = NULL;
    a->last_poll_at = a->last_error_at = 0;
}

static void activate(poller *p, uint32_t id)
{
    account *a = &p->accounts[id];
    if (a->active)
        return;
    a->active = true;
    a->loaded = false; /* the store's state is read before the first poll */
    a->epoch++;
    char canonical[WALLET_TEXT_MAX];
    if (poller_admit(p, id, canonical, sizeof canonical))
        poller_schedule(p, id);
}

static bool wanted(const poller *p, const player_entry *e, uint16_t slot)
{
    const pool_slot *s = &p->slots[slot];
    return e->present && s->script_index >= 0 && player_wallet_for(&e->p, s->name) &&
           (!p->owns || p->owns(p->owns_user, e->p.id, s->name));
}

/* Brings one player's accounts in line with the pools, its wallets and ownership. */
static void sync_player(poller *p, uint32_t index)
{
    player_entry *e = &p->players[index];
    for (uint16_t s = 0; s < p->n_slots; s++) {
        bool want = wanted(p, e, s);
        if (!want) {
            for (uint16_t i = 0; i < e->n_accounts; i++)
                if (p->accounts[e->accounts[i]].slot == s)
                    deactivate(p, e->accounts[i]);
            continue;
        }
        if (p->started)
            activate(p, account_for(p, index, s));
    }
}

static void sync_all(poller *p)
{
    for (uint32_t i = 0; i < p->n_players; i++)
        sync_player(p, i);
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_player(const player *a, const player *b)
{
    if (!same_text(a->username, b->username) || !same_text(a->wallet, b->wallet) ||
        a->n_wallets != b->n_wallets)
        return false;
    for (size_t i = 0; i < a->n_wallets; i++)
        if (!same_text(a->wallets[i].pool, b->wallets[i].pool) ||
            !same_text(a->wallets[i].wallet, b->wallets[i].wallet))
            return false;
    return true;
}

void poller_put_player(poller *p, const player *pl)
{
    player_entry *e = find_player(p, pl->id);
    if (e && e->present && same_player(&e->p, pl)) {
        e->seen = true;
        return; /* a refresh that changes nothing must not re-read every account */
    }
    if (e) {
        for (uint16_t i = 0; i < e->n_accounts; i++) {
            deactivate(p, e->accounts[i]); /* rebuilt below; state is read from the store */
            p->accounts[e->accounts[i]].refusal_logged = 0; /* a new row: said again */
        }
        if (e->present)
            p->players_present--;
        player_clear(&e->p);
    } else {
        e = new_player_entry(p, pl->id);
    }
    player_copy(&e->p, pl);
    e->present = true;
    e->seen = true;
    p->players_present++;
    sync_player(p, (uint32_t)(e - p->players));
}

void poller_remove_player(poller *p, int64_t player_id)
{
    player_entry *e = find_player(p, player_id);
    if (!e || !e->present)
        return;
    e->present = false;
    p->players_present--;
    sync_player(p, (uint32_t)(e - p->players));
}

size_t poller_player_count(const poller *p) { return p->players_present; }

void poller_sweep_begin(poller *p)
{
    for (size_t i = 0; i < p->n_players; i++)
        p->players[i].seen = false;
}

void poller_sweep_end(poller *p)
{
    for (size_t i = 0; i < p->n_players; i++)
        if (p->players[i].present && !p->players[i].seen)
            poller_remove_player(p, p->players[i].p.id);
}

void poller_set_owner(poller *p, account_owner_fn owns, void *user)
{
    p->owns = owns;
    p->owns_user = user;
}

void poller_resync(poller *p)
{
    sync_all(p);
}

/* ================================================================ Pool slots */

static pool_slot *find_slot(poller *p, const char *name, uint16_t *index)
{
    for (size_t i = 0; i < p->n_slots; i++) {
        if (strcmp(p->slots[i].name, name) == 0) {
            *index = (uint16_t)i;
            return &p->slots[i];
        }
    }
    if (p->n_slots == MAX_POOL_SLOTS)
        return NULL;
    *index = (uint16_t)p->n_slots;
    pool_slot *s = &p->slots[p->n_slots++];
    s->name = strdup(name);
    s->script_index = -1;
    s->metrics = metrics_pool(&p->metrics, name);
    return s;
}

static void log_pool_schedule(poller *p, uint16_t index, const script_pool *sp)
{
    sched_pool_status st;
    scheduler_pool_status(p->sched, index, &st);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "pool", sp->name);
    cJSON_AddStringToObject(f, "script", sp->file);
    cJSON_AddNumberToObject(f, "accounts", (double)st.accounts);
    cJSON_AddNumberToObject(f, "effective_interval_seconds", st.effective_interval);
    cJSON_AddNumberToObject(f, "concurrency", sp->limits.concurrency);
    cJSON_AddNumberToObject(f, "per_second", sp->limits.per_second);
    cJSON_AddNumberToObject(f, "wallets_refused", (double)p->slots[index].metrics->wallets_refused);
    if (st.max_interval > 0) {
        cJSON_AddNumberToObject(f, "max_interval_seconds", st.max_interval);
        if (st.capacity != SIZE_MAX)
            cJSON_AddNumberToObject(f, "accounts_per_egress", (double)st.capacity);
        cJSON_AddBoolToObject(f, "interval_exceeds_max", st.exceeds_max);
    }
    log_emit(LOG_INFO, "pool_schedule", f);
}

/* Maps the current generation's pools onto slots (by name) and applies their limits. */
static void map_pools(poller *p)
{
    script_runtime *rt = p->gen->rt;
    for (size_t i = 0; i < p->n_slots; i++)
        p->slots[i].script_index = -1;
    for (size_t i = 0; i < script_pool_count(rt); i++) {
        const script_pool *sp = script_pool_at(rt, i);
        uint16_t index;
        pool_slot *slot = sp->enabled ? find_slot(p, sp->name, &index) : NULL;
        if (!slot)
            continue;
        slot->script_index = (int)i;
        scheduler_set_pool(p->sched, index,
                           &(sched_pool_limits){sp->limits.concurrency, sp->limits.per_second,
                                                sp->limits.interval, sp->limits.max_interval});
    }
}

static void log_schedules(poller *p)
{
    for (uint16_t s = 0; s < p->n_slots; s++)
        if (p->slots[s].script_index >= 0)
            log_pool_schedule(p, s, script_pool_at(p->gen->rt, (size_t)p->slots[s].script_index));
    poller_check_pacing(p, true);
}

/* ======================================================================= Pump */

static void start_poll(poller *p, uint32_t id);

static void arm_wake(poller *p, double wake_at)
{
    ev_timer_stop(p->loop, &p->wake);
    if (!isfinite(wake_at) || p->stopping)
        return;
    double delay = wake_at - ev_now(p->loop);
    ev_timer_set(&p->wake, delay > 0 ? delay : 0, 0);
    ev_timer_start(p->loop, &p->wake);
}

void poller_schedule(poller *p, uint32_t id)
{
    double now = ev_now(p->loop);
    if (p->opts.once)
        scheduler_add_at(p->sched, id, p->accounts[id].slot, now);
    else
        scheduler_add(p->sched, id, p->accounts[id].slot, now);
    /* An idle poller has no wake-up armed: one pump on the next loop iteration finds the
     * account's due time (many accounts scheduled at once still cost one pump). */
    if (p->started && !p->pumping &&
        (!ev_is_active(&p->wake) || ev_timer_remaining(p->loop, &p->wake) > 0))
        arm_wake(p, now);
}

void poller_check_finished(poller *p)
{
    if (p->finished || (p->in_flight > 0 && !p->abandoned) || !p->started)
        return;
    if (!p->stopping && !p->opts.once)
        return;
    if (!p->stopping && (p->pumping || scheduler_queued(p->sched) > 0))
        return; /* --once: accounts still queued */
    p->finished = true;
    pool_metadata_stop(p->metadata);
    ev_timer_stop(p->loop, &p->wake);
    ev_timer_stop(p->loop, &p->cycle);
    ev_timer_stop(p->loop, &p->deadline);
    if (p->on_finished)
        p->on_finished(p->on_finished_user);
}

/* --once: a pool whose breaker opened will not answer soon; its remaining accounts count as
 * failed instead of holding the single cycle open for minutes. */
static void drain_broken_pools(poller *p)
{
    uint32_t ids[256];
    for (uint16_t s = 0; s < p->n_slots; s++) {
        sched_pool_status st;
        scheduler_pool_status(p->sched, s, &st);
        if (st.breaker == BREAKER_CLOSED || st.queued == 0)
            continue;
        size_t total = 0, n;
        while ((n = scheduler_drain(p->sched, s, ids, 256)) > 0) {
            total += n;
            for (size_t i = 0; i < n; i++)
                metrics_record_poll(&p->metrics, p->slots[s].metrics, false, -1);
        }
        p->slots[s].attempts += total;
        log_message(LOG_WARNING, "pool_skipped", "%s: circuit breaker open, %zu accounts not polled",
                    p->slots[s].name, total);
    }
}

static void pump(poller *p)
{
    if (p->pumping || p->stopping || p->finished || !p->started)
        return;
    if (p->opts.once)
        drain_broken_pools(p);
    p->pumping = true; /* a poll may finish synchronously and call pump() again */
    double wake = HUGE_VAL;
    int64_t id;
    while (!p->stopping && (id = scheduler_next(p->sched, ev_now(p->loop), &wake)) >= 0)
        start_poll(p, (uint32_t)id);
    p->pumping = false;
    arm_wake(p, wake);
}

static void on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

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
    a->in_flight = false;
    if (result != SCHED_NOT_POLLED) {
        a->last_poll_at = ev_now(p->loop);
        a->last_result = (uint8_t)result;
    }
    if (current(c)) {
        scheduler_done(p->sched, c->account, ev_now(p->loop), result, retry_after);
        if (p->opts.once && result != SCHED_NOT_POLLED)
            scheduler_remove(p->sched, c->account);
    }
    generation_release(c->gen);
    for (size_t i = 0; c->held_why && i < c->outcome.n_awards; i++)
        free(c->held_why[i]);
    free(c->held_why);
    free(c->held);
    poll_outcome_clear(&c->outcome);
    free(c->previous_state);
    free(c);
    p->in_flight--;
    pump(p);
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
    a->last_error_at = ev_now(p->loop);
    metrics_record_failure(&p->metrics, p->slots[a->slot].metrics, player_of(p, c->account)->id,
                           why);
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
static void adopt_stored(poll_ctx *c, const stored_account *stored)
{
    account *a = &c->p->accounts[c->account];
    free(a->state_json);
    a->state_json = NULL;
    a->observation_hash = 0;
    a->version = stored->found ? stored->version : 0;
    /* The history belongs to the account, not to the wallet: a new wallet keeps the bar. */
    a->history = stored->found ? stored->history : (award_history){0};
    a->last_snapshot = ev_now(c->p->loop);
    a->loaded = true;
    if (!stored->found)
        return;
    if (stored->wallet && strcmp(stored->wallet, wallet_of(c->p, c->account)) != 0) {
        cJSON *f = poll_fields(c);
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
        adopt_stored(c, now_stored);
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

static double retry_after_of(const http_response *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcmp(r->header_names[i], "retry-after") != 0)
            continue;
        char *end;
        double s = strtod(r->header_values[i], &end);
        if (end != r->header_values[i] && *end == '\0' && s > 0 && s <= 86400)
            return s;
    }
    return 0; /* an HTTP-date or garbage: the breaker and backoff handle it */
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
    if (script_poll(c->gen->rt, c->script_index, &sa, &sr, &c->outcome) != 0) {
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
        double retry_after = retry_after_of(r);
        char why[128];
        snprintf(why, sizeof why, "the pool answered HTTP %ld%s", r->status,
                 r->status == 429 ? " (too many requests)" : "");
        note_failure(c, why);
        cJSON *f = poll_fields(c);
        cJSON_AddNumberToObject(f, "status", (double)r->status);
        if (retry_after > 0)
            cJSON_AddNumberToObject(f, "retry_after", retry_after);
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
    script_request req;
    if (script_request_build(c->gen->rt, c->script_index, wallet_of(p, c->account), &req, err,
                             sizeof err) != 0) {
        metrics_record_poll(&p->metrics, slot->metrics, false, -1);
        log_poll_failure(c, "pool_poll_rejected", err, 0);
        finish(c, SCHED_FAIL, 0);
        return;
    }
    const script_pool *sp = script_pool_at(c->gen->rt, (size_t)c->script_index);
    http_request hr = {.url = req.url,
                       .headers = (const char *const *)req.headers,
                       .n_headers = req.n_headers,
                       .proxy = sp->proxy,
                       .interface = sp->interface,
                       .redirects = sp->same_host_redirects ? HTTP_REDIRECTS_SAME_HOST
                                                            : HTTP_REDIRECTS_NONE};
    int started = p->http ? http_get(p->http, &hr, on_response, c) : -1;
    script_request_clear(&req);
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
        adopt_stored(c, stored);
        send_request(c);
    }
}

static void start_poll(poller *p, uint32_t id)
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
    a->in_flight = true;
    p->in_flight++;
    if (a->loaded)
        send_request(c);
    else
        p->store->load(p->store, player_of(p, id)->id, slot->name, wallet_of(p, id), canonical,
                       on_loaded, c);
}

/* ================================================================ Life cycle */

static void on_cycle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    poller *p = w->data;
    poller_recheck_duplicates(p);
    poller_check_pacing(p, false);
    cJSON *extra = cJSON_CreateObject();
    if (p->status)
        p->status(p->status_user, extra);
    metrics_log_cycle(&p->metrics, p->players_present, extra);
}

void poller_set_status(poller *p, void (*fn)(void *, cJSON *), void *user)
{
    p->status = fn;
    p->status_user = user;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    poller *p = w->data;
    log_message(LOG_WARNING, "shutdown_deadline",
                "%zu polls still in flight after %.1f s: cancelling them", p->in_flight,
                p->opts.shutdown_timeout);
    http_client *http = p->http;
    p->http = NULL;
    http_client_free(http); /* cancelled polls finish as "not polled": nothing changes */
    /* What still waits is waiting on the store (the database is down): give up on it. A
     * commit is atomic and guarded by the account's version, so an abandoned one either
     * happened completely or not at all; its late answer only frees the poll. */
    p->abandoned = p->in_flight > 0;
    poller_check_finished(p);
}

poller *poller_new(struct ev_loop *loop, const poller_options *opts, script_runtime *rt,
                   account_store *store)
{
    poller *p = calloc(1, sizeof *p);
    p->loop = loop;
    p->opts = *opts;
    p->store = store;
    p->limits = opts->limits;
    p->http = http_client_new(loop, &opts->http);
    p->metadata = pool_metadata_new(loop, &p->http);
    unsigned long long seed = opts->seed ? opts->seed : (unsigned long long)time(NULL);
    p->sched = scheduler_new(opts->interval, seed);
    metrics_init(&p->metrics);
    p->gen = generation_new(rt);
    p->gen_seq = 1; /* accounts start at 0: checked before their first poll */
    p->owners = wallet_owners_new();
    map_pools(p);
    ev_timer_init(&p->wake, on_wake, 0, 0);
    ev_timer_init(&p->cycle, on_cycle, opts->interval, opts->interval);
    ev_timer_init(&p->deadline, on_deadline, opts->shutdown_timeout, 0);
    p->wake.data = p->cycle.data = p->deadline.data = p;
    return p;
}

void poller_start(poller *p)
{
    p->started = true;
    pool_metadata_sync(p->metadata, p->gen->rt);
    sync_all(p);
    log_schedules(p);
    if (!p->opts.once)
        ev_timer_start(p->loop, &p->cycle);
    pump(p);
    poller_check_finished(p);
}

void poller_on_finished(poller *p, void (*fn)(void *), void *user)
{
    p->on_finished = fn;
    p->on_finished_user = user;
}

void poller_stop(poller *p)
{
    if (p->stopping)
        return;
    p->stopping = true;
    pool_metadata_stop(p->metadata);
    ev_timer_stop(p->loop, &p->wake);
    ev_timer_start(p->loop, &p->deadline);
    poller_check_finished(p);
}

void poller_reload(poller *p, script_runtime *rt)
{
    generation_release(p->gen);
    p->gen = generation_new(rt);
    p->gen_seq = p->gen_seq == UINT16_MAX ? 1 : (uint16_t)(p->gen_seq + 1); /* 0: never checked */
    map_pools(p);
    if (p->started)
        pool_metadata_sync(p->metadata, rt);
    sync_all(p);
    poller_recheck_all_refused(p); /* the new generation may validate differently */
    log_schedules(p);
    pump(p);
}

void poller_free(poller *p)
{
    if (!p)
        return;
    http_client *http = p->http;
    p->http = NULL;
    p->stopping = true;
    http_client_free(http); /* cancels what is left; finish() still needs the poller */
    pool_metadata_free(p->metadata);
    ev_timer_stop(p->loop, &p->wake);
    ev_timer_stop(p->loop, &p->cycle);
    ev_timer_stop(p->loop, &p->deadline);
    for (size_t i = 0; i < p->n_accounts; i++) {
        free(p->accounts[i].state_json);
        free(p->accounts[i].last_error);
    }
    free(p->accounts);
    for (size_t i = 0; i < p->n_players; i++) {
        player_clear(&p->players[i].p);
        free(p->players[i].accounts);
    }
    free(p->players);
    free(p->player_index);
    for (size_t i = 0; i < p->n_slots; i++)
        free(p->slots[i].name);
    generation_release(p->gen);
    wallet_owners_free(p->owners);
    scheduler_free(p->sched);
    metrics_free(&p->metrics);
    free(p);
}

void poller_set_award_limits(poller *p, const award_limits *limits) { p->limits = *limits; }

const metrics *poller_metrics(const poller *p) { return &p->metrics; }

void poller_note_reload(poller *p, bool ok)
{
    if (ok)
        p->metrics.script_reloads++;
    else
        p->metrics.script_reload_failures++;
}

size_t poller_account_count(const poller *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_accounts; i++)
        n += p->accounts[i].active && p->accounts[i].refused == REFUSED_NONE;
    return n;
}

size_t poller_pools_failed_entirely(const poller *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_slots; i++)
        n += p->slots[i].attempts > 0 && p->slots[i].successes == 0;
    return n;
}
