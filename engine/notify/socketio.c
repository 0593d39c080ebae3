/* The Socket.IO sink (see socketio.h): one Engine.IO long-polling session at a time, the
 * namespace CONNECT, one EVENT with an ack id per delivery.
 *
 * How the pieces fit:
 *   - Every session has its own http_client. Ending a session bumps `gen` and frees the
 *     client, which cancels the outstanding GET/POST; their callbacks carry the generation
 *     they were started in and are ignored when it is stale. No request of a dead session
 *     can touch the next one.
 *   - Outgoing Engine.IO packets (CONNECT, pongs, events, acks) wait in a queue; one POST
 *     at a time carries as many as fit in the server's maxPayload.
 *   - A delivery lives in `inflight` from deliver() until its ACK, its ack timeout or the
 *     end of the session; it then moves to `finished`, whose done callbacks run from a
 *     zero-delay timer so that no callback ever runs inside deliver() (sink.h). */
#include "notify/socketio.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "http.h"
#include "log.h"
#include "notify/engineio.h"

#define POLL_MARGIN_MS 5000        /* long-poll GET timeout beyond pingInterval+pingTimeout */
#define REFUSED_RETRY_MIN_S 30.0
#define MAX_SERVER_TEXT 200        /* bytes of a server's message kept for a log line */

typedef enum session_state { ST_IDLE, ST_HANDSHAKE, ST_JOINING, ST_READY } session_state;

typedef struct socketio_sink socketio_sink;

typedef struct delivery {
    socketio_sink *s;
    long long ack_id;
    notify_done_fn done;
    void *user;
    ev_timer timeout_w;
    notify_outcome outcome;
    char error[200];
    struct delivery *prev, *next;
} delivery;

typedef struct outgoing {
    struct outgoing *next;
    size_t len;
    char data[];          /* one encoded Engine.IO packet */
} outgoing;

/* The user pointer of one HTTP request. */
typedef struct request_ctx {
    socketio_sink *s;
    unsigned gen;
} request_ctx;

struct socketio_sink {
    notify_sink base;     /* first member (sink.h) */
    struct ev_loop *loop;
    char *endpoint;       /* scheme://authority/path/ : the Engine.IO URL without query */
    char *display_url;    /* the same without user information, for log lines */
    char *nsp;
    char *auth;           /* JSON object text or NULL; secret */
    cJSON *auth_json;     /* parsed, for redacting server messages */
    double ack_timeout, reconnect_min, reconnect_max, refused_retry;
    http_client *http;
    session_state state;
    unsigned gen;
    eio_handshake hs;
    bool get_active, post_active;
    outgoing *out_head, *out_tail;
    delivery *inflight, *inflight_tail;
    delivery *finished_head, *finished_tail;
    ev_timer reconnect_w, heartbeat_w, finish_w;
    unsigned attempt;
    long long next_id;
    uint64_t rng;
    int dispatching;      /* done callbacks on the stack */
    bool free_requested;
};

static void session_lost(socketio_sink *s, const char *reason, bool refused);
static void flush_post(socketio_sink *s);

/* ============================== log lines ============================== */

static cJSON *log_fields(const socketio_sink *s)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "url", s->display_url);
    cJSON_AddStringToObject(f, "namespace", s->nsp);
    return f;
}

static void redact_value(char *text, const char *secret)
{
    size_t n = strlen(secret);
    static const char mark[] = "[redacted]";
    char *hit;
    if (n == 0)
        return;
    while ((hit = strstr(text, secret)) != NULL) {
        size_t rest = strlen(hit + n);
        size_t m = n < sizeof mark - 1 ? n : sizeof mark - 1;
        memcpy(hit, mark, m);       /* never longer than what it replaces */
        memmove(hit + m, hit + n, rest + 1);
    }
}

static void redact_json(char *text, const cJSON *j)
{
    for (const cJSON *c = j ? j->child : NULL; c; c = c->next) {
        if (cJSON_IsString(c))
            redact_value(text, c->valuestring);
        redact_json(text, c);
    }
}

/* A server's message made fit for a log line: auth values and the auth text replaced,
 * control characters replaced, clipped. Redaction comes first so that clipping cannot
 * leave half of a secret behind. Returns a malloc'd string (NULL on allocation failure). */
