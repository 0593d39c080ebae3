/* Held-award commands (see held.h).
 *
 * The C side only connects, sends one statement with the id as a bound parameter and reports
 * what the database function answered: whether an award can still be settled is decided
 * under the held row's lock in m2p_release_held / m2p_reject_held, never here.
 */
#include "held.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cli_output.h"
#include "db.h"
#include "db_migrate.h"
#include "log.h"

#define UTC_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const char *const SQL_LIST =
    "SELECT h.id, h.player_id, coalesce(p.username, ''), h.pool_name, h.advc_amount::text,"
    " h.ap_awarded::text, h.idempotency_key, " UTC_TIME("h.held_at") ", h.hold_reason"
    " FROM m2p_held_awards h LEFT JOIN players p ON p.id = h.player_id"
    " WHERE h.status = 'held' ORDER BY h.id";

#define SETTLE_COLUMNS                                                                      \
    "SELECT o_outcome, o_player, o_pool, o_key, o_advc::text, o_ap::text, o_event_id, "    \
    UTC_TIME("o_settled_at")
/* $2: PG_NOTIFY_CHANNEL, so a released award is NOTIFYed like any other. */
static const char *const SQL_RELEASE = SETTLE_COLUMNS " FROM m2p_release_held($1::bigint, $2)";
static const char *const SQL_REJECT = SETTLE_COLUMNS " FROM m2p_reject_held($1::bigint)";

/* The columns of SQL_RELEASE / SQL_REJECT. */
enum { S_OUTCOME, S_PLAYER, S_POOL, S_KEY, S_ADVC, S_AP, S_EVENT, S_SETTLED };

bool held_id_valid(const char *text)
{
    size_t n = strspn(text, "0123456789");
    return n > 0 && n <= 18 && text[n] == '\0';
}

/* The log goes to stderr: stdout carries the command's result. */
static void log_to_stderr(const config *cfg)
{
    log_configure((log_level)config_enum(cfg, CFG_LOG_LEVEL),
                  (log_format)config_enum(cfg, CFG_LOG_FORMAT), stderr);
}

static PGconn *open_database(const config *cfg)
{
    const char *url = config_string(cfg, CFG_DATABASE_URL);
    if (!url[0]) {
        fprintf(stderr, "m2p-engine: DATABASE_URL is not set (held awards live in the "
                        "database)\n");
        return NULL;
    }
    char err[1024];
    int applied;
    if (migrate_database(url, config_bool(cfg, CFG_AUTO_MIGRATE), &applied, err, sizeof err)) {
        fprintf(stderr, "m2p-engine: %s\n", err);
        return NULL;
    }
    PGconn *conn = db_connect_blocking(url, err, sizeof err);
    if (!conn)
        fprintf(stderr, "m2p-engine: cannot connect to the database: %s\n", err);
    return conn;
}

/* ======================================================================= Listing */

static int list_held(PGconn *conn, const char *url)
{
    PGresult *r = PQexecParams(conn, SQL_LIST, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        cli_db_error(stderr, "m2p-engine: ", url, "listing held awards", PQresultErrorMessage(r));
        PQclear(r);
        return 1;
    }
    int rows = PQntuples(r);
    if (rows == 0) {
        printf("no held awards\n");
    } else {
        printf("id\tplayer_id\tusername\tpool\tadvc\tap\tkey\theld_at\twhy\n");
        for (int i = 0; i < rows; i++) {
            for (int col = 0; col < PQnfields(r); col++) {
                cli_put_clean(stdout, PQgetvalue(r, i, col));
                putchar(col + 1 < PQnfields(r) ? '\t' : '\n');
            }
        }
    }
    PQclear(r);
    return 0;
}

/* ====================================================================== Settling */

