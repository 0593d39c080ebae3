/* Delivery workers over m2p_outbox (see outbox.h). The SQL side (claims, leases, per-player
 * order, settling) is in engine/migrations/007_notifications.sql; this file decides when to
 * claim and records what each sink answered. */
#include "notify/outbox.h"

#include <cjson/cJSON.h>
#include <ev.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define EXPIRE_EVERY 60.0     /* seconds between sweeps for events older than max_age */
#define RETRY_MAX 300.0       /* longest wait before an event is tried again, seconds */
#define CLAIM_FAILURE_WAIT 5.0 /* after a failed claim query, seconds */

static const char *const SQL_CLAIM =
    "SELECT outbox_id, event_id, player_id, payload, attempts, has_next"
    " FROM m2p_claim_deliveries($1, $2, $3::float8, $4::int, $5::float8)";
static const char *const SQL_DONE = "SELECT m2p_delivery_done($1, $2::bigint, $3::jsonb)";
static const char *const SQL_FAILED =
    "SELECT m2p_delivery_failed($1, $2::bigint, $3, $4::float8, $5)";
static const char *const SQL_EXPIRE =
    "SELECT outbox_id, event_id, player_id, attempts, coalesce(last_error, '')"
    " FROM m2p_expire_deliveries($1, $2::float8, $3::jsonb)";
static const char *const SQL_RELEASE = "SELECT m2p_release_deliveries($1)";
static const char *const SQL_REGISTER = "SELECT m2p_register_sinks($1::jsonb)";

typedef struct worker {
    outbox *ob;
    notify_sink *sink;  /* NULL once outbox_stop has freed it */
    char name[sizeof ((notify_sink *)0)->name]; /* the sink's, kept for late answers */
    bool claiming; /* a claim query is out */
    bool again;    /* woken while claiming: claim once more when it answers */
    bool gone;     /* the receiver said it will never take events (webhook 410) */
    bool starved;  /* woken while at its in-flight limit: claim when a delivery ends */
    uint64_t news; /* wakes from outside (NOTIFY, timer, sink ready), counted */
    size_t in_flight;
    ev_tstamp next_claim; /* not before (after a failed claim) */
    ev_tstamp next_expire;
    uint64_t delivered, failed, expired;
} worker;

struct outbox {
    struct ev_loop *loop;
    db *db;
    char *engine_id;
    char *sinks_json; /* the configured sinks' names: settling needs every one of them */
    worker *workers;
    size_t n;
    outbox_options o;
    double lease;
    bool stopping;
    ev_tstamp next_register;
    ev_timer tick;
};

/* One event being carried by one sink. */
typedef struct delivery {
    worker *w;
    char outbox_id[24];
    char event_id[24];
    int attempts;
    bool has_next; /* the player's next event waits for this one */
    uint64_t news; /* the worker's `news` when this was claimed */
} delivery;

static void claim(worker *w);

static bool can_claim(const worker *w)
{
    const outbox *ob = w->ob;
    return !ob->stopping && !w->gone && w->in_flight < (size_t)ob->o.batch &&
           ev_now(ob->loop) >= w->next_claim && w->sink->ops->ready(w->sink);
}

/* Every wake that finds work claims it (or, while a claim is out, one more claim follows
 * it), so a delivery that ends needs to claim only for the player's next event: one known
 * at claim time (has_next), or one that may have come since (news), or when the worker was
 * full. Claims after every delivery would mostly find nothing and cost the database. */
static void wake(worker *w)
{
    if (w->claiming)
        w->again = true;
    else if (can_claim(w))
        claim(w);
    else if (w->in_flight >= (size_t)w->ob->o.batch)
        w->starved = true;
}

static void news(worker *w)
{
    w->news++;
    wake(w);
}

/* The wait before attempt `attempts` + 1: 1, 2, 4 ... seconds up to RETRY_MAX, each drawn
 * from [d/2, d] so that a receiver coming back is not hit by every engine at once. */
static double retry_delay(int attempts)
{
    double d = attempts < 1 ? 1 : attempts > 12 ? RETRY_MAX : pow(2, attempts - 1);
    if (d > RETRY_MAX)
        d = RETRY_MAX;
    return d / 2 + d / 2 * ((double)rand() / RAND_MAX);
}