static char *server_text(const socketio_sink *s, const char *msg)
{
    char *t = strdup(msg ? msg : "");
    if (!t)
        return NULL;
    if (s->auth)
        redact_value(t, s->auth);
    redact_json(t, s->auth_json);
    if (strlen(t) > MAX_SERVER_TEXT)
        strcpy(t + MAX_SERVER_TEXT - 3, "...");
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return t;
}

/* Ends the session unless `r` is an HTTP 200. The reason names the request (`what`) and
 * either libcurl's error or the status plus the message of an Engine.IO error body
 * {"code":1,"message":"Session ID unknown"}; any other body is not quoted. */
static bool response_failed(socketio_sink *s, const char *what, const http_response *r)
{
    char why[300];
    if (r->ok && r->status == 200)
        return false;
    cJSON *j = r->ok ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    char *msg = cJSON_IsString(m) ? server_text(s, m->valuestring) : NULL;
    if (!r->ok)
        snprintf(why, sizeof why, "%s: %s", what, r->error);
    else if (msg)
        snprintf(why, sizeof why, "%s: HTTP %ld (%s)", what, r->status, msg);
    else
        snprintf(why, sizeof why, "%s: HTTP %ld", what, r->status);
    free(msg);
    cJSON_Delete(j);
    session_lost(s, why, false);
    return true;
}

/* ============================== deliveries ============================== */

static void sink_destroy(socketio_sink *s);

/* Runs the done callbacks. A callback may free the sink: sink_free() then runs the rest
 * itself and the outermost level destroys the sink once no callback is on the stack. */
static void on_finish_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    socketio_sink *s = w->data;
    delivery *d;
    s->dispatching++;
    while ((d = s->finished_head) != NULL) {
        s->finished_head = d->next;
        if (!s->finished_head)
            s->finished_tail = NULL;
        d->done(d->user, d->outcome, d->outcome == NOTIFY_DELIVERED ? NULL : d->error);
        free(d);
    }
    if (--s->dispatching == 0 && s->free_requested)
        sink_destroy(s);
}

/* Moves a delivery (in flight or new) to the finished list; its callback runs soon. */
static void delivery_finish(socketio_sink *s, delivery *d, notify_outcome outcome,
                            const char *error)
{
    ev_timer_stop(s->loop, &d->timeout_w);
    if (d->prev)
        d->prev->next = d->next;
    else if (s->inflight == d)
        s->inflight = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else if (s->inflight_tail == d)
        s->inflight_tail = d->prev;
    d->prev = d->next = NULL;
    d->outcome = outcome;
    snprintf(d->error, sizeof d->error, "%s", error ? error : "");
    if (s->finished_tail)
        s->finished_tail->next = d;
    else
        s->finished_head = d;
    s->finished_tail = d;
    if (!ev_is_active(&s->finish_w)) {
        ev_timer_set(&s->finish_w, 0.0, 0.0);
        ev_timer_start(s->loop, &s->finish_w);
    }
}

static void on_ack_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    delivery *d = w->data;
    char why[64];
    snprintf(why, sizeof why, "ack timeout after %.0f ms", d->s->ack_timeout * 1000.0);
    delivery_finish(d->s, d, NOTIFY_RETRY, why);
}

static void fail_inflight(socketio_sink *s, const char *error)
{
    while (s->inflight)
        delivery_finish(s, s->inflight, NOTIFY_RETRY, error);
}

static void on_ack(socketio_sink *s, long long id)
{
    for (delivery *d = s->inflight; d; d = d->next) {
        if (d->ack_id == id) {
            delivery_finish(s, d, NOTIFY_DELIVERED, NULL);
            return;
        }
    }
    /* An ack that arrives after its timeout: the outbox already retries that event. */
    log_message(LOG_DEBUG, "socketio_late_ack", "ack id %lld matches no delivery", id);
}

/* ============================== outgoing packets ============================== */

