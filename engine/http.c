/* Asynchronous HTTP GET client (see http.h): libcurl's multi-socket API driven by libev.
 *
 * Wiring: libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one ev_io per
 * socket) and when it next needs a timeout (CURLMOPT_TIMERFUNCTION -> one ev_timer per
 * client). When a watcher fires we hand the event back with curl_multi_socket_action() and
 * then collect finished transfers with curl_multi_info_read(). Each request is one easy
 * handle (an http_transfer) that buffers the body and the final response's headers.
 *
 * Reuse: a finished transfer goes back to its client's idle list with its easy handle, its
 * buffers and the options that are the same for every request (configure_fixed); the next
 * request sets only what may differ (configure_request: every one of those options, every
 * time, so nothing of one request can leak into the next). Creating and destroying a libcurl
 * handle per request cost more than the rest of our side of a request. A handle that sent a
 * POST body is not reused: its copy of the body is freed with it.
 */
#include "http.h"
#include "http_headers.h"
#include "http_plain.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <ev.h>

#ifndef M2P_VERSION
#define M2P_VERSION "0.0.0-dev"
#endif

/* Upper bound on headers kept per response: bounds memory for a hostile server. */
#define HTTP_MAX_HEADERS 256
/* Idle transfers kept per client: more than the in-flight requests of a busy engine (the
 * pools' concurrency), so a steady state creates none; each is a few KiB. */
#define HTTP_IDLE_TRANSFERS 512
/* A body buffer larger than this is not kept by an idle transfer: one large answer must not
 * pin its memory in every handle. */
#define HTTP_KEEP_BODY_BYTES ((size_t)64 << 10)

typedef struct http_transfer http_transfer;

struct http_client {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;             /* the single timeout libcurl asks for */
    http_options opts;          /* opts.user_agent points at user_agent below */
    char *user_agent;
    http_transfer *transfers;   /* in-flight requests, doubly linked */
    size_t in_flight;
    http_transfer *idle;        /* finished transfers ready for reuse, linked by next */
    size_t n_idle;
    http_header_cache *headers; /* request header lists, one per distinct header set */
    http_plain *plain;          /* plain http:// GETs (http_plain.h); NULL = libcurl only */
    int dispatching;            /* > 0 while completion callbacks run */
    int free_requested;         /* http_client_free() was called from a callback */
    int closing;                /* being destroyed: new requests are refused */
};

/* One socket libcurl wants watched; attached to the socket with curl_multi_assign(). */
typedef struct http_socket {
    ev_io io;                   /* first member: the watcher pointer is the struct pointer */
    http_client *c;
} http_socket;

struct http_transfer {
    http_client *c;
    CURL *easy;
    http_header_ref headers;    /* CURLOPT_HTTPHEADER of the current request */
    int posted;                 /* the handle holds a POST body: never reused */
    CURLU *url;                 /* the request's URL, parsed (CURLOPT_CURLU) */
    http_done_fn done;
    void *user;
    ev_tstamp started;
    char *body;
    size_t body_len, body_cap;
    char **names;               /* names[i] = "name\0value": one allocation per header */
    char **values;              /* values[i] points into names[i] */
    size_t n_headers, headers_cap;
    int body_too_large, too_many_headers;
    int headers_done;           /* the final response's blank line was read */
    int connected;              /* libcurl is about to send on a made connection */
    http_redirects redirects;
    long timeout_ms;            /* this request's whole-request timeout */
    char origin[300];           /* "host:port" of the request, for HTTP_REDIRECTS_SAME_HOST */
    char curl_error[CURL_ERROR_SIZE];
    char error[640];
    http_transfer *prev, *next;
};

/* ---- global init ----------------------------------------------------------------------- */

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_FAILED_INIT;
static int g_init_done;

static void global_init_once(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    g_init_done = 1;
}

int http_global_init(void)
{
    /* pthread_once: clients may be created lazily from several loop threads. */
    pthread_once(&g_init_once, global_init_once);
    return g_init_rc == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
    if (g_init_done && g_init_rc == CURLE_OK) {
        curl_global_cleanup();
        g_init_rc = CURLE_FAILED_INIT;  /* never re-initialised: pthread_once already ran */
    }
}

