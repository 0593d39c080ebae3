/* The service loop: configuration, the account source, scripts, the poller and signals.
 *
 * Account sources: `--accounts FILE` (players from JSON, state in memory), or PostgreSQL
 * from DATABASE_URL (players table, state and awards in the database, several engines
 * sharing the work). With the database, polling starts once the engine knows its peers and
 * the players are loaded.
 *
 * SIGTERM/SIGINT stop taking new polls and give the ones in flight SHUTDOWN_TIMEOUT_SECONDS;
 * SIGHUP re-reads the configuration and the scripts and swaps them in only if everything
 * loads (a broken file leaves the running generation untouched).
 */
#include "run.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/explain_responder.h"
#include "db.h"
#include "db_migrate.h"
#include "db_stats.h"
#include "db_store.h"
#include "log.h"
#include "membership.h"
#include "notify/notifiers.h"
#include "notify/outbox.h"
#include "players.h"
#include "poller.h"
#include "sd_notify.h"
#include "settings.h"
#include "watch.h"

#define LEAVE_TIMEOUT 3.0 /* seconds to flush the last writes to the database at exit */

typedef struct app {
    const run_options *opts;
    config *cfg;
    struct ev_loop *loop;
    poller *poller;
    db *db;
    db_store *store;
    membership *members;
    outbox *outbox;
    db_stats *db_stats; /* outbox depth and held awards for the admin endpoint */
    dir_watch *watch;
    admin *admin;
    explain_responder *explainer; /* answers --explain over the database */
    char engine_id[160];          /* ENGINE_ID or the default, once the database is followed */
    char generation[32]; /* script_rules_generation of the running scripts */
    bool members_known, players_ready, started;
    bool finished; /* the poller is done (it may finish before the loop runs: no accounts) */
    int status;
    ev_signal sigterm, sigint, sighup;
    service_notify sd; /* systemd readiness and watchdog (no-op without systemd) */
} app;

static award_limits award_limits_of(const config *cfg)
{
    return (award_limits){config_number(cfg, CFG_MAX_AWARD_ADVC),
                          config_number(cfg, CFG_MAX_AWARD_FACTOR)};
}

static void on_finished(void *user)
{
    app *a = user;
    a->finished = true;
    ev_break(a->loop, EVBREAK_ALL);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    app *a = w->data;
    log_message(LOG_INFO, "shutdown_requested", "signal %d: finishing polls in flight", w->signum);
    service_notify_stopping(&a->sd);
    if (a->started) {
        poller_stop(a->poller);
    } else {
        ev_break(a->loop, EVBREAK_ALL);
    }
}

/* Builds a complete new generation (settings and every script) and swaps it in; anything
 * broken leaves the running generation untouched. */
static bool reload_why(app *a, const char *why, char *failed, size_t failed_len)
{
    char err[2048];
    config *cfg = config_load(a->opts->env_file, err, sizeof err);
    if (!cfg) {
        log_message(LOG_ERROR, "config_reload_failed", "%s", err);
        snprintf(failed, failed_len, "invalid settings: %s", err);
        poller_note_reload(a->poller, false);
        return false;
    }
    script_runtime *rt =
        settings_load_scripts(cfg, a->opts->pools_dir, a->opts->scripts_dir, true);
    if (!rt) {
        config_free(cfg);
        snprintf(failed, failed_len, "a script failed to load (see the log); the running "
                                     "scripts are kept");
        poller_note_reload(a->poller, false);
        return false;
    }
    snprintf(a->generation, sizeof a->generation, "%s", script_rules_generation(rt));
    /* Scripts read settings only while they load (m2p.env at the top of a script), so the
     * old table can go once the new generation is in. */
    settings_apply_logging(cfg);
    config *old = a->cfg;
    a->cfg = cfg;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "trigger", why);
    cJSON_AddStringToObject(f, "rules_generation", script_rules_generation(rt));
    cJSON_AddNumberToObject(f, "pools", (double)script_pool_count(rt));
    poller_reload(a->poller, rt);
    award_limits limits = award_limits_of(cfg);
    poller_set_award_limits(a->poller, &limits);
    poller_note_reload(a->poller, true);
    config_free(old);
    log_emit(LOG_INFO, "script_reloaded", f);
    return true;
}

