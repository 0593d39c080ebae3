/* Pool metadata (see pool_metadata.h): one entry per pool that declares a metadata request,
 * each with its own timer and at most one fetch in flight.
 *
 * Entries are matched to pools by name across generations. An entry whose pool went away
 * while its fetch was in flight is only marked and freed when the answer comes (the HTTP
 * client still holds a pointer to it); an answer for a URL that changed in the meantime is
 * dropped by comparing the entry's sequence number, and the new URL is fetched right away.
 */
#include "pool_metadata.h"
#include "pool_tls.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"

#define RETRY_FIRST 5.0  /* seconds after the first failure; doubled after each further one */
#define RETRY_MAX 600.0  /* never longer between attempts while there is a failure */

typedef struct waiter {
    void (*ready)(void *);
    void *user;
} waiter;

typedef struct metadata_entry {
    pool_metadata *owner;
    char *pool;
    char *url, *proxy, *interface;
    double refresh;
    bool seen;       /* in the generation being synced */
    bool first_done; /* the first attempt for this URL has finished */
    bool fetching;
    bool removed;    /* the pool is gone; freed when the fetch in flight ends */
    unsigned seq, fetch_seq;
    unsigned failures; /* consecutive */
    char *json;        /* the last good result of metadata.parse */
    char *error;       /* the last failure, NULL after a success */
    char *body;        /* the last good answer, parsed again after a reload */
    size_t body_len;
    char *content_type;
    ev_timer timer;
    waiter *waiters;
    size_t n_waiters;
} metadata_entry;

struct pool_metadata {
    struct ev_loop *loop;
    http_client *const *http;
    script_runtime *rt;
    metadata_entry **entries;
    size_t n;
    bool stopped;
};

static char *copy_or_null(const char *s) { return s ? strdup(s) : NULL; }

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* ===================================================================== Entries */

static metadata_entry *find_entry(const pool_metadata *m, const char *pool)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->entries[i]->pool, pool) == 0)
            return m->entries[i];
    return NULL;
}

static void forget_answer(metadata_entry *e)
{
    free(e->json);
    free(e->error);
    free(e->body);
    free(e->content_type);
    e->json = e->error = e->body = e->content_type = NULL;
    e->body_len = 0;
    e->failures = 0;
}

/* Whoever waited for the first attempt goes on now (with or without metadata). */
static void release_waiters(metadata_entry *e)
{
    waiter *list = e->waiters;
    size_t n = e->n_waiters;
    e->waiters = NULL;
    e->n_waiters = 0;
    for (size_t i = 0; i < n; i++)
        list[i].ready(list[i].user);
    free(list);
}

