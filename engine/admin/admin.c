/* The admin HTTP endpoint on the libev loop (see admin.h).
 *
 * libmicrohttpd runs in its external mode with epoll: every socket it owns (the listener and
 * each connection) sits in one epoll set whose fd becomes readable when any of them is
 * ready, so one ev_io on that fd plus an ev_timer for MHD's own timeouts drive it entirely
 * from the engine's loop. Handlers read the engine's state directly: they run on the loop
 * thread, between polls, like every other callback.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <ev.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "activity.h"
#include "admin/accounts.h"
#include "admin/metrics_text.h"
#include "admin/status_page.h"
#include "log.h"
#include "secrets.h"

#define MAX_BODY 4096            /* bytes of request body accepted (none is needed) */
#define HEADER_MEMORY 16384      /* MHD's per-connection buffer: bounds the request head */
#define MAX_CONNECTIONS 32
#define CONNECTION_TIMEOUT 10    /* seconds an idle or slow connection is kept */

struct admin {
    struct ev_loop *loop;
    struct MHD_Daemon *mhd;
    ev_io io;
    ev_timer timer;
    char *token; /* "" = none */
    char last_error[256]; /* MHD's last message, for admin_start's error */
    admin_hooks hooks;
    accounts_requests *accounts; /* GET /accounts waiting for the database */
    bool loopback;               /* listening on a loopback address: Host must name one */
};

/* ================================================================ Listen address */

static int parse_port(const char *s, unsigned *port)
{
    if (!*s || strlen(s) > 5)
        return -1;
    unsigned v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

static int parse_host(const char *host, unsigned port, struct sockaddr_storage *addr,
                      socklen_t *len, bool *loopback)
{
    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        *loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        *loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ||
                    (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && v6->sin6_addr.s6_addr[12] == 127);
        return 0;
    }
    return -1;
}

int admin_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *len,
                       bool *loopback, char *err, size_t errlen)
{
    char host[64];
    const char *port_text;
    size_t n = strlen(text);
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
            goto bad;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        port_text = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host || strchr(text, ':') != colon)
            goto bad;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    unsigned port;
    if (n < 100 && parse_port(port_text, &port) == 0 &&
        parse_host(host, port, addr, len, loopback) == 0)
        return 0;
bad:
    snprintf(err, errlen,
             "ADMIN_LISTEN must be ADDRESS:PORT with a numeric IPv4 address, [IPv6] or "
             "localhost and a port 1-65535 (e.g. 127.0.0.1:9464)");
    return -1;
}

/* ===================================================================== Responses */

/* Takes ownership of body (malloc'd). `allow`: the Allow header of a 405, else NULL. */
static enum MHD_Result respond_allow(struct MHD_Connection *c, unsigned status,
                                     const char *type, char *body, size_t len,
                                     const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE
                                                                         : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               char *body, size_t len)
{
    return respond_allow(c, status, type, body, len, NULL);
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    char *body = strdup(text);
    return respond(c, status, "text/plain; charset=utf-8", body, body ? strlen(body) : 0);
}

/* Takes ownership of o. */
static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned status, cJSON *o)
{
    secrets_scrub_json(o); /* /status shows settings, URLs and errors: none with a secret */
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!body)
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    /* cJSON allocates with malloc (the engine never installs other hooks): MHD frees it. */
    size_t n = strlen(body);
    return respond(c, status, "application/json", body, n);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const char *why)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", why);
    return respond_json(c, status, o);
}

/* ====================================================================== Handlers */

static admin_view view_of(const admin *a)
{
    admin_view v = {0};
    a->hooks.view(a->hooks.user, &v);
    return v;
}

/* NULL when ready, else why not. */
static const char *not_ready_reason(const admin_view *v)
{
    if (!v->script_generation)
        return "scripts are not loaded";
    if (v->db && !db_healthy(v->db))
        return "the database is unreachable";
    if (!v->players_loaded)
        return "the players are not loaded yet";
    return NULL;
}

static enum MHD_Result get_readyz(admin *a, struct MHD_Connection *c)
{
    admin_view v = view_of(a);
    const char *why = not_ready_reason(&v);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ready", why == NULL);
    if (why)
        cJSON_AddStringToObject(o, "reason", why);
    return respond_json(c, why ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, o);
}

/* What the status page shows per pool beyond the counts: derived here, once, so the page
 * and a script reading /status agree. */
