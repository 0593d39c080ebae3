/* PostgreSQL access: one connection's life.
 *
 * A conn goes DOWN -> CONNECTING -> UP and back to DOWN on any failure: PQconnectStartParams
 * / PQconnectPoll driven by ev_io on whatever socket libpq currently uses (it changes
 * between hosts and SSL retries), a connect-timeout timer, and after a failure a reconnect
 * timer with exponential backoff and jitter (reconnect_min doubling up to reconnect_max,
 * each delay drawn from [delay/2, delay]). Once up, a pool connection enters pipeline mode
 * and sends its session settings ahead of any query; the listen connection hands over to
 * db_listen.c. This file also owns what follows from connections coming and going: the
 * health state and its observer, db_last_error, server notices, and the blocking connect
 * used before the loop runs.
 *
 * Why a seam here: reconnecting is the hardest state machine of the module and the only one
 * that touches sockets and timers of a PGconn. The queue (db_queue.c) sees a connection only
 * as "up with room", and learns of a loss through dbi_conn_fail, which fails the jobs that
 * were in flight on it (never retried: they may have committed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db_internal.h"
#include "log.h"

/* ===================================================================================== */
/* Backoff, health, notices                                                              */
/* ===================================================================================== */

static double rnd01(db *d)
{
    d->rng ^= d->rng >> 12;
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return (double)((d->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static double backoff(db *d, int failures)
{
    double delay = d->reconnect_min;
    for (int i = 0; i < failures && delay < d->reconnect_max; i++)
        delay *= 2;
    if (delay > d->reconnect_max)
        delay = d->reconnect_max;
    return delay / 2 + rnd01(d) * delay / 2;
}

static const char *role_name(const conn *c) { return c->role == ROLE_LISTEN ? "listen" : "pool"; }

static void set_last_error(db *d, const char *msg)
{
    char *copy = strdup(msg ? msg : "");
    if (copy) {
        free(d->last_error);
        d->last_error = copy;
    }
}

static void set_healthy(db *d, bool healthy)
{
    if (d->healthy == healthy)
        return;
    d->healthy = healthy;
    if (d->state_fn) {
        d->busy++;
        d->state_fn(d->state_user, healthy);
        dbi_leave(d);
    }
}

static void io_watch(conn *c, int events)
{
    ev_io_stop(c->d->loop, &c->io);
    ev_io_set(&c->io, PQsocket(c->pg), events);
    ev_io_start(c->d->loop, &c->io);
}

/* Server messages outside a query result: NOTICE/WARNING go to the debug log; a FATAL one
 * (e.g. "terminating connection due to administrator command" on an idle connection) means
 * the server is closing the session: the connection is failed at once instead of when the
 * EOF is read, so no query is sent on it meanwhile. */
static void notice_cb(void *arg, const PGresult *r)
{
    conn *c = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) {
        if (!c->doomed) {
            c->doomed = strdup(PQresultErrorMessage(r));
            if (!c->doomed)
                c->doomed = strdup("FATAL");
        }
        return;
    }
    if (!log_enabled(LOG_DEBUG))
        return;
    char *m = dbi_scrub(c->d, PQresultErrorMessage(r));
    dbi_flatten(m);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "connection", c->index);
    cJSON_AddStringToObject(f, "message", m ? m : "");
    log_emit(LOG_DEBUG, "database_notice", f);
    free(m);
}

/* ===================================================================================== */
/* Going down                                                                            */
/* ===================================================================================== */

/* database_disconnected (c was up: `lost` jobs had no verdict) or database_connect_failed. */
static void log_down(const conn *c, const char *err, bool was_up, int lost, double delay)
{
    const db *d = c->d;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "connection", c->index);
    cJSON_AddStringToObject(f, "role", role_name(c));
    cJSON_AddStringToObject(f, "error", err ? err : "");
    if (was_up) {
        cJSON_AddNumberToObject(f, "failed_in_flight", lost);
        cJSON_AddNumberToObject(f, "connections_up", d->up);
    } else {
        cJSON_AddNumberToObject(f, "attempt", c->failures);
    }
    cJSON_AddNumberToObject(f, "retry_in_seconds", (double)(int)(delay * 1000) / 1000.0);
    log_emit(LOG_WARNING, was_up ? "database_disconnected" : "database_connect_failed", f);
}