static void reload(app *a, const char *why)
{
    char failed[2600];
    reload_why(a, why, failed, sizeof failed);
}

static void on_reload_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    reload(w->data, "SIGHUP");
}

static void on_scripts_changed(void *user)
{
    reload(user, "file change");
}

/* Saved .lua files in the pools and scripts directories reload on their own; a burst of
 * saves is one reload. */
static void watch_scripts(app *a)
{
    const char *dirs[] = {a->opts->pools_dir, a->opts->scripts_dir};
    const char *suffixes[] = {".lua"};
    a->watch = dir_watch_new(a->loop, dirs, 2, suffixes, 1, 0.3, on_scripts_changed, a);
}

static void watch_signals(app *a)
{
    ev_signal_init(&a->sigterm, on_stop_signal, SIGTERM);
    ev_signal_init(&a->sigint, on_stop_signal, SIGINT);
    ev_signal_init(&a->sighup, on_reload_signal, SIGHUP);
    a->sigterm.data = a->sigint.data = a->sighup.data = a;
    ev_signal_start(a->loop, &a->sigterm);
    ev_signal_start(a->loop, &a->sigint);
    ev_signal_start(a->loop, &a->sighup);
}

static void start_polling(app *a)
{
    if (a->started)
        return;
    a->started = true;
    log_message(LOG_INFO, "engine_started", "%zu players, mode %s",
                poller_player_count(a->poller),
                a->opts->once ? "once" : a->opts->dry_run ? "dry-run" : "run");
    poller_start(a->poller);
    char status[128];
    snprintf(status, sizeof status, "polling %zu players", poller_player_count(a->poller));
    service_notify_ready(&a->sd, status);
}

/* ============================================================ The admin endpoint */

static void admin_view_of(void *user, admin_view *v)
{
    app *a = user;
    poller_refresh_gauges(a->poller);
    v->metrics = poller_metrics(a->poller);
    v->accounts = poller_account_count(a->poller);
    v->db = a->db;
    v->outbox = a->outbox;
    v->db_stats = a->db_stats;
    v->script_generation = a->generation[0] ? a->generation : NULL;
    v->players_loaded = a->started || a->players_ready;
}

static cJSON *explain_player(void *user, int64_t player_id)
{
    app *a = user;
    return poller_explain(a->poller, player_id, a->engine_id[0] ? a->engine_id : NULL);
}

static bool admin_reload(void *user, char *err, size_t errlen)
{
    return reload_why(user, "POST /reload", err, errlen);
}

/* Anyone who can reach a non-loopback address could reload: refused without a token. */
static int check_admin_settings(const config *cfg)
{
    const char *listen = config_string(cfg, CFG_ADMIN_LISTEN);
    struct sockaddr_storage addr;
    socklen_t len;
    bool loopback = true;
    char err[256];
    if (strcmp(listen, "off") == 0 ||
        admin_parse_listen(listen, &addr, &len, &loopback, err, sizeof err) != 0 || loopback ||
        config_string(cfg, CFG_ADMIN_TOKEN)[0])
        return 0;
    log_message(LOG_ERROR, "admin_token_missing",
                "ADMIN_LISTEN %s is not a loopback address: set ADMIN_TOKEN (or listen on "
                "127.0.0.1)", listen);
    return -1;
}

/* A port that cannot be bound is logged and the engine runs on without the endpoint: polling
 * and awarding matter more than their observation, and a scrape that fails alerts anyway. */
static void start_admin(app *a)
{
    const char *listen = config_string(a->cfg, CFG_ADMIN_LISTEN);
    if (a->opts->once || strcmp(listen, "off") == 0)
        return;
    admin_hooks hooks = {
        .view = admin_view_of, .reload = admin_reload, .explain = explain_player, .user = a};
    char err[512];
    a->admin = admin_start(a->loop, listen, config_string(a->cfg, CFG_ADMIN_TOKEN), &hooks, err,
                           sizeof err);
    if (!a->admin)
        log_message(LOG_ERROR, "admin_listen_failed", "%s", err);
}

/* ================================================================ Account sources */

