/* PostgreSQL access on libev (see db.h).
 *
 * Structure
 *   db    the queue of jobs not yet sent, the pool, the optional listen connection.
 *   conn  one PGconn: DOWN (reconnect timer running) -> CONNECTING (PQconnectPoll driven by
 *         ev_io on whatever socket libpq currently uses; connect-timeout timer) -> UP.
 *         A pool conn in UP is in pipeline mode and holds the FIFO of jobs it has sent.
 *   job   1..n statements + one Sync = one implicit transaction, one callback.
 *
 * Result stream of one job in pipeline mode: for each statement one PGresult (or
 * PGRES_PIPELINE_ABORTED after an earlier error) followed by NULL, then one
 * PGRES_PIPELINE_SYNC (no NULL after it). The job's verdict is known only at the Sync (the
 * implicit transaction commits there), so callbacks run then.
 *
 * Re-entrancy: callbacks may call db_query/db_transaction/db_listen (they only queue; the
 * queue is dispatched from an ev_prepare watcher, so nothing is sent and no callback runs
 * from inside those calls) and db_free. `busy` counts frames of this module on the stack;
 * db_free inside a callback cancels everything at once but the memory is released when the
 * outermost frame returns, and every frame checks `closing` after running a callback.
 */
#include "db.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "log.h"

#define DB_MAX_TX_STATEMENTS 1000
#define DB_CHANNEL_MAX 63

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
    ev_timer timer;        /* reconnect delay (DOWN) or connect timeout (CONNECTING) */
    job *head, *tail;      /* sent, verdict pending */
    int inflight;
    int failures;          /* consecutive failed attempts */
    bool flushing;         /* libpq holds unsent output */
    char *doomed;          /* FATAL message received while idle: the session is ending */
    int listen_target;     /* listener whose LISTEN is running, -1: none */
} conn;

typedef struct listener {
    char *channel;
    void (*fn)(void *user, const char *channel, const char *payload);
    void *user;
    bool active;           /* LISTEN done on the current listen connection */
    bool failed;           /* LISTEN refused by the server on the current connection */
    bool fresh;            /* just became active: owed a fn(channel, NULL) */
} listener;

struct db {
    struct ev_loop *loop;
    char *conninfo;
    char **secrets;        /* password strings to scrub, longest first */
    int nsecrets;
    char app_name[64];
    int npool;
    double reconnect_min, reconnect_max, connect_timeout, statement_timeout, queue_timeout;
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

static void conn_start(conn *c);
static void conn_fail(conn *c, const char *why);
static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void process_results(conn *c);
static void listen_next(conn *c);
static void setup_done(void *user, const db_result *r);

/* ===================================================================================== */
/* Secrets                                                                               */
/* ===================================================================================== */

static void add_secret(char ***list, int *n, const char *s, size_t len)
{
    if (!s || len == 0)
        return;
    for (int i = 0; i < *n; i++)
        if (strlen((*list)[i]) == len && memcmp((*list)[i], s, len) == 0)
            return;
    char **nl = realloc(*list, sizeof(char *) * (size_t)(*n + 1));
    if (!nl)
        return;
    *list = nl;
    char *copy = strndup(s, len);
    if (!copy)
        return;
    nl[(*n)++] = copy;
}

static bool is_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Spans of the conninfo that hold the password as written, plus the decoded password. */
static void collect_secrets(const char *ci, char ***list, int *n)
{
    *list = NULL;
    *n = 0;
    if (!ci)
        return;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(ci, &perr);
    if (opts) {
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (o->val && strcmp(o->keyword, "password") == 0)
                add_secret(list, n, o->val, strlen(o->val));
        PQconninfoFree(opts);
    }
    PQfreemem(perr);

    const char *sep = strstr(ci, "://");
    if (sep && (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0)) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++)
            if (*p == '@')
                at = p;
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (colon)
                add_secret(list, n, colon + 1, (size_t)(at - colon - 1));
        }
        const char *q = strchr(auth, '?');
        while (q) {
            q++;
            if (strncmp(q, "password=", 9) == 0) {
                const char *v = q + 9;
                add_secret(list, n, v, strcspn(v, "&"));
            }
            q = strchr(q, '&');
        }
        return;
    }
    /* key=value form: from the value to the next "word =" or the end. */
    for (const char *p = ci; (p = strstr(p, "password")) != NULL; p += 8) {
        if (p > ci && is_ident_char(p[-1]))
            continue;
        const char *v = p + 8;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        if (*v != '=')
            continue;
        v++;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        const char *end = v;
        if (*end == '\'') {
            end++;
            while (*end && *end != '\'') {
                if (*end == '\\' && end[1])
                    end++;
                end++;
            }
            if (*end)
                end++;
        }
        /* extend over further words that are not "key=" */
        for (;;) {
            const char *w = end;
            while (*w && *w != ' ' && *w != '\t' && *w != '\n' && *w != '\r')
                w++;
            end = w;
            while (*w == ' ' || *w == '\t' || *w == '\n' || *w == '\r')
                w++;
            if (!*w)
                break;
            const char *k = w;
            while (is_ident_char(*k))
                k++;
            while (*k == ' ' || *k == '\t')
                k++;
            if (k > w && *k == '=')
                break;
            end = w;
        }
        add_secret(list, n, v, (size_t)(end - v));
        /* the quoted value without its quotes */
        if (end - v >= 2 && *v == '\'')
            add_secret(list, n, v + 1, (size_t)(end - v - 2));
    }
}