void dbi_conn_fail(conn *c, const char *why)
{
    db *d = c->d;
    char *err = dbi_scrub(d, why && *why ? why : "connection failed");
    dbi_flatten(err);
    ev_io_stop(d->loop, &c->io);
    ev_timer_stop(d->loop, &c->timer);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    bool was_up = c->state == CS_UP;
    c->state = CS_DOWN;
    c->flushing = false;
    free(c->doomed);
    c->doomed = NULL;
    c->listen_target = -1;
    job *list = c->head;
    int lost = c->inflight;
    d->inflight -= (size_t)c->inflight;
    c->head = c->tail = NULL;
    c->inflight = 0;
    if (c->role == ROLE_LISTEN)
        dbi_listen_lost(d);
    if (was_up) {
        c->failures = 0;
        if (c->role == ROLE_POOL)
            d->up--;
    } else {
        c->failures++;
    }
    set_last_error(d, err);

    double delay = backoff(d, was_up ? 0 : c->failures - 1);
    if (!d->closing) {
        ev_timer_set(&c->timer, delay, 0);
        ev_timer_start(d->loop, &c->timer);
    }
    log_down(c, err, was_up, lost, delay);

    if (was_up && c->role == ROLE_POOL && d->up == 0)
        set_healthy(d, false);
    if (list) {
        size_t l = strlen(err ? err : "") + 64;
        char *msg = malloc(l);
        if (msg)
            snprintf(msg, l, "connection lost before the result: %s", err ? err : "");
        dbi_fail_jobs(d, list, msg ? msg : "connection lost before the result", "08006", 1);
        free(msg);
    }
    free(err);
    dbi_kick(d);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    conn *c = w->data;
    db *d = c->d;
    d->busy++;
    if (c->state == CS_CONNECTING) {
        char msg[96];
        snprintf(msg, sizeof msg, "connection attempt timed out after %g s", d->connect_timeout);
        dbi_conn_fail(c, msg);
    } else if (c->state == CS_DOWN && !d->closing) {
        dbi_conn_start(c);
    } else if (c->state == CS_UP && !d->closing) {
        dbi_result_timer(c);
    }
    dbi_leave(d);
}

/* ===================================================================================== */
/* Coming up                                                                             */
/* ===================================================================================== */

/* The keywords of every connection attempt; the conninfo itself goes in as "dbname"
 * (expand_dbname = 1). db_connect_blocking uses the same ones as the pool (db.h). */
static const char *const conn_keys[] = {
    "connect_timeout", "keepalives_idle", "keepalives_interval",       "keepalives_count",
    "dbname",          "client_encoding", "fallback_application_name", NULL};

void dbi_conn_start(conn *c)
{
    db *d = c->d;
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", (int)(d->connect_timeout + 0.999));
    const char *vals[] = {timeout, "60", "10", "3", d->conninfo, "UTF8", d->app_name, NULL};
    c->pg = PQconnectStartParams(conn_keys, vals, 1);
    if (!c->pg) {
        c->state = CS_CONNECTING;
        dbi_conn_fail(c, "out of memory");
        return;
    }
    c->state = CS_CONNECTING;
    if (PQstatus(c->pg) == CONNECTION_BAD || PQsocket(c->pg) < 0) {
        dbi_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_cb, c);
    ev_timer_set(&c->timer, d->connect_timeout, 0);
    ev_timer_start(d->loop, &c->timer);
    io_watch(c, EV_WRITE); /* "as if PQconnectPoll had returned PGRES_POLLING_WRITING" */
}

