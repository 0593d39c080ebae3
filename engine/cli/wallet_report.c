/* Which accounts the engine would refuse, and why (see wallet_report.h).
 *
 * One pass per enabled pool over the players in the order ownership is decided (file order,
 * or player id for the database): the pool's wallet check gives the canonical wallet, then
 * the owner is a holding claim's (database) or the first player naming that canonical
 * wallet. The per-pool table of first owners is engine/store/wallet_owners.c's, keyed by hash and
 * confirmed against the canonical text, as the poller confirms its own.
 */
#include "wallet_report.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "cli_output.h"
#include "db.h"
#include "players.h"
#include "wallet_owners.h"

#define CANONICAL_MAX 1024 /* the pipeline refuses wallets over 256 bytes */
#define WALLET_PRINT_MAX 100
#define USERNAME_PRINT_MAX 64
#define REASON_PRINT_MAX 300

/* The players the engine polls, by id, a page at a time (engine/store/db_store.c's query). */
#define PLAYERS_PAGE 5000
#define PLAYERS_PAGE_TEXT "5000"
#define PLAYER_COLUMNS "SELECT p.id, coalesce(p.username, ''), p.wallet_address, "
#define PLAYER_FILTER                                                                       \
    " FROM players p WHERE p.verified AND p.active AND p.id > $1::int"                     \
    " ORDER BY p.id LIMIT " PLAYERS_PAGE_TEXT
static const char *const SQL_PLAYERS =
    PLAYER_COLUMNS
    "coalesce((SELECT json_object_agg(w.pool_name, w.wallet ORDER BY w.pool_name)"
    "          FROM m2p_player_wallets w WHERE w.player_id = p.id)::text, '{}')" PLAYER_FILTER;
/* A database the engine never migrated (the old service's): no per-pool wallets yet. */
static const char *const SQL_PLAYERS_NO_WALLETS = PLAYER_COLUMNS "'{}'" PLAYER_FILTER;

static const char *const SQL_SCHEMA =
    "SELECT to_regclass('m2p_player_wallets') IS NOT NULL,"
    " to_regclass('m2p_wallet_claims') IS NOT NULL";

/* One pool's claims that hold (m2p_claim_wallet keeps them while the owner's row names the
 * wallet as claimed, in any letter case: an owner who retypes its bech32 address in upper
 * case keeps it), in byte order of the canonical wallet for a binary search. */
static const char *const SQL_CLAIMS =
    "SELECT c.wallet, c.player_id FROM m2p_wallet_claims c WHERE c.pool_name = $1"
    " AND lower(m2p_player_wallet(c.player_id, c.pool_name))"
    "     IS NOT DISTINCT FROM lower(c.wallet_as_given)"
    " ORDER BY c.wallet COLLATE \"C\"";

typedef struct refusal {
    size_t player; /* index into report.players */
    char *reason;
} refusal;

typedef struct report {
    script_runtime *rt;
    FILE *out, *err;
    const player *const *players; /* in the order ownership is decided */
    size_t n_players;
    const char *source; /* "the database" or the file's path */
    PGconn *conn;       /* the database's claims; NULL for a file */
    const char *conninfo;
    size_t pools, accounts, invalid, duplicates;
} report;

/* Player-supplied text as printable ASCII (anything else, and '"' inside quotes, is '?'), at
 * most `max` characters, "..." marking a cut: a hostile wallet or name can neither forge
 * output lines nor flood them. */
static void put_text(FILE *out, const char *text, size_t max, bool quoted)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t n = 0; *s && n < max; s++, n++)
        fputc(*s >= 0x20 && *s < 0x7f && !(quoted && *s == '"') ? *s : '?', out);
    if (*s)
        fputs("...", out);
}

/* ================================================================== Ownership */