static void free_entry(metadata_entry *e)
{
    ev_timer_stop(e->owner->loop, &e->timer);
    forget_answer(e);
    free(e->pool);
    free(e->url);
    free(e->proxy);
    free(e->interface);
    free(e->waiters);
    free(e);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

static metadata_entry *new_entry(pool_metadata *m, const script_pool *sp)
{
    metadata_entry *e = calloc(1, sizeof *e);
    e->owner = m;
    e->pool = strdup(sp->name);
    ev_timer_init(&e->timer, on_timer, 0, 0);
    e->timer.data = e;
    m->entries = realloc(m->entries, (m->n + 1) * sizeof *m->entries);
    m->entries[m->n++] = e;
    return e;
}

static void set_target(metadata_entry *e, const script_pool *sp)
{
    free(e->url);
    free(e->proxy);
    free(e->interface);
    e->url = strdup(sp->metadata_url);
    e->proxy = copy_or_null(sp->proxy);
    e->interface = copy_or_null(sp->interface);
    e->seq++;
    e->first_done = false;
    forget_answer(e);
}

/* ===================================================================== Fetching */

static void fetch(metadata_entry *e);

static void arm(metadata_entry *e, double delay)
{
    ev_timer_stop(e->owner->loop, &e->timer);
    if (e->owner->stopped)
        return;
    ev_timer_set(&e->timer, delay, 0);
    ev_timer_start(e->owner->loop, &e->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    fetch(w->data);
}

static double retry_delay(const metadata_entry *e)
{
    double delay = RETRY_FIRST;
    for (unsigned i = 1; i < e->failures && delay < RETRY_MAX; i++)
        delay *= 2;
    if (delay > RETRY_MAX)
        delay = RETRY_MAX;
    return delay < e->refresh ? delay : e->refresh;
}

static void first_attempt_done(metadata_entry *e)
{
    if (e->first_done)
        return;
    e->first_done = true;
    release_waiters(e);
}

static void failed(metadata_entry *e, const char *reason)
{
    pool_metadata *m = e->owner;
    free(e->error);
    e->error = strdup(reason);
    e->failures++;
    int index = script_pool_find(m->rt, e->pool);
    if (index >= 0)
        script_metadata_failed(m->rt, index, reason);
    double delay = retry_delay(e);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "pool", e->pool);
    cJSON_AddStringToObject(f, "error", reason);
    cJSON_AddNumberToObject(f, "consecutive_failures", e->failures);
    cJSON_AddStringToObject(f, "meanwhile", e->json ? "the last good metadata is used"
                                                    : "polls of this pool fail");
    if (!m->stopped)
        cJSON_AddNumberToObject(f, "retry_in_seconds", delay);
    log_emit(LOG_WARNING, "pool_metadata_failed", f);
    arm(e, delay);
    first_attempt_done(e);
}

static void keep_answer(metadata_entry *e, const http_response *r, char *json)
{
    bool changed = !e->json || strcmp(e->json, json) != 0;
    free(e->json);
    free(e->error);
    free(e->body);
    free(e->content_type);
    e->json = json;
    e->error = NULL;
    e->failures = 0;
    e->body = malloc(r->body_len + 1);
    memcpy(e->body, r->body, r->body_len + 1);
    e->body_len = r->body_len;
    e->content_type = NULL;
    for (size_t i = 0; i < r->n_headers; i++)
        if (!e->content_type && strcmp(r->header_names[i], "content-type") == 0)
            e->content_type = strdup(r->header_values[i]);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "pool", e->pool);
    cJSON *value = cJSON_Parse(json);
    cJSON_AddItemToObject(f, "metadata", value ? value : cJSON_CreateNull());
    cJSON_AddNumberToObject(f, "next_in_seconds", e->refresh);
    log_emit(changed ? LOG_INFO : LOG_DEBUG, "pool_metadata_updated", f);
    arm(e, e->refresh);
    first_attempt_done(e);
}

static void take_answer(metadata_entry *e, const http_response *r)
{
    pool_metadata *m = e->owner;
    int index = script_pool_find(m->rt, e->pool);
    if (index < 0) {
        failed(e, "the pool is not loaded");
        return;
    }
    script_response sr = {.status = r->status,
                          .header_names = r->header_names,
                          .header_values = r->header_values,
                          .n_headers = r->n_headers,
                          .body = r->body,
                          .body_len = r->body_len};
    char err[1024], *json = NULL;
    if (script_metadata_parse(m->rt, index, &sr, &json, err, sizeof err) == 0)
        keep_answer(e, r, json);
    else
        failed(e, err);
}

static void on_fetched(void *user, const http_response *r)
{
    metadata_entry *e = user;
    e->fetching = false;
    if (e->removed) {
        free_entry(e);
    } else if (e->fetch_seq != e->seq) {
        fetch(e); /* the URL changed while this answer was on its way */
    } else if (!r->ok && strcmp(r->error, "cancelled") == 0) {
        first_attempt_done(e); /* shutting down: nothing to retry, nothing to report */
    } else if (!r->ok) {
        failed(e, r->error);
    } else {
        take_answer(e, r);
    }
}

static void fetch(metadata_entry *e)
{
    pool_metadata *m = e->owner;
    if (e->fetching || m->stopped)
        return;
    http_client *http = *m->http;
    static const char *const headers[] = {"Accept: application/json"};
    /* No redirects: a metadata answer from another host would decide every poll's units. */
    http_request req = {.url = e->url, .headers = headers, .n_headers = 1, .proxy = e->proxy,
                        .interface = e->interface,
                        .tls_no_verify = pool_tls_verify_off(e->owner->rt, e->pool)};
    e->fetch_seq = e->seq;
    e->fetching = http && http_get(http, &req, on_fetched, e) == 0;
    if (!e->fetching)
        failed(e, "the request could not be started");
}

