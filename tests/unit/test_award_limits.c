/* Award limits (engine/poll/award_limits.h): which awards of a poll are held for review. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "award_limits.h"
#include "check.h"

static award A(double advc) { return (award){.advc = advc, .ap = advc * 100}; }

static const award_limits DEFAULTS = {1000, 100};

static void test_ceiling_is_per_poll(void)
{
    award_history none = {0, 0};
    hold_reason why[3];
    award one[] = {A(1000)};
    CHECK(award_limits_check(&DEFAULTS, &none, one, 1, why) == 0 && why[0] == HOLD_NONE,
          "exactly MAX_AWARD_ADVC is not above it");
    award over[] = {A(1000.00000001)};
    CHECK(award_limits_check(&DEFAULTS, &none, over, 1, why) == 1 && why[0] == HOLD_CEILING,
          "one satoshi above the ceiling is held");
    /* Three payouts of one poll (zpool tx ids) that add up to more: all of them are held. */
    award three[] = {A(400), A(400), A(400)};
    CHECK(award_limits_check(&DEFAULTS, &none, three, 3, why) == 3, "the poll's sum counts");
    CHECK(why[0] == HOLD_CEILING && why[1] == HOLD_CEILING && why[2] == HOLD_CEILING,
          "every award of that poll is held");
    award exact[] = {A(500.1), A(499.9)};
    CHECK(award_limits_check(&DEFAULTS, &none, exact, 2, why) == 0,
          "a sum equal to the ceiling is not held (no binary rounding surprise)");
    award_limits off = {0, 100};
    award huge[] = {A(600000)}; /* 6e7 AP: still below AWARD_EXACT_LIMIT */
    CHECK(award_limits_check(&off, &none, huge, 1, why) == 0, "MAX_AWARD_ADVC=0: no ceiling");
}

static void test_factor_needs_five_awards(void)
{
    award_limits limits = {0, 100};
    hold_reason why[2];
    award big[] = {A(500)};
    award_history four = {4, 1};
    CHECK(award_limits_check(&limits, &four, big, 1, why) == 0,
          "with four earlier awards the factor rule does not apply yet");
    award_history five = {5, 1};
    CHECK(award_limits_check(&limits, &five, big, 1, why) == 1 && why[0] == HOLD_FACTOR,
          "500 > 100 x 1 once the account has five awards");
    award at[] = {A(100)};
    CHECK(award_limits_check(&limits, &five, at, 1, why) == 0, "exactly 100 x is not above");
    /* Only the award that breaks the rule is held; a normal one in the same poll is paid. */
    award mixed[] = {A(2), A(101)};
    CHECK(award_limits_check(&limits, &five, mixed, 2, why) == 1, "one of two held");
    CHECK(why[0] == HOLD_NONE && why[1] == HOLD_FACTOR, "the large one: %d %d", why[0], why[1]);
    award_limits off = {0, 0};
    CHECK(award_limits_check(&off, &five, big, 1, why) == 0, "MAX_AWARD_FACTOR=0: off");
}

static void test_ceiling_wins_when_both_apply(void)
{
    award_history five = {5, 1};
    hold_reason why[1];
    award huge[] = {A(5000)};
    CHECK(award_limits_check(&DEFAULTS, &five, huge, 1, why) == 1 && why[0] == HOLD_CEILING,
          "the ceiling is named first");
}

/* The exact range (award_limits.h): held below no setting, at 2^26 on both sides, for ADVC
 * and AP alike, and whenever the rules say they could not compute the award exactly. */
