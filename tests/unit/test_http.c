/* Unit tests for engine/http.c: the async client against a real HTTP/1.1 server on
 * 127.0.0.1 running on the same libev loop. The server is a small hand-written one (below)
 * rather than libmicrohttpd, so the test needs nothing beyond libev and can count TCP
 * connections (keep-alive reuse), hold responses back (timeouts, cancellation) and send
 * interim 1xx responses. Single-threaded: client and server take turns on one loop. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* accept4, memmem */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "check.h"
#include "http.h"

#ifndef M2P_VERSION
#define M2P_VERSION "0.0.0-dev" /* same fallback as http.c */
#endif

/* ======================================================================================
 * Test server: HTTP/1.1, keep-alive, one request at a time per connection.
 * ====================================================================================== */

typedef struct server server;
typedef struct conn {
    ev_io rio, wio;
    ev_timer delay;
    int fd;
    server *s;
    char in[8192];
    size_t in_len;
    char *out;
    size_t out_len, out_off;
    char *pending;          /* response held back by a /slow/ route */
    size_t pending_len;
    struct conn *prev, *next;
} conn;

struct server {
    struct ev_loop *loop;
    int fd, port;
    ev_io accept_w;
    int connections, requests, proxied;
    conn *conns;
};

static const unsigned char GZIP_BODY[] = {  /* gzip of "gzip payload " x 50, mtime 0 */
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x4b, 0xaf, 0xca, 0x2c,
    0x50, 0x28, 0x48, 0xac, 0xcc, 0xc9, 0x4f, 0x4c, 0x51, 0x48, 0x1f, 0xe5, 0x8c, 0x72,
    0x06, 0x8a, 0x03, 0x00, 0x30, 0x7f, 0x2a, 0xba, 0x8a, 0x02, 0x00, 0x00};

static void conn_close(conn *k)
{
    server *s = k->s;
    ev_io_stop(s->loop, &k->rio);
    ev_io_stop(s->loop, &k->wio);
    ev_timer_stop(s->loop, &k->delay);
    close(k->fd);
    if (k->prev)
        k->prev->next = k->next;
    else
        s->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    free(k->out);
    free(k->pending);
    free(k);
}

static void conn_flush(conn *k)
{
    while (k->out_off < k->out_len) {
        ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(k->s->loop, &k->wio);
            return;
        }
        if (n <= 0) {
            conn_close(k);
            return;
        }
        k->out_off += (size_t)n;
    }
    ev_io_stop(k->s->loop, &k->wio);
}

static void conn_queue(conn *k, const char *data, size_t len)
{
    k->out = realloc(k->out, k->out_len + len);
    memcpy(k->out + k->out_len, data, len);
    k->out_len += len;
    conn_flush(k);
}

/* Builds a complete response; `extra` is zero or more "Name: value\r\n" lines. */
static char *make_response(int status, const char *extra, const void *body, size_t body_len,
                           size_t *out_len)
{
    const char *fmt = "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n";
    int n = snprintf(NULL, 0, fmt, status, body_len, extra);
    char *r = malloc((size_t)n + 1 + body_len);
    snprintf(r, (size_t)n + 1, fmt, status, body_len, extra);
    memcpy(r + n, body, body_len);
    *out_len = (size_t)n + body_len;
    return r;
}

static void respond(conn *k, int status, const char *extra, const void *body, size_t len)
{
    size_t n;
    char *r = make_response(status, extra, body, len, &n);
    conn_queue(k, r, n);
    free(r);
}

static void on_delay(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    conn *k = w->data;
    char *p = k->pending;
    k->pending = NULL;
    conn_queue(k, p, k->pending_len);
    free(p);
}

/* Copies the value of request header `name` (case-insensitive) into out. */
static void request_header(const char *req, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *l = strstr(req, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':') {
            const char *v = l + 3 + nl;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(strstr(v, "\r\n") - v);
            snprintf(out, cap, "%.*s", (int)(vl < cap ? vl : cap - 1), v);
            return;
        }
    }
}

static void route_bytes(conn *k, size_t n)
{
    char *body = malloc(n ? n : 1);
    memset(body, 'x', n);
    respond(k, 200, "", body, n);
    free(body);
}

static void route_redirect(conn *k, int hops)
{
    char extra[128];
    if (hops <= 0) {
        respond(k, 200, "X-Final: yes\r\n", "landed", 6);
        return;
    }
    snprintf(extra, sizeof extra, "Location: /redirect/%d\r\nX-Hop: %d\r\n", hops - 1, hops);
    respond(k, 302, extra, "moved", 5);
}

/* A redirect to an absolute URL: another port, another name for this host, or this host. */
static void route_redirect_to(conn *k, const char *host, int port)
{
    char extra[128];
    snprintf(extra, sizeof extra, "Location: http://%s:%d/hello\r\n", host, port);
    respond(k, 302, extra, "moved", 5);
}

static void route_slow(conn *k, int ms)
{
    k->pending = make_response(200, "", "slow", 4, &k->pending_len);
    ev_timer_set(&k->delay, ms / 1000.0, 0.0);
    ev_timer_start(k->s->loop, &k->delay);
}

static void route_hello(conn *k, const char *req)
{
    char ua[256], custom[256], encoding[256], extra[1100];
    request_header(req, "User-Agent", ua, sizeof ua);
    request_header(req, "X-Custom", custom, sizeof custom);
    request_header(req, "Accept-Encoding", encoding, sizeof encoding);
    snprintf(extra, sizeof extra,
             "Content-Type: text/plain\r\nX-Mixed-Case:   padded value  \r\n"
             "X-UA-Echo: %s\r\nX-Custom-Echo: %s\r\nX-Encoding-Echo: %s\r\n"
             "X-Method-Echo: %.*s\r\n", ua, custom, encoding, (int)strcspn(req, " "), req);
    respond(k, 200, extra, "hello world", 11);
}

