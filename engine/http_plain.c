/* Plain HTTP/1.1 keep-alive GETs on libev (see http_plain.h).
 *
 * A request waits on the client's pending list until its host has an address (numeric, or
 * resolved by http_plain_dns.c and kept HTTP_PLAIN_DNS_CACHE_SECONDS) and a connection:
 * an idle one of its host:port, or a new one within the client's connection caps (the same
 * max_host_connections / max_total_connections as libcurl's path; a full total closes an
 * idle connection of another host, as libcurl does). plain_pump() is the one place that makes
 * those decisions, and it runs whenever one of them may have changed.
 *
 * A connection is one non-blocking socket with one ev_io; it carries at most one request
 * at a time (no pipelining, as libcurl). A reused connection that fails before the first
 * response byte (the server closed it while idle) gets its request back on the pending list
 * once, for a fresh connection: libcurl retries the same way.
 *
 * Completions are never reported from inside http_plain_get() (http.h's promise): a
 * failure found there goes to the deferred list, reported from a zero-delay timer.
 */
#include "http_plain_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void client_release(http_plain *p);

/* Every libev callback runs between plain_enter() and plain_leave(): a completion callback may free the
 * client, whose memory then goes only when the outermost handler is done with it. */
void plain_enter(http_plain *p)
{
    p->dispatching++;
}

void plain_leave(http_plain *p)
{
    if (--p->dispatching == 0 && p->free_requested)
        client_release(p);
}

/* ---- completion ------------------------------------------------------------------------ */

static void pending_remove(http_plain *p, plain_req *r)
{
    if (r->qprev)
        r->qprev->qnext = r->qnext;
    else
        p->pending = r->qnext;
    if (r->qnext)
        r->qnext->qprev = r->qprev;
    else
        p->pending_tail = r->qprev;
    r->qprev = r->qnext = NULL;
}

void plain_pending_push(http_plain *p, plain_req *r, int front)
{
    r->state = REQ_PENDING;
    r->qprev = front ? NULL : p->pending_tail;
    r->qnext = front ? p->pending : NULL;
    if (r->qprev)
        r->qprev->qnext = r;
    else
        p->pending = r;
    if (r->qnext)
        r->qnext->qprev = r;
    else
        p->pending_tail = r;
}

static void req_release(plain_req *r)
{
    http_plain *p = r->p;
    if (p->closing || p->n_spare >= PLAIN_IDLE_REQUESTS) {
        plain_response_free(&r->resp);
        free(r->out.data);
        free(r);
        return;
    }
    plain_response_start(&r->resp, 0);  /* forgets headers and body */
    plain_response_trim(&r->resp, PLAIN_KEEP_BODY_BYTES);
    r->next = p->spare;
    p->spare = r;
    p->n_spare++;
}

/* Reports the request (error NULL = its response) and forgets it. Inside http_plain_get()
 * the report waits for the kick timer. */
void plain_req_finish(plain_req *r, const char *error, int timed_out)
{
    http_plain *p = r->p;
    ev_timer_stop(p->loop, &r->timer);
    if (r->state == REQ_PENDING)
        pending_remove(p, r);
    if (r->conn)
        r->conn->req = NULL;
    r->conn = NULL;
    if (p->in_get && r->state != REQ_DEFERRED) {
        r->state = REQ_DEFERRED;
        r->error = error;
        r->timed_out = timed_out;
        r->qnext = NULL;
        if (p->deferred_tail)
            p->deferred_tail->qnext = r;
        else
            p->deferred = r;
        p->deferred_tail = r;
        ev_timer_start(p->loop, &p->kick);
        return;
    }
    if (r->prev)
        r->prev->next = r->next;
    else
        p->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    p->in_flight--;
    http_response out;
    memset(&out, 0, sizeof out);
    out.body = "";
    out.total_ms = (ev_time() - r->started) * 1000.0;
    if (error) {
        out.error = error;
        out.timed_out = timed_out;
    } else {
        out.ok = 1;
        out.status = r->resp.parser.status_code;
        out.body = r->resp.body ? r->resp.body : "";
        out.body_len = r->resp.body_len;
        out.header_names = (const char *const *)r->resp.names;
        out.header_values = (const char *const *)r->resp.values;
        out.n_headers = r->resp.n_headers;
    }
    plain_enter(p);
    r->done(r->user, &out);
    req_release(r);
    plain_leave(p);
}

