/* Schema migrations (see db_migrate.h).
 *
 * Concurrency: several engines may start at once against one database; a transaction-level
 * advisory lock serialises them, and the second one finds nothing left to do.
 */
#include "db_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "embedded.h"

/* Arbitrary but fixed: the advisory lock key that guards migrations ("m2p" + 1). */
#define MIGRATION_LOCK_KEY "7156432001"

typedef struct migration {
    int version;
    const char *file;
} migration;

static const migration migrations[] = {
    {1, "001_game_tables.sql"},
    {2, "002_engine_state.sql"},
    {3, "003_held_awards.sql"},
    {4, "004_wallet_claims.sql"},
    {5, "005_rplant_units_rebaseline.sql"},
    {6, "006_claims_checked_at_commit.sql"},
    {7, "007_notifications.sql"},
    {8, "008_player_lookups.sql"},
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int migrate_latest_version(void) { return migrations[N_MIGRATIONS - 1].version; }

/* libpq messages end with a newline; keep one line. */
static void set_error(char *err, size_t errlen, const char *what, const char *detail)
{
    snprintf(err, errlen, "%s: %s", what, detail ? detail : "unknown error");
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
}

static int exec_ok(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        set_error(err, errlen, what, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static int current_version(PGconn *conn, int *version, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM m2p_schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_error(err, errlen, "reading the schema version", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static int apply_one(PGconn *conn, const migration *m, char *err, size_t errlen)
{
    const embedded_file *f = embedded_find(m->file);
    if (!f) {
        snprintf(err, errlen, "migration %s is missing from the binary", m->file);
        return -1;
    }
    char what[128];
    snprintf(what, sizeof what, "migration %s", m->file);
    if (exec_ok(conn, f->text, what, err, errlen) != 0)
        return -1;
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->file};
    PGresult *r = PQexecParams(conn,
                               "INSERT INTO m2p_schema_migrations (version, name) VALUES ($1, $2)",
                               2, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        set_error(err, errlen, "recording the migration", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static int migrate_locked(PGconn *conn, bool apply, int *applied, char *err, size_t errlen)
{
    int version;
    if (exec_ok(conn,
                "CREATE TABLE IF NOT EXISTS m2p_schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                "creating m2p_schema_migrations", err, errlen) != 0 ||
        current_version(conn, &version, err, errlen) != 0)
        return -1;
    if (version > migrate_latest_version()) {
        snprintf(err, errlen,
                 "the database schema is version %d, newer than this engine knows (%d): "
                 "upgrade the engine",
                 version, migrate_latest_version());
        return -1;
    }
    int pending = 0;
    for (int i = 0; i < N_MIGRATIONS; i++)
        pending += migrations[i].version > version;
    if (pending && !apply) {
        snprintf(err, errlen,
                 "%d schema migration(s) pending and AUTO_MIGRATE=false: run "
                 "'m2p-engine --migrate'",
                 pending);
        return -1;
    }
    for (int i = 0; i < N_MIGRATIONS; i++) {
        if (migrations[i].version <= version)
            continue;
        if (apply_one(conn, &migrations[i], err, errlen) != 0)
            return -1;
        (*applied)++;
    }
    return 0;
}

int migrate_database(const char *conninfo, bool apply, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    char why[512];
    PGconn *conn = db_connect_blocking(conninfo, why, sizeof why);
    if (!conn) {
        set_error(err, errlen, "cannot connect to the database", why);
        return -1;
    }
    int rc = exec_ok(conn, "SET client_min_messages = warning", "session", err, errlen);
    if (rc == 0)
        rc = exec_ok(conn, "BEGIN", "begin", err, errlen);
    if (rc == 0)
        rc = exec_ok(conn, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")",
                     "taking the migration lock", err, errlen);
    if (rc == 0)
        rc = migrate_locked(conn, apply, applied, err, errlen);
    if (rc == 0)
        rc = exec_ok(conn, "COMMIT", "commit", err, errlen);
    if (rc != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        *applied = 0;
    }
    PQfinish(conn);
    return rc;
}