static cJSON *event_fields(const worker *w, const delivery *d)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "sink", w->name);
    cJSON_AddStringToObject(f, "event_id", d->event_id);
    cJSON_AddNumberToObject(f, "attempts", d->attempts);
    return f;
}

/* ---------------------------------------------------------------- outcomes */

static void on_ignore(void *user, const db_result *r)
{
    (void)user;
    if (!r->ok && strcmp(r->sqlstate, "57014") != 0)
        log_message(LOG_WARNING, "outbox_update_failed", "%s", r->error);
}

static void on_done(void *user, const db_result *r)
{
    delivery *d = user;
    worker *w = d->w;
    if (!r->ok) {
        /* The receiver has the event but the database does not know: it is delivered again
         * when the lease runs out, with the same event_id. */
        log_message(LOG_WARNING, "outbox_update_failed", "%s", r->error);
    } else if (log_enabled(LOG_DEBUG)) {
        log_emit(LOG_DEBUG, "notification_delivered", event_fields(w, d));
    }
    bool next = d->has_next || w->starved || d->news != w->news;
    free(d);
    if (next) {
        w->starved = false;
        wake(w); /* the player's next event is claimable now */
    }
}

static void record_failure(delivery *d, const char *error)
{
    worker *w = d->w;
    char delay[32];
    snprintf(delay, sizeof delay, "%.3f", w->gone ? RETRY_MAX : retry_delay(d->attempts));
    const char *params[] = {w->name, d->outbox_id, error, delay, w->ob->engine_id};
    if (db_query(w->ob->db, SQL_FAILED, 5, params, on_ignore, NULL) != 0)
        log_message(LOG_WARNING, "outbox_update_failed", "could not queue the failure of %s",
                    d->event_id);
}

static void sink_gone(worker *w, const char *error)
{
    if (w->gone)
        return;
    w->gone = true;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "sink", w->name);
    cJSON_AddStringToObject(f, "error", error ? error : "gone");
    log_emit(LOG_ERROR, "notification_sink_gone", f);
}

static void on_delivered(void *user, notify_outcome outcome, const char *error)
{
    delivery *d = user;
    worker *w = d->w;
    w->in_flight--;
    if (outcome == NOTIFY_DELIVERED) {
        w->delivered++;
        const char *params[] = {w->name, d->outbox_id, w->ob->sinks_json};
        if (db_query(w->ob->db, SQL_DONE, 3, params, on_done, d) == 0)
            return;
        log_message(LOG_WARNING, "outbox_update_failed", "could not queue the delivery of %s",
                    d->event_id);
        free(d);
        return;
    }
    if (w->ob->stopping) {
        free(d); /* not a failure: outbox_stop hands the lease back */
        return;
    }
    w->failed++;
    if (outcome == NOTIFY_GONE)
        sink_gone(w, error);
    cJSON *f = event_fields(w, d);
    cJSON_AddStringToObject(f, "error", error ? error : "failed");
    log_emit(LOG_WARNING, "notification_failed", f);
    record_failure(d, error ? error : "failed");
    free(d);
}

/* ---------------------------------------------------------------- claims */

static void deliver_row(worker *w, const db_result *r, int row)
{
    delivery *d = calloc(1, sizeof *d);
    if (!d)
        return; /* the lease runs out and another round takes it */
    d->w = w;
    snprintf(d->outbox_id, sizeof d->outbox_id, "%s", db_value(r, row, 0));
    snprintf(d->event_id, sizeof d->event_id, "%s", db_value(r, row, 1));
    d->attempts = atoi(db_value(r, row, 4));
    d->has_next = strcmp(db_value(r, row, 5), "t") == 0;
    d->news = w->news;
    const char *payload = db_value(r, row, 3);
    notify_event ev = {.event_id = d->event_id,
                       .player_id = atoll(db_value(r, row, 2)),
                       .payload = payload,
                       .payload_len = strlen(payload)};
    w->in_flight++;
    if (w->sink->ops->deliver(w->sink, &ev, on_delivered, d) != 0)
        on_delivered(d, NOTIFY_RETRY, "could not be started");
}