static void route_many_headers(conn *k)
{
    char extra[300 * 16] = "";
    for (int i = 0; i < 300; i++)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "X-H-%d: v\r\n", i);
    respond(k, 200, extra, "", 0);
}

static void route(conn *k, const char *req)
{
    char path[512];
    int num = 0;
    if (sscanf(req, "GET %511s HTTP/1.1", path) != 1 &&
        sscanf(req, "POST %511s HTTP/1.1", path) != 1) {
        respond(k, 400, "Connection: close\r\n", "", 0);
        return;
    }
    if (strncmp(path, "http://", 7) == 0) {  /* absolute-form: we are being used as a proxy */
        k->s->proxied++;
        const char *slash = strchr(path + 7, '/');
        memmove(path, slash ? slash : "/", strlen(slash ? slash : "/") + 1);
    }
    if (strcmp(path, "/hello") == 0)
        route_hello(k, req);
    else if (sscanf(path, "/status/%d", &num) == 1)
        respond(k, num, "", "status body", 11);
    else if (sscanf(path, "/bytes/%d", &num) == 1)
        route_bytes(k, (size_t)num);
    else if (sscanf(path, "/slow/%d", &num) == 1)
        route_slow(k, num);
    else if (sscanf(path, "/redirect/%d", &num) == 1)
        route_redirect(k, num);
    else if (strcmp(path, "/redirect-ftp") == 0)
        respond(k, 302, "Location: ftp://127.0.0.1/x\r\n", "", 0);
    else if (sscanf(path, "/redirect-to/%d", &num) == 1)
        route_redirect_to(k, "127.0.0.1", num);
    else if (strcmp(path, "/redirect-host") == 0)
        route_redirect_to(k, "localhost", k->s->port);
    else if (strcmp(path, "/many-headers") == 0)
        route_many_headers(k);
    else if (strcmp(path, "/gzip") == 0)
        respond(k, 200, "Content-Encoding: gzip\r\n", GZIP_BODY, sizeof GZIP_BODY);
    else if (strcmp(path, "/early-hints") == 0) {
        const char *hint = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n";
        conn_queue(k, hint, strlen(hint));
        respond(k, 200, "X-After-Hints: 1\r\n", "final", 5);
    } else
        respond(k, 404, "", "no route", 8);
}

/* Serves every complete request in the input buffer; a body (Content-Length) is skipped. */
static void conn_process(conn *k)
{
    char *end;
    while (!k->pending && (end = memmem(k->in, k->in_len, "\r\n\r\n", 4))) {
        size_t head_len = (size_t)(end - k->in) + 4;
        char req[sizeof k->in + 1], length[32];
        memcpy(req, k->in, head_len);
        req[head_len] = '\0';
        request_header(req, "Content-Length", length, sizeof length);
        size_t req_len = head_len + strtoul(length, NULL, 10);
        if (req_len > k->in_len)
            return;  /* the body is still coming */
        memmove(k->in, k->in + req_len, k->in_len - req_len);
        k->in_len -= req_len;
        k->s->requests++;
        route(k, req);
    }
}

static void on_conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    conn *k = w->data;
    ssize_t n = recv(k->fd, k->in + k->in_len, sizeof k->in - 1 - k->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        conn_close(k);  /* EOF, error, or a request larger than the buffer */
        return;
    }
    k->in_len += (size_t)n;
    conn_process(k);
}

static void on_conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_flush(w->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    server *s = w->data;
    int fd;
    while ((fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        conn *k = calloc(1, sizeof *k);
        k->fd = fd;
        k->s = s;
        ev_io_init(&k->rio, on_conn_read, fd, EV_READ);
        ev_io_init(&k->wio, on_conn_write, fd, EV_WRITE);
        ev_init(&k->delay, on_delay);
        k->rio.data = k->wio.data = k->delay.data = k;
        k->next = s->conns;
        if (s->conns)
            s->conns->prev = k;
        s->conns = k;
        s->connections++;
        ev_io_start(loop, &k->rio);
    }
}

static int listen_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("test server socket");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void server_start(server *s, struct ev_loop *loop)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->fd = listen_socket(&s->port);
    if (listen(s->fd, 4096) != 0) {
        perror("listen");
        exit(2);
    }
    ev_io_init(&s->accept_w, on_accept, s->fd, EV_READ);
    s->accept_w.data = s;
    ev_io_start(loop, &s->accept_w);
}

static void server_stop(server *s)
{
    while (s->conns)
        conn_close(s->conns);
    ev_io_stop(s->loop, &s->accept_w);
    close(s->fd);
}

/* A port with nothing listening: bound, then closed without listen(). */
static int dead_port(void)
{
    int port;
    close(listen_socket(&port));
    return port;
}

/* ======================================================================================
 * Client side helpers
 * ====================================================================================== */

typedef struct result {
    int called, ok, timed_out;
    long status;
    char *error, *body;
    size_t body_len, n_headers;
    char **names, **values;
    double total_ms;
    /* optional hooks for tests that act from inside the callback */
    void (*then)(struct result *);
    void *ctx;
} result;

