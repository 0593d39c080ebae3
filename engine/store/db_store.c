/* Players, account state and poll commits in PostgreSQL (see db_store.h).
 *
 * Statements per poll: a poll that awarded something or saw a new observation is one
 * statement, SELECT m2p_commit_poll(...). A poll that saw the same observation and awarded
 * nothing (its state may still differ: the rules write `polled` on every poll) is not
 * committed: its last_success and its state are collected and written together every
 * touch_flush_seconds with one UPDATE over unnest()ed arrays, the state only where the row
 * still has the version the engine holds (docs/operations.md, "Unchanged polls"). Before
 * first polls, account states are read a page of a pool per statement (store_load_page).
 */
#include "db_store.h"

#include <ev.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db_values.h"
#include "log.h"
#include "utf8.h"

#define PLAYERS_PAGE "5000"
#define TOUCH_BATCH_MAX 5000
/* A batch is sent at this many bytes of states too: one parameter may not pass 1 GB, and the
 * engine holds the batch twice while it builds it. */
#define TOUCH_STATES_MAX_BYTES (64u << 20)

static const char *const SQL_PLAYERS_PAGE =
    "SELECT p.id, p.username, p.wallet_address,"
    " coalesce((SELECT json_object_agg(w.pool_name, w.wallet ORDER BY w.pool_name)"
    "           FROM m2p_player_wallets w WHERE w.player_id = p.id)::text, '{}'), true"
    " FROM players p WHERE p.verified AND p.active AND p.id > $1::int"
    " ORDER BY p.id LIMIT " PLAYERS_PAGE;

static const char *const SQL_PLAYER =
    "SELECT p.id, p.username, p.wallet_address,"
    " coalesce((SELECT json_object_agg(w.pool_name, w.wallet ORDER BY w.pool_name)"
    "           FROM m2p_player_wallets w WHERE w.player_id = p.id)::text, '{}'),"
    " p.verified AND p.active"
    " FROM players p WHERE p.id = $1::int";

/* The columns stored_from_row() reads, in its order. */
#define ACCOUNT_COLUMNS \
    "version, wallet, state::text, observation_hash, award_count, largest_award::text"

static const char *const SQL_ACCOUNT =
    "SELECT " ACCOUNT_COLUMNS " FROM m2p_accounts WHERE player_id = $1::int AND pool_name = $2";

/* Loading an account claims its wallet in the same statement (a wallet belongs to one player
 * per pool: engine/migrations/004_wallet_claims.sql). Always one row; the account's columns
 * are NULL when it was never observed. */
static const char *const SQL_LOAD =
    "SELECT " ACCOUNT_COLUMNS ", claim.wallet_owner"
    " FROM (SELECT m2p_claim_wallet($1::int, $2, $3, $4) AS wallet_owner) claim"
    " LEFT JOIN m2p_accounts ON player_id = $1::int AND pool_name = $2";

/* A page of account states for one pool (account_store.load_page), in one statement: each
 * key's row of m2p_accounts, for the keys whose wallet claim is held by that player exactly
 * as given, the case in which m2p_claim_wallet would only return the player (and write
 * nothing). Keys without a row here go through SQL_LOAD. The keys come as one JSON array
 * (built with cJSON), so hostile wallets need no quoting of ours. Both lookups are LATERAL
 * so each key is one probe of a primary key: joined plainly, the planner (which guesses 100
 * keys for json_to_recordset) hashed every claim of the pool per page, 186 ms at 50,000
 * (docs/performance.md, "A restart's pages at scale"). */
static const char *const SQL_LOAD_PAGE =
    "SELECT a.version, a.wallet, a.state::text, a.observation_hash, a.award_count,"
    " a.largest_award::text, k.i"
    " FROM json_to_recordset($2::json) AS k(i int, p int, c text, g text)"
    " CROSS JOIN LATERAL (SELECT 1 FROM m2p_wallet_claims w WHERE w.pool_name = $1"
    "  AND w.wallet = k.c AND w.player_id = k.p AND w.wallet_as_given = k.g LIMIT 1) w"
    " LEFT JOIN LATERAL (SELECT * FROM m2p_accounts a WHERE a.player_id = k.p"
    "  AND a.pool_name = $1 LIMIT 1) a ON true";