static void on_claimed(void *user, const db_result *r)
{
    worker *w = user;
    w->claiming = false;
    if (w->ob->stopping) {
        /* outbox_stop's hand-back may have run before this claim committed: hand back
         * again, or these events would wait for their lease to run out. */
        if (r->ok && r->rows > 0) {
            const char *params[] = {w->ob->engine_id};
            db_query(w->ob->db, SQL_RELEASE, 1, params, on_ignore, NULL);
        }
        return;
    }
    if (!r->ok) {
        log_message(LOG_WARNING, "outbox_claim_failed", "%s: %s", w->name, r->error);
        w->next_claim = ev_now(w->ob->loop) + CLAIM_FAILURE_WAIT;
        return;
    }
    for (int i = 0; i < r->rows; i++)
        deliver_row(w, r, i);
    bool full = r->rows >= w->ob->o.batch;
    if (full || w->again) {
        w->again = false;
        if (can_claim(w))
            claim(w);
    }
}

static void claim(worker *w)
{
    outbox *ob = w->ob;
    char lease[32], limit[16], age[32];
    snprintf(lease, sizeof lease, "%.3f", ob->lease);
    snprintf(limit, sizeof limit, "%zu", (size_t)ob->o.batch - w->in_flight);
    snprintf(age, sizeof age, "%.3f", ob->o.max_age);
    const char *params[] = {w->name, ob->engine_id, lease, limit, age};
    w->again = false;
    if (db_query(ob->db, SQL_CLAIM, 5, params, on_claimed, w) == 0)
        w->claiming = true;
}

/* ---------------------------------------------------------------- expiry */

static void on_expired(void *user, const db_result *r)
{
    worker *w = user;
    if (!r->ok) {
        if (w->ob->stopping)
            return;
        log_message(LOG_WARNING, "outbox_expire_failed", "%s: %s", w->name, r->error);
        return;
    }
    for (int i = 0; i < r->rows; i++) {
        w->expired++;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "sink", w->name);
        cJSON_AddStringToObject(f, "event_id", db_value(r, i, 1));
        cJSON_AddNumberToObject(f, "player_id", atof(db_value(r, i, 2)));
        cJSON_AddNumberToObject(f, "attempts", atof(db_value(r, i, 3)));
        cJSON_AddStringToObject(f, "last_error", db_value(r, i, 4));
        cJSON_AddNumberToObject(f, "max_age_seconds", w->ob->o.max_age);
        log_emit(LOG_ERROR, "notification_expired", f);
    }
    if (r->rows > 0 && !w->ob->stopping)
        wake(w); /* the players' next events are claimable now */
}

static void expire(worker *w)
{
    outbox *ob = w->ob;
    char age[32];
    snprintf(age, sizeof age, "%.3f", ob->o.max_age);
    const char *params[] = {w->name, age, ob->sinks_json};
    w->next_expire = ev_now(ob->loop) + EXPIRE_EVERY;
    db_query(ob->db, SQL_EXPIRE, 3, params, on_expired, w);
}

/* ---------------------------------------------------------------- wakes */

/* The engines' sinks in m2p_sinks: an event is settled only when all of them have it. */
static void register_sinks(outbox *ob)
{
    const char *params[] = {ob->sinks_json};
    ob->next_register = ev_now(ob->loop) + EXPIRE_EVERY;
    db_query(ob->db, SQL_REGISTER, 1, params, on_ignore, NULL);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    outbox *ob = t->data;
    if (ev_now(loop) >= ob->next_register)
        register_sinks(ob);
    for (size_t i = 0; i < ob->n; i++) {
        worker *w = &ob->workers[i];
        if (ev_now(loop) >= w->next_expire)
            expire(w);
        news(w);
    }
}

static void on_outbox_notify(void *user, const char *channel, const char *payload)
{
    (void)channel;
    (void)payload; /* NULL when the subscription (re)starts: look anyway */
    outbox *ob = user;
    for (size_t i = 0; i < ob->n; i++)
        news(&ob->workers[i]);
}