static void add_pool_rates(cJSON *po, const pool_metrics *p)
{
    cJSON_AddNumberToObject(po, "awards_held", (double)p->awards_held);
    cJSON_AddNumberToObject(po, "advc_awarded", p->advc_awarded);
    cJSON_AddNumberToObject(po, "ap_awarded", p->ap_awarded);
    cJSON_AddNumberToObject(po, "wallets_refused", (double)p->wallets_refused);
    if (p->requests)
        cJSON_AddNumberToObject(po, "success_rate", (double)p->successes / (double)p->requests);
    if (p->timed_responses)
        cJSON_AddNumberToObject(po, "mean_latency_ms",
                                p->response_ms_total / (double)p->timed_responses);
    if (!p->scheduled)
        return;
    cJSON_AddNumberToObject(po, "effective_interval_seconds", p->effective_interval);
    if (p->max_interval > 0) {
        cJSON_AddNumberToObject(po, "max_interval_seconds", p->max_interval);
        cJSON_AddBoolToObject(po, "interval_exceeds_max", p->exceeds_max);
    }
}

static void add_pools(cJSON *o, const metrics *m)
{
    cJSON *pools = cJSON_AddObjectToObject(o, "pools");
    for (size_t i = 0; m && i < m->n_pools; i++) {
        const pool_metrics *p = &m->pools[i];
        cJSON *po = cJSON_AddObjectToObject(pools, p->name);
        cJSON_AddNumberToObject(po, "polls", (double)p->requests);
        cJSON_AddNumberToObject(po, "successes", (double)p->successes);
        cJSON_AddNumberToObject(po, "failures", (double)p->failures);
        cJSON_AddNumberToObject(po, "awards", (double)p->awards);
        cJSON_AddNumberToObject(po, "accounts", (double)p->accounts);
        add_pool_rates(po, p);
    }
}