static int queue_packet(socketio_sink *s, const char *data, size_t len)
{
    outgoing *o = malloc(sizeof *o + len + 1);
    if (!o)
        return -1;
    o->next = NULL;
    o->len = len;
    memcpy(o->data, data, len);
    o->data[len] = '\0';
    if (s->out_tail)
        s->out_tail->next = o;
    else
        s->out_head = o;
    s->out_tail = o;
    return 0;
}

/* Queues one Socket.IO packet as an Engine.IO message. */
static int queue_sio(socketio_sink *s, sio_type type, long long id, const char *json,
                     size_t json_len)
{
    eio_buf b = {0};
    eio_buf_append(&b, "4", 1);
    int rc = sio_append(&b, type, s->nsp, id, json, json_len);
    if (rc == 0)
        rc = b.failed ? -1 : queue_packet(s, b.data, b.len);
    eio_buf_free(&b);
    return rc;
}

static void drop_queue(socketio_sink *s)
{
    while (s->out_head) {
        outgoing *o = s->out_head;
        s->out_head = o->next;
        free(o);
    }
    s->out_tail = NULL;
}

/* ============================== requests ============================== */

static int start_request(socketio_sink *s, const char *body, size_t body_len, long timeout_ms,
                         http_done_fn done)
{
    char url[1024];
    bool with_sid = s->state != ST_HANDSHAKE;
    int n = snprintf(url, sizeof url, "%s?EIO=4&transport=polling%s%s", s->endpoint,
                     with_sid ? "&sid=" : "", with_sid ? s->hs.sid : "");
    if (n < 0 || (size_t)n >= sizeof url)
        return -1;
    request_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx)
        return -1;
    ctx->s = s;
    ctx->gen = s->gen;
    static const char *const text_headers[] = {"Content-Type: text/plain;charset=UTF-8"};
    http_request req = {.url = url, .body = body, .body_len = body_len,
                        .timeout_ms = timeout_ms};
    if (body) {
        req.headers = text_headers;
        req.n_headers = 1;
    }
    if (http_get(s->http, &req, done, ctx) != 0) {
        free(ctx);
        return -1;
    }
    return 0;
}

/* The sink behind a finished request, or NULL when the request belongs to a session that
 * has ended since (or to a sink being freed). */
static socketio_sink *request_owner(void *user)
{
    request_ctx *ctx = user;
    socketio_sink *s = ctx->s;
    unsigned gen = ctx->gen;
    free(ctx);
    return gen == s->gen ? s : NULL;
}

/* Handles one Socket.IO packet. */
static void on_sio(socketio_sink *s, const char *data, size_t len)
{
    sio_packet p;
    char err[160], why[300];
    if (sio_decode(data, len, &p, err, sizeof err) < 0) {
        snprintf(why, sizeof why, "malformed Socket.IO packet: %s", err);
        session_lost(s, why, false);
        return;
    }
    if (strcmp(p.nsp, s->nsp) != 0) {
        sio_packet_clear(&p);  /* another namespace of a shared connection: not ours */
        return;
    }
    switch (p.type) {
    case SIO_CONNECT:
        if (s->state == ST_JOINING) {
            s->state = ST_READY;
            s->attempt = 0;
            cJSON *f = log_fields(s);
            cJSON_AddNumberToObject(f, "ping_interval_ms", (double)s->hs.ping_interval_ms);
            cJSON_AddNumberToObject(f, "ping_timeout_ms", (double)s->hs.ping_timeout_ms);
            log_emit(LOG_INFO, "socketio_connected", f);
            notify_sink_ready_changed(&s->base);
        }
        break;
    case SIO_DISCONNECT:
        session_lost(s, "the server disconnected the namespace", false);
        break;
    case SIO_CONNECT_ERROR: {
        char *msg = server_text(s, sio_connect_error_message(&p));
        snprintf(why, sizeof why, "connect refused: %s", msg ? msg : "");
        cJSON *f = log_fields(s);
        cJSON_AddStringToObject(f, "message", msg ? msg : "");
        cJSON_AddNumberToObject(f, "retry_in_s", s->refused_retry);
        log_emit(LOG_ERROR, "socketio_connect_refused", f);
        free(msg);
        session_lost(s, why, true);
        break;
    }
    case SIO_EVENT:
        /* The engine listens to nothing, but a server waiting for an ack gets one. */
        if (p.id >= 0 && queue_sio(s, SIO_ACK, p.id, "[]", 2) == 0)
            flush_post(s);
        break;
    case SIO_ACK:
        on_ack(s, p.id);
        break;
    default:
        break;
    }
    sio_packet_clear(&p);
}

