/* The poller (see poller.h). Each poll is a small state carried through callbacks:
 *
 *   pump() -> start_poll(): script_request_build + http_get
 *   on_response(): classify transport/HTTP failures, else script_poll
 *   sink->commit() -> on_committed(): advance the account state, log awards
 *   finish(): scheduler_done, release the script generation, pump() again
 *
 * Script generations are reference counted: a reload swaps in a new one while polls that
 * started with the old one finish with it.
 */
#include "poller.h"

#include <ev.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "scheduler.h"

#define MAX_POOL_SLOTS 256

typedef struct generation {
    script_runtime *rt;
    int refs;
} generation;

/* A pool as the poller knows it across generations (matched by name). */
typedef struct pool_slot {
    char *name;
    int script_index; /* in the current generation, -1 when gone or disabled */
    pool_metrics *metrics;
    uint64_t attempts, successes; /* for --once's "failed entirely" */
} pool_slot;

typedef struct account {
    uint32_t player;
    uint16_t slot;
    bool active;
    char *state_json;
} account;

typedef struct poll_ctx {
    poller *p;
    uint32_t account;
    generation *gen;
    int script_index;
    char *previous_state; /* the state this poll's decision was based on */
    poll_outcome outcome;
} poll_ctx;

struct poller {
    struct ev_loop *loop;
    poller_options opts;
    http_client *http;
    scheduler *sched;
    metrics metrics;
    generation *gen;
    pool_slot slots[MAX_POOL_SLOTS];
    size_t n_slots;
    const player_list *players;
    account_sink *sink;
    account *accounts;
    size_t n_accounts, accounts_cap;
    size_t in_flight; /* polls started and not finished (HTTP or commit) */
    ev_timer wake, cycle, deadline;
    bool started, stopping, pumping, finished;
    void (*on_finished)(void *);
    void *on_finished_user;
};

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

/* ==================================================================== Accounts */

static uint32_t add_account(poller *p, uint32_t player, uint16_t slot)
{
    if (p->n_accounts == p->accounts_cap) {
        p->accounts_cap = p->accounts_cap ? p->accounts_cap * 2 : 1024;
        p->accounts = realloc(p->accounts, p->accounts_cap * sizeof *p->accounts);
    }
    p->accounts[p->n_accounts] = (account){.player = player, .slot = slot, .active = true};
    return (uint32_t)p->n_accounts++;
}

static void schedule_account(poller *p, uint32_t id)
{
    double now = ev_now(p->loop);
    if (p->opts.once)
        scheduler_add_at(p->sched, id, p->accounts[id].slot, now);
    else
        scheduler_add(p->sched, id, p->accounts[id].slot, now);
}

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
    log_emit(LOG_INFO, "pool_schedule", f);
}

/* Brings slots and accounts in line with the current generation: every enabled pool has an
 * account for every player with a wallet for it; other accounts are removed. */