static void on_sink_ready(void *user, notify_sink *s)
{
    outbox *ob = user;
    for (size_t i = 0; i < ob->n; i++)
        if (ob->workers[i].sink == s)
            news(&ob->workers[i]);
}

/* ---------------------------------------------------------------- life cycle */

static char *names_json(notify_sink **sinks, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(sinks[i]->name));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

outbox *outbox_new(struct ev_loop *loop, db *d, notify_sink **sinks, size_t n,
                   const outbox_options *o)
{
    outbox *ob = calloc(1, sizeof *ob);
    if (!ob)
        return NULL;
    ob->loop = loop;
    ob->db = d;
    ob->o = *o;
    if (ob->o.batch <= 0)
        ob->o.batch = 100;
    if (ob->o.tick <= 0)
        ob->o.tick = 1.0;
    ob->lease = 3 * o->timeout + 5;
    ob->engine_id = strdup(o->engine_id ? o->engine_id : "engine");
    ob->sinks_json = names_json(sinks, n);
    ob->workers = calloc(n ? n : 1, sizeof *ob->workers);
    ob->o.engine_id = ob->engine_id;
    if (!ob->engine_id || !ob->sinks_json || !ob->workers) {
        for (size_t i = 0; i < n; i++)
            sinks[i]->ops->free(sinks[i]);
        outbox_free(ob);
        return NULL;
    }
    ob->n = n;
    for (size_t i = 0; i < n; i++) {
        ob->workers[i] = (worker){.ob = ob, .sink = sinks[i]};
        snprintf(ob->workers[i].name, sizeof ob->workers[i].name, "%s", sinks[i]->name);
        sinks[i]->on_ready = on_sink_ready;
        sinks[i]->on_ready_user = ob;
    }
    register_sinks(ob); /* queued first: before any claim or settle of this engine */
    db_listen(d, "m2p_outbox", on_outbox_notify, ob);
    ev_timer_init(&ob->tick, on_tick, 0.0, ob->o.tick);
    ob->tick.data = ob;
    ev_timer_start(loop, &ob->tick);
    return ob;
}

void outbox_stop(outbox *ob)
{
    if (!ob || ob->stopping)
        return;
    ob->stopping = true;
    ev_timer_stop(ob->loop, &ob->tick);
    for (size_t i = 0; i < ob->n; i++) {
        notify_sink *s = ob->workers[i].sink;
        s->ops->free(s); /* its deliveries in flight answer now, as retries */
        ob->workers[i].sink = NULL;
    }
    const char *params[] = {ob->engine_id};
    db_query(ob->db, SQL_RELEASE, 1, params, on_ignore, NULL);
}

void outbox_free(outbox *ob)
{
    if (!ob)
        return;
    outbox_stop(ob);
    free(ob->workers);
    free(ob->sinks_json);
    free(ob->engine_id);
    free(ob);
}

size_t outbox_sink_count(const outbox *ob) { return ob ? ob->n : 0; }

outbox_sink_stats outbox_stats(const outbox *ob, size_t i)
{
    const worker *w = &ob->workers[i];
    return (outbox_sink_stats){
        .name = w->name,
        .ready = w->sink && w->sink->ops->ready(w->sink),
        .gone = w->gone,
        .in_flight = w->in_flight,
        .delivered = w->delivered,
        .failed = w->failed,
        .expired = w->expired,
    };
}

cJSON *outbox_stats_json(const outbox *ob)
{
    cJSON *sinks = cJSON_CreateObject();
    for (size_t i = 0; ob && i < ob->n; i++) {
        outbox_sink_stats st = outbox_stats(ob, i);
        cJSON *o = cJSON_AddObjectToObject(sinks, st.name);
        cJSON_AddBoolToObject(o, "ready", st.ready);
        cJSON_AddNumberToObject(o, "in_flight", (double)st.in_flight);
        cJSON_AddNumberToObject(o, "delivered", (double)st.delivered);
        cJSON_AddNumberToObject(o, "failed_attempts", (double)st.failed);
        cJSON_AddNumberToObject(o, "expired", (double)st.expired);
        if (st.gone)
            cJSON_AddBoolToObject(o, "gone", true);
    }
    return sinks;
}
