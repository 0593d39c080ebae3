/* The plain HTTP/1.1 client behind engine/http.h for http:// keep-alive GETs (internal).
 *
 * libcurl spends about 74,000 instructions on one steady-state keep-alive GET; most of it is
 * generality a pool poll never uses (URL re-assembly, header formatting, protocol state
 * machines for features that are off). This client does only what such a request needs:
 * the request bytes copied into a buffer, the response parsed by http_parser (Debian
 * libhttp-parser, the parser wrk uses), gzip/deflate decoded with zlib, connections kept per
 * host:port. http.c offers it every request; it takes only those it serves exactly like
 * libcurl would (http_plain_accepts(): scheme, method, headers, no proxy, no interface, no
 * redirects) and hands every other back, for libcurl.
 *
 * The http_response it produces has the same fields and texts as libcurl's path; the
 * differences are documented in docs/architecture.md (Accept-Encoding without br/zstd, and
 * some failure texts).
 *
 * Threading: like http_client, a plain client belongs to its loop's thread.
 */
#ifndef M2P_HTTP_PLAIN_H
#define M2P_HTTP_PLAIN_H

#include <stddef.h>

#include "http.h"

typedef struct http_plain http_plain;

/* The Accept-Encoding line this client sends: the encodings it decodes. */
#define HTTP_PLAIN_ACCEPT_ENCODING "Accept-Encoding: deflate, gzip"
/* Largest response header section accepted (libcurl's CURL_MAX_HTTP_HEADER). */
#define HTTP_PLAIN_MAX_HEADER_BYTES (100 * 1024)
/* Seconds a resolved name is reused (libcurl's CURLOPT_DNS_CACHE_TIMEOUT default). */
#define HTTP_PLAIN_DNS_CACHE_SECONDS 60.0
/* Seconds an idle connection may be reused (libcurl's CURLOPT_MAXAGE_CONN default). */
#define HTTP_PLAIN_MAX_IDLE_SECONDS 118.0

/* `opts` is copied; opts->user_agent must outlive the client. NULL on allocation failure. */
http_plain *http_plain_new(struct ev_loop *loop, const http_options *opts);
/* Cancels every request ("cancelled") and closes every connection. Called from inside a
 * completion callback, the memory is released when that callback returns. NULL: no-op. */
void http_plain_free(http_plain *p);
/* 1 when the request is one this client serves exactly as libcurl would. */
int http_plain_accepts(const http_request *req);
/* As http_get(): 0 started, -1 not started; 1 = not a request for this client (see
 * http_plain_accepts(): the caller sends it through libcurl). */
int http_plain_get(http_plain *p, const http_request *req, http_done_fn done, void *user);
size_t http_plain_in_flight(const http_plain *p);

#endif