static void sync_pools(poller *p)
{
    script_runtime *rt = p->gen->rt;
    bool wanted[MAX_POOL_SLOTS] = {false};
    for (size_t i = 0; i < p->n_slots; i++)
        p->slots[i].script_index = -1;
    for (size_t i = 0; i < script_pool_count(rt); i++) {
        const script_pool *sp = script_pool_at(rt, i);
        uint16_t index;
        pool_slot *slot = sp->enabled ? find_slot(p, sp->name, &index) : NULL;
        if (!slot)
            continue;
        slot->script_index = (int)i;
        wanted[index] = true;
        scheduler_set_pool(p->sched, index,
                           &(sched_pool_limits){sp->limits.concurrency, sp->limits.per_second,
                                                sp->limits.interval});
    }
    bool has_account[MAX_POOL_SLOTS] = {false};
    for (size_t i = 0; i < p->n_accounts; i++) {
        account *a = &p->accounts[i];
        if (a->active && !wanted[a->slot]) {
            scheduler_remove(p->sched, (uint32_t)i);
            a->active = false;
        }
        has_account[a->slot] |= a->active;
    }
    for (uint16_t s = 0; s < p->n_slots; s++) {
        if (!wanted[s] || has_account[s])
            continue;
        for (uint32_t pl = 0; pl < p->players->n; pl++) {
            if (player_wallet_for(&p->players->items[pl], p->slots[s].name))
                schedule_account(p, add_account(p, pl, s));
        }
        log_pool_schedule(p, s, script_pool_at(rt, (size_t)p->slots[s].script_index));
    }
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

static void check_finished(poller *p)
{
    if (p->finished || p->in_flight > 0)
        return;
    bool once_done = p->opts.once && p->started;
    if (once_done) {
        double wake;
        int64_t next = scheduler_next(p->sched, HUGE_VAL, &wake);
        if (next >= 0) { /* cannot happen: pump drains; kept for safety */
            scheduler_done(p->sched, (uint32_t)next, ev_now(p->loop), SCHED_NOT_POLLED, 0);
            return;
        }
    }
    if (!p->stopping && !once_done)
        return;
    p->finished = true;
    ev_timer_stop(p->loop, &p->wake);
    ev_timer_stop(p->loop, &p->cycle);
    ev_timer_stop(p->loop, &p->deadline);
    if (p->on_finished)
        p->on_finished(p->on_finished_user);
}

static void pump(poller *p)
{
    if (p->pumping || p->stopping || p->finished)
        return;
    p->pumping = true; /* start_poll may finish a poll synchronously */
    double wake = HUGE_VAL;
    int64_t id;
    while (!p->stopping && (id = scheduler_next(p->sched, ev_now(p->loop), &wake)) >= 0)
        start_poll(p, (uint32_t)id);
    p->pumping = false;
    arm_wake(p, wake);
    if (p->opts.once && isinf(wake) && p->in_flight == 0 && scheduler_in_flight(p->sched) == 0)
        check_finished(p);
}

static void on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

/* ===================================================================== Finish */

static const player *player_of(const poller *p, uint32_t id)
{
    return &p->players->items[p->accounts[id].player];
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
    scheduler_done(p->sched, c->account, ev_now(p->loop), result, retry_after);
    if (p->opts.once && result != SCHED_NOT_POLLED)
        scheduler_remove(p->sched, c->account);
    generation_release(c->gen);
    poll_outcome_clear(&c->outcome);
    free(c->previous_state);
    free(c);
    p->in_flight--;
    pump(p);
    check_finished(p);
}

static cJSON *poll_fields(const poll_ctx *c)
{
    const poller *p = c->p;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "player_id", (double)player_of(p, c->account)->id);
    cJSON_AddStringToObject(f, "pool", p->slots[p->accounts[c->account].slot].name);
    return f;
}

static void log_poll_failure(const poll_ctx *c, const char *event, const char *error, long status)
{
    cJSON *f = poll_fields(c);
    if (status)
        cJSON_AddNumberToObject(f, "status", (double)status);
    cJSON_AddStringToObject(f, "error", error);
    log_emit(LOG_WARNING, event, f);
}

/* ===================================================================== Commit */

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

static void on_committed(void *ctx, bool ok)
{
    poll_ctx *c = ctx;
    poller *p = c->p;
    account *a = &p->accounts[c->account];
    if (!ok) {
        log_poll_failure(c, "pool_poll_commit_failed", "the result could not be stored", 0);
        finish(c, SCHED_FAIL, 0);
        return;
    }
    free(a->state_json);
    a->state_json = c->outcome.state_json; /* the account's state advances only now */
    c->outcome.state_json = NULL;
    for (size_t i = 0; i < c->outcome.n_awards; i++) {
        log_award(c, &c->outcome.awards[i]);
        p->metrics.rewards_detected++;
    }
    finish(c, SCHED_OK, 0);
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
    script_account sa = {pl->id, pl->username, player_wallet_for(pl, slot->name), a->state_json};
    c->previous_state = a->state_json ? strdup(a->state_json) : NULL;
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
    poll_commit commit = {pl, slot->name, sa.wallet, c->previous_state, &c->outcome};
    p->sink->commit(p->sink, &commit, on_committed, c);
}

static void on_response(void *user, const http_response *r)
{
    poll_ctx *c = user;
    poller *p = c->p;
    pool_metrics *m = p->slots[p->accounts[c->account].slot].metrics;
    if (!r->ok) {
        if (strcmp(r->error, "cancelled") == 0) {
            finish(c, SCHED_NOT_POLLED, 0);
            return;
        }
        metrics_record_poll(&p->metrics, m, false, -1);
        log_poll_failure(c, r->timed_out ? "pool_poll_timeout" : "pool_poll_http_error", r->error, 0);
        finish(c, SCHED_POOL_FAIL, 0);
        return;
    }
    if (r->status == 429 || r->status >= 500) {
        metrics_record_poll(&p->metrics, m, false, r->total_ms);
        double retry_after = retry_after_of(r);
        cJSON *f = poll_fields(c);
        cJSON_AddNumberToObject(f, "status", (double)r->status);
        if (retry_after > 0)
            cJSON_AddNumberToObject(f, "retry_after", retry_after);
        log_emit(LOG_WARNING, "pool_poll_http_error", f);
        finish(c, SCHED_POOL_FAIL, retry_after);
        return;
    }
    on_script_result(c, r);
}