static struct ev_loop *g_loop;
static server g_srv;
static int g_completed;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void on_done(void *user, const http_response *r)
{
    result *res = user;
    res->called++;
    res->ok = r->ok;
    res->status = r->status;
    res->timed_out = r->timed_out;
    res->error = dup_or_null(r->error);
    res->body = malloc(r->body_len + 1);
    memcpy(res->body, r->body, r->body_len + 1);  /* includes the promised NUL */
    res->body_len = r->body_len;
    res->n_headers = r->n_headers;
    res->names = calloc(r->n_headers + 1, sizeof *res->names);
    res->values = calloc(r->n_headers + 1, sizeof *res->values);
    for (size_t i = 0; i < r->n_headers; i++) {
        res->names[i] = strdup(r->header_names[i]);
        res->values[i] = strdup(r->header_values[i]);
    }
    res->total_ms = r->total_ms;
    g_completed++;
    if (res->then)
        res->then(res);
}

static void result_clear(result *r)
{
    free(r->error);
    free(r->body);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    memset(r, 0, sizeof *r);
}

static const char *result_header(const result *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the loop until `target` completions have been seen (or 20 s pass). */
static void run_until(int target)
{
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, 20.0, 0.0);
    ev_timer_start(g_loop, &deadline);
    ev_tstamp stop = ev_time() + 20.0;
    while (g_completed < target && ev_time() < stop)
        ev_run(g_loop, EVRUN_ONCE);
    ev_timer_stop(g_loop, &deadline);
}

static char *url(const char *path)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "http://127.0.0.1:%d%s", g_srv.port, path);
    return buf;
}

/* One request on a fresh client; waits for it. */
static void fetch_with(const http_options *o, const char *target, http_redirects redirects,
                       result *res)
{
    http_client *c = http_client_new(g_loop, o);
    http_request req = {.url = target, .redirects = redirects};
    memset(res, 0, sizeof *res);
    g_completed = 0;
    CHECK(c && http_get(c, &req, on_done, res) == 0, "could not start %s", target);
    run_until(1);
    CHECK(res->called == 1, "callback called %d times for %s", res->called, target);
    CHECK(http_in_flight(c) == 0, "in_flight %zu after completion", http_in_flight(c));
    http_client_free(c);
    CHECK(res->called == 1, "callback called again by free for %s", target);
}

static void fetch(const http_options *o, const char *target, result *res)
{
    fetch_with(o, target, HTTP_REDIRECTS_NONE, res);
}

/* ======================================================================================
 * Tests
 * ====================================================================================== */

static void test_200_body_and_headers(void)
{
    http_client *c = http_client_new(g_loop, NULL);
    const char *hdrs[] = {"X-Custom: abc 123"};
    http_request req = {.url = url("/hello"), .headers = hdrs, .n_headers = 1};
    result r = {0};
    g_completed = 0;
    CHECK(http_get(c, &req, on_done, &r) == 0, "start");
    CHECK(r.called == 0, "callback must not run inside http_get");
    CHECK(http_in_flight(c) == 1, "in_flight %zu", http_in_flight(c));
    run_until(1);
    CHECK(r.ok == 1 && r.status == 200, "ok=%d status=%ld err=%s", r.ok, r.status, r.error);
    CHECK(r.body_len == 11 && strcmp(r.body, "hello world") == 0, "body '%s'", r.body);
    CHECK(r.error == NULL, "error on success: %s", r.error);
    const char *ct = result_header(&r, "content-type");
    CHECK(ct && strcmp(ct, "text/plain") == 0, "content-type '%s'", ct ? ct : "(none)");
    const char *mixed = result_header(&r, "x-mixed-case");
    CHECK(mixed && strcmp(mixed, "padded value") == 0, "x-mixed-case '%s'", mixed ? mixed : "-");
    const char *ua = result_header(&r, "x-ua-echo");
    CHECK(ua && strcmp(ua, "m2p-engine/" M2P_VERSION) == 0, "user agent '%s'", ua ? ua : "-");
    const char *custom = result_header(&r, "x-custom-echo");
    CHECK(custom && strcmp(custom, "abc 123") == 0, "custom header '%s'", custom ? custom : "-");
    CHECK(r.total_ms >= 0 && r.total_ms < 5000, "total_ms %f", r.total_ms);
    result_clear(&r);
    http_client_free(c);
}

static void test_error_statuses(void)
{
    result r;
    fetch(NULL, url("/status/404"), &r);
    CHECK(r.ok == 1 && r.status == 404, "404: ok=%d status=%ld", r.ok, r.status);
    CHECK(strcmp(r.body, "status body") == 0, "404 body '%s'", r.body);
    result_clear(&r);
    fetch(NULL, url("/status/503"), &r);
    CHECK(r.ok == 1 && r.status == 503, "503: ok=%d status=%ld", r.ok, r.status);
    result_clear(&r);
}

static void test_body_cap(void)
{
    http_options o;
    http_options_defaults(&o);
    o.max_body_bytes = 1000;
    result r;
    fetch(&o, url("/bytes/1000"), &r);
    CHECK(r.ok == 1 && r.body_len == 1000, "at cap: ok=%d len=%zu err=%s", r.ok, r.body_len,
          r.error);
    result_clear(&r);
    fetch(&o, url("/bytes/1001"), &r);
    CHECK(r.ok == 0 && r.error && strcmp(r.error, "response body too large") == 0,
          "over cap: ok=%d err=%s", r.ok, r.error);
    CHECK(r.body_len == 0 && r.n_headers == 0, "failure carries no body/headers");
    result_clear(&r);
    fetch(NULL, url("/bytes/3000000"), &r);  /* default 1 MiB cap, written in pieces */
    CHECK(r.ok == 0 && r.error && strcmp(r.error, "response body too large") == 0,
          "default cap: ok=%d err=%s", r.ok, r.error);
    result_clear(&r);
}