static int cmp_len_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

static void free_secrets(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* A copy of `text` without any secret: occurrences are replaced by ***, and so is every
 * "double-quoted" fragment that is part of a secret (libpq quotes conninfo pieces). */
static char *scrub_with(char **secrets, int nsecrets, const char *text)
{
    if (!text)
        return NULL;
    char *cur = strdup(text);
    if (!cur || nsecrets == 0)
        return cur;
    for (int i = 0; i < nsecrets; i++) {
        const char *s = secrets[i];
        size_t sl = strlen(s);
        if (sl == 0 || !strstr(cur, s))
            continue;
        size_t cap = strlen(cur) * 3 + 4, o = 0;
        char *out = malloc(cap + 1);
        if (!out) {
            free(cur);
            return NULL;
        }
        for (const char *p = cur; *p;) {
            if (strncmp(p, s, sl) == 0) {
                memcpy(out + o, "***", 3);
                o += 3;
                p += sl;
            } else {
                out[o++] = *p++;
            }
        }
        out[o] = '\0';
        free(cur);
        cur = out;
    }
    /* quoted fragments that are pieces of a secret */
    for (char *q = strchr(cur, '"'); q; q = strchr(q, '"')) {
        char *e = strchr(q + 1, '"');
        if (!e)
            break;
        size_t fl = (size_t)(e - q - 1);
        bool hit = false;
        for (int i = 0; i < nsecrets && fl > 0 && !hit; i++) {
            const char *s = secrets[i];
            for (const char *p = s; (p = strchr(p, q[1])) != NULL; p++)
                if (strncmp(p, q + 1, fl) == 0) {
                    hit = true;
                    break;
                }
        }
        if (hit) {
            size_t tail = strlen(e);
            memcpy(q + 1, "***", fl < 3 ? fl : 3);
            if (fl >= 3) {
                memmove(q + 4, e, tail + 1);
                e = q + 4;
            } else {
                /* shorter than ***: keep length, mask every char */
                for (size_t k = 0; k < fl; k++)
                    q[1 + k] = '*';
            }
        }
        q = e + 1;
    }
    return cur;
}

char *db_scrub(const char *conninfo, const char *text)
{
    char **secrets;
    int n;
    collect_secrets(conninfo, &secrets, &n);
    if (n > 1)
        qsort(secrets, (size_t)n, sizeof *secrets, cmp_len_desc);
    char *out = scrub_with(secrets, n, text);
    free_secrets(secrets, n);
    return out;
}

static char *scrub(const db *d, const char *text)
{
    return scrub_with(d->secrets, d->nsecrets, text);
}

/* libpq messages end with a newline and may hold several lines: one line, trimmed. */
static void flatten(char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

/* ===================================================================================== */
/* Results                                                                               */
/* ===================================================================================== */

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

/* ===================================================================================== */
/* Small helpers                                                                         */
/* ===================================================================================== */

static double rnd01(db *d)
{
    d->rng ^= d->rng >> 12;
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return (double)((d->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static double backoff(db *d, int failures)
{
    double delay = d->reconnect_min;
    for (int i = 0; i < failures && delay < d->reconnect_max; i++)
        delay *= 2;
    if (delay > d->reconnect_max)
        delay = d->reconnect_max;
    return delay / 2 + rnd01(d) * delay / 2;
}

static const char *role_name(const conn *c) { return c->role == ROLE_LISTEN ? "listen" : "pool"; }

static void set_last_error(db *d, const char *msg)
{
    char *copy = strdup(msg ? msg : "");
    if (copy) {
        free(d->last_error);
        d->last_error = copy;
    }
}

static void leave(db *d);

static void destroy(db *d)
{
    for (int i = 0; i < d->nlisteners; i++)
        free(d->listeners[i].channel);
    free(d->listeners);
    free(d->pool);
    free(d->lconn);
    free_secrets(d->secrets, d->nsecrets);
    free(d->conninfo);
    free(d->last_error);
    free(d);
}

static void leave(db *d)
{
    if (--d->busy == 0 && d->closing)
        destroy(d);
}

/* Skips whitespace and comments; returns the first word of a statement, upper-cased. */
static const char *next_word(const char *p, char *out, size_t outlen)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '(')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            int depth = 1;
            p += 2;
            while (*p && depth > 0) {
                if (p[0] == '/' && p[1] == '*') {
                    depth++;
                    p += 2;
                } else if (p[0] == '*' && p[1] == '/') {
                    depth--;
                    p += 2;
                } else {
                    p++;
                }
            }
        } else {
            break;
        }
    }
    size_t n = 0;
    while (is_ident_char(*p)) {
        if (n + 1 < outlen)
            out[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        p++;
    }
    out[n] = '\0';
    return p;
}

static bool forbidden_statement(const char *sql)
{
    static const char *const words[] = {"BEGIN",   "START",     "COMMIT",  "END",  "ROLLBACK",
                                        "ABORT",   "SAVEPOINT", "RELEASE", "COPY", NULL};
    char w[32];
    const char *rest = next_word(sql, w, sizeof w);
    for (int i = 0; words[i]; i++)
        if (strcmp(w, words[i]) == 0)
            return true;
    if (strcmp(w, "PREPARE") == 0) {
        char w2[32];
        next_word(rest, w2, sizeof w2);
        return strcmp(w2, "TRANSACTION") == 0;
    }
    return false;
}

/* ===================================================================================== */
/* Jobs                                                                                  */
/* ===================================================================================== */

static job *job_new(const db_stmt *stmts, int n)
{
    size_t size = sizeof(job) + sizeof(jstmt) * (size_t)n;
    for (int i = 0; i < n; i++) {
        size += sizeof(char *) * (size_t)stmts[i].nparams;
    }
    size_t strings = 0;
    for (int i = 0; i < n; i++) {
        strings += strlen(stmts[i].sql) + 1;
        for (int k = 0; k < stmts[i].nparams; k++)
            if (stmts[i].params[k])
                strings += strlen(stmts[i].params[k]) + 1;
    }
    job *j = calloc(1, size + strings);
    if (!j)
        return NULL;
    j->n = n;
    j->failed = -1;
    j->st = (jstmt *)(j + 1);
    const char **ptrs = (const char **)(j->st + n);
    char *s = (char *)ptrs;
    for (int i = 0; i < n; i++)
        s += sizeof(char *) * (size_t)stmts[i].nparams;
    for (int i = 0; i < n; i++) {
        jstmt *t = &j->st[i];
        size_t l = strlen(stmts[i].sql) + 1;
        memcpy(s, stmts[i].sql, l);
        t->sql = s;
        s += l;
        t->nparams = stmts[i].nparams;
        t->params = ptrs;
        for (int k = 0; k < stmts[i].nparams; k++) {
            const char *v = stmts[i].params[k];
            if (v) {
                l = strlen(v) + 1;
                memcpy(s, v, l);
                ptrs[k] = s;
                s += l;
            } else {
                ptrs[k] = NULL;
            }
        }
        ptrs += stmts[i].nparams;
    }
    return j;
}

static void job_free(job *j)
{
    for (int i = 0; i < j->n; i++)
        PQclear(j->st[i].res);
    PQclear(j->err);
    free(j);
}

/* The text of a server error: "SQLSTATE: message[; detail: ...]". */
static char *server_error_text(const db *d, const PGresult *r, const char **sqlstate)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    char *raw = NULL;
    if (!msg) {
        raw = strdup(PQresultErrorMessage(r));
        if (raw)
            flatten(raw);
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
    char *clean = scrub(d, text);
    free(text);
    if (clean)
        flatten(clean);
    return clean;
}

/* Runs the job's callback and frees it. `local` (with `local_state`, `unknown`): the job
 * failed on this side; otherwise the verdict comes from its results. The job must already
 * be unlinked from every list. */
static void complete_job(db *d, job *j, const char *local, const char *local_state,
                         int unknown)
{
    db_result one = {0}, *res = &one;
    int count = 1;
    if (j->n > 1) {
        db_result *many = calloc((size_t)j->n, sizeof *many);
        if (many) { /* else (out of memory) the callback still runs, with one result */
            res = many;
            count = j->n;
        }
    }
    char *text = NULL;
    const char *state = "";
    bool ok = false;

    if (local && j->failed >= 0) {
        /* the server already rejected it: the rollback is certain */
        local = NULL;
    }
    if (local) {
        text = strdup(local);
        state = local_state;
    } else if (j->failed >= 0) {
        unknown = 0;
        char *e = server_error_text(d, j->err, &state);
        if (j->n > 1 && e) {
            size_t l = strlen(e) + 32;
            text = malloc(l);
            if (text)
                snprintf(text, l, "statement %d: %s", j->failed + 1, e);
            free(e);
        } else {
            text = e;
        }
    } else {
        ok = true;
        for (int i = 0; i < j->n; i++)
            if (!j->st[i].res) {
                ok = false;
                text = strdup("no result from the server for a statement");
                state = "XX000";
                break;
            }
    }
    for (int i = 0; i < count; i++) {
        db_result *r = &res[i];
        r->ok = ok;
        r->outcome_unknown = ok ? 0 : unknown;
        if (ok) {
            r->error = NULL;
            r->sqlstate = "";
            r->pg_ = j->st[i].res;
            r->rows = PQntuples(j->st[i].res);
            r->cols = PQnfields(j->st[i].res);
        } else {
            r->error = text ? text : "error (out of memory)";
            r->sqlstate = state;
        }
    }
    d->busy++;
    if (j->tx_done)
        j->tx_done(j->user, res, count);
    else
        j->done(j->user, res);
    leave(d);
    if (res != &one)
        free(res);
    free(text);
    job_free(j);
}

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

static void inflight_push(conn *c, job *j)
{
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
    }
    return j;
}

/* ===================================================================================== */
/* Queue timer and dispatch                                                              */
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

static void kick(db *d)
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
        complete_job(d, j, msg, "08001", 0);
    }
    qtimer_arm(d);
    leave(d);
}

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

