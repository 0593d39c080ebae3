/* m2p-engine: the command line, and the choice of what to run. */
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "explain.h"
#include "held.h"
#include "http.h"
#include "log.h"
#include "probe.h"
#include "run.h"
#include "script.h"
#include "secrets.h"
#include "scripttest.h"
#include "settings.h"
#include "wallet_report.h"

#define EXIT_USAGE 2

typedef enum {
    MODE_RUN,
    MODE_HELP,
    MODE_VERSION,
    MODE_CHECK,
    MODE_SCRIPT_TEST,
    MODE_PROBE,
    MODE_MIGRATE,
    MODE_HELD, /* --list-held, --release-held ID, --reject-held ID */
    MODE_EXPLAIN, /* --explain PLAYER_ID [--json] */
} run_mode;

typedef struct cli {
    run_mode mode;
    run_options run;
    const char *const *paths;
    int n_paths;
    const char *record_file; /* --probe --record FILE */
    bool watch;              /* --script-test --watch */
    bool check_wallets;      /* --check-wallets: --check, then the database's wallets */
    held_action held;        /* MODE_HELD: which command */
    const char *held_id;     /* --release-held / --reject-held ID */
    const char *explain_id;  /* --explain PLAYER_ID */
    bool json;               /* --explain --json */
    bool explicit_dir[2];    /* --pools, --scripts given (not the defaults) */
} cli;

static void print_usage(FILE *out)
{
    fputs("usage: m2p-engine [mode] [options]\n"
          "\n"
          "Modes (default: run until SIGTERM/SIGINT; SIGHUP reloads scripts and settings):\n"
          "  --once                   poll every account once, as fast as limits allow, then\n"
          "                           exit (non-zero if a pool failed entirely)\n"
          "  --dry-run                poll and log awards, store nothing (needs --accounts)\n"
          "  --probe POOL WALLET      one live request through a pool script, explained;\n"
          "                           with --record FILE, saved as a --script-test fixture\n"
          "  --script-test [PATH...]  pool scripts against recorded fixtures (files or\n"
          "                           directories of *.json; default tests/fixtures); with\n"
          "                           --watch, again whenever a script or fixture changes\n"
          "  --check                  load and validate every script; non-zero if any is broken;\n"
          "                           with --accounts FILE also the file's wallets (exit 4:\n"
          "                           some account's wallet would be refused)\n"
          "  --check-wallets          --check, then every account's wallet in the database:\n"
          "                           invalid ones and other players' wallets (exit 4)\n"
          "  --migrate                apply pending database schema migrations and exit\n"
          "  --list-held              awards held for review (above MAX_AWARD_ADVC or\n"
          "                           MAX_AWARD_FACTOR): id, player, pool, amounts, why\n"
          "  --release-held ID        pay a held award: totals and notification, once\n"
          "  --reject-held ID         never pay a held award (exit 3: ID already settled)\n"
          "  --explain PLAYER_ID      why a player was (not) rewarded: each account's last poll\n"
          "                           and error, next poll and why then, baseline, recent awards\n"
          "                           and their notifications (--json: as JSON); exit 2: unknown\n"
          "  --help, --version\n"
          "\n"
          "Options:\n"
          "  --accounts FILE          players from a JSON file instead of the database:\n"
          "                           [{\"player_id\": 1, \"username\": \"p1\", \"wallet\": \"...\",\n"
          "                             \"wallets\": {\"zpool\": \"...\"}}]\n"
          "  --env-file FILE          settings file (default ./.env when present)\n"
          "  --pools DIR              pool scripts (default ./pools, then the install's share dir)\n"
          "  --scripts DIR            rule scripts convert.lua, rewards.lua (same defaults)\n"
          "\n",
          out);
    config_print_help(out);
}

/* BIN/../share/m2p-engine/NAME into buf (PATH_MAX long, as realpath needs) when it is a
 * directory: an install moved to another prefix than the one it was configured for still
 * finds its scripts. */