static cJSON *settled_fields(const PGresult *r, const char *id)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "held_award_id", strtod(id, NULL));
    cJSON_AddNumberToObject(f, "player_id", strtod(PQgetvalue(r, 0, S_PLAYER), NULL));
    cJSON_AddStringToObject(f, "pool", PQgetvalue(r, 0, S_POOL));
    cJSON_AddStringToObject(f, "key", PQgetvalue(r, 0, S_KEY));
    /* NUMERIC text is a JSON number: the exact amounts, not a double's rounding of them. */
    cJSON_AddRawToObject(f, "advc", PQgetvalue(r, 0, S_ADVC));
    cJSON_AddRawToObject(f, "ap", PQgetvalue(r, 0, S_AP));
    if (!PQgetisnull(r, 0, S_EVENT))
        cJSON_AddNumberToObject(f, "mining_event_id", strtod(PQgetvalue(r, 0, S_EVENT), NULL));
    return f;
}

/* What the database function answered, for the operator and the log. */
static int report_settled(const PGresult *r, const char *id, held_action action)
{
    const char *outcome = PQgetvalue(r, 0, S_OUTCOME);
    if (strcmp(outcome, "unknown") == 0) {
        fprintf(stderr, "m2p-engine: there is no held award %s (m2p-engine --list-held lists "
                        "the pending ones)\n", id);
        return 1;
    }
    const char *event = PQgetisnull(r, 0, S_EVENT) ? NULL : PQgetvalue(r, 0, S_EVENT);
    if (strncmp(outcome, "already ", 8) == 0) {
        fprintf(stderr, "m2p-engine: held award %s was %s at %s%s%s: nothing changed\n", id,
                outcome, PQgetvalue(r, 0, S_SETTLED), event ? ", as mining event " : "",
                event ? event : "");
        return HELD_EXIT_ALREADY_SETTLED;
    }
    bool released = action == HELD_RELEASE;
    printf("held award %s %s: %s ADVC, %s AP, player %s on %s, key ", id, outcome,
           PQgetvalue(r, 0, S_ADVC), PQgetvalue(r, 0, S_AP), PQgetvalue(r, 0, S_PLAYER),
           PQgetvalue(r, 0, S_POOL));
    cli_put_clean(stdout, PQgetvalue(r, 0, S_KEY));
    printf("%s%s\n", event ? ", mining event " : "", event ? event : "");
    log_emit(released ? LOG_INFO : LOG_WARNING,
             released ? "held_award_released" : "held_award_rejected", settled_fields(r, id));
    return 0;
}

static int settle_held(PGconn *conn, const config *cfg, held_action action, const char *id)
{
    const char *url = config_string(cfg, CFG_DATABASE_URL);
    const char *params[] = {id, config_string(cfg, CFG_PG_NOTIFY_CHANNEL)};
    bool release = action == HELD_RELEASE;
    PGresult *r = PQexecParams(conn, release ? SQL_RELEASE : SQL_REJECT, release ? 2 : 1, NULL,
                               params, NULL, NULL, 0);
    int status;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        cli_db_error(stderr, "m2p-engine: ", url,
                     action == HELD_RELEASE ? "releasing the held award"
                                            : "rejecting the held award",
                     PQresultErrorMessage(r));
        status = 1; /* one statement, one transaction: nothing was changed */
    } else {
        status = report_settled(r, id, action);
    }
    PQclear(r);
    return status;
}

int held_command(const config *cfg, held_action action, const char *id)
{
    log_to_stderr(cfg);
    if (action != HELD_LIST && (!id || !held_id_valid(id))) {
        fprintf(stderr, "m2p-engine: a held award id is a positive integer, not '%s'\n",
                id ? id : "");
        return 1;
    }
    PGconn *conn = open_database(cfg);
    if (!conn)
        return 1;
    const char *url = config_string(cfg, CFG_DATABASE_URL);
    int status = action == HELD_LIST ? list_held(conn, url) : settle_held(conn, cfg, action, id);
    PQfinish(conn);
    return status;
}
