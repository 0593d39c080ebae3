/* Asynchronous HTTP client (GET, and POST for the notifiers): libcurl's multi-socket API driven by a libev loop.
 *
 * Plain http:// GETs (no body, proxy, interface or redirects) go instead to the engine's own
 * HTTP/1.1 client (engine/http_plain.h) unless http_options.libcurl_only: same bytes on the
 * wire but Accept-Encoding, same responses and texts (docs/architecture.md lists the few
 * differences), a tenth of libcurl's instructions per request.
 *
 * This is the only part of the engine that talks to libcurl. A client owns one curl multi
 * handle, so every request made through it shares the connection cache (keep-alive, HTTP/2
 * multiplexing where the server offers it), the DNS cache and the TLS session cache. It
 * also reuses libcurl's per-request handles and builds one request header list per distinct
 * set of headers (engine/http_headers.h): every option a request can set is set again for
 * each request, so nothing of one request (headers, proxy, interface, timeout, redirect
 * policy, a POST body) carries over into the next.
 *
 * Threading: a client belongs to the thread running its loop; every function below (and
 * every completion callback) runs on that thread. Nothing here blocks: DNS resolution uses
 * libcurl's threaded resolver and all socket I/O is driven by ev_io / ev_timer watchers.
 *
 * Fixed policy for every request: TLS peer and host verification on (unless the request
 * sets tls_no_verify, which only an operator's <POOL>_TLS_VERIFY=false does), only http:// and
 * https:// (also for redirect targets), any content encoding libcurl can decode is
 * accepted and decoded, signals are never used (CURLOPT_NOSIGNAL). Redirects are not
 * followed unless the request asks for same-host ones (http_redirects below).
 */
#ifndef M2P_HTTP_H
#define M2P_HTTP_H

#include <stddef.h>

struct ev_loop;

typedef struct http_client http_client;

#define HTTP_DEFAULT_TIMEOUT_MS 10000L        /* POOL_REQUEST_TIMEOUT */
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define HTTP_DEFAULT_MAX_BODY_BYTES ((size_t)1 << 20)
#define HTTP_DEFAULT_MAX_REDIRECTS 3L

/* Start from http_options_defaults() and override fields: a zeroed struct means "no
 * timeouts, no body allowed". */

typedef struct http_options {
    long timeout_ms;              /* whole request incl. redirects; default 10000 */
    long connect_timeout_ms;      /* TCP + TLS handshake; default 5000 */
    size_t max_body_bytes;        /* decoded body cap; default 1 MiB; larger -> error */
    long max_redirects;           /* cap for HTTP_REDIRECTS_SAME_HOST requests; default 3 */
    const char *user_agent;       /* default "m2p-engine/<M2P_VERSION>"; copied */
    long max_host_connections;    /* 0 = libcurl default (unlimited) */
    long max_total_connections;   /* 0 = libcurl default (unlimited) */
    int libcurl_only;             /* 1 = every request through libcurl (HTTP_CLIENT=libcurl);
                                     0 = plain http:// GETs through engine/http_plain.c */
} http_options;

/* Which redirects a request follows. An answer decides awards only if it comes from the
 * host that was asked: a 3xx pointing elsewhere would hand the decision to whoever serves
 * that Location. */
typedef enum http_redirects {
    HTTP_REDIRECTS_NONE = 0,  /* a 3xx is the response (ok=1, status 3xx); the default */
    HTTP_REDIRECTS_SAME_HOST, /* follow up to max_redirects; ending on another host or port
                                 than the request's is a failure ("redirected off ...") */
} http_redirects;

typedef struct http_request {
    const char *url;
    const char *const *headers;   /* "Name: value" lines, no CR/LF; copied */
    size_t n_headers;
    const char *proxy;            /* e.g. "http://10.0.0.1:3128", "socks5h://h:1080";
                                     NULL = direct (http_proxy & co. env vars are ignored) */
    const char *interface;        /* source interface/address for CURLOPT_INTERFACE
                                     ("eth1", "if!eth1", "host!10.0.0.2"); NULL = any */
    http_redirects redirects;     /* zero = HTTP_REDIRECTS_NONE */
    const char *body;             /* non-NULL: the request is a POST of body_len bytes
                                     (copied; set Content-Type in headers); NULL = GET */
    size_t body_len;
    long timeout_ms;              /* > 0: this request's whole-request timeout instead of
                                     the client's (a long-poll GET); 0 = the client's */
    int tls_no_verify;            /* 1 = accept any certificate and host name over https
                                     (<POOL>_TLS_VERIFY=false); 0 = verify, the default */
} http_request;

typedef struct http_response {
    int ok;                       /* 1 = got an HTTP response (any status); 0 = failure */
    long status;                  /* HTTP status of the final response when ok */
    const char *error;            /* when !ok: "timeout after 10000 ms", "cancelled",
                                     "response body too large", "redirected off
                                     127.0.0.1:8080 to 10.0.0.9:80", or libcurl's message */
    int timed_out;                /* 1 when the failure was a timeout */
    const char *body;             /* decoded body, NUL-terminated (never NULL) */
    size_t body_len;
    const char *const *header_names;  /* lower-cased, final response only */
    const char *const *header_values; /* surrounding whitespace trimmed */
    size_t n_headers;
    double total_ms;              /* wall time from http_get() to completion */
} http_response;

/* Called exactly once per started request. `response` and everything it points to are
 * valid only during the call. The callback may call http_get() and http_client_free(). */
typedef void (*http_done_fn)(void *user, const http_response *response);

/* libcurl global initialisation. main() should call it once at start-up, before any other
 * thread exists; http_client_new() also calls it (idempotent) so tests need not.
 * Returns 0 on success, -1 on failure. */
int http_global_init(void);
/* Releases libcurl's global state; call once at exit after every client is freed. */
void http_global_cleanup(void);

void http_options_defaults(http_options *o);

/* `opts` may be NULL for defaults. Returns NULL on allocation/libcurl failure. */
http_client *http_client_new(struct ev_loop *loop, const http_options *opts);

/* Starts a GET (or a POST when req->body is set). Returns 0 when started (done will be called later, never from inside this
 * call) or -1 when it could not start (done is not called): bad arguments, a header
 * containing CR/LF or no colon, a same-host request whose URL libcurl cannot parse,
 * allocation failure, or the client is being freed. */
int http_get(http_client *c, const http_request *req, http_done_fn done, void *user);

/* Requests started and not yet completed. */
size_t http_in_flight(const http_client *c);

/* Aborts every in-flight request (its callback runs with ok=0, error="cancelled"), closes
 * all connections and frees the client. NULL is a no-op. */
void http_client_free(http_client *c);

#endif
