/* Webhook sink (see webhook.h): one URL, one signed POST per event through the engine's
 * libcurl client (http.h). Each delivery is a webhook_delivery linked into its sink until
 * the HTTP answer comes back; free() finishes them early ("shutting down") and detaches
 * them, so an answer that still arrives later through a shared client finds no sink and is
 * dropped. */
#include "notify/webhook.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "log.h"
#include "notify/hmac.h"

#define WEBHOOK_DEFAULT_TIMEOUT_MS 10000L
#define WEBHOOK_MAX_EVENT_ID 20  /* digits of a PostgreSQL bigint */
#define WEBHOOK_NAME_PREFIX "webhook:"

typedef struct webhook_delivery webhook_delivery;

typedef struct webhook_sink {
    notify_sink base;            /* first member: a notify_sink * is a webhook_sink * */
    http_client *http;
    bool owns_http;
    bool gone;                   /* answered 410: never ready again */
    bool closing;                /* inside free(): refuse new deliveries */
    char *url;                   /* as configured (userinfo and query included) */
    unsigned char *key;          /* WEBHOOK_SECRET copy, wiped on free; NULL = unsigned */
    size_t key_len;
    long timeout_ms;
    webhook_delivery *deliveries; /* in flight, doubly linked */
} webhook_sink;

struct webhook_delivery {
    webhook_sink *sink;          /* NULL once free() has finished it */
    char event_id[WEBHOOK_MAX_EVENT_ID + 1];
    notify_done_fn done;
    void *user;
    webhook_delivery *prev, *next;
};

/* ================================================================== Names */

/* Clears every part that may carry a credential. Setting a part to NULL removes it. */
static bool strip_secrets(CURLU *u)
{
    return curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
           curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
           curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) == CURLUE_OK &&
           curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
           curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK;
}

/* Host names are case-insensitive: "Example.COM" and "example.com" are one receiver and
 * must be one sink, or the duplicate check in notifiers.c would let both through. */
static bool lower_host(CURLU *u)
{
    char *host = NULL;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        return false;
    for (char *p = host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    bool ok = curl_url_set(u, CURLUPART_HOST, host, 0) == CURLUE_OK;
    curl_free(host);
    return ok;
}

int webhook_sink_name(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *clean = NULL;
    /* CURLU_NO_DEFAULT_PORT: "https://h:443/x" and "https://h/x" get the same name. */
    bool ok = u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
              strip_secrets(u) && lower_host(u) &&
              curl_url_get(u, CURLUPART_URL, &clean, CURLU_NO_DEFAULT_PORT) == CURLUE_OK;
    if (ok) {
        int n = snprintf(out, cap, WEBHOOK_NAME_PREFIX "%s", clean);
        ok = n > 0 && (size_t)n < cap;
    }
    if (!ok && cap)
        out[0] = '\0';
    curl_free(scheme);
    curl_free(clean);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

/* ================================================================== Requests */

/* The event id goes into a header line: only digits, so nothing can add a header. */
static bool event_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > WEBHOOK_MAX_EVENT_ID)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (id[i] < '0' || id[i] > '9')
            return false;
    }
    return true;
}

/* "X-M2P-Signature: sha256=<hex>" over "<timestamp>.<body>". 0 or -1. */
static int signature_header(const webhook_sink *s, const char *timestamp,
                            const notify_event *ev, char *out, size_t cap)
{
    char hex[HMAC_SHA256_HEX_LEN + 1];
    hmac_piece pieces[] = {
        {timestamp, strlen(timestamp)},
        {".", 1},
        {ev->payload, ev->payload_len},
    };
    if (hmac_sha256_hex(s->key, s->key_len, pieces, 3, hex) != 0)
        return -1;
    int n = snprintf(out, cap, "X-M2P-Signature: sha256=%s", hex);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Outcome of one HTTP answer; *error is NULL or text valid while `r` and `buf` are. */
static notify_outcome classify(const http_response *r, char *buf, size_t cap,
                               const char **error)
{
    if (!r->ok) {
        /* http.c's texts: "timeout after N ms", "connect timeout after N ms", "response
         * body too large", "cancelled" or libcurl's message, which names at most the host
         * and port (already in the sink's name), never the userinfo, path or query. */
        *error = r->error ? r->error : "request failed";
        return NOTIFY_RETRY;
    }
    if (r->status >= 200 && r->status <= 299) {
        *error = NULL;
        return NOTIFY_DELIVERED;
    }
    if (r->status == 410) {
        *error = "HTTP 410 Gone";
        return NOTIFY_GONE;
    }
    snprintf(buf, cap, "HTTP %ld", r->status);
    *error = buf;
    return NOTIFY_RETRY;
}

static void delivery_unlink(webhook_sink *s, webhook_delivery *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        s->deliveries = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
    d->sink = NULL;
}

static void log_gone(const webhook_sink *s, const char *event_id)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "sink", s->base.name);
    cJSON_AddStringToObject(f, "url", s->base.name + strlen(WEBHOOK_NAME_PREFIX));
    cJSON_AddStringToObject(f, "event_id", event_id);
    cJSON_AddStringToObject(f, "error", "HTTP 410 Gone");
    cJSON_AddStringToObject(f, "message",
                            "the receiver answered 410 Gone: this engine sends nothing more "
                            "to this URL until it is restarted");
    log_emit(LOG_ERROR, "webhook_gone", f);
}