static void test_exact_range(void)
{
    award_limits off = {0, 0};
    award_history five = {5, 1};
    hold_reason why[1];
    award below[] = {{.advc = 67108863.99999999, .ap = 1}};
    CHECK(award_limits_check(&off, &five, below, 1, why) == 0, "the last amount below 2^26");
    award at[] = {{.advc = 67108864, .ap = 1}};
    CHECK(award_limits_check(&off, &five, at, 1, why) == 1 && why[0] == HOLD_EXACT_RANGE,
          "2^26 ADVC is held");
    award ap_below[] = {{.advc = 1, .ap = 67108863.99999999}};
    CHECK(award_limits_check(&off, &five, ap_below, 1, why) == 0, "AP just below 2^26");
    award ap_at[] = {{.advc = 1, .ap = 67108864}};
    CHECK(award_limits_check(&off, &five, ap_at, 1, why) == 1 && why[0] == HOLD_EXACT_RANGE,
          "2^26 AP is held");
    /* Issue 12: 1e19 ADVC in one poll, with both limits switched off. */
    award absurd[] = {A(1e19)};
    CHECK(award_limits_check(&off, &five, absurd, 1, why) == 1 && why[0] == HOLD_EXACT_RANGE,
          "1e19 ADVC is held whatever the settings");
    CHECK(award_limits_check(&DEFAULTS, &five, absurd, 1, why) == 1 && why[0] == HOLD_EXACT_RANGE,
          "and named as exact_range before the ceiling");
    award nan[] = {{.advc = NAN, .ap = 1}};
    CHECK(award_limits_check(&off, &five, nan, 1, why) == 1, "NaN is held");
    award inexact[] = {{.advc = 2.11111109, .ap = 211.111109, .inexact = true}};
    CHECK(award_limits_check(&off, &five, inexact, 1, why) == 1 && why[0] == HOLD_EXACT_RANGE,
          "a small award the rules marked inexact (its counter was beyond 2^26) is held");
    char text[256];
    hold_reason_explain(HOLD_EXACT_RANGE, &off, &five, 2.11111109, 2.11111109, text, sizeof text);
    CHECK_CONTAINS(text, "exact_range");
    CHECK_CONTAINS(text, "67108864");
    CHECK(strcmp(hold_reason_setting(HOLD_EXACT_RANGE), "exact_range") == 0, "its name");
}

static void test_history_counts_paid_awards_only(void)
{
    award_history h = {0, 0};
    award paid[] = {A(2), A(3)};
    award_history_add(&h, paid, 2, NULL);
    CHECK(h.count == 2 && h.largest == 3, "two paid: count %u largest %g", h.count, h.largest);
    award mixed[] = {A(1), A(9000)};
    hold_reason why[] = {HOLD_NONE, HOLD_CEILING};
    award_history_add(&h, mixed, 2, why);
    CHECK(h.count == 3 && h.largest == 3,
          "a held award neither counts nor raises the bar: count %u largest %g", h.count,
          h.largest);
    award_history full = {UINT32_MAX, 1};
    award_history_add(&full, paid, 1, NULL);
    CHECK(full.count == UINT32_MAX, "the count saturates");
}

static void test_explanations(void)
{
    char text[256];
    award_history five = {5, 1.5};
    hold_reason_explain(HOLD_CEILING, &DEFAULTS, &five, 1500, 1500, text, sizeof text);
    CHECK_CONTAINS(text, "MAX_AWARD_ADVC");
    CHECK_CONTAINS(text, "1500.00000000 ADVC");
    CHECK_CONTAINS(text, "1000");
    hold_reason_explain(HOLD_FACTOR, &DEFAULTS, &five, 200, 200, text, sizeof text);
    CHECK_CONTAINS(text, "MAX_AWARD_FACTOR");
    CHECK_CONTAINS(text, "100 times");
    CHECK_CONTAINS(text, "1.50000000 ADVC of 5");
    CHECK(strcmp(hold_reason_setting(HOLD_FACTOR), "MAX_AWARD_FACTOR") == 0, "setting name");
    CHECK(hold_reason_setting(HOLD_NONE) == NULL, "no setting for a paid award");
}

int main(void)
{
    test_ceiling_is_per_poll();
    test_factor_needs_five_awards();
    test_ceiling_wins_when_both_apply();
    test_exact_range();
    test_history_counts_paid_awards_only();
    test_explanations();
    return check_summary();
}