static int use_players_file(app *a)
{
    char err[1024];
    if (config_string(a->cfg, CFG_SOCKETIO_URL)[0] || config_string(a->cfg, CFG_WEBHOOK_URLS)[0] ||
        config_string(a->cfg, CFG_PG_NOTIFY_CHANNEL)[0])
        log_message(LOG_WARNING, "notifications_off",
                    "--accounts keeps awards in memory: no notification is sent (they are "
                    "delivered from the database's outbox)");
    player_list players;
    if (players_load_file(a->opts->accounts_file, &players, err, sizeof err) != 0) {
        log_message(LOG_ERROR, "accounts_invalid", "%s", err);
        return -1;
    }
    for (size_t i = 0; i < players.n; i++)
        poller_put_player(a->poller, &players.items[i]);
    player_list_free(&players);
    start_polling(a);
    return 0;
}

static void on_members_changed(void *user)
{
    app *a = user;
    a->members_known = true;
    if (a->started)
        poller_resync(a->poller);
    else if (a->players_ready)
        start_polling(a);
}

static void on_players_ready(void *user, bool ok)
{
    app *a = user;
    if (!ok)
        return; /* retried by the periodic refresh; polling waits for a full load */
    a->players_ready = true;
    if (a->members_known)
        start_polling(a);
}

static void default_engine_id(const config *cfg, char *buf, size_t len)
{
    const char *id = config_string(cfg, CFG_ENGINE_ID);
    if (id[0]) {
        snprintf(buf, len, "%s", id);
        return;
    }
    char host[64] = "engine";
    gethostname(host, sizeof host - 1);
    snprintf(buf, len, "%s-%ld", host, (long)getpid());
}

/* Migrates, connects and creates the store; the poller does not exist yet. */
static int open_database(app *a)
{
    const config *cfg = a->cfg;
    const char *url = config_string(cfg, CFG_DATABASE_URL);
    if (!url[0]) {
        log_message(LOG_ERROR, "no_account_source",
                    "set DATABASE_URL (PostgreSQL) or give --accounts FILE (players as JSON)");
        return -1;
    }
    char err[1024];
    int applied;
    if (migrate_database(url, config_bool(cfg, CFG_AUTO_MIGRATE), &applied, err, sizeof err) != 0) {
        log_message(LOG_ERROR, "database_schema", "%s", err);
        return -1;
    }
    if (applied)
        log_message(LOG_INFO, "database_migrated", "%d migration(s) applied", applied);
    db_options dbo = {.conninfo = url, .connections = (int)config_int(cfg, CFG_DB_POOL_SIZE),
                      .result_timeout = config_number(cfg, CFG_DB_RESULT_TIMEOUT_SECONDS)};
    a->db = db_new(a->loop, &dbo);
    if (!a->db)
        return -1;
    double interval = (double)config_int(cfg, CFG_POLL_INTERVAL_SECONDS);
    db_store_options so = {
        .store_raw_responses = config_bool(cfg, CFG_STORE_RAW_RESPONSES),
        .touch_flush_seconds = 1.0,
        .refresh_seconds = interval * 10 > 300 ? interval * 10 : 300,
        .snapshot_retention_days = (int)config_int(cfg, CFG_SNAPSHOT_RETENTION_DAYS),
    };
    snprintf(so.notify_channel, sizeof so.notify_channel, "%s",
             config_string(cfg, CFG_PG_NOTIFY_CHANNEL));
    a->store = db_store_new(a->loop, a->db, &so);
    return 0;
}

/* Per sink, since start: what this engine delivered, the failed attempts, the events it gave
 * up (NOTIFY_MAX_AGE), whether the receiver is reachable now. */
static void notifications_status(const app *a, cJSON *fields)
{
    if (a->outbox)
        cJSON_AddItemToObject(fields, "notifications", outbox_stats_json(a->outbox));
}

static void database_status(void *user, cJSON *fields)
{
    app *a = user;
    cJSON_AddStringToObject(fields, "database", db_healthy(a->db) ? "ok" : "degraded");
    cJSON_AddNumberToObject(fields, "live_engines", membership_live_count(a->members));
    cJSON_AddNumberToObject(fields, "database_statements", (double)db_store_statements(a->store));
    notifications_status(a, fields);
}

