/* m2p-engine: command line, and the choice of what to run. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "script.h"
#include "scripttest.h"

#define EXIT_USAGE 2

typedef enum { MODE_HELP, MODE_VERSION, MODE_CHECK, MODE_SCRIPT_TEST } run_mode;

typedef struct cli {
    run_mode mode;
    const char *pools_dir;
    const char *scripts_dir;
    const char *const *paths;
    int n_paths;
} cli;

static void print_usage(FILE *out)
{
    fputs("usage: m2p-engine [options]\n"
          "\n"
          "Modes:\n"
          "  --script-test [PATH...]  run pool scripts against recorded fixtures (files or\n"
          "                           directories of *.json; default tests/fixtures)\n"
          "  --check                  load and validate every script; non-zero if any is broken\n"
          "  --help, --version\n"
          "\n"
          "Options:\n"
          "  --pools DIR              pool scripts (default ./pools, then the install's share dir)\n"
          "  --scripts DIR            rule scripts convert.lua, rewards.lua (default ./scripts, ...)\n",
          out);
}

/* ./NAME when it exists, else the installed copy. */
static const char *default_dir(const char *name)
{
    static char installed[2][1024];
    struct stat st;
    if (stat(name, &st) == 0 && S_ISDIR(st.st_mode))
        return name;
    char *slot = installed[strcmp(name, "pools") == 0 ? 0 : 1];
    snprintf(slot, sizeof installed[0], "%s/%s", M2P_SHARE_DIR, name);
    return slot;
}

static int parse_cli(int argc, char **argv, cli *c)
{
    enum { OPT_SCRIPT_TEST = 256, OPT_CHECK, OPT_POOLS, OPT_SCRIPTS, OPT_VERSION };
    static const struct option options[] = {
        {"script-test", no_argument, NULL, OPT_SCRIPT_TEST},
        {"check", no_argument, NULL, OPT_CHECK},
        {"pools", required_argument, NULL, OPT_POOLS},
        {"scripts", required_argument, NULL, OPT_SCRIPTS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(c, 0, sizeof *c);
    c->mode = MODE_HELP;
    for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (opt) {
        case OPT_SCRIPT_TEST: c->mode = MODE_SCRIPT_TEST; break;
        case OPT_CHECK: c->mode = MODE_CHECK; break;
        case OPT_POOLS: c->pools_dir = optarg; break;
        case OPT_SCRIPTS: c->scripts_dir = optarg; break;
        case OPT_VERSION: c->mode = MODE_VERSION; break;
        case 'h': c->mode = MODE_HELP; break;
        default: return -1;
        }
    }
    if (optind < argc && c->mode != MODE_SCRIPT_TEST) {
        fprintf(stderr, "m2p-engine: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    c->paths = (const char *const *)argv + optind;
    c->n_paths = argc - optind;
    if (!c->pools_dir)
        c->pools_dir = default_dir("pools");
    if (!c->scripts_dir)
        c->scripts_dir = default_dir("scripts");
    return 0;
}

static int run_check(const script_options *opts)
{
    char err[1024];
    script_runtime *rt = script_runtime_new(opts, err, sizeof err);
    if (!rt) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    size_t errors = script_load_error_count(rt);
    for (size_t i = 0; i < errors; i++)
        fprintf(stderr, "error: %s\n", script_load_error(rt, i));
    for (size_t i = 0; i < script_pool_count(rt); i++) {
        const script_pool *p = script_pool_at(rt, i);
        printf("ok   %s: pool %s (%s)%s\n", p->file, p->name, p->currency,
               p->enabled ? "" : ", disabled");
    }
    printf("ok   %s/convert.lua, %s/rewards.lua\n", opts->scripts_dir, opts->scripts_dir);
    script_runtime_free(rt);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    cli c;
    if (parse_cli(argc, argv, &c) != 0) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    script_options opts;
    script_options_defaults(&opts);
    opts.pools_dir = c.pools_dir;
    opts.scripts_dir = c.scripts_dir;
    switch (c.mode) {
    case MODE_VERSION:
        printf("m2p-engine %s\n", M2P_VERSION);
        return 0;
    case MODE_CHECK:
        log_configure(LOG_INFO, LOG_FORMAT_TEXT, stderr);
        return run_check(&opts);
    case MODE_SCRIPT_TEST: {
        /* Script logs go to stderr so the verdict lines stay readable on stdout. */
        log_configure(LOG_WARNING, LOG_FORMAT_TEXT, stderr);
        static const char *const default_paths[] = {"tests/fixtures"};
        if (c.n_paths == 0)
            return scripttest_run(&opts, default_paths, 1, stdout);
        return scripttest_run(&opts, c.paths, c.n_paths, stdout);
    }
    case MODE_HELP:
    default:
        print_usage(stdout);
        return 0;
    }
}
