/* PostgreSQL access: LISTEN/NOTIFY on a connection of its own.
 *
 * db_listen() records a subscription and, on first use, opens one more connection (role
 * ROLE_LISTEN, not in pipeline mode, never used for queries: a LISTEN belongs to one
 * session, while a pool connection carries whatever jobs the queue puts on it). Its life
 * (connect, backoff, loss) is db_conn.c's; this file sends one LISTEN at a time for every
 * subscription the current connection still owes, reports a subscription that became
 * active with fn(channel, NULL) (notifications sent meanwhile are lost, so the caller
 * reloads), and delivers notifications by channel. After a reconnect every subscription
 * is owed again (dbi_listen_lost).
 *
 * Why a seam here: subscriptions are state of their own (the listener array, which LISTEN
 * is running) with their own callback contract, and nothing else in the module reads them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "log.h"

#define DB_CHANNEL_MAX 63

struct listener {
    char *channel;
    void (*fn)(void *user, const char *channel, const char *payload);
    void *user;
    bool active;           /* LISTEN done on the current listen connection */
    bool failed;           /* LISTEN refused by the server on the current connection */
    bool fresh;            /* just became active: owed a fn(channel, NULL) */
};

void dbi_listen_lost(db *d)
{
    for (int i = 0; i < d->nlisteners; i++)
        d->listeners[i].active = d->listeners[i].failed = d->listeners[i].fresh = false;
}

void dbi_listen_free(db *d)
{
    for (int i = 0; i < d->nlisteners; i++)
        free(d->listeners[i].channel);
    free(d->listeners);
}

void dbi_listen_next(conn *c)
{
    db *d = c->d;
    if (c->state != CS_UP || c->listen_target >= 0)
        return;
    for (int i = 0; i < d->nlisteners; i++) {
        listener *l = &d->listeners[i];
        if (l->active || l->failed)
            continue;
        char *ident = PQescapeIdentifier(c->pg, l->channel, strlen(l->channel));
        if (!ident) {
            dbi_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        size_t len = strlen(ident) + 8;
        char *sql = malloc(len);
        if (!sql) {
            PQfreemem(ident);
            dbi_conn_fail(c, "out of memory");
            return;
        }
        snprintf(sql, len, "LISTEN %s", ident);
        PQfreemem(ident);
        int ok = PQsendQuery(c->pg, sql);
        free(sql);
        if (!ok) {
            dbi_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        c->listen_target = i;
        dbi_conn_flush(c);
        return;
    }
}

void dbi_listen_results(conn *c)
{
    db *d = c->d;
    while (c->state == CS_UP && c->listen_target >= 0) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            dbi_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (PQisBusy(c->pg))
            return;
        PGresult *r = PQgetResult(c->pg);
        int t = c->listen_target;
        if (r) {
            if (PQresultStatus(r) != PGRES_COMMAND_OK && dbi_connection_level(r)) {
                char *m = strdup(PQresultErrorMessage(r));
                PQclear(r);
                dbi_conn_fail(c, m ? m : "connection failed");
                free(m);
                return;
            }
            if (PQresultStatus(r) != PGRES_COMMAND_OK && !d->listeners[t].failed) {
                const char *state;
                char *e = dbi_server_error_text(d, r, &state);
                log_message(LOG_ERROR, "database_listen_failed", "LISTEN %s: %s",
                            d->listeners[t].channel, e ? e : "");
                free(e);
                d->listeners[t].failed = true;
            }
            PQclear(r);
            continue;
        }
        /* command complete */
        c->listen_target = -1;
        if (!d->listeners[t].failed) {
            /* every listener of this channel is now subscribed */
            const char *ch = d->listeners[t].channel;
            for (int i = 0; i < d->nlisteners; i++) {
                listener *l = &d->listeners[i];
                if (!l->active && !l->failed && strcmp(l->channel, ch) == 0)
                    l->active = l->fresh = true;
            }
            for (int i = 0; i < d->nlisteners && !d->closing && c->state == CS_UP; i++) {
                listener *l = &d->listeners[i];
                if (l->fresh) {
                    l->fresh = false;
                    d->busy++;
                    l->fn(l->user, l->channel, NULL);
                    dbi_leave(d);
                }
            }
            if (d->closing)
                return;
        }
        dbi_listen_next(c);
    }
}

void dbi_listen_notifies(conn *c)
{
    db *d = c->d;
    PGnotify *n;
    while (!d->closing && c->state == CS_UP && (n = PQnotifies(c->pg)) != NULL) {
        if (c->role == ROLE_LISTEN) {
            for (int i = 0; i < d->nlisteners && !d->closing; i++) {
                listener *l = &d->listeners[i];
                if (l->active && strcmp(l->channel, n->relname) == 0) {
                    d->busy++;
                    l->fn(l->user, n->relname, n->extra ? n->extra : "");
                    dbi_leave(d);
                }
            }
        }
        PQfreemem(n);
    }
}

int db_listen(db *d, const char *channel,
              void (*fn)(void *user, const char *channel, const char *payload), void *user)
{
    if (!d || !channel || !*channel || strlen(channel) > DB_CHANNEL_MAX || !fn) {
        errno = EINVAL;
        return -1;
    }
    if (d->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    if (d->nlisteners == d->cap_listeners) {
        int cap = d->cap_listeners ? d->cap_listeners * 2 : 4;
        listener *nl = realloc(d->listeners, sizeof *nl * (size_t)cap);
        if (!nl) {
            errno = ENOMEM;
            return -1;
        }
        d->listeners = nl;
        d->cap_listeners = cap;
    }
    char *ch = strdup(channel);
    if (!ch) {
        errno = ENOMEM;
        return -1;
    }
    listener *l = &d->listeners[d->nlisteners++];
    memset(l, 0, sizeof *l);
    l->channel = ch;
    l->fn = fn;
    l->user = user;
    if (!d->lconn) {
        d->lconn = malloc(sizeof *d->lconn);
        if (!d->lconn) {
            free(ch);
            d->nlisteners--;
            errno = ENOMEM;
            return -1;
        }
        dbi_conn_init(d, d->lconn, d->npool, ROLE_LISTEN);
        d->busy++;
        dbi_conn_start(d->lconn);
        d->busy--;
    } else if (d->lconn->state == CS_UP) {
        /* sends the LISTEN now; its completion and fn run from the loop */
        if (d->lconn->listen_target < 0) {
            d->busy++;
            dbi_listen_next(d->lconn);
            d->busy--;
        }
    }
    return 0;
}
