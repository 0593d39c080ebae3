/* Players and their wallets: who is polled on which pool.
 *
 * The account source for --dry-run is a JSON file (players_load_file); the database layer
 * fills the same structure from the players table. */
#ifndef M2P_PLAYERS_H
#define M2P_PLAYERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct pool_wallet {
    char *pool;
    char *wallet;
} pool_wallet;

typedef struct player {
    int64_t id;
    char *username; /* may be NULL */
    char *wallet;   /* default wallet for every pool; may be NULL */
    pool_wallet *wallets; /* per-pool overrides, e.g. a BTC address for zpool */
    size_t n_wallets;
} player;

typedef struct player_list {
    player *items;
    size_t n;
} player_list;

/* Reads `[{"player_id": 1, "username": "p1", "wallet": "...", "wallets": {"zpool": "..."}}]`.
 * Every entry is checked; an error names the file, the entry and the field. */
int players_load_file(const char *path, player_list *out, char *err, size_t errlen);

/* The two ways players_load_file reads a file, for tests. The stream reads one entry at a
 * time (the peak is one entry's tree, not the whole file's); it returns -2, having decided
 * nothing, for a file whose start is not plain ('[' after a byte order mark and whitespace)
 * or that is not a regular file, and players_load_file then uses the tree: the whole file
 * as one cJSON tree, the reference the stream answers like. */
int players_load_stream(const char *path, player_list *out, char *err, size_t errlen);
int players_load_file_tree(const char *path, player_list *out, char *err, size_t errlen);

/* Sets p's per-pool wallets from the database's JSON object {"pool": "wallet", ...}
 * (entries that are not strings are ignored). */
void player_set_wallets_json(player *p, const char *json);

/* The wallet to poll for `pool`: the override if any, else the default (NULL: none). */
const char *player_wallet_for(const player *p, const char *pool);

void player_list_free(player_list *list);

/* Frees what the entries own, not the array itself. */
void player_list_free_items(player_list *list);

#endif
