/* Scale-out: several engine processes share one database and split the accounts.
 *
 * Each engine heartbeats a row in m2p_engines. The live engines (heartbeat younger than the
 * dead-after time) split the accounts by rendezvous hashing: an account belongs to the live
 * engine with the highest hash(engine id, player, pool). When an engine joins, stops or dies,
 * only its share moves. An engine that dies is taken over once its heartbeat is older than
 * dead-after (default one poll interval) plus one heartbeat period: under two intervals.
 * Overlap while views differ costs at most a duplicate poll, never a duplicate award: every
 * award is a compare-and-set on the account's version. */
#ifndef M2P_MEMBERSHIP_H
#define M2P_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

struct ev_loop;
typedef struct membership membership;

membership *membership_new(struct ev_loop *loop, db *d, const char *engine_id,
                           double heartbeat_seconds, double dead_after_seconds);
/* Leaves the group: stops heartbeating and deletes its row (best effort, queued on the db).
 * Results that arrive afterwards are ignored. */
void membership_leave(membership *m);
/* Frees; call after the db has been freed (no callback may still be pending). */
void membership_free(membership *m);

/* Called whenever the set of live engines changes (and once after the first heartbeat). */
void membership_on_change(membership *m, void (*fn)(void *user), void *user);

/* Whether this engine polls the account. Before the first heartbeat: every account. */
bool membership_owns(void *m, int64_t player_id, const char *pool);

int membership_live_count(const membership *m);
const char *membership_engine_id(const membership *m);

#endif