void http_options_defaults(http_options *o)
{
    *o = (http_options){
        .timeout_ms = HTTP_DEFAULT_TIMEOUT_MS,
        .connect_timeout_ms = HTTP_DEFAULT_CONNECT_TIMEOUT_MS,
        .max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES,
        .max_redirects = HTTP_DEFAULT_MAX_REDIRECTS,
        .user_agent = "m2p-engine/" M2P_VERSION,
    };
}

/* ---- response buffering (libcurl write/header callbacks) ------------------------------- */

static int body_reserve(http_transfer *t, size_t need)
{
    if (need <= t->body_cap)
        return 0;
    size_t cap = t->body_cap ? t->body_cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(t->body, cap);
    if (!p)
        return -1;
    t->body = p;
    t->body_cap = cap;
    return 0;
}

/* Enforces the body cap here rather than via CURLOPT_MAXFILESIZE: the cap is on decoded
 * bytes (a small gzip can inflate enormously) and must hold without a Content-Length. */
static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    http_transfer *t = userp;
    size_t len = size * n;
    if (len > t->c->opts.max_body_bytes - t->body_len) {
        t->body_too_large = 1;
        return 0;  /* != len: libcurl aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (body_reserve(t, t->body_len + len + 1) != 0)
        return 0;
    memcpy(t->body + t->body_len, data, len);
    t->body_len += len;
    t->body[t->body_len] = '\0';
    return len;
}

/* Forgets the headers and body received so far (a new response is starting). */
static void response_reset(http_transfer *t)
{
    for (size_t i = 0; i < t->n_headers; i++)
        free(t->names[i]);
    t->n_headers = 0;
    t->body_len = 0;
    if (t->body)
        t->body[0] = '\0'; /* a reused buffer: an empty answer must not read as the last one */
}

static int headers_reserve(http_transfer *t)
{
    if (t->n_headers < t->headers_cap)
        return 0;
    size_t cap = t->headers_cap ? t->headers_cap * 2 : 16;
    char **names = realloc(t->names, cap * sizeof *names);
    if (!names)
        return -1;
    t->names = names;
    char **values = realloc(t->values, cap * sizeof *values);
    if (!values)
        return -1;
    t->values = values;
    t->headers_cap = cap;
    return 0;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* Stores one "Name: value" line. Returns -1 to abort the transfer. */
static int headers_add(http_transfer *t, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    /* No colon: the blank end-of-headers line. Leading blank: obsolete line folding
     * (RFC 9112 5.2), ignored rather than glued onto the previous value. */
    if (!colon || colon == line || isspace((unsigned char)line[0]))
        return 0;
    if (t->n_headers == HTTP_MAX_HEADERS) {
        t->too_many_headers = 1;
        return -1;
    }
    size_t name_len = (size_t)(colon - line);
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
    trim(&value, &value_len);
    char *entry = malloc(name_len + value_len + 2);
    if (!entry || headers_reserve(t) != 0) {
        free(entry);
        return -1;
    }
    for (size_t i = 0; i < name_len; i++)
        entry[i] = (char)tolower((unsigned char)line[i]);
    entry[name_len] = '\0';
    memcpy(entry + name_len + 1, value, value_len);
    entry[name_len + 1 + value_len] = '\0';
    t->names[t->n_headers] = entry;
    t->values[t->n_headers++] = entry + name_len + 1;
    return 0;
}

/* libcurl passes every header line of every response it reads, including redirects,
 * 1xx interim responses and proxy CONNECT replies; each starts with a status line, so a
 * status line means "start over" and only the final response's headers survive. */
static size_t on_header(char *line, size_t size, size_t n, void *userp)
{
    http_transfer *t = userp;
    size_t len = size * n;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        response_reset(t);
        t->headers_done = 0;
        return len;
    }
    /* The blank line ends a header section (a later status line starts another). libcurl
     * reports CURLE_OK for a connection closed before it: the caller must not take a 200
     * status line alone for an answer (a webhook counted as delivered). */
    if ((len == 2 && line[0] == '\r' && line[1] == '\n') || (len == 1 && line[0] == '\n')) {
        t->headers_done = 1;
        return len;
    }
    return headers_add(t, line, len) == 0 ? len : 0;
}

/* ---- transfer lifecycle ---------------------------------------------------------------- */

static void transfer_free(http_transfer *t)
{
    if (!t)
        return;
    response_reset(t);
    free(t->names);
    free(t->values);
    free(t->body);
    http_header_release(&t->headers);
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_url_cleanup(t->url);  /* after the handle that pointed at it */
    free(t);
}

static void transfer_link(http_client *c, http_transfer *t)
{
    t->next = c->transfers;
    if (c->transfers)
        c->transfers->prev = t;
    c->transfers = t;
    c->in_flight++;
}

static void transfer_unlink(http_client *c, http_transfer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        c->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    c->in_flight--;
}

#define SETOPT(opt, val)                                          \
    do {                                                          \
        if (curl_easy_setopt(e, (opt), (val)) != CURLE_OK)        \
            return -1;                                            \
    } while (0)

#if LIBCURL_VERSION_NUM >= 0x075000
/* Called once the connection is made (new or reused) and the request is about to be sent:
 * the one sure sign that a timeout after it is not a connect timeout. CONNECT_TIME is 0 on
 * a reused connection, so it cannot tell. */
static int on_prereq(void *userp, char *conn_primary_ip, char *conn_local_ip,
                     int conn_primary_port, int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    ((http_transfer *)userp)->connected = 1;
    return CURL_PREREQFUNC_OK;
}
#endif

/* Options that are the same for every request of a client: set once per easy handle. */
static int configure_fixed(http_transfer *t)
{
    CURL *e = t->easy;
    const http_options *o = &t->c->opts;
    SETOPT(CURLOPT_NOSIGNAL, 1L);  /* timeouts must not use SIGALRM in a multi-threaded host */
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SETOPT(CURLOPT_MAXREDIRS, o->max_redirects);
#if LIBCURL_VERSION_NUM >= 0x075500  /* 7.85: the *_STR forms replace deprecated bitmasks */
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* "" = decode every encoding this libcurl can; the Accept-Encoding line itself is in
     * the header list (http_headers.h), so libcurl does not format it per request. */
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(CURLOPT_PRIVATE, (void *)t);
    SETOPT(CURLOPT_ERRORBUFFER, t->curl_error);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)t);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)t);