/* Delivery of the outbox to the configured sinks, in the service mode only: --once and
 * --dry-run leave undelivered events to the service. */
static int start_notifications(app *a, const char *engine_id)
{
    if (a->opts->once || a->opts->dry_run)
        return 0;
    notify_sink **sinks;
    char err[512];
    int n = notifiers_new(a->loop, a->cfg, &sinks, err, sizeof err);
    if (n < 0) {
        log_message(LOG_ERROR, "notifiers_invalid", "%s", err);
        return -1;
    }
    if (n == 0)
        return 0;
    outbox_options o = {.engine_id = engine_id,
                        .max_age = (double)config_int(a->cfg, CFG_NOTIFY_MAX_AGE),
                        .timeout = config_number(a->cfg, CFG_NOTIFY_TIMEOUT)};
    a->outbox = outbox_new(a->loop, a->db, sinks, (size_t)n, &o);
    free(sinks);
    if (!a->outbox)
        return -1;
    cJSON *f = cJSON_CreateObject();
    cJSON *names = cJSON_AddArrayToObject(f, "sinks");
    for (size_t i = 0; i < outbox_sink_count(a->outbox); i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(outbox_stats(a->outbox, i).name));
    log_emit(LOG_INFO, "notifications_started", f);
    return 0;
}

/* Outbox depth per sink and held awards, read now and then for the admin endpoint (--once
 * has none). */
static int start_database_stats(app *a)
{
    if (a->opts->once)
        return 0;
    size_t n = a->outbox ? outbox_sink_count(a->outbox) : 0;
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!names)
        return -1;
    for (size_t i = 0; i < n; i++)
        names[i] = outbox_stats(a->outbox, i).name;
    a->db_stats = db_stats_new(a->loop, a->db, names, n,
                               config_number(a->cfg, CFG_DATABASE_STATS_INTERVAL));
    free(names);
    return a->db_stats ? 0 : -1;
}

/* Joins the engines sharing the database and follows the players table. */
static int follow_database(app *a)
{
    char *id = a->engine_id;
    default_engine_id(a->cfg, id, sizeof a->engine_id);
    if (start_notifications(a, id) != 0 || start_database_stats(a) != 0)
        return -1;
    if (!a->opts->once && !(a->explainer = explain_responder_start(a->db, id, explain_player, a)))
        return -1;
    double interval = (double)config_int(a->cfg, CFG_POLL_INTERVAL_SECONDS);
    /* Dead after 3/4 of an interval, heartbeat every 1/4: a dead engine's accounts are
     * reassigned within one interval and polled within the next. */
    a->members = membership_new(a->loop, a->db, id, interval / 4 > 1 ? interval / 4 : 1,
                                interval * 0.75 > 3 ? interval * 0.75 : 3);
    membership_on_change(a->members, on_members_changed, a);
    poller_set_owner(a->poller, membership_owns, a->members);
    poller_set_status(a->poller, database_status, a);
    db_store_follow_players(a->store, a->poller, on_players_ready, a);
    return 0;
}

/* ====================================================================== Shutdown */

static void on_leave_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* An ev_prepare, run before the loop blocks, i.e. after the callbacks of the last answers:
 * an ev_check runs before them, so the loop slept on until LEAVE_TIMEOUT after the last one. */
static void on_leave_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    app *a = w->data;
    if (db_queued(a->db) == 0 && db_in_flight(a->db) == 0)
        ev_break(loop, EVBREAK_ONE);
}

/* Last writes (batched timestamps, leaving the membership) get a moment to reach the
 * database; then the db is freed, which answers every query still pending (their callbacks
 * run now, while the poller, the store and the membership they point to still exist). */
