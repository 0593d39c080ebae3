/* PostgreSQL access: the queue and the pipeline.
 *
 * Jobs wait in one bounded FIFO (db_query/db_transaction only append and schedule a
 * dispatch from an ev_prepare watcher, so nothing is sent and no callback runs from inside
 * those calls). The dispatch hands each job to the least-loaded pool connection that is up
 * and has room (pipeline_depth jobs in flight), sends its statements and its Sync, and keeps
 * it in that connection's FIFO of sent jobs until the verdict has been read. The queue
 * timer fails jobs that waited longer than queue_timeout.
 *
 * Result stream of one job in pipeline mode: for each statement one PGresult (or
 * PGRES_PIPELINE_ABORTED after an earlier error) followed by NULL, then one
 * PGRES_PIPELINE_SYNC (no NULL after it). The job's verdict is known only at the Sync (the
 * implicit transaction commits there), so callbacks run then.
 *
 * Why a seam here: this is the only code that knows the order of jobs on the wire; the
 * connection (db_conn.c) only reports when it is up, readable or gone, and a job
 * (db_job.c) only learns its verdict.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "log.h"

#define DB_MAX_TX_STATEMENTS 1000

/* ===================================================================================== */
/* Waiting jobs and jobs in flight                                                       */
/* ===================================================================================== */

static void q_push(db *d, job *j)
{
    j->next = NULL;
    if (d->qtail)
        d->qtail->next = j;
    else
        d->qhead = j;
    d->qtail = j;
    d->queued++;
}

static void q_push_front(db *d, job *j)
{
    j->next = d->qhead;
    d->qhead = j;
    if (!d->qtail)
        d->qtail = j;
    d->queued++;
}

static job *q_pop(db *d)
{
    job *j = d->qhead;
    if (j) {
        d->qhead = j->next;
        if (!d->qhead)
            d->qtail = NULL;
        j->next = NULL;
        d->queued--;
    }
    return j;
}

/* The result timeout runs on the connection's own timer (idle while UP otherwise). Armed
 * lazily: started when a job goes out on an idle timer, it checks at expiry whether a verdict
 * came meanwhile and waits for the rest of the period then, so a busy connection costs one
 * timer event per period, not a timer update per job. */
static void rtimer_start(conn *c)
{
    db *d = c->d;
    if (d->result_timeout <= 0 || c->role != ROLE_POOL || ev_is_active(&c->timer))
        return;
    ev_timer_set(&c->timer, d->result_timeout, 0);
    ev_timer_start(d->loop, &c->timer);
}

static void inflight_push(conn *c, job *j)
{
    if (!c->head)
        c->progress_at = ev_now(c->d->loop); /* the wait starts with the first job out */
    rtimer_start(c);
    j->next = NULL;
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    c->inflight++;
    c->d->inflight++;
}

static job *inflight_pop(conn *c)
{
    job *j = c->head;
    if (j) {
        c->head = j->next;
        if (!c->head)
            c->tail = NULL;
        j->next = NULL;
        c->inflight--;
        c->d->inflight--;
        c->progress_at = ev_now(c->d->loop);
    }
    return j;
}