void plain_req_fail(plain_req *r, const char *msg)
{
    if (msg != r->error_buf)
        snprintf(r->error_buf, sizeof r->error_buf, "%s", msg);
    plain_req_finish(r, r->error_buf, 0);
}

/* http.c's rule: a timeout before the connection was made is reported as the connect
 * timeout when that is the shorter of the two. Only when the connect deadline is the one
 * armed (plain_req_arm): a request that waited for a connection (a slot under
 * max_host_connections, a name) and ran out of its whole-request time, possibly just as a
 * connection was given to it, ran out of that time. */
static void on_req_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    plain_req *r = w->data;
    http_plain *p = r->p;
    const http_options *o = &p->opts;
    int connecting = r->connect_armed && !r->connected && o->connect_timeout_ms > 0 &&
                     (r->timeout_ms <= 0 || o->connect_timeout_ms < r->timeout_ms);
    snprintf(r->error_buf, sizeof r->error_buf, "%s after %ld ms",
             connecting ? "connect timeout" : "timeout",
             connecting ? o->connect_timeout_ms : r->timeout_ms);
    plain_enter(p);
    if (r->conn)
        plain_conn_close(r->conn);  /* the request is gone from it: nothing else to report */
    plain_req_finish(r, r->error_buf, 1);
    plain_pump(p);
    plain_leave(p);
}

/* (Re)arms the request's timer for the nearer of its own deadline and, while its
 * connection is being made, the connect deadline. */
void plain_req_arm(plain_req *r, ev_tstamp connect_started)
{
    http_plain *p = r->p;
    ev_tstamp now = ev_now(p->loop), at = 0;
    if (r->timeout_ms > 0)
        at = r->started + (double)r->timeout_ms / 1000.0;
    r->connect_armed = 0;
    if (connect_started > 0 && p->opts.connect_timeout_ms > 0) {
        ev_tstamp c = connect_started + (double)p->opts.connect_timeout_ms / 1000.0;
        r->connect_armed = !(at > 0 && at <= c);
        at = r->connect_armed ? c : at;
    }
    ev_timer_stop(p->loop, &r->timer);
    if (at > 0) {
        ev_timer_set(&r->timer, at > now ? at - now : 0.0, 0.0);
        ev_timer_start(p->loop, &r->timer);
    }
}

/* ---- hosts and names ------------------------------------------------------------------- */

static plain_host *host_get(http_plain *p, const plain_url *u)
{
    for (plain_host *h = p->hosts; h; h = h->next)
        if (h->port == u->port && strlen(h->name) == u->host_len &&
            memcmp(h->name, u->host, u->host_len) == 0)
            return h;
    plain_host *h = calloc(1, sizeof *h);
    if (!h || !(h->name = strndup(u->host, u->host_len))) {
        free(h);
        return NULL;
    }
    h->port = u->port;
    /* libcurl leaves out the scheme's default port. */
    if (u->port == 80)
        snprintf(h->host_line, sizeof h->host_line, "Host: %s\r\n", h->name);
    else
        snprintf(h->host_line, sizeof h->host_line, "Host: %s:%d\r\n", h->name, u->port);
    struct sockaddr_in *sin = (struct sockaddr_in *)&h->addrs[0];
    if (inet_pton(AF_INET, h->name, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)u->port);
        h->addr_lens[0] = sizeof *sin;
        h->n_addrs = 1;
        h->numeric = 1;
    }
    h->next = p->hosts;
    p->hosts = h;
    return h;
}

/* Fails the requests that waited for h's name. They leave the pending list first: a callback
 * may add requests for h (a new lookup serves those) but not touch these, unless it frees
 * the client, which finishes them all (hence the stop on closing). */
