/* Unit tests for engine/notify/engineio.c: every Engine.IO v4 and Socket.IO v5 packet type,
 * taken from the examples of the protocol documents (socket.io's
 * docs/engine.io-protocol/v4-current.md and docs/socket.io-protocol/v5-current.md), then
 * malformed input of every kind the decoders refuse. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "notify/engineio.h"

#define LIT(s) s, sizeof(s) - 1

static char err[200];

/* ============================== Engine.IO ============================== */

static void test_eio_packet_types(void)
{
    static const struct { const char *text; eio_type type; const char *data; } cases[] = {
        {"1", EIO_CLOSE, ""},  {"2", EIO_PING, ""},        {"3", EIO_PONG, ""},
        {"2probe", EIO_PING, "probe"}, {"3probe", EIO_PONG, "probe"},
        {"4hello", EIO_MESSAGE, "hello"}, {"5", EIO_UPGRADE, ""}, {"6", EIO_NOOP, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eio_packet p;
        int rc = eio_decode_packet(cases[i].text, strlen(cases[i].text), &p, err, sizeof err);
        CHECK(rc == 0, "%s: %s", cases[i].text, err);
        CHECK(p.type == cases[i].type, "%s: type %d", cases[i].text, (int)p.type);
        CHECK(p.len == strlen(cases[i].data) && memcmp(p.data, cases[i].data, p.len) == 0,
              "%s: data", cases[i].text);
    }
}

static void test_eio_open(void)
{
    static const char open[] = "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],"
                               "\"pingInterval\":25000,\"pingTimeout\":5000,"
                               "\"maxPayload\":1000000}";
    eio_packet p;
    eio_handshake hs;
    CHECK(eio_decode_packet(LIT(open), &p, err, sizeof err) == 0, "%s", err);
    CHECK(p.type == EIO_OPEN, "type %d", (int)p.type);
    CHECK(eio_parse_handshake(p.data, p.len, &hs, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(hs.sid, "lv_VI97HAXpY6yYWAAAC") == 0, "sid %s", hs.sid);
    CHECK(hs.ping_interval_ms == 25000 && hs.ping_timeout_ms == 5000, "timings");
    CHECK(hs.max_payload == 1000000, "maxPayload %zu", hs.max_payload);

    /* maxPayload is optional (older servers): the protocol's default. */
    static const char old[] = "{\"sid\":\"abc\",\"pingInterval\":1,\"pingTimeout\":2}";
    CHECK(eio_parse_handshake(LIT(old), &hs, err, sizeof err) == 0, "%s", err);
    CHECK(hs.max_payload == 1000000, "default maxPayload %zu", hs.max_payload);
}

static void test_eio_payload(void)
{
    /* "4hello\x1e2\x1e4world" from the document. */
    static const char body[] = "4hello\x1e" "2\x1e" "4world";
    eio_reader r;
    eio_packet p;
    eio_reader_init(&r, LIT(body));
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 1 && p.type == EIO_MESSAGE &&
              p.len == 5 && memcmp(p.data, "hello", 5) == 0, "first");
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 1 && p.type == EIO_PING && p.len == 0,
          "second");
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 1 && p.type == EIO_MESSAGE &&
              p.len == 5 && memcmp(p.data, "world", 5) == 0, "third");
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 0, "end");
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 0, "end stays end");

    eio_reader_init(&r, "", 0);
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 0, "empty body: no packets");

    /* The binary example "4hello\x1ebAQIDBA==": the first packet, then a clean refusal. */
    static const char bin[] = "4hello\x1e" "bAQIDBA==";
    eio_reader_init(&r, LIT(bin));
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 1, "text before binary");
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == -1, "binary refused");
    CHECK_CONTAINS(err, "binary");
    CHECK(eio_reader_next(&r, &p, err, sizeof err) == 0, "stops after an error");
}

