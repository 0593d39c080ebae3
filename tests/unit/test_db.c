/* Unit tests for the PostgreSQL access layer, engine/db*.c (public interface: db.h).
 * connect + query, bound parameters, 1000 pipelined queries, error isolation, transactions,
 * server restarts (in-flight queries fail, queued ones wait, reconnect, health transitions),
 * LISTEN/NOTIFY across a restart, statement timeout, password scrubbing, db_free with
 * queries pending. Every wait has a generous deadline; nothing asserts on durations.
 * The engine log goes to a temporary file that is checked for passwords at the end. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "check.h"
#include "db.h"
#include "log.h"
#include "pg_fixture.h"

#define DEADLINE 30.0

static struct ev_loop *loop;
static pg_fixture pg;
static FILE *logfile;

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* Runs the loop until cond holds or `secs` pass. */
#define WAIT_UNTIL(cond, secs)                                                             \
    do {                                                                                   \
        ev_tstamp dl_ = ev_time() + (secs);                                                \
        ev_timer t_;                                                                       \
        ev_timer_init(&t_, tick_cb, 0.02, 0.02);                                           \
        ev_timer_start(loop, &t_);                                                         \
        while (!(cond) && ev_time() < dl_)                                                 \
            ev_run(loop, EVRUN_ONCE);                                                     \
        ev_timer_stop(loop, &t_);                                                          \
    } while (0)

/* Turns the loop a few times without waiting for anything in particular. */
static void spin(int turns)
{
    ev_timer t;
    ev_timer_init(&t, tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &t);
    for (int i = 0; i < turns; i++)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
}

typedef struct qres {
    int called;
    int ok;
    int unknown;
    int rows, cols;
    int null0;
    long long affected;
    char err[512];
    char state[8];
    char v0[512];
    char col0[64];
} qres;

static void on_done(void *user, const db_result *r)
{
    qres *q = user;
    q->called++;
    q->ok = r->ok;
    q->unknown = r->outcome_unknown;
    q->rows = r->rows;
    q->cols = r->cols;
    snprintf(q->err, sizeof q->err, "%s", r->error ? r->error : "");
    snprintf(q->state, sizeof q->state, "%s", r->sqlstate ? r->sqlstate : "");
    const char *v = db_value(r, 0, 0);
    snprintf(q->v0, sizeof q->v0, "%s", v ? v : "");
    q->null0 = db_is_null(r, 0, 0);
    q->affected = db_affected(r);
    const char *c = db_column_name(r, 0);
    snprintf(q->col0, sizeof q->col0, "%s", c ? c : "");
}

static int query(db *d, qres *q, const char *sql, int n, const char *const *params)
{
    memset(q, 0, sizeof *q);
    return db_query(d, sql, n, params, on_done, q);
}

/* Runs one query to completion. */
static void run_query(db *d, qres *q, const char *sql, int n, const char *const *params)
{
    int rc = query(d, q, sql, n, params);
    CHECK(rc == 0, "db_query(%s) refused: %s", sql, strerror(errno));
    WAIT_UNTIL(q->called, DEADLINE);
    CHECK(q->called == 1, "%s: callback ran %d times", sql, q->called);
}

static db *new_db(const char *conninfo, int connections, double statement_timeout)
{
    db_options o = {0};
    o.conninfo = conninfo;
    o.connections = connections;
    o.reconnect_min = 0.1;
    o.reconnect_max = 1.0;
    o.statement_timeout = statement_timeout;
    return db_new(loop, &o);
}

static bool log_contains(const char *needle);

/* ----- health observer ----- */

typedef struct transitions {
    int n;
    bool seq[64];
} transitions;

static void on_state(void *user, bool healthy)
{
    transitions *t = user;
    if (t->n < 64)
        t->seq[t->n++] = healthy;
}

/* ===================================================================================== */