static void arm_heartbeat(socketio_sink *s)
{
    s->heartbeat_w.repeat = (double)(s->hs.ping_interval_ms + s->hs.ping_timeout_ms) / 1000.0;
    ev_timer_again(s->loop, &s->heartbeat_w);
}

static void on_heartbeat_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    socketio_sink *s = w->data;
    char why[80];
    snprintf(why, sizeof why, "no ping from the server within %ld ms",
             s->hs.ping_interval_ms + s->hs.ping_timeout_ms);
    session_lost(s, why, false);
}

/* Handles one Engine.IO packet of an established session. */
static void on_eio(socketio_sink *s, const eio_packet *p)
{
    switch (p->type) {
    case EIO_OPEN:
        session_lost(s, "unexpected open packet in an established session", false);
        break;
    case EIO_CLOSE:
        session_lost(s, "the server closed the session", false);
        break;
    case EIO_PING: {
        /* The pong echoes the ping's data (empty in a polling session). */
        eio_buf pong = {0};
        arm_heartbeat(s);
        eio_append_packet(&pong, EIO_PONG, p->data, p->len);
        if (!pong.failed && queue_packet(s, pong.data, pong.len) == 0)
            flush_post(s);
        eio_buf_free(&pong);
        break;
    }
    case EIO_MESSAGE:
        on_sio(s, p->data, p->len);
        break;
    default:
        break;  /* pong, upgrade, noop: nothing to do for a polling client */
    }
}

/* Handles every packet of a polling body; stops when one of them ends the session. */
static void on_payload(socketio_sink *s, eio_reader *r)
{
    unsigned gen = s->gen;
    eio_packet p;
    char err[160], why[200];
    int rc;
    while (gen == s->gen && (rc = eio_reader_next(r, &p, err, sizeof err)) != 0) {
        if (rc < 0) {
            snprintf(why, sizeof why, "malformed Engine.IO payload: %s", err);
            session_lost(s, why, false);
            return;
        }
        on_eio(s, &p);
    }
}

static void on_poll_done(void *user, const http_response *r);

static void start_poll(socketio_sink *s)
{
    if (s->get_active || s->state < ST_JOINING)
        return;
    long timeout = s->hs.ping_interval_ms + s->hs.ping_timeout_ms + POLL_MARGIN_MS;
    if (start_request(s, NULL, 0, timeout, on_poll_done) != 0) {
        session_lost(s, "could not start the polling request", false);
        return;
    }
    s->get_active = true;
}

static void on_poll_done(void *user, const http_response *r)
{
    socketio_sink *s = request_owner(user);
    if (!s)
        return;
    s->get_active = false;
    if (response_failed(s, "poll", r))
        return;
    unsigned gen = s->gen;
    eio_reader rd;
    eio_reader_init(&rd, r->body, r->body_len);
    on_payload(s, &rd);
    if (gen == s->gen)
        start_poll(s);
}

static void on_post_done(void *user, const http_response *r)
{
    socketio_sink *s = request_owner(user);
    if (!s)
        return;
    s->post_active = false;
    if (response_failed(s, "post", r))
        return;
    if (r->body_len != 2 || memcmp(r->body, "ok", 2) != 0) {
        session_lost(s, "post: the server did not answer \"ok\"", false);
    } else {
        flush_post(s);
    }
}

/* Sends as many queued packets as fit in maxPayload, unless a POST is in flight. */
static void flush_post(socketio_sink *s)
{
    if (s->post_active || !s->out_head || s->state < ST_JOINING)
        return;
    eio_buf body = {0};
    while (s->out_head) {
        outgoing *o = s->out_head;
        if (body.len && body.len + 1 + o->len > s->hs.max_payload)
            break;
        if (body.len)
            eio_buf_append(&body, "\x1e", 1);
        eio_buf_append(&body, o->data, o->len);
        s->out_head = o->next;
        free(o);
    }
    if (!s->out_head)
        s->out_tail = NULL;
    int rc = body.failed ? -1 : start_request(s, body.data, body.len, 0, on_post_done);
    eio_buf_free(&body);
    if (rc != 0) {
        session_lost(s, "could not start the POST request", false);
        return;
    }
    s->post_active = true;
}

