/* Unit tests for engine/http_plain.c, the plain HTTP/1.1 client behind engine/http.h for
 * http:// GETs: which requests it takes, the bytes it sends (compared with libcurl's for the
 * same request), and the responses it builds (compared with libcurl's), against a scripted
 * loopback server on the same libev loop. Routes answer with fixed bytes so that framing
 * (Content-Length, chunked, until close), interim responses, encodings and misbehaviour
 * (closing a kept-alive connection, never answering, giant headers) are exact. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
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
#include <zlib.h>

#include "check.h"
#include "http.h"
#include "http_plain.h"

/* ---- scripted server ------------------------------------------------------------------- */

typedef struct sconn {
    ev_io rio, wio;
    int fd, served;
    char in[65536];
    size_t in_len;
    char *out;
    size_t out_len, out_off;
    int close_after;
    struct sconn *next;
} sconn;

static struct {
    struct ev_loop *loop;
    int fd, port;
    ev_io accept_w;
    int connections, requests;
    char last_request[4096];
    sconn *conns;
} S;

static unsigned char *gz_big;   /* gzip of 2 MiB of 'a' */
static size_t gz_big_len;
static unsigned char *gz_small; /* gzip of "gzip payload " x 50 */
static size_t gz_small_len;
static unsigned char *zl_small; /* zlib (deflate) of the same */
static size_t zl_small_len;
static unsigned char *raw_small; /* raw deflate of the same */
static size_t raw_small_len;
static char small_text[700];

static unsigned char *compress_with(const char *data, size_t len, int window, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, len);
    unsigned char *out = malloc(cap);
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void sconn_free(sconn *k)
{
    for (sconn **pp = &S.conns; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    ev_io_stop(S.loop, &k->rio);
    ev_io_stop(S.loop, &k->wio);
    close(k->fd);
    free(k->out);
    free(k);
}

static void sconn_flush(sconn *k)
{
    while (k->out_off < k->out_len) {
        ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            ev_io_start(S.loop, &k->wio);
            return;
        }
        if (n <= 0) {
            sconn_free(k);
            return;
        }
        k->out_off += (size_t)n;
    }
    ev_io_stop(S.loop, &k->wio);
    if (k->close_after)
        sconn_free(k);
}

static void queue(sconn *k, const void *data, size_t len)
{
    k->out = realloc(k->out, k->out_len + len);
    memcpy(k->out + k->out_len, data, len);
    k->out_len += len;
}

static void queue_s(sconn *k, const char *s)
{
    queue(k, s, strlen(s));
}

static void queue_body(sconn *k, const char *extra, const void *body, size_t len)
{
    char head[512];
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s\r\n", len, extra);
    queue_s(k, head);
    queue(k, body, len);
}

