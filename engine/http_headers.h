/* Request header lists for engine/http.c, built once per distinct header set (internal).
 *
 * A pool's script sends the same headers for every account, so building a curl_slist per
 * request (one malloc and copy per line) is wasted work: a client keeps a small cache of
 * lists keyed by their content. Each list also carries the engine's own User-Agent and
 * Accept-Encoding lines, so libcurl finds them among the custom headers and does not format
 * its own with curl_maprintf on every request (the bytes on the wire are the same).
 *
 * Threading: a cache belongs to its client's loop thread, like the client.
 */
#ifndef M2P_HTTP_HEADERS_H
#define M2P_HTTP_HEADERS_H

#include <stddef.h>

#include <curl/curl.h>

typedef struct http_header_cache http_header_cache;
typedef struct http_header_set http_header_set;

/* What a request holds: `list` for CURLOPT_HTTPHEADER, and the cache entry that owns it
 * (NULL when the cache was full of lists in use: then the request owns `list`). */
typedef struct http_header_ref {
    struct curl_slist *list;
    http_header_set *set;
} http_header_ref;

/* `user_agent` is copied. NULL on allocation failure. */
http_header_cache *http_header_cache_new(const char *user_agent);
/* Every reference must have been released. NULL is a no-op. */
void http_header_cache_free(http_header_cache *hc);

/* The list for `headers` ("Name: value" lines, no CR/LF) plus the engine's own lines;
 * `post` adds "Expect:" (no 100-continue wait). 0, or -1 for a line with CR/LF or no colon
 * (or allocation failure), with *ref cleared. */
int http_header_acquire(http_header_cache *hc, const char *const *headers, size_t n, int post,
                        http_header_ref *ref);
/* Gives back what http_header_acquire() returned; clears *ref. */
void http_header_release(http_header_ref *ref);

#endif
