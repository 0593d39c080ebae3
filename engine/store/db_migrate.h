/* Schema migrations: versioned SQL files (engine/migrations/NNN_name.sql) compiled into the
 * binary and applied in order, all pending ones in one transaction. Part of the PostgreSQL
 * room; runs at start-up, before the event loop, over its own blocking connection. */
#ifndef M2P_DB_MIGRATE_H
#define M2P_DB_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

/* Brings the schema up to date. With apply=false (AUTO_MIGRATE=false) pending migrations are
 * an error telling the operator to run --migrate. A database whose schema is newer than this
 * binary knows is always an error. Writes how many migrations were applied to *applied.
 * Returns 0 on success, -1 with a reason (never containing the password) in err. */
int migrate_database(const char *conninfo, bool apply, int *applied, char *err, size_t errlen);

/* The highest schema version this binary knows. */
int migrate_latest_version(void);

#endif
