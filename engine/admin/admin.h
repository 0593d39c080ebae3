/* The admin HTTP endpoint (ADMIN_LISTEN): health, readiness, status, Prometheus metrics and
 * a reload trigger, served by libmicrohttpd on the engine's libev loop (no threads: MHD's
 * epoll fd is watched with ev_io and its timeouts with an ev_timer).
 *
 *   GET  /          the live status page (status_page.h; also /page.js, /page.css)
 *   GET  /healthz   200 "ok" while the loop answers
 *   GET  /readyz    200 {"ready":true} or 503 {"ready":false,"reason":..}
 *   GET  /status    JSON summary (version, uptime, database, pools, sinks, scripts, and
 *                   the recent awards, errors and per-minute series of activity.h)
 *   GET  /metrics   Prometheus text format 0.0.4 (metrics_text.h)
 *   POST /reload    the SIGHUP reload; needs "Authorization: Bearer ADMIN_TOKEN" when set
 *   GET  /accounts?player=ID  why a player was (not) rewarded (accounts.h); token as /reload
 *
 * Other paths answer 404, other methods 405, request bodies over 4 KiB 413.
 */
#ifndef M2P_ADMIN_H
#define M2P_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "db.h"
#include "db_stats.h"
#include "metrics.h"
#include "notify/outbox.h"

struct ev_loop;

/* What the engine shows, read at each request (the pointers may change between requests,
 * e.g. after a reload). */
typedef struct admin_view {
    const metrics *metrics;
    size_t accounts;
    const db *db;                  /* NULL: --accounts (no database) */
    const outbox *outbox;          /* NULL: no notification sinks */
    const db_stats *db_stats;      /* NULL: no database (or not read yet: db_stats_known) */
    const char *script_generation; /* content hash of the running rules; NULL: none loaded */
    bool players_loaded;           /* the account source has been read once */
} admin_view;

typedef struct admin_hooks {
    void (*view)(void *user, admin_view *out);
    /* POST /reload: true when the new generation is in; else a reason (no secret) in err. */
    bool (*reload)(void *user, char *err, size_t errlen);
    /* GET /accounts: poller_explain's array for the player (caller owns); may be NULL. */
    struct cJSON *(*explain)(void *user, int64_t player_id);
    void *user;
} admin_hooks;

typedef struct admin admin;

/* Parses ADMIN_LISTEN ("127.0.0.1:9464", "[::1]:9464"; numeric addresses, or "localhost").
 * Returns 0, or -1 with the reason in err. `loopback` tells whether only this host can
 * connect. */
int admin_parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *len,
                       bool *loopback, char *err, size_t errlen);

/* Starts listening; `token` ("" = none) is copied. NULL with the reason in err. */
admin *admin_start(struct ev_loop *loop, const char *listen, const char *token,
                   const admin_hooks *hooks, char *err, size_t errlen);
/* Closes the listener and every connection. NULL is a no-op. */
void admin_stop(admin *a);

#endif
