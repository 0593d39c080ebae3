/* Fuzz target: the Engine.IO v4 / Socket.IO v5 packet decoders (engine/notify/engineio.c) on
 * a hostile polling body, as the Socket.IO sink (socketio.c) reads one. Input: the body, any
 * bytes (packets separated by 0x1e).
 *
 * Every packet goes through eio_decode_packet's walk (eio_reader_next); an open packet's data
 * through eio_parse_handshake, a message's through sio_decode. Checks, besides no crash and
 * no read past the input (the decoders take no terminating NUL; libFuzzer's buffer is exactly
 * the input's size, so ASan sees any overread): a packet lies inside the body, a refusal says
 * why, and a handshake's sid is a terminated string within its bound. */
#include <stdlib.h>
#include <string.h>

#include "engineio.h"
#include "fuzz.h"

static void check_handshake(const eio_packet *p)
{
    eio_handshake h;
    char err[256] = "";
    if (eio_parse_handshake(p->data, p->len, &h, err, sizeof err) != 0) {
        if (!err[0])
            abort();
        return;
    }
    if (strnlen(h.sid, sizeof h.sid) > EIO_MAX_SID)
        abort();
}

static void check_message(const eio_packet *p)
{
    sio_packet s;
    char err[256] = "";
    if (sio_decode(p->data, p->len, &s, err, sizeof err) != 0) {
        if (!err[0])
            abort();
        return;
    }
    (void)sio_connect_error_message(&s);
    sio_packet_clear(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    eio_reader r;
    eio_reader_init(&r, body, size);
    eio_packet p;
    char err[256] = "";
    int rc;
    while ((rc = eio_reader_next(&r, &p, err, sizeof err)) == 1) {
        if (p.len > size || (p.len && (p.data < body || p.data + p.len > body + size)))
            abort(); /* a packet points into the body it came from */
        if (p.type == EIO_OPEN)
            check_handshake(&p);
        else if (p.type == EIO_MESSAGE)
            check_message(&p);
    }
    if (rc < 0 && !err[0])
        abort(); /* a malformed body is refused with a reason */
    return 0;
}