static void on_answer(void *user, const http_response *r)
{
    webhook_delivery *d = user;
    webhook_sink *s = d->sink;
    if (!s) {  /* finished by free() already */
        free(d);
        return;
    }
    delivery_unlink(s, d);
    char buf[32];
    const char *error;
    notify_outcome outcome = classify(r, buf, sizeof buf, &error);
    if (outcome == NOTIFY_GONE && !s->gone) {
        s->gone = true;
        log_gone(s, d->event_id);
    }
    /* Last use of s: the callback may free the sink. */
    d->done(d->user, outcome, error);
    free(d);
}

static int start_request(webhook_sink *s, const notify_event *ev, webhook_delivery *d)
{
    char timestamp[24], id_header[64], ts_header[64], sig_header[128];
    snprintf(timestamp, sizeof timestamp, "%lld", (long long)time(NULL));
    snprintf(id_header, sizeof id_header, "X-M2P-Event-Id: %s", ev->event_id);
    snprintf(ts_header, sizeof ts_header, "X-M2P-Timestamp: %s", timestamp);
    const char *headers[5] = {
        "Content-Type: application/json",
        "X-M2P-Event: mining_reward",
        id_header,
        ts_header,
        sig_header,
    };
    size_t n_headers = 4;
    if (s->key) {
        if (signature_header(s, timestamp, ev, sig_header, sizeof sig_header) != 0)
            return -1;
        n_headers = 5;
    }
    http_request req = {
        .url = s->url,
        .headers = headers,
        .n_headers = n_headers,
        .redirects = HTTP_REDIRECTS_NONE,
        .body = ev->payload,
        .body_len = ev->payload_len,
        .timeout_ms = s->timeout_ms,
    };
    return http_get(s->http, &req, on_answer, d);  /* copies headers and body */
}

/* ================================================================== Sink ops */

static bool webhook_ready(notify_sink *base)
{
    webhook_sink *s = (webhook_sink *)base;
    return !s->gone && !s->closing;
}

static int webhook_deliver(notify_sink *base, const notify_event *ev, notify_done_fn done,
                           void *user)
{
    webhook_sink *s = (webhook_sink *)base;
    if (!webhook_ready(base) || !ev || !done || !ev->payload || !event_id_valid(ev->event_id))
        return -1;
    webhook_delivery *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    memcpy(d->event_id, ev->event_id, strlen(ev->event_id) + 1);
    d->done = done;
    d->user = user;
    if (start_request(s, ev, d) != 0) {
        free(d);
        return -1;
    }
    d->sink = s;
    d->next = s->deliveries;
    if (s->deliveries)
        s->deliveries->prev = d;
    s->deliveries = d;
    return 0;
}

static void webhook_free(notify_sink *base)
{
    webhook_sink *s = (webhook_sink *)base;
    if (!s)
        return;
    s->closing = true;
    while (s->deliveries) {
        webhook_delivery *d = s->deliveries;
        delivery_unlink(s, d);  /* its HTTP answer, if any, now only frees it */
        d->done(d->user, NOTIFY_RETRY, "shutting down");
    }
    if (s->owns_http)
        http_client_free(s->http);  /* cancels the requests: their callbacks free them */
    if (s->key)
        OPENSSL_clear_free(s->key, s->key_len);
    free(s->url);
    free(s);
}

static const notify_sink_ops webhook_ops = {
    .ready = webhook_ready,
    .deliver = webhook_deliver,
    .free = webhook_free,
};

/* ================================================================== Construction */

static http_client *own_client(struct ev_loop *loop, long timeout_ms)
{
    http_options o;
    http_options_defaults(&o);
    o.timeout_ms = timeout_ms;
    o.max_body_bytes = WEBHOOK_MAX_RESPONSE_BYTES;
    return http_client_new(loop, &o);
}

static int copy_secret(webhook_sink *s, const char *secret)
{
    if (!secret || !*secret)
        return 0;
    s->key_len = strlen(secret);
    s->key = OPENSSL_malloc(s->key_len);
    if (!s->key)
        return -1;
    memcpy(s->key, secret, s->key_len);
    return 0;
}

notify_sink *webhook_sink_new(struct ev_loop *loop, http_client *shared,
                              const webhook_options *o)
{
    if (!loop || !o || !o->url)
        return NULL;
    webhook_sink *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base.ops = &webhook_ops;
    /* NaN and <= 0 take the default; the cap only keeps llround() defined. */
    s->timeout_ms = !(o->timeout_s > 0) ? WEBHOOK_DEFAULT_TIMEOUT_MS
                    : o->timeout_s > 86400 ? 86400000L
                                           : (long)llround(o->timeout_s * 1000.0);
    if (webhook_sink_name(o->url, s->base.name, sizeof s->base.name) != 0)
        goto fail;
    s->url = strdup(o->url);
    if (!s->url || copy_secret(s, o->secret) != 0)
        goto fail;
    s->http = shared ? shared : own_client(loop, s->timeout_ms);
    s->owns_http = !shared;
    if (!s->http)
        goto fail;
    return &s->base;
fail:
    webhook_free(&s->base);
    return NULL;
}