static const char *const SQL_COMMIT =
    "SELECT m2p_commit_poll($1::int, $2, $3, $4::bigint, $5::jsonb, $6, $7::jsonb, $8::jsonb,"
    " $9, $10)";

static const char *const SQL_PRUNE =
    "DELETE FROM pool_snapshots WHERE id IN (SELECT id FROM pool_snapshots"
    " WHERE snapshot_time < now() - make_interval(days => $1::int) LIMIT 1000)";

/* One row per account even when it was touched several times in the batch (an UPDATE joined
 * to two rows applies one of them, either): its latest entry with a state (NULL: the same
 * state as its poll before), else its latest. The state is written only at the version the
 * engine held (a fencing token: a commit since, of this engine or another, bumped it and
 * wins); the version itself is never bumped here. */
static const char *const SQL_TOUCH =
    "UPDATE m2p_accounts a SET last_success = now(), last_attempt = now(), failures = 0,"
    " state = CASE WHEN t.state IS NOT NULL AND a.version = t.version"
    "         THEN t.state::jsonb ELSE a.state END"
    " FROM (SELECT DISTINCT ON (player_id, pool_name) player_id, pool_name, version, state"
    "       FROM unnest($1::int[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY"
    "            AS u(player_id, pool_name, version, state, n)"
    "       ORDER BY player_id, pool_name, state IS NULL, n DESC) t"
    " WHERE a.player_id = t.player_id AND a.pool_name = t.pool_name";

/* The comma-separated elements of a PostgreSQL array literal being built. */
typedef struct text_list {
    char *text;
    size_t len, cap;
} text_list;

struct db_store {
    account_store accounts; /* first: the poller's view of this store */
    struct ev_loop *loop;
    db *db;
    db_store_options opts;
    unsigned long long statements;
    /* players */
    poller *poller;
    void (*ready)(void *, bool);
    void *ready_user;
    bool loading, loaded_once;
    bool closing;
    ev_timer refresh;
    /* unchanged polls waiting to be written: the elements of SQL_TOUCH's arrays */
    text_list touch_ids, touch_pools, touch_versions, touch_states;
    size_t touch_n;
    ev_timer touch_timer;
    ev_timer prune_timer;
    char retention_days[16];
};

static int query(db_store *s, const char *sql, int n, const char *const *params,
                 db_done_fn done, void *user)
{
    s->statements++;
    return db_query(s->db, sql, n, params, done, user);
}

/* ====================================================================== Players */

/* One row of SQL_PLAYERS_PAGE / SQL_PLAYER as a player; false for a row to ignore. */
static bool row_player(const db_result *r, int row, player *out)
{
    memset(out, 0, sizeof *out);
    out->id = strtoll(db_value(r, row, 0), NULL, 10);
    out->username = strdup(db_value(r, row, 1));
    out->wallet = db_is_null(r, row, 2) ? NULL : strdup(db_value(r, row, 2));
    player_set_wallets_json(out, db_value(r, row, 3));
    return strcmp(db_value(r, row, 4), "t") == 0;
}

static void put_rows(db_store *s, const db_result *r)
{
    for (int i = 0; i < r->rows; i++) {
        player pl;
        if (row_player(r, i, &pl))
            poller_put_player(s->poller, &pl);
        else
            poller_remove_player(s->poller, pl.id);
        player_list one = {&pl, 1};
        player_list_free_items(&one);
    }
}

static void load_page(db_store *s, const char *after);

static void finish_load(db_store *s, bool ok)
{
    s->loading = false;
    if (ok)
        poller_sweep_end(s->poller);
    if (!s->loaded_once && s->ready) {
        if (ok)
            s->loaded_once = true;
        s->ready(s->ready_user, ok);
    }
}

static void on_page(void *user, const db_result *r)
{
    db_store *s = user;
    if (s->closing)
        return;
    if (!r->ok) {
        log_message(LOG_WARNING, "players_refresh_failed", "%s", r->error);
        finish_load(s, false);
        return;
    }
    put_rows(s, r);
    if (r->rows < atoi(PLAYERS_PAGE)) {
        finish_load(s, true);
        return;
    }
    char last[32];
    snprintf(last, sizeof last, "%s", db_value(r, r->rows - 1, 0));
    load_page(s, last);
}