/* ============================== session ============================== */

static void on_handshake_done(void *user, const http_response *r)
{
    socketio_sink *s = request_owner(user);
    char err[160], why[300];
    if (!s || response_failed(s, "handshake", r))
        return;
    eio_reader rd;
    eio_packet p;
    eio_reader_init(&rd, r->body, r->body_len);
    int rc = eio_reader_next(&rd, &p, err, sizeof err);
    if (rc == 1 && p.type != EIO_OPEN)
        snprintf(err, sizeof err, "expected an open packet, got type %d", (int)p.type);
    else if (rc == 0)
        snprintf(err, sizeof err, "empty body");
    if (rc != 1 || p.type != EIO_OPEN ||
        eio_parse_handshake(p.data, p.len, &s->hs, err, sizeof err) != 0) {
        snprintf(why, sizeof why, "handshake: %s", err);
        session_lost(s, why, false);
        return;
    }
    s->state = ST_JOINING;
    size_t auth_len = s->auth ? strlen(s->auth) : 0;
    if (queue_sio(s, SIO_CONNECT, -1, s->auth, auth_len) != 0) {
        session_lost(s, "could not queue the CONNECT packet", false);
        return;
    }
    arm_heartbeat(s);
    unsigned gen = s->gen;
    on_payload(s, &rd);  /* whatever else the server put after the open packet */
    if (gen == s->gen)
        flush_post(s);
    if (gen == s->gen)
        start_poll(s);
}

static void session_start(socketio_sink *s)
{
    s->gen++;
    s->state = ST_HANDSHAKE;
    http_options o;
    http_options_defaults(&o);
    s->http = http_client_new(s->loop, &o);
    if (!s->http || start_request(s, NULL, 0, 0, on_handshake_done) != 0)
        session_lost(s, "could not start the handshake request", false);
}

static void on_reconnect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    session_start(w->data);
}

static double random_unit(socketio_sink *s)
{
    s->rng ^= s->rng << 13;  /* xorshift64: jitter needs no cryptographic strength */
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (double)(s->rng >> 11) / 9007199254740992.0;
}

/* Equal jitter: half of the exponential step is fixed, half random, so that engines that
 * lost the same server do not come back in lockstep, and never sooner than the minimum. */
static double backoff(socketio_sink *s)
{
    unsigned e = s->attempt < 30 ? s->attempt : 30;
    double cap = fmin(s->reconnect_max, s->reconnect_min * ldexp(1.0, (int)e));
    double d = fmax(s->reconnect_min, cap / 2.0 + random_unit(s) * cap / 2.0);
    s->attempt++;
    return d;
}

/* Ends the current session for `reason` and schedules the next one. */
static void session_lost(socketio_sink *s, const char *reason, bool refused)
{
    session_state was = s->state;
    s->gen++;
    s->state = ST_IDLE;
    s->get_active = s->post_active = false;
    ev_timer_stop(s->loop, &s->heartbeat_w);
    drop_queue(s);
    http_client_free(s->http);  /* cancels the GET/POST; their callbacks see a stale gen */
    s->http = NULL;
    char error[300];
    snprintf(error, sizeof error, "disconnected: %s", reason);
    fail_inflight(s, error);
    double delay = refused ? s->refused_retry : backoff(s);
    if (!refused) {
        cJSON *f = log_fields(s);
        cJSON_AddStringToObject(f, "reason", reason);
        cJSON_AddNumberToObject(f, "retry_in_s", round(delay * 1000.0) / 1000.0);
        log_emit(LOG_WARNING, was == ST_READY ? "socketio_disconnected" :
                 "socketio_connect_failed", f);
    }
    ev_timer_set(&s->reconnect_w, delay, 0.0);
    ev_timer_start(s->loop, &s->reconnect_w);
    if (was == ST_READY)
        notify_sink_ready_changed(&s->base);
}

