/* PostgreSQL access: one job, the unit of work of the queue.
 *
 * A job is what one db_query() or db_transaction() asked for: 1..n statements that run as
 * one implicit transaction (one Sync), and one callback. This file checks the statements
 * (refusing the transaction-control and COPY statements that would break that rule), copies
 * them with their parameters into a single allocation (so the caller's memory is free as
 * soon as db_query returns), and turns the job's results or failure into the db_result(s)
 * of its callback.
 *
 * Why a seam here: the queue (db_queue.c) and the connections (db_conn.c) only move jobs
 * around; the contract with the caller (exactly one callback, all-or-nothing results, which
 * error text and sqlstate, outcome_unknown) is decided in one place, dbi_complete_job.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"

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
    while (dbi_ident_char(*p)) {
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

bool dbi_stmt_valid(const db_stmt *s)
{
    if (!s->sql || s->nparams < 0 || s->nparams > DB_MAX_PARAMS ||
        (s->nparams > 0 && !s->params))
        return false;
    return !forbidden_statement(s->sql);
}

job *dbi_job_new(const db_stmt *stmts, int n)
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

void dbi_job_free(job *j)
{
    for (int i = 0; i < j->n; i++)
        PQclear(j->st[i].res);
    PQclear(j->err);
    free(j);
}

/* (See db_internal.h.) The job's callback may free the db (d->busy keeps it alive until
 * dbi_leave); the job itself is freed here after the callback returns. */
void dbi_complete_job(db *d, job *j, const char *local, const char *local_state, int unknown)
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
        char *e = dbi_server_error_text(d, j->err, &state);
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
    dbi_leave(d);
    if (res != &one)
        free(res);
    free(text);
    dbi_job_free(j);
}

void dbi_fail_jobs(db *d, job *list, const char *msg, const char *state, int unknown)
{
    while (list) {
        job *j = list;
        list = j->next;
        j->next = NULL;
        dbi_complete_job(d, j, msg, state, unknown);
    }
}