static void load_page(db_store *s, const char *after)
{
    const char *params[] = {after};
    if (query(s, SQL_PLAYERS_PAGE, 1, params, on_page, s) != 0)
        finish_load(s, false);
}

static void refresh_players(db_store *s)
{
    if (s->loading)
        return;
    s->loading = true;
    poller_sweep_begin(s->poller);
    load_page(s, "0");
}

typedef struct player_call {
    db_store *s;
    long long id;
} player_call;

static void on_player(void *user, const db_result *r)
{
    player_call *c = user;
    if (c->s->closing)
        ; /* shutting down: the poller no longer takes players */
    else if (!r->ok)
        log_message(LOG_WARNING, "player_refresh_failed", "%s", r->error);
    else if (r->rows == 0)
        poller_remove_player(c->s->poller, c->id); /* deleted */
    else
        put_rows(c->s, r); /* unchanged players are left alone by the poller */
    free(c);
}

/* NOTIFY m2p_players '<id>' from the trigger: re-read that player. payload NULL: the
 * subscription (re)started, and what was sent while it was down is lost: refresh all. */
static void on_player_changed(void *user, const char *channel, const char *payload)
{
    (void)channel;
    db_store *s = user;
    if (s->closing)
        return;
    if (!payload) {
        if (s->poller && s->loaded_once)
            refresh_players(s);
        return;
    }
    char *end;
    long long id = strtoll(payload, &end, 10);
    if (end == payload || *end || id <= 0 || !s->poller)
        return;
    player_call *c = malloc(sizeof *c);
    c->s = s;
    c->id = id;
    const char *params[] = {payload};
    if (query(s, SQL_PLAYER, 1, params, on_player, c) != 0)
        free(c);
}

static void on_refresh_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    refresh_players(w->data);
}

void db_store_follow_players(db_store *s, poller *p, void (*ready)(void *, bool), void *user)
{
    s->poller = p;
    s->ready = ready;
    s->ready_user = user;
    db_listen(s->db, "m2p_players", on_player_changed, s);
    ev_timer_start(s->loop, &s->refresh);
    refresh_players(s);
}

/* ================================================================ Account state */

typedef struct account_call {
    db_store *s;
    load_done_fn load_done;
    commit_done_fn commit_done;
    void *ctx;
    char player[24];
    char pool[64];
} account_call;

/* Row `row` of a result whose first columns are ACCOUNT_COLUMNS. */
static void stored_from(const db_result *r, int row, stored_account *out)
{
    memset(out, 0, sizeof *out);
    out->found = true;
    out->version = strtoll(db_value(r, row, 0), NULL, 10);
    out->wallet = db_value(r, row, 1);
    out->state = db_value(r, row, 2);
    out->observation_hash = db_is_null(r, row, 3) ? NULL : db_value(r, row, 3);
    /* What the award limits compare against (award_limits.h); m2p_commit_poll and
     * m2p_release_held keep them (engine/migrations/003_held_awards.sql). */
    long long count = strtoll(db_value(r, row, 4), NULL, 10);
    out->history.count = count < 0 ? 0 : count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
    out->history.largest = strtod(db_value(r, row, 5), NULL);
}

static void stored_from_row(const db_result *r, stored_account *out)
{
    memset(out, 0, sizeof *out);
    if (r->rows > 0)
        stored_from(r, 0, out);
}

static account_call *new_call(db_store *s, int64_t player_id, const char *pool, void *ctx)
{
    account_call *c = calloc(1, sizeof *c);
    c->s = s;
    c->ctx = ctx;
    snprintf(c->player, sizeof c->player, "%lld", (long long)player_id);
    snprintf(c->pool, sizeof c->pool, "%s", pool);
    return c;
}

/* SQL_LOAD's row: the account (if ever observed) and the wallet's owner. An owner of NULL
 * (the claim vanished with its deleted owner meanwhile) fails the load: it is retried. */