void dbi_result_timer(conn *c)
{
    db *d = c->d;
    if (!c->head)
        return; /* nothing waits: the next job out starts the timer again */
    double wait = c->progress_at + d->result_timeout - ev_now(d->loop);
    if (wait <= 0) {
        /* When the loop itself was held up, a verdict may be waiting unread: read first. */
        if (!PQconsumeInput(c->pg)) {
            dbi_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        dbi_process_results(c);
        if (d->closing || c->state != CS_UP || !c->head)
            return;
        wait = c->progress_at + d->result_timeout - ev_now(d->loop);
    }
    if (wait > 0) {
        ev_timer_set(&c->timer, wait, 0);
        ev_timer_start(d->loop, &c->timer);
        return;
    }
    log_message(LOG_WARNING, "database_result_timeout",
                "connection %d: no result for %g s with %d job(s) in flight (the server hangs?);"
                " reconnecting", c->index, d->result_timeout, c->inflight);
    char msg[96];
    snprintf(msg, sizeof msg, "no result within %g s", d->result_timeout);
    dbi_conn_fail(c, msg);
}

/* ===================================================================================== */
/* Submission and the queue timer                                                        */
/* ===================================================================================== */

static void qtimer_arm(db *d)
{
    ev_timer_stop(d->loop, &d->qtimer);
    if (d->closing || d->queue_timeout <= 0 || !d->qhead)
        return;
    double wait = d->qhead->queued_at + d->queue_timeout - ev_now(d->loop);
    ev_timer_set(&d->qtimer, wait > 0 ? wait : 0, 0);
    ev_timer_start(d->loop, &d->qtimer);
}

void dbi_kick(db *d)
{
    if (!d->closing && d->qhead && !ev_is_active(&d->prep))
        ev_prepare_start(d->loop, &d->prep);
}

static void qtimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    db *d = w->data;
    d->busy++;
    ev_tstamp now = ev_now(d->loop);
    while (!d->closing && d->qhead && d->qhead->queued_at + d->queue_timeout <= now) {
        job *j = q_pop(d);
        char msg[96];
        snprintf(msg, sizeof msg, "not sent within %g s: no database connection available",
                 d->queue_timeout);
        dbi_complete_job(d, j, msg, "08001", 0);
    }
    qtimer_arm(d);
    dbi_leave(d);
}

static int submit(db *d, job *j)
{
    if (d->queued >= (size_t)d->queue_max) {
        dbi_job_free(j);
        errno = EAGAIN;
        return -1;
    }
    j->queued_at = ev_now(d->loop);
    q_push(d, j);
    dbi_kick(d);
    if (d->queue_timeout > 0 && !ev_is_active(&d->qtimer))
        qtimer_arm(d);
    return 0;
}

