/* Which requests the plain HTTP client takes, and their bytes (see http_plain_request.h).
 *
 * The test is "libcurl would send exactly these bytes": anything libcurl would rewrite
 * (dot segments, characters it escapes, an upper-case host, a fragment, user info), any
 * header line it treats specially, and every option the plain client lacks (proxy,
 * interface, redirects, a body) leaves the request with libcurl. URLs are split by
 * http_parser's URL parser, the library that parses the responses.
 */
#include "http_plain.h"
#include "http_plain_request.h"

#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- which requests: exactly those libcurl would send the same way -------------------- */

/* Characters libcurl sends unchanged in a path or query (RFC 3986 pchar, '/', '?'). */
static int url_char_ok(unsigned char ch)
{
    /* Bit c of the two words: c is a letter, a digit or one of -._~!$&'()*+,;=:@/?% (a
     * table rather than strchr() per character: the query is an account's wallet). */
    static const uint64_t ok[2] = {0xaffffff200000000ULL, 0x47fffffe87ffffffULL};
    return ch < 128 && (ok[ch >> 6] >> (ch & 63) & 1);
}

static int host_char_ok(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
}

/* http://host[:port][/path][?query] with a lower-case name or IPv4 host and nothing libcurl
 * would normalise (dot segments, a fragment, user info, characters it escapes). */
int plain_url_split(const char *url, plain_url *out)
{
    struct http_parser_url u;
    size_t len = strlen(url);
    if (strncmp(url, "http://", 7) != 0 || len > 8000)
        return -1;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, len, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)) ||
        (u.field_set & ((1 << UF_FRAGMENT) | (1 << UF_USERINFO))))
        return -1;
    out->host = url + u.field_data[UF_HOST].off;
    out->host_len = u.field_data[UF_HOST].len;
    if (out->host_len == 0 || out->host_len > 253 || out->host[out->host_len] == ']')
        return -1;
    for (size_t i = 0; i < out->host_len; i++)
        if (!host_char_ok((unsigned char)out->host[i]))
            return -1;
    out->port = u.field_set & (1 << UF_PORT) ? u.port : 80;
    if (out->port <= 0)
        return -1;
    const char *rest = out->host + out->host_len;
    if (*rest == ':') {
        rest++;
        while (*rest >= '0' && *rest <= '9')
            rest++;
    }
    out->target = rest;
    out->target_len = len - (size_t)(rest - url);
    for (size_t i = 0; i < out->target_len; i++)
        if (!url_char_ok((unsigned char)rest[i]))
            return -1;
    if ((out->target_len && rest[0] != '/' && rest[0] != '?') || strstr(rest, "/.") ||
        (out->target_len && rest[out->target_len - 1] == '?'))
        return -1;
    return 0;
}

/* Lines libcurl treats specially (replaces, drops or acts on): those requests stay with it,
 * as do lines with an empty value ("Name:" removes a header in libcurl). */
static int header_plain(const char *h)
{
    static const char *const special[] = {"host", "connection", "content-length",
                                          "transfer-encoding", "expect", "te",
                                          "authorization", "cookie", NULL};
    const char *colon = h ? strchr(h, ':') : NULL;
    if (!colon || colon == h || strpbrk(h, "\r\n"))
        return 0;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return 0;
    for (size_t i = 0; special[i]; i++)
        if ((size_t)(colon - h) == strlen(special[i]) &&
            strncasecmp(h, special[i], strlen(special[i])) == 0)
            return 0;
    return 1;
}

int plain_request_check(const http_request *req, plain_url *u)
{
    if (!req || !req->url || req->body || req->proxy || req->interface ||
        req->redirects != HTTP_REDIRECTS_NONE || plain_url_split(req->url, u) != 0)
        return -1;
    for (size_t i = 0; i < req->n_headers; i++)
        if (!header_plain(req->headers[i]))
            return -1;
    return 0;
}

int http_plain_accepts(const http_request *req)
{
    plain_url u;
    return plain_request_check(req, &u) == 0;
}

/* ---- request bytes --------------------------------------------------------------------- */

static int has_header(const http_request *req, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (strncasecmp(req->headers[i], name, len) == 0 && req->headers[i][len] == ':')
            return 1;
    return 0;
}

static int out_add(plain_buf *b, const char *s, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + len)
            cap *= 2;
        char *o = realloc(b->data, cap);
        if (!o)
            return -1;
        b->data = o;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, len);
    b->len += len;
    return 0;
}

#define OUT(s, l) bad |= out_add(b, (s), (l))
#define OUTS(s) OUT((s), strlen(s))

/* The bytes libcurl 7.88+ sends for the same GET: request line, Host (no port for 80),
 * its any-type Accept line unless the caller has an Accept line, then User-Agent,
 * Accept-Encoding and the caller's lines in engine/http_headers.c's order. */
int plain_request_build(plain_buf *b, const char *user_agent, const char *host_line,
                        const http_request *req, const plain_url *u)
{
    int bad = 0;
    b->len = 0;
    OUT("GET ", 4);
    if (u->target_len == 0 || u->target[0] == '?')
        OUT("/", 1);
    OUT(u->target, u->target_len);
    OUTS(" HTTP/1.1\r\n");
    OUTS(host_line);
    if (!has_header(req, "Accept"))
        OUTS("Accept: */*\r\n");
    if (!has_header(req, "User-Agent")) {
        OUTS("User-Agent: ");
        OUTS(user_agent);
        OUTS("\r\n");
    }
    if (!has_header(req, "Accept-Encoding"))
        OUTS(HTTP_PLAIN_ACCEPT_ENCODING "\r\n");
    for (size_t i = 0; i < req->n_headers; i++) {
        OUTS(req->headers[i]);
        OUTS("\r\n");
    }
    OUTS("\r\n");
    return bad ? -1 : 0;
}

#undef OUT
#undef OUTS