static void on_account_claimed(void *user, const db_result *r)
{
    account_call *c = user;
    stored_account stored = {0};
    if (!r->ok)
        log_message(LOG_WARNING, "load_failed", "%s", r->error); /* as commit_failed */
    int owner = r->ok && r->rows == 1 ? db_column_index(r, "wallet_owner") : -1;
    bool ok = owner >= 0 && !db_is_null(r, 0, owner);
    if (ok) {
        if (!db_is_null(r, 0, 0))
            stored_from_row(r, &stored);
        stored.owner = strtoll(db_value(r, 0, owner), NULL, 10);
    }
    c->load_done(c->ctx, ok, &stored);
    free(c);
}

static void store_load(account_store *self, int64_t player_id, const char *pool,
                       const char *wallet, const char *canonical, load_done_fn done, void *ctx)
{
    db_store *s = (db_store *)self;
    account_call *c = new_call(s, player_id, pool, ctx);
    c->load_done = done;
    const char *params[] = {c->player, c->pool, canonical, wallet};
    if (query(s, SQL_LOAD, 4, params, on_account_claimed, c) != 0) {
        free(c);
        done(ctx, false, NULL);
    }
}

/* ------------------------------------------------------------ pages of states */

typedef struct page_call {
    page_done_fn done;
    void *ctx;
    size_t n;
    int64_t players[]; /* the keys' players: the owner of a settled entry */
} page_call;

/* SQL_LOAD_PAGE's rows onto the keys: a key without a row stays unsettled (owner 0). */
static void on_page_states(void *user, const db_result *r)
{
    page_call *c = user;
    stored_account *stored = r->ok ? calloc(c->n ? c->n : 1, sizeof *stored) : NULL;
    if (!r->ok)
        log_message(LOG_WARNING, "load_failed", "%s", r->error);
    for (int row = 0; stored && row < r->rows; row++) {
        long long i = strtoll(db_value(r, row, 6), NULL, 10);
        if (i < 0 || (size_t)i >= c->n || stored[i].owner)
            continue; /* not one of ours, or twice: left to load() */
        if (!db_is_null(r, row, 0))
            stored_from(r, row, &stored[i]);
        stored[i].owner = c->players[i];
    }
    c->done(c->ctx, r->ok && stored, stored); /* out of memory: each account loads itself */
    free(stored);
    free(c);
}

static char *page_keys_json(const account_key *keys, size_t n)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "i", (double)i);
        cJSON_AddNumberToObject(o, "p", (double)keys[i].player_id);
        cJSON_AddStringToObject(o, "c", keys[i].canonical);
        cJSON_AddStringToObject(o, "g", keys[i].wallet);
        cJSON_AddItemToArray(list, o);
    }
    char *text = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    return text;
}

static void store_load_page(account_store *self, const char *pool, const account_key *keys,
                            size_t n, page_done_fn done, void *ctx)
{
    db_store *s = (db_store *)self;
    page_call *c = calloc(1, sizeof *c + n * sizeof c->players[0]);
    c->done = done;
    c->ctx = ctx;
    c->n = n;
    for (size_t i = 0; i < n; i++)
        c->players[i] = keys[i].player_id;
    char *json = page_keys_json(keys, n);
    const char *params[] = {pool, json};
    int rc = query(s, SQL_LOAD_PAGE, 2, params, on_page_states, c);
    free(json);
    if (rc != 0) {
        free(c);
        done(ctx, false, NULL);
    }
}

/* ====================================================================== Commits */

static void on_conflict_reload(void *user, const db_result *r)
{
    account_call *c = user;
    stored_account stored;
    if (r->ok) {
        stored_from_row(r, &stored);
        c->commit_done(c->ctx, COMMIT_CONFLICT, stored.version, &stored);
    } else {
        c->commit_done(c->ctx, COMMIT_FAILED, 0, NULL);
    }
    free(c);
}