/* ============================== the sink ============================== */

static bool sink_ready(notify_sink *base)
{
    return ((socketio_sink *)base)->state == ST_READY;
}

/* Checks what the outbox hands over: the payload is embedded verbatim as the event's
 * argument, so it must be one JSON object and must not contain the record separator. */
static const char *payload_problem(const notify_event *ev)
{
    if (!ev->payload || memchr(ev->payload, EIO_RECORD_SEPARATOR, ev->payload_len))
        return "payload is missing or contains a 0x1e byte";
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(ev->payload, ev->payload_len, &end, 0);
    bool ok = cJSON_IsObject(j) && end == ev->payload + ev->payload_len;
    cJSON_Delete(j);
    return ok ? NULL : "payload is not exactly one JSON object";
}

static int sink_deliver(notify_sink *base, const notify_event *ev, notify_done_fn done,
                        void *user)
{
    socketio_sink *s = (socketio_sink *)base;
    delivery *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    d->s = s;
    d->done = done;
    d->user = user;
    ev_timer_init(&d->timeout_w, on_ack_timeout, s->ack_timeout, 0.0);
    d->timeout_w.data = d;
    const char *problem = s->state == ST_READY ? payload_problem(ev) : "not connected";
    if (problem) {
        delivery_finish(s, d, NOTIFY_RETRY, problem);
        return 0;
    }
    d->ack_id = s->next_id;
    s->next_id = s->next_id >= 2147483647LL ? 1 : s->next_id + 1;
    eio_buf b = {0};
    eio_buf_append(&b, "4", 1);
    sio_append(&b, SIO_EVENT, s->nsp, d->ack_id, "[\"mining_reward\",", 17);
    eio_buf_append(&b, ev->payload, ev->payload_len);
    eio_buf_append(&b, "]", 1);
    if (b.failed || b.len > s->hs.max_payload || queue_packet(s, b.data, b.len) != 0) {
        delivery_finish(s, d, NOTIFY_RETRY, b.failed || b.len <= s->hs.max_payload
                        ? "out of memory" : "event larger than the server's maxPayload");
        eio_buf_free(&b);
        return 0;
    }
    eio_buf_free(&b);
    d->prev = s->inflight_tail;  /* oldest first: a lost session fails them in order */
    if (s->inflight_tail)
        s->inflight_tail->next = d;
    else
        s->inflight = d;
    s->inflight_tail = d;
    ev_timer_start(s->loop, &d->timeout_w);
    flush_post(s);
    return 0;
}

static void sink_free(notify_sink *base)
{
    socketio_sink *s = (socketio_sink *)base;
    if (s->free_requested)
        return;
    s->free_requested = true;
    s->gen++;
    s->state = ST_IDLE;
    http_client_free(s->http);  /* nothing more is sent; late callbacks are ignored */
    s->http = NULL;
    ev_timer_stop(s->loop, &s->reconnect_w);
    ev_timer_stop(s->loop, &s->heartbeat_w);
    fail_inflight(s, "shutting down");
    ev_timer_stop(s->loop, &s->finish_w);
    drop_queue(s);
    on_finish_timer(s->loop, &s->finish_w, 0);  /* the callbacks run inside free (sink.h) */
}

static void sink_destroy(socketio_sink *s)
{
    ev_timer_stop(s->loop, &s->finish_w);
    cJSON_Delete(s->auth_json);
    free(s->endpoint);
    free(s->display_url);
    free(s->nsp);
    free(s->auth);
    free(s);
}

static const notify_sink_ops SOCKETIO_OPS = {sink_ready, sink_deliver, sink_free};

/* ============================== construction ============================== */

static int invalid(const char *what)
{
    log_message(LOG_ERROR, "socketio_config_invalid", "%s", what);
    return -1;
}

static bool url_safe(const char *p, const char *extra)
{
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || strchr("?#\"<>\\^`{|}", *p) ||
            (extra && strchr(extra, *p)))
            return false;
    return true;
}

