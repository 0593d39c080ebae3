/* What the status page (GET /) shows beyond the counters of metrics.h: the last awards, the
 * last poll failures and per-minute series of polls, failures and awards over the last hour,
 * in total and per pool.
 *
 * Fixed memory: rings of ACTIVITY_RECENT entries and ACTIVITY_MINUTES minute buckets, so a
 * busy engine or a pool failing every poll cannot grow it. Times are wall-clock seconds
 * (the page shows them as dates); a bucket remembers which minute it holds, so a minute with
 * no event reads as zero without any timer clearing it. */
#ifndef M2P_ACTIVITY_H
#define M2P_ACTIVITY_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define ACTIVITY_RECENT 50  /* awards and failures kept */
#define ACTIVITY_MINUTES 60 /* minutes of series */
#define ACTIVITY_POOLS 32   /* pools with their own series; more share only the total */
#define ACTIVITY_WHY 256    /* bytes of a failure's reason kept (cut on a UTF-8 boundary) */

typedef struct activity activity;

/* Seconds since the epoch; the default reads CLOCK_REALTIME. Tests inject their own. */
typedef double (*activity_clock)(void *user);

/* NULL when out of memory; every function below accepts NULL and then does nothing. */
activity *activity_new(void);
void activity_free(activity *a);
void activity_set_clock(activity *a, activity_clock clock, void *user);

void activity_poll(activity *a, const char *pool, bool success);
void activity_award(activity *a, const char *pool, int64_t player_id, double advc, double ap,
                    bool held);
void activity_failure(activity *a, const char *pool, int64_t player_id, const char *why);

/* Adds to `o`:
 *   "recent_awards": [{"time", "player_id", "pool", "advc", "ap", "held"}, ..] newest first
 *   "recent_errors": [{"time", "player_id", "pool", "error"}, ..]            newest first
 *   "series": {"step_seconds": 60, "start": epoch of the oldest minute, "polls": [60 ints],
 *              "failures": [..], "awards": [..] (paid), "held": [..], "pools": {name:
 *              {"polls", "failures", "awards", "held"}}}  oldest minute first, the current
 *              (partial) minute last. */
void activity_add_json(const activity *a, cJSON *o);

#endif