int db_query(db *d, const char *sql, int nparams, const char *const *params, db_done_fn done,
             void *user)
{
    if (!d || !done) {
        errno = EINVAL;
        return -1;
    }
    if (d->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    db_stmt s = {sql, nparams, params};
    if (!dbi_stmt_valid(&s)) {
        errno = EINVAL;
        return -1;
    }
    job *j = dbi_job_new(&s, 1);
    if (!j) {
        errno = ENOMEM;
        return -1;
    }
    j->done = done;
    j->user = user;
    return submit(d, j);
}

int db_transaction(db *d, const db_stmt *stmts, int n, db_tx_done_fn done, void *user)
{
    if (!d || !done || !stmts || n < 1 || n > DB_MAX_TX_STATEMENTS) {
        errno = EINVAL;
        return -1;
    }
    if (d->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!dbi_stmt_valid(&stmts[i])) {
            errno = EINVAL;
            return -1;
        }
    job *j = dbi_job_new(stmts, n);
    if (!j) {
        errno = ENOMEM;
        return -1;
    }
    j->tx_done = done;
    j->user = user;
    return submit(d, j);
}

/* ===================================================================================== */
/* Dispatch: sending jobs on the pipeline                                                */
/* ===================================================================================== */

/* The up pool connection with room and the fewest jobs in flight (round-robin on ties). */
static conn *pick(db *d)
{
    conn *best = NULL;
    for (int k = 0; k < d->npool; k++) {
        conn *c = &d->pool[(d->rr + (unsigned)k) % (unsigned)d->npool];
        if (c->state != CS_UP || c->doomed || c->inflight >= d->pipeline_depth)
            continue;
        if (!best || c->inflight < best->inflight)
            best = c;
    }
    if (best)
        d->rr++;
    return best;
}

int dbi_send_job(conn *c, job *j)
{
    db *d = c->d;
    for (int i = 0; i < j->n; i++) {
        const jstmt *t = &j->st[i];
        if (!PQsendQueryParams(c->pg, t->sql, t->nparams, NULL, t->params, NULL, NULL, 0)) {
            char *why = dbi_scrub(d, PQerrorMessage(c->pg));
            dbi_flatten(why);
            if (i == 0 && PQstatus(c->pg) == CONNECTION_OK) {
                /* refused by libpq before anything went out: only this job fails */
                dbi_complete_job(d, j, why ? why : "could not send the query", "08000", 0);
                free(why);
                return d->closing ? -1 : 0;
            }
            /* nothing of j can commit without its Sync: send it again elsewhere */
            q_push_front(d, j);
            dbi_conn_fail(c, why ? why : "could not send the query");
            free(why);
            return -1;
        }
    }
    if (!PQpipelineSync(c->pg)) {
        /* the Sync may have gone out: the verdict is unknown */
        inflight_push(c, j);
        dbi_conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    inflight_push(c, j);
    return dbi_conn_flush(c);
}

static void dispatch(db *d)
{
    while (!d->closing && d->qhead) {
        conn *c = pick(d);
        if (!c)
            break;
        job *j = q_pop(d);
        if (dbi_send_job(c, j) == 0 && !d->closing && c->state == CS_UP)
            dbi_process_results(c); /* a flush may have read input */
    }
    if (!d->closing)
        qtimer_arm(d);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    db *d = w->data;
    ev_prepare_stop(loop, w);
    d->busy++;
    dispatch(d);
    dbi_leave(d);
}

void dbi_queue_init(db *d)
{
    ev_timer_init(&d->qtimer, qtimer_cb, 0, 0);
    d->qtimer.data = d;
    ev_prepare_init(&d->prep, prepare_cb);
    d->prep.data = d;
}

/* ===================================================================================== */
/* Results of sent jobs                                                                  */
/* ===================================================================================== */

void dbi_process_results(conn *c)
{
    db *d = c->d;
    while (c->state == CS_UP && c->head) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            dbi_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (PQisBusy(c->pg))
            break;
        PGresult *r = PQgetResult(c->pg);
        job *j = c->head;
        if (!r) {
            if (j->cur < j->n) {
                j->cur++;
                continue;
            }
            /* After an error raised by the Sync itself (at commit), libpq 15 has already
             * moved its queue past that Sync and would pin the following results on the
             * wrong queries. The job has its verdict (the error); the rest get none. */
            dbi_conn_fail(c, "protocol out of step with the server (error at commit)");
            return;
        }
        switch (PQresultStatus(r)) {
        case PGRES_PIPELINE_SYNC:
            PQclear(r);
            inflight_pop(c);
            dbi_complete_job(d, j, NULL, NULL, 0);
            if (d->closing)
                return;
            dbi_kick(d);
            break;
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
        case PGRES_EMPTY_QUERY:
        case PGRES_SINGLE_TUPLE:
            if (j->cur < j->n && !j->st[j->cur].res)
                j->st[j->cur].res = r;
            else
                PQclear(r);
            break;
        case PGRES_PIPELINE_ABORTED:
            PQclear(r);
            break;
        case PGRES_COPY_IN:
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:
            PQclear(r);
            dbi_conn_fail(c, "unexpected COPY from the server");
            return;
        default: /* FATAL_ERROR, BAD_RESPONSE, NONFATAL_ERROR */
            if (dbi_connection_level(r)) {
                /* the session is ending (FATAL, or an error made up by libpq after a
                 * failure): whatever was in flight has no verdict */
                char *m = strdup(PQresultErrorMessage(r));
                PQclear(r);
                dbi_conn_fail(c, m ? m : "connection failed");
                free(m);
                return;
            }
            if (j->failed < 0) {
                j->failed = j->cur < j->n ? j->cur : j->n - 1;
                j->err = r;
            } else {
                PQclear(r);
            }
            break;
        }
    }
    if (c->state == CS_UP && !c->head) {
        PGTransactionStatusType ts = PQtransactionStatus(c->pg);
        if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
            log_message(LOG_ERROR, "database_transaction_left_open",
                        "connection %d: a statement left a transaction open; reconnecting",
                        c->index);
            dbi_conn_fail(c, "a statement left a transaction open");
        }
    }
}

size_t db_queued(const db *d) { return d ? d->queued : 0; }

size_t db_in_flight(const db *d) { return d ? d->inflight : 0; }
