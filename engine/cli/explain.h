/* `m2p-engine --explain PLAYER_ID`: "why was I not rewarded?" for support staff who reach the
 * database but not the admin endpoint. Reads the player report from the database
 * (engine/store/player_report.h) and asks the running engines for their live view of the
 * player's accounts over LISTEN/NOTIFY (engine/admin/explain_responder.h), waiting up to
 * EXPLAIN_WAIT seconds for every live engine to answer; prints it as text (or JSON with
 * --json). Writes nothing. */
#ifndef M2P_CLI_EXPLAIN_H
#define M2P_CLI_EXPLAIN_H

#include <stdbool.h>

#include "config.h"

#define EXPLAIN_WAIT 3.0

/* Exit status: 0 printed, 1 database error, 2 no such player (nothing known about the id). */
int explain_command(const config *cfg, const char *player_id, bool json);

#endif
