/* The status page's activity (engine/poll/activity.h): the rings of recent awards and
 * failures wrap at ACTIVITY_RECENT newest first, the minute series roll over (an old minute
 * reads as zero, an hour-old bucket is reused), per-pool series, long reasons cut on a UTF-8
 * boundary, and the metrics.c recording functions feed it. */
#include <stdlib.h>
#include <string.h>

#include "activity.h"
#include "check.h"
#include "metrics.h"

static double fake_now;
static double fake_clock(void *user)
{
    (void)user;
    return fake_now;
}

static cJSON *to_json(const activity *a)
{
    cJSON *o = cJSON_CreateObject();
    activity_add_json(a, o);
    return o;
}

static double series_at(const cJSON *series, const char *kind, int index)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(series, kind);
    const cJSON *v = cJSON_GetArrayItem(arr, index);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_award_ring_wraps_newest_first(void)
{
    activity *a = activity_new();
    activity_set_clock(a, fake_clock, NULL);
    fake_now = 1000;
    for (int i = 1; i <= ACTIVITY_RECENT + 7; i++)
        activity_award(a, "zpool", i, i * 1.5, i * 0.25, i % 10 == 0);
    cJSON *o = to_json(a);
    const cJSON *awards = cJSON_GetObjectItemCaseSensitive(o, "recent_awards");
    CHECK(cJSON_GetArraySize(awards) == ACTIVITY_RECENT, "%d awards kept",
          cJSON_GetArraySize(awards));
    const cJSON *first = cJSON_GetArrayItem(awards, 0);
    const cJSON *last = cJSON_GetArrayItem(awards, ACTIVITY_RECENT - 1);
    CHECK(cJSON_GetObjectItem(first, "player_id")->valuedouble == ACTIVITY_RECENT + 7,
          "the newest award comes first");
    CHECK(cJSON_GetObjectItem(last, "player_id")->valuedouble == 8, "the oldest kept is 8");
    CHECK(cJSON_GetObjectItem(first, "advc")->valuedouble == (ACTIVITY_RECENT + 7) * 1.5 &&
              cJSON_GetObjectItem(first, "ap")->valuedouble == (ACTIVITY_RECENT + 7) * 0.25,
          "amounts kept");
    CHECK(strcmp(cJSON_GetObjectItem(first, "pool")->valuestring, "zpool") == 0, "pool kept");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(awards, 7), "held")),
          "award 50 (index 7) is held");
    CHECK(cJSON_GetObjectItem(first, "time")->valuedouble == 1000, "wall time of the award");
    const cJSON *s = cJSON_GetObjectItem(o, "series");
    int now = ACTIVITY_MINUTES - 1;
    CHECK(series_at(s, "awards", now) == 52 && series_at(s, "held", now) == 5,
          "52 paid and 5 held awards this minute: %g %g", series_at(s, "awards", now),
          series_at(s, "held", now));
    cJSON_Delete(o);
    activity_free(a);
}

static void test_failures_ring_and_long_reasons(void)
{
    activity *a = activity_new();
    activity_set_clock(a, fake_clock, NULL);
    fake_now = 5000;
    cJSON *o = to_json(a);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(o, "recent_errors")) == 0, "none yet");
    cJSON_Delete(o);
    /* 255 ASCII bytes then "é" (2 bytes): the cut must not keep half of it. */
    char why[400];
    memset(why, 'x', 255);
    strcpy(why + 255, "\xc3\xa9 and more");
    activity_failure(a, "cpu-pool", 7, why);
    for (int i = 0; i < ACTIVITY_RECENT * 3; i++)
        activity_failure(a, "rplant", 100 + i, "HTTP 500");
    activity_failure(a, "cpu-pool", 9, "timeout");
    o = to_json(a);
    const cJSON *errs = cJSON_GetObjectItem(o, "recent_errors");
    CHECK(cJSON_GetArraySize(errs) == ACTIVITY_RECENT, "%d kept", cJSON_GetArraySize(errs));
    const cJSON *first = cJSON_GetArrayItem(errs, 0);
    CHECK(strcmp(cJSON_GetObjectItem(first, "error")->valuestring, "timeout") == 0 &&
              cJSON_GetObjectItem(first, "player_id")->valuedouble == 9,
          "the newest failure first");
    cJSON_Delete(o);

    activity *b = activity_new();
    activity_failure(b, "cpu-pool", 7, why);
    o = to_json(b);
    const char *kept = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o,
                                                              "recent_errors"), 0),
                                           "error")->valuestring;
    CHECK(strlen(kept) == 255 && kept[254] == 'x', "cut before the 2-byte character: %zu",
          strlen(kept));
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "recent_errors"), 0),
                              "time")->valuedouble > 1.7e9,
          "the default clock is the wall clock");
    cJSON_Delete(o);
    activity_free(b);
    activity_free(a);
}

