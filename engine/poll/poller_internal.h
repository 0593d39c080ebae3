/* Private to the poller: the structures that its files (below) share, and the functions
 * they call across files. Only the poller's own files include
 * this header; everyone else uses poller.h.
 *
 * poller.c           players, accounts, pool slots, the pump and the life cycle
 * poller_poll.c      each poll through its callbacks, from start_poll to finish
 * poller_wallets.c   wallet refusals: the wallet check and ownership, parking, re-checks
 * poller_pacing.c    whether a pool's accounts can be polled within its max_interval
 * poller_gauges.c    the gauges the admin endpoint reads: breaker, lag, accounts per pool
 * poller_requests.c  each account's request, kept between polls
 * poller_preload.c   account states read a page of a pool at a time, before first polls
 * poller_explain.c   one player's accounts as this engine sees them (--explain, /accounts)
 * poller_index.c     the player index: player id -> entry */
#ifndef M2P_POLLER_INTERNAL_H
#define M2P_POLLER_INTERNAL_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "poller.h"
#include "pool_metadata.h"
#include "scheduler.h"
#include "wallet_owners.h"

#define MAX_POOL_SLOTS 256
#define WALLET_TEXT_MAX 1024 /* canonical wallets; the pipeline refuses any over 256 bytes */

/* Why an active account is parked instead of scheduled. */
enum { REFUSED_NONE, REFUSED_INVALID, REFUSED_DUPLICATE };

typedef struct generation {
    script_runtime *rt;
    int refs;
} generation;

/* A pool's part of the request cache (poller_requests.c). */
typedef struct request_cache {
    uint32_t epoch;   /* accounts' URLs built under this epoch are current; 0: none yet */
    unsigned serial;  /* script_pool.request_serial when the epoch began */
    char *url_prefix; /* the first URL kept in this epoch: accounts keep what follows their
                         common prefix with it (the wallet part, mostly) */
    size_t url_prefix_len;
    char **headers;   /* the pool's headers in this epoch: "Name: value" */
    size_t n_headers;
    bool headers_set; /* headers is the first list built in this epoch */
} request_cache;

/* A pool as the poller knows it across generations (matched by name). */
typedef struct pool_slot {
    char *name;
    int script_index; /* in the current generation; -1 when gone or disabled */
    pool_metrics *metrics;
    uint64_t attempts, successes; /* for --once's "failed entirely" */
    bool pacing_warned; /* pool_interval_exceeds_max was said for the current state */
    bool tls_no_verify; /* <POOL>_TLS_VERIFY=false, read once per generation (pool_tls.h) */
    request_cache requests;
} pool_slot;

typedef struct account {
    uint32_t player;
    uint16_t slot;
    bool active;
    bool loaded; /* state and version are what the store holds */
    /* Polls at work on it. Usually 0 or 1, but a poll still running when its account is
     * deactivated and activated again (a players-row change) may overlap the next one: a
     * count, so the first to finish does not mark the account idle under the other. */
    uint16_t in_flight;
    bool preloading; /* in a page of states being read (poller_preload.c) */
    bool page_missed; /* a page did not settle it: its own load decides, no page again */
    uint8_t refused;      /* REFUSED_*: not scheduled, see poller_wallets.c */
    bool canonical_differs; /* the wallet check's canonical form is not the wallet itself */
    uint16_t checked_gen; /* generation (gen_seq) whose wallet check the wallet last passed */
    uint32_t refusal_logged; /* hash of the refusal last logged (0: none): said once */
    uint32_t epoch;
    long long version;
    uint64_t observation_hash;
    double last_snapshot; /* ev_now() of the last snapshot this engine stored */
    char *state_json;
    award_history history; /* paid awards so far, as the store had them plus since */
    /* What --explain and GET /accounts say about the last polls (this process only): */
    double last_poll_at;  /* ev_now() when the last finished poll ended; 0: none yet */
    double last_error_at; /* when last_error happened */
    char *last_error;     /* the last failure in words (kept after a success); NULL: none */
    uint8_t last_result;  /* sched_result of the last finished poll */
    uint16_t request_prefix; /* the cached URL: this many bytes of the pool's url_prefix, */
    uint32_t request_epoch;  /* ... then request_url; built in this request epoch */
    char *request_url;       /* (poller_requests.c); NULL: no cached request */
} account;

/* A player and the accounts created for it (one per pool it has had a wallet on). */
typedef struct player_entry {
    player p;
    bool present;
    bool seen;    /* put since poller_sweep_begin */
    bool leaving; /* gone, its entry waits for a poll of one of its accounts to end */
    bool unused;  /* released: on the free list, no player, no accounts (poller.c) */
    uint32_t *accounts;
    uint16_t n_accounts;
} player_entry;

