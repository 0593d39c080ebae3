/* Response side of engine/http_plain.c (internal): http_parser callbacks that keep the final
 * response's headers (lower-cased names, trimmed values, as engine/http.c keeps them) and its
 * body, decoded from gzip or deflate with zlib, with the decoded-size cap.
 */
#ifndef M2P_HTTP_PLAIN_RESPONSE_H
#define M2P_HTTP_PLAIN_RESPONSE_H

#include <stddef.h>

#include <http_parser.h>
#include <zlib.h>

typedef struct plain_response {
    http_parser parser;         /* parser.data points at this struct */
    size_t max_body;            /* decoded body cap */
    char *body;
    size_t body_len, body_cap;
    char **names;               /* names[i] = "name\0value": one allocation per header */
    char **values;              /* values[i] points into names[i] */
    size_t n_headers, headers_cap;
    char *field;                /* header being received: name bytes, then value bytes */
    size_t field_len, field_cap, name_len;
    int in_value, have_field;
    z_stream z;
    int z_mode;                 /* 0 none, 1 gzip, 2 deflate (zlib, raw on a bad header) */
    int z_first, z_end;
    int complete;               /* the final (non-1xx) response is complete */
    const char *failure;        /* why a callback stopped the parser */
    char failure_buf[160];
} plain_response;

extern const http_parser_settings plain_response_settings;

/* Ready for a new request's response; keeps buffers allocated. */
void plain_response_start(plain_response *r, size_t max_body);
/* Releases everything. */
void plain_response_free(plain_response *r);
/* Drops a large body buffer so an idle request does not pin it. */
void plain_response_trim(plain_response *r, size_t keep);

#endif