/* ===================================================================== Reloads */

/* The same URL in a new generation: the kept answer is read by the new parse. */
static void reparse(pool_metadata *m, metadata_entry *e, int index)
{
    if (!e->body) {
        if (e->first_done && e->error)
            script_metadata_failed(m->rt, index, e->error);
        return;
    }
    const char *names[] = {"content-type"}, *values[] = {e->content_type};
    script_response sr = {.status = 200, .header_names = names, .header_values = values,
                          .n_headers = e->content_type ? 1 : 0, .body = e->body,
                          .body_len = e->body_len};
    char err[1024], *json = NULL;
    if (script_metadata_parse(m->rt, index, &sr, &json, err, sizeof err) == 0) {
        free(e->json);
        e->json = json;
        return;
    }
    forget_answer(e); /* the new script refuses what the old one took: ask the pool again */
    e->first_done = false;
    ev_timer_stop(m->loop, &e->timer);
    fetch(e);
}

static void sync_pool(pool_metadata *m, const script_pool *sp, int index)
{
    metadata_entry *e = find_entry(m, sp->name);
    bool fresh = !e;
    if (fresh)
        e = new_entry(m, sp);
    e->seen = true;
    e->refresh = sp->metadata_refresh > 0 ? sp->metadata_refresh : 3600;
    if (fresh || !same_text(e->url, sp->metadata_url) || !same_text(e->proxy, sp->proxy) ||
        !same_text(e->interface, sp->interface)) {
        set_target(e, sp);
        ev_timer_stop(m->loop, &e->timer);
        fetch(e); /* in flight for an older URL: its answer is dropped, then this one starts */
        return;
    }
    reparse(m, e, index);
}

void pool_metadata_sync(pool_metadata *m, script_runtime *rt)
{
    m->rt = rt;
    for (size_t i = 0; i < m->n; i++)
        m->entries[i]->seen = false;
    for (size_t i = 0; i < script_pool_count(rt); i++) {
        const script_pool *sp = script_pool_at(rt, i);
        if (sp->enabled && sp->metadata_url)
            sync_pool(m, sp, (int)i);
    }
    size_t kept = 0;
    for (size_t i = 0; i < m->n; i++) {
        metadata_entry *e = m->entries[i];
        if (e->seen) {
            m->entries[kept++] = e;
            continue;
        }
        ev_timer_stop(m->loop, &e->timer);
        release_waiters(e);
        if (e->fetching)
            e->removed = true;
        else
            free_entry(e);
    }
    m->n = kept;
}

/* ======================================================================= Public */

pool_metadata *pool_metadata_new(struct ev_loop *loop, http_client *const *http)
{
    pool_metadata *m = calloc(1, sizeof *m);
    m->loop = loop;
    m->http = http;
    return m;
}

bool pool_metadata_wait(pool_metadata *m, const char *pool, void (*ready)(void *), void *user)
{
    metadata_entry *e = find_entry(m, pool);
    if (!e || e->first_done)
        return false;
    e->waiters = realloc(e->waiters, (e->n_waiters + 1) * sizeof *e->waiters);
    e->waiters[e->n_waiters++] = (waiter){ready, user};
    return true;
}

bool pool_metadata_get(const pool_metadata *m, const char *pool, const char **json,
                       const char **error)
{
    const metadata_entry *e = find_entry(m, pool);
    *json = e ? e->json : NULL;
    *error = e ? (e->error ? e->error : e->json ? NULL : "not fetched yet") : NULL;
    return e != NULL;
}

const char *pool_metadata_answer(const pool_metadata *m, const char *pool, size_t *len,
                                 const char **content_type)
{
    const metadata_entry *e = find_entry(m, pool);
    *len = e && e->body ? e->body_len : 0;
    *content_type = e ? e->content_type : NULL;
    return e ? e->body : NULL;
}

void pool_metadata_stop(pool_metadata *m)
{
    m->stopped = true;
    for (size_t i = 0; i < m->n; i++)
        ev_timer_stop(m->loop, &m->entries[i]->timer);
}

void pool_metadata_free(pool_metadata *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free_entry(m->entries[i]); /* waiters not released by now are dropped */
    free(m->entries);
    free(m);
}
