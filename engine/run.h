/* The loop-driven modes: the service (until SIGTERM), --once and --dry-run. */
#ifndef M2P_RUN_H
#define M2P_RUN_H

#include <stdbool.h>

#include "config.h"

typedef struct run_options {
    const char *pools_dir;
    const char *scripts_dir;
    const char *env_file;      /* NULL: ./.env if present */
    const char *accounts_file; /* players from a JSON file instead of the database */
    bool once;
    bool dry_run;
} run_options;

/* Runs until done; returns the process exit status. Takes ownership of cfg. */
int run_engine(const run_options *opts, config *cfg);

/* --migrate: applies pending schema migrations and exits. Takes ownership of cfg. */
int run_migrate(config *cfg);

#endif
