/* PostgreSQL access on libev (see db.h): the db handle.
 *
 * db_new (options with their defaults, the secrets to scrub, the pool connections started)
 * and db_free (every connection closed, every pending job cancelled), plus the guard that
 * lets a callback call db_free: the memory is released by dbi_leave when the outermost
 * frame of this module returns.
 *
 * The module is split into files, one concept each; db_internal.h lists them and holds
 * the structures they share. Why this file: creating and tearing down the whole is the one
 * place that touches every part (pool, queue, listen connection, secrets) at once; each
 * part does the rest on its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db_internal.h"
#include "log.h"

static void destroy(db *d)
{
    dbi_listen_free(d);
    free(d->pool);
    free(d->lconn);
    dbi_secrets_free(d->secrets, d->nsecrets);
    free(d->conninfo);
    free(d->last_error);
    free(d);
}

/* Every entry from the loop (watcher callbacks) and every call of a user callback is
 * bracketed by d->busy++ ... dbi_leave(d), so a db_free() from inside a callback only
 * cancels; the memory goes when the outermost frame returns. */
void dbi_leave(db *d)
{
    if (--d->busy == 0 && d->closing)
        destroy(d);
}

db *db_new(struct ev_loop *loop, const db_options *o)
{
    if (!loop || !o || !o->conninfo) {
        log_message(LOG_ERROR, "database_config_invalid", "no connection string");
        return NULL;
    }
    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(o->conninfo, &perr);
    if (!parsed) {
        char *clean = db_scrub(o->conninfo, perr ? perr : "out of memory");
        dbi_flatten(clean);
        log_message(LOG_ERROR, "database_config_invalid", "invalid connection string: %s",
                    clean ? clean : "");
        free(clean);
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(parsed);

    db *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->conninfo = strdup(o->conninfo);
    d->npool = o->connections > 0 ? o->connections : DB_DEFAULT_CONNECTIONS;
    d->reconnect_min = o->reconnect_min > 0 ? o->reconnect_min : DB_DEFAULT_RECONNECT_MIN;
    d->reconnect_max = o->reconnect_max > 0 ? o->reconnect_max : DB_DEFAULT_RECONNECT_MAX;
    if (d->reconnect_max < d->reconnect_min)
        d->reconnect_max = d->reconnect_min;
    d->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : DB_DEFAULT_CONNECT_TIMEOUT;
    d->statement_timeout = o->statement_timeout > 0 ? o->statement_timeout : 0;
    d->queue_timeout = o->queue_timeout > 0 ? o->queue_timeout : 0;
    d->result_timeout = o->result_timeout > 0 ? o->result_timeout : 0;
    d->queue_max = o->queue_max > 0 ? o->queue_max : DB_DEFAULT_QUEUE_MAX;
    d->pipeline_depth = o->pipeline_depth > 0 ? o->pipeline_depth : DB_DEFAULT_PIPELINE_DEPTH;
    snprintf(d->app_name, sizeof d->app_name, "%s",
             o->application_name && *o->application_name ? o->application_name : "m2p-engine");
    d->pool = calloc((size_t)d->npool, sizeof *d->pool);
    d->last_error = strdup("");
    if (!d->conninfo || !d->pool || !d->last_error) {
        destroy(d);
        return NULL;
    }
    dbi_secrets_load(o->conninfo, &d->secrets, &d->nsecrets);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    d->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
             (uint64_t)(uintptr_t)d;
    if (!d->rng)
        d->rng = 0x9E3779B97F4A7C15ULL;
    dbi_queue_init(d);

    d->busy++;
    for (int i = 0; i < d->npool; i++) {
        dbi_conn_init(d, &d->pool[i], i, ROLE_POOL);
        dbi_conn_start(&d->pool[i]);
    }
    d->busy--;
    return d;
}

void db_free(db *d)
{
    if (!d || d->closing)
        return;
    d->closing = true;
    d->busy++;
    ev_prepare_stop(d->loop, &d->prep);
    ev_timer_stop(d->loop, &d->qtimer);
    job *sent = NULL;
    for (int i = 0; i <= d->npool; i++) {
        conn *c = i < d->npool ? &d->pool[i] : d->lconn;
        if (!c)
            continue;
        ev_io_stop(d->loop, &c->io);
        ev_timer_stop(d->loop, &c->timer);
        if (c->pg) {
            PQfinish(c->pg);
            c->pg = NULL;
        }
        free(c->doomed);
        c->doomed = NULL;
        c->state = CS_DOWN;
        if (c->head) {
            c->tail->next = sent;
            sent = c->head;
        }
        c->head = c->tail = NULL;
        c->inflight = 0;
    }
    d->inflight = 0;
    job *queued = d->qhead;
    d->qhead = d->qtail = NULL;
    d->queued = 0;
    dbi_fail_jobs(d, sent, "cancelled", "57014", 1);
    dbi_fail_jobs(d, queued, "cancelled", "57014", 0);
    dbi_leave(d);
}