static void close_database(app *a)
{
    if (!a->db)
        return;
    outbox_stop(a->outbox);
    db_stats_stop(a->db_stats);
    membership_leave(a->members);
    db_store_close(a->store);
    ev_timer timeout;
    ev_prepare check;
    ev_timer_init(&timeout, on_leave_timeout, LEAVE_TIMEOUT, 0);
    ev_prepare_init(&check, on_leave_check);
    check.data = a;
    ev_timer_start(a->loop, &timeout);
    ev_prepare_start(a->loop, &check);
    ev_run(a->loop, 0);
    ev_timer_stop(a->loop, &timeout);
    ev_prepare_stop(a->loop, &check);
    db_free(a->db);
    a->db = NULL;
    explain_responder_free(a->explainer); /* no notification can come any more */
    a->explainer = NULL;
}

static void log_summary(const app *a)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "accounts", (double)poller_account_count(a->poller));
    cJSON_AddItemToObject(f, "metrics", metrics_to_json(poller_metrics(a->poller)));
    if (a->store)
        cJSON_AddNumberToObject(f, "database_statements", (double)db_store_statements(a->store));
    log_emit(LOG_INFO, a->opts->once ? "single_cycle_complete" : "engine_stopped", f);
}

int run_engine(const run_options *opts, config *cfg)
{
    app a = {.opts = opts, .cfg = cfg, .loop = EV_DEFAULT, .status = 0};
    bool file = opts->accounts_file != NULL;
    /* Until watch_signals() below, SIGHUP's default action would kill the engine while it
     * migrates or loads scripts (a `systemctl reload` just after start). There is nothing to
     * reload yet: the scripts are read after this point. */
    signal(SIGHUP, SIG_IGN);
    script_runtime *rt = NULL;
    if (check_admin_settings(cfg) == 0 && (file || open_database(&a) == 0))
        rt = settings_load_scripts(cfg, opts->pools_dir, opts->scripts_dir, false);
    if (!rt) {
        close_database(&a);
        db_store_free(a.store);
        config_free(cfg);
        return 1;
    }
    poller_options po = {.interval = (double)config_int(cfg, CFG_POLL_INTERVAL_SECONDS),
                         .shutdown_timeout = config_number(cfg, CFG_SHUTDOWN_TIMEOUT_SECONDS),
                         .once = opts->once,
                         .snapshot_heartbeat = (double)config_int(cfg, CFG_SNAPSHOT_HEARTBEAT),
                         .limits = award_limits_of(cfg)};
    settings_http_options(cfg, &po.http);
    a.poller = poller_new(a.loop, &po, rt,
                          file ? account_store_memory() : db_store_accounts(a.store));
    snprintf(a.generation, sizeof a.generation, "%s", script_rules_generation(rt));
    poller_on_finished(a.poller, on_finished, &a);
    watch_signals(&a);
    service_notify_start(&a.sd, a.loop);
    if (!opts->once)
        watch_scripts(&a);
    start_admin(&a);
    int rc = file ? use_players_file(&a) : follow_database(&a);
    if (rc == 0) {
        if (!a.finished)
            ev_run(a.loop, 0);
        a.status = opts->once && poller_pools_failed_entirely(a.poller) ? 1 : 0;
    } else {
        a.status = 1;
    }
    ev_signal_stop(a.loop, &a.sigterm);
    ev_signal_stop(a.loop, &a.sigint);
    ev_signal_stop(a.loop, &a.sighup);
    admin_stop(a.admin);
    service_notify_stop(&a.sd);
    dir_watch_free(a.watch);
    close_database(&a);
    /* Last: deliveries still in flight end in close_database, and docs/operations.md
     * promises that nothing is logged after engine_stopped. */
    if (rc == 0)
        log_summary(&a);
    poller_free(a.poller);
    outbox_free(a.outbox);
    db_stats_free(a.db_stats);
    membership_free(a.members);
    db_store_free(a.store);
    ev_loop_destroy(a.loop);
    config_free(a.cfg);
    return a.status;
}

int run_migrate(config *cfg)
{
    const char *url = config_string(cfg, CFG_DATABASE_URL);
    char err[1024];
    int applied = 0;
    int rc = -1;
    if (!url[0])
        snprintf(err, sizeof err, "DATABASE_URL is not set");
    else
        rc = migrate_database(url, true, &applied, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "m2p-engine: %s\n", err);
    else
        printf("schema at version %d (%d migration(s) applied)\n", migrate_latest_version(),
               applied);
    config_free(cfg);
    return rc == 0 ? 0 : 1;
}