static void test_connect_and_query(void)
{
    db *d = new_db(pg.conninfo, 2, 0);
    CHECK(d != NULL, "db_new");
    if (!d)
        return;
    CHECK(!db_healthy(d), "not healthy before the loop ran");
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    CHECK(db_healthy(d), "healthy after connecting: %s", db_last_error(d));

    qres q;
    const char *p[] = {"41"};
    run_query(d, &q, "SELECT 1 + $1::int AS answer", 1, p);
    CHECK(q.ok, "select: %s", q.err);
    CHECK(strcmp(q.v0, "42") == 0, "value %s", q.v0);
    CHECK(strcmp(q.col0, "answer") == 0, "column %s", q.col0);
    CHECK(q.rows == 1 && q.cols == 1, "%d rows %d cols", q.rows, q.cols);

    run_query(d, &q, "CREATE TABLE items (id int PRIMARY KEY, name text)", 0, NULL);
    CHECK(q.ok, "create: %s", q.err);
    run_query(d, &q, "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 5) g", 0,
              NULL);
    CHECK(q.ok && q.affected == 5, "insert: ok=%d affected=%lld %s", q.ok, q.affected, q.err);
    run_query(d, &q, "UPDATE items SET name = 'x' WHERE id > 3", 0, NULL);
    CHECK(q.affected == 2, "update affected %lld", q.affected);
    run_query(d, &q, "SELECT NULL::text", 0, NULL);
    CHECK(q.ok && q.null0 && strcmp(q.v0, "") == 0, "NULL value");
    run_query(d, &q, "SELECT 1 WHERE false", 0, NULL);
    CHECK(q.ok && q.rows == 0, "no rows");
    db_free(d);
}

static void test_hostile_params(void)
{
    db *d = new_db(pg.conninfo, 2, 0);
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    static const char *const values[] = {
        "O'Reilly",
        "it''s",
        "back\\slash \\\\ \\n \\x41",
        "\"double\" `back` $1 $$dollar$$ %s %n",
        "'); DROP TABLE items; --",
        "semi; colon",
        "ünïcödé — 日本語 — emoji 😀 — RTL \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d",
        "line\nbreak\ttab\rreturn",
        "",
        "   padded   ",
        "E'\\\\x00'",
    };
    int n = (int)(sizeof values / sizeof values[0]);
    qres q;
    run_query(d, &q, "CREATE TABLE hostile (id int, v text)", 0, NULL);
    for (int i = 0; i < n; i++) {
        const char *p[] = {values[i]};
        run_query(d, &q, "SELECT $1::text", 1, p);
        CHECK(q.ok && strcmp(q.v0, values[i]) == 0, "round trip of [%s] gave [%s] %s", values[i],
              q.v0, q.err);
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        const char *ins[] = {id, values[i]};
        run_query(d, &q, "INSERT INTO hostile (id, v) VALUES ($1, $2)", 2, ins);
        CHECK(q.ok && q.affected == 1, "insert [%s]: %s", values[i], q.err);
        const char *sel[] = {id};
        run_query(d, &q, "SELECT v FROM hostile WHERE id = $1", 1, sel);
        CHECK(q.ok && strcmp(q.v0, values[i]) == 0, "stored [%s] read [%s]", values[i], q.v0);
    }
    /* the injection attempt did nothing */
    run_query(d, &q, "SELECT count(*) FROM items", 0, NULL);
    CHECK(q.ok && strcmp(q.v0, "5") == 0, "items intact: %s %s", q.v0, q.err);
    /* a NULL parameter is SQL NULL; length of a value with multibyte characters */
    const char *np[] = {NULL, "日本"};
    run_query(d, &q, "SELECT $1::text IS NULL, char_length($2)", 2, np);
    CHECK(q.ok && strcmp(q.v0, "t") == 0, "NULL param: %s %s", q.v0, q.err);
    db_free(d);
}

typedef struct bulk {
    int done, bad, max_inflight;
    db *d;
} bulk;

typedef struct bulk_item {
    bulk *b;
    int i;
} bulk_item;

static void on_bulk(void *user, const db_result *r)
{
    bulk_item *it = user;
    bulk *b = it->b;
    b->done++;
    char want[16];
    snprintf(want, sizeof want, "%d", it->i * 2);
    const char *v = db_value(r, 0, 0);
    if (!r->ok || !v || strcmp(v, want) != 0)
        b->bad++;
    int inflight = (int)db_in_flight(b->d);
    if (inflight > b->max_inflight)
        b->max_inflight = inflight;
}

static void test_pipeline_1000(void)
{
    db *d = new_db(pg.conninfo, 4, 0);
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    enum { N = 1000 };
    static bulk_item items[N];
    bulk b = {0, 0, 0, d};
    int refused = 0;
    for (int i = 0; i < N; i++) {
        items[i].b = &b;
        items[i].i = i;
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *p[] = {v};
        if (db_query(d, "SELECT $1::int * 2", 1, p, on_bulk, &items[i]) != 0)
            refused++;
    }
    CHECK(refused == 0, "%d refused", refused);
    CHECK(db_queued(d) == N, "all queued before the loop runs: %zu", db_queued(d));
    CHECK(b.done == 0, "no callback from inside db_query");
    WAIT_UNTIL(b.done == N, 60);
    CHECK(b.done == N, "%d of %d completed", b.done, N);
    CHECK(b.bad == 0, "%d wrong results", b.bad);
    CHECK(b.max_inflight > 4, "pipelined: at most %d in flight", b.max_inflight);
    CHECK(db_in_flight(d) == 0 && db_queued(d) == 0, "drained");
    db_free(d);
}