/* PQflush and the write watcher. Returns -1 when the connection failed (conn_fail ran). */
static int conn_flush(conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    bool want = r == 1;
    if (want != c->flushing) {
        c->flushing = want;
        ev_io_stop(c->d->loop, &c->io);
        ev_io_set(&c->io, PQsocket(c->pg), EV_READ | (want ? EV_WRITE : 0));
        ev_io_start(c->d->loop, &c->io);
    }
    return 0;
}

/* Sends job j on c. Returns -1 when c failed (then j has been dealt with too). */
static int send_job(conn *c, job *j)
{
    db *d = c->d;
    for (int i = 0; i < j->n; i++) {
        const jstmt *t = &j->st[i];
        if (!PQsendQueryParams(c->pg, t->sql, t->nparams, NULL, t->params, NULL, NULL, 0)) {
            char *why = scrub(d, PQerrorMessage(c->pg));
            flatten(why);
            if (i == 0 && PQstatus(c->pg) == CONNECTION_OK) {
                /* refused by libpq before anything went out: only this job fails */
                complete_job(d, j, why ? why : "could not send the query", "08000", 0);
                free(why);
                return d->closing ? -1 : 0;
            }
            /* nothing of j can commit without its Sync: send it again elsewhere */
            q_push_front(d, j);
            conn_fail(c, why ? why : "could not send the query");
            free(why);
            return -1;
        }
    }
    if (!PQpipelineSync(c->pg)) {
        /* the Sync may have gone out: the verdict is unknown */
        inflight_push(c, j);
        conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    inflight_push(c, j);
    return conn_flush(c);
}

static void dispatch(db *d)
{
    while (!d->closing && d->qhead) {
        conn *c = pick(d);
        if (!c)
            break;
        job *j = q_pop(d);
        if (send_job(c, j) == 0 && !d->closing && c->state == CS_UP)
            process_results(c); /* a flush may have read input */
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
    leave(d);
}

/* ===================================================================================== */
/* Connections                                                                           */
/* ===================================================================================== */

/* Server messages outside a query result: NOTICE/WARNING go to the debug log; a FATAL one
 * (e.g. "terminating connection due to administrator command" on an idle connection) means
 * the server is closing the session: the connection is failed at once instead of when the
 * EOF is read, so no query is sent on it meanwhile. */
static void notice_cb(void *arg, const PGresult *r)
{
    conn *c = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) {
        if (!c->doomed) {
            c->doomed = strdup(PQresultErrorMessage(r));
            if (!c->doomed)
                c->doomed = strdup("FATAL");
        }
        return;
    }
    if (!log_enabled(LOG_DEBUG))
        return;
    char *m = scrub(c->d, PQresultErrorMessage(r));
    flatten(m);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "connection", c->index);
    cJSON_AddStringToObject(f, "message", m ? m : "");
    log_emit(LOG_DEBUG, "database_notice", f);
    free(m);
}