static void on_commit(void *user, const db_result *r)
{
    account_call *c = user;
    if (!r->ok) {
        log_message(LOG_WARNING, "commit_failed", "%s", r->error);
        c->commit_done(c->ctx, COMMIT_FAILED, 0, NULL);
        free(c);
    } else if (r->rows == 1 && !db_is_null(r, 0, 0) && strcmp(db_value(r, 0, 0), "-1") == 0) {
        /* The wallet's claim moved to another player since the account was loaded: nothing
         * was written. A failed commit makes the engine load the account again, and the load
         * decides the claim (and refuses the account). */
        log_message(LOG_WARNING, "commit_refused",
                    "player %s on %s: the wallet is claimed by another player now; nothing stored",
                    c->player, c->pool);
        c->commit_done(c->ctx, COMMIT_FAILED, 0, NULL);
        free(c);
    } else if (r->rows == 1 && !db_is_null(r, 0, 0)) {
        c->commit_done(c->ctx, COMMIT_OK, strtoll(db_value(r, 0, 0), NULL, 10), NULL);
        free(c);
    } else {
        const char *params[] = {c->player, c->pool};
        if (query(c->s, SQL_ACCOUNT, 2, params, on_conflict_reload, c) != 0) {
            c->commit_done(c->ctx, COMMIT_FAILED, 0, NULL);
            free(c);
        }
    }
}

/* The payout counter an award moved: paid, else paid24h (NULL for payouts by tx id). */
static cJSON *counter_of(const char *observation_json)
{
    cJSON *obs = observation_json ? cJSON_Parse(observation_json) : NULL;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obs, "paid");
    if (!cJSON_IsNumber(v))
        v = cJSON_GetObjectItemCaseSensitive(obs, "paid24h");
    cJSON *out = cJSON_IsNumber(v) ? cJSON_CreateNumber(v->valuedouble) : cJSON_CreateNull();
    cJSON_Delete(obs);
    return out;
}

/* counter_of as "%.8f" text for previous_paid/current_paid, like the amounts: cJSON would print
 * 15 significant digits, and 12345678.12345678 has 16 (docs/reliability.md, "Money exact to
 * 1e-8"). A counter NUMERIC(30, 8) cannot take never gets here (award_out_of_range). */
static cJSON *counter_text(const char *observation_json)
{
    cJSON *c = counter_of(observation_json);
    if (!cJSON_IsNumber(c) || !dbv_double_fits_numeric(c->valuedouble))
        return c;
    char text[64];
    snprintf(text, sizeof text, "%.8f", c->valuedouble);
    cJSON_Delete(c);
    return cJSON_CreateString(text);
}

static char *awards_json(const poll_commit *pc)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < pc->outcome->n_awards; i++) {
        const award *a = &pc->outcome->awards[i];
        char advc[64], ap[64];
        snprintf(advc, sizeof advc, "%.8f", a->advc); /* exact decimals for NUMERIC */
        snprintf(ap, sizeof ap, "%.8f", a->ap);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", a->key);
        cJSON_AddStringToObject(o, "advc", advc);
        cJSON_AddStringToObject(o, "ap", ap);
        cJSON_AddStringToObject(o, "reason", a->reason);
        cJSON_AddItemToObject(o, "previous_paid", counter_text(pc->previous_state));
        cJSON_AddItemToObject(o, "current_paid", counter_text(pc->outcome->observation_json));
        if (pc->held && pc->held[i]) /* stored as a held award: not paid, not notified */
            cJSON_AddStringToObject(o, "held", pc->held[i]);
        cJSON_AddItemToArray(list, o);
    }
    char *text = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    return text;
}

/* ------------------------------------------------- values PostgreSQL refuses */

/* Logs that a value of this poll was changed to be storable (db_values.h). */
static void log_cleaned(const poll_commit *pc, const char *what, unsigned changed)
{
    if (!changed)
        return;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "player_id", (double)pc->player->id);
    cJSON_AddStringToObject(f, "pool", pc->pool);
    cJSON_AddStringToObject(f, "value", what);
    cJSON_AddBoolToObject(f, "invalid_utf8_replaced", (changed & DBV_INVALID_UTF8) != 0);
    cJSON_AddBoolToObject(f, "nul_escapes_dropped", (changed & DBV_NUL_ESCAPE) != 0);
    log_emit(LOG_WARNING, "commit_value_cleaned", f);
}

enum column_kind { COL_NUMERIC, COL_BIGINT, COL_DOUBLE };

/* Whether (p_snapshot->>name)::type takes v: absent or null (NULL), a number or a decimal
 * string within the column's range; a bool, an object or other text would fail the cast. */
