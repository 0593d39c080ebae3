/* The poller: runs the scheduler on the libev loop and carries each poll through its steps:
 * script request -> HTTP -> script poll (parse, convert, decide) -> sink commit -> reschedule.
 *
 * One account = one player's wallet on one pool. Account state lives here in memory; the sink
 * makes each successful poll durable (the database in production, nothing in --dry-run)
 * before the state advances, and an account is never polled twice at the same time. */
#ifndef M2P_POLLER_H
#define M2P_POLLER_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "metrics.h"
#include "players.h"
#include "script.h"

struct ev_loop;
typedef struct poller poller;

/* What a sink is given for one successful poll. */
typedef struct poll_commit {
    const player *player;
    const char *pool;
    const char *wallet;
    const char *previous_state; /* NULL at the first observation */
    const poll_outcome *outcome;
} poll_commit;

typedef void (*commit_done_fn)(void *ctx, bool ok);

/* Where successful polls go. commit() calls done exactly once, possibly before returning. */
typedef struct account_sink {
    void (*commit)(struct account_sink *self, const poll_commit *c, commit_done_fn done,
                   void *ctx);
} account_sink;

typedef struct poller_options {
    double interval;         /* POLL_INTERVAL_SECONDS */
    double shutdown_timeout; /* seconds to let in-flight polls finish on stop */
    bool once;               /* every account once, as fast as limits allow, then finish */
    http_options http;
    unsigned long long seed; /* scheduler jitter; 0 = from the clock */
} poller_options;

/* `players` and `sink` must outlive the poller. Takes ownership of `rt`. */
poller *poller_new(struct ev_loop *loop, const poller_options *opts, script_runtime *rt,
                   const player_list *players, account_sink *sink);
void poller_free(poller *p);

void poller_start(poller *p);

/* Called once when the poller has nothing left to do: --once finished, or stop completed. */
void poller_on_finished(poller *p, void (*fn)(void *user), void *user);

/* Stops taking new polls; in-flight polls get `shutdown_timeout` to finish, then are
 * cancelled (a cancelled poll changes nothing). */
void poller_stop(poller *p);

/* Swaps in a new script generation (SIGHUP). Polls in flight finish with the generation they
 * started with. New pools get accounts; removed or disabled pools stop being polled. Takes
 * ownership of `rt`. */
void poller_reload(poller *p, script_runtime *rt);

const metrics *poller_metrics(const poller *p);
size_t poller_account_count(const poller *p);
/* Pools that were polled at least once in --once mode and never succeeded. */
size_t poller_pools_failed_entirely(const poller *p);

#endif