static void test_minutes_roll_over(void)
{
    activity *a = activity_new();
    activity_set_clock(a, fake_clock, NULL);
    fake_now = 60.0 * 1000000 + 5; /* 5 s into a minute */
    activity_poll(a, "zpool", true);
    activity_poll(a, "zpool", false);
    activity_poll(a, "rplant", true);
    fake_now += 60; /* the next minute */
    activity_poll(a, "zpool", true);
    cJSON *o = to_json(a);
    const cJSON *s = cJSON_GetObjectItem(o, "series");
    int now = ACTIVITY_MINUTES - 1;
    CHECK(cJSON_GetObjectItem(s, "start")->valuedouble == 60.0 * (1000001 - ACTIVITY_MINUTES + 1),
          "start is the oldest minute");
    CHECK(series_at(s, "polls", now) == 1 && series_at(s, "polls", now - 1) == 3 &&
              series_at(s, "failures", now - 1) == 1 && series_at(s, "failures", now) == 0,
          "this minute 1 poll, the last 3 with 1 failure");
    const cJSON *zp = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "pools"), "zpool");
    const cJSON *rp = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "pools"), "rplant");
    CHECK(series_at(zp, "polls", now - 1) == 2 && series_at(rp, "polls", now - 1) == 1 &&
              series_at(rp, "polls", now) == 0,
          "per pool series");
    cJSON_Delete(o);

    /* 59 minutes later the first minute is the oldest shown; one more and it is gone. */
    fake_now += 58 * 60;
    o = to_json(a);
    s = cJSON_GetObjectItem(o, "series");
    CHECK(series_at(s, "polls", 0) == 3 && series_at(s, "polls", 1) == 1, "still in the hour");
    cJSON_Delete(o);
    fake_now += 60;
    o = to_json(a);
    s = cJSON_GetObjectItem(o, "series");
    CHECK(series_at(s, "polls", 0) == 1 && series_at(s, "polls", now) == 0,
          "an hour-old minute reads as zero");
    cJSON_Delete(o);
    /* Its bucket is reused by a poll an hour later: counts start from zero. */
    activity_poll(a, "zpool", false);
    o = to_json(a);
    s = cJSON_GetObjectItem(o, "series");
    CHECK(series_at(s, "polls", now) == 1 && series_at(s, "failures", now) == 1,
          "a reused bucket starts at zero: %g", series_at(s, "polls", now));
    int sum = 0;
    for (int i = 0; i < ACTIVITY_MINUTES; i++)
        sum += (int)series_at(s, "polls", i);
    CHECK(sum == 2, "two polls in the last hour, not %d", sum);
    cJSON_Delete(o);
    activity_free(a);
}

static void test_many_pools_and_long_names(void)
{
    activity *a = activity_new();
    char name[128];
    for (int i = 0; i < ACTIVITY_POOLS + 5; i++) {
        snprintf(name, sizeof name, "pool-%d", i);
        activity_poll(a, name, true);
    }
    memset(name, 'p', 100);
    name[100] = '\0';
    activity_poll(a, name, true);
    cJSON *o = to_json(a);
    const cJSON *s = cJSON_GetObjectItem(o, "series");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(s, "pools")) == ACTIVITY_POOLS,
          "at most ACTIVITY_POOLS pool series");
    CHECK(series_at(s, "polls", ACTIVITY_MINUTES - 1) == ACTIVITY_POOLS + 6,
          "every poll in the total");
    cJSON_Delete(o);
    activity_free(a);
    /* NULL (out of memory at start) is accepted everywhere. */
    activity_poll(NULL, "x", true);
    activity_award(NULL, "x", 1, 1, 1, false);
    activity_failure(NULL, "x", 1, "y");
    o = cJSON_CreateObject();
    activity_add_json(NULL, o);
    CHECK(cJSON_GetArraySize(o) == 0, "nothing added without an activity");
    cJSON_Delete(o);
}

static void test_metrics_feed_the_activity(void)
{
    metrics m;
    metrics_init(&m);
    CHECK(m.activity != NULL, "metrics_init creates the activity");
    activity_set_clock(m.activity, fake_clock, NULL);
    fake_now = 120000;
    pool_metrics *p = metrics_pool(&m, "cpu-pool");
    metrics_record_poll(&m, p, false, 12);
    metrics_record_failure(&m, p, 42, "HTTP 500 from the pool");
    metrics_record_poll(&m, p, true, 8);
    metrics_record_award(&m, p, 43, 1.25, 2.5, false);
    cJSON *o = to_json(m.activity);
    const cJSON *err = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "recent_errors"), 0);
    const cJSON *aw = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "recent_awards"), 0);
    CHECK(err && cJSON_GetObjectItem(err, "player_id")->valuedouble == 42 &&
              strcmp(cJSON_GetObjectItem(err, "error")->valuestring, "HTTP 500 from the pool") ==
                  0 &&
              strcmp(cJSON_GetObjectItem(err, "pool")->valuestring, "cpu-pool") == 0,
          "the failure is recorded");
    CHECK(aw && cJSON_GetObjectItem(aw, "player_id")->valuedouble == 43 &&
              cJSON_GetObjectItem(aw, "advc")->valuedouble == 1.25 &&
              !cJSON_IsTrue(cJSON_GetObjectItem(aw, "held")),
          "the award is recorded");
    const cJSON *s = cJSON_GetObjectItem(o, "series");
    CHECK(series_at(s, "polls", ACTIVITY_MINUTES - 1) == 2 &&
              series_at(s, "failures", ACTIVITY_MINUTES - 1) == 1 &&
              series_at(s, "awards", ACTIVITY_MINUTES - 1) == 1,
          "the series count the polls, failure and award");
    cJSON_Delete(o);
    metrics_free(&m);
}

int main(void)
{
    test_award_ring_wraps_newest_first();
    test_failures_ring_and_long_reasons();
    test_minutes_roll_over();
    test_many_pools_and_long_names();
    test_metrics_feed_the_activity();
    return check_summary();
}