static bool column_fits(const cJSON *v, enum column_kind kind)
{
    double x;
    if (!v || cJSON_IsNull(v))
        return true;
    if (cJSON_IsNumber(v))
        x = v->valuedouble;
    else if (!cJSON_IsString(v) || !dbv_decimal_text(v->valuestring, &x))
        return false;
    if (kind == COL_BIGINT)
        return fabs(x) < 9.2e18;
    return kind == COL_DOUBLE ? isfinite(x) : dbv_double_fits_numeric(x);
}

/* The snapshot's columns m2p_commit_poll casts to NUMERIC(30,8) (hashrate to double
 * precision, shares to bigint): a value out of range or of another type is left out of the
 * columns (NULL) rather than failing the commit and with it every later poll; the
 * observation and the raw response keep what the pool said. */
static void drop_unstorable_columns(cJSON *obs, const poll_commit *pc)
{
    static const struct {
        const char *name;
        enum column_kind kind;
    } cols[] = {{"paid", COL_NUMERIC},
                {"balance", COL_NUMERIC},
                {"immature", COL_NUMERIC},
                {"hashrate", COL_DOUBLE},
                {"shares", COL_BIGINT}};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        if (column_fits(cJSON_GetObjectItemCaseSensitive(obs, cols[i].name), cols[i].kind))
            continue;
        log_message(LOG_WARNING, "snapshot_value_dropped",
                    "player %lld on %s: the %s value does not fit the snapshot's column; "
                    "stored as NULL", (long long)pc->player->id, pc->pool, cols[i].name);
        cJSON_DeleteItemFromObjectCaseSensitive(obs, cols[i].name);
    }
}

/* The first amount of an award that NUMERIC(30,8) cannot hold, described in `why`; false
 * when all fit. Such a poll cannot be stored at all: it fails, the account stays polled, and
 * a later answer within range is awarded from the last stored baseline. */
static bool award_out_of_range(const poll_commit *pc, char *why, size_t len)
{
    for (size_t i = 0; i < pc->outcome->n_awards; i++) {
        const award *a = &pc->outcome->awards[i];
        const char *name = !dbv_double_fits_numeric(a->advc) ? "advc"
                           : !dbv_double_fits_numeric(a->ap) ? "ap"
                                                             : NULL;
        if (name) {
            snprintf(why, len, "award %s = %g is beyond NUMERIC(30,8)", name,
                     name[0] == 'a' && name[1] == 'd' ? a->advc : a->ap);
            return true;
        }
    }
    const char *obs[] = {pc->previous_state, pc->outcome->observation_json};
    for (size_t i = 0; pc->outcome->n_awards && i < 2; i++) {
        cJSON *c = counter_of(obs[i]);
        bool bad = cJSON_IsNumber(c) && !dbv_double_fits_numeric(c->valuedouble);
        if (bad)
            snprintf(why, len, "%s paid counter %g is beyond NUMERIC(30,8)",
                     i ? "current" : "previous", c->valuedouble);
        cJSON_Delete(c);
        if (bad)
            return true;
    }
    return false;
}

static char *snapshot_json(const db_store *s, const poll_commit *pc)
{
    if (!pc->observation_changed)
        return NULL;
    cJSON *obs = cJSON_Parse(pc->outcome->observation_json);
    drop_unstorable_columns(obs, pc);
    if (s->opts.store_raw_responses && pc->raw_response)
        cJSON_AddStringToObject(obs, "raw_response", pc->raw_response);
    char *text = cJSON_PrintUnformatted(obs);
    cJSON_Delete(obs);
    unsigned changed;
    char *clean = dbv_json_clean(text, &changed);
    free(text);
    log_cleaned(pc, "snapshot", changed);
    return clean;
}

/* ------------------------------------------------------------- unchanged polls */

static void on_touch(void *user, const db_result *r)
{
    (void)user;
    /* Timestamps and unchanged polls' states lost: as if those polls never happened. */
    if (!r->ok)
        log_message(LOG_WARNING, "touch_failed", "%s", r->error);
}