/* Returns 0 when the route answered nothing (and the connection is left as it is). */
static int route(sconn *k, const char *path)
{
    if (strncmp(path, "/hello", 6) == 0) {
        queue_s(k, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Mixed-Case:   Some Value  \r\n"
                   "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello");
    } else if (strcmp(path, "/chunked") == 0) {
        queue_s(k, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                   "5\r\nchunk\r\n6\r\ned bod\r\n1\r\ny\r\n0\r\nX-Sum: 12\r\n\r\n");
    } else if (strcmp(path, "/http10") == 0) {
        queue_s(k, "HTTP/1.0 200 OK\r\nX-Old: yes\r\n\r\nbody until close");
        k->close_after = 1;
    } else if (strcmp(path, "/close") == 0) {
        queue_s(k, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        k->close_after = 1;
    } else if (strcmp(path, "/interim") == 0) {
        queue_s(k, "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                   "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                   "HTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-Final: 1\r\n\r\ndone");
    } else if (strcmp(path, "/gzip") == 0) {
        queue_body(k, "Content-Encoding: gzip\r\n", gz_small, gz_small_len);
    } else if (strcmp(path, "/deflate") == 0) {
        queue_body(k, "Content-Encoding: deflate\r\n", zl_small, zl_small_len);
    } else if (strcmp(path, "/deflate-raw") == 0) {
        queue_body(k, "Content-Encoding: deflate\r\n", raw_small, raw_small_len);
    } else if (strcmp(path, "/bomb") == 0) {
        queue_body(k, "Content-Encoding: gzip\r\n", gz_big, gz_big_len);
    } else if (strcmp(path, "/brotli") == 0) {
        queue_body(k, "Content-Encoding: br\r\n", "xx", 2);
    } else if (strcmp(path, "/bigheader") == 0) {
        static char big[120 * 1024];
        memset(big, 'h', sizeof big - 1);
        queue_s(k, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ");
        queue(k, big, sizeof big - 1);
        queue_s(k, "\r\n\r\n");
    } else if (strcmp(path, "/garbage") == 0) {
        queue_s(k, "NOT HTTP AT ALL\r\n\r\n");
        k->close_after = 1;
    } else if (strcmp(path, "/short") == 0) {
        queue_s(k, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
        k->close_after = 1;
    } else if (strcmp(path, "/idle-close") == 0) {  /* keep-alive answer, then gone */
        queue_s(k, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        k->close_after = 1;
    } else if (strcmp(path, "/drop-reused") == 0 && k->served > 1) {
        sconn_free(k);  /* as a server that timed the idle connection out just now */
        return -1;
    } else if (strcmp(path, "/drop-reused") == 0) {
        queue_s(k, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
    } else if (strcmp(path, "/drop") == 0) {
        sconn_free(k);
        return -1;
    } else if (strcmp(path, "/silent") == 0) {
        return 0;
    } else {
        queue_s(k, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return 1;
}

static void on_sread(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    sconn *k = w->data;
    ssize_t n = recv(k->fd, k->in + k->in_len, sizeof k->in - 1 - k->in_len, 0);
    if (n <= 0) {
        sconn_free(k);
        return;
    }
    k->in_len += (size_t)n;
    k->in[k->in_len] = '\0';
    char *end;
    while ((end = strstr(k->in, "\r\n\r\n")) != NULL) {
        size_t req_len = (size_t)(end + 4 - k->in);
        snprintf(S.last_request, sizeof S.last_request, "%.*s", (int)req_len, k->in);
        S.requests++;
        k->served++;
        char path[256] = "";
        sscanf(k->in, "GET %255s", path);
        memmove(k->in, k->in + req_len, k->in_len - req_len + 1);
        k->in_len -= req_len;
        if (route(k, path) < 0)
            return;
        sconn_flush(k);
        return;  /* one request per read is enough for these tests */
    }
}

static void on_swrite(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    sconn_flush(w->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)w;
    (void)revents;
    int fd = accept4(S.fd, NULL, NULL, SOCK_NONBLOCK);
    if (fd < 0)
        return;
    sconn *k = calloc(1, sizeof *k);
    k->fd = fd;
    ev_io_init(&k->rio, on_sread, fd, EV_READ);
    ev_io_init(&k->wio, on_swrite, fd, EV_WRITE);
    k->rio.data = k->wio.data = k;
    ev_io_start(loop, &k->rio);
    k->next = S.conns;
    S.conns = k;
    S.connections++;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void server_start(struct ev_loop *loop)
{
    S.loop = loop;
    S.fd = listen_loopback(&S.port);
    ev_io_init(&S.accept_w, on_accept, S.fd, EV_READ);
    ev_io_start(loop, &S.accept_w);
    ev_unref(loop);  /* the listener alone must not keep ev_run() going */
}

static void server_stop(void)
{
    while (S.conns)
        sconn_free(S.conns);
    ev_ref(S.loop);
    ev_io_stop(S.loop, &S.accept_w);
    close(S.fd);
}

/* ---- client side ----------------------------------------------------------------------- */

typedef struct result {
    int done, ok, timed_out;
    long status;
    char error[512];
    char *body;
    size_t body_len;
    char headers[2048];         /* "name=value\n" of every header */
} result;

static void on_done(void *user, const http_response *r)
{
    result *res = user;
    res->done = 1;
    res->ok = r->ok;
    res->status = r->status;
    res->timed_out = r->timed_out;
    snprintf(res->error, sizeof res->error, "%s", r->error ? r->error : "");
    res->body = malloc(r->body_len + 1);
    memcpy(res->body, r->body, r->body_len + 1);
    res->body_len = r->body_len;
    size_t pos = 0;
    res->headers[0] = '\0';
    for (size_t i = 0; i < r->n_headers && pos < sizeof res->headers; i++)
        pos += (size_t)snprintf(res->headers + pos, sizeof res->headers - pos, "%s=%s\n",
                                r->header_names[i], r->header_values[i]);
}

static void result_clear(result *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static http_client *client(struct ev_loop *loop, int libcurl_only, long timeout_ms,
                           long per_host)
{
    http_options o;
    http_options_defaults(&o);
    o.libcurl_only = libcurl_only;
    if (timeout_ms)
        o.timeout_ms = timeout_ms;
    o.max_host_connections = per_host;
    return http_client_new(loop, &o);
}

static void url_for(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", S.port, path);
}

/* One GET to `path`, run to completion. */
static void get(struct ev_loop *loop, http_client *c, const char *path, const char *const *h,
                size_t n, result *res)
{
    char url[256];
    url_for(url, sizeof url, path);
    http_request req = {.url = url, .headers = h, .n_headers = n};
    result_clear(res);
    CHECK(http_get(c, &req, on_done, res) == 0, "start %s", path);
    while (!res->done)
        ev_run(loop, EVRUN_ONCE);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_accepts(void)
{
    const char *ok_h[] = {"Accept: application/json", "X-Api-Key: k"};
    const char *host_h[] = {"Host: other"};
    const char *empty_h[] = {"X-Remove:"};
    http_request r = {.url = "http://127.0.0.1:8080/api/worker_stats?AbC123"};
    CHECK(http_plain_accepts(&r), "plain GET");
    r.headers = ok_h;
    r.n_headers = 2;
    CHECK(http_plain_accepts(&r), "ordinary headers");
    r.headers = host_h;
    r.n_headers = 1;
    CHECK(!http_plain_accepts(&r), "own Host header -> libcurl");
    r.headers = empty_h;
    CHECK(!http_plain_accepts(&r), "empty value (libcurl removes the header) -> libcurl");
    r.n_headers = 0;
    const char *not_plain[] = {
        "https://127.0.0.1/x", "HTTP://127.0.0.1/x", "127.0.0.1/x", "http://u:p@h/x",
        "http://h/x#frag", "http://h/a/../b", "http://h/a/./b", "http://h/a b",
        "http://Upper.example/x", "http://[::1]:80/x", "http://h/x?", "http://h:/x", NULL};
    for (size_t i = 0; not_plain[i]; i++) {
        r.url = not_plain[i];
        CHECK(!http_plain_accepts(&r), "%s -> libcurl", not_plain[i]);
    }
    r.url = "http://pool.example:3000/api?x=1";
    CHECK(http_plain_accepts(&r), "name host");
    r.proxy = "http://127.0.0.1:3128";
    CHECK(!http_plain_accepts(&r), "proxy -> libcurl");
    r.proxy = NULL;
    r.interface = "lo";
    CHECK(!http_plain_accepts(&r), "interface -> libcurl");
    r.interface = NULL;
    r.redirects = HTTP_REDIRECTS_SAME_HOST;
    CHECK(!http_plain_accepts(&r), "redirects -> libcurl");
    r.redirects = HTTP_REDIRECTS_NONE;
    r.body = "x";
    r.body_len = 1;
    CHECK(!http_plain_accepts(&r), "POST -> libcurl");
}

/* Drops the Accept-Encoding line: the one documented difference on the wire. */
static void without_accept_encoding(char *req)
{
    char *line = strstr(req, "Accept-Encoding: ");
    if (line) {
        char *end = strstr(line, "\r\n");
        memmove(line, end + 2, strlen(end + 2) + 1);
    }
}

static void test_same_as_libcurl(struct ev_loop *loop)
{
    const char *h[] = {"Accept: application/json", "X-Pool: cpu"};
    const char *paths[] = {"/hello?wallet=AbC", "/chunked", "/http10", "/close", "/interim",
                           "/gzip", "/deflate", "/missing", NULL};
    http_client *curl = client(loop, 1, 0, 0), *plain = client(loop, 0, 0, 0);
    for (size_t i = 0; paths[i]; i++) {
        result a = {0}, b = {0};
        char wire_a[4096], wire_b[4096];
        get(loop, curl, paths[i], h, 2, &a);
        snprintf(wire_a, sizeof wire_a, "%s", S.last_request);
        get(loop, plain, paths[i], h, 2, &b);
        snprintf(wire_b, sizeof wire_b, "%s", S.last_request);
        CHECK_CONTAINS(wire_a, "Accept-Encoding: deflate, gzip");
        CHECK_CONTAINS(wire_b, "\r\nAccept-Encoding: deflate, gzip\r\n");
        without_accept_encoding(wire_a);
        without_accept_encoding(wire_b);
        CHECK(strcmp(wire_a, wire_b) == 0, "%s: same request bytes:\n%s---\n%s", paths[i],
              wire_a, wire_b);
        CHECK(a.ok && b.ok && a.status == b.status, "%s: status %ld vs %ld (%s / %s)",
              paths[i], a.status, b.status, a.error, b.error);
        CHECK(a.body_len == b.body_len && memcmp(a.body, b.body, a.body_len) == 0,
              "%s: same body: '%s' vs '%s'", paths[i], a.body, b.body);
        CHECK(strcmp(a.headers, b.headers) == 0, "%s: same headers:\n%s---\n%s", paths[i],
              a.headers, b.headers);
        result_clear(&a);
        result_clear(&b);
    }
    /* Without caller headers: libcurl's own Accept line. */
    result a = {0}, b = {0};
    char wire_a[4096];
    get(loop, curl, "/hello", NULL, 0, &a);
    snprintf(wire_a, sizeof wire_a, "%s", S.last_request);
    get(loop, plain, "/hello", NULL, 0, &b);
    without_accept_encoding(wire_a);
    without_accept_encoding(S.last_request);
    CHECK(strcmp(wire_a, S.last_request) == 0, "no headers: same bytes:\n%s---\n%s", wire_a,
          S.last_request);
    CHECK_CONTAINS(b.headers, "x-mixed-case=Some Value\n");
    result_clear(&a);
    result_clear(&b);
    http_client_free(curl);
    http_client_free(plain);
}

static void test_framing(struct ev_loop *loop)
{
    http_client *c = client(loop, 0, 0, 0);
    result r = {0};
    get(loop, c, "/chunked", NULL, 0, &r);
    CHECK(r.ok && strcmp(r.body, "chunked body") == 0, "chunked: %s %s", r.body, r.error);
    CHECK_CONTAINS(r.headers, "x-sum=12\n");  /* a trailer, as libcurl reports it */
    get(loop, c, "/http10", NULL, 0, &r);
    CHECK(r.ok && strcmp(r.body, "body until close") == 0, "until close: %s %s", r.body,
          r.error);
    get(loop, c, "/interim", NULL, 0, &r);
    CHECK(r.ok && r.status == 201 && strcmp(r.body, "done") == 0, "1xx skipped: %ld %s",
          r.status, r.error);
    CHECK(!strstr(r.headers, "x-interim") && !strstr(r.headers, "link="),
          "interim headers dropped: %s", r.headers);
    get(loop, c, "/short", NULL, 0, &r);
    CHECK(!r.ok && strstr(r.error, "transfer closed"), "short body: %s", r.error);
    get(loop, c, "/garbage", NULL, 0, &r);
    CHECK(!r.ok && r.error[0], "garbage: %s", r.error);
    get(loop, c, "/bigheader", NULL, 0, &r);
    CHECK(!r.ok && strcmp(r.error, "response headers too large") == 0, "big header: %s",
          r.error);
    result_clear(&r);
    http_client_free(c);
}

static void test_encodings(struct ev_loop *loop)
{
    http_client *c = client(loop, 0, 0, 0);
    result r = {0};
    const char *paths[] = {"/gzip", "/deflate", "/deflate-raw", NULL};
    for (size_t i = 0; paths[i]; i++) {
        get(loop, c, paths[i], NULL, 0, &r);
        CHECK(r.ok && r.body_len == strlen(small_text) && strcmp(r.body, small_text) == 0,
              "%s decoded: %zu bytes, %s", paths[i], r.body_len, r.error);
    }
    /* 2 MiB decoded from a few KiB: the 1 MiB cap counts decoded bytes. */
    get(loop, c, "/bomb", NULL, 0, &r);
    CHECK(!r.ok && strcmp(r.error, "response body too large") == 0, "bomb: ok=%d %s (%zu)",
          r.ok, r.error, gz_big_len);
    get(loop, c, "/brotli", NULL, 0, &r);
    CHECK(!r.ok && strstr(r.error, "Unrecognized content encoding"), "br: %s", r.error);
    result_clear(&r);
    http_client_free(c);
}

static void test_connections(struct ev_loop *loop)
{
    http_client *c = client(loop, 0, 0, 0);
    result r = {0};
    int before = S.connections;
    get(loop, c, "/hello", NULL, 0, &r);
    get(loop, c, "/hello", NULL, 0, &r);
    CHECK(S.connections == before + 1, "keep-alive: %d connections", S.connections - before);
    get(loop, c, "/close", NULL, 0, &r);
    get(loop, c, "/hello", NULL, 0, &r);
    CHECK(r.ok && S.connections == before + 2, "Connection: close -> new: %d",
          S.connections - before);
    /* Closed by the server after a kept-alive answer: the next request still succeeds. */
    get(loop, c, "/idle-close", NULL, 0, &r);
    get(loop, c, "/hello", NULL, 0, &r);
    CHECK(r.ok && r.status == 200, "after idle close: %s", r.error);
    /* Closed on receipt of the next request, before any byte of an answer: retried once on
     * a fresh connection, as libcurl does. */
    get(loop, c, "/hello", NULL, 0, &r);
    before = S.connections;
    get(loop, c, "/drop-reused", NULL, 0, &r);
    CHECK(r.ok && strcmp(r.body, "fresh") == 0 && S.connections == before + 1,
          "retried on a fresh connection: %s %s (%d)", r.body, r.error, S.connections - before);
    /* A fresh connection closed without an answer is a failure, with libcurl's text. */
    get(loop, c, "/drop", NULL, 0, &r);
    CHECK(!r.ok && strcmp(r.error, "Empty reply from server") == 0, "drop: %s", r.error);
    result_clear(&r);
    http_client_free(c);

    /* max_host_connections = 1: three at once share one connection, one after another. */
    c = client(loop, 0, 0, 1);
    result rs[3] = {{0}};
    char url[256];
    url_for(url, sizeof url, "/hello");
    http_request req = {.url = url};
    before = S.connections;
    for (int i = 0; i < 3; i++)
        CHECK(http_get(c, &req, on_done, &rs[i]) == 0, "start %d", i);
    CHECK(http_in_flight(c) == 3, "in flight %zu", http_in_flight(c));
    while (!rs[0].done || !rs[1].done || !rs[2].done)
        ev_run(loop, EVRUN_ONCE);
    for (int i = 0; i < 3; i++) {
        CHECK(rs[i].ok, "capped %d: %s", i, rs[i].error);
        result_clear(&rs[i]);
    }
    CHECK(S.connections == before + 1, "one connection: %d", S.connections - before);
    http_client_free(c);
}

static void test_failures(struct ev_loop *loop)
{
    http_client *c = client(loop, 0, 200, 0);
    result r = {0};
    get(loop, c, "/silent", NULL, 0, &r);
    CHECK(!r.ok && r.timed_out && strcmp(r.error, "timeout after 200 ms") == 0, "timeout: %s",
          r.error);
    http_client_free(c);

    /* Refused: the same text as libcurl's, up to the milliseconds. */
    int port;
    int fd = listen_loopback(&port);
    close(fd);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    http_request req = {.url = url};
    char texts[2][512];
    for (int curl = 0; curl < 2; curl++) {
        c = client(loop, curl, 0, 0);
        result_clear(&r);
        CHECK(http_get(c, &req, on_done, &r) == 0, "start refused");
        CHECK(!r.done, "never completes inside http_get");
        while (!r.done)
            ev_run(loop, EVRUN_ONCE);
        CHECK(!r.ok, "refused fails");
        char *after = strstr(r.error, " after ");
        if (after)
            *after = '\0';
        snprintf(texts[curl], sizeof texts[curl], "%s", r.error);
        http_client_free(c);
    }
    CHECK(strcmp(texts[0], texts[1]) == 0, "refused text: '%s' vs libcurl '%s'", texts[0],
          texts[1]);

    /* Cancelled by http_client_free. */
    c = client(loop, 0, 0, 0);
    url_for(url, sizeof url, "/silent");
    result_clear(&r);
    CHECK(http_get(c, &req, on_done, &r) == 0, "start silent");
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT);
    http_client_free(c);
    CHECK(r.done && !r.ok && strcmp(r.error, "cancelled") == 0, "cancelled: %s", r.error);
    result_clear(&r);
}

/* A listener whose accept queue is full drops further SYNs (Linux): a connect that never
 * completes, on loopback. Both clients report the connect timeout the same way. */
static void test_connect_timeout(struct ev_loop *loop)
{
    int port;
    int fd = listen_loopback(&port);
    listen(fd, 0);
    int fillers[4];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    http_request req = {.url = url};
    char texts[2][512];
    for (int curl = 0; curl < 2; curl++) {
        http_options o;
        http_options_defaults(&o);
        o.libcurl_only = curl;
        o.connect_timeout_ms = 300;
        o.timeout_ms = 5000;
        http_client *c = http_client_new(loop, &o);
        result r = {0};
        CHECK(http_get(c, &req, on_done, &r) == 0, "start connect timeout");
        while (!r.done)
            ev_run(loop, EVRUN_ONCE);
        CHECK(!r.ok && r.timed_out, "connect timeout (%s): %s", curl ? "libcurl" : "plain",
              r.error);
        snprintf(texts[curl], sizeof texts[curl], "%s", r.error);
        result_clear(&r);
        http_client_free(c);
    }
    CHECK(strcmp(texts[0], "connect timeout after 300 ms") == 0, "plain: %s", texts[0]);
    CHECK(strcmp(texts[0], texts[1]) == 0, "same as libcurl: '%s' vs '%s'", texts[0], texts[1]);
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(fd);
}

/* A name goes through getaddrinfo_a; "localhost" resolves without the network. */
static void test_name(struct ev_loop *loop)
{
    http_client *c = client(loop, 0, 5000, 0);
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%d/hello", S.port);
    http_request req = {.url = url};
    result r = {0};
    CHECK(http_plain_accepts(&req), "localhost is plain");
    for (int i = 0; i < 2; i++) {  /* the second one from the cache */
        result_clear(&r);
        CHECK(http_get(c, &req, on_done, &r) == 0, "start localhost");
        while (!r.done)
            ev_run(loop, EVRUN_ONCE);
        CHECK(r.ok && strcmp(r.body, "hello") == 0, "localhost: %s", r.error);
    }
    CHECK_CONTAINS(S.last_request, "\r\nHost: localhost:");
    result_clear(&r);
    http_client_free(c);
}

int main(void)
{
    struct ev_loop *loop = ev_default_loop(0);
    for (int i = 0; i < 50; i++)
        strcat(small_text, "gzip payload ");
    gz_small = compress_with(small_text, strlen(small_text), 15 + 16, &gz_small_len);
    zl_small = compress_with(small_text, strlen(small_text), 15, &zl_small_len);
    raw_small = compress_with(small_text, strlen(small_text), -15, &raw_small_len);
    size_t big_len = (size_t)2 << 20;
    char *big = malloc(big_len);
    memset(big, 'a', big_len);
    gz_big = compress_with(big, big_len, 15 + 16, &gz_big_len);
    free(big);
    server_start(loop);
    test_accepts();
    test_same_as_libcurl(loop);
    test_framing(loop);
    test_encodings(loop);
    test_connections(loop);
    test_failures(loop);
    test_connect_timeout(loop);
    test_name(loop);
    server_stop();
    free(gz_small);
    free(zl_small);
    free(raw_small);
    free(gz_big);
    http_global_cleanup();
    return check_summary();
}
