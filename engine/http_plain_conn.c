/* Connections of the plain HTTP client (see http_plain.c for the whole picture).
 *
 * One non-blocking socket, one ev_io, at most one request at a time. The states: connecting
 * (trying the host's addresses in turn), busy (sending, then reading into http_parser), idle
 * (on its host's list, watched so that a server closing it is noticed at once). Every
 * failure goes through conn_fail(), which decides between "retry on a fresh connection" and
 * "report".
 */
#include "http_plain_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Watches c->fd for `events` (0 = not at all). An idle connection's watcher is unref'd: a
 * kept-alive connection must not keep ev_run() going, as libcurl's do not. */
static void conn_events(plain_conn *c, int events)
{
    http_plain *p = c->p;
    int unref = c->state == CONN_IDLE;
    /* Same events (io.events also carries libev's flags): only the reference changes, and
     * the watcher is not restarted, which would cost an epoll_ctl per request. */
    if ((c->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&c->io)) {
        if (unref != c->unrefd) {
            if (unref)
                ev_unref(p->loop);
            else
                ev_ref(p->loop);
            c->unrefd = unref;
        }
        return;
    }
    if (c->unrefd) {
        ev_ref(p->loop);
        c->unrefd = 0;
    }
    ev_io_stop(p->loop, &c->io);
    if (!events)
        return;
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(p->loop, &c->io);
    if (unref) {
        ev_unref(p->loop);
        c->unrefd = 1;
    }
}

void plain_idle_remove(plain_conn *c)
{
    for (plain_conn **pp = &c->h->idle; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    c->next = NULL;
}

void plain_conn_close(plain_conn *c)
{
    http_plain *p = c->p;
    if (c->state == CONN_IDLE)
        plain_idle_remove(c);
    if (c->req)
        c->req->conn = NULL;
    c->state = CONN_BUSY;
    conn_events(c, 0);
    if (c->fd >= 0)
        close(c->fd);
    c->h->n_conns--;
    p->n_conns--;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        p->conns = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    free(c);
}

/* A failure on the connection of an active request: on a reused connection before any
 * response byte, the request goes back for a fresh connection (once). */
static void conn_fail(plain_conn *c, const char *msg)
{
    plain_req *r = c->req;
    http_plain *p = c->p;
    int retry = r && c->reused && !r->got_bytes && !r->retried;
    plain_conn_close(c);
    if (r && retry) {
        r->retried = 1;
        r->connected = 0;
        plain_pending_push(p, r, 1);
        plain_req_arm(r, 0);
        plain_pump(p);  /* inside plain_pump(): makes it go round again */
    } else if (r) {
        plain_req_fail(r, msg);
    }
}

static int conn_connect(plain_conn *c);

static void conn_send(plain_conn *c)
{
    plain_req *r = c->req;
    while (r->out_off < r->out.len) {
        ssize_t n = send(c->fd, r->out.data + r->out_off, r->out.len - r->out_off,
                         MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_events(c, EV_READ | EV_WRITE);
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "Send failure: %s", strerror(errno));
            conn_fail(c, msg);
            return;
        }
        r->out_off += (size_t)n;
    }
    conn_events(c, EV_READ);
}

void plain_conn_assign(plain_conn *c, plain_req *r)
{
    c->req = r;
    r->conn = c;
    r->state = REQ_ACTIVE;
    r->out_off = 0;  /* a retried request is sent again from its first byte */
    plain_response_start(&r->resp, r->p->opts.max_body_bytes);
    if (c->state == CONN_CONNECTING) {
        plain_req_arm(r, c->connect_started);
        return;
    }
    c->state = CONN_BUSY;
    r->connected = 1;
    plain_req_arm(r, 0);
    conn_send(c);
}

/* Back on its host's idle list after a complete response that allows keep-alive. */
void plain_conn_idle(plain_conn *c)
{
    c->req = NULL;
    c->state = CONN_IDLE;
    c->reused = 1;
    c->last_used = ev_now(c->p->loop);
    c->next = c->h->idle;
    c->h->idle = c;
    conn_events(c, EV_READ);  /* a server closing it is noticed at once */
}

int plain_conn_quiet(plain_conn *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Kept only when the response ended where the bytes read did and the whole request was sent
 * (the rest of a half-sent request would be glued in front of the next one). */
static void conn_response_done(plain_conn *c, const char *leftover_end, const char *end)
{
    plain_req *r = c->req;
    if (http_should_keep_alive(&r->resp.parser) && leftover_end == end &&
        r->out_off == r->out.len)
        plain_conn_idle(c);
    else
        plain_conn_close(c);
    plain_req_finish(r, NULL, 0);
}

static const char *parse_failure(plain_req *r)
{
    if (r->resp.failure)
        return r->resp.failure;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->resp.parser);
    if (e == HPE_HEADER_OVERFLOW)
        return "response headers too large";
    snprintf(r->error_buf, sizeof r->error_buf, "Weird server reply (%s)",
             http_errno_description(e));
    return r->error_buf;
}

