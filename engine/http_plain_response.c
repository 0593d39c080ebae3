/* http_parser callbacks of the plain HTTP client (see http_plain_response.h).
 *
 * Every response of a request starts with on_message_begin, so interim 1xx responses reset
 * what was kept, exactly as engine/http.c's header callback starts over at each status line:
 * only the final response's headers (and any chunked trailers, which libcurl also passes to
 * its header callback) survive.
 */
#include "http_plain_response.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Same bound as engine/http.c: memory for a hostile server's headers. */
#define PLAIN_MAX_HEADERS 256

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static int fail(plain_response *r, const char *why)
{
    if (!r->failure)
        r->failure = why;
    return -1;
}

static void headers_clear(plain_response *r)
{
    for (size_t i = 0; i < r->n_headers; i++)
        free(r->names[i]);
    r->n_headers = 0;
    r->field_len = r->name_len = 0;
    r->in_value = r->have_field = 0;
}

static void decoder_end(plain_response *r)
{
    if (r->z_mode)
        inflateEnd(&r->z);
    r->z_mode = 0;
}

static void reset(plain_response *r)
{
    headers_clear(r);
    decoder_end(r);
    r->body_len = 0;
    if (r->body)
        r->body[0] = '\0';
}

void plain_response_start(plain_response *r, size_t max_body)
{
    reset(r);
    r->max_body = max_body;
    r->complete = 0;
    r->failure = NULL;
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.allow_chunked_length = 1;  /* libcurl: chunked wins over Content-Length */
    r->parser.data = r;
}

void plain_response_free(plain_response *r)
{
    reset(r);
    free(r->names);
    free(r->values);
    free(r->field);
    free(r->body);
    memset(r, 0, sizeof *r);
}

void plain_response_trim(plain_response *r, size_t keep)
{
    if (r->body_cap > keep) {
        free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
}

/* ---- headers --------------------------------------------------------------------------- */

static int headers_reserve(plain_response *r)
{
    if (r->n_headers < r->headers_cap)
        return 0;
    size_t cap = r->headers_cap ? r->headers_cap * 2 : 16;
    char **names = realloc(r->names, cap * sizeof *names);
    if (!names)
        return -1;
    r->names = names;
    char **values = realloc(r->values, cap * sizeof *values);
    if (!values)
        return -1;
    r->values = values;
    r->headers_cap = cap;
    return 0;
}

/* Stores the header received so far, as engine/http.c's headers_add() would. */
static int header_commit(plain_response *r)
{
    if (!r->have_field)
        return 0;
    r->have_field = r->in_value = 0;
    size_t name_len = r->name_len;
    const char *value = r->field + name_len;
    size_t value_len = r->field_len - name_len;
    r->field_len = r->name_len = 0;
    if (r->n_headers == PLAIN_MAX_HEADERS)
        return fail(r, "too many response headers");
    while (value_len > 0 && isspace((unsigned char)*value)) {
        value++;
        value_len--;
    }
    while (value_len > 0 && isspace((unsigned char)value[value_len - 1]))
        value_len--;
    char *entry = malloc(name_len + value_len + 2);
    if (!entry || headers_reserve(r) != 0) {
        free(entry);
        return fail(r, "Out of memory");
    }
    memcpy(entry, r->field, name_len);  /* lower-cased on the way in */
    entry[name_len] = '\0';
    memcpy(entry + name_len + 1, value, value_len);
    entry[name_len + 1 + value_len] = '\0';
    r->names[r->n_headers] = entry;
    r->values[r->n_headers++] = entry + name_len + 1;
    return 0;
}

static int on_field(http_parser *hp, const char *at, size_t len)
{
    plain_response *r = hp->data;
    if (r->in_value && header_commit(r) != 0)
        return -1;
    if (grow(&r->field, &r->field_cap, r->field_len + len + 1) != 0)
        return fail(r, "Out of memory");
    for (size_t i = 0; i < len; i++)
        r->field[r->field_len++] = (char)tolower((unsigned char)at[i]);
    r->name_len = r->field_len;
    r->have_field = 1;
    return 0;
}

static int on_value(http_parser *hp, const char *at, size_t len)
{
    plain_response *r = hp->data;
    r->in_value = 1;
    if (grow(&r->field, &r->field_cap, r->field_len + len + 1) != 0)
        return fail(r, "Out of memory");
    memcpy(r->field + r->field_len, at, len);
    r->field_len += len;
    return 0;
}

static const char *header_value(const plain_response *r, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcmp(r->names[i], name) == 0)
            found = r->values[i];
    return found;
}