static void io_watch(conn *c, int events)
{
    ev_io_stop(c->d->loop, &c->io);
    ev_io_set(&c->io, PQsocket(c->pg), events);
    ev_io_start(c->d->loop, &c->io);
}

static void fail_jobs(db *d, job *list, const char *msg, const char *state, int unknown)
{
    while (list) {
        job *j = list;
        list = j->next;
        j->next = NULL;
        complete_job(d, j, msg, state, unknown);
    }
}

static void set_healthy(db *d, bool healthy)
{
    if (d->healthy == healthy)
        return;
    d->healthy = healthy;
    if (d->state_fn) {
        d->busy++;
        d->state_fn(d->state_user, healthy);
        leave(d);
    }
}

/* Tears c down (after a failed attempt or a lost connection), fails what it had in flight
 * and schedules the next attempt. */
static void conn_fail(conn *c, const char *why)
{
    db *d = c->d;
    char *err = scrub(d, why && *why ? why : "connection failed");
    flatten(err);
    ev_io_stop(d->loop, &c->io);
    ev_timer_stop(d->loop, &c->timer);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    bool was_up = c->state == CS_UP;
    c->state = CS_DOWN;
    c->flushing = false;
    free(c->doomed);
    c->doomed = NULL;
    c->listen_target = -1;
    job *list = c->head;
    int lost = c->inflight;
    d->inflight -= (size_t)c->inflight;
    c->head = c->tail = NULL;
    c->inflight = 0;
    if (c->role == ROLE_LISTEN)
        for (int i = 0; i < d->nlisteners; i++)
            d->listeners[i].active = d->listeners[i].failed = d->listeners[i].fresh = false;
    if (was_up) {
        c->failures = 0;
        if (c->role == ROLE_POOL)
            d->up--;
    } else {
        c->failures++;
    }
    set_last_error(d, err);

    double delay = backoff(d, was_up ? 0 : c->failures - 1);
    if (!d->closing) {
        ev_timer_set(&c->timer, delay, 0);
        ev_timer_start(d->loop, &c->timer);
    }
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "connection", c->index);
    cJSON_AddStringToObject(f, "role", role_name(c));
    cJSON_AddStringToObject(f, "error", err ? err : "");
    if (was_up) {
        cJSON_AddNumberToObject(f, "failed_in_flight", lost);
        cJSON_AddNumberToObject(f, "connections_up", d->up);
    } else {
        cJSON_AddNumberToObject(f, "attempt", c->failures);
    }
    cJSON_AddNumberToObject(f, "retry_in_seconds", (double)(int)(delay * 1000) / 1000.0);
    log_emit(LOG_WARNING, was_up ? "database_disconnected" : "database_connect_failed", f);

    if (was_up && c->role == ROLE_POOL && d->up == 0)
        set_healthy(d, false);
    if (list) {
        size_t l = strlen(err ? err : "") + 64;
        char *msg = malloc(l);
        if (msg)
            snprintf(msg, l, "connection lost before the result: %s", err ? err : "");
        fail_jobs(d, list, msg ? msg : "connection lost before the result", "08006", 1);
        free(msg);
    }
    free(err);
    kick(d);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    conn *c = w->data;
    db *d = c->d;
    d->busy++;
    if (c->state == CS_CONNECTING) {
        char msg[96];
        snprintf(msg, sizeof msg, "connection attempt timed out after %g s", d->connect_timeout);
        conn_fail(c, msg);
    } else if (c->state == CS_DOWN && !d->closing) {
        conn_start(c);
    }
    leave(d);
}