static void setup_done(void *user, const db_result *r)
{
    conn *c = user;
    if (r->ok || strcmp(r->sqlstate, "57014") == 0 || strcmp(r->sqlstate, "08006") == 0)
        return;
    log_message(LOG_ERROR, "database_setup_failed", "connection %d: session settings: %s",
                c->index, r->error);
}

/* Session settings, ahead of every query in the pipeline: the statement timeout, and
 * (PostgreSQL 14+) a check that makes the server stop the query of a client that went
 * away (db_free, connect timeout, network loss) instead of running it to the end. */
static int send_session_settings(conn *c)
{
    db *d = c->d;
    bool timeout = d->statement_timeout > 0;
    bool check = PQserverVersion(c->pg) >= 140000;
    if (timeout || check) {
        char ms[32];
        snprintf(ms, sizeof ms, "%lld", (long long)(d->statement_timeout * 1000 + 0.5));
        const char *both[] = {ms, "5000"}, *only_check[] = {"5000"};
        db_stmt s;
        if (timeout && check)
            s = (db_stmt){"SELECT pg_catalog.set_config('statement_timeout', $1, false), "
                          "pg_catalog.set_config('client_connection_check_interval', $2, false)",
                          2, both};
        else if (timeout)
            s = (db_stmt){"SELECT pg_catalog.set_config('statement_timeout', $1, false)", 1, both};
        else
            s = (db_stmt){"SELECT pg_catalog.set_config('client_connection_check_interval', $1, "
                          "false)",
                          1, only_check};
        job *j = dbi_job_new(&s, 1);
        if (!j) {
            dbi_conn_fail(c, "out of memory");
            return -1;
        }
        j->queued_at = ev_now(d->loop);
        j->done = setup_done; /* internal: only checks the outcome */
        j->user = c;
        if (dbi_send_job(c, j) < 0)
            return -1;
    }
    return 0;
}

static void conn_established(conn *c)
{
    db *d = c->d;
    ev_timer_stop(d->loop, &c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 ||
        (c->role == ROLE_POOL && !PQenterPipelineMode(c->pg))) {
        dbi_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    /* Whatever came with the handshake (a FATAL from a server shutting down, even the EOF)
     * is read and parsed now, before any query can be sent on this connection. */
    PGnotify *n;
    if (!PQconsumeInput(c->pg)) {
        dbi_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n);
    if (c->doomed) {
        char *why = c->doomed;
        c->doomed = NULL;
        dbi_conn_fail(c, why);
        free(why);
        return;
    }
    c->state = CS_UP;
    c->failures = 0;
    c->flushing = false;
    io_watch(c, EV_READ);
    if (c->role == ROLE_POOL)
        d->up++;

    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "connection", c->index);
    cJSON_AddStringToObject(f, "role", role_name(c));
    char *host = dbi_scrub(d, PQhost(c->pg));
    cJSON_AddStringToObject(f, "host", host ? host : "");
    free(host);
    cJSON_AddStringToObject(f, "port", PQport(c->pg) ? PQport(c->pg) : "");
    cJSON_AddNumberToObject(f, "backend_pid", PQbackendPID(c->pg));
    cJSON_AddNumberToObject(f, "server_version", PQserverVersion(c->pg));
    cJSON_AddNumberToObject(f, "connections_up", d->up);
    log_emit(LOG_INFO, "database_connected", f);

    if (c->role == ROLE_LISTEN) {
        dbi_listen_next(c);
        return;
    }
    if (send_session_settings(c) < 0)
        return;
    set_healthy(d, true);
    if (!d->closing)
        dbi_kick(d);
}

