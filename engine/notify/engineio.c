/* Engine.IO v4 / Socket.IO v5 packet codec (see engineio.h). Every decoder works on a
 * (pointer, length) slice of a server's response body and checks each byte it uses, so a
 * hostile or broken server gets a clear error and the session is dropped, never a crash. */
#include "notify/engineio.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EIO_DEFAULT_MAX_PAYLOAD 1000000u

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A byte for an error text: itself when printable, else \xNN (never raw control bytes in
 * a log line). */
static const char *show_byte(unsigned char c, char out[8])
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(out, 8, "'%c'", c);
    else
        snprintf(out, 8, "\\x%02x", c);
    return out;
}

/* Parses exactly [s, s+len) as one JSON value (surrounding whitespace allowed). */
static cJSON *parse_json(const char *s, size_t len, const char *what, char *err, size_t cap)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!j) {
        size_t at = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
        fail(err, cap, "%s is not valid JSON (at byte %zu)", what, at);
        return NULL;
    }
    for (const char *p = end; p < s + len; p++) {
        if (!strchr(" \t\r\n", *p)) {
            cJSON_Delete(j);
            fail(err, cap, "%s has %zu bytes after its JSON value", what,
                 (size_t)(s + len - end));
            return NULL;
        }
    }
    return j;
}

/* ============================== Engine.IO ============================== */

void eio_reader_init(eio_reader *r, const char *body, size_t len)
{
    r->p = body;
    r->end = body + len;
    r->done = len == 0;
}

int eio_reader_next(eio_reader *r, eio_packet *out, char *err, size_t cap)
{
    if (r->done)
        return 0;
    const char *sep = memchr(r->p, EIO_RECORD_SEPARATOR, (size_t)(r->end - r->p));
    const char *stop = sep ? sep : r->end;
    const char *start = r->p;
    if (sep)
        r->p = sep + 1;
    else
        r->done = true;
    if (eio_decode_packet(start, (size_t)(stop - start), out, err, cap) < 0) {
        r->done = true;
        return -1;
    }
    return 1;
}

int eio_decode_packet(const char *s, size_t len, eio_packet *out, char *err, size_t cap)
{
    char shown[8];
    if (len == 0)
        return fail(err, cap, "empty Engine.IO packet");
    if (s[0] == 'b')
        return fail(err, cap, "binary Engine.IO packet (\"b\" prefix) is not supported");
    if (s[0] < '0' || s[0] > '6')
        return fail(err, cap, "unknown Engine.IO packet type %s",
                    show_byte((unsigned char)s[0], shown));
    out->type = (eio_type)(s[0] - '0');
    out->data = s + 1;
    out->len = len - 1;
    return 0;
}

static bool sid_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* A whole number of milliseconds (or bytes) in [lo, hi]. */
static int number_field(const cJSON *o, const char *name, double lo, double hi, double *out,
                        char *err, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v))
        return fail(err, cap, "open packet: %s is missing or not a number", name);
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != (double)(long long)d)
        return fail(err, cap, "open packet: %s must be a whole number in %.0f..%.0f", name, lo,
                    hi);
    *out = d;
    return 0;
}

int eio_parse_handshake(const char *data, size_t len, eio_handshake *out, char *err,
                        size_t cap)
{
    cJSON *j = parse_json(data, len, "open packet", err, cap);
    if (!j)
        return -1;
    int rc = -1;
    double interval, timeout, max_payload = EIO_DEFAULT_MAX_PAYLOAD;
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "sid");
    if (!cJSON_IsObject(j)) {
        fail(err, cap, "open packet is not a JSON object");
        goto done;
    }
    if (!cJSON_IsString(sid) || !sid->valuestring[0] ||
        strlen(sid->valuestring) > EIO_MAX_SID) {
        fail(err, cap, "open packet: sid is missing, empty or longer than %d", EIO_MAX_SID);
        goto done;
    }
    /* The sid goes into every later URL's query string unescaped. */
    for (const char *p = sid->valuestring; *p; p++) {
        if (!sid_char(*p)) {
            fail(err, cap, "open packet: sid contains a character that is not URL-safe");
            goto done;
        }
    }
    if (number_field(j, "pingInterval", 1, 3600000, &interval, err, cap) < 0 ||
        number_field(j, "pingTimeout", 1, 3600000, &timeout, err, cap) < 0)
        goto done;
    if (cJSON_GetObjectItemCaseSensitive(j, "maxPayload") &&
        number_field(j, "maxPayload", 64, 1e9, &max_payload, err, cap) < 0)
        goto done;
    snprintf(out->sid, sizeof out->sid, "%s", sid->valuestring);
    out->ping_interval_ms = (long)interval;
    out->ping_timeout_ms = (long)timeout;
    out->max_payload = (size_t)max_payload;
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

/* ============================ growable text ============================ */

