/* `m2p-engine --script-test`: pool scripts against recorded responses, through the same
 * script runtime the live engine uses, with no network and no database. */
#ifndef M2P_SCRIPTTEST_H
#define M2P_SCRIPTTEST_H

#include <stdio.h>

#include "script.h"

/* Runs every fixture file found under `paths` (files or directories, recursively, *.json in
 * name order). `base` gives the directories and limits; its env lookup is replaced by each
 * case's "env" (cases are hermetic: the process environment is not consulted). Prints one
 * line per case and "N passed, N failed" to `out`. Returns 0 when every case passed. */
int scripttest_run(const script_options *base, const char *const *paths, int n_paths, FILE *out);

/* Runs the fixtures, then again whenever a script (*.lua in the pools or scripts directory)
 * or a fixture (*.json under the paths) changes, until interrupted. */
int scripttest_watch(const script_options *base, const char *const *paths, int n_paths,
                     FILE *out);

#endif