typedef struct txres {
    int called, n, ok_count;
    char err[512];
    char state[8];
    char last[64];
} txres;

static void on_tx(void *user, const db_result *results, int n)
{
    txres *t = user;
    t->called++;
    t->n = n;
    t->ok_count = 0;
    for (int i = 0; i < n; i++)
        t->ok_count += results[i].ok;
    snprintf(t->err, sizeof t->err, "%s", results[0].error ? results[0].error : "");
    snprintf(t->state, sizeof t->state, "%s", results[0].sqlstate);
    const char *v = db_value(&results[n - 1], 0, 0);
    snprintf(t->last, sizeof t->last, "%s", v ? v : "");
}

static void test_errors_isolated(void)
{
    db *d = new_db(pg.conninfo, 1, 0); /* one connection: all in the same pipeline */
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    qres q[6];
    run_query(d, &q[0], "CREATE TABLE uniq (k text PRIMARY KEY)", 0, NULL);
    const char *a[] = {"a"};
    CHECK(query(d, &q[0], "SELECT 1", 0, NULL) == 0, "q0");
    CHECK(query(d, &q[1], "SELECT 1/0", 0, NULL) == 0, "q1");
    CHECK(query(d, &q[2], "INSERT INTO uniq VALUES ($1)", 1, a) == 0, "q2");
    CHECK(query(d, &q[3], "INSERT INTO uniq VALUES ($1)", 1, a) == 0, "q3");
    CHECK(query(d, &q[4], "SELECT no_such_column FROM uniq", 0, NULL) == 0, "q4");
    CHECK(query(d, &q[5], "SELECT count(*) FROM uniq", 0, NULL) == 0, "q5");
    WAIT_UNTIL(q[5].called, DEADLINE);
    for (int i = 0; i < 6; i++)
        CHECK(q[i].called == 1, "q%d called %d", i, q[i].called);
    CHECK(q[0].ok, "q0 %s", q[0].err);
    CHECK(!q[1].ok && strcmp(q[1].state, "22012") == 0, "q1 state %s", q[1].state);
    CHECK_CONTAINS(q[1].err, "22012: division by zero");
    CHECK(!q[1].unknown, "a server error is a certain failure");
    CHECK(q[2].ok, "q2 committed despite q1: %s", q[2].err);
    CHECK(!q[3].ok && strcmp(q[3].state, "23505") == 0, "duplicate: %s", q[3].err);
    CHECK_CONTAINS(q[3].err, "detail: Key (k)=(a) already exists");
    CHECK(!q[4].ok && strcmp(q[4].state, "42703") == 0, "undefined column: %s", q[4].err);
    CHECK(q[5].ok && strcmp(q[5].v0, "1") == 0, "count %s %s", q[5].v0, q[5].err);

    /* An error at commit (deferred constraint) is reported for its query. libpq 15 loses
     * track of the pipeline after one, so the connection is reset: a query in flight behind
     * it either completes or fails as "outcome unknown", never with a wrong verdict. */
    run_query(d, &q[0], "CREATE TABLE dfr (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)", 0, NULL);
    run_query(d, &q[0], "INSERT INTO dfr VALUES (1)", 0, NULL);
    CHECK(query(d, &q[1], "INSERT INTO dfr VALUES (1)", 0, NULL) == 0, "deferred");
    CHECK(query(d, &q[2], "SELECT count(*) FROM dfr", 0, NULL) == 0, "after deferred");
    WAIT_UNTIL(q[1].called && q[2].called, DEADLINE);
    CHECK(!q[1].ok && strcmp(q[1].state, "23505") == 0 && !q[1].unknown, "commit failed: %s",
          q[1].err);
    CHECK((q[2].ok && strcmp(q[2].v0, "1") == 0) ||
              (!q[2].ok && q[2].unknown && strcmp(q[2].state, "08006") == 0),
          "next query: %s %s", q[2].v0, q[2].err);
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    run_query(d, &q[2], "SELECT count(*) FROM dfr", 0, NULL);
    CHECK(q[2].ok && strcmp(q[2].v0, "1") == 0, "after the reset: %s %s", q[2].v0, q[2].err);

    /* transactions: all or nothing */
    const char *b[] = {"b"}, *c[] = {"c"};
    db_stmt failing[] = {{"INSERT INTO uniq VALUES ($1)", 1, b},
                         {"INSERT INTO uniq VALUES ($1)", 1, a},
                         {"INSERT INTO uniq VALUES ($1)", 1, c}};
    txres t1 = {0};
    CHECK(db_transaction(d, failing, 3, on_tx, &t1) == 0, "tx accepted");
    db_stmt good[] = {{"INSERT INTO uniq VALUES ($1)", 1, c},
                      {"UPDATE uniq SET k = k || '!' WHERE k = $1", 1, c},
                      {"SELECT string_agg(k, ',' ORDER BY k) FROM uniq", 0, NULL}};
    txres t2 = {0};
    CHECK(db_transaction(d, good, 3, on_tx, &t2) == 0, "tx accepted");
    WAIT_UNTIL(t1.called && t2.called, DEADLINE);
    CHECK(t1.called == 1 && t1.n == 3 && t1.ok_count == 0, "failed tx: %d ok", t1.ok_count);
    CHECK(strcmp(t1.state, "23505") == 0, "tx state %s", t1.state);
    CHECK_CONTAINS(t1.err, "statement 2: 23505");
    CHECK(t2.called == 1 && t2.ok_count == 3, "good tx: %d ok, %s", t2.ok_count, t2.err);
    CHECK(strcmp(t2.last, "a,c!") == 0, "tx saw its own writes, b rolled back: %s", t2.last);

    /* refused up front */
    errno = 0;
    CHECK(db_query(d, "BEGIN", 0, NULL, on_done, &q[0]) == -1 && errno == EINVAL, "BEGIN");
    CHECK(db_query(d, "  /* x /* nested */ */ -- c\n commit", 0, NULL, on_done, &q[0]) == -1,
          "COMMIT behind comments");
    CHECK(db_query(d, "prepare transaction 'x'", 0, NULL, on_done, &q[0]) == -1, "2PC");
    CHECK(db_query(d, "COPY uniq TO STDOUT", 0, NULL, on_done, &q[0]) == -1, "COPY");
    CHECK(db_query(d, NULL, 0, NULL, on_done, &q[0]) == -1, "NULL sql");
    CHECK(db_query(d, "SELECT $1", 1, NULL, on_done, &q[0]) == -1, "params missing");
    CHECK(db_query(d, "SELECT 1", 70000, a, on_done, &q[0]) == -1, "too many params");
    /* words that merely start like transaction control are fine */
    run_query(d, &q[0], "SELECT 'begin' AS beginning", 0, NULL);
    CHECK(q[0].ok, "%s", q[0].err);
    /* two statements in one string: the server refuses, the connection carries on */
    run_query(d, &q[0], "SELECT 1; SELECT 2", 0, NULL);
    CHECK(!q[0].ok && strcmp(q[0].state, "42601") == 0, "multi: %s", q[0].err);
    run_query(d, &q[0], "SELECT 'still fine'", 0, NULL);
    CHECK(q[0].ok, "%s", q[0].err);
    db_free(d);
}