/* endpoint = http(s)://authority + path; display_url without "user:password@". */
static int build_urls(socketio_sink *s, const char *url, const char *path)
{
    static const struct { const char *in, *out; } schemes[] = {
        {"http://", "http://"}, {"https://", "https://"},
        {"ws://", "http://"}, {"wss://", "https://"}};
    const char *scheme = NULL, *rest = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && url; i++) {
        if (strncasecmp(url, schemes[i].in, strlen(schemes[i].in)) == 0) {
            scheme = schemes[i].out;
            rest = url + strlen(schemes[i].in);
            break;
        }
    }
    if (!scheme)
        return invalid("SOCKETIO_URL must start with http://, https://, ws:// or wss://");
    size_t auth_len = strcspn(rest, "/?#");
    if (auth_len == 0 || auth_len > 400)
        return invalid("SOCKETIO_URL has no host");
    if (path[0] != '/' || strlen(path) > 400 || !url_safe(path, NULL))
        return invalid("SOCKETIO_PATH must be an absolute URL path");
    const char *at = memrchr(rest, '@', auth_len);
    const char *host = at ? at + 1 : rest;
    size_t host_len = auth_len - (size_t)(host - rest);
    if (asprintf(&s->endpoint, "%s%.*s%s", scheme, (int)auth_len, rest, path) < 0) {
        s->endpoint = NULL;
        return -1;
    }
    if (asprintf(&s->display_url, "%s%.*s%s", scheme, (int)host_len, host, path) < 0) {
        s->display_url = NULL;
        return -1;
    }
    return url_safe(s->endpoint, NULL) ? 0 : invalid("SOCKETIO_URL contains unsafe characters");
}

static int copy_options(socketio_sink *s, const socketio_options *o)
{
    const char *nsp = o->namespace && *o->namespace ? o->namespace : "/";
    if (nsp[0] != '/' || strlen(nsp) > SIO_MAX_NSP || !url_safe(nsp, ","))
        return invalid("SOCKETIO_NAMESPACE must be \"/\" or \"/name\" without commas");
    if (build_urls(s, o->url, o->path && *o->path ? o->path : "/socket.io/") != 0)
        return -1;
    if (o->auth && *o->auth) {
        s->auth_json = cJSON_ParseWithOpts(o->auth, NULL, 1); /* nothing after the object */
        /* Never quote the text: it is the secret. */
        if (!cJSON_IsObject(s->auth_json) || strchr(o->auth, EIO_RECORD_SEPARATOR))
            return invalid("SOCKETIO_AUTH is not a JSON object");
        s->auth = strdup(o->auth);
        if (!s->auth)
            return -1;
    }
    s->nsp = strdup(nsp);
    s->ack_timeout = o->ack_timeout > 0 ? o->ack_timeout : 10.0;
    s->reconnect_min = o->reconnect_min > 0 ? o->reconnect_min : 0.5;
    s->reconnect_max = fmax(s->reconnect_min, o->reconnect_max > 0 ? o->reconnect_max : 30.0);
    s->refused_retry = o->refused_retry > 0 ? o->refused_retry
                                            : fmax(REFUSED_RETRY_MIN_S, s->reconnect_max);
    return s->nsp ? 0 : -1;
}

notify_sink *socketio_sink_new(struct ev_loop *loop, const socketio_options *o)
{
    socketio_sink *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base.ops = &SOCKETIO_OPS;
    snprintf(s->base.name, sizeof s->base.name, "socketio");
    s->loop = loop;
    s->next_id = 1;
    s->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)s << 16) ^ (uint64_t)getpid();
    if (s->rng == 0)
        s->rng = 0x9e3779b97f4a7c15ULL;
    ev_timer_init(&s->reconnect_w, on_reconnect_timer, 0.0, 0.0);
    ev_timer_init(&s->heartbeat_w, on_heartbeat_timeout, 0.0, 0.0);
    ev_timer_init(&s->finish_w, on_finish_timer, 0.0, 0.0);
    s->reconnect_w.data = s->heartbeat_w.data = s->finish_w.data = s;
    if (copy_options(s, o) != 0) {
        sink_free(&s->base);
        return NULL;
    }
    /* Connect from the loop, so that nothing is logged or called back inside new(). */
    ev_timer_start(loop, &s->reconnect_w);
    return &s->base;
}
