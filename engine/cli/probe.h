/* `m2p-engine --probe POOL WALLET`: one live request through a pool script, for pool authors. */
#ifndef M2P_PROBE_H
#define M2P_PROBE_H

#include "config.h"

/* Prints the URL, HTTP status and timing, the observation, its ADVC conversion and what the
 * rules would award on a second identical poll. With record_file, also saves the response
 * as a --script-test fixture that expects this observation (a baseline: no reward).
 * Returns the exit status (0: observation). */
int run_probe(const config *cfg, const char *pools_dir, const char *scripts_dir,
              const char *pool, const char *wallet, const char *record_file);

#endif
