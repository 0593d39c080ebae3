/* --explain PLAYER_ID (see explain.h). */
#include "explain.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "admin/explain_responder.h"
#include "cli_output.h"
#include "db.h"
#include "player_report.h"

static bool exec_ok(PGconn *conn, const char *url, const char *sql, int n, const char *const *p)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        cli_db_error(stderr, "m2p-engine: ", url, "the database refused a statement",
                     PQerrorMessage(conn));
    PQclear(r);
    return ok;
}

static cJSON *read_report(PGconn *conn, const char *url, const char *id)
{
    const char *params[] = {id};
    PGresult *r = PQexecParams(conn, player_report_sql, 1, NULL, params, NULL, NULL, 0);
    cJSON *report = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        report = cJSON_Parse(PQgetvalue(r, 0, 0));
    else
        cli_db_error(stderr, "m2p-engine: ", url, "cannot read the player report",
                     PQerrorMessage(conn));
    PQclear(r);
    return report;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Takes the notifications that arrived: account entries into `live`, done markers counted. */
static int drain(PGconn *conn, const char *channel, cJSON *live)
{
    int done = 0;
    PGnotify *n;
    while ((n = PQnotifies(conn))) {
        cJSON *o = strcmp(n->relname, channel) == 0 ? cJSON_Parse(n->extra) : NULL;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "done")))
            done++;
        else if (cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, "pool")) {
            cJSON_AddItemToArray(live, o);
            o = NULL;
        }
        cJSON_Delete(o);
        PQfreemem(n);
    }
    return done;
}

/* A reply channel nobody can guess (a guessed one could be answered by anyone who can
 * NOTIFY): 64 random bits; the pid and the clock if /dev/urandom cannot be read. */
static void reply_channel(char *buf, size_t len)
{
    uint64_t r = ((uint64_t)getpid() << 32) ^ (uint64_t)(now_seconds() * 1e9);
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        uint64_t x;
        if (fread(&x, sizeof x, 1, f) == 1)
            r = x;
        fclose(f);
    }
    snprintf(buf, len, EXPLAIN_REPLY_PREFIX "%016llx", (unsigned long long)r);
}

/* Asks every engine; returns their entries and how many engines answered. */
static cJSON *ask_engines(PGconn *conn, const char *url, const char *id, int engines,
                          int *answered)
{
    char channel[64], request[96];
    reply_channel(channel, sizeof channel);
    snprintf(request, sizeof request, "%s %s", channel, id);
    cJSON *live = cJSON_CreateArray();
    *answered = 0;
    char listen[96];
    snprintf(listen, sizeof listen, "LISTEN %s", channel); /* [a-z0-9_] only: safe as is */
    const char *params[] = {EXPLAIN_CHANNEL, request};
    if (!exec_ok(conn, url, listen, 0, NULL) ||
        !exec_ok(conn, url, "SELECT pg_notify($1, $2)", 2, params))
        return live;
    double deadline = now_seconds() + EXPLAIN_WAIT;
    while (*answered < engines) {
        double left = deadline - now_seconds();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 || !PQconsumeInput(conn))
            break;
        *answered += drain(conn, channel, live);
    }
    return live;
}

/* ================================================================= Text output */

static const char *str(const cJSON *o, const char *name)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
    return s ? s : NULL;
}

static void line(const char *label, const char *value)
{
    if (!value)
        return;
    printf("  %-16s ", label);
    cli_put_clean(stdout, value);
    putchar('\n');
}

/* Amounts are NUMERIC(30,8): 8 decimals, trailing zeros dropped. */
static const char *amount(const cJSON *n, char *buf, size_t len)
{
    snprintf(buf, len, "%.8f", cJSON_GetNumberValue(n));
    char *end = buf + strlen(buf);
    while (end > buf && end[-1] == '0')
        *--end = '\0';
    if (end > buf && end[-1] == '.')
        end[-1] = '\0';
    return buf;
}

static void print_amount_line(const char *label, const cJSON *n)
{
    char buf[64];
    if (cJSON_IsNumber(n))
        line(label, amount(n, buf, sizeof buf));
}

static void print_player(const cJSON *report)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(report, "player");
    if (!cJSON_IsObject(p)) {
        printf("No players row with this id (accounts below are what the engines know).\n");
        return;
    }
    printf("Player %d (", (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "id")));
    cli_put_clean(stdout, str(p, "username"));
    printf("): %s, %s\n",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "active")) ? "active" : "NOT active",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "verified"))
               ? "verified"
               : "NOT verified (the engine polls only verified, active players)");
    print_amount_line("total AP", cJSON_GetObjectItemCaseSensitive(p, "total_ap"));
    print_amount_line("ADVC mined", cJSON_GetObjectItemCaseSensitive(p, "total_advc_mined"));
    line("last award", str(p, "last_mining_event"));
}

static void print_live(const cJSON *l)
{
    line("polled by", str(l, "engine"));
    if (str(l, "not_polled")) {
        line("not polled", str(l, "not_polled"));
        return;
    }
    char buf[160];
    if (str(l, "last_poll_at"))
        snprintf(buf, sizeof buf, "%s: %s", str(l, "last_poll_at"),
                 str(l, "last_outcome") ? str(l, "last_outcome") : "?");
    line("last poll", str(l, "last_poll_at") ? buf : "never");
    line("last error", str(l, "last_error") ? str(l, "last_error") : "none");
    line("last error at", str(l, "last_error_at"));
    if (str(l, "next_poll_at")) {
        snprintf(buf, sizeof buf, "%s (in %.0f s)", str(l, "next_poll_at"),
                 cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(l, "next_poll_in_seconds")));
        line("next poll", buf);
    }
    line("why then", str(l, "next_poll_why"));
    line("baseline", str(l, "baseline"));
    line("next award when", str(l, "next_award"));
    line("rules error", str(l, "rules_error"));
}