static void test_statement_timeout(void)
{
    db *d = new_db(pg.conninfo, 1, 0.3);
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    qres q;
    run_query(d, &q, "SELECT pg_sleep(20)", 0, NULL);
    CHECK(!q.ok && strcmp(q.state, "57014") == 0, "timed out: %s", q.err);
    run_query(d, &q, "SHOW statement_timeout", 0, NULL);
    CHECK(q.ok && strcmp(q.v0, "300ms") == 0, "setting %s", q.v0);
    db_free(d);
}

/* A server that hangs (here: a statement that sleeps, as a SIGSTOPped server would look) is
 * bounded by result_timeout: the connection is dropped, the query fails with its outcome
 * unknown, the db reconnects and the next query works; a job that keeps the connection busy
 * with verdicts arriving (short queries behind each other) is not cut. */
static void test_result_timeout(void)
{
    db_options o = {.conninfo = pg.conninfo, .connections = 1, .reconnect_min = 0.1,
                    .reconnect_max = 0.2, .result_timeout = 0.5};
    db *d = db_new(loop, &o);
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    qres q;
    ev_tstamp t0 = ev_time();
    run_query(d, &q, "SELECT pg_sleep(20)", 0, NULL);
    CHECK(!q.ok && q.unknown && strcmp(q.state, "08006") == 0, "hung query: ok %d unknown %d %s %s",
          q.ok, q.unknown, q.state, q.err);
    CHECK_CONTAINS(q.err, "no result within 0.5 s");
    CHECK(ev_time() - t0 < 15, "the hung query was not cut: %.1f s", ev_time() - t0);
    CHECK(log_contains("database_result_timeout"), "database_result_timeout logged");
    run_query(d, &q, "SELECT 'after the timeout'", 0, NULL);
    CHECK(q.ok && strcmp(q.v0, "after the timeout") == 0, "next query: %s", q.err);
    /* four statements of 0.3 s in a row: 1.2 s in flight, a verdict every 0.3 s */
    qres qs[4];
    for (int i = 0; i < 4; i++)
        CHECK(query(d, &qs[i], "SELECT pg_sleep(0.3)", 0, NULL) == 0, "queued");
    WAIT_UNTIL(qs[3].called, DEADLINE);
    for (int i = 0; i < 4; i++)
        CHECK(qs[i].called == 1 && qs[i].ok, "busy but answering: %d: %s", i, qs[i].err);
    db_free(d);
}

