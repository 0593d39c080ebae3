/* PostgreSQL access: the only part of the engine that talks to PostgreSQL at run time.
 *
 * libpq in non-blocking mode, driven by a libev loop: a small pool of connections, each in
 * pipeline mode so many queries are in flight at once, plus (on first db_listen) one more
 * connection dedicated to LISTEN/NOTIFY.
 *
 * Threading: a db belongs to the thread running its loop; every function below (and every
 * callback) runs on that thread. Nothing blocks except db_connect_blocking() and the host name
 * lookup libpq does when a connection attempt starts (use an IP address, a Unix socket
 * directory or a local resolver for the host).
 *
 * Queries. Every statement is sent with bound text parameters (PQsendQueryParams; $1..$n, a
 * NULL pointer is SQL NULL) followed by its own Sync, so:
 *   - each db_query() is its own implicit transaction, committed when the server reports
 *     the Sync; an error in one query never affects another query;
 *   - each db_transaction() runs its statements in ONE implicit transaction: all commit or
 *     none does. This is how to group statements (BEGIN ... COMMIT cannot be spelled inside a
 *     single statement of the extended protocol, and separate db_query() calls may land on
 *     different connections), so transaction-control statements (BEGIN, START, COMMIT, END,
 *     ROLLBACK, ABORT, SAVEPOINT, RELEASE, PREPARE TRANSACTION) and COPY are refused.
 *   - one SQL statement per string (the server refuses several).
 * Each pool connection first sets, for its session, statement_timeout (when configured) and
 * on PostgreSQL 14+ client_connection_check_interval = 5 s, so the server stops the query of
 * a client that went away (db_free, lost connection) instead of running it to the end.
 * Queries wait in one bounded FIFO queue until a connection has room (pipeline_depth jobs in
 * flight per connection, least-loaded connection first), also while no connection is up.
 *
 * Errors at commit time (deferred constraints, SERIALIZABLE conflicts) are reported for
 * their query, but libpq 15 loses its place in the pipeline after one: the connection is
 * then reset, and the other queries in flight on it fail with outcome_unknown=1. The schema
 * has neither today; a caller that needs them should use a db with pipeline_depth = 1.
 *
 * Failures. A query that was sent on a connection that then dropped fails with ok=0,
 * outcome_unknown=1 and is NEVER retried: it may or may not have committed, only the caller
 * can decide what to do. Queued queries that were not sent wait for a reconnect (or fail
 * after queue_timeout when set). Dropped connections are reconnected with exponential
 * backoff and jitter (reconnect_min doubling up to reconnect_max, each delay drawn from
 * [delay/2, delay]).
 *
 * A server that hangs rather than fails (stopped, its disk stalled) is bounded by
 * result_timeout: a pool connection that has jobs in flight and has delivered no verdict
 * for that long is dropped like a lost one (log database_result_timeout), so the engine
 * behaves as while the database is down instead of waiting on it without end.
 *
 * Secrets: no error text, result or log record produced here contains the password of the
 * conninfo (libpq's own messages quote conninfo fragments; they are scrubbed).
 *
 * Logs: database_connected (info), database_disconnected and database_connect_failed
 * (warning), database_result_timeout (warning), database_notice (debug: server NOTICE/WARNING messages),
 * database_transaction_left_open (error).
 */
#ifndef M2P_DB_H
#define M2P_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

struct ev_loop;

typedef struct db db;

#define DB_DEFAULT_CONNECTIONS 4
#define DB_DEFAULT_RECONNECT_MIN 0.5
#define DB_DEFAULT_RECONNECT_MAX 30.0
#define DB_DEFAULT_CONNECT_TIMEOUT 10.0
#define DB_DEFAULT_QUEUE_MAX 10000
#define DB_DEFAULT_PIPELINE_DEPTH 128
#define DB_MAX_PARAMS 65535

/* A zeroed field takes its default. */
typedef struct db_options {
    const char *conninfo;     /* postgresql:// URL or key=value conninfo; copied; required
                                 ("" = libpq defaults / PG* environment variables) */
    int connections;          /* pool size; default 4 */
    double reconnect_min;     /* first reconnect delay, seconds; default 0.5 */
    double reconnect_max;     /* backoff cap, seconds; default 30 */
    double connect_timeout;   /* one connection attempt, seconds; default 10 */
    double statement_timeout; /* server-side limit per statement, seconds; default 0 =
                                 server's setting (a timed-out query fails, SQLSTATE 57014) */
    double queue_timeout;     /* longest wait in the queue before being sent, seconds;
                                 default 0 = wait for a connection however long it takes */
    double result_timeout;    /* longest a pool connection with jobs sent may go without a
                                 verdict, seconds: then it is dropped (its jobs fail with
                                 outcome_unknown=1) and reconnected; default 0 = no limit */
    int queue_max;            /* queries waiting to be sent; default 10000 */
    int pipeline_depth;       /* jobs in flight per connection; default 128 */
    const char *application_name; /* default "m2p-engine"; the conninfo's own wins */
} db_options;