static void conn_established(conn *c)
{
    db *d = c->d;
    ev_timer_stop(d->loop, &c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 ||
        (c->role == ROLE_POOL && !PQenterPipelineMode(c->pg))) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    /* Whatever came with the handshake (a FATAL from a server shutting down, even the EOF)
     * is read and parsed now, before any query can be sent on this connection. */
    PGnotify *n;
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n);
    if (c->doomed) {
        char *why = c->doomed;
        c->doomed = NULL;
        conn_fail(c, why);
        free(why);
        return;
    }
    c->state = CS_UP;
    c->failures = 0;
    c->flushing = false;
    io_watch(c, EV_READ);
    if (c->role == ROLE_POOL)
        d->up++;

    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "connection", c->index);
    cJSON_AddStringToObject(f, "role", role_name(c));
    char *host = scrub(d, PQhost(c->pg));
    cJSON_AddStringToObject(f, "host", host ? host : "");
    free(host);
    cJSON_AddStringToObject(f, "port", PQport(c->pg) ? PQport(c->pg) : "");
    cJSON_AddNumberToObject(f, "backend_pid", PQbackendPID(c->pg));
    cJSON_AddNumberToObject(f, "server_version", PQserverVersion(c->pg));
    cJSON_AddNumberToObject(f, "connections_up", d->up);
    log_emit(LOG_INFO, "database_connected", f);

    if (c->role == ROLE_LISTEN) {
        listen_next(c);
        return;
    }
    /* Session settings, ahead of every query in the pipeline: the statement timeout, and
     * (PostgreSQL 14+) a check that makes the server stop the query of a client that went
     * away (db_free, connect timeout, network loss) instead of running it to the end. */
    bool timeout = d->statement_timeout > 0;
    bool check = PQserverVersion(c->pg) >= 140000;
    if (timeout || check) {
        char ms[32];
        snprintf(ms, sizeof ms, "%lld", (long long)(d->statement_timeout * 1000 + 0.5));
        const char *both[] = {ms, "5000"}, *only_check[] = {"5000"};
        db_stmt s;
        if (timeout && check)
            s = (db_stmt){"SELECT pg_catalog.set_config('statement_timeout', $1, false), "
                          "pg_catalog.set_config('client_connection_check_interval', $2, false)",
                          2, both};
        else if (timeout)
            s = (db_stmt){"SELECT pg_catalog.set_config('statement_timeout', $1, false)", 1, both};
        else
            s = (db_stmt){"SELECT pg_catalog.set_config('client_connection_check_interval', $1, "
                          "false)",
                          1, only_check};
        job *j = job_new(&s, 1);
        if (!j) {
            conn_fail(c, "out of memory");
            return;
        }
        j->queued_at = ev_now(d->loop);
        j->done = setup_done; /* internal: only checks the outcome */
        j->user = c;
        if (send_job(c, j) < 0)
            return;
    }
    set_healthy(d, true);
    if (!d->closing)
        kick(d);
}