/* `n` more bytes fit (and the terminating NUL): grown by doubling, states are long. */
static void reserve(text_list *l, size_t n)
{
    if (l->len + n + 1 <= l->cap)
        return;
    size_t cap = l->cap ? l->cap : 256;
    while (cap < l->len + n + 1)
        cap *= 2;
    char *grown = realloc(l->text, cap);
    if (!grown)
        abort(); /* out of memory: never a batch with a cut-off element */
    l->text = grown;
    l->cap = cap;
}

/* Appends one element as it is (numbers, NULL, elements quoted already). */
static void append(text_list *l, const char *text)
{
    size_t n = strlen(text);
    reserve(l, n + 1);
    if (l->len)
        l->text[l->len++] = ',';
    memcpy(l->text + l->len, text, n + 1);
    l->len += n;
}

/* Appends any text as a quoted array element: inside quotes only '"' and '\\' need a
 * backslash (PostgreSQL's array input), so a state's JSON passes unchanged. */
static void append_quoted(text_list *l, const char *text)
{
    size_t n = strlen(text);
    reserve(l, 2 * n + 3);
    if (l->len)
        l->text[l->len++] = ',';
    char *out = l->text + l->len;
    *out++ = '"';
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\')
            *out++ = '\\';
        *out++ = *c;
    }
    *out++ = '"';
    *out = '\0';
    l->len = (size_t)(out - l->text);
}

/* "{elements}" for a bound parameter; the list is emptied. */
static char *take_array(text_list *l)
{
    char *array = malloc(l->len + 3);
    if (!array)
        abort(); /* out of memory: as reserve() */
    snprintf(array, l->len + 3, "{%s}", l->len ? l->text : "");
    l->len = 0;
    return array;
}

static void flush_touches(db_store *s)
{
    if (!s->touch_n)
        return;
    char *ids = take_array(&s->touch_ids), *pools = take_array(&s->touch_pools);
    char *versions = take_array(&s->touch_versions), *states = take_array(&s->touch_states);
    const char *params[] = {ids, pools, versions, states};
    query(s, SQL_TOUCH, 4, params, on_touch, s);
    free(ids);
    free(pools);
    free(versions);
    free(states);
    s->touch_n = 0;
}

static void touch(db_store *s, const poll_commit *pc)
{
    char id[24], version[24];
    snprintf(id, sizeof id, "%lld", (long long)pc->player->id);
    snprintf(version, sizeof version, "%lld", pc->version);
    append(&s->touch_ids, id);
    /* Pool names are [A-Za-z0-9_-] (checked when a script loads); quoted all the same. */
    append_quoted(&s->touch_pools, pc->pool);
    append(&s->touch_versions, version);
    /* The text of the poll before is the stored state or one written by an earlier touch:
     * an equal text need not travel again. */
    if (strcmp(pc->previous_state, pc->outcome->state_json) == 0)
        append(&s->touch_states, "NULL");
    else
        append_quoted(&s->touch_states, pc->outcome->state_json);
    if (++s->touch_n >= TOUCH_BATCH_MAX || s->touch_states.len > TOUCH_STATES_MAX_BYTES)
        flush_touches(s);
}

/* A state PostgreSQL's text and jsonb input would refuse (invalid UTF-8 from a custom rule's
 * string, a \u0000 escape) fails the statement it is in: in a touch batch it would fail the
 * batch of every account in it, each flush. Such a state takes its own account's commit,
 * where the failure stays with that account. */
static bool pg_accepts(const char *json)
{
    return utf8_valid(json) && !strstr(json, "\\u0000");
}

static void on_touch_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    flush_touches(w->data);
}

/* A poll is touched, not committed, when it saw the observation stored (or touched) before
 * and awarded nothing (so held nothing). Its state may still differ from the stored one
 * (the rules' `polled`, a pending decrease's count): losing such a state with a lost touch
 * is the same as those polls never having happened, which the rules handle as any gap
 * between polls; an award or a new observation is always committed with the state that
 * produced it (docs/operations.md, "Unchanged polls"). */
static bool touchable(const poll_commit *pc)
{
    return pc->version > 0 && pc->outcome->n_awards == 0 && !pc->observation_changed &&
           pc->previous_state && pg_accepts(pc->outcome->state_json);
}