static void test_restart(void)
{
    db_options o = {0};
    o.conninfo = pg.conninfo;
    o.connections = 2;
    o.reconnect_min = 0.1;
    o.reconnect_max = 0.5;
    o.queue_max = 8;
    db *d = db_new(loop, &o);
    transitions tr = {0};
    db_on_state(d, on_state, &tr);
    WAIT_UNTIL(db_connections_up(d) == 2, DEADLINE);
    CHECK(db_connections_up(d) == 2 && db_healthy(d), "both up: %s", db_last_error(d));
    CHECK(tr.n == 1 && tr.seq[0], "first transition: up (%d)", tr.n);

    /* in flight across a restart: failed, outcome unknown */
    qres s[3];
    for (int i = 0; i < 3; i++)
        CHECK(query(d, &s[i], "SELECT pg_sleep(60)", 0, NULL) == 0, "sleep %d", i);
    WAIT_UNTIL(db_queued(d) == 0 && db_in_flight(d) == 3, DEADLINE);
    CHECK(db_queued(d) == 0 && db_in_flight(d) == 3, "sent: %zu", db_in_flight(d));
    CHECK(pg_fixture_ctl(&pg, "restart") == 0, "restart: %s", pg.error);
    WAIT_UNTIL(s[0].called && s[1].called && s[2].called, DEADLINE);
    for (int i = 0; i < 3; i++) {
        CHECK(s[i].called == 1 && !s[i].ok, "sleep %d: called %d ok %d", i, s[i].called,
              s[i].ok);
        CHECK(s[i].unknown && strcmp(s[i].state, "08006") == 0, "sleep %d: %s [%s]", i,
              s[i].err, s[i].state);
        CHECK_CONTAINS(s[i].err, "connection lost");
    }
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    CHECK(db_healthy(d), "reconnected: %s", db_last_error(d));
    CHECK(tr.n >= 3 && !tr.seq[1] && tr.seq[tr.n - 1], "up, down, up: n=%d", tr.n);
    qres q;
    run_query(d, &q, "SELECT 'after restart'", 0, NULL);
    CHECK(q.ok && strcmp(q.v0, "after restart") == 0, "%s", q.err);
    WAIT_UNTIL(db_connections_up(d) == 2, DEADLINE);
    CHECK(db_connections_up(d) == 2, "both up again");

    /* server down: queries wait in the queue (bounded), run after the reconnect */
    int before = tr.n;
    CHECK(pg_fixture_ctl(&pg, "stop") == 0, "stop: %s", pg.error);
    WAIT_UNTIL(!db_healthy(d), DEADLINE);
    CHECK(!db_healthy(d) && tr.n == before + 1 && !tr.seq[before], "down while stopped");
    qres w[8];
    for (int i = 0; i < 8; i++)
        CHECK(query(d, &w[i], "SELECT 'waited'", 0, NULL) == 0, "queued %d", i);
    qres extra;
    errno = 0;
    CHECK(query(d, &extra, "SELECT 1", 0, NULL) == -1 && errno == EAGAIN, "queue full");
    spin(20); /* reconnect attempts fail meanwhile */
    CHECK(w[0].called == 0 && db_queued(d) == 8, "still waiting: %zu", db_queued(d));
    CHECK(strlen(db_last_error(d)) > 0, "a connection error is recorded");
    CHECK(pg_fixture_ctl(&pg, "start") == 0, "start: %s", pg.error);
    /* Two connections reconnect each in its own time: the last query sent may answer first. */
    WAIT_UNTIL(w[0].called && w[1].called && w[2].called && w[3].called && w[4].called &&
                   w[5].called && w[6].called && w[7].called,
               DEADLINE);
    for (int i = 0; i < 8; i++)
        CHECK(w[i].called == 1 && w[i].ok && strcmp(w[i].v0, "waited") == 0,
              "waited %d: %s", i, w[i].err);
    CHECK(db_healthy(d) && tr.seq[tr.n - 1], "up again");
    db_free(d);
}

typedef struct heard {
    int subscribed;
    int n;
    char payload[8][128];
    char channel[64];
} heard;