static void fail_host(http_plain *p, plain_host *h)
{
    plain_req *failing = NULL, **tail = &failing;
    for (plain_req *r = p->pending, *next; r; r = next) {
        next = r->qnext;
        if (r->h != h)
            continue;
        pending_remove(p, r);
        r->state = REQ_ACTIVE;  /* off the list; plain_req_finish() must not unlink it */
        *tail = r;
        tail = &r->qnext;
    }
    /* libcurl's text (CURLE_COULDNT_RESOLVE_HOST); a failure is not cached. */
    char msg[300];
    snprintf(msg, sizeof msg, "Could not resolve host: %s", h->name);
    while (failing && !p->closing) {
        plain_req *r = failing;
        failing = r->qnext;
        r->qnext = NULL;
        plain_req_fail(r, msg);
    }
}

static void on_resolved(void *user, void *key, const struct addrinfo *ai, const char *error)
{
    http_plain *p = user;
    plain_host *h = key;
    (void)error;
    plain_enter(p);
    h->resolving = 0;
    h->n_addrs = 0;
    for (; ai && h->n_addrs < PLAIN_MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof h->addrs[0])
            continue;
        memcpy(&h->addrs[h->n_addrs], ai->ai_addr, ai->ai_addrlen);
        h->addr_lens[h->n_addrs++] = ai->ai_addrlen;
    }
    h->resolved_at = ev_now(p->loop);
    if (h->n_addrs == 0)
        fail_host(p, h);
    plain_pump(p);
    plain_leave(p);
}

/* ---- scheduling ------------------------------------------------------------------------ */

/* Makes room under max_total_connections by closing an idle connection. 0 when done. */
static int close_an_idle(http_plain *p)
{
    for (plain_conn *c = p->conns; c; c = c->all_next)
        if (c->state == CONN_IDLE) {
            plain_conn_close(c);
            return 0;
        }
    return -1;
}

/* Gives `r` a connection if it can have one now; otherwise it stays pending. */
static void pump_one(http_plain *p, plain_req *r)
{
    plain_host *h = r->h;
    ev_tstamp now = ev_now(p->loop);
    while (h->idle) {
        plain_conn *c = h->idle;
        /* Readable while idle: closed, or bytes nobody asked for, which would otherwise be
         * read as this request's response (the idle watcher may not have run yet). */
        if (now - c->last_used > HTTP_PLAIN_MAX_IDLE_SECONDS || !plain_conn_quiet(c)) {
            plain_conn_close(c);
            continue;
        }
        plain_idle_remove(c);
        pending_remove(p, r);
        plain_conn_assign(c, r);
        return;
    }
    const http_options *o = &p->opts;
    if (o->max_host_connections > 0 && h->n_conns >= (size_t)o->max_host_connections)
        return;
    if (o->max_total_connections > 0 && p->n_conns >= (size_t)o->max_total_connections &&
        close_an_idle(p) != 0)
        return;
    if (!h->numeric && (h->n_addrs == 0 || now - h->resolved_at > HTTP_PLAIN_DNS_CACHE_SECONDS)) {
        if (!h->resolving && plain_dns_start(p->dns, h->name, h->port, h) != 0) {
            plain_req_fail(r, "Out of memory");
            return;
        }
        h->resolving = 1;
        return;
    }
    pending_remove(p, r);
    plain_conn_open(p, h, r);
}

/* Re-entered from inside (a failure it causes frees a slot): the outer call goes round
 * again instead. */
void plain_pump(http_plain *p)
{
    if (p->pumping) {
        p->pump_again = 1;
        return;
    }
    p->pumping = 1;
    do {
        p->pump_again = 0;
        for (plain_req *r = p->pending, *next; r && !p->closing; r = next) {
            next = r->qnext;
            pump_one(p, r);
        }
    } while (p->pump_again && !p->closing);
    p->pumping = 0;
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    http_plain *p = w->data;
    plain_enter(p);
    while (p->deferred && !p->closing) {
        plain_req *r = p->deferred;
        p->deferred = r->qnext;
        if (!p->deferred)
            p->deferred_tail = NULL;
        plain_req_finish(r, r->error, r->timed_out);
    }
    plain_pump(p);
    plain_leave(p);
}