void eio_buf_append(eio_buf *b, const char *s, size_t len)
{
    if (b->failed)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void eio_buf_free(eio_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

int eio_append_packet(eio_buf *b, eio_type type, const char *data, size_t len)
{
    if (len && memchr(data, EIO_RECORD_SEPARATOR, len))
        return -1;
    char t = (char)('0' + (int)type);
    if (b->len)
        eio_buf_append(b, "\x1e", 1);
    eio_buf_append(b, &t, 1);
    eio_buf_append(b, data, len);
    return 0;
}

/* ============================== Socket.IO ============================== */

static const char *const SIO_NAMES[] = {"CONNECT", "DISCONNECT", "EVENT", "ACK",
                                        "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"};

/* "/name," or "/name" up to the end; *pos is left after the comma. */
static int decode_nsp(const char *s, size_t len, size_t *pos, sio_packet *out, char *err,
                      size_t cap)
{
    size_t start = *pos, i = start;
    while (i < len && s[i] != ',')
        i++;
    size_t n = i - start;
    if (n > SIO_MAX_NSP)
        return fail(err, cap, "Socket.IO namespace longer than %d bytes", SIO_MAX_NSP);
    for (size_t k = start; k < i; k++)
        if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
            return fail(err, cap, "Socket.IO namespace contains a control character");
    memcpy(out->nsp, s + start, n);
    out->nsp[n] = '\0';
    *pos = i < len ? i + 1 : i;
    return 0;
}

static int decode_id(const char *s, size_t len, size_t *pos, sio_packet *out, char *err,
                     size_t cap)
{
    size_t i = *pos;
    long long id = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (i - *pos >= 15)
            return fail(err, cap, "Socket.IO ack id longer than 15 digits");
        id = id * 10 + (s[i] - '0');
        i++;
    }
    out->id = i > *pos ? id : -1;
    *pos = i;
    return 0;
}

/* The payload shapes the protocol allows per packet type. */
static int check_payload(const sio_packet *p, char *err, size_t cap)
{
    const cJSON *d = p->data;
    const char *name = SIO_NAMES[p->type];
    switch (p->type) {
    case SIO_CONNECT:
        if (d && !cJSON_IsObject(d))
            return fail(err, cap, "CONNECT payload is not an object");
        return 0;
    case SIO_DISCONNECT:
        if (d)
            return fail(err, cap, "DISCONNECT packet has a payload");
        return 0;
    case SIO_EVENT:
        if (!cJSON_IsArray(d) || cJSON_GetArraySize(d) == 0)
            return fail(err, cap, "EVENT payload is not a non-empty array");
        if (!cJSON_IsString(cJSON_GetArrayItem(d, 0)))
            return fail(err, cap, "EVENT name is not a string");
        return 0;
    case SIO_ACK:
        if (!cJSON_IsArray(d))
            return fail(err, cap, "ACK payload is not an array");
        if (p->id < 0)
            return fail(err, cap, "ACK packet has no ack id");
        return 0;
    case SIO_CONNECT_ERROR:
        if (!cJSON_IsObject(d) && !cJSON_IsString(d))
            return fail(err, cap, "CONNECT_ERROR payload is not an object or a string");
        return 0;
    default:
        return fail(err, cap, "%s packets are not supported", name);
    }
}

int sio_decode(const char *s, size_t len, sio_packet *out, char *err, size_t cap)
{
    char shown[8];
    memset(out, 0, sizeof *out);
    out->id = -1;
    strcpy(out->nsp, "/");
    if (len == 0)
        return fail(err, cap, "empty Socket.IO packet");
    if (s[0] < '0' || s[0] > '6')
        return fail(err, cap, "unknown Socket.IO packet type %s",
                    show_byte((unsigned char)s[0], shown));
    out->type = (sio_type)(s[0] - '0');
    if (out->type == SIO_BINARY_EVENT || out->type == SIO_BINARY_ACK)
        return fail(err, cap, "%s packets (binary attachments) are not supported",
                    SIO_NAMES[out->type]);
    size_t pos = 1;
    if (pos < len && s[pos] == '/' && decode_nsp(s, len, &pos, out, err, cap) < 0)
        return -1;
    if (decode_id(s, len, &pos, out, err, cap) < 0)
        return -1;
    if (pos < len) {
        char what[40];
        snprintf(what, sizeof what, "%s payload", SIO_NAMES[out->type]);
        out->data = parse_json(s + pos, len - pos, what, err, cap);
        if (!out->data)
            return -1;
    }
    if (check_payload(out, err, cap) < 0) {
        sio_packet_clear(out);
        return -1;
    }
    return 0;
}

void sio_packet_clear(sio_packet *p)
{
    cJSON_Delete(p->data);
    p->data = NULL;
}

int sio_append(eio_buf *b, sio_type type, const char *nsp, long long id, const char *json,
               size_t json_len)
{
    bool named = nsp && strcmp(nsp, "/") != 0;
    if (named && (nsp[0] != '/' || strchr(nsp, ',')))
        return -1;
    char t = (char)('0' + (int)type);
    eio_buf_append(b, &t, 1);
    if (named) {
        eio_buf_append(b, nsp, strlen(nsp));
        eio_buf_append(b, ",", 1);
    }
    if (id >= 0) {
        char digits[24];
        int n = snprintf(digits, sizeof digits, "%lld", id);
        eio_buf_append(b, digits, (size_t)n);
    }
    if (json)
        eio_buf_append(b, json, json_len);
    return 0;
}

const char *sio_connect_error_message(const sio_packet *p)
{
    if (cJSON_IsString(p->data))
        return p->data->valuestring;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(p->data, "message");
    return cJSON_IsString(m) ? m->valuestring : NULL;
}