static void test_timeout(void)
{
    http_options o;
    http_options_defaults(&o);
    o.timeout_ms = 300;
    result r;
    ev_tstamp t0 = ev_time();
    fetch(&o, url("/slow/4000"), &r);
    double elapsed = ev_time() - t0;
    CHECK(r.ok == 0 && r.timed_out == 1, "ok=%d timed_out=%d err=%s", r.ok, r.timed_out, r.error);
    CHECK(r.error && strcmp(r.error, "timeout after 300 ms") == 0, "error '%s'", r.error);
    CHECK(elapsed < 5.0 && r.total_ms < 5000, "300 ms timeout took %.3f s", elapsed);
    result_clear(&r);
}

static void test_connection_refused(void)
{
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%d/", dead_port());
    result r;
    fetch(NULL, target, &r);
    CHECK(r.ok == 0 && r.timed_out == 0, "ok=%d timed_out=%d", r.ok, r.timed_out);
    CHECK(r.error && r.error[0], "refused has an error message");
    printf("  refused error: %s\n", r.error ? r.error : "(null)");
    result_clear(&r);
}

static void test_many_concurrent(void)
{
    enum { N = 500 };
    http_client *c = http_client_new(g_loop, NULL);
    static result rs[N];
    http_request req = {.url = url("/bytes/2000")};
    int started = 0;
    g_completed = 0;
    for (int i = 0; i < N; i++)
        started += http_get(c, &req, on_done, &rs[i]) == 0;
    CHECK(started == N, "started %d of %d", started, N);
    CHECK(http_in_flight(c) == N, "in_flight %zu", http_in_flight(c));
    run_until(N);
    int good = 0;
    for (int i = 0; i < N; i++) {
        good += rs[i].called == 1 && rs[i].ok && rs[i].status == 200 && rs[i].body_len == 2000;
        result_clear(&rs[i]);
    }
    CHECK(good == N, "%d of %d completed with 200 and full body", good, N);
    CHECK(http_in_flight(c) == 0, "in_flight %zu", http_in_flight(c));
    http_client_free(c);
}

static void test_keepalive_reuse(void)
{
    enum { N = 60 };
    http_options o;
    http_options_defaults(&o);
    o.max_host_connections = 4;
    http_client *c = http_client_new(g_loop, &o);
    static result rs[N];
    http_request req = {.url = url("/hello")};
    int conns0 = g_srv.connections, reqs0 = g_srv.requests;
    g_completed = 0;
    for (int i = 0; i < N; i++)
        http_get(c, &req, on_done, &rs[i]);
    run_until(N);
    int good = 0;
    for (int i = 0; i < N; i++) {
        good += rs[i].ok && rs[i].status == 200;
        result_clear(&rs[i]);
    }
    int conns = g_srv.connections - conns0, reqs = g_srv.requests - reqs0;
    CHECK(good == N, "%d of %d ok", good, N);
    CHECK(reqs == N, "server saw %d requests", reqs);
    CHECK(conns >= 1 && conns <= 4, "%d connections for %d requests (limit 4)", conns, N);
    /* A later request reuses an idle cached connection: no new connection at all. */
    result r = {0};
    g_completed = 0;
    http_get(c, &req, on_done, &r);
    run_until(1);
    CHECK(r.ok && g_srv.connections - conns0 == conns, "follow-up opened a new connection");
    result_clear(&r);
    http_client_free(c);
}

static void test_gzip(void)
{
    result r;
    fetch(NULL, url("/gzip"), &r);
    char expect[13 * 50 + 1] = "";
    for (int i = 0; i < 50; i++)
        strcat(expect, "gzip payload ");
    CHECK(r.ok && r.status == 200, "ok=%d status=%ld err=%s", r.ok, r.status, r.error);
    CHECK(r.body_len == strlen(expect) && strcmp(r.body, expect) == 0,
          "decoded body len %zu", r.body_len);
    result_clear(&r);
}

/* Same-host redirects are followed (up to max_redirects), only over http(s). */
static void test_redirects_same_host(void)
{
    result r;
    const http_redirects same = HTTP_REDIRECTS_SAME_HOST;
    fetch_with(NULL, url("/redirect/3"), same, &r);  /* exactly the default limit of 3 */
    CHECK(r.ok && r.status == 200 && strcmp(r.body, "landed") == 0,
          "3 hops: ok=%d status=%ld body=%s err=%s", r.ok, r.status, r.body, r.error);
    CHECK(result_header(&r, "x-final") != NULL, "final response headers present");
    CHECK(result_header(&r, "x-hop") == NULL, "redirect headers leaked into final response");
    CHECK(result_header(&r, "location") == NULL, "location header leaked");
    result_clear(&r);
    char self[64];
    snprintf(self, sizeof self, "/redirect-to/%d", g_srv.port);
    fetch_with(NULL, url(self), same, &r);  /* an absolute URL naming this host and port */
    CHECK(r.ok && r.status == 200 && strcmp(r.body, "hello world") == 0,
          "absolute same-host redirect: ok=%d status=%ld err=%s", r.ok, r.status, r.error);
    result_clear(&r);
    fetch_with(NULL, url("/redirect/4"), same, &r);
    CHECK(r.ok == 0 && r.error && strstr(r.error, "edirect"), "4 hops: ok=%d err=%s", r.ok,
          r.error);
    printf("  too many redirects error: %s\n", r.error ? r.error : "(null)");
    result_clear(&r);
    fetch_with(NULL, url("/redirect-ftp"), same, &r);
    CHECK(r.ok == 0, "redirect to ftp:// must not be followed: ok=%d", r.ok);
    printf("  ftp redirect error: %s\n", r.error ? r.error : "(null)");
    result_clear(&r);
    http_options o;
    http_options_defaults(&o);
    o.max_redirects = 0;
    fetch_with(&o, url("/redirect/1"), same, &r);
    CHECK(r.ok && r.status == 302, "max_redirects=0 returns the 3xx: ok=%d status=%ld", r.ok,
          r.status);
    result_clear(&r);
}

