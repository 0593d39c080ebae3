/* GET /accounts (see accounts.h). */
#include "accounts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "player_report.h"

typedef struct pending {
    struct pending *next;
    accounts_requests *q; /* NULL once the admin endpoint is gone: the query's answer is dropped */
    struct MHD_Connection *c;
    cJSON *live;
    char *body;
    unsigned status;
    bool done;
} pending;

struct accounts_requests {
    pending *head;
    void (*wake)(void *);
    void *wake_user;
};

accounts_requests *accounts_requests_new(void (*wake)(void *), void *wake_user)
{
    accounts_requests *q = calloc(1, sizeof *q);
    if (q) {
        q->wake = wake;
        q->wake_user = wake_user;
    }
    return q;
}

static void unlink_pending(accounts_requests *q, pending *p)
{
    for (pending **at = &q->head; *at; at = &(*at)->next)
        if (*at == p) {
            *at = p->next;
            return;
        }
}

static void pending_free(pending *p)
{
    cJSON_Delete(p->live);
    free(p->body);
    free(p);
}

void accounts_requests_free(accounts_requests *q)
{
    if (!q)
        return;
    for (pending *p = q->head, *next; p; p = next) {
        next = p->next;
        if (!p->done)
            MHD_resume_connection(p->c);
        p->q = NULL; /* the query still owes its callback: it frees p */
        if (p->done)
            pending_free(p);
    }
    free(q);
}

bool accounts_player_arg(const char *text, int64_t *id, char *err, size_t errlen)
{
    size_t n = text ? strspn(text, "0123456789") : 0;
    if (n == 0 || n > 10 || text[n] != '\0' || strtoll(text, NULL, 10) > 2147483647 ||
        strtoll(text, NULL, 10) <= 0) {
        snprintf(err, errlen, "player=ID is required: a player id, a positive integer");
        return false;
    }
    *id = strtoll(text, NULL, 10);
    return true;
}

static char *print_report(cJSON *report, unsigned *status)
{
    cJSON *player = cJSON_GetObjectItemCaseSensitive(report, "player");
    cJSON *accounts = cJSON_GetObjectItemCaseSensitive(report, "accounts");
    *status = cJSON_IsObject(player) || cJSON_GetArraySize(accounts) > 0 ? 200 : 404;
    if (*status == 404)
        cJSON_AddStringToObject(report, "error", "no such player");
    char *body = cJSON_PrintUnformatted(report);
    cJSON_Delete(report);
    return body;
}

char *accounts_without_db(int64_t player, cJSON *live, unsigned *status)
{
    cJSON *report = cJSON_CreateObject();
    cJSON_AddNullToObject(report, "player");
    cJSON_AddNumberToObject(report, "player_id", (double)player);
    cJSON_AddArrayToObject(report, "accounts");
    cJSON_AddStringToObject(report, "database", "none (--accounts): no stored state or awards");
    player_report_merge(report, live);
    return print_report(report, status);
}

static void on_report(void *user, const db_result *r)
{
    pending *p = user;
    if (!p->q) { /* the endpoint stopped meanwhile */
        pending_free(p);
        return;
    }
    cJSON *report = r->ok && r->rows == 1 ? cJSON_Parse(db_value(r, 0, 0)) : NULL;
    if (report) {
        player_report_merge(report, p->live);
        p->body = print_report(report, &p->status);
    } else {
        cJSON_Delete(p->live);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", "the database did not answer the report");
        if (!r->ok && r->sqlstate && r->sqlstate[0])
            cJSON_AddStringToObject(e, "sqlstate", r->sqlstate);
        p->body = cJSON_PrintUnformatted(e);
        cJSON_Delete(e);
        p->status = 503;
    }
    p->live = NULL;
    p->done = true;
    MHD_resume_connection(p->c);
    if (p->q->wake)
        p->q->wake(p->q->wake_user);
}

int accounts_start(accounts_requests *q, struct MHD_Connection *c, db *d, int64_t player,
                   cJSON *live)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        cJSON_Delete(live);
        return -1;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)player);
    const char *params[] = {id};
    p->q = q;
    p->c = c;
    p->live = live;
    if (db_query(d, player_report_sql, 1, params, on_report, p) != 0) {
        pending_free(p);
        return -1;
    }
    p->next = q->head;
    q->head = p;
    MHD_suspend_connection(c);
    return 0;
}

bool accounts_take(accounts_requests *q, struct MHD_Connection *c, char **body,
                   unsigned *status)
{
    for (pending *p = q->head; p; p = p->next) {
        if (p->c != c)
            continue;
        unlink_pending(q, p);
        *status = p->done ? p->status : 503;
        *body = p->done ? p->body : strdup("{\"error\":\"the engine is stopping\"}");
        p->body = NULL;
        if (p->done)
            pending_free(p);
        else
            p->q = NULL; /* resumed by accounts_requests_free: the query's callback frees it */
        return true;
    }
    return false;
}