typedef struct poll_ctx {
    poller *p;
    uint32_t account;
    uint32_t epoch;
    generation *gen;
    int script_index;
    double started;
    char *previous_state; /* the state this poll's decision was based on */
    uint64_t observation_hash;
    poll_outcome outcome;
    hold_reason *held; /* per award, when the limits held any; else NULL */
    char **held_why;   /* the explanation of each held award (NULL = paid) */
} poll_ctx;

struct poller {
    struct ev_loop *loop;
    poller_options opts;
    http_client *http;
    pool_metadata *metadata; /* pools' metadata requests, through `http` */
    scheduler *sched;
    metrics metrics;
    generation *gen;
    pool_slot slots[MAX_POOL_SLOTS];
    size_t n_slots;
    player_entry *players;
    size_t n_players, players_cap, players_present;
    uint32_t *player_index; /* open addressing on player id: index + 1, 0 = empty */
    size_t player_index_cap;
    account_store *store;
    account_owner_fn owns;
    void *owns_user;
    account *accounts;
    size_t n_accounts, accounts_cap;
    /* Entries of players gone, and their accounts, are reused: the tables follow the players
     * present, not every player ever seen (issue 12, churn). */
    uint32_t *free_players, *free_accounts;
    size_t n_free_players, free_players_cap, n_free_accounts, free_accounts_cap;
    size_t players_leaving; /* entries with `leaving` set */
    uint16_t gen_seq;          /* bumped on every reload: wallets are checked again */
    wallet_owners *owners;     /* stores that do not claim wallets: who owns one, in-process */
    size_t refused_duplicates; /* accounts parked as another player's wallet */
    size_t recheck_cursor;
    size_t in_flight; /* polls started and not finished (load, HTTP or commit) */
    struct preload_page *preloads; /* pages of account states being read */
    ev_timer wake, cycle, deadline;
    bool started, stopping, pumping, finished;
    bool abandoned; /* stop deadline passed with polls still waiting on the store */
    void (*on_finished)(void *);
    void *on_finished_user;
    void (*status)(void *, cJSON *);
    void *status_user;
    award_limits limits;
    double gauges_counted_at; /* poller_gauges.c: ev_now() of the last account count */
    uint32_t request_epochs;  /* poller_requests.c: the last request epoch handed out */
};

/* The player an account belongs to, and the wallet that player names for the account's pool. */
static inline const player *player_of(const poller *p, uint32_t id)
{
    return &p->players[p->accounts[id].player].p;
}

static inline const char *wallet_of(const poller *p, uint32_t id)
{
    return player_wallet_for(player_of(p, id), p->slots[p->accounts[id].slot].name);
}

/* poller.c */
void poller_generation_release(generation *g);
void poller_pump(poller *p); /* start every poll that is due and allowed now */
cJSON *poller_account_fields(const poller *p, uint32_t id);
void poller_schedule(poller *p, uint32_t id);
void poller_check_finished(poller *p);

/* poller_index.c */
player_entry *poller_find_player(const poller *p, int64_t id); /* NULL: not known here */
void poller_index_insert(poller *p, int64_t id, uint32_t index);
void poller_index_grow(poller *p);
void poller_index_remove(poller *p, int64_t id);

/* poller_wallets.c */
void poller_set_refusal(poller *p, account *a, uint8_t kind);
bool poller_admit(poller *p, uint32_t id, char *canonical, size_t len);
bool poller_may_poll(poller *p, uint32_t id, char *canonical, size_t len);
bool poller_owned(poller *p, uint32_t id, const stored_account *stored);
void poller_recheck_all_refused(poller *p);
void poller_recheck_duplicates(poller *p);

/* poller_requests.c: an account's request, from its cache or built by the script. */
typedef struct poller_request {
    const char *url;
    char url_text[4100]; /* a cached URL put together (the pipeline allows 4096 bytes) */
    const char *const *headers;
    size_t n_headers;
    script_request built; /* what was built and not kept; cleared by the release */
} poller_request;

int poller_request_get(poller *p, const poll_ctx *c, poller_request *out, char *err,
                       size_t errlen);
void poller_request_release(poller_request *r);
void poller_request_forget(account *a);
void poller_requests_reset(pool_slot *slot);

/* poller_preload.c: true when the poll waits for a page of states (then resumed with
 * poller_load_resume); false: it loads its account itself. */
typedef struct preload_page preload_page;
bool poller_preload(poller *p, poll_ctx *c, const char *canonical);

/* poller_poll.c: one poll's path; the last two for poller_preload.c */
void poller_start_poll(poller *p, uint32_t id);
void poller_adopt_stored(poller *p, uint32_t id, const stored_account *stored);
void poller_load_resume(poll_ctx *c);

/* poller_pacing.c */
void poller_check_pacing(poller *p, bool again);

#endif
