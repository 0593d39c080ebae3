/* The operator's side of held awards (award_limits.h, docs/operations.md "Held awards"):
 * `m2p-engine --list-held`, `--release-held ID` and `--reject-held ID`. Each is one
 * statement over its own blocking connection, run before (and without) the event loop; the
 * work itself is done by m2p_release_held / m2p_reject_held in the database
 * (engine/migrations/003_held_awards.sql), one transaction each, so an award is settled
 * exactly once however often and from wherever the command runs. */
#ifndef M2P_HELD_H
#define M2P_HELD_H

#include <stdbool.h>

#include "config.h"

typedef enum held_action { HELD_LIST, HELD_RELEASE, HELD_REJECT } held_action;

/* Exit statuses besides 0 (done) and 1 (error: database, unknown id). */
#define HELD_EXIT_ALREADY_SETTLED 3 /* released or rejected before: nothing changed */

/* True when `text` is a held award id as the commands accept it (1 to 18 digits). */
bool held_id_valid(const char *text);

/* Runs one command against DATABASE_URL (pending migrations are applied first when
 * AUTO_MIGRATE allows). `id` is NULL for HELD_LIST. Results go to stdout, errors to stderr,
 * the held_award_released / held_award_rejected log records to the log (on stderr). Returns
 * the process exit status. */
int held_command(const config *cfg, held_action action, const char *id);

#endif