static void connect_step(conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (PQsocket(c->pg) < 0)
            dbi_conn_fail(c, PQerrorMessage(c->pg));
        else
            io_watch(c, EV_READ); /* the socket may be a new one (next host, SSL retry) */
        break;
    case PGRES_POLLING_WRITING:
        if (PQsocket(c->pg) < 0)
            dbi_conn_fail(c, PQerrorMessage(c->pg));
        else
            io_watch(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        conn_established(c);
        break;
    default:
        dbi_conn_fail(c, PQerrorMessage(c->pg));
        break;
    }
}

/* ===================================================================================== */
/* Input and output of an up connection                                                  */
/* ===================================================================================== */

/* PQflush and the write watcher. Returns -1 when the connection failed (conn_fail ran). */
int dbi_conn_flush(conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        dbi_conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    bool want = r == 1;
    if (want != c->flushing) {
        c->flushing = want;
        ev_io_stop(c->d->loop, &c->io);
        ev_io_set(&c->io, PQsocket(c->pg), EV_READ | (want ? EV_WRITE : 0));
        ev_io_start(c->d->loop, &c->io);
    }
    return 0;
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    conn *c = w->data;
    db *d = c->d;
    d->busy++;
    if (c->state == CS_CONNECTING) {
        connect_step(c);
    } else if (c->state == CS_UP) {
        if ((revents & EV_WRITE) && dbi_conn_flush(c) < 0)
            goto out;
        if (revents & EV_READ) {
            if (!PQconsumeInput(c->pg)) {
                dbi_conn_fail(c, PQerrorMessage(c->pg));
                goto out;
            }
            if (c->flushing && dbi_conn_flush(c) < 0)
                goto out;
        }
        if (c->role == ROLE_POOL) {
            dbi_process_results(c);
        } else {
            dbi_listen_results(c);
        }
        if (!d->closing && c->state == CS_UP)
            dbi_listen_notifies(c);
        /* an idle connection that the server is closing or has closed */
        if (!d->closing && c->state == CS_UP && c->doomed) {
            char *why = c->doomed;
            c->doomed = NULL;
            dbi_conn_fail(c, why);
            free(why);
        } else if (!d->closing && c->state == CS_UP && PQstatus(c->pg) == CONNECTION_BAD) {
            dbi_conn_fail(c, PQerrorMessage(c->pg));
        }
    }
out:
    dbi_leave(d);
}

void dbi_conn_init(db *d, conn *c, int index, int role)
{
    memset(c, 0, sizeof *c);
    c->d = d;
    c->index = index;
    c->role = role;
    c->state = CS_DOWN;
    c->listen_target = -1;
    ev_io_init(&c->io, conn_io_cb, -1, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, conn_timer_cb, 0, 0);
    c->timer.data = c;
}

/* ===================================================================================== */
/* Health, for the caller                                                                */
/* ===================================================================================== */

bool db_healthy(const db *d) { return d && d->healthy; }

void db_on_state(db *d, void (*fn)(void *user, bool healthy), void *user)
{
    if (!d)
        return;
    d->state_fn = fn;
    d->state_user = user;
}

const char *db_last_error(const db *d) { return d && d->last_error ? d->last_error : ""; }

int db_connections_up(const db *d) { return d ? d->up : 0; }

/* ===================================================================================== */
/* Blocking connect (start-up work before the loop runs)                                 */
/* ===================================================================================== */

PGconn *db_connect_blocking(const char *conninfo, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!conninfo) {
        if (err && errlen)
            snprintf(err, errlen, "no connection string");
        return NULL;
    }
    const char *vals[] = {"10", "60", "10", "3", conninfo, "UTF8", "m2p-engine", NULL};
    PGconn *pg = PQconnectdbParams(conn_keys, vals, 1);
    if (pg && PQstatus(pg) == CONNECTION_OK)
        return pg;
    char *clean = db_scrub(conninfo, pg ? PQerrorMessage(pg) : "out of memory");
    dbi_flatten(clean);
    if (err && errlen)
        snprintf(err, errlen, "%s", clean && *clean ? clean : "connection failed");
    free(clean);
    PQfinish(pg);
    return NULL;
}