static void start_poll(poller *p, uint32_t id)
{
    account *a = &p->accounts[id];
    pool_slot *slot = &p->slots[a->slot];
    poll_ctx *c = calloc(1, sizeof *c);
    c->p = p;
    c->account = id;
    c->gen = p->gen;
    c->gen->refs++;
    c->script_index = slot->script_index;
    p->in_flight++;
    char err[1024];
    script_request req;
    const char *wallet = player_wallet_for(player_of(p, id), slot->name);
    if (script_request_build(c->gen->rt, c->script_index, wallet, &req, err, sizeof err) != 0) {
        metrics_record_poll(&p->metrics, slot->metrics, false, -1);
        log_poll_failure(c, "pool_poll_rejected", err, 0);
        finish(c, SCHED_FAIL, 0);
        return;
    }
    http_request hr = {req.url, (const char *const *)req.headers, req.n_headers, NULL, NULL};
    int started = http_get(p->http, &hr, on_response, c);
    script_request_clear(&req);
    if (started != 0) {
        metrics_record_poll(&p->metrics, slot->metrics, false, -1);
        log_poll_failure(c, "pool_poll_http_error", "request could not be started", 0);
        finish(c, SCHED_FAIL, 0);
    }
}

/* ================================================================ Life cycle */

static void on_cycle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    poller *p = w->data;
    metrics_log_cycle(&p->metrics, p->players->n);
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
    check_finished(p);
}

poller *poller_new(struct ev_loop *loop, const poller_options *opts, script_runtime *rt,
                   const player_list *players, account_sink *sink)
{
    poller *p = calloc(1, sizeof *p);
    p->loop = loop;
    p->opts = *opts;
    p->players = players;
    p->sink = sink;
    p->http = http_client_new(loop, &opts->http);
    unsigned long long seed = opts->seed ? opts->seed : (unsigned long long)time(NULL);
    p->sched = scheduler_new(opts->interval, seed);
    metrics_init(&p->metrics);
    p->gen = generation_new(rt);
    ev_timer_init(&p->wake, on_wake, 0, 0);
    ev_timer_init(&p->cycle, on_cycle, opts->interval, opts->interval);
    ev_timer_init(&p->deadline, on_deadline, opts->shutdown_timeout, 0);
    p->wake.data = p->cycle.data = p->deadline.data = p;
    return p;
}

void poller_start(poller *p)
{
    sync_pools(p);
    p->started = true;
    if (!p->opts.once)
        ev_timer_start(p->loop, &p->cycle);
    pump(p);
    check_finished(p);
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
    ev_timer_stop(p->loop, &p->wake);
    ev_timer_start(p->loop, &p->deadline);
    check_finished(p);
}

void poller_reload(poller *p, script_runtime *rt)
{
    generation_release(p->gen);
    p->gen = generation_new(rt);
    sync_pools(p);
    pump(p);
}

void poller_free(poller *p)
{
    if (!p)
        return;
    http_client_free(p->http); /* cancels what is left; finish() still needs the poller */
    ev_timer_stop(p->loop, &p->wake);
    ev_timer_stop(p->loop, &p->cycle);
    ev_timer_stop(p->loop, &p->deadline);
    for (size_t i = 0; i < p->n_accounts; i++)
        free(p->accounts[i].state_json);
    free(p->accounts);
    for (size_t i = 0; i < p->n_slots; i++)
        free(p->slots[i].name);
    generation_release(p->gen);
    scheduler_free(p->sched);
    metrics_free(&p->metrics);
    free(p);
}

const metrics *poller_metrics(const poller *p) { return &p->metrics; }
size_t poller_account_count(const poller *p) { return p->n_accounts; }

size_t poller_pools_failed_entirely(const poller *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_slots; i++)
        n += p->slots[i].attempts > 0 && p->slots[i].successes == 0;
    return n;
}