static void test_eio_encode(void)
{
    eio_buf b = {0};
    CHECK(eio_append_packet(&b, EIO_MESSAGE, LIT("hello")) == 0, "message");
    CHECK(eio_append_packet(&b, EIO_PING, NULL, 0) == 0, "ping");
    CHECK(eio_append_packet(&b, EIO_MESSAGE, LIT("world")) == 0, "message 2");
    CHECK(b.len == 15 && memcmp(b.data, "4hello\x1e" "2\x1e" "4world", 15) == 0, "%s", b.data);
    CHECK(eio_append_packet(&b, EIO_MESSAGE, LIT("a\x1e" "b")) == -1, "separator refused");
    CHECK(b.len == 15, "nothing appended on refusal");
    eio_buf_free(&b);
}

static void test_eio_malformed(void)
{
    static const struct { const char *body; size_t len; const char *error; } cases[] = {
        {"", 0, NULL},  /* not an error: no packets */
        {"\x1e", 1, "empty Engine.IO packet"},
        {"4a\x1e", 3, "empty Engine.IO packet"},
        {"7", 1, "unknown Engine.IO packet type '7'"},
        {"x4", 2, "unknown Engine.IO packet type 'x'"},
        {"\x01", 1, "unknown Engine.IO packet type \\x01"},
        {"\0", 1, "unknown Engine.IO packet type \\x00"},
        {"b4AQID", 6, "binary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eio_reader r;
        eio_packet p;
        int rc = 1;
        err[0] = '\0';
        eio_reader_init(&r, cases[i].body, cases[i].len);
        while (rc == 1)
            rc = eio_reader_next(&r, &p, err, sizeof err);
        CHECK(rc == (cases[i].error ? -1 : 0), "case %zu: rc %d", i, rc);
        if (cases[i].error)
            CHECK_CONTAINS(err, cases[i].error);
    }
    /* Bounded: a packet is what `len` says, whatever follows it in memory. */
    eio_packet p;
    CHECK(eio_decode_packet("4abcdef", 2, &p, err, sizeof err) == 0 && p.len == 1 &&
              p.data[0] == 'a', "bounded");
}

static void test_eio_handshake_malformed(void)
{
    static const struct { const char *json; const char *error; } cases[] = {
        {"", "not valid JSON"},
        {"{\"sid\":", "not valid JSON"},
        {"[1]", "not a JSON object"},
        {"{\"pingInterval\":1,\"pingTimeout\":1}", "sid is missing"},
        {"{\"sid\":\"\",\"pingInterval\":1,\"pingTimeout\":1}", "sid is missing"},
        {"{\"sid\":\"a&b=c\",\"pingInterval\":1,\"pingTimeout\":1}", "not URL-safe"},
        {"{\"sid\":\"abc\",\"pingTimeout\":1}", "pingInterval is missing"},
        {"{\"sid\":\"abc\",\"pingInterval\":\"25000\",\"pingTimeout\":1}", "pingInterval is"},
        {"{\"sid\":\"abc\",\"pingInterval\":-5,\"pingTimeout\":1}", "whole number"},
        {"{\"sid\":\"abc\",\"pingInterval\":2.5,\"pingTimeout\":1}", "whole number"},
        {"{\"sid\":\"abc\",\"pingInterval\":1e300,\"pingTimeout\":1}", "whole number"},
        {"{\"sid\":\"abc\",\"pingInterval\":1,\"pingTimeout\":0}", "pingTimeout must"},
        {"{\"sid\":\"abc\",\"pingInterval\":1,\"pingTimeout\":1,\"maxPayload\":0}",
         "maxPayload must"},
        {"{\"sid\":\"abc\",\"pingInterval\":1,\"pingTimeout\":1}x", "bytes after"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eio_handshake hs;
        err[0] = '\0';
        CHECK(eio_parse_handshake(cases[i].json, strlen(cases[i].json), &hs, err,
                                  sizeof err) == -1, "case %zu accepted", i);
        CHECK_CONTAINS(err, cases[i].error);
    }
    char sid[300] = "{\"sid\":\"";
    memset(sid + 8, 'a', 200);
    strcpy(sid + 208, "\",\"pingInterval\":1,\"pingTimeout\":1}");
    eio_handshake hs;
    CHECK(eio_parse_handshake(sid, strlen(sid), &hs, err, sizeof err) == -1, "long sid");
    CHECK_CONTAINS(err, "longer than");
}

/* ============================== Socket.IO ============================== */

typedef struct sio_case {
    const char *text;       /* the document's "Encoded" form */
    sio_type type;
    const char *nsp;
    long long id;
    const char *json;       /* payload as cJSON prints it, NULL = none */
} sio_case;

static const sio_case SIO_EXAMPLES[] = {
    {"0", SIO_CONNECT, "/", -1, NULL},
    {"0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", SIO_CONNECT, "/admin", -1,
     "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}"},
    {"4{\"message\":\"Not authorized\"}", SIO_CONNECT_ERROR, "/", -1,
     "{\"message\":\"Not authorized\"}"},
    {"2[\"foo\"]", SIO_EVENT, "/", -1, "[\"foo\"]"},
    {"2/admin,[\"bar\"]", SIO_EVENT, "/admin", -1, "[\"bar\"]"},
    {"212[\"foo\"]", SIO_EVENT, "/", 12, "[\"foo\"]"},
    {"3/admin,13[\"bar\"]", SIO_ACK, "/admin", 13, "[\"bar\"]"},
    {"1", SIO_DISCONNECT, "/", -1, NULL},
    {"1/admin,", SIO_DISCONNECT, "/admin", -1, NULL},
};

static void test_sio_decode_examples(void)
{
    for (size_t i = 0; i < sizeof SIO_EXAMPLES / sizeof SIO_EXAMPLES[0]; i++) {
        const sio_case *c = &SIO_EXAMPLES[i];
        sio_packet p;
        CHECK(sio_decode(c->text, strlen(c->text), &p, err, sizeof err) == 0, "%s: %s",
              c->text, err);
        CHECK(p.type == c->type, "%s: type %d", c->text, (int)p.type);
        CHECK(strcmp(p.nsp, c->nsp) == 0, "%s: nsp %s", c->text, p.nsp);
        CHECK(p.id == c->id, "%s: id %lld", c->text, p.id);
        char *printed = p.data ? cJSON_PrintUnformatted(p.data) : NULL;
        CHECK(c->json ? printed && strcmp(printed, c->json) == 0 : printed == NULL,
              "%s: payload %s", c->text, printed ? printed : "(none)");
        free(printed);
        sio_packet_clear(&p);
    }
    sio_packet p;
    CHECK(sio_decode(LIT("4{\"message\":\"Not authorized\"}"), &p, err, sizeof err) == 0, "x");
    CHECK(strcmp(sio_connect_error_message(&p), "Not authorized") == 0, "message");
    sio_packet_clear(&p);
    /* Socket.IO v2 servers sent the message as a plain string. */
    CHECK(sio_decode(LIT("4\"Not authorized\""), &p, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(sio_connect_error_message(&p), "Not authorized") == 0, "string message");
    sio_packet_clear(&p);
}

static void test_sio_encode_examples(void)
{
    for (size_t i = 0; i < sizeof SIO_EXAMPLES / sizeof SIO_EXAMPLES[0]; i++) {
        const sio_case *c = &SIO_EXAMPLES[i];
        eio_buf b = {0};
        /* "1/admin," is the document's DISCONNECT of a namespace: the comma is kept. */
        CHECK(sio_append(&b, c->type, c->nsp, c->id, c->json, c->json ? strlen(c->json) : 0)
                  == 0, "%s", c->text);
        CHECK(b.data && strcmp(b.data, c->text) == 0, "encoded %s, expected %s",
              b.data ? b.data : "(null)", c->text);
        eio_buf_free(&b);
    }
    /* As sent over the wire: an EVENT inside an Engine.IO message is 42["foo"]. */
    eio_buf b = {0};
    eio_buf_append(&b, "4", 1);
    sio_append(&b, SIO_EVENT, "/", -1, LIT("[\"foo\"]"));
    CHECK(strcmp(b.data, "42[\"foo\"]") == 0, "%s", b.data);
    CHECK(sio_append(&b, SIO_EVENT, "admin", -1, NULL, 0) == -1, "namespace without /");
    CHECK(sio_append(&b, SIO_EVENT, "/a,b", -1, NULL, 0) == -1, "namespace with a comma");
    CHECK(strcmp(b.data, "42[\"foo\"]") == 0, "nothing appended on refusal");
    eio_buf_free(&b);
}

static void test_sio_binary_refused(void)
{
    sio_packet p;
    CHECK(sio_decode(LIT("51-[\"baz\",{\"_placeholder\":true,\"num\":0}]"), &p, err,
                     sizeof err) == -1, "BINARY_EVENT");
    CHECK_CONTAINS(err, "BINARY_EVENT packets (binary attachments) are not supported");
    CHECK(sio_decode(LIT("61-15[\"bar\",{\"_placeholder\":true,\"num\":0}]"), &p, err,
                     sizeof err) == -1, "BINARY_ACK");
    CHECK_CONTAINS(err, "BINARY_ACK");
}

static void test_sio_malformed(void)
{
    static const struct { const char *text; size_t len; const char *error; } cases[] = {
        {"", 0, "empty Socket.IO packet"},
        {"9", 1, "unknown Socket.IO packet type '9'"},
        {"\xff", 1, "unknown Socket.IO packet type \\xff"},
        {"2", 1, "EVENT payload is not a non-empty array"},
        {"2[]", 3, "EVENT payload is not a non-empty array"},
        {"2{\"a\":1}", 8, "EVENT payload is not a non-empty array"},
        {"2[1]", 4, "EVENT name is not a string"},
        {"2[\"foo\"", 7, "EVENT payload is not valid JSON"},
        {"2[\"a\"]x", 7, "EVENT payload has 1 bytes after its JSON value"},
        {"3[]", 3, "ACK packet has no ack id"},
        {"3/admin,13", 10, "ACK payload is not an array"},
        {"313{}", 5, "ACK payload is not an array"},
        {"1{}", 3, "DISCONNECT packet has a payload"},
        {"0[]", 3, "CONNECT payload is not an object"},
        {"4", 1, "CONNECT_ERROR payload is not an object or a string"},
        {"41", 2, "CONNECT_ERROR payload is not an object or a string"},
        {"21234567890123456[\"a\"]", 23, "ack id longer than 15 digits"},
        {"2/a\x01,[\"a\"]", 10, "namespace contains a control character"},
        {"2/a\0b,[\"a\"]", 10, "namespace contains a control character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sio_packet p;
        err[0] = '\0';
        CHECK(sio_decode(cases[i].text, cases[i].len, &p, err, sizeof err) == -1,
              "case %zu (%s) accepted", i, cases[i].text);
        CHECK(p.data == NULL, "case %zu: no payload left behind", i);
        CHECK_CONTAINS(err, cases[i].error);
    }
    char nsp[400] = "2/";
    memset(nsp + 2, 'n', 250);
    strcpy(nsp + 252, ",[\"a\"]");
    sio_packet p;
    CHECK(sio_decode(nsp, strlen(nsp), &p, err, sizeof err) == -1, "long namespace");
    CHECK_CONTAINS(err, "namespace longer than 200 bytes");
    /* Bounded: the payload ends where `len` says, not at a NUL. */
    CHECK(sio_decode("212[\"foo\"]GARBAGE", 10, &p, err, sizeof err) == 0 && p.id == 12,
          "bounded: %s", err);
    sio_packet_clear(&p);
    /* The largest id that fits in 15 digits. */
    CHECK(sio_decode(LIT("3999999999999999[]"), &p, err, sizeof err) == 0 &&
              p.id == SIO_MAX_ACK_ID, "15-digit id: %s", err);
    sio_packet_clear(&p);
}

int main(void)
{
    test_eio_packet_types();
    test_eio_open();
    test_eio_payload();
    test_eio_encode();
    test_eio_malformed();
    test_eio_handshake_malformed();
    test_sio_decode_examples();
    test_sio_encode_examples();
    test_sio_binary_refused();
    test_sio_malformed();
    return check_summary();
}