static void setup_done(void *user, const db_result *r)
{
    conn *c = user;
    if (r->ok || strcmp(r->sqlstate, "57014") == 0 || strcmp(r->sqlstate, "08006") == 0)
        return;
    log_message(LOG_ERROR, "database_setup_failed", "connection %d: session settings: %s",
                c->index, r->error);
}

static void conn_start(conn *c)
{
    db *d = c->d;
    const char *keys[] = {"connect_timeout",  "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "dbname",           "client_encoding",
                          "fallback_application_name", NULL};
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", (int)(d->connect_timeout + 0.999));
    const char *vals[] = {timeout, "60", "10", "3", d->conninfo, "UTF8", d->app_name, NULL};
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (!c->pg) {
        c->state = CS_CONNECTING;
        conn_fail(c, "out of memory");
        return;
    }
    c->state = CS_CONNECTING;
    if (PQstatus(c->pg) == CONNECTION_BAD || PQsocket(c->pg) < 0) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_cb, c);
    ev_timer_set(&c->timer, d->connect_timeout, 0);
    ev_timer_start(d->loop, &c->timer);
    io_watch(c, EV_WRITE); /* "as if PQconnectPoll had returned PGRES_POLLING_WRITING" */
}

static void connect_step(conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (PQsocket(c->pg) < 0)
            conn_fail(c, PQerrorMessage(c->pg));
        else
            io_watch(c, EV_READ); /* the socket may be a new one (next host, SSL retry) */
        break;
    case PGRES_POLLING_WRITING:
        if (PQsocket(c->pg) < 0)
            conn_fail(c, PQerrorMessage(c->pg));
        else
            io_watch(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        conn_established(c);
        break;
    default:
        conn_fail(c, PQerrorMessage(c->pg));
        break;
    }
}

