/* Request side of engine/http_plain.c (internal): which requests the plain client takes,
 * and the bytes it sends for one.
 */
#ifndef M2P_HTTP_PLAIN_REQUEST_H
#define M2P_HTTP_PLAIN_REQUEST_H

#include <stddef.h>

#include "http.h"

typedef struct plain_url {
    const char *host, *target;  /* into the URL; target: path and query, "" = "/" */
    size_t host_len, target_len;
    int port;
} plain_url;

typedef struct plain_buf {
    char *data;
    size_t len, cap;
} plain_buf;

/* Splits a URL the plain client serves exactly as libcurl would. 0, or -1 for any other. */
int plain_url_split(const char *url, plain_url *out);
/* http_plain_accepts() with the split URL kept: 0 = a plain request, -1 = libcurl's. */
int plain_request_check(const http_request *req, plain_url *u);
/* The GET request's bytes into *b (reusing its memory); `host_line` is "Host: ...\r\n".
 * 0, or -1 on allocation failure. */
int plain_request_build(plain_buf *b, const char *user_agent, const char *host_line,
                        const http_request *req, const plain_url *u);

#endif
