/* The poller (see poller.h). Each poll is a small state carried through callbacks:
 *
 *   pump() -> start_poll(): the account's state first if it is not in memory: a page of its
 *                   pool's states (poller_preload.c), else (or if the page did not settle
 *                   it) store->load, which also claims the wallet
 *   send_request(): waits for the pool's first metadata fetch if it declares one and that
 *                   has not finished (pool_metadata.h), then the account's request
 *                   (poller_requests.c: kept from the last poll, or built) + http_get
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
 * This file keeps players, accounts, pool slots and the pump; one poll's path from start_poll
 * to finish is poller_poll.c. The structures live in poller_internal.h, shared with
 * poller_poll.c, poller_wallets.c (wallet refusals) and poller_pacing.c (max_interval
 * warnings); the in-memory store is store_memory.c.
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
#include "utf8.h"
#include "poller_internal.h"
#include "pool_metadata.h"
#include "pool_tls.h"
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

void poller_generation_release(generation *g)
{
    if (g && --g->refs == 0) {
        script_runtime_free(g->rt);
        free(g);
    }
}

/* ===================================================================== Players */

static void push_free(uint32_t **list, size_t *n, size_t *cap, uint32_t index)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *list = realloc(*list, *cap * sizeof **list);
    }
    (*list)[(*n)++] = index;
}

/* A released entry first: the table grows only while more players are present than ever. */
static player_entry *new_player_entry(poller *p, int64_t id)
{
    uint32_t index;
    if (p->n_free_players > 0) {
        index = p->free_players[--p->n_free_players];
    } else {
        if (p->n_players == p->players_cap) {
            p->players_cap = p->players_cap ? p->players_cap * 2 : 1024;
            p->players = realloc(p->players, p->players_cap * sizeof *p->players);
        }
        if ((p->n_players + 1) * 2 > p->player_index_cap)
            poller_index_grow(p);
        index = (uint32_t)p->n_players++;
        p->metrics.player_entries = p->n_players;
    }
    player_entry *e = &p->players[index];
    memset(e, 0, sizeof *e);
    e->p.id = id;
    poller_index_insert(p, id, index);
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
    uint32_t id;
    if (p->n_free_accounts > 0) {
        /* The epoch goes on from the released account's: a late answer of a re-check made
         * for that one (recheck_ctx) must not match the new account. */
        id = p->free_accounts[--p->n_free_accounts];
        p->accounts[id] =
            (account){.player = player, .slot = slot, .epoch = p->accounts[id].epoch + 1};
    } else {
        if (p->n_accounts == p->accounts_cap) {
            p->accounts_cap = p->accounts_cap ? p->accounts_cap * 2 : 1024;
            p->accounts = realloc(p->accounts, p->accounts_cap * sizeof *p->accounts);
        }
        id = (uint32_t)p->n_accounts++;
        p->metrics.account_entries = p->n_accounts;
        p->accounts[id] = (account){.player = player, .slot = slot};
    }
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
    a->page_missed = false; /* active again, it may be read in a page again */
    a->epoch++; /* a poll in flight finishes without touching the account */
    free(a->state_json);
    a->state_json = NULL;
    free(a->last_error); /* it was about a wallet or an ownership that no longer holds */
    a->last_error = NULL;
    a->last_poll_at = a->last_error_at = 0;
    poller_request_forget(a); /* the wallet may change before it is active again */
}