/* An error that ends the session rather than one statement: severity FATAL/PANIC, or no
 * SQLSTATE at all (libpq's own message after a connection failure). */
static bool connection_level(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!state || !*state)
        return true;
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        return true;
    return strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0;
}

/* Reads what the server sent on a pool connection and completes finished jobs. */
static void process_results(conn *c)
{
    db *d = c->d;
    while (c->state == CS_UP && c->head) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, PQerrorMessage(c->pg));
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
            conn_fail(c, "protocol out of step with the server (error at commit)");
            return;
        }
        switch (PQresultStatus(r)) {
        case PGRES_PIPELINE_SYNC:
            PQclear(r);
            inflight_pop(c);
            complete_job(d, j, NULL, NULL, 0);
            if (d->closing)
                return;
            kick(d);
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
            conn_fail(c, "unexpected COPY from the server");
            return;
        default: /* FATAL_ERROR, BAD_RESPONSE, NONFATAL_ERROR */
            if (connection_level(r)) {
                /* the session is ending (FATAL, or an error made up by libpq after a
                 * failure): whatever was in flight has no verdict */
                char *m = strdup(PQresultErrorMessage(r));
                PQclear(r);
                conn_fail(c, m ? m : "connection failed");
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
            conn_fail(c, "a statement left a transaction open");
        }
    }
}

/* ----- listen connection ----- */

static void listen_next(conn *c)
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
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        size_t len = strlen(ident) + 8;
        char *sql = malloc(len);
        if (!sql) {
            PQfreemem(ident);
            conn_fail(c, "out of memory");
            return;
        }
        snprintf(sql, len, "LISTEN %s", ident);
        PQfreemem(ident);
        int ok = PQsendQuery(c->pg, sql);
        free(sql);
        if (!ok) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        c->listen_target = i;
        conn_flush(c);
        return;
    }
}

static void listen_results(conn *c)
{
    db *d = c->d;
    while (c->state == CS_UP && c->listen_target >= 0) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (PQisBusy(c->pg))
            return;
        PGresult *r = PQgetResult(c->pg);
        int t = c->listen_target;
        if (r) {
            if (PQresultStatus(r) != PGRES_COMMAND_OK && connection_level(r)) {
                char *m = strdup(PQresultErrorMessage(r));
                PQclear(r);
                conn_fail(c, m ? m : "connection failed");
                free(m);
                return;
            }
            if (PQresultStatus(r) != PGRES_COMMAND_OK && !d->listeners[t].failed) {
                const char *state;
                char *e = server_error_text(d, r, &state);
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
                    leave(d);
                }
            }
            if (d->closing)
                return;
        }
        listen_next(c);
    }
}

static void listen_notifies(conn *c)
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
                    leave(d);
                }
            }
        }
        PQfreemem(n);
    }
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    conn *c = w->data;
    db *d = c->d;
    d->busy++;
    if (c->state == CS_CONNECTING) {
        connect_step(c);
    } else if (c->state == CS_UP) {
        if ((revents & EV_WRITE) && conn_flush(c) < 0)
            goto out;
        if (revents & EV_READ) {
            if (!PQconsumeInput(c->pg)) {
                conn_fail(c, PQerrorMessage(c->pg));
                goto out;
            }
            if (c->flushing && conn_flush(c) < 0)
                goto out;
        }
        if (c->role == ROLE_POOL) {
            process_results(c);
        } else {
            listen_results(c);
        }
        if (!d->closing && c->state == CS_UP)
            listen_notifies(c);
        /* an idle connection that the server is closing or has closed */
        if (!d->closing && c->state == CS_UP && c->doomed) {
            char *why = c->doomed;
            c->doomed = NULL;
            conn_fail(c, why);
            free(why);
        } else if (!d->closing && c->state == CS_UP && PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, PQerrorMessage(c->pg));
        }
    }