static void on_notify(void *user, const char *channel, const char *payload)
{
    heard *h = user;
    snprintf(h->channel, sizeof h->channel, "%s", channel);
    if (!payload) {
        h->subscribed++;
        return;
    }
    if (h->n < 8)
        snprintf(h->payload[h->n], sizeof h->payload[0], "%s", payload);
    h->n++;
}

static void test_listen(void)
{
    db *d = new_db(pg.conninfo, 1, 0);
    heard h = {0}, other = {0};
    CHECK(db_listen(d, "player_changes", on_notify, &h) == 0, "listen");
    CHECK(db_listen(d, "Mixed Case", on_notify, &other) == 0, "listen 2");
    CHECK(db_listen(d, "", on_notify, &h) == -1 && errno == EINVAL, "empty channel");
    WAIT_UNTIL(h.subscribed == 1 && other.subscribed == 1 && db_healthy(d), DEADLINE);
    CHECK(h.subscribed == 1, "subscribed once: %d", h.subscribed);

    qres q;
    const char *p[] = {"player_changes", "{\"id\": 7, \"name\": \"O'Neil\"}"};
    run_query(d, &q, "SELECT pg_notify($1, $2)", 2, p);
    CHECK(q.ok, "%s", q.err);
    CHECK(pg_fixture_sql(&pg, "NOTIFY \"Mixed Case\", 'from psql'") == 0, "%s", pg.error);
    WAIT_UNTIL(h.n == 1 && other.n == 1, DEADLINE);
    CHECK(h.n == 1 && strcmp(h.payload[0], p[1]) == 0, "payload %s", h.payload[0]);
    CHECK(strcmp(h.channel, "player_changes") == 0, "channel %s", h.channel);
    CHECK(other.n == 1 && strcmp(other.payload[0], "from psql") == 0, "quoted channel");

    /* after a restart: subscribed again (fn with NULL), still delivered */
    CHECK(pg_fixture_ctl(&pg, "restart") == 0, "restart: %s", pg.error);
    WAIT_UNTIL(h.subscribed == 2 && db_healthy(d), DEADLINE);
    CHECK(h.subscribed == 2, "re-subscribed: %d", h.subscribed);
    const char *p2[] = {"player_changes", "after restart"};
    run_query(d, &q, "SELECT pg_notify($1, $2)", 2, p2);
    CHECK(q.ok, "%s", q.err);
    WAIT_UNTIL(h.n == 2, DEADLINE);
    CHECK(h.n == 2 && strcmp(h.payload[1], "after restart") == 0, "after restart: %d", h.n);
    /* a listener added while connected */
    heard late = {0};
    CHECK(db_listen(d, "late", on_notify, &late) == 0, "late listen");
    WAIT_UNTIL(late.subscribed == 1, DEADLINE);
    CHECK(pg_fixture_sql(&pg, "NOTIFY late") == 0, "%s", pg.error);
    WAIT_UNTIL(late.n == 1, DEADLINE);
    CHECK(late.n == 1 && strcmp(late.payload[0], "") == 0, "late: %d", late.n);
    CHECK(h.subscribed == 2, "others not re-signalled: %d", h.subscribed);
    db_free(d);
}

static bool log_contains(const char *needle)
{
    fflush(logfile);
    long pos = ftell(logfile);
    rewind(logfile);
    char buf[8192];
    size_t keep = 0;
    bool found = false;
    size_t nl = strlen(needle);
    for (;;) {
        size_t got = fread(buf + keep, 1, sizeof buf - 1 - keep, logfile);
        if (got == 0)
            break;
        buf[keep + got] = '\0';
        if (strstr(buf, needle)) {
            found = true;
            break;
        }
        size_t total = keep + got;
        keep = total < nl ? total : nl;
        memmove(buf, buf + total - keep, keep);
    }
    fseek(logfile, pos, SEEK_SET);
    return found;
}

static const char *const SECRETS[] = {"Wr0ng-S3cret-XYZ", "Bad%zzSecret", "zzSecret",
                                      "Secr3tTail", "Right-Pa55", "p%40ss", "p@ss"};

