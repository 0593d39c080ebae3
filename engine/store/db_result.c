/* PostgreSQL access: reading what the server answered.
 *
 * The db_result accessors of db.h (a db_result wraps the PGresult of one statement, valid
 * during the callback), the error text made from a failed PGresult, and the test whether an
 * error ends the session or only the statement. Why a seam here: these only interpret a
 * PGresult; they know nothing of queues, connections or callbacks, and both the pipeline
 * (db_queue.c, db_job.c) and LISTEN (db_listen.c) read errors the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"

static const PGresult *pgr(const db_result *r) { return r && r->ok ? r->pg_ : NULL; }

const char *db_value(const db_result *r, int row, int col)
{
    const PGresult *res = pgr(r);
    if (!res || row < 0 || col < 0 || row >= PQntuples(res) || col >= PQnfields(res))
        return NULL;
    return PQgetvalue(res, row, col);
}

bool db_is_null(const db_result *r, int row, int col)
{
    const PGresult *res = pgr(r);
    if (!res || row < 0 || col < 0 || row >= PQntuples(res) || col >= PQnfields(res))
        return true;
    return PQgetisnull(res, row, col) != 0;
}

long long db_affected(const db_result *r)
{
    const PGresult *res = pgr(r);
    if (!res)
        return -1;
    const char *t = PQcmdTuples((PGresult *)res);
    if (!t || !*t)
        return -1;
    return strtoll(t, NULL, 10);
}

const char *db_column_name(const db_result *r, int col)
{
    const PGresult *res = pgr(r);
    if (!res || col < 0 || col >= PQnfields(res))
        return NULL;
    return PQfname(res, col);
}

int db_column_index(const db_result *r, const char *name)
{
    const PGresult *res = pgr(r);
    if (!res || !name)
        return -1;
    for (int i = 0; i < PQnfields(res); i++)
        if (strcmp(PQfname(res, i), name) == 0)
            return i;
    return -1;
}

/* The text of a server error: "SQLSTATE: message[; detail: ...]", scrubbed: libpq may
 * quote conninfo pieces in PQresultErrorMessage. */
char *dbi_server_error_text(const db *d, const PGresult *r, const char **sqlstate)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    char *raw = NULL;
    if (!msg) {
        raw = strdup(PQresultErrorMessage(r));
        if (raw)
            dbi_flatten(raw);
        msg = raw && *raw ? raw : "unknown error";
    }
    *sqlstate = state ? state : "XX000";
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        fprintf(f, "%s: %s", *sqlstate, msg);
        if (detail)
            fprintf(f, "; detail: %s", detail);
        fclose(f);
    }
    free(raw);
    char *clean = dbi_scrub(d, text);
    free(text);
    if (clean)
        dbi_flatten(clean);
    return clean;
}

/* An error that ends the session rather than one statement: severity FATAL/PANIC, or no
 * SQLSTATE at all (libpq's own message after a connection failure). */
bool dbi_connection_level(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!state || !*state)
        return true;
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        return true;
    return strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0;
}
