/* The service loop: configuration, players, scripts, the poller and signals.
 *
 * SIGTERM/SIGINT stop taking new polls and give the ones in flight SHUTDOWN_TIMEOUT_SECONDS;
 * SIGHUP re-reads the configuration and the scripts and swaps them in only if everything
 * loads (a broken file leaves the running generation untouched).
 */
#include "run.h"

#include <ev.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "players.h"
#include "poller.h"
#include "settings.h"

typedef struct app {
    const run_options *opts;
    config *cfg;
    struct ev_loop *loop;
    poller *poller;
    player_list players;
    ev_signal sigterm, sigint, sighup;
} app;

/* --dry-run and the file account source: a poll's result is durable as soon as it exists. */
static void commit_in_memory(account_sink *self, const poll_commit *c, commit_done_fn done,
                             void *ctx)
{
    (void)self;
    (void)c;
    done(ctx, true);
}

static void on_finished(void *user)
{
    app *a = user;
    ev_break(a->loop, EVBREAK_ALL);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    app *a = w->data;
    log_message(LOG_INFO, "shutdown_requested", "signal %d: finishing polls in flight", w->signum);
    poller_stop(a->poller);
}

static void on_reload_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    app *a = w->data;
    char err[2048];
    config *cfg = config_load(a->opts->env_file, err, sizeof err);
    if (!cfg) {
        log_message(LOG_ERROR, "config_reload_failed", "%s", err);
        return;
    }
    script_runtime *rt =
        settings_load_scripts(cfg, a->opts->pools_dir, a->opts->scripts_dir, true);
    if (!rt) {
        config_free(cfg);
        return;
    }
    /* Scripts read settings only while they load (m2p.env at the top of a script), so the
     * old table can go once the new generation is in. */
    settings_apply_logging(cfg);
    config *old = a->cfg;
    a->cfg = cfg;
    poller_reload(a->poller, rt);
    config_free(old);
    log_message(LOG_INFO, "script_reloaded", "scripts and configuration reloaded");
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

static int load_players(app *a)
{
    if (!a->opts->accounts_file) {
        log_message(LOG_ERROR, "no_account_source",
                    "give --accounts FILE (players as JSON); the PostgreSQL account source "
                    "is not part of this build");
        return -1;
    }
    char err[1024];
    if (players_load_file(a->opts->accounts_file, &a->players, err, sizeof err) != 0) {
        log_message(LOG_ERROR, "accounts_invalid", "%s", err);
        return -1;
    }
    return 0;
}

static void log_summary(const app *a)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "accounts", (double)poller_account_count(a->poller));
    cJSON_AddItemToObject(f, "metrics", metrics_to_json(poller_metrics(a->poller)));
    log_emit(LOG_INFO, a->opts->once ? "single_cycle_complete" : "engine_stopped", f);
}

int run_engine(const run_options *opts, config *cfg)
{
    app a = {.opts = opts, .cfg = cfg, .loop = EV_DEFAULT};
    if (load_players(&a) != 0) {
        config_free(cfg);
        return 1;
    }
    script_runtime *rt = settings_load_scripts(cfg, opts->pools_dir, opts->scripts_dir, false);
    if (!rt) {
        player_list_free(&a.players);
        config_free(cfg);
        return 1;
    }
    poller_options po = {.interval = (double)config_int(cfg, CFG_POLL_INTERVAL_SECONDS),
                         .shutdown_timeout = config_number(cfg, CFG_SHUTDOWN_TIMEOUT_SECONDS),
                         .once = opts->once};
    settings_http_options(cfg, &po.http);
    account_sink sink = {commit_in_memory};
    a.poller = poller_new(a.loop, &po, rt, &a.players, &sink);
    poller_on_finished(a.poller, on_finished, &a);
    watch_signals(&a);
    log_message(LOG_INFO, "engine_started", "%zu players, mode %s", a.players.n,
                opts->once ? "once" : opts->dry_run ? "dry-run" : "run");
    poller_start(a.poller);
    ev_run(a.loop, 0);
    log_summary(&a);
    int status = opts->once && poller_pools_failed_entirely(a.poller) ? 1 : 0;
    ev_signal_stop(a.loop, &a.sigterm);
    ev_signal_stop(a.loop, &a.sigint);
    ev_signal_stop(a.loop, &a.sighup);
    poller_free(a.poller);
    player_list_free(&a.players);
    ev_loop_destroy(a.loop);
    config_free(a.cfg);
    return status;
}
