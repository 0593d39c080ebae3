/* The database statistics of GET /metrics and /status (engine/store/db_stats.h) against a
 * real, migrated PostgreSQL: the held awards awaiting release, and per sink the outbox
 * events it has not delivered nor given up (seen or not yet seen by its worker) and the age
 * of the oldest; settled events and other sinks' outcomes count for nothing. */
#include <ev.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "db.h"
#include "db_migrate.h"
#include "db_stats.h"
#include "log.h"
#include "pg_fixture.h"

static pg_fixture pg;
static struct ev_loop *loop;

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static void wait_known(const db_stats *s, double secs)
{
    ev_tstamp deadline = ev_time() + secs;
    ev_timer t;
    ev_timer_init(&t, tick_cb, 0.02, 0.02);
    ev_timer_start(loop, &t);
    while (!db_stats_known(s) && ev_time() < deadline)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
}

static void sql(const char *text)
{
    CHECK(pg_fixture_sql(&pg, text) == 0, "%s: %s", text, pg.error);
}

/* Outbox 1 (100 s old): delivered to a, never seen by b or c. Outbox 2 (50 s old): pending
 * for a, given up by b, unseen by c. Outbox 3: settled. Two held awards, one released. */
static void fill(void)
{
    sql("INSERT INTO players (id, username) VALUES (1, 'alice')");
    sql("INSERT INTO m2p_outbox (id, event, payload, created_at, delivered_at) VALUES"
        " (1, 'mining_reward', '{\"player_id\": 1}', now() - interval '100 s', NULL),"
        " (2, 'mining_reward', '{\"player_id\": 1}', now() - interval '50 s', NULL),"
        " (3, 'mining_reward', '{\"player_id\": 1}', now() - interval '900 s', now())");
    sql("INSERT INTO m2p_deliveries (outbox_id, sink, player_id, created_at, delivered_at,"
        " expired_at) VALUES"
        " (1, 'a', 1, now() - interval '100 s', now(), NULL),"
        " (2, 'a', 1, now() - interval '50 s', NULL, NULL),"
        " (2, 'b', 1, now() - interval '50 s', NULL, now())");
    sql("INSERT INTO m2p_held_awards (player_id, pool_name, idempotency_key, advc_amount,"
        " ap_awarded, hold_reason, status) VALUES"
        " (1, 'zpool', 'k1', 5000, 500000, 'MAX_AWARD_ADVC', 'held'),"
        " (1, 'zpool', 'k2', 6000, 600000, 'MAX_AWARD_ADVC', 'held'),"
        " (1, 'zpool', 'k3', 7000, 700000, 'MAX_AWARD_ADVC', 'released')");
}

static void expect_sink(const db_stats *s, size_t i, const char *name, long long depth,
                        double age)
{
    db_stats_sink k = db_stats_sink_at(s, i);
    CHECK(strcmp(k.name, name) == 0, "sink %zu is %s, not %s", i, k.name, name);
    CHECK(k.depth == depth, "%s: depth %lld, expected %lld", name, k.depth, depth);
    /* now() is the statement's start: only the time the test takes moves the age. */
    CHECK(fabs(k.oldest_age_seconds - age) < 30, "%s: oldest %g s, expected about %g s", name,
          k.oldest_age_seconds, age);
}

static void test_counts(void)
{
    char err[1024];
    int applied = 0;
    if (migrate_database(pg.conninfo, true, &applied, err, sizeof err) != 0) {
        CHECK(0, "migrations: %s", err);
        return;
    }
    fill();
    char held[32] = "";
    CHECK(pg_fixture_value(&pg, "SELECT count(*) FROM m2p_held_awards WHERE status = 'held'",
                           held, sizeof held) == 0 && strcmp(held, "2") == 0,
          "the fixture holds two awards: %s", held);
    db_options o = {.conninfo = pg.conninfo, .connections = 1};
    db *d = db_new(loop, &o);
    const char *sinks[] = {"a", "b", "c", "we\"ird'sink"};
    db_stats *s = db_stats_new(loop, d, sinks, 4, 3600);
    CHECK(!db_stats_known(s) && db_stats_json(s) == NULL, "nothing known before the answer");
    wait_known(s, 20);
    CHECK(db_stats_known(s), "the statistics were read");
    CHECK(db_stats_held_awaiting_release(s) == 2, "held: %lld",
          db_stats_held_awaiting_release(s));
    CHECK(db_stats_sink_count(s) == 4, "four sinks");
    expect_sink(s, 0, "a", 1, 50);
    expect_sink(s, 1, "b", 1, 100);
    expect_sink(s, 2, "c", 2, 100);
    expect_sink(s, 3, "we\"ird'sink", 2, 100);
    cJSON *j = db_stats_json(s);
    cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sinks"), "a");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "held_awaiting_release")) == 2 &&
              cJSON_GetNumberValue(cJSON_GetObjectItem(a, "depth")) == 1 &&
              cJSON_GetObjectItem(a, "oldest_age_seconds"),
          "database_stats JSON");
    cJSON_Delete(j);
    db_stats_stop(s);
    db_free(d);
    db_stats_free(s);
}

/* Without sinks only the held awards; with nothing pending the age is 0. */
static void test_no_sinks_and_empty(void)
{
    sql("UPDATE m2p_outbox SET delivered_at = now()");
    db_options o = {.conninfo = pg.conninfo, .connections = 1};
    db *d = db_new(loop, &o);
    const char *sinks[] = {"c"};
    db_stats *none = db_stats_new(loop, d, NULL, 0, 3600);
    db_stats *c = db_stats_new(loop, d, sinks, 1, 3600);
    wait_known(none, 20);
    wait_known(c, 20);
    CHECK(db_stats_known(none) && db_stats_sink_count(none) == 0 &&
              db_stats_held_awaiting_release(none) == 2,
          "no sinks: held awards only");
    db_stats_sink k = db_stats_sink_at(c, 0);
    CHECK(k.depth == 0 && k.oldest_age_seconds == 0, "nothing pending: depth %lld age %g",
          k.depth, k.oldest_age_seconds);
    db_free(d);
    db_stats_free(none);
    db_stats_free(c);
}

int main(void)
{
    log_configure(LOG_ERROR, LOG_FORMAT_JSON, tmpfile());
    loop = ev_loop_new(EVFLAG_AUTO);
    if (pg_fixture_start(&pg) != 0) {
        fprintf(stderr, "test_db_stats: cannot start PostgreSQL: %s\n", pg.error);
        CHECK(0, "PostgreSQL fixture");
        return check_summary();
    }
    test_counts();
    test_no_sinks_and_empty();
    pg_fixture_stop(&pg);
    ev_loop_destroy(loop);
    return check_summary();
}
