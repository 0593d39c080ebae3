/* PostgreSQL access, inside view: the structures and functions that the parts of the db
 * module (db.h) share. Not a public header: only the files below include it; the rest of
 * the engine (db_store.c, db_migrate.c, ...) uses db.h.
 *
 * The module is split along the seams of what it does, one concept a file:
 *   db.c         the db handle: db_new, db_free, the re-entrancy guard (busy/closing)
 *   db_conn.c    one connection's life: connect, reconnect with backoff, health, notices
 *   db_queue.c   the queue and the pipeline: jobs waiting, sent, their results read
 *   db_job.c     one job: statement checks, the copy of the caller's statements, the verdict
 *   db_listen.c  the LISTEN connection and db_listen
 *   db_result.c  reading a PGresult: the db_result accessors, error texts and kinds
 *   db_scrub.c   secrets: the conninfo's password kept out of every text that leaves
 * The functions declared here are the only calls from one part into another; each part
 * keeps everything else static. They carry the prefix dbi_ ("db internal") so a call that
 * crosses a file is visible as such and cannot collide with another module's names.
 *
 * Structure
 *   db    the queue of jobs not yet sent, the pool, the optional listen connection.
 *   conn  one PGconn: DOWN (reconnect timer running) -> CONNECTING (PQconnectPoll driven by
 *         ev_io on whatever socket libpq currently uses; connect-timeout timer) -> UP.
 *         A pool conn in UP is in pipeline mode and holds the FIFO of jobs it has sent.
 *   job   1..n statements + one Sync = one implicit transaction, one callback.
 *
 * Re-entrancy: callbacks may call db_query/db_transaction/db_listen (they only queue; the
 * queue is dispatched from an ev_prepare watcher, so nothing is sent and no callback runs
 * from inside those calls) and db_free. `busy` counts frames of this module on the stack;
 * db_free inside a callback cancels everything at once but the memory is released when the
 * outermost frame returns (dbi_leave), and every frame checks `closing` after running a
 * callback.
 */
#ifndef M2P_DB_INTERNAL_H
#define M2P_DB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <libpq-fe.h>

#include "db.h"

enum conn_state { CS_DOWN, CS_CONNECTING, CS_UP };
enum conn_role { ROLE_POOL, ROLE_LISTEN };

typedef struct jstmt {
    const char *sql;
    const char *const *params;
    int nparams;
    PGresult *res; /* owned */
} jstmt;

typedef struct job job;
struct job {
    job *next;
    db_done_fn done;       /* exactly one of done / tx_done */
    db_tx_done_fn tx_done;
    void *user;
    int n;                 /* statements */
    int cur;               /* statement whose results are arriving */
    int failed;            /* statement that failed (-1: none) */
    PGresult *err;         /* its error result (owned) */
    ev_tstamp queued_at;
    jstmt *st;             /* n entries, in the same allocation */
};

typedef struct conn {
    db *d;
    int index;
    int role;
    int state;
    PGconn *pg;
    ev_io io;
    ev_timer timer;        /* reconnect delay (DOWN), connect timeout (CONNECTING) or result
                              timeout (UP, db_queue.c) */
    ev_tstamp progress_at; /* UP: last verdict read, or when the first job in flight was sent */
    job *head, *tail;      /* sent, verdict pending */
    int inflight;
    int failures;          /* consecutive failed attempts */
    bool flushing;         /* libpq holds unsent output */
    char *doomed;          /* FATAL message received while idle: the session is ending */
    int listen_target;     /* listener whose LISTEN is running, -1: none */
} conn;

/* One db_listen() subscription; its fields are db_listen.c's business. */
typedef struct listener listener;

struct db {
    struct ev_loop *loop;
    char *conninfo;
    char **secrets;        /* password strings to scrub, longest first */
    int nsecrets;
    char app_name[64];
    int npool;
    double reconnect_min, reconnect_max, connect_timeout, statement_timeout, queue_timeout;
    double result_timeout;
    int queue_max, pipeline_depth;

    conn *pool;
    conn *lconn;           /* listen connection, NULL until db_listen */
    listener *listeners;
    int nlisteners, cap_listeners;