static void test_password_never_shown(void)
{
    CHECK(pg_fixture_sql(&pg, "CREATE ROLE pwuser LOGIN PASSWORD 'Right-Pa55'") == 0, "%s",
          pg.error);
    char ci[768], err[512];

    /* blocking: wrong password, then the right one */
    snprintf(ci, sizeof ci, "host=%s port=%d user=pwuser password=Wr0ng-S3cret-XYZ dbname=postgres",
             pg.dir, pg.port);
    PGconn *c = db_connect_blocking(ci, err, sizeof err);
    CHECK(c == NULL, "wrong password accepted");
    CHECK_CONTAINS(err, "password authentication failed");
    CHECK(!strstr(err, "Wr0ng-S3cret-XYZ"), "password in %s", err);
    snprintf(ci, sizeof ci, "postgresql://pwuser:Right-Pa55@/postgres?host=%s&port=%d", pg.dir,
             pg.port);
    c = db_connect_blocking(ci, err, sizeof err);
    CHECK(c != NULL, "right password: %s", err);
    PQfinish(c);

    /* libpq quotes conninfo fragments in parse errors */
    snprintf(ci, sizeof ci, "postgresql://pwuser:Bad%%zzSecret@/postgres?host=%s", pg.dir);
    c = db_connect_blocking(ci, err, sizeof err);
    CHECK(c == NULL && strlen(err) > 0, "bad URL");
    CHECK_CONTAINS(err, "percent-encoded");
    CHECK(!strstr(err, "zzSecret"), "password in %s", err);
    db_options o = {0};
    o.conninfo = ci;
    CHECK(db_new(loop, &o) == NULL, "db_new refuses an invalid conninfo");
    snprintf(ci, sizeof ci, "host=%s password=Sp4ce Secr3tTail user=pwuser", pg.dir);
    c = db_connect_blocking(ci, err, sizeof err);
    CHECK(c == NULL, "bad conninfo");
    CHECK(!strstr(err, "Secr3tTail") && !strstr(err, "Sp4ce"), "password in %s", err);
    o.conninfo = ci;
    CHECK(db_new(loop, &o) == NULL, "db_new refuses an invalid conninfo");

    char *s = db_scrub("postgresql://u:p%40ss@h/db", "x p@ss y p%40ss \"%40s\" z");
    CHECK(s && strcmp(s, "x *** y *** \"***\" z") == 0, "scrub: %s", s ? s : "(null)");
    free(s);
    s = db_scrub("host=h password='a b\\'c' user=u", "[a b'c] ['a b\\'c']");
    CHECK(s && !strstr(s, "a b"), "scrub quoted: %s", s ? s : "(null)");
    free(s);

    /* the pool with a wrong password: errors recorded and logged without it */
    snprintf(ci, sizeof ci, "host=%s port=%d user=pwuser password=Wr0ng-S3cret-XYZ dbname=postgres",
             pg.dir, pg.port);
    o.conninfo = ci;
    o.connections = 1;
    o.reconnect_min = 0.1;
    o.reconnect_max = 0.2;
    o.queue_timeout = 0.5;
    db *d = db_new(loop, &o);
    CHECK(d != NULL, "db_new");
    qres q;
    CHECK(query(d, &q, "SELECT 1", 0, NULL) == 0, "queued");
    WAIT_UNTIL(q.called, DEADLINE);
    CHECK(q.called == 1 && !q.ok && strcmp(q.state, "08001") == 0 && !q.unknown,
          "queue timeout: %s [%s]", q.err, q.state);
    /* the queue's 0.5 s can end before the first refusal arrives (SCRAM under ASan, a loaded
     * machine): the reason is recorded when the attempt fails */
    WAIT_UNTIL(strstr(db_last_error(d), "password authentication failed"), DEADLINE);
    CHECK_CONTAINS(db_last_error(d), "password authentication failed");
    CHECK(!strstr(db_last_error(d), "Wr0ng"), "password in %s", db_last_error(d));
    CHECK(!db_healthy(d), "never healthy");
    db_free(d);
    CHECK(log_contains("database_connect_failed"), "connect failures logged");
}

/* A "server" that accepts connections and never says a word: the attempt must time out. */
static void test_connect_timeout(void)
{
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/silent", pg.dir);
    CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    snprintf(path, sizeof path, "%s/.s.PGSQL.%d", dir, pg.port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {0};
    addr.sun_family = AF_UNIX;
    CHECK(strlen(path) < sizeof addr.sun_path, "socket path too long: %s", path);
    memcpy(addr.sun_path, path, strlen(path) < sizeof addr.sun_path ? strlen(path) : 0);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 8) == 0,
          "silent socket");
    char ci[400];
    snprintf(ci, sizeof ci, "host=%s port=%d user=m2p dbname=postgres", dir, pg.port);
    db_options o = {0};
    o.conninfo = ci;
    o.connections = 1;
    o.connect_timeout = 0.3;
    o.reconnect_min = 0.1;
    db *d = db_new(loop, &o);
    WAIT_UNTIL(strstr(db_last_error(d), "timed out") != NULL, DEADLINE);
    CHECK_CONTAINS(db_last_error(d), "connection attempt timed out after 0.3 s");
    CHECK(!db_healthy(d), "not healthy");
    db_free(d);
    close(fd);
}