/* ---- public API ------------------------------------------------------------------------ */

http_plain *http_plain_new(struct ev_loop *loop, const http_options *opts)
{
    http_plain *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    p->opts = *opts;
    ev_timer_init(&p->kick, on_kick, 0.0, 0.0);
    p->kick.data = p;
    p->dns = plain_dns_new(loop, on_resolved, p);
    if (!p->dns) {
        free(p);
        return NULL;
    }
    /* Process-wide in http_parser; every caller sets the same value. */
    http_parser_set_max_header_size(HTTP_PLAIN_MAX_HEADER_BYTES);
    return p;
}

static plain_req *req_acquire(http_plain *p)
{
    plain_req *r = p->spare;
    if (r) {
        p->spare = r->next;
        p->n_spare--;
    } else if (!(r = calloc(1, sizeof *r))) {
        return NULL;
    }
    plain_response resp = r->resp;
    plain_buf out = r->out;
    memset(r, 0, sizeof *r);
    r->resp = resp;
    r->out = out;
    r->p = p;
    ev_timer_init(&r->timer, on_req_timer, 0.0, 0.0);
    r->timer.data = r;
    return r;
}

int http_plain_get(http_plain *p, const http_request *req, http_done_fn done, void *user)
{
    plain_url u;
    if (plain_request_check(req, &u) != 0)
        return 1;
    if (!p || p->closing || p->free_requested)
        return -1;
    plain_host *h = host_get(p, &u);
    plain_req *r = h ? req_acquire(p) : NULL;
    if (!r)
        return -1;
    r->h = h;
    if (plain_request_build(&r->out, p->opts.user_agent, h->host_line, req, &u) != 0) {
        req_release(r);
        return -1;
    }
    r->done = done;
    r->user = user;
    /* The loop's clock stops while the caller works outside it (a long start-up, a big
     * reload): timers armed from a stale ev_now() would expire at once, so it is brought
     * up to date first, and every deadline of this client is on that one clock. */
    ev_now_update(p->loop);
    r->started = ev_now(p->loop);
    r->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : p->opts.timeout_ms;
    r->next = p->reqs;
    if (p->reqs)
        p->reqs->prev = r;
    p->reqs = r;
    p->in_flight++;
    plain_pending_push(p, r, 0);
    plain_req_arm(r, 0);
    p->in_get++;
    plain_pump(p);
    p->in_get--;
    return 0;
}

size_t http_plain_in_flight(const http_plain *p)
{
    return p ? p->in_flight : 0;
}

static void client_release(http_plain *p)
{
    while (p->conns)
        plain_conn_close(p->conns);
    while (p->hosts) {
        plain_host *h = p->hosts;
        p->hosts = h->next;
        free(h->name);
        free(h);
    }
    while (p->spare) {
        plain_req *r = p->spare;
        p->spare = r->next;
        plain_response_free(&r->resp);
        free(r->out.data);
        free(r);
    }
    plain_dns_free(p->dns);
    free(p);
}

void http_plain_free(http_plain *p)
{
    if (!p || p->closing)
        return;
    /* Cancelled now, while the http_client that owns this one still exists, so that a
     * callback calling http_get() on it is refused rather than reaching freed memory. */
    p->closing = 1;
    ev_timer_stop(p->loop, &p->kick);
    p->deferred = p->deferred_tail = NULL;
    plain_enter(p);
    while (p->reqs) {
        plain_req *r = p->reqs;
        if (r->conn)
            plain_conn_close(r->conn);
        if (r->state == REQ_DEFERRED)
            r->state = REQ_ACTIVE;
        plain_req_finish(r, "cancelled", 0);
    }
    p->free_requested = 1;
    plain_leave(p);
}
