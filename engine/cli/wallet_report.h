/* The operator's look at wallet ownership (docs/operations.md "Wallet ownership"): which
 * accounts the engine would refuse, and why, before or while it runs, for
 * `m2p-engine --check --accounts FILE` and `m2p-engine --check-wallets` (the database).
 *
 * It applies the running engine's rules without its side effects: the pool's wallet check
 * (script_wallet_check: "invalid wallet: <reason>"), then one owner per pool and canonical
 * wallet ("wallet already belongs to player N on POOL"):
 *   - players from a file: the first in file order keeps a wallet (engine/poll/poller.c's
 *     in-process rule; an entry that repeats a player_id replaces the earlier one's data at
 *     the earlier one's place, as poller_put_player does);
 *   - players from the database, the ones the engine polls (verified and active, per-pool
 *     wallets in m2p_player_wallets over players.wallet_address): the owner of a claim in
 *     m2p_wallet_claims while it holds (its owner's row still names the wallet as claimed,
 *     in any letter case; the owner may be inactive), otherwise the lowest player id among them that names the
 *     wallet in any letter case (m2p_claim_wallet's rule). Nothing is written: every
 *     statement runs in one READ ONLY transaction, and no migration is applied.
 * Only enabled pools whose script loaded are looked at.
 *
 * Output (stdout), per pool, then a summary; player-supplied text is printable ASCII, cut:
 *   wallets on testpool: 3 accounts, 2 refused
 *     refused: player 2 (player2) wallet "AVKQ...": wallet already belongs to player 1 on testpool
 *   wallets: 6 accounts on 2 pools (3 players from the database), 3 refused: 1 invalid,
 *   2 another player's                                                  (one line)
 */
#ifndef M2P_WALLET_REPORT_H
#define M2P_WALLET_REPORT_H

#include <stdio.h>

#include "script.h"

/* Exit status of the check when some account's wallet would be refused (and nothing else
 * failed: a broken script or unreadable players is 1). */
#define WALLET_REPORT_EXIT_REFUSED 4

/* Players from an --accounts file. Returns 0 (nothing refused), WALLET_REPORT_EXIT_REFUSED,
 * or 1 (the file cannot be read; the reason on `err`). */
int wallet_report_file(script_runtime *rt, const char *path, FILE *out, FILE *err);

/* Players from the database at `conninfo` (never printed with its password). Returns as
 * wallet_report_file; 1 also when DATABASE_URL is empty or the database cannot be read. */
int wallet_report_database(script_runtime *rt, const char *conninfo, FILE *out, FILE *err);

#endif