#if LIBCURL_VERSION_NUM >= 0x075000  /* 7.80 */
    SETOPT(CURLOPT_PREREQFUNCTION, on_prereq);
    SETOPT(CURLOPT_PREREQDATA, (void *)t);
#endif
    return 0;
}

/* Everything that may differ between two requests, set for every request (also to its
 * "off" value) so that a reused handle carries nothing over from the previous one. */
static int configure_request(http_transfer *t, const http_request *req)
{
    CURL *e = t->easy;
    const http_options *o = &t->c->opts;
    long follow = req->redirects == HTTP_REDIRECTS_SAME_HOST && o->max_redirects > 0;
    /* Parsed here into the transfer's own CURLU rather than given as a string: libcurl then
     * skips parsing it again and re-assembling it per transfer (measured: 8,600 of 89,000
     * instructions per request). The flags are the ones libcurl itself uses for
     * CURLOPT_URL; a URL they reject goes to libcurl as the string, to fail as before.
     * Cleared first: a URL set on a CURLU holding one is resolved against it, as a
     * relative reference ("host:port/path" would become a path on the previous host). */
    curl_url_set(t->url, CURLUPART_URL, NULL, 0);
    if (curl_url_set(t->url, CURLUPART_URL, req->url,
                     CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
        SETOPT(CURLOPT_CURLU, t->url);
    } else {
        SETOPT(CURLOPT_CURLU, (CURLU *)NULL);
        SETOPT(CURLOPT_URL, req->url);
    }
    SETOPT(CURLOPT_HTTPHEADER, t->headers.list);
    /* "" rather than leaving it unset: libcurl would otherwise pick up http_proxy & co.
     * from the environment, and egress must be exactly what the pool config says. */
    SETOPT(CURLOPT_PROXY, req->proxy ? req->proxy : "");
    /* The User-Agent line is in the header list; libcurl's own copy is needed only for the
     * CONNECT request to a proxy, which does not get the request's headers. */
    SETOPT(CURLOPT_USERAGENT, req->proxy ? o->user_agent : NULL);
    SETOPT(CURLOPT_INTERFACE, req->interface);
    SETOPT(CURLOPT_FOLLOWLOCATION, follow);
    SETOPT(CURLOPT_TIMEOUT_MS, t->timeout_ms);
    /* Per request, as everything here: a reused handle must not keep an operator's "off" of
     * another pool. libcurl's connection cache matches connections on these too, so a
     * connection made without verification never serves a verified request. */
    SETOPT(CURLOPT_SSL_VERIFYPEER, req->tls_no_verify ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, req->tls_no_verify ? 0L : 2L);
    /* For https, wait for a connection being set up to the same host to reveal (via ALPN)
     * whether it multiplexes, instead of opening one connection per request of a burst.
     * Not for http://: HTTP/2 is only negotiated over TLS, and libcurl would learn "no
     * multiplexing" only from the first full response, serialising the burst behind it. */
    SETOPT(CURLOPT_PIPEWAIT, (long)(strncasecmp(req->url, "https://", 8) == 0));
    if (req->body) {
        t->posted = 1;
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(CURLOPT_COPYPOSTFIELDS, req->body);
    }
    return 0;
}

#undef SETOPT

/* A transfer for a new request: an idle one of this client, or a new one. */
static http_transfer *transfer_acquire(http_client *c)
{
    http_transfer *t = c->idle;
    if (t) {
        c->idle = t->next;
        c->n_idle--;
        t->next = NULL;
        return t;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->c = c;
    t->easy = curl_easy_init();
    t->url = curl_url();
    if (!t->easy || !t->url || configure_fixed(t) != 0) {
        transfer_free(t);
        return NULL;
    }
    return t;
}

/* A finished transfer goes back to the idle list, forgetting its response and its request's
 * header list; the per-request state is set afresh by transfer_new(). */
static void transfer_recycle(http_transfer *t)
{
    http_client *c = t->c;
    if (t->posted || c->closing || c->n_idle >= HTTP_IDLE_TRANSFERS) {
        transfer_free(t);
        return;
    }
    response_reset(t);
    http_header_release(&t->headers);
    if (t->body_cap > HTTP_KEEP_BODY_BYTES) {
        free(t->body);
        t->body = NULL;
        t->body_cap = 0;
    }
    t->prev = NULL;
    t->next = c->idle;
    c->idle = t;
    c->n_idle++;
}

/* "host:port" of `url` (the port from the scheme when the URL names none), parsed by
 * libcurl's own URL parser so that it agrees with where libcurl connects. 0 or -1. */
static int url_origin(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK;
    if (ok) {
        int n = snprintf(out, cap, "%s:%s", host, port);
        ok = n > 0 && (size_t)n < cap;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

/* libcurl has no callback that could veto a redirect before it is followed, so the check
 * is on where the transfer ended: an answer from any other host or port is not the pool's.
 * Returns NULL when the final URL is on the request's origin, else the failure text. */
static const char *redirect_violation(http_transfer *t)
{
    char *effective = NULL;
    char final[sizeof t->origin];
    if (t->redirects != HTTP_REDIRECTS_SAME_HOST)
        return NULL;
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &effective);
    int readable = effective && url_origin(effective, final, sizeof final) == 0;
    if (readable && strcasecmp(final, t->origin) == 0)
        return NULL;
    snprintf(t->error, sizeof t->error, "redirected off %s to %s", t->origin,
             readable ? final : "an unreadable URL");
    return t->error;
}

static http_transfer *transfer_new(http_client *c, const http_request *req, http_done_fn done,
                                   void *user)
{
    http_transfer *t = transfer_acquire(c);
    if (!t)
        return NULL;
    t->done = done;
    t->user = user;
    t->started = ev_time();
    t->redirects = req->redirects;
    t->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : c->opts.timeout_ms;
    t->body_too_large = 0;
    t->too_many_headers = 0;
    t->headers_done = 0;
    t->connected = 0;
    t->origin[0] = '\0';
    t->curl_error[0] = '\0';
    t->error[0] = '\0';
    t->prev = t->next = NULL;
    if ((req->redirects == HTTP_REDIRECTS_SAME_HOST &&
         url_origin(req->url, t->origin, sizeof t->origin) != 0) ||
        http_header_acquire(c->headers, req->headers, req->n_headers, req->body != NULL,
                            &t->headers) != 0 ||
        configure_request(t, req) != 0) {
        transfer_free(t);  /* not recycled: a half-configured handle is not worth the doubt */
        return NULL;
    }
    return t;
}

/* Tells a connect-phase timeout from an overall one, for a more useful message. */
static int timed_out_connecting(http_transfer *t)
{
    const http_options *o = &t->c->opts;
#if LIBCURL_VERSION_NUM >= 0x075000
    int connecting = !t->connected;
#else
    curl_off_t connect_us = 0;
    curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    int connecting = connect_us == 0;
#endif
    return connecting && o->connect_timeout_ms > 0 &&
           (t->timeout_ms <= 0 || o->connect_timeout_ms < t->timeout_ms);
}

static const char *describe_failure(http_transfer *t, CURLcode rc, int *timed_out)
{
    if (t->body_too_large)
        return "response body too large";
    if (t->too_many_headers)
        return "too many response headers";
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        int connecting = timed_out_connecting(t);
        *timed_out = 1;
        snprintf(t->error, sizeof t->error, "%s after %ld ms",
                 connecting ? "connect timeout" : "timeout",
                 connecting ? t->c->opts.connect_timeout_ms : t->timeout_ms);
        return t->error;
    }
    return t->curl_error[0] ? t->curl_error : curl_easy_strerror(rc);
}

/* Failures report no body or headers: partial data must not be mistaken for a reply. */
static void response_fill(http_transfer *t, CURLcode rc, int cancelled, http_response *r)
{
    memset(r, 0, sizeof *r);
    r->body = "";
    r->total_ms = (ev_time() - t->started) * 1000.0;
    const char *off_host = NULL;
    if (cancelled) {
        r->error = "cancelled";
    } else if (rc != CURLE_OK) {
        r->error = describe_failure(t, rc, &r->timed_out);
    } else if ((off_host = redirect_violation(t)) != NULL) {
        r->error = off_host;
    } else if (!t->headers_done) {
        /* The plain client's text for the same cut (http_plain_conn.c). */
        r->error = "transfer closed with outstanding read data remaining";
    } else {
        r->ok = 1;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r->status);
        r->body = t->body ? t->body : "";
        r->body_len = t->body_len;
        r->header_names = (const char *const *)t->names;
        r->header_values = (const char *const *)t->values;
        r->n_headers = t->n_headers;
    }
}

/* Detaches the transfer before the callback so the connection is already back in the
 * cache (reusable by a request the callback starts) and in_flight is accurate. */
static void transfer_finish(http_transfer *t, CURLcode rc, int cancelled)
{
    http_client *c = t->c;
    http_response r;
    response_fill(t, rc, cancelled, &r);
    transfer_unlink(c, t);
    curl_multi_remove_handle(c->multi, t->easy);
    t->done(t->user, &r);
    transfer_recycle(t);
}

/* ---- client teardown ------------------------------------------------------------------- */

static void client_destroy(http_client *c)
{
    c->closing = 1;
    while (c->transfers)
        transfer_finish(c->transfers, CURLE_OK, 1);
    while (c->idle) {
        http_transfer *t = c->idle;
        c->idle = t->next;
        transfer_free(t);
    }
    http_plain_free(c->plain);
    if (c->multi)
        curl_multi_cleanup(c->multi);  /* closes cached connections */
    ev_timer_stop(c->loop, &c->timer);
    http_header_cache_free(c->headers);  /* after the transfers: they held its lists */
    free(c->user_agent);
    free(c);
}

void http_client_free(http_client *c)
{
    if (!c || c->closing || c->free_requested)
        return;
    if (c->dispatching) {
        /* Called from a completion callback: libcurl and our dispatch loop are still using
         * the client, so dispatch_completed() destroys it once the callback returns. */
        c->free_requested = 1;
        return;
    }
    client_destroy(c);
}

/* ---- event loop glue ------------------------------------------------------------------- */

static void dispatch_completed(http_client *c)
{
    CURLMsg *msg;
    int left;
    c->dispatching++;
    while (!c->free_requested && (msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg is invalidated by curl_multi_remove_handle(): copy what we need first. */
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        transfer_finish((http_transfer *)(void *)priv, rc, 0);
    }
    c->dispatching--;
    if (c->dispatching == 0 && c->free_requested)
        client_destroy(c);
}

static void on_socket_ready(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    http_socket *s = (http_socket *)w;
    http_client *c = s->c;  /* s may be freed inside curl_multi_socket_action() */
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
                 (revents & EV_WRITE ? CURL_CSELECT_OUT : 0) |
                 (revents & EV_ERROR ? CURL_CSELECT_ERR : 0);
    int running;
    curl_multi_socket_action(c->multi, w->fd, action, &running);
    dispatch_completed(c);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    http_client *c = w->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    dispatch_completed(c);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    http_client *c = userp;
    http_socket *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(c->loop, &s->io);
            free(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
            free(s);
            return -1;  /* libcurl fails the transfers using this socket */
        }
        s->c = c;
        ev_init(&s->io, on_socket_ready);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(c->loop, &s->io);  /* ev_io_set() is only allowed on a stopped watcher */
    ev_io_set(&s->io, fd, events);
    if (events)
        ev_io_start(c->loop, &s->io);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION. A 0 ms timeout is also scheduled through the loop instead of
 * calling curl_multi_socket_action() here: libcurl must not be re-entered from its own
 * callbacks, and http_get() promises not to complete synchronously. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    http_client *c = userp;
    ev_timer_stop(c->loop, &c->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0.0);
        ev_timer_start(c->loop, &c->timer);
    }
    return 0;
}

/* ---- public API ------------------------------------------------------------------------ */

static int configure_multi(http_client *c)
{
    CURLM *m = c->multi;
    const http_options *o = &c->opts;
    int bad = 0;
    bad |= curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_SOCKETDATA, (void *)c) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_TIMERDATA, (void *)c) != CURLM_OK;
    bad |= curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) != CURLM_OK;
    if (o->max_host_connections > 0)
        bad |= curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS,
                                 o->max_host_connections) != CURLM_OK;
    if (o->max_total_connections > 0)
        bad |= curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                                 o->max_total_connections) != CURLM_OK;
    return bad ? -1 : 0;
}