static void activate(poller *p, uint32_t id)
{
    account *a = &p->accounts[id];
    if (a->active)
        return;
    a->active = true;
    a->loaded = false; /* the store's state is read before the first poll */
    a->epoch++;
    poller_request_forget(a);
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

/* ==================================================================== Release */

static void set_leaving(poller *p, player_entry *e, bool leaving)
{
    if (e->leaving != leaving)
        p->players_leaving += leaving ? 1 : (size_t)-1;
    e->leaving = leaving;
}

/* A player that is gone (deactivated, deleted, no longer verified) gives its entry and its
 * accounts back for reuse; if it comes back it gets fresh ones, its state read from the
 * store as after any deactivation. Not while a poll or a page of states still works on one
 * of its accounts (they write to it when they end): then at a later polling cycle. */
static void release_player(poller *p, uint32_t index)
{
    player_entry *e = &p->players[index];
    for (uint16_t i = 0; i < e->n_accounts; i++) {
        const account *a = &p->accounts[e->accounts[i]];
        if (a->in_flight || a->preloading) {
            set_leaving(p, e, true);
            return;
        }
    }
    set_leaving(p, e, false);
    for (uint16_t i = 0; i < e->n_accounts; i++) {
        account *a = &p->accounts[e->accounts[i]];
        free(a->state_json); /* deactivate() freed these already: kept NULL, not relied on */
        free(a->last_error);
        a->state_json = a->last_error = NULL;
        poller_request_forget(a);
        push_free(&p->free_accounts, &p->n_free_accounts, &p->free_accounts_cap,
                  e->accounts[i]);
    }
    poller_index_remove(p, e->p.id);
    player_clear(&e->p);
    free(e->accounts);
    memset(e, 0, sizeof *e);
    e->unused = true;
    push_free(&p->free_players, &p->n_free_players, &p->free_players_cap, index);
}

static void release_leaving(poller *p)
{
    for (uint32_t i = 0; i < p->n_players && p->players_leaving > 0; i++)
        if (p->players[i].leaving)
            release_player(p, i);
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
    player_entry *e = poller_find_player(p, pl->id);
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
        set_leaving(p, e, false); /* back before its entry was released */
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
    player_entry *e = poller_find_player(p, player_id);
    if (!e || !e->present)
        return;
    e->present = false;
    p->players_present--;
    sync_player(p, (uint32_t)(e - p->players));
    release_player(p, (uint32_t)(e - p->players));
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
    for (size_t i = 0; i < p->n_slots; i++) {
        p->slots[i].script_index = -1;
        poller_requests_reset(&p->slots[i]); /* a new generation: every request is rebuilt */
    }
    for (size_t i = 0; i < script_pool_count(rt); i++) {
        const script_pool *sp = script_pool_at(rt, i);
        uint16_t index;
        pool_slot *slot = sp->enabled ? find_slot(p, sp->name, &index) : NULL;
        if (!slot)
            continue;
        slot->script_index = (int)i;
        slot->tls_no_verify = pool_tls_warn_if_off(rt, sp->name);
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

void poller_pump(poller *p)
{
    if (p->pumping || p->stopping || p->finished || !p->started)
        return;
    if (p->opts.once)
        drain_broken_pools(p);
    p->pumping = true; /* a poll may finish synchronously and call poller_pump() again */
    double wake = HUGE_VAL;
    int64_t id;
    while (!p->stopping && (id = scheduler_next(p->sched, ev_now(p->loop), &wake)) >= 0)
        poller_start_poll(p, (uint32_t)id);
    p->pumping = false;
    arm_wake(p, wake);
}

static void on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    poller_pump(w->data);
}

/* ================================================================ Life cycle */

static void on_cycle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    poller *p = w->data;
    release_leaving(p);
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
    poller_pump(p);
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
    poller_generation_release(p->gen);
    p->gen = generation_new(rt);
    if (p->gen_seq == UINT16_MAX) {
        /* The counter wraps: an account checked 65,535 reloads ago must not look checked by
         * this generation, so every account is checked again (0: never checked). */
        for (size_t i = 0; i < p->n_accounts; i++)
            p->accounts[i].checked_gen = 0;
        p->gen_seq = 1;
    } else {
        p->gen_seq++;
    }
    map_pools(p);
    if (p->started)
        pool_metadata_sync(p->metadata, rt);
    sync_all(p);
    poller_recheck_all_refused(p); /* the new generation may validate differently */
    log_schedules(p);
    poller_pump(p);
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
        free(p->accounts[i].request_url);
    }
    free(p->accounts);
    free(p->free_accounts);
    free(p->free_players);
    for (size_t i = 0; i < p->n_players; i++) {
        player_clear(&p->players[i].p);
        free(p->players[i].accounts);
    }
    free(p->players);
    free(p->player_index);
    for (size_t i = 0; i < p->n_slots; i++) {
        free(p->slots[i].name);
        poller_requests_reset(&p->slots[i]);
    }
    poller_generation_release(p->gen);
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