/* A statement's outcome; valid only during the callback.
 *
 * Server errors: error = "SQLSTATE: message" (+ "; detail: ..." when the server gave one),
 * sqlstate = the server's code. Errors from this side, sqlstate in brackets:
 *   "cancelled"                                    [57014]  db_free() with the query pending
 *   "connection lost before the result: ..."       [08006]  sent, then the connection dropped
 *   "not sent within N s: no database connection available"  [08001]  queue_timeout
 * outcome_unknown = 1 when the statement was sent and no verdict came back (connection lost
 * or db_free): it may have committed. */
typedef struct db_result {
    int ok;                   /* 1: the statement (and its transaction) succeeded */
    const char *error;        /* NULL when ok */
    const char *sqlstate;     /* "" when ok */
    int outcome_unknown;
    int rows, cols;           /* 0 when !ok */
    const void *pg_;          /* private (PGresult) */
} db_result;

/* Value at (row, col) as text; "" for SQL NULL; NULL when out of range. */
const char *db_value(const db_result *r, int row, int col);
bool db_is_null(const db_result *r, int row, int col);
/* Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT/... (PQcmdTuples); -1 if none. */
long long db_affected(const db_result *r);
const char *db_column_name(const db_result *r, int col);   /* NULL when out of range */
int db_column_index(const db_result *r, const char *name);  /* -1 when absent */

typedef void (*db_done_fn)(void *user, const db_result *r);

/* Starts connecting (never blocks, see above). Returns NULL and logs the reason (password
 * scrubbed) when o or o->conninfo is NULL, the conninfo cannot be parsed, or memory runs
 * out. */
db *db_new(struct ev_loop *loop, const db_options *o);

/* Cancels every pending query (callback: ok=0, error "cancelled"; outcome_unknown=1 for
 * those already sent), closes every connection and frees the db. Callbacks may call
 * db_free() (the memory is released when the callback returns); NULL is a no-op. */
void db_free(db *d);

/* Queues one statement. params[0..nparams-1] are copied; a NULL entry is SQL NULL.
 * Returns 0 when accepted: done is then called exactly once, later, never from inside this
 * call. Returns -1 and sets errno when not accepted (done is not called): EINVAL (NULL sql or
 * done, nparams outside 0..65535, transaction-control or COPY statement), EAGAIN (queue
 * full), ESHUTDOWN (db_free() has begun), ENOMEM. */
int db_query(db *d, const char *sql, int nparams, const char *const *params, db_done_fn done,
             void *user);

typedef struct db_stmt {
    const char *sql;
    int nparams;
    const char *const *params;
} db_stmt;

/* results[i] belongs to stmts[i]. Either every result is ok (committed) or none is: then
 * every result carries the error of the statement that failed ("statement K: SQLSTATE:
 * message", K from 1) or the connection error. */
typedef void (*db_tx_done_fn)(void *user, const db_result *results, int n);

/* Runs n (1..1000) statements as one transaction on one connection, in order. Same return
 * and callback rules as db_query(). */
int db_transaction(db *d, const db_stmt *stmts, int n, db_tx_done_fn done, void *user);

/* At least one pool connection is up. */
bool db_healthy(const db *d);
/* fn(user, healthy) on every change of db_healthy() (not for the current state). One
 * observer; NULL removes it. */
void db_on_state(db *d, void (*fn)(void *user, bool healthy), void *user);
/* The latest connection error (scrubbed), "" if none so far. */
const char *db_last_error(const db *d);
int db_connections_up(const db *d); /* pool connections up now (0..connections) */
size_t db_queued(const db *d);     /* accepted, not yet sent */
size_t db_in_flight(const db *d);  /* sent, verdict not yet received */

/* Subscribes to a NOTIFY channel on the dedicated listen connection (opened on first use,
 * re-LISTENs after every reconnect). The channel is used verbatim (quoted identifier, so
 * use the exact, usually lower-case, name given to NOTIFY/pg_notify). fn(user, channel,
 * payload) for each notification. fn(user, channel, NULL) each time the subscription has
 * become active (first LISTEN and after every reconnect): notifications sent while it was
 * not active are lost, so reload whatever the channel tracks then. Returns 0, or -1 with
 * errno EINVAL (empty or longer than 63 bytes, NULL fn), ESHUTDOWN, ENOMEM. */
int db_listen(db *d, const char *channel,
              void (*fn)(void *user, const char *channel, const char *payload), void *user);

/* Blocking connect for start-up work (migrations) before the loop runs: same defaults as
 * the pool (client_encoding UTF8, application_name, keepalives, connect_timeout 10 s). On
 * failure returns NULL with the reason (scrubbed) in err. Caller PQfinish()es. */
PGconn *db_connect_blocking(const char *conninfo, char *err, size_t errlen);

/* `text` with every trace of the conninfo's password replaced by ***: the password itself
 * (decoded and as written) and quoted fragments of it. For messages from a connection made
 * outside this module. Caller frees; NULL on NULL text or out of memory. */
char *db_scrub(const char *conninfo, const char *text);

/* The password strings of a conninfo (as written and decoded), longest first, for the
 * engine-wide scrubber (secrets.c). Free with db_conninfo_secrets_free. */
void db_conninfo_secrets(const char *conninfo, char ***list, int *n);
void db_conninfo_secrets_free(char **list, int n);

#endif