    job *qhead, *qtail;
    size_t queued, inflight;
    ev_timer qtimer;
    ev_prepare prep;

    int up;
    bool healthy;
    void (*state_fn)(void *user, bool healthy);
    void *state_user;
    char *last_error;

    uint64_t rng;
    unsigned rr;
    int busy;
    bool closing;
};

/* ----- db.c: the handle ----- */

/* Ends a frame that did d->busy++; frees d when it was the last one and db_free has run. */
void dbi_leave(db *d);

/* ----- db_scrub.c: secrets and message text ----- */

/* The password strings of a conninfo (as written and decoded), longest first, so that a
 * secret containing another is replaced whole. Out of memory: fewer entries. */
void dbi_secrets_load(const char *conninfo, char ***list, int *n);
void dbi_secrets_free(char **list, int n);
/* A copy of text without d's secrets; caller frees; NULL on NULL text or out of memory. */
char *dbi_scrub(const db *d, const char *text);
/* libpq messages end with a newline and may hold several lines: one line, trimmed. */
void dbi_flatten(char *s);

/* A letter, digit or underscore: a word of a conninfo key or of an SQL keyword. */
static inline bool dbi_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* ----- db_result.c: reading server results ----- */

/* The text of a server error: "SQLSTATE: message[; detail: ...]", scrubbed, one line. */
char *dbi_server_error_text(const db *d, const PGresult *r, const char **sqlstate);
/* An error that ends the session rather than one statement. */
bool dbi_connection_level(const PGresult *r);

/* ----- db_job.c: one job ----- */

/* Not NULL, parameters in range, and not a statement the pipeline cannot run. */
bool dbi_stmt_valid(const db_stmt *s);
/* A job holding copies of stmts[0..n-1] (SQL and parameters) in one allocation. */
job *dbi_job_new(const db_stmt *stmts, int n);
void dbi_job_free(job *j);
/* Runs the job's callback and frees it. `local` (with `local_state`, `unknown`): the job
 * failed on this side; otherwise the verdict comes from its results. The job must already
 * be unlinked from every list. */
void dbi_complete_job(db *d, job *j, const char *local, const char *local_state, int unknown);
/* dbi_complete_job for every job of a list linked by `next`. */
void dbi_fail_jobs(db *d, job *list, const char *msg, const char *state, int unknown);

/* ----- db_queue.c: the queue and the pipeline ----- */

void dbi_queue_init(db *d);
/* Schedules a dispatch of the queue (from the loop, never from inside the caller). */
void dbi_kick(db *d);
/* Sends job j on c. Returns -1 when c failed (then j has been dealt with too). */
int dbi_send_job(conn *c, job *j);
/* The result timer of an up pool connection fired: drops the connection when no verdict
 * came for result_timeout while jobs were in flight, else waits for the rest. */
void dbi_result_timer(conn *c);
/* Reads what the server sent on a pool connection and completes finished jobs. */
void dbi_process_results(conn *c);

/* ----- db_conn.c: one connection ----- */

void dbi_conn_init(db *d, conn *c, int index, int role);
/* Starts a connection attempt (never blocks but for the host name lookup). */
void dbi_conn_start(conn *c);
/* Tears c down (after a failed attempt or a lost connection), fails what it had in flight
 * and schedules the next attempt. */
void dbi_conn_fail(conn *c, const char *why);
/* PQflush and the write watcher. Returns -1 when the connection failed (conn_fail ran). */
int dbi_conn_flush(conn *c);

/* ----- db_listen.c: the LISTEN connection ----- */

/* Sends the next LISTEN that the current listen connection still owes, if none is running. */
void dbi_listen_next(conn *c);
/* Reads the outcome of the running LISTEN; reports subscriptions that became active. */
void dbi_listen_results(conn *c);
/* Delivers received notifications (and drops those on pool connections). */
void dbi_listen_notifies(conn *c);
/* The listen connection went down: every subscription is owed a new LISTEN. */
void dbi_listen_lost(db *d);
void dbi_listen_free(db *d);

#endif