/* ---- body ------------------------------------------------------------------------------ */

/* The cap is on decoded bytes, as in engine/http.c: a small gzip can inflate enormously. */
static int body_put(plain_response *r, const char *data, size_t len)
{
    if (len > r->max_body - r->body_len)
        return fail(r, "response body too large");
    if (grow(&r->body, &r->body_cap, r->body_len + len + 1) != 0)
        return fail(r, "Out of memory");
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

/* Content-Encoding of the final response: only what HTTP_PLAIN_ACCEPT_ENCODING offers. */
static int decoder_start(plain_response *r)
{
    const char *enc = header_value(r, "content-encoding");
    if (!enc || !*enc || strcasecmp(enc, "identity") == 0)
        return 0;
    int gzip = strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "x-gzip") == 0;
    if (!gzip && strcasecmp(enc, "deflate") != 0) {
        snprintf(r->failure_buf, sizeof r->failure_buf,
                 "Unrecognized content encoding type: %.60s", enc);
        return fail(r, r->failure_buf);
    }
    memset(&r->z, 0, sizeof r->z);
    /* 15 + 32: zlib or gzip header, detected; deflate starts as zlib (RFC 9110's
     * meaning) and falls back to raw deflate, which some servers send, as libcurl does. */
    if (inflateInit2(&r->z, gzip ? 15 + 32 : 15) != Z_OK)
        return fail(r, "Out of memory");
    r->z_mode = gzip ? 1 : 2;
    r->z_first = 1;
    r->z_end = 0;
    return 0;
}

static int body_inflate(plain_response *r, const char *data, size_t len)
{
    unsigned char out[16384];
    r->z.next_in = (unsigned char *)(uintptr_t)data;
    r->z.avail_in = (uInt)len;
    /* Also goes round while the output buffer came back full: inflate() may hold decoded
     * bytes (the rest of a match) after taking the last input byte. */
    while ((r->z.avail_in > 0 || r->z.avail_out == 0) && !r->z_end) {
        r->z.next_out = out;
        r->z.avail_out = sizeof out;
        int rc = inflate(&r->z, Z_NO_FLUSH);
        if (rc == Z_DATA_ERROR && r->z_mode == 2 && r->z_first && r->z.total_out == 0) {
            r->z_first = 0;
            if (inflateReset2(&r->z, -15) != Z_OK)
                return fail(r, "Out of memory");
            r->z.next_in = (unsigned char *)(uintptr_t)data;
            r->z.avail_in = (uInt)len;
            continue;
        }
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            snprintf(r->failure_buf, sizeof r->failure_buf,
                     "Error while processing content unencoding: %.80s",
                     r->z.msg ? r->z.msg : "invalid data");
            return fail(r, r->failure_buf);
        }
        if (body_put(r, (const char *)out, sizeof out - r->z.avail_out) != 0)
            return -1;
        r->z_end = rc == Z_STREAM_END;  /* bytes after the end of the stream are ignored */
        if (rc == Z_BUF_ERROR)
            break;
    }
    r->z_first = 0;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    plain_response *r = hp->data;
    return r->z_mode ? body_inflate(r, at, len) : body_put(r, at, len);
}

/* ---- messages -------------------------------------------------------------------------- */

static int interim(const http_parser *hp)
{
    return hp->status_code >= 100 && hp->status_code < 200 && hp->status_code != 101;
}

static int on_begin(http_parser *hp)
{
    reset(hp->data);
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    plain_response *r = hp->data;
    if (header_commit(r) != 0)
        return -1;
    if (interim(hp))
        return 0;
    return decoder_start(r) != 0 ? -1 : 0;
}

/* Pauses the parser after the final response: bytes after it are not this request's. */
static int on_complete(http_parser *hp)
{
    plain_response *r = hp->data;
    if (header_commit(r) != 0)  /* the last chunked trailer */
        return -1;
    if (interim(hp))
        return 0;
    r->complete = 1;
    http_parser_pause(hp, 1);
    return 0;
}

const http_parser_settings plain_response_settings = {
    .on_message_begin = on_begin,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_complete,
};