/* The default follows nothing: the 3xx itself is the response, for the caller to fail. */
static void test_redirects_not_followed(void)
{
    result r;
    int reqs0 = g_srv.requests;
    fetch(NULL, url("/redirect/1"), &r);
    CHECK(r.ok && r.status == 302 && strcmp(r.body, "moved") == 0,
          "default returns the 3xx: ok=%d status=%ld body=%s", r.ok, r.status, r.body);
    CHECK(result_header(&r, "x-hop") != NULL, "3xx headers reported");
    CHECK(g_srv.requests - reqs0 == 1, "the redirect was followed: %d requests",
          g_srv.requests - reqs0);
    result_clear(&r);
}

/* An answer from another port or another host name is a failure, never a response. */
static void test_redirects_off_host(void)
{
    server other;
    server_start(&other, g_loop);
    char path[64];
    snprintf(path, sizeof path, "/redirect-to/%d", other.port);
    const char *targets[] = {path, "/redirect-host"};
    for (size_t i = 0; i < 2; i++) {
        result r;
        fetch_with(NULL, url(targets[i]), HTTP_REDIRECTS_SAME_HOST, &r);
        CHECK(r.ok == 0 && r.error && strstr(r.error, "redirected off 127.0.0.1:"),
              "%s: ok=%d status=%ld err=%s", targets[i], r.ok, r.status, r.error);
        CHECK(r.body_len == 0 && r.n_headers == 0, "%s: the other host's answer leaked",
              targets[i]);
        printf("  off-host error: %s\n", r.error ? r.error : "(null)");
        result_clear(&r);
        fetch(NULL, url(targets[i]), &r);
        CHECK(r.ok && r.status == 302, "%s without same-host: ok=%d status=%ld", targets[i],
              r.ok, r.status);
        result_clear(&r);
    }
    CHECK(other.requests <= 1, "other server asked %d times", other.requests);
    server_stop(&other);
}

static void test_interim_response_headers_reset(void)
{
    result r;
    fetch(NULL, url("/early-hints"), &r);
    CHECK(r.ok && r.status == 200 && strcmp(r.body, "final") == 0, "ok=%d status=%ld", r.ok,
          r.status);
    CHECK(result_header(&r, "x-after-hints") != NULL, "final headers present");
    CHECK(result_header(&r, "link") == NULL, "103 headers leaked into final response");
    result_clear(&r);
}

static void test_free_cancels_in_flight(void)
{
    enum { N = 5 };
    http_client *c = http_client_new(g_loop, NULL);
    result rs[N] = {0};
    http_request req = {.url = url("/slow/3000")};
    int reqs0 = g_srv.requests;
    g_completed = 0;
    for (int i = 0; i < N; i++)
        http_get(c, &req, on_done, &rs[i]);
    ev_tstamp stop = ev_time() + 5;
    while (g_srv.requests - reqs0 < N && ev_time() < stop)
        ev_run(g_loop, EVRUN_ONCE);  /* until the server holds all N requests */
    CHECK(http_in_flight(c) == N, "in_flight %zu", http_in_flight(c));
    http_client_free(c);
    for (int i = 0; i < N; i++) {
        CHECK(rs[i].called == 1 && rs[i].ok == 0 && rs[i].error &&
                  strcmp(rs[i].error, "cancelled") == 0,
              "request %d: called=%d ok=%d err=%s", i, rs[i].called, rs[i].ok, rs[i].error);
        result_clear(&rs[i]);
    }
}

/* Freeing the client from inside a completion callback is deferred, then cancels the rest. */
static void free_client_then(result *r)
{
    http_client_free(r->ctx);
}

static void test_free_from_callback(void)
{
    http_client *c = http_client_new(g_loop, NULL);
    result slow[3] = {{0}}, fast = {.then = free_client_then, .ctx = c};
    http_request slow_req = {.url = url("/slow/3000")};
    g_completed = 0;
    for (int i = 0; i < 3; i++)
        http_get(c, &slow_req, on_done, &slow[i]);
    http_request fast_req = {.url = url("/hello")};
    http_get(c, &fast_req, on_done, &fast);
    run_until(4);
    CHECK(fast.called == 1 && fast.ok, "fast request: called=%d ok=%d", fast.called, fast.ok);
    for (int i = 0; i < 3; i++) {
        CHECK(slow[i].called == 1 && slow[i].error && strcmp(slow[i].error, "cancelled") == 0,
              "slow %d: called=%d err=%s", i, slow[i].called, slow[i].error);
        result_clear(&slow[i]);
    }
    result_clear(&fast);
}

/* A callback can start the next request; sequential requests share one connection. */
typedef struct chain {
    http_client *c;
    int left, good;
} chain;

static void on_chain(void *user, const http_response *r)
{
    chain *ch = user;
    ch->good += r->ok && r->status == 200;
    g_completed++;
    if (--ch->left > 0) {
        http_request req = {.url = url("/hello")};
        CHECK(http_get(ch->c, &req, on_chain, ch) == 0, "could not start from a callback");
    }
}

static void test_sequential_from_callback(void)
{
    enum { N = 10 };
    chain ch = {.c = http_client_new(g_loop, NULL), .left = N};
    http_request req = {.url = url("/hello")};
    int conns0 = g_srv.connections;
    g_completed = 0;
    http_get(ch.c, &req, on_chain, &ch);
    run_until(N);
    CHECK(ch.good == N, "%d of %d sequential requests ok", ch.good, N);
    CHECK(g_srv.connections - conns0 == 1, "%d connections for %d sequential requests",
          g_srv.connections - conns0, N);
    http_client_free(ch.c);
}