out:
    leave(d);
}

static void conn_init(db *d, conn *c, int index, int role)
{
    memset(c, 0, sizeof *c);
    c->d = d;
    c->index = index;
    c->role = role;
    c->state = CS_DOWN;
    c->listen_target = -1;
    ev_io_init(&c->io, conn_io_cb, -1, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, conn_timer_cb, 0, 0);
    c->timer.data = c;
}

/* ===================================================================================== */
/* Public API                                                                            */
/* ===================================================================================== */

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
        flatten(clean);
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
    collect_secrets(o->conninfo, &d->secrets, &d->nsecrets);
    if (d->nsecrets > 1)
        qsort(d->secrets, (size_t)d->nsecrets, sizeof *d->secrets, cmp_len_desc);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    d->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
             (uint64_t)(uintptr_t)d;
    if (!d->rng)
        d->rng = 0x9E3779B97F4A7C15ULL;
    ev_timer_init(&d->qtimer, qtimer_cb, 0, 0);
    d->qtimer.data = d;
    ev_prepare_init(&d->prep, prepare_cb);
    d->prep.data = d;

    d->busy++;
    for (int i = 0; i < d->npool; i++) {
        conn_init(d, &d->pool[i], i, ROLE_POOL);
        conn_start(&d->pool[i]);
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
    fail_jobs(d, sent, "cancelled", "57014", 1);
    fail_jobs(d, queued, "cancelled", "57014", 0);
    leave(d);
}

static int submit(db *d, job *j)
{
    if (d->queued >= (size_t)d->queue_max) {
        job_free(j);
        errno = EAGAIN;
        return -1;
    }
    j->queued_at = ev_now(d->loop);
    q_push(d, j);
    kick(d);
    if (d->queue_timeout > 0 && !ev_is_active(&d->qtimer))
        qtimer_arm(d);
    return 0;
}

static bool stmt_valid(const db_stmt *s)
{
    if (!s->sql || s->nparams < 0 || s->nparams > DB_MAX_PARAMS ||
        (s->nparams > 0 && !s->params))
        return false;
    return !forbidden_statement(s->sql);
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
    if (!stmt_valid(&s)) {
        errno = EINVAL;
        return -1;
    }
    job *j = job_new(&s, 1);
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
        if (!stmt_valid(&stmts[i])) {
            errno = EINVAL;
            return -1;
        }
    job *j = job_new(stmts, n);
    if (!j) {
        errno = ENOMEM;
        return -1;
    }
    j->tx_done = done;
    j->user = user;
    return submit(d, j);
}

bool db_healthy(const db *d) { return d && d->healthy; }

void db_on_state(db *d, void (*fn)(void *user, bool healthy), void *user)
{
    if (!d)
        return;
    d->state_fn = fn;
    d->state_user = user;
}

const char *db_last_error(const db *d) { return d && d->last_error ? d->last_error : ""; }
size_t db_queued(const db *d) { return d ? d->queued : 0; }
int db_connections_up(const db *d) { return d ? d->up : 0; }
size_t db_in_flight(const db *d) { return d ? d->inflight : 0; }

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
        conn_init(d, d->lconn, d->npool, ROLE_LISTEN);
        d->busy++;
        conn_start(d->lconn);
        d->busy--;
    } else if (d->lconn->state == CS_UP) {
        /* sends the LISTEN now; its completion and fn run from the loop */
        if (d->lconn->listen_target < 0) {
            d->busy++;
            listen_next(d->lconn);
            d->busy--;
        }
    }
    return 0;
}

PGconn *db_connect_blocking(const char *conninfo, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!conninfo) {
        if (err && errlen)
            snprintf(err, errlen, "no connection string");
        return NULL;
    }
    const char *keys[] = {"connect_timeout",  "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "dbname",           "client_encoding",
                          "fallback_application_name", NULL};
    const char *vals[] = {"10", "60", "10", "3", conninfo, "UTF8", "m2p-engine", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg && PQstatus(pg) == CONNECTION_OK)
        return pg;
    char *clean = db_scrub(conninfo, pg ? PQerrorMessage(pg) : "out of memory");
    flatten(clean);
    if (err && errlen)
        snprintf(err, errlen, "%s", clean && *clean ? clean : "connection failed");
    free(clean);
    PQfinish(pg);
    return NULL;
}
