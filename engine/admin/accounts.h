/* GET /accounts?player=ID: the player report of engine/store/player_report.h with this
 * engine's live view merged in. The database part is a query on the engine's db queue, so the
 * request is suspended (MHD_suspend_connection) until it answers, then resumed; MHD calls the
 * handler again and accounts_take() hands over the finished answer. A report not read within
 * ACCOUNTS_DEADLINE seconds (the database went away with the query queued) is answered 503, so
 * a suspended request never holds one of the endpoint's connections for long.
 */
#ifndef M2P_ADMIN_ACCOUNTS_H
#define M2P_ADMIN_ACCOUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "db.h"

#define ACCOUNTS_DEADLINE 10.0

struct ev_loop;
typedef struct accounts_requests accounts_requests;

/* `wake` runs after a suspended connection was resumed (admin.c: let MHD run). */
accounts_requests *accounts_requests_new(struct ev_loop *loop, void (*wake)(void *),
                                         void *wake_user);
/* Resumes every suspended connection (they answer 503 when MHD calls again) and frees what
 * no query still points to. Call before MHD_stop_daemon. NULL is a no-op. */
void accounts_requests_free(accounts_requests *q);

/* Parses the player=ID argument: true with *id, or false with the reason in err. */
bool accounts_player_arg(const char *text, int64_t *id, char *err, size_t errlen);

#define ACCOUNTS_MAX_WAITING 8 /* suspended at once: the endpoint has 32 connections */
#define ACCOUNTS_BUSY (-2)

/* Starts the report query for `c` and suspends it. Takes `live` (a poller_explain array).
 * 0; ACCOUNTS_BUSY when ACCOUNTS_MAX_WAITING requests wait already; -1 when the query could
 * not be queued (the caller answers 503 to both). */
int accounts_start(accounts_requests *q, struct MHD_Connection *c, db *d, int64_t player,
                   cJSON *live);

/* The finished answer for `c`, if there is one: its body (caller frees) and HTTP status. */
bool accounts_take(accounts_requests *q, struct MHD_Connection *c, char **body,
                   unsigned *status);

/* The request of `c` ended (MHD_OPTION_NOTIFY_COMPLETED): an answer it never took is freed,
 * so a client that goes away while its report is read leaves nothing behind. */
void accounts_forget(accounts_requests *q, struct MHD_Connection *c);

/* The answer without a database (--accounts mode): the live view only. Takes `live`. */
char *accounts_without_db(int64_t player, cJSON *live, unsigned *status);

#endif