static bool share_dir_near_binary(const char *name, char *buf, size_t len)
{
    char exe[PATH_MAX], near[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || len < PATH_MAX)
        return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = '\0';
    int w = snprintf(near, sizeof near, "%s/../share/m2p-engine/%s", exe, name);
    struct stat st;
    return w > 0 && (size_t)w < sizeof near && realpath(near, buf) && stat(buf, &st) == 0 &&
           S_ISDIR(st.st_mode);
}

/* ./NAME when it exists, else the installed copy: beside the binary, then the configured
 * M2P_SHARE_DIR. */
static const char *default_dir(const char *name, char *buf, size_t len)
{
    struct stat st;
    if (stat(name, &st) == 0 && S_ISDIR(st.st_mode))
        return name;
    if (share_dir_near_binary(name, buf, len))
        return buf;
    snprintf(buf, len, "%s/%s", M2P_SHARE_DIR, name);
    return buf;
}

static int parse_cli(int argc, char **argv, cli *c)
{
    enum { O_ONCE = 256, O_DRY_RUN, O_PROBE, O_SCRIPT_TEST, O_CHECK, O_ACCOUNTS, O_ENV_FILE,
           O_POOLS, O_SCRIPTS, O_VERSION, O_MIGRATE, O_RECORD, O_WATCH, O_LIST_HELD,
           O_RELEASE_HELD, O_REJECT_HELD, O_CHECK_WALLETS, O_EXPLAIN, O_JSON };
    static const struct option options[] = {
        {"once", no_argument, NULL, O_ONCE},
        {"dry-run", no_argument, NULL, O_DRY_RUN},
        {"probe", no_argument, NULL, O_PROBE},
        {"script-test", no_argument, NULL, O_SCRIPT_TEST},
        {"check", no_argument, NULL, O_CHECK},
        {"check-wallets", no_argument, NULL, O_CHECK_WALLETS},
        {"migrate", no_argument, NULL, O_MIGRATE},
        {"list-held", no_argument, NULL, O_LIST_HELD},
        {"release-held", required_argument, NULL, O_RELEASE_HELD},
        {"reject-held", required_argument, NULL, O_REJECT_HELD},
        {"explain", required_argument, NULL, O_EXPLAIN},
        {"json", no_argument, NULL, O_JSON},
        {"record", required_argument, NULL, O_RECORD},
        {"watch", no_argument, NULL, O_WATCH},
        {"accounts", required_argument, NULL, O_ACCOUNTS},
        {"env-file", required_argument, NULL, O_ENV_FILE},
        {"pools", required_argument, NULL, O_POOLS},
        {"scripts", required_argument, NULL, O_SCRIPTS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(c, 0, sizeof *c);
    for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (opt) {
        case O_ONCE: c->run.once = true; break;
        case O_DRY_RUN: c->run.dry_run = true; break;
        case O_PROBE: c->mode = MODE_PROBE; break;
        case O_SCRIPT_TEST: c->mode = MODE_SCRIPT_TEST; break;
        case O_CHECK: c->mode = MODE_CHECK; break;
        case O_CHECK_WALLETS:
            c->mode = MODE_CHECK;
            c->check_wallets = true;
            break;
        case O_MIGRATE: c->mode = MODE_MIGRATE; break;
        case O_LIST_HELD:
        case O_RELEASE_HELD:
        case O_REJECT_HELD:
            c->mode = MODE_HELD;
            c->held = opt == O_LIST_HELD      ? HELD_LIST
                      : opt == O_RELEASE_HELD ? HELD_RELEASE
                                              : HELD_REJECT;
            c->held_id = optarg;
            break;
        case O_EXPLAIN:
            c->mode = MODE_EXPLAIN;
            c->explain_id = optarg;
            break;
        case O_JSON: c->json = true; break;
        case O_RECORD: c->record_file = optarg; break;
        case O_WATCH: c->watch = true; break;
        case O_ACCOUNTS: c->run.accounts_file = optarg; break;
        case O_ENV_FILE: c->run.env_file = optarg; break;
        case O_POOLS: c->run.pools_dir = optarg; break;
        case O_SCRIPTS: c->run.scripts_dir = optarg; break;
        case O_VERSION: c->mode = MODE_VERSION; break;
        case 'h': c->mode = MODE_HELP; break;
        default: return -1;
        }
    }
    c->paths = (const char *const *)argv + optind;
    c->n_paths = argc - optind;
    bool takes_paths = c->mode == MODE_SCRIPT_TEST || c->mode == MODE_PROBE;
    if (c->n_paths > 0 && !takes_paths) {
        fprintf(stderr, "m2p-engine: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (c->mode == MODE_PROBE && c->n_paths != 2) {
        fprintf(stderr, "m2p-engine: --probe needs POOL and WALLET\n");
        return -1;
    }
    if (c->record_file && c->mode != MODE_PROBE) {
        fprintf(stderr, "m2p-engine: --record goes with --probe\n");
        return -1;
    }
    if (c->mode == MODE_HELD && c->held != HELD_LIST && !held_id_valid(c->held_id)) {
        fprintf(stderr, "m2p-engine: a held award ID is a positive integer (see --list-held), "
                        "not '%s'\n", c->held_id);
        return -1;
    }
    if (c->json && c->mode != MODE_EXPLAIN) {
        fprintf(stderr, "m2p-engine: --json goes with --explain\n");
        return -1;
    }
    if (c->watch && c->mode != MODE_SCRIPT_TEST) {
        fprintf(stderr, "m2p-engine: --watch goes with --script-test\n");
        return -1;
    }
    if (c->run.dry_run && !c->run.accounts_file) {
        fprintf(stderr, "m2p-engine: --dry-run needs --accounts FILE\n");
        return -1;
    }
    static char pools_buf[PATH_MAX], scripts_buf[PATH_MAX];
    c->explicit_dir[0] = c->run.pools_dir != NULL;
    c->explicit_dir[1] = c->run.scripts_dir != NULL;
    if (!c->run.pools_dir)
        c->run.pools_dir = default_dir("pools", pools_buf, sizeof pools_buf);
    if (!c->run.scripts_dir)
        c->run.scripts_dir = default_dir("scripts", scripts_buf, sizeof scripts_buf);
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Says which directory is missing and how to point at it, before anything fails with a bare
 * "cannot open" deep inside (run from another folder, the defaults find nothing). */
static bool script_dirs_usable(const cli *c)
{
    const char *dirs[] = {c->run.pools_dir, c->run.scripts_dir};
    const char *flags[] = {"--pools", "--scripts"};
    const char *what[] = {"pool scripts", "rules (convert.lua, rewards.lua)"};
    bool ok = true;
    for (int i = 0; i < 2; i++) {
        if (is_dir(dirs[i]))
            continue;
        if (c->explicit_dir[i])
            fprintf(stderr, "m2p-engine: %s %s: not a directory\n", flags[i], dirs[i]);
        else
            fprintf(stderr, "m2p-engine: no %s: ./%s is not in this folder and %s is not "
                            "installed\n", what[i], i ? "scripts" : "pools", dirs[i]);
        ok = false;
    }
    if (!ok)
        fputs("hint: run from the m2p-engine folder (where pools/ and scripts/ are), or pass "
              "--pools DIR and --scripts DIR\n", stderr);
    if (ok && c->mode == MODE_SCRIPT_TEST && c->n_paths == 0 && !is_dir("tests/fixtures")) {
        fputs("m2p-engine: no ./tests/fixtures in this folder\n"
              "hint: name the fixtures: --script-test FILE.json|DIR...\n", stderr);
        ok = false;
    }
    return ok;
}

static int run_check(const script_options *opts, const cli *c, const config *cfg)
{
    char err[1024];
    script_runtime *rt = script_runtime_new(opts, err, sizeof err);
    /* A script's error may quote a setting's value: scrubbed like a log record. */
    if (!rt) {
        secrets_print_line(stderr, "error: ", err);
        return 1;
    }
    size_t errors = script_load_error_count(rt);
    for (size_t i = 0; i < errors; i++)
        secrets_print_line(stderr, "error: ", script_load_error(rt, i));
    for (size_t i = 0; i < script_pool_count(rt); i++) {
        const script_pool *p = script_pool_at(rt, i);
        printf("ok   %s: pool %s (%s)%s\n", p->file, p->name, p->currency,
               p->enabled ? "" : ", disabled");
    }
    printf("ok   %s/convert.lua, %s/rewards.lua\n", opts->scripts_dir, opts->scripts_dir);
    fflush(stdout);
    int status = errors ? 1 : 0;
    /* Then, with players to look at, whose wallets the engine would refuse (exit 4). */
    int wallets = 0;
    if (c->run.accounts_file)
        wallets = wallet_report_file(rt, c->run.accounts_file, stdout, stderr);
    else if (c->check_wallets)
        wallets = wallet_report_database(rt, config_string(cfg, CFG_DATABASE_URL), stdout,
                                         stderr);
    script_runtime_free(rt);
    return status || wallets == 1 ? 1 : wallets;
}

static int run_script_test(const cli *c)
{
    /* Script logs go to stderr so the verdict lines stay readable on stdout. */
    log_configure(LOG_WARNING, LOG_FORMAT_TEXT, stderr);
    script_options opts;
    script_options_defaults(&opts);
    opts.pools_dir = c->run.pools_dir;
    opts.scripts_dir = c->run.scripts_dir;
    static const char *const default_paths[] = {"tests/fixtures"};
    const char *const *paths = c->n_paths ? c->paths : default_paths;
    int n = c->n_paths ? c->n_paths : 1;
    if (c->watch)
        return scripttest_watch(&opts, paths, n, stdout);
    return scripttest_run(&opts, paths, n, stdout);
}

/* Modes that read the settings: an invalid value stops here with exit code 78. */
static int run_configured(const cli *c)
{
    char err[4096];
    config *cfg = config_load(c->run.env_file, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "m2p-engine: invalid configuration:\n%s\n", err);
        return CONFIG_EXIT_INVALID;
    }
    int status;
    if (c->mode == MODE_CHECK) {
        log_configure(LOG_INFO, LOG_FORMAT_TEXT, stderr);
        script_options opts;
        settings_script_options(cfg, c->run.pools_dir, c->run.scripts_dir, &opts);
        status = run_check(&opts, c, cfg);
        config_free(cfg);
        return status;
    }
    settings_apply_logging(cfg);
    if (c->mode == MODE_MIGRATE)
        return run_migrate(cfg);
    if (c->mode == MODE_EXPLAIN) {
        status = explain_command(cfg, c->explain_id, c->json);
        config_free(cfg);
        return status;
    }
    if (c->mode == MODE_HELD) {
        status = held_command(cfg, c->held, c->held_id);
        config_free(cfg);
        return status;
    }
    if (http_global_init() != 0) {
        fprintf(stderr, "m2p-engine: libcurl initialisation failed\n");
        config_free(cfg);
        return 1;
    }
    if (c->mode == MODE_PROBE) {
        status = run_probe(cfg, c->run.pools_dir, c->run.scripts_dir, c->paths[0], c->paths[1],
                           c->record_file);
        config_free(cfg);
    } else {
        status = run_engine(&c->run, cfg); /* owns cfg from here (reload swaps it) */
    }
    http_global_cleanup();
    return status;
}

int main(int argc, char **argv)
{
    cli c;
    if (parse_cli(argc, argv, &c) != 0) {
        fputs("try 'm2p-engine --help'\n", stderr);
        return EXIT_USAGE;
    }
    if (c.mode == MODE_HELP) {
        print_usage(stdout);
        return 0;
    }
    if (c.mode == MODE_VERSION) {
        printf("m2p-engine %s\n", M2P_VERSION);
        return 0;
    }
    bool needs_scripts = c.mode != MODE_MIGRATE && c.mode != MODE_HELD && c.mode != MODE_EXPLAIN;
    if (needs_scripts && !script_dirs_usable(&c))
        return 1;
    return c.mode == MODE_SCRIPT_TEST ? run_script_test(&c) : run_configured(&c);
}