static enum MHD_Result get_status(admin *a, struct MHD_Connection *c)
{
    admin_view v = view_of(a);
    const char *why = not_ready_reason(&v);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", M2P_VERSION);
    cJSON_AddNumberToObject(o, "uptime_seconds", process_uptime_seconds());
    cJSON_AddBoolToObject(o, "ready", why == NULL);
    if (why)
        cJSON_AddStringToObject(o, "reason", why);
    cJSON_AddStringToObject(o, "database",
                            !v.db ? "none" : db_healthy(v.db) ? "ok" : "degraded");
    cJSON_AddNumberToObject(o, "accounts", (double)v.accounts);
    if (v.script_generation)
        cJSON_AddStringToObject(o, "script_generation", v.script_generation);
    if (v.metrics) {
        cJSON_AddNumberToObject(o, "polls", (double)v.metrics->polls_total);
        cJSON_AddNumberToObject(o, "awards", (double)v.metrics->rewards_detected);
        cJSON_AddNumberToObject(o, "script_reloads", (double)v.metrics->script_reloads);
        cJSON_AddNumberToObject(o, "script_reload_failures",
                                (double)v.metrics->script_reload_failures);
    }
    add_pools(o, v.metrics);
    cJSON_AddItemToObject(o, "notifications", outbox_stats_json(v.outbox));
    cJSON *stats = db_stats_json(v.db_stats); /* NULL until the database answered once */
    if (stats)
        cJSON_AddItemToObject(o, "database_stats", stats);
    cJSON_AddNumberToObject(o, "time", (double)time(NULL)); /* the page's "now" for the charts */
    if (v.metrics)
        activity_add_json(v.metrics->activity, o);
    return respond_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result get_metrics(admin *a, struct MHD_Connection *c)
{
    admin_view v = view_of(a);
    size_t len;
    char *text = metrics_text_render(&v, &len);
    if (!text)
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* The status page's files are static: served from the binary without a copy. */
static enum MHD_Result respond_page(struct MHD_Connection *c, const char *path)
{
    const page_file *f = page_find(path);
    if (!f)
        return respond_error(c, MHD_HTTP_NOT_FOUND, "not found");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "Content-Security-Policy", PAGE_CSP);
    MHD_add_response_header(r, MHD_HTTP_HEADER_X_CONTENT_TYPE_OPTIONS, "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result get_page(admin *a, struct MHD_Connection *c)
{
    (void)a;
    return respond_page(c, "/");
}

static enum MHD_Result get_page_js(admin *a, struct MHD_Connection *c)
{
    (void)a;
    return respond_page(c, "/page.js");
}

static enum MHD_Result get_page_css(admin *a, struct MHD_Connection *c)
{
    (void)a;
    return respond_page(c, "/page.css");
}

/* Suspended until the database answers; MHD calls again after the resume (accounts.h). */
static enum MHD_Result get_accounts(admin *a, struct MHD_Connection *c)
{
    char *body, err[128];
    unsigned status;
    if (a->accounts && accounts_take(a->accounts, c, &body, &status))
        return respond(c, status, "application/json", body, body ? strlen(body) : 0);
    int64_t id;
    const char *arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "player");
    if (!accounts_player_arg(arg, &id, err, sizeof err))
        return respond_error(c, MHD_HTTP_BAD_REQUEST, err);
    admin_view v = view_of(a);
    cJSON *live = a->hooks.explain ? a->hooks.explain(a->hooks.user, id) : cJSON_CreateArray();
    if (!v.db) {
        body = accounts_without_db(id, live, &status);
        return respond(c, status, "application/json", body, body ? strlen(body) : 0);
    }
    if (!db_healthy(v.db)) {
        cJSON_Delete(live);
        return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the database is unreachable");
    }
    if (!a->accounts) {
        cJSON_Delete(live);
        return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    int started = accounts_start(a->accounts, c, (db *)v.db, id, live);
    if (started != 0)
        return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                             started == ACCOUNTS_BUSY ? "too many /accounts requests waiting"
                                                      : "the database queue is full");
    return MHD_YES;
}

static enum MHD_Result get_healthz(admin *a, struct MHD_Connection *c)
{
    (void)a;
    return respond_text(c, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result post_reload(admin *a, struct MHD_Connection *c)
{
    char err[1024] = "";
    bool ok = a->hooks.reload(a->hooks.user, err, sizeof err);
    admin_view v = view_of(a);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "reloaded", ok);
    if (!ok)
        cJSON_AddStringToObject(o, "error", err[0] ? err : "the reload failed (see the log)");
    if (v.script_generation)
        cJSON_AddStringToObject(o, "script_generation", v.script_generation);
    return respond_json(c, ok ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR, o);
}

/* ====================================================================== Routing */

typedef struct route {
    const char *path, *method;
    bool protected_; /* needs the bearer token when ADMIN_TOKEN is set */
    enum MHD_Result (*handle)(admin *a, struct MHD_Connection *c);
} route;

static const route routes[] = {
    {"/", MHD_HTTP_METHOD_GET, false, get_page},
    {"/page.js", MHD_HTTP_METHOD_GET, false, get_page_js},
    {"/page.css", MHD_HTTP_METHOD_GET, false, get_page_css},
    {"/healthz", MHD_HTTP_METHOD_GET, false, get_healthz},
    {"/readyz", MHD_HTTP_METHOD_GET, false, get_readyz},
    {"/status", MHD_HTTP_METHOD_GET, false, get_status},
    {"/metrics", MHD_HTTP_METHOD_GET, false, get_metrics},
    {"/reload", MHD_HTTP_METHOD_POST, true, post_reload},
    {"/accounts", MHD_HTTP_METHOD_GET, true, get_accounts},
};

/* Compares digests, so that neither the token's bytes nor its length leak through timing. */
static bool token_matches(const char *given, const char *token)
{
    unsigned char dg[EVP_MAX_MD_SIZE], dt[EVP_MAX_MD_SIZE];
    unsigned ng = 0, nt = 0;
    if (!EVP_Digest(given, strlen(given), dg, &ng, EVP_sha256(), NULL) ||
        !EVP_Digest(token, strlen(token), dt, &nt, EVP_sha256(), NULL) || ng != nt)
        return false;
    return CRYPTO_memcmp(dg, dt, ng) == 0;
}

static bool authorized(const admin *a, struct MHD_Connection *c)
{
    if (!a->token[0])
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    static const char prefix[] = "Bearer ";
    if (!h || strncasecmp(h, prefix, sizeof prefix - 1) != 0)
        return false;
    return token_matches(h + sizeof prefix - 1, a->token);
}

/* DNS rebinding: a web page an operator opens may resolve its own name to 127.0.0.1 and read
 * the endpoint from the browser. Such a request names that host in Host; a request meant for
 * a loopback endpoint names localhost or a loopback address. */
static bool host_allowed(const admin *a, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!a->loopback || !h)
        return true; /* HTTP/1.0 may send none; a non-loopback endpoint has its token */
    char name[64];
    size_t n;
    if (h[0] == '[') {
        const char *end = strchr(h, ']');
        n = end ? (size_t)(end - h - 1) : sizeof name;
        h++;
    } else {
        n = strcspn(h, ":");
    }
    if (n == 0 || n >= sizeof name)
        return false;
    memcpy(name, h, n);
    name[n] = '\0';
    struct in_addr v4;
    struct in6_addr v6;
    if (strcasecmp(name, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, name, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, name, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

static enum MHD_Result dispatch(admin *a, struct MHD_Connection *c, const char *url,
                                const char *method)
{
    if (!host_allowed(a, c))
        return respond_error(c, MHD_HTTP_FORBIDDEN,
                             "the Host header names another host: use 127.0.0.1 or localhost");
    const route *r = NULL;
    for (size_t i = 0; !r && i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(routes[i].path, url) == 0)
            r = &routes[i];
    if (!r)
        return respond_error(c, MHD_HTTP_NOT_FOUND, "not found");
    /* MHD answers HEAD without the body it is given. */
    bool get = strcmp(r->method, MHD_HTTP_METHOD_GET) == 0;
    if (strcmp(method, r->method) != 0 && !(get && strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", "method not allowed");
        char *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return respond_allow(c, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", body,
                             body ? strlen(body) : 0, get ? "GET, HEAD" : r->method);
    }
    if (r->protected_ && !authorized(a, c)) {
        log_message(LOG_WARNING, "admin_unauthorized", "%s %s without a valid bearer token",
                    method, url);
        return respond_error(c, MHD_HTTP_UNAUTHORIZED, "a valid bearer token is required");
    }
    return r->handle(a, c);
}

/* *state counts the body bytes seen plus one (no allocation per request: nothing else is
 * kept between the calls MHD makes for one request). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **state)
{
    (void)version;
    (void)upload_data;
    admin *a = cls;
    if (!*state) {
        *state = (void *)(uintptr_t)1;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > MAX_BODY)
            return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        return MHD_YES;
    }
    if (*upload_data_size) {
        uintptr_t seen = (uintptr_t)*state + *upload_data_size;
        if (seen > MAX_BODY + 1)
            return MHD_NO; /* a chunked body past the bound: the connection is closed */
        *state = (void *)seen;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(a, c, url, method);
}

/* A request ended (answered, or the client went away while its answer was prepared): what
 * GET /accounts kept for it goes. */
static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    (void)state;
    (void)toe;
    admin *a = cls;
    if (a->accounts)
        accounts_forget(a->accounts, c);
}

/* ====================================================================== The loop */

static void drive(admin *a)
{
    MHD_run(a->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    /* No timeout pending: still look again in a second, in case MHD has work no fd shows. */
    double after = MHD_get_timeout(a->mhd, &ms) == MHD_YES ? (double)ms / 1000.0 : 1.0;
    ev_timer_stop(a->loop, &a->timer);
    ev_timer_set(&a->timer, after, 0);
    ev_timer_start(a->loop, &a->timer);
}

static void wake_mhd(void *a) { drive(a); }

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    drive(w->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    drive(w->data);
}

/* Debug only: most of MHD's messages are about what a client sent, and a client must not be
 * able to fill the log; a failure to listen reaches the operator through admin_start. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    admin *a = cls;
    vsnprintf(a->last_error, sizeof a->last_error, fmt, ap);
    size_t n = strlen(a->last_error);
    while (n && (a->last_error[n - 1] == '\n' || a->last_error[n - 1] == '\r'))
        a->last_error[--n] = '\0';
    log_message(LOG_DEBUG, "admin_http", "%s", a->last_error);
}

admin *admin_start(struct ev_loop *loop, const char *listen, const char *token,
                   const admin_hooks *hooks, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t alen;
    bool loopback;
    if (admin_parse_listen(listen, &addr, &alen, &loopback, err, errlen) != 0)
        return NULL;
    admin *a = calloc(1, sizeof *a);
    if (!a || !(a->token = strdup(token))) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->loopback = loopback;
    a->loop = loop;
    a->hooks = *hooks;
    a->accounts = accounts_requests_new(loop, wake_mhd, a);
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The port argument only names the port in MHD's messages: the address is SOCK_ADDR. */
    uint16_t port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                     : ((struct sockaddr_in *)&addr)->sin_port);
    a->mhd = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HEADER_MEMORY, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        a->mhd ? MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!info) {
        snprintf(err, errlen, "ADMIN_LISTEN %s: cannot listen: %s", listen,
                 a->last_error[0] ? a->last_error : "unknown error");
        admin_stop(a);
        return NULL;
    }
    ev_io_init(&a->io, on_io, info->epoll_fd, EV_READ);
    ev_timer_init(&a->timer, on_timer, 1.0, 0);
    a->io.data = a->timer.data = a;
    ev_io_start(loop, &a->io);
    ev_timer_start(loop, &a->timer);
    log_message(LOG_INFO, "admin_listening", "admin endpoint on http://%s/ (token %s)", listen,
                a->token[0] ? "required for POST /reload and GET /accounts" : "not set");
    return a;
}

void admin_stop(admin *a)
{
    if (!a)
        return;
    if (a->loop) {
        ev_io_stop(a->loop, &a->io);
        ev_timer_stop(a->loop, &a->timer);
    }
    accounts_requests_free(a->accounts); /* resumes what waits: MHD must not stop with it */
    a->accounts = NULL;
    if (a->mhd)
        MHD_stop_daemon(a->mhd);
    free(a->token);
    free(a);
}