static void test_too_many_headers(void)
{
    result r;
    fetch(NULL, url("/many-headers"), &r);
    CHECK(r.ok == 0 && r.error && strcmp(r.error, "too many response headers") == 0,
          "ok=%d err=%s", r.ok, r.error);
    result_clear(&r);
}

/* Proxy and interface are per request; NULL proxy means direct even if http_proxy is set. */
static void test_proxy_and_interface(void)
{
    char dead[64], proxy[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", dead_port());
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", g_srv.port);
    setenv("http_proxy", dead, 1);
    result r;
    fetch(NULL, url("/hello"), &r);
    CHECK(r.ok && r.status == 200, "http_proxy env var must be ignored: err=%s", r.error);
    result_clear(&r);
    unsetenv("http_proxy");

    http_client *c = http_client_new(g_loop, NULL);
    int proxied0 = g_srv.proxied;
    http_request via = {.url = "http://m2p-test.invalid/hello", .proxy = proxy};
    http_request bound = {.url = url("/hello"), .interface = "host!127.0.0.1"};
    http_request bad_if = {.url = url("/hello"), .interface = "if!m2p-no-such-if0"};
    result rv = {0}, rb = {0}, rx = {0};
    g_completed = 0;
    http_get(c, &via, on_done, &rv);
    http_get(c, &bound, on_done, &rb);
    http_get(c, &bad_if, on_done, &rx);
    run_until(3);
    CHECK(rv.ok && rv.status == 200 && g_srv.proxied == proxied0 + 1,
          "via proxy: ok=%d status=%ld proxied=%d err=%s", rv.ok, rv.status,
          g_srv.proxied - proxied0, rv.error);
    CHECK(rb.ok && rb.status == 200, "bound to 127.0.0.1: ok=%d err=%s", rb.ok, rb.error);
    CHECK(rx.ok == 0 && rx.error, "unknown interface must fail: ok=%d", rx.ok);
    printf("  bad interface error: %s\n", rx.error ? rx.error : "(null)");
    result_clear(&rv);
    result_clear(&rb);
    result_clear(&rx);
    http_client_free(c);
}

/* One request on an existing client; waits for it. Sequential requests on one client reuse
 * the same libcurl handle, which is what the reuse tests below rely on. */
static void fetch_on(http_client *c, const http_request *req, result *res)
{
    memset(res, 0, sizeof *res);
    g_completed = 0;
    CHECK(http_get(c, req, on_done, res) == 0, "could not start %s", req->url);
    run_until(1);
    CHECK(res->called == 1, "callback called %d times for %s", res->called, req->url);
}

/* url() into a caller's buffer, for requests that must outlive the next url() call. */
static const char *url_in(char buf[256], const char *path)
{
    snprintf(buf, 256, "http://127.0.0.1:%d%s", g_srv.port, path);
    return buf;
}

static int header_is(const result *r, const char *name, const char *want)
{
    const char *v = result_header(r, name);
    return v && strcmp(v, want) == 0;
}

/* A reused handle forgets the previous request's proxy, headers, interface and POST body. */
static void test_reuse_forgets_request(void)
{
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", g_srv.port);
    http_client *c = http_client_new(g_loop, NULL);
    const char *secret[] = {"X-Custom: secret"};
    const char *post_hdrs[] = {"Content-Type: text/plain"};
    http_request via = {.url = "http://m2p-test.invalid/hello", .proxy = proxy,
                        .headers = secret, .n_headers = 1, .interface = "host!127.0.0.1"};
    char hello[256];
    http_request plain = {.url = url_in(hello, "/hello")};
    http_request post = {.url = hello, .headers = post_hdrs, .n_headers = 1, .body = "a=1",
                         .body_len = 3};
    http_request bad_if = {.url = hello, .interface = "if!m2p-no-such-if0"};
    int proxied0 = g_srv.proxied;
    result r;
    fetch_on(c, &via, &r);
    CHECK(r.ok && g_srv.proxied == proxied0 + 1 && header_is(&r, "x-custom-echo", "secret"),
          "via proxy: ok=%d err=%s", r.ok, r.error);
    result_clear(&r);
    fetch_on(c, &plain, &r);
    CHECK(r.ok && r.status == 200 && g_srv.proxied == proxied0 + 1,
          "after a proxied request: ok=%d proxied=%d err=%s", r.ok, g_srv.proxied - proxied0,
          r.error);
    CHECK(header_is(&r, "x-custom-echo", ""), "the previous request's header was sent again");
    CHECK(header_is(&r, "x-ua-echo", "m2p-engine/" M2P_VERSION), "user agent lost");
    result_clear(&r);
    fetch_on(c, &post, &r);
    CHECK(r.ok && header_is(&r, "x-method-echo", "POST"), "POST: ok=%d err=%s", r.ok, r.error);
    result_clear(&r);
    fetch_on(c, &plain, &r);
    CHECK(r.ok && header_is(&r, "x-method-echo", "GET"), "GET after a POST: ok=%d method=%s",
          r.ok, result_header(&r, "x-method-echo"));
    result_clear(&r);
    fetch_on(c, &bad_if, &r);
    CHECK(r.ok == 0, "unknown interface must fail: ok=%d", r.ok);
    result_clear(&r);
    fetch_on(c, &plain, &r);
    CHECK(r.ok && r.status == 200, "after a bad interface: ok=%d err=%s", r.ok, r.error);
    result_clear(&r);
    char empty_url[256];
    http_request empty = {.url = url_in(empty_url, "/bytes/0")};
    fetch_on(c, &empty, &r); /* on the handle that just carried /hello's body */
    CHECK(r.ok && r.body_len == 0 && r.body[0] == '\0',
          "an empty answer reads as the previous one: \"%s\"", r.body ? r.body : "(null)");
    result_clear(&r);
    http_client_free(c);
}

/* A handle that timed out, was refused a redirect or hit a cap carries nothing over. */
static void test_reuse_after_failures(void)
{
    http_client *c = http_client_new(g_loop, NULL);
    char off[64];
    server other;
    server_start(&other, g_loop);
    snprintf(off, sizeof off, "/redirect-to/%d", other.port);
    char u1[256], u2[256], u3[256], u4[256];
    http_request short_poll = {.url = url_in(u1, "/slow/4000"), .timeout_ms = 300};
    http_request slow = {.url = url_in(u2, "/slow/600")};
    http_request refused = {.url = url_in(u3, off), .redirects = HTTP_REDIRECTS_SAME_HOST};
    http_request no_follow = {.url = url_in(u4, "/redirect/1")};
    http_request follow = {.url = u4, .redirects = HTTP_REDIRECTS_SAME_HOST};
    result r;
    fetch_on(c, &short_poll, &r);
    CHECK(r.timed_out && r.error && strcmp(r.error, "timeout after 300 ms") == 0,
          "per-request timeout: ok=%d status=%ld err=%s", r.ok, r.status, r.error);
    result_clear(&r);
    fetch_on(c, &slow, &r);  /* the client's 10 s timeout again, not the 300 ms */
    CHECK(r.ok && r.status == 200 && strcmp(r.body, "slow") == 0,
          "after a timeout: ok=%d err=%s", r.ok, r.error);
    result_clear(&r);
    fetch_on(c, &refused, &r);
    CHECK(r.ok == 0 && r.error && strstr(r.error, "redirected off"), "off host: err=%s", r.error);
    result_clear(&r);
    fetch_on(c, &no_follow, &r);
    CHECK(r.ok && r.status == 302 && header_is(&r, "x-hop", "1"),
          "after a refused redirect, the default must not follow: status=%ld", r.status);
    result_clear(&r);
    fetch_on(c, &follow, &r);
    CHECK(r.ok && r.status == 200 && strcmp(r.body, "landed") == 0,
          "same host followed again: status=%ld err=%s", r.status, r.error);
    result_clear(&r);
    server_stop(&other);
    http_client_free(c);

    http_options o;
    http_options_defaults(&o);
    o.max_body_bytes = 1000;
    c = http_client_new(g_loop, &o);
    http_request big = {.url = url_in(u1, "/bytes/1001")};
    http_request fits = {.url = url_in(u2, "/bytes/1000")};
    http_request many = {.url = url_in(u3, "/many-headers")};
    http_request hello = {.url = url_in(u4, "/hello")};
    char u5[256];
    http_request stalled = {.url = url_in(u5, "/slow/4000"), .timeout_ms = 300};
    fetch_on(c, &big, &r);
    CHECK(r.ok == 0, "over the cap: ok=%d", r.ok);
    result_clear(&r);
    fetch_on(c, &stalled, &r);  /* a different failure is not reported as the previous one */
    CHECK(r.error && strcmp(r.error, "timeout after 300 ms") == 0, "after a cap: err=%s",
          r.error);
    result_clear(&r);
    fetch_on(c, &fits, &r);
    CHECK(r.ok && r.body_len == 1000, "after a body too large: ok=%d len=%zu err=%s", r.ok,
          r.body_len, r.error);
    result_clear(&r);
    fetch_on(c, &many, &r);
    CHECK(r.ok == 0, "too many headers: ok=%d", r.ok);
    result_clear(&r);
    fetch_on(c, &stalled, &r);
    CHECK(r.error && strcmp(r.error, "timeout after 300 ms") == 0,
          "after too many headers: err=%s", r.error);
    result_clear(&r);
    fetch_on(c, &hello, &r);
    CHECK(r.ok && r.n_headers < 20 && strcmp(r.body, "hello world") == 0,
          "after too many headers: ok=%d headers=%zu err=%s", r.ok, r.n_headers, r.error);
    result_clear(&r);
    http_client_free(c);
}

/* Header lists are shared by content: every request still sends exactly its own headers,
 * also with more distinct header sets in flight than the cache holds. */
static void test_header_sets(void)
{
    enum { N = 40 };
    http_client *c = http_client_new(g_loop, NULL);
    static result rs[N];
    static char lines[N][32];
    const char *hdrs[N][1];
    g_completed = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            snprintf(lines[i], sizeof lines[i], "X-Custom: v%d", (i + round) % N);
            hdrs[i][0] = lines[i];
            http_request req = {.url = url("/hello"), .headers = hdrs[i], .n_headers = 1};
            CHECK(http_get(c, &req, on_done, &rs[i]) == 0, "start %d", i);
        }
        run_until(N * (round + 1));
        int good = 0;
        for (int i = 0; i < N; i++) {
            good += rs[i].ok && header_is(&rs[i], "x-custom-echo", lines[i] + 10);
            result_clear(&rs[i]);
        }
        CHECK(good == N, "round %d: %d of %d requests sent their own header", round, good, N);
    }
    const char *own_ua[] = {"User-Agent: custom/1", "Accept-Encoding: identity"};
    char hello[256];
    http_request custom = {.url = url_in(hello, "/hello"), .headers = own_ua, .n_headers = 2};
    http_request plain = {.url = hello};
    result r;
    fetch_on(c, &custom, &r);
    CHECK(header_is(&r, "x-ua-echo", "custom/1") && header_is(&r, "x-encoding-echo", "identity"),
          "caller's User-Agent/Accept-Encoding: ua=%s enc=%s", result_header(&r, "x-ua-echo"),
          result_header(&r, "x-encoding-echo"));
    result_clear(&r);
    fetch_on(c, &plain, &r);
    const char *enc = result_header(&r, "x-encoding-echo");
    CHECK(header_is(&r, "x-ua-echo", "m2p-engine/" M2P_VERSION) && enc && strstr(enc, "gzip"),
          "default User-Agent/Accept-Encoding: ua=%s enc=%s", result_header(&r, "x-ua-echo"),
          enc ? enc : "-");
    result_clear(&r);
    http_client_free(c);
}