/* End of the stream: complete only if the response's length is "until close". */
static void conn_eof(plain_conn *c)
{
    plain_req *r = c->req;
    if (!r->got_bytes) {
        conn_fail(c, "Empty reply from server");
        return;
    }
    http_parser_execute(&r->resp.parser, &plain_response_settings, NULL, 0);
    if (r->resp.complete) {
        plain_conn_close(c);
        plain_req_finish(r, NULL, 0);
        return;
    }
    if (HTTP_PARSER_ERRNO(&r->resp.parser) != HPE_OK &&
        HTTP_PARSER_ERRNO(&r->resp.parser) != HPE_INVALID_EOF_STATE) {
        conn_fail(c, parse_failure(r));
        return;
    }
    conn_fail(c, "transfer closed with outstanding read data remaining");
}

static void conn_read(plain_conn *c)
{
    char buf[16384];
    plain_req *r = c->req;
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "Recv failure: %s", strerror(errno));
            conn_fail(c, msg);
            return;
        }
        if (n == 0) {
            conn_eof(c);
            return;
        }
        r->got_bytes = 1;
        size_t used = http_parser_execute(&r->resp.parser, &plain_response_settings, buf,
                                          (size_t)n);
        if (r->resp.complete) {
            conn_response_done(c, buf + used, buf + n);
            return;
        }
        if (HTTP_PARSER_ERRNO(&r->resp.parser) != HPE_OK) {
            r->got_bytes = 1;  /* never retried: the server answered */
            conn_fail(c, parse_failure(r));
            return;
        }
        if ((size_t)n < sizeof buf)
            return;
    }
}

static void conn_connected(plain_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        conn_events(c, 0);
        close(c->fd);
        c->fd = -1;
        c->addr++;
        c->last_errno = err;
        conn_connect(c);
        return;
    }
    c->state = CONN_BUSY;
    plain_req *r = c->req;
    if (!r) {  /* not expected (a request leaving closes its connection); keep it */
        plain_conn_idle(c);
        c->reused = 0;
        return;
    }
    r->connected = 1;
    plain_req_arm(r, 0);
    conn_send(c);
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    plain_conn *c = (plain_conn *)w;
    if (c->state == CONN_CONNECTING) {
        conn_connected(c);
        return;
    }
    if (c->state == CONN_IDLE) {  /* closed, or bytes nobody asked for: not reusable */
        plain_conn_close(c);
        return;
    }
    if (revents & EV_WRITE)
        conn_send(c);
    else if (revents & EV_READ)
        conn_read(c);
}

static void on_conn_event(struct ev_loop *loop, ev_io *w, int revents)
{
    http_plain *p = ((plain_conn *)w)->p;
    plain_enter(p);
    on_conn_io(loop, w, revents);
    plain_pump(p);
    plain_leave(p);
}

/* Tries the host's addresses from c->addr on. 0 while connecting; -1 when none is left
 * (the connection is closed and its request failed). */
static int conn_connect(plain_conn *c)
{
    plain_host *h = c->h;
    int err = c->last_errno ? c->last_errno : ECONNREFUSED;
    for (; c->addr < h->n_addrs; c->addr++) {
        const struct sockaddr *sa = (const struct sockaddr *)&h->addrs[c->addr];
        c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  /* as libcurl */
        if (connect(c->fd, sa, h->addr_lens[c->addr]) == 0 || errno == EINPROGRESS) {
            conn_events(c, EV_WRITE);
            return 0;
        }
        err = errno;
        close(c->fd);
        c->fd = -1;
    }
    /* libcurl's text (CURLE_COULDNT_CONNECT), which operators already grep for. */
    long ms = (long)((ev_now(c->p->loop) - c->connect_started) * 1000.0);
    char msg[400];
    snprintf(msg, sizeof msg, "Failed to connect to %s port %d after %ld ms: %s", h->name,
             h->port, ms, err == ECONNREFUSED ? "Couldn't connect to server" : strerror(err));
    conn_fail(c, msg);
    return -1;
}

plain_conn *plain_conn_open(http_plain *p, plain_host *h, plain_req *r)
{
    plain_conn *c = calloc(1, sizeof *c);
    if (!c) {
        plain_req_fail(r, "Out of memory");
        return NULL;
    }
    c->p = p;
    c->h = h;
    c->fd = -1;
    c->state = CONN_CONNECTING;
    c->connect_started = ev_now(p->loop);
    ev_init(&c->io, on_conn_event);
    h->n_conns++;
    p->n_conns++;
    c->all_next = p->conns;
    if (p->conns)
        p->conns->all_prev = c;
    p->conns = c;
    plain_conn_assign(c, r);
    return conn_connect(c) == 0 ? c : NULL;
}
