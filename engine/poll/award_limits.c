/* Award limits (see award_limits.h). */
#include "award_limits.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

/* Amounts are rounded to 8 decimals, but their sum in binary floating point may land a hair
 * above an exact limit (500.1 + 499.9): "above" means by more than half of the last place. */
#define HALF_UNIT 5e-9

static double poll_total(const award *awards, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += awards[i].advc;
    return sum;
}

static bool above_ceiling(const award_limits *limits, double poll_advc)
{
    return limits->max_advc > 0 && poll_advc > limits->max_advc + HALF_UNIT;
}

static bool above_factor(const award_limits *limits, const award_history *history, double advc)
{
    return limits->max_factor > 0 && history->count >= AWARD_LIMITS_MIN_HISTORY &&
           advc > limits->max_factor * history->largest + HALF_UNIT;
}

/* Written as "not below" so that NaN is held too (the contract checks refuse it before). */
static bool beyond_exact_range(const award *a)
{
    return a->inexact || !(fabs(a->advc) < AWARD_EXACT_LIMIT) ||
           !(fabs(a->ap) < AWARD_EXACT_LIMIT);
}

size_t award_limits_check(const award_limits *limits, const award_history *history,
                          const award *awards, size_t n, hold_reason *why)
{
    bool ceiling = above_ceiling(limits, poll_total(awards, n));
    size_t held = 0;
    for (size_t i = 0; i < n; i++) {
        why[i] = beyond_exact_range(&awards[i])                 ? HOLD_EXACT_RANGE
                 : ceiling                                       ? HOLD_CEILING
                 : above_factor(limits, history, awards[i].advc) ? HOLD_FACTOR
                                                                 : HOLD_NONE;
        held += why[i] != HOLD_NONE;
    }
    return held;
}

void award_history_add(award_history *history, const award *awards, size_t n,
                       const hold_reason *why)
{
    for (size_t i = 0; i < n; i++) {
        if (why && why[i] != HOLD_NONE)
            continue;
        if (history->count < UINT32_MAX)
            history->count++;
        if (awards[i].advc > history->largest)
            history->largest = awards[i].advc;
    }
}

const char *hold_reason_setting(hold_reason why)
{
    switch (why) {
    case HOLD_CEILING: return "MAX_AWARD_ADVC";
    case HOLD_FACTOR: return "MAX_AWARD_FACTOR";
    case HOLD_EXACT_RANGE: return "exact_range";
    default: return NULL;
    }
}

void hold_reason_explain(hold_reason why, const award_limits *limits,
                         const award_history *history, double poll_advc, double award_advc,
                         char *buf, size_t len)
{
    if (why == HOLD_CEILING)
        snprintf(buf, len, "MAX_AWARD_ADVC: this poll's awards add up to %.8f ADVC, above %.8g",
                 poll_advc, limits->max_advc);
    else if (why == HOLD_FACTOR)
        snprintf(buf, len,
                 "MAX_AWARD_FACTOR: %.8f ADVC is more than %.8g times the account's largest "
                 "earlier award (%.8f ADVC of %u)",
                 award_advc, limits->max_factor, history->largest, (unsigned)history->count);
    else if (why == HOLD_EXACT_RANGE)
        snprintf(buf, len,
                 "exact_range: %.8f ADVC, its AP or a pool amount it comes from is not below "
                 "%.0f, where amounts are not exact to 1e-8: the figure may be off",
                 award_advc, AWARD_EXACT_LIMIT);
    else
        snprintf(buf, len, "not held");
}
