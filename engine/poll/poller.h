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

#include "award_limits.h"
#include "http.h"
#include "metrics.h"
#include "players.h"
#include "script.h"

struct ev_loop;
typedef struct poller poller;

/* An account's durable state as the store has it. */
typedef struct stored_account {
    bool found;           /* false: never observed */
    long long version;    /* compare-and-set guard; 0 when not found */
    const char *wallet;   /* the wallet `state` belongs to */
    const char *state;    /* JSON */
    const char *observation_hash;
    award_history history; /* the account's paid awards (count, largest), for the limits */
    /* load() only, from a store that claims wallets: the player who owns the wallet on this
     * pool (a wallet belongs to one player per pool). Another player's: the account is
     * refused. */
    int64_t owner;
} stored_account;

typedef void (*load_done_fn)(void *ctx, bool ok, const stored_account *stored);

/* One account of a page of load_page(): the player, and its wallet for the page's pool as
 * the player's row names it and in the pool's canonical form (as for load()). */
typedef struct account_key {
    int64_t player_id;
    const char *wallet;
    const char *canonical;
} account_key;

/* A page's answer: ok=false (nothing read, stored NULL), else one entry per key, in the
 * keys' order. An entry with owner 0 is not settled: that account still needs load(). */
typedef void (*page_done_fn)(void *ctx, bool ok, const stored_account *stored);

/* What the store is given for one successful poll. */
typedef struct poll_commit {
    const player *player;
    const char *pool;
    const char *wallet;
    long long version;          /* what the decision was based on */
    const char *previous_state; /* NULL at the first observation */
    const poll_outcome *outcome;
    const char *observation_hash; /* of outcome->observation_json */
    bool observation_changed;     /* a snapshot is due */
    const char *raw_response;     /* the body, for STORE_RAW_RESPONSES */
    const char *rules_generation; /* content hash of the rules that decided */
    /* NULL when every award is paid; else one entry per award: NULL = paid, or why it is
     * held (award_limits.h). A held award is stored as such, never in the totals. */
    const char *const *held;
} poll_commit;

typedef enum { COMMIT_OK, COMMIT_CONFLICT, COMMIT_FAILED } commit_status;

/* On COMMIT_OK `version` is the account's new version; on COMMIT_CONFLICT `current` is what
 * the store holds now (another engine or an earlier attempt got there first). */
typedef void (*commit_done_fn)(void *ctx, commit_status status, long long version,
                               const stored_account *current);

/* Where account state lives. Each function calls its done callback exactly once, possibly
 * before returning. */
typedef struct account_store {
    /* `wallet` as the player's row names it, `canonical` as the pool's wallet check gives it
     * (the key under which a wallet belongs to one player). */
    void (*load)(struct account_store *self, int64_t player_id, const char *pool,
                 const char *wallet, const char *canonical, load_done_fn done, void *ctx);
    void (*commit)(struct account_store *self, const poll_commit *c, commit_done_fn done,
                   void *ctx);
    /* true: load() claims the wallet and reports its owner, durably and for every engine
     * sharing the store. false: the poller keeps the rule within this process (the first
     * account activated, i.e. first in file order, keeps a wallet). */
    bool claims_wallets;
    /* Optional (NULL: every account goes through load()). The stored state of up to a few
     * thousand accounts of one pool in one read, so that a start does not cost a statement
     * per account. It claims nothing: an entry is settled (owner = its player) only where the
     * store already holds the wallet's claim for that player exactly as load() would find
     * it, with nothing to write; every other account goes through load(), which decides.
     * `keys` are read during the call only. */
    void (*load_page)(struct account_store *self, const char *pool, const account_key *keys,
                      size_t n, page_done_fn done, void *ctx);
} account_store;

/* The in-memory store of --dry-run and --accounts: every account starts unobserved and a
 * result is durable as soon as it exists; wallet ownership is the poller's, per process. */
account_store *account_store_memory(void);

typedef struct poller_options {
    double interval;         /* POLL_INTERVAL_SECONDS */
    double shutdown_timeout; /* seconds to let in-flight polls finish on stop */
    bool once;               /* every account once, as fast as limits allow, then finish */
    double snapshot_heartbeat; /* SNAPSHOT_HEARTBEAT: snapshot an unchanged observation
                                  again after this many seconds; 0 = never */
    http_options http;
    unsigned long long seed; /* scheduler jitter; 0 = from the clock */
    award_limits limits;     /* MAX_AWARD_ADVC, MAX_AWARD_FACTOR */
} poller_options;

/* `store` must outlive the poller. Takes ownership of `rt`. Players are added with
 * poller_put_player (before or after start). */
poller *poller_new(struct ev_loop *loop, const poller_options *opts, script_runtime *rt,
                   account_store *store);

/* Adds a player or replaces one with the same id: its accounts are rebuilt (state comes from
 * the store again, so an unchanged wallet keeps its history and a changed one re-baselines). */
void poller_put_player(poller *p, const player *pl);
void poller_remove_player(poller *p, int64_t player_id);
/* A full refresh: players not put between begin and end are removed. */
void poller_sweep_begin(poller *p);
void poller_sweep_end(poller *p);
size_t poller_player_count(const poller *p);

/* Scale-out: only accounts for which owns() is true are polled. poller_resync() applies a
 * change of ownership (accounts gained are loaded from the store before their first poll). */
typedef bool (*account_owner_fn)(void *user, int64_t player_id, const char *pool);
void poller_set_owner(poller *p, account_owner_fn owns, void *user);
void poller_resync(poller *p);
void poller_free(poller *p);

void poller_start(poller *p);

/* Called once when the poller has nothing left to do: --once finished, or stop completed. */
void poller_on_finished(poller *p, void (*fn)(void *user), void *user);

/* Stops taking new polls; in-flight polls get `shutdown_timeout` to finish, then are
 * cancelled (a cancelled poll changes nothing). */
void poller_stop(poller *p);

/* "Why was I not rewarded?": for each of the player's accounts, this engine's view: the
 * wallet, the last poll (time, outcome, last error), when the next poll is due and why then,
 * and what the rules say about the baseline and the next award. A JSON array (caller owns;
 * [] when the player is unknown here); `engine_id` (may be NULL) is named in each entry. */
cJSON *poller_explain(poller *p, int64_t player_id, const char *engine_id);

/* Swaps in a new script generation (SIGHUP). Polls in flight finish with the generation they
 * started with. New pools get accounts; removed or disabled pools stop being polled. Takes
 * ownership of `rt`. */
void poller_reload(poller *p, script_runtime *rt);

/* New award limits (SIGHUP re-read the settings); they apply to polls decided from now on. */
void poller_set_award_limits(poller *p, const award_limits *limits);

const metrics *poller_metrics(const poller *p);
/* Brings the gauges that are not kept current as polls happen up to date in the metrics:
 * per pool the breaker state, the scheduler lag and the accounts tracked and owned
 * (poller_gauges.c). Counting the accounts walks every player: done at most once a second. */
void poller_refresh_gauges(poller *p);
/* Adds fields (health of the database, membership) to every polling_cycle_complete. */
void poller_set_status(poller *p, void (*fn)(void *user, cJSON *fields), void *user);

/* Counts a reload attempt in the metrics (ok=false: the running generation was kept). */
void poller_note_reload(poller *p, bool ok);
/* Accounts polled (refused wallets are not). */
size_t poller_account_count(const poller *p);
/* Pools that were polled at least once in --once mode and never succeeded. */
size_t poller_pools_failed_entirely(const poller *p);

#endif