/* URLs are parsed once per request by us (CURLOPT_CURLU); every form must fare exactly as it
 * did as a string: no scheme means http://, a malformed one fails in the callback, and a
 * reused handle then takes the next URL, not the previous one. */
static void test_url_forms(void)
{
    http_client *c = http_client_new(g_loop, NULL);
    char no_scheme[256], spaced[256], broken[256], hello[256], other[256];
    snprintf(no_scheme, sizeof no_scheme, "127.0.0.1:%d/hello", g_srv.port);
    snprintf(spaced, sizeof spaced, "http://127.0.0.1:%d/hello world", g_srv.port);
    snprintf(broken, sizeof broken, "http://[127.0.0.1:%d/hello", g_srv.port);
    /* A relative-looking URL after an absolute one: it must not be resolved against it. */
    const char *forms[] = {url_in(hello, "/hello"), no_scheme, spaced, broken, hello,
                           url_in(other, "/status/404"), no_scheme};
    const int ok[] = {1, 1, 0, 0, 1, 1, 1};
    const long status[] = {200, 200, 0, 0, 200, 404, 200};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        http_request req = {.url = forms[i]};
        result r;
        fetch_on(c, &req, &r);
        CHECK(r.ok == ok[i] && r.status == status[i] && (ok[i] || (r.error && r.error[0])),
              "%s: ok=%d status=%ld err=%s", forms[i], r.ok, r.status, r.error);
        printf("  %s: ok=%d status=%ld err=%s\n", forms[i], r.ok, r.status,
               r.error ? r.error : "-");
        result_clear(&r);
    }
    http_client_free(c);
}

