/* The PostgreSQL side of the engine's data: players (the account source, kept current with
 * LISTEN/NOTIFY), account state (loaded before an account's first poll, in pages of a pool
 * where the wallet's claim is already settled), and the commit of a
 * poll: one call of m2p_commit_poll (engine/migrations/002_engine_state.sql), atomic and
 * guarded by the account's version, so an award is stored exactly once. */
#ifndef M2P_DB_STORE_H
#define M2P_DB_STORE_H

#include <stdbool.h>

#include "db.h"
#include "poller.h"

typedef struct db_store db_store;

typedef struct db_store_options {
    bool store_raw_responses; /* STORE_RAW_RESPONSES: keep the body in pool_snapshots */
    double touch_flush_seconds; /* how often unchanged polls are written, in one statement */
    double refresh_seconds;   /* full players refresh, the safety net of NOTIFY */
    int snapshot_retention_days; /* SNAPSHOT_RETENTION_DAYS; 0 = keep all */
    char notify_channel[64];  /* PG_NOTIFY_CHANNEL: pg_notify in each award's transaction;
                                 "" = off */
} db_store_options;

db_store *db_store_new(struct ev_loop *loop, db *d, const db_store_options *o);
/* Stops following players and queues the last batched writes; later results about players
 * are ignored (account loads and commits still answer the poller). */
void db_store_close(db_store *s);
/* Frees; call after the db has been freed (no callback may still be pending). */
void db_store_free(db_store *s);

/* The account_store the poller uses. */
account_store *db_store_accounts(db_store *s);

/* Loads every verified and active player into `p`, then keeps it current: inserts, updates
 * (wallet, verified, active) and deletes reach the poller within seconds. `ready` is called
 * once the first full load is done (ok=false: it failed; it is retried). */
void db_store_follow_players(db_store *s, poller *p, void (*ready)(void *user, bool ok),
                             void *user);

/* Statements sent so far (for the benchmark's statements per poll). */
unsigned long long db_store_statements(const db_store *s);

#endif
