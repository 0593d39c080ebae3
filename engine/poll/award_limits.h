/* Award limits: which of a poll's awards look too large to pay without a human look.
 *
 * A unit mistake at a pool (rplant's switch to atomic units made balances 1e12 times off)
 * turns into an award thousands of times larger than anything the account ever earned. Such
 * awards are not paid: they are stored as held awards (docs/operations.md, "Held awards")
 * until an operator releases or rejects them. The decision is made here, in C, before the
 * commit, so every store (the database, the memory store of --accounts/--dry-run) applies it
 * the same way.
 *
 * Two limits (settings MAX_AWARD_ADVC and MAX_AWARD_FACTOR; 0 switches one off):
 *   - ceiling: when the ADVC of one poll's awards for an account add up to more than
 *     MAX_AWARD_ADVC, every award of that poll is held;
 *   - factor: once the account has at least AWARD_LIMITS_MIN_HISTORY paid awards, an award of
 *     more than MAX_AWARD_FACTOR times the largest of them is held.
 * "Paid awards" are the account's normal and released ones; held and rejected ones never
 * count, so a mistake cannot raise the bar for the next one.
 *
 * And one rule no setting switches off, exact range: an award is held when its ADVC or AP is
 * not below AWARD_EXACT_LIMIT, or the rules marked it inexact (a counter or amount beyond
 * that limit: scripts/rewards.lua). Below 2^26 the double nearest to an amount of 8 decimals
 * prints back as that amount with "%.8f"; from 2^26 on it may be off by a unit of 1e-8, so
 * such an award is held for a human rather than paid with a figure that may be wrong
 * (docs/reliability.md, "Money exact to 1e-8"). 1e19 ADVC in one poll is held by this rule
 * whatever MAX_AWARD_ADVC says.
 */
#ifndef M2P_AWARD_LIMITS_H
#define M2P_AWARD_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "script.h"

/* The factor rule needs this many paid awards to know what "normal" is for the account. */
#define AWARD_LIMITS_MIN_HISTORY 5

/* 2^26 = 67,108,864: the first amount where the spacing of doubles (1.5e-8) exceeds 1e-8.
 * The same limit as m2p.EXACT_LIMIT in engine/script/prelude.lua. */
#define AWARD_EXACT_LIMIT 67108864.0

typedef struct award_limits {
    double max_advc;   /* MAX_AWARD_ADVC; 0 = no ceiling */
    double max_factor; /* MAX_AWARD_FACTOR; 0 = off */
} award_limits;

/* What the account has been paid so far: 12 bytes, kept with each account in memory. */
typedef struct award_history {
    uint32_t count;  /* paid awards (saturates) */
    double largest;  /* largest paid award, ADVC */
} award_history;

typedef enum hold_reason {
    HOLD_NONE = 0,
    HOLD_CEILING, /* MAX_AWARD_ADVC */
    HOLD_FACTOR,  /* MAX_AWARD_FACTOR */
    HOLD_EXACT_RANGE, /* beyond AWARD_EXACT_LIMIT: not exact to 1e-8 */
} hold_reason;

/* Decides for each of the n awards of one poll: why[i] = HOLD_NONE (pay it) or the limit it
 * broke. `history` is the account's state before this poll. Returns how many are held. */
size_t award_limits_check(const award_limits *limits, const award_history *history,
                          const award *awards, size_t n, hold_reason *why);

/* Adds the paid (not held) awards of a committed poll to `history`. */
void award_history_add(award_history *history, const award *awards, size_t n,
                       const hold_reason *why);

/* The setting a reason refers to: "MAX_AWARD_ADVC", "MAX_AWARD_FACTOR", "exact_range" (the
 * rule without a setting; NULL for none). */
const char *hold_reason_setting(hold_reason why);

/* A sentence for logs and the held award's row, e.g. "MAX_AWARD_ADVC: this poll's awards add
 * up to 1500.00000000 ADVC, above 1000". */
void hold_reason_explain(hold_reason why, const award_limits *limits,
                         const award_history *history, double poll_advc, double award_advc,
                         char *buf, size_t len);

#endif