static void on_free_inside(void *user, const db_result *r)
{
    (void)r;
    db **dp = user;
    db_free(*dp); /* freeing from a callback */
}

static void test_free_pending(void)
{
    db *d = new_db(pg.conninfo, 1, 0);
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    qres sleeping, queued[5];
    CHECK(query(d, &sleeping, "SELECT pg_sleep(30)", 0, NULL) == 0, "sleep");
    WAIT_UNTIL(db_queued(d) == 0 && db_in_flight(d) >= 1, DEADLINE);
    for (int i = 0; i < 5; i++)
        CHECK(query(d, &queued[i], "SELECT 1", 0, NULL) == 0, "q%d", i);
    db_free(d);
    CHECK(sleeping.called == 1 && !sleeping.ok && sleeping.unknown, "in flight cancelled");
    CHECK(strcmp(sleeping.err, "cancelled") == 0, "%s", sleeping.err);
    for (int i = 0; i < 5; i++) {
        /* these were sent too (pipeline), or still queued: cancelled either way */
        CHECK(queued[i].called == 1 && !queued[i].ok, "q%d called %d", i, queued[i].called);
        CHECK(strcmp(queued[i].err, "cancelled") == 0 && strcmp(queued[i].state, "57014") == 0,
              "q%d: %s", i, queued[i].err);
    }

    /* the server stops the orphaned query (client_connection_check_interval) */
    char running[32] = "?";
    ev_tstamp until = ev_time() + DEADLINE;
    do {
        pg_fixture_value(&pg,
                         "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'",
                         running, sizeof running);
        if (strcmp(running, "0") != 0)
            usleep(100 * 1000);
    } while (strcmp(running, "0") != 0 && ev_time() < until);
    CHECK(strcmp(running, "0") == 0, "orphaned query still running: %s", running);

    /* never connected: queued queries cancelled, known not to have run */
    char ci[300];
    snprintf(ci, sizeof ci, "host=%s/nowhere port=%d user=m2p dbname=postgres", pg.dir, pg.port);
    d = new_db(ci, 2, 0);
    qres never;
    CHECK(query(d, &never, "SELECT 1", 0, NULL) == 0, "queued");
    spin(5);
    db_free(d);
    CHECK(never.called == 1 && !never.ok && !never.unknown, "never sent: unknown=%d",
          never.unknown);

    /* db_free from inside a callback, with more pending */
    d = new_db(pg.conninfo, 1, 0);
    WAIT_UNTIL(db_healthy(d), DEADLINE);
    db *dp = d;
    qres after[3];
    CHECK(db_query(d, "SELECT 1", 0, NULL, on_free_inside, &dp) == 0, "first");
    for (int i = 0; i < 3; i++)
        CHECK(query(d, &after[i], "SELECT pg_sleep(30)", 0, NULL) == 0, "after %d", i);
    WAIT_UNTIL(after[2].called, DEADLINE);
    for (int i = 0; i < 3; i++)
        CHECK(after[i].called == 1 && strcmp(after[i].err, "cancelled") == 0, "after %d: %s",
              i, after[i].err);
    db_free(NULL);
}

int main(void)
{
    logfile = tmpfile();
    log_configure(LOG_DEBUG, LOG_FORMAT_JSON, logfile);
    loop = ev_loop_new(EVFLAG_AUTO);
    if (pg_fixture_start(&pg) != 0) {
        fprintf(stderr, "test_db: cannot start PostgreSQL: %s\n", pg.error);
        CHECK(0, "PostgreSQL fixture");
        return check_summary();
    }
    test_connect_and_query();
    test_hostile_params();
    test_pipeline_1000();
    test_errors_isolated();
    test_statement_timeout();
    test_result_timeout();
    test_restart();
    test_listen();
    test_password_never_shown();
    test_free_pending();
    test_connect_timeout();

    for (size_t i = 0; i < sizeof SECRETS / sizeof SECRETS[0]; i++)
        CHECK(!log_contains(SECRETS[i]), "log contains the password %s", SECRETS[i]);
    CHECK(log_contains("database_connected"), "connections logged");
    CHECK(log_contains("database_disconnected"), "disconnections logged");

    if (check_failed || getenv("M2P_TEST_SHOW_LOG")) {
        pg.keep_log_on_stop = check_failed > 0;
        fflush(logfile);
        rewind(logfile);
        char line[2048];
        fprintf(stderr, "---- engine log ----\n");
        while (fgets(line, sizeof line, logfile))
            fputs(line, stderr);
    }
    pg_fixture_stop(&pg);
    ev_loop_destroy(loop);
    fclose(logfile);
    return check_summary();
}