http_client *http_client_new(struct ev_loop *loop, const http_options *opts)
{
    if (!loop || http_global_init() != 0)
        return NULL;
    http_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    ev_timer_init(&c->timer, on_timeout, 0.0, 0.0);
    c->timer.data = c;
    if (opts)
        c->opts = *opts;
    else
        http_options_defaults(&c->opts);
    if (!c->opts.user_agent)
        c->opts.user_agent = "m2p-engine/" M2P_VERSION;
    c->user_agent = strdup(c->opts.user_agent);
    c->opts.user_agent = c->user_agent;
    c->headers = c->user_agent ? http_header_cache_new(c->user_agent) : NULL;
    c->multi = curl_multi_init();
    if (!c->opts.libcurl_only)
        c->plain = http_plain_new(loop, &c->opts);
    if (!c->headers || !c->multi || configure_multi(c) != 0 ||
        (!c->opts.libcurl_only && !c->plain)) {
        client_destroy(c);
        return NULL;
    }
    return c;
}

int http_get(http_client *c, const http_request *req, http_done_fn done, void *user)
{
    if (!c || !req || !req->url || !done || (req->n_headers && !req->headers) || c->closing ||
        c->free_requested)
        return -1;
    /* Only requests the plain client sends exactly as libcurl would (http_plain.h); 1 =
     * not one of those. */
    int plain = c->plain ? http_plain_get(c->plain, req, done, user) : 1;
    if (plain <= 0)
        return plain;
    http_transfer *t = transfer_new(c, req, done, user);
    if (!t)
        return -1;
    if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK) {
        transfer_free(t);
        return -1;
    }
    transfer_link(c, t);
    return 0;
}

size_t http_in_flight(const http_client *c)
{
    return c ? c->in_flight + http_plain_in_flight(c->plain) : 0;
}
