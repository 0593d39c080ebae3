/* `m2p-engine --explain PLAYER_ID` asks the running engines over the database, for support
 * staff who reach the database but not the admin endpoint: the command LISTENs on a reply
 * channel of its own and sends NOTIFY m2p_explain '<reply channel> <player id>'; every engine
 * answers on the reply channel with one notification per account of that player
 * (poller_explain's entries) and then {"engine": id, "done": true, "accounts": n}, all in one
 * transaction, so they arrive in that order. Nothing is written to any table.
 */
#ifndef M2P_EXPLAIN_RESPONDER_H
#define M2P_EXPLAIN_RESPONDER_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "db.h"

#define EXPLAIN_CHANNEL "m2p_explain"
#define EXPLAIN_REPLY_PREFIX "m2p_explain_"
#define EXPLAIN_PAYLOAD_MAX 7900 /* NOTIFY payloads must stay under 8000 bytes */

typedef struct explain_responder explain_responder;

/* `live(user, player)` returns poller_explain's array (the responder takes it). */
explain_responder *explain_responder_start(db *d, const char *engine_id,
                                           cJSON *(*live)(void *user, int64_t player),
                                           void *user);
/* After db_free (no callback can still come). NULL is a no-op. */
void explain_responder_free(explain_responder *r);

/* Parses a request payload: true with the reply channel (copied into `reply`) and the id. */
bool explain_request_parse(const char *payload, char *reply, size_t reply_len, int64_t *player);

/* One entry as a payload that fits (EXPLAIN_PAYLOAD_MAX): long texts are cut, and an entry
 * that still does not fit is replaced by {pool, engine, "truncated": true}. Caller frees. */
char *explain_entry_payload(const cJSON *entry);

#endif
