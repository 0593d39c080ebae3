/* "Why was I not rewarded?" as the database has it: one player's row, stored account states,
 * recent awards with each notification sink's delivery state, held awards and the live
 * engines. One statement with the player id bound ($1), answered by PostgreSQL as one JSON
 * text, so --explain (blocking libpq) and GET /accounts (the engine's db queue) read exactly
 * the same facts.
 *
 * The report (JSON object):
 *   player        {id, username, active, verified, total_ap, total_advc_mined,
 *                  last_mining_event} or null when there is no such player
 *   accounts      [{pool, wallet, version, last_success, accounted, observation}]: the
 *                 stored state of each account (accounted: the rules' bookkeeping,
 *                 scripts/rewards.lua; observation: the rest, the last observation as parsed)
 *   recent_awards [{event_id, pool, advc, ap, time, reason, notifications: [{sink, state
 *                  (delivered | pending | expired), attempts, last_error, delivered_at}]}],
 *                 newest first, at most PLAYER_REPORT_AWARDS
 *   held_awards   [{id, pool, advc, ap, held_at, hold_reason}] still waiting for review
 *   engines       [{id, heartbeat}]: engines that heartbeated within the last 2 minutes
 *
 * player_report_merge() adds what a running engine knows (poller_explain) under each account
 * as "live", so both front ends print one shape. */
#ifndef M2P_PLAYER_REPORT_H
#define M2P_PLAYER_REPORT_H

#include <cjson/cJSON.h>

#define PLAYER_REPORT_AWARDS 10

/* The statement; $1 = the player id as text (digits). One row, one column: the report. */
extern const char *const player_report_sql;

/* Adds each entry of `live` (a poller_explain array; taken) to the report's account of the
 * same pool as "live"; a pool the database has no state for yet gets an account of its own
 * (a fresh account, or one that never had a successful poll). Entries that say the pool is
 * not polled by their engine do not replace one that is. */
void player_report_merge(cJSON *report, cJSON *live);

#endif