static void store_commit(account_store *self, const poll_commit *pc, commit_done_fn done,
                         void *ctx)
{
    db_store *s = (db_store *)self;
    if (touchable(pc)) {
        touch(s, pc);
        done(ctx, COMMIT_OK, pc->version, NULL);
        return;
    }
    char why[160];
    if (award_out_of_range(pc, why, sizeof why)) {
        log_message(LOG_WARNING, "commit_value_refused", "player %lld on %s: %s; nothing stored",
                    (long long)pc->player->id, pc->pool, why);
        done(ctx, COMMIT_FAILED, 0, NULL);
        return;
    }
    account_call *c = new_call(s, pc->player->id, pc->pool, ctx);
    c->commit_done = done;
    char version[24];
    snprintf(version, sizeof version, "%lld", pc->version);
    unsigned changed;
    char *state = dbv_json_clean(pc->outcome->state_json, &changed);
    log_cleaned(pc, "state", changed);
    char *awards_raw = awards_json(pc), *snapshot = snapshot_json(s, pc);
    char *awards = dbv_json_clean(awards_raw, &changed); /* keys hold pools' tx ids */
    free(awards_raw);
    log_cleaned(pc, "awards", changed);
    const char *params[] = {c->player, pc->pool, pc->wallet, version, state,
                            pc->observation_hash, snapshot, awards, pc->rules_generation,
                            s->opts.notify_channel};
    int rc = query(s, SQL_COMMIT, 10, params, on_commit, c);
    free(state);
    free(awards);
    free(snapshot);
    if (rc != 0) {
        free(c);
        done(ctx, COMMIT_FAILED, 0, NULL);
    }
}

/* ============================================================ Snapshot retention */

static void prune(db_store *s);

/* Old snapshots go 1000 rows per statement, so pruning never holds long locks. */
static void on_pruned(void *user, const db_result *r)
{
    db_store *s = user;
    if (!r->ok)
        log_message(LOG_WARNING, "snapshot_prune_failed", "%s", r->error);
    else if (db_affected(r) == 1000)
        prune(s);
}

static void prune(db_store *s)
{
    const char *params[] = {s->retention_days};
    query(s, SQL_PRUNE, 1, params, on_pruned, s);
}

static void on_prune_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    prune(w->data);
}

/* ================================================================== Life cycle */

db_store *db_store_new(struct ev_loop *loop, db *d, const db_store_options *o)
{
    db_store *s = calloc(1, sizeof *s);
    s->accounts.load = store_load;
    s->accounts.commit = store_commit;
    s->accounts.claims_wallets = true;
    s->accounts.load_page = store_load_page;
    s->loop = loop;
    s->db = d;
    s->opts = *o;
    ev_timer_init(&s->touch_timer, on_touch_timer, o->touch_flush_seconds, o->touch_flush_seconds);
    ev_timer_init(&s->refresh, on_refresh_timer, o->refresh_seconds, o->refresh_seconds);
    s->touch_timer.data = s->refresh.data = s;
    ev_timer_start(loop, &s->touch_timer);
    if (o->snapshot_retention_days > 0) {
        snprintf(s->retention_days, sizeof s->retention_days, "%d", o->snapshot_retention_days);
        ev_timer_init(&s->prune_timer, on_prune_timer, 1, 600);
        s->prune_timer.data = s;
        ev_timer_start(loop, &s->prune_timer);
    }
    return s;
}

void db_store_close(db_store *s)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    ev_timer_stop(s->loop, &s->touch_timer);
    ev_timer_stop(s->loop, &s->refresh);
    ev_timer_stop(s->loop, &s->prune_timer);
    flush_touches(s);
}

void db_store_free(db_store *s)
{
    if (!s)
        return;
    ev_timer_stop(s->loop, &s->touch_timer);
    ev_timer_stop(s->loop, &s->refresh);
    ev_timer_stop(s->loop, &s->prune_timer);
    free(s->touch_ids.text);
    free(s->touch_pools.text);
    free(s->touch_versions.text);
    free(s->touch_states.text);
    free(s);
}

account_store *db_store_accounts(db_store *s) { return &s->accounts; }

unsigned long long db_store_statements(const db_store *s) { return s->statements; }