static void print_account(const cJSON *a, bool engines_answered)
{
    printf("\n");
    cli_put_clean(stdout, str(a, "pool"));
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(a, "live");
    const char *wallet = str(a, "wallet") ? str(a, "wallet") : str(l, "wallet");
    printf("  wallet ");
    cli_put_clean(stdout, wallet ? wallet : "(none)");
    printf("\n");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(a, "version");
    if (cJSON_IsNumber(version)) {
        char buf[160];
        snprintf(buf, sizeof buf, "version %.0f, last successful poll %s",
                 version->valuedouble, str(a, "last_success") ? str(a, "last_success") : "?");
        line("stored state", buf);
        char *obs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(a, "observation"));
        line("last observation", obs);
        free(obs);
    } else {
        line("stored state", "none: never observed (its first successful poll is a baseline)");
    }
    if (cJSON_IsObject(l)) {
        print_live(l);
        if (str(l, "baseline"))
            return;
    } else {
        line("live", engines_answered ? "no running engine has this account"
                                      : "unknown: no running engine answered");
    }
    /* No word from the rules (no engine, or the state is not read yet): the raw state. */
    char *acc = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(a, "accounted"));
    line("bookkeeping", acc);
    free(acc);
}

static void print_awards(const cJSON *report)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(report, "recent_awards");
    printf("\nRecent awards (newest first, at most %d):%s\n", PLAYER_REPORT_AWARDS,
           cJSON_GetArraySize(list) ? "" : " none");
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        printf("  #%.0f %s ", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "event_id")),
               str(e, "time") ? str(e, "time") : "?");
        cli_put_clean(stdout, str(e, "pool"));
        char advc[64], ap[64];
        printf(" %s ADVC = %s AP (",
               amount(cJSON_GetObjectItemCaseSensitive(e, "advc"), advc, sizeof advc),
               amount(cJSON_GetObjectItemCaseSensitive(e, "ap"), ap, sizeof ap));
        cli_put_clean(stdout, str(e, "reason"));
        printf(")\n");
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(e, "notifications")) {
            printf("      -> ");
            cli_put_clean(stdout, str(d, "sink"));
            printf(": %s after %.0f attempt(s)", str(d, "state") ? str(d, "state") : "?",
                   cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "attempts")));
            if (str(d, "last_error")) {
                printf(", last error: ");
                cli_put_clean(stdout, str(d, "last_error"));
            }
            printf("\n");
        }
    }
    const cJSON *held = cJSON_GetObjectItemCaseSensitive(report, "held_awards");
    printf("Held awards waiting for review:%s\n", cJSON_GetArraySize(held) ? "" : " none");
    cJSON_ArrayForEach(e, held) {
        printf("  held #%.0f ", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "id")));
        cli_put_clean(stdout, str(e, "pool"));
        char advc[64];
        printf(" %s ADVC: ",
               amount(cJSON_GetObjectItemCaseSensitive(e, "advc"), advc, sizeof advc));
        cli_put_clean(stdout, str(e, "hold_reason"));
        printf(" (--release-held / --reject-held)\n");
    }
}

static void print_report(const cJSON *report, int engines, int answered)
{
    print_player(report);
    printf("Engines running: %d, answered: %d%s\n", engines, answered,
           engines == 0 ? " (no engine heartbeat in the last 2 minutes: nothing polls now)" : "");
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(report, "accounts"))
        print_account(a, answered > 0);
    print_awards(report);
}

/* ====================================================================== Command */

int explain_command(const config *cfg, const char *player_id, bool json)
{
    const char *url = config_string(cfg, CFG_DATABASE_URL);
    size_t digits = strspn(player_id, "0123456789");
    if (digits == 0 || digits > 10 || player_id[digits] || strtoll(player_id, NULL, 10) <= 0 ||
        strtoll(player_id, NULL, 10) > 2147483647) {
        fprintf(stderr, "m2p-engine: --explain needs a player id (a positive integer), not '");
        for (const char *c = player_id; *c && c - player_id < 40; c++)
            fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, stderr);
        fprintf(stderr, "'\n");
        return 1;
    }
    if (!url[0]) {
        fprintf(stderr, "m2p-engine: DATABASE_URL is not set (--explain reads the database)\n");
        return 1;
    }
    char err[1024];
    PGconn *conn = db_connect_blocking(url, err, sizeof err);
    if (!conn) {
        fprintf(stderr, "m2p-engine: cannot connect to the database: %s\n", err);
        return 1;
    }
    cJSON *report = read_report(conn, url, player_id);
    if (!report) {
        PQfinish(conn);
        return 1;
    }
    int engines = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(report, "engines"));
    int answered = 0;
    cJSON *live = engines > 0 ? ask_engines(conn, url, player_id, engines, &answered)
                              : cJSON_CreateArray();
    PQfinish(conn);
    player_report_merge(report, live);
    cJSON_AddNumberToObject(report, "engines_answered", answered);
    bool known = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(report, "player")) ||
                 cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(report, "accounts")) > 0;
    if (json) {
        char *text = cJSON_Print(report);
        printf("%s\n", text ? text : "{}");
        free(text);
    } else if (known) {
        print_report(report, engines, answered);
    }
    cJSON_Delete(report);
    if (!known)
        fprintf(stderr, "m2p-engine: no player with id %s\n", player_id);
    return known ? 0 : 2;
}