static void test_invalid_arguments(void)
{
    http_client *c = http_client_new(g_loop, NULL);
    result r = {0};
    http_request no_url = {0};
    CHECK(http_get(c, &no_url, on_done, &r) == -1, "NULL url accepted");
    const char *inject[] = {"X-A: 1\r\nX-Evil: 2"};
    http_request bad = {.url = url("/hello"), .headers = inject, .n_headers = 1};
    CHECK(http_get(c, &bad, on_done, &r) == -1, "CR/LF header accepted");
    const char *nocolon[] = {"NoColon"};
    bad.headers = nocolon;
    CHECK(http_get(c, &bad, on_done, &r) == -1, "header without colon accepted");
    const char *null_line[] = {"X-A: 1", NULL};
    bad.headers = null_line;
    bad.n_headers = 2;
    CHECK(http_get(c, &bad, on_done, &r) == -1, "NULL header line accepted");
    const char *good_line[] = {"X-A: 1"};
    bad.headers = good_line;
    bad.n_headers = 1;
    g_completed = 0;
    CHECK(http_get(c, &bad, on_done, &r) == 0, "a valid header set after invalid ones refused");
    run_until(1);
    CHECK(r.called == 1 && r.ok, "valid request after invalid ones: ok=%d", r.ok);
    result_clear(&r);
    http_request ok = {.url = url("/hello")};
    CHECK(http_get(c, &ok, NULL, &r) == -1, "NULL callback accepted");
    CHECK(http_get(NULL, &ok, on_done, &r) == -1, "NULL client accepted");
    CHECK(http_in_flight(c) == 0 && r.called == 0, "failed starts left state behind");
    http_client_free(c);
    http_client_free(NULL);
}

int main(void)
{
    g_loop = ev_default_loop(0);
    if (http_global_init() != 0) {
        fprintf(stderr, "http_global_init failed\n");
        return 1;
    }
    server_start(&g_srv, g_loop);
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"200 body and headers", test_200_body_and_headers},
        {"404/503 are responses", test_error_statuses},
        {"body cap", test_body_cap},
        {"timeout", test_timeout},
        {"connection refused", test_connection_refused},
        {"500 concurrent", test_many_concurrent},
        {"keep-alive reuse", test_keepalive_reuse},
        {"sequential from callback", test_sequential_from_callback},
        {"gzip decoded", test_gzip},
        {"redirects: none by default", test_redirects_not_followed},
        {"redirects: same host followed", test_redirects_same_host},
        {"redirects: off the host fail", test_redirects_off_host},
        {"1xx headers reset", test_interim_response_headers_reset},
        {"free cancels in-flight", test_free_cancels_in_flight},
        {"free from callback", test_free_from_callback},
        {"too many headers", test_too_many_headers},
        {"proxy and interface", test_proxy_and_interface},
        {"invalid arguments", test_invalid_arguments},
        {"reuse forgets proxy, headers, POST", test_reuse_forgets_request},
        {"reuse after timeout, redirect, caps", test_reuse_after_failures},
        {"header sets shared by content", test_header_sets},
        {"URL forms as before", test_url_forms},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = check_failed;
        tests[i].fn();
        printf("%s %s\n", check_failed == before ? "ok  " : "FAIL", tests[i].name);
    }
    server_stop(&g_srv);
    ev_loop_destroy(g_loop);
    http_global_cleanup();
    return check_summary();
}
