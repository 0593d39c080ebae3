/* GET /accounts (see accounts.h).
 *
 * A pending request is owned by two parties at once: the list (until its answer is taken, the
 * request ends, or the endpoint stops) and the report query (until its callback ran). It is
 * freed when both have let go; whichever of the answer and the deadline comes first answers. */
#include "accounts.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "player_report.h"

typedef struct pending {
    struct pending *next;
    accounts_requests *q; /* NULL once the endpoint is gone */
    struct MHD_Connection *c;
    ev_timer deadline;
    cJSON *live;
    char *body;
    unsigned status;
    bool done;      /* answered (the report, or the deadline): the connection was resumed */
    bool in_list;   /* the list still holds it */
    bool query_out; /* the report query's callback is still to come */
} pending;

struct accounts_requests {
    struct ev_loop *loop;
    pending *head;
    void (*wake)(void *);
    void *wake_user;
};

accounts_requests *accounts_requests_new(struct ev_loop *loop, void (*wake)(void *),
                                         void *wake_user)
{
    accounts_requests *q = calloc(1, sizeof *q);
    if (q) {
        q->loop = loop;
        q->wake = wake;
        q->wake_user = wake_user;
    }
    return q;
}

static void release(pending *p)
{
    if (p->in_list || p->query_out)
        return;
    cJSON_Delete(p->live);
    free(p->body);
    free(p);
}

static void unlink_pending(accounts_requests *q, pending *p)
{
    for (pending **at = &q->head; *at; at = &(*at)->next)
        if (*at == p) {
            *at = p->next;
            break;
        }
    p->in_list = false;
    ev_timer_stop(q->loop, &p->deadline);
}

/* The connection gets `body` (taken) when MHD calls the handler again. */
static void answer(pending *p, unsigned status, char *body)
{
    p->status = status;
    p->body = body;
    p->done = true;
    ev_timer_stop(p->q->loop, &p->deadline);
    MHD_resume_connection(p->c);
    if (p->q->wake)
        p->q->wake(p->q->wake_user);
}

static char *error_body(const char *why, const char *sqlstate)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "error", why);
    if (sqlstate && sqlstate[0])
        cJSON_AddStringToObject(e, "sqlstate", sqlstate);
    char *body = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    return body;
}

void accounts_requests_free(accounts_requests *q)
{
    if (!q)
        return;
    while (q->head) {
        pending *p = q->head;
        if (!p->done)
            MHD_resume_connection(p->c); /* MHD must not stop with a suspended connection */
        unlink_pending(q, p);
        p->q = NULL;
        release(p);
    }
    free(q);
}

bool accounts_player_arg(const char *text, int64_t *id, char *err, size_t errlen)
{
    size_t n = text ? strspn(text, "0123456789") : 0;
    long long v = n > 0 && n <= 10 && text[n] == '\0' ? strtoll(text, NULL, 10) : 0;
    if (v <= 0 || v > 2147483647) {
        snprintf(err, errlen, "player=ID is required: a player id, a positive integer");
        return false;
    }
    *id = v;
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
    p->query_out = false;
    if (!p->q || p->done) { /* the endpoint stopped, or the deadline answered already */
        release(p);
        return;
    }
    cJSON *report = r->ok && r->rows == 1 ? cJSON_Parse(db_value(r, 0, 0)) : NULL;
    if (!report) {
        answer(p, 503, error_body("the database did not answer the report", r->sqlstate));
        return;
    }
    player_report_merge(report, p->live);
    p->live = NULL;
    unsigned status;
    char *body = print_report(report, &status);
    answer(p, status, body);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pending *p = w->data;
    if (!p->done)
        answer(p, 503, error_body("the database did not answer within 10 s", NULL));
}

int accounts_start(accounts_requests *q, struct MHD_Connection *c, db *d, int64_t player,
                   cJSON *live)
{
    size_t waiting = 0;
    for (pending *w = q->head; w; w = w->next)
        waiting += !w->done;
    if (waiting >= ACCOUNTS_MAX_WAITING) {
        cJSON_Delete(live);
        return ACCOUNTS_BUSY;
    }
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
        release(p);
        return -1;
    }
    p->query_out = p->in_list = true;
    p->next = q->head;
    q->head = p;
    ev_timer_init(&p->deadline, on_deadline, ACCOUNTS_DEADLINE, 0);
    p->deadline.data = p;
    ev_timer_start(q->loop, &p->deadline);
    MHD_suspend_connection(c);
    return 0;
}

bool accounts_take(accounts_requests *q, struct MHD_Connection *c, char **body,
                   unsigned *status)
{
    for (pending *p = q->head; p; p = p->next) {
        if (p->c != c || !p->done)
            continue;
        unlink_pending(q, p);
        *status = p->status;
        *body = p->body;
        p->body = NULL;
        release(p);
        return true;
    }
    return false;
}

void accounts_forget(accounts_requests *q, struct MHD_Connection *c)
{
    for (pending *p = q->head; p; p = p->next)
        if (p->c == c && p->done) { /* one still waiting is suspended: it cannot end now */
            unlink_pending(q, p);
            release(p);
            return;
        }
}
