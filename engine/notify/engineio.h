/* Engine.IO v4 and Socket.IO v5 packet encoding: pure functions, no I/O.
 *
 * The Socket.IO client (socketio.c) talks Engine.IO over HTTP long-polling: a polling body
 * is a list of Engine.IO packets joined by the record separator 0x1e, each packet is a type
 * digit and its data, and a Socket.IO packet travels as the data of an Engine.IO "message"
 * packet ("4"). References: socket.io's docs/engine.io-protocol/v4-current.md and
 * docs/socket.io-protocol/v5-current.md.
 *
 * Decoders take what a server sent, which may be anything: they never read past `len`,
 * never need a terminating NUL, and fill `err` with a short text naming what was wrong.
 * Binary data (Engine.IO "b" packets, Socket.IO BINARY_EVENT / BINARY_ACK) is refused:
 * the engine never sends binary, and a server that does is misconfigured for us. */
#ifndef M2P_NOTIFY_ENGINEIO_H
#define M2P_NOTIFY_ENGINEIO_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define EIO_RECORD_SEPARATOR '\x1e'
#define EIO_MAX_SID 128   /* the official server's ids are 20 characters */
#define SIO_MAX_NSP 200   /* same bound as SOCKETIO_NAMESPACE */
#define SIO_MAX_ACK_ID 999999999999999LL /* 15 digits: exact in a JavaScript number */

/* ============================== Engine.IO ============================== */

typedef enum eio_type {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
} eio_type;

/* One packet; `data` points into the decoded buffer (not NUL-terminated). */
typedef struct eio_packet {
    eio_type type;
    const char *data;
    size_t len;
} eio_packet;

/* The open packet's handshake data. */
typedef struct eio_handshake {
    char sid[EIO_MAX_SID + 1];
    long ping_interval_ms;
    long ping_timeout_ms;
    size_t max_payload;       /* 1000000 when the server does not say */
} eio_handshake;

/* Walks a polling body packet by packet. */
typedef struct eio_reader {
    const char *p, *end;
    bool done;
} eio_reader;

void eio_reader_init(eio_reader *r, const char *body, size_t len);
/* 1: *out is the next packet; 0: no more packets; -1: malformed (err says why; stop). An
 * empty body has no packets. */
int eio_reader_next(eio_reader *r, eio_packet *out, char *err, size_t cap);

/* Decodes one packet (no separators inside). 0 or -1 with err. */
int eio_decode_packet(const char *s, size_t len, eio_packet *out, char *err, size_t cap);

/* Parses an open packet's data. 0 or -1 with err. */
int eio_parse_handshake(const char *data, size_t len, eio_handshake *out, char *err,
                        size_t cap);

/* ============================ growable text ============================ */

typedef struct eio_buf {
    char *data;   /* NUL-terminated when not NULL */
    size_t len, cap;
    bool failed;  /* an allocation failed: the content is incomplete */
} eio_buf;

void eio_buf_append(eio_buf *b, const char *s, size_t len);
void eio_buf_free(eio_buf *b);

/* Appends "<type><data>" to a polling body, preceded by 0x1e when the body is not empty.
 * -1 (nothing appended) when data contains 0x1e, which would split the packet. */
int eio_append_packet(eio_buf *b, eio_type type, const char *data, size_t len);

/* ============================== Socket.IO ============================== */

typedef enum sio_type {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
} sio_type;

typedef struct sio_packet {
    sio_type type;
    char nsp[SIO_MAX_NSP + 1]; /* "/" when the packet names none */
    long long id;              /* ack id; -1 when none */
    cJSON *data;               /* payload, NULL when none; owned: sio_packet_clear() */
} sio_packet;

/* Decodes the data of an Engine.IO message packet. Checks the payload's shape per type
 * (CONNECT: object or none; DISCONNECT: none; EVENT: non-empty array; ACK: array and an
 * id; CONNECT_ERROR: object or string). 0 or -1 with err (then *out holds nothing). */
int sio_decode(const char *s, size_t len, sio_packet *out, char *err, size_t cap);
void sio_packet_clear(sio_packet *p);

/* Appends "<type>[<nsp>,][<id>][<json>]" (the "/nsp," part only when nsp is not "/"; id
 * < 0 = none; json NULL = no payload, copied verbatim otherwise). -1 (nothing appended)
 * for a namespace that is not "/..." or contains a comma. */
int sio_append(eio_buf *b, sio_type type, const char *nsp, long long id, const char *json,
               size_t json_len);

/* The CONNECT_ERROR message: data.message (or the data itself when a string), or NULL. */
const char *sio_connect_error_message(const sio_packet *p);

#endif