/* The owner of `canonical` by one of the pool's holding claims (rows of SQL_CLAIMS). */
static bool claim_owner(const PGresult *claims, const char *canonical, int64_t *owner)
{
    int lo = 0, hi = claims ? PQntuples(claims) : 0;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int cmp = strcmp(PQgetvalue(claims, mid, 0), canonical);
        if (cmp == 0) {
            *owner = strtoll(PQgetvalue(claims, mid, 1), NULL, 10);
            return true;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static void add_refusal(refusal **list, size_t *n, size_t player, const char *reason)
{
    *list = realloc(*list, (*n + 1) * sizeof **list);
    (*list)[*n].player = player;
    (*list)[(*n)++].reason = strdup(reason);
}

static void print_pool(const report *r, const script_pool *sp, size_t accounts,
                       const refusal *refused, size_t n_refused)
{
    fputs("wallets on ", r->out);
    put_text(r->out, sp->name, 64, false);
    fprintf(r->out, ": %zu account%s, %zu refused\n", accounts, accounts == 1 ? "" : "s",
            n_refused);
    for (size_t i = 0; i < n_refused; i++) {
        const player *pl = r->players[refused[i].player];
        fprintf(r->out, "  refused: player %lld", (long long)pl->id);
        if (pl->username && pl->username[0]) {
            fputs(" (", r->out);
            put_text(r->out, pl->username, USERNAME_PRINT_MAX, false);
            fputc(')', r->out);
        }
        fputs(" wallet \"", r->out);
        put_text(r->out, player_wallet_for(pl, sp->name), WALLET_PRINT_MAX, true);
        fputs("\": ", r->out);
        put_text(r->out, refused[i].reason, REASON_PRINT_MAX, false);
        fputc('\n', r->out);
    }
}

/* One pool: 0, or 1 when its claims cannot be read. */
static int check_pool(report *r, int pool_index, const script_pool *sp)
{
    PGresult *claims = NULL;
    if (r->conn) {
        const char *params[] = {sp->name};
        claims = PQexecParams(r->conn, SQL_CLAIMS, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(claims) != PGRES_TUPLES_OK) {
            cli_db_error(r->err, "error: ", r->conninfo, "reading m2p_wallet_claims",
                         PQresultErrorMessage(claims));
            PQclear(claims);
            return 1;
        }
    }
    size_t n = r->n_players, accounts = 0, n_refused = 0;
    char **canonical = calloc(n ? n : 1, sizeof *canonical); /* NULL: no account, invalid */
    refusal *refused = NULL;
    wallet_owners *first = wallet_owners_new();
    for (size_t i = 0; i < n; i++) {
        const player *pl = r->players[i];
        const char *wallet = player_wallet_for(pl, sp->name);
        if (!wallet)
            continue; /* no account on this pool */
        accounts++;
        char canon[CANONICAL_MAX], why[512];
        if (script_wallet_check(r->rt, pool_index, wallet, canon, sizeof canon, why,
                                sizeof why) != 0) {
            add_refusal(&refused, &n_refused, i, why);
            r->invalid++;
            continue;
        }
        canonical[i] = strdup(canon);
        int64_t owner = pl->id;
        if (!claim_owner(claims, canon, &owner)) {
            uint64_t key = wallet_owners_key(0, canon);
            uint32_t earlier = wallet_owners_get(first, key);
            if (earlier != WALLET_OWNER_NONE && strcmp(canonical[earlier], canon) == 0)
                owner = r->players[earlier]->id;
            else
                wallet_owners_set(first, key, (uint32_t)i);
        }
        if (owner != pl->id) {
            char reason[160];
            snprintf(reason, sizeof reason, "wallet already belongs to player %lld on %s",
                     (long long)owner, sp->name);
            add_refusal(&refused, &n_refused, i, reason);
            r->duplicates++;
        }
    }
    print_pool(r, sp, accounts, refused, n_refused);
    r->pools++;
    r->accounts += accounts;
    for (size_t i = 0; i < n_refused; i++)
        free(refused[i].reason);
    free(refused);
    for (size_t i = 0; i < n; i++)
        free(canonical[i]);
    free(canonical);
    wallet_owners_free(first);
    PQclear(claims);
    return 0;
}

static int run_report(report *r)
{
    for (size_t i = 0; i < script_pool_count(r->rt); i++) {
        const script_pool *sp = script_pool_at(r->rt, i);
        if (sp->enabled && check_pool(r, (int)i, sp) != 0)
            return 1;
    }
    size_t refused = r->invalid + r->duplicates;
    fprintf(r->out, "wallets: %zu account%s on %zu pool%s (%zu player%s from ", r->accounts,
            r->accounts == 1 ? "" : "s", r->pools, r->pools == 1 ? "" : "s", r->n_players,
            r->n_players == 1 ? "" : "s");
    put_text(r->out, r->source, 200, false);
    if (refused)
        fprintf(r->out, "), %zu refused: %zu invalid, %zu another player's\n", refused,
                r->invalid, r->duplicates);
    else
        fputs("), none refused\n", r->out);
    fflush(r->out);
    return refused ? WALLET_REPORT_EXIT_REFUSED : 0;
}

/* ======================================================================= A file */

typedef struct id_pos {
    int64_t id;
    size_t pos;
} id_pos;

static int by_id_then_pos(const void *a, const void *b)
{
    const id_pos *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The players as the engine holds them after putting the file's entries in order: an entry
 * that repeats a player_id replaces the earlier one's data at the earlier one's place. */
static const player **file_order(const player_list *list, size_t *n_out)
{
    size_t n = list->n;
    id_pos *ids = malloc((n ? n : 1) * sizeof *ids);
    const player **at = calloc(n ? n : 1, sizeof *at);
    for (size_t i = 0; i < n; i++)
        ids[i] = (id_pos){list->items[i].id, i};
    qsort(ids, n, sizeof *ids, by_id_then_pos);
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && ids[b].id == ids[a].id; b++)
            ;
        at[ids[a].pos] = &list->items[ids[b - 1].pos];
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (at[i])
            at[kept++] = at[i];
    free(ids);
    *n_out = kept;
    return at;
}

int wallet_report_file(script_runtime *rt, const char *path, FILE *out, FILE *err)
{
    player_list list;
    char why[1024];
    if (players_load_file(path, &list, why, sizeof why) != 0) {
        fprintf(err, "error: %s\n", why);
        return 1;
    }
    size_t n;
    const player **view = file_order(&list, &n);
    report r = {.rt = rt, .out = out, .err = err, .players = view, .n_players = n,
                .source = path};
    int status = run_report(&r);
    free(view);
    player_list_free(&list);
    return status;
}

/* =================================================================== The database */

static bool exec_ok(report *r, const char *sql, const char *what)
{
    PGresult *res = PQexecParams(r->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        cli_db_error(r->err, "error: ", r->conninfo, what, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

/* One row of SQL_PLAYERS as a player (engine/store/db_store.c's row_player). */
static void row_player(const PGresult *res, int row, player *out)
{
    memset(out, 0, sizeof *out);
    out->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    out->username = strdup(PQgetvalue(res, row, 1));
    out->wallet = PQgetisnull(res, row, 2) ? NULL : strdup(PQgetvalue(res, row, 2));
    player_set_wallets_json(out, PQgetvalue(res, row, 3));
}

/* Every verified, active player, by id. false: the reason was printed. */
static bool load_players(report *r, bool per_pool_wallets, player_list *list)
{
    size_t cap = 0;
    char after[24] = "0";
    for (;;) {
        const char *params[] = {after};
        PGresult *res = PQexecParams(r->conn, per_pool_wallets ? SQL_PLAYERS
                                                                : SQL_PLAYERS_NO_WALLETS,
                                     1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cli_db_error(r->err, "error: ", r->conninfo, "reading the players",
                         PQresultErrorMessage(res));
            PQclear(res);
            return false;
        }
        int rows = PQntuples(res);
        if (list->n + (size_t)rows > cap) {
            cap = (list->n + (size_t)rows) * 2;
            list->items = realloc(list->items, cap * sizeof *list->items);
        }
        for (int i = 0; i < rows; i++)
            row_player(res, i, &list->items[list->n++]);
        if (rows > 0)
            snprintf(after, sizeof after, "%lld", (long long)list->items[list->n - 1].id);
        PQclear(res);
        if (rows < PLAYERS_PAGE)
            return true;
    }
}

/* Which of the engine's tables exist: a database it never migrated has neither. */
static bool read_schema(report *r, bool *per_pool_wallets, bool *claims)
{
    PGresult *res = PQexecParams(r->conn, SQL_SCHEMA, 0, NULL, NULL, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok) {
        *per_pool_wallets = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        *claims = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    } else {
        cli_db_error(r->err, "error: ", r->conninfo, "reading the schema",
                     PQresultErrorMessage(res));
    }
    PQclear(res);
    return ok;
}

int wallet_report_database(script_runtime *rt, const char *conninfo, FILE *out, FILE *err)
{
    if (!conninfo || !conninfo[0]) {
        fputs("error: DATABASE_URL is not set: --check-wallets reads the players from the "
              "database (--check --accounts FILE checks a file's)\n", err);
        return 1;
    }
    char why[1024];
    PGconn *conn = db_connect_blocking(conninfo, why, sizeof why);
    if (!conn) {
        fprintf(err, "error: cannot connect to the database: %s\n", why);
        return 1;
    }
    report r = {.rt = rt, .out = out, .err = err, .source = "the database", .conn = conn,
                .conninfo = conninfo};
    player_list list = {NULL, 0};
    bool per_pool_wallets = false, claims = false;
    int status = 1;
    /* One snapshot for the players and every pool's claims; READ ONLY: nothing is claimed. */
    if (exec_ok(&r, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting a read") &&
        read_schema(&r, &per_pool_wallets, &claims) &&
        load_players(&r, per_pool_wallets, &list)) {
        const player **view = malloc((list.n ? list.n : 1) * sizeof *view);
        for (size_t i = 0; i < list.n; i++)
            view[i] = &list.items[i];
        r.players = view;
        r.n_players = list.n;
        if (!claims)
            r.conn = NULL; /* no claims table yet: nobody holds a wallet */
        status = run_report(&r);
        r.conn = conn;
        free(view);
    }
    PGresult *end = PQexecParams(conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
    PQclear(end);
    PQfinish(conn);
    player_list_free(&list);
    return status;
}
