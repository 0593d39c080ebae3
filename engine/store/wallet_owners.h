/* Which account owns a wallet on a pool, within one process: the rule of the in-memory store
 * (--accounts, --dry-run), where the first account activated (first in file order) keeps a
 * wallet. With the database the claims are durable instead (engine/migrations/
 * 004_wallet_claims.sql) and this table is not used.
 *
 * Keys are 64-bit hashes of (pool, canonical wallet), 16 bytes per account instead of a copy
 * of every wallet: the caller confirms that a recorded owner really holds the same wallet
 * (and is still active) before refusing anyone. Entries are never removed; a stale one is
 * simply overwritten by the next claimer. */
#ifndef M2P_WALLET_OWNERS_H
#define M2P_WALLET_OWNERS_H

#include <stdint.h>

#define WALLET_OWNER_NONE UINT32_MAX

typedef struct wallet_owners wallet_owners;

wallet_owners *wallet_owners_new(void);
void wallet_owners_free(wallet_owners *w);

/* The key of `canonical` on pool slot `pool`. */
uint64_t wallet_owners_key(unsigned pool, const char *canonical);

/* The account recorded for `key`, or WALLET_OWNER_NONE. */
uint32_t wallet_owners_get(const wallet_owners *w, uint64_t key);

/* Records `account` as the owner of `key` (replacing whoever was recorded). */
void wallet_owners_set(wallet_owners *w, uint64_t key, uint32_t account);

#endif
