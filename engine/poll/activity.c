/* Recent awards, recent failures and per-minute series for the status page (activity.h). */
#include "activity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_NAME 64 /* a longer pool name counts in the total series only */

typedef enum { S_POLLS, S_FAILURES, S_AWARDS, S_HELD, S_KINDS } series_kind;
static const char *const kind_names[S_KINDS] = {"polls", "failures", "awards", "held"};

typedef struct bucket {
    int64_t minute; /* minutes since the epoch this bucket counts; -1: never used */
    uint32_t n[S_KINDS];
} bucket;

typedef struct series {
    char pool[POOL_NAME]; /* "" for the total */
    bucket b[ACTIVITY_MINUTES];
} series;

typedef struct award_entry {
    double time;
    int64_t player_id;
    char pool[POOL_NAME];
    double advc, ap;
    bool held;
} award_entry;

typedef struct failure_entry {
    double time;
    int64_t player_id;
    char pool[POOL_NAME];
    char why[ACTIVITY_WHY];
} failure_entry;

struct activity {
    activity_clock clock;
    void *clock_user;
    award_entry awards[ACTIVITY_RECENT];
    failure_entry failures[ACTIVITY_RECENT];
    size_t n_awards, n_failures; /* ever recorded: the next slot is n % ACTIVITY_RECENT */
    series total;
    series pools[ACTIVITY_POOLS];
    size_t n_pools;
};

static double wall_clock(void *user)
{
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void series_init(series *s)
{
    for (size_t i = 0; i < ACTIVITY_MINUTES; i++)
        s->b[i].minute = -1;
}

activity *activity_new(void)
{
    activity *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->clock = wall_clock;
    series_init(&a->total);
    for (size_t i = 0; i < ACTIVITY_POOLS; i++)
        series_init(&a->pools[i]);
    return a;
}

void activity_free(activity *a) { free(a); }

void activity_set_clock(activity *a, activity_clock clock, void *user)
{
    if (!a)
        return;
    a->clock = clock ? clock : wall_clock;
    a->clock_user = user;
}

static int64_t minute_of(double t) { return (int64_t)floor(t / 60.0); }

/* Copies at most dstlen-1 bytes, never ending inside a UTF-8 sequence (a cut sequence would
 * make the JSON invalid UTF-8). */
static void copy_text(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src ? src : "");
    if (n >= dstlen) {
        n = dstlen - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The series of `pool`, created on first use; NULL when the table is full or the name long. */
static series *pool_series(activity *a, const char *pool)
{
    if (!pool || strlen(pool) >= POOL_NAME)
        return NULL;
    for (size_t i = 0; i < a->n_pools; i++)
        if (strcmp(a->pools[i].pool, pool) == 0)
            return &a->pools[i];
    if (a->n_pools == ACTIVITY_POOLS)
        return NULL;
    series *s = &a->pools[a->n_pools++];
    copy_text(s->pool, sizeof s->pool, pool);
    return s;
}

static void series_count(series *s, int64_t minute, series_kind kind)
{
    if (!s)
        return;
    bucket *b = &s->b[(uint64_t)minute % ACTIVITY_MINUTES];
    if (b->minute != minute) {
        memset(b, 0, sizeof *b);
        b->minute = minute;
    }
    if (b->n[kind] < UINT32_MAX)
        b->n[kind]++;
}

static void count(activity *a, const char *pool, series_kind kind, double now)
{
    int64_t minute = minute_of(now);
    series_count(&a->total, minute, kind);
    series_count(pool_series(a, pool), minute, kind);
}

void activity_poll(activity *a, const char *pool, bool success)
{
    if (!a)
        return;
    double now = a->clock(a->clock_user);
    count(a, pool, S_POLLS, now);
    if (!success)
        count(a, pool, S_FAILURES, now);
}

void activity_award(activity *a, const char *pool, int64_t player_id, double advc, double ap,
                    bool held)
{
    if (!a)
        return;
    double now = a->clock(a->clock_user);
    count(a, pool, held ? S_HELD : S_AWARDS, now);
    award_entry *e = &a->awards[a->n_awards++ % ACTIVITY_RECENT];
    *e = (award_entry){.time = now, .player_id = player_id, .advc = advc, .ap = ap, .held = held};
    copy_text(e->pool, sizeof e->pool, pool);
}

void activity_failure(activity *a, const char *pool, int64_t player_id, const char *why)
{
    if (!a)
        return;
    failure_entry *e = &a->failures[a->n_failures++ % ACTIVITY_RECENT];
    e->time = a->clock(a->clock_user);
    e->player_id = player_id;
    copy_text(e->pool, sizeof e->pool, pool);
    copy_text(e->why, sizeof e->why, why);
}

/* ===================================================================== JSON */

/* Index of the i-th newest of n recorded entries in a ring of ACTIVITY_RECENT. */
static size_t newest(size_t n, size_t i) { return (n - 1 - i) % ACTIVITY_RECENT; }

static size_t kept(size_t n) { return n < ACTIVITY_RECENT ? n : ACTIVITY_RECENT; }

static cJSON *awards_json(const activity *a)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < kept(a->n_awards); i++) {
        const award_entry *e = &a->awards[newest(a->n_awards, i)];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "time", e->time);
        cJSON_AddNumberToObject(o, "player_id", (double)e->player_id);
        cJSON_AddStringToObject(o, "pool", e->pool);
        cJSON_AddNumberToObject(o, "advc", e->advc);
        cJSON_AddNumberToObject(o, "ap", e->ap);
        cJSON_AddBoolToObject(o, "held", e->held);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *failures_json(const activity *a)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < kept(a->n_failures); i++) {
        const failure_entry *e = &a->failures[newest(a->n_failures, i)];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "time", e->time);
        cJSON_AddNumberToObject(o, "player_id", (double)e->player_id);
        cJSON_AddStringToObject(o, "pool", e->pool);
        cJSON_AddStringToObject(o, "error", e->why);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* The counts of `kind` for the ACTIVITY_MINUTES minutes ending with `now_minute`. */
static cJSON *series_json(const series *s, series_kind kind, int64_t now_minute)
{
    cJSON *arr = cJSON_CreateArray();
    for (int64_t m = now_minute - ACTIVITY_MINUTES + 1; m <= now_minute; m++) {
        const bucket *b = &s->b[(uint64_t)m % ACTIVITY_MINUTES];
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(b->minute == m ? b->n[kind] : 0));
    }
    return arr;
}

static void add_series(cJSON *o, const series *s, int64_t now_minute)
{
    for (size_t k = 0; k < S_KINDS; k++)
        cJSON_AddItemToObject(o, kind_names[k], series_json(s, (series_kind)k, now_minute));
}

void activity_add_json(const activity *a, cJSON *o)
{
    if (!a)
        return;
    cJSON_AddItemToObject(o, "recent_awards", awards_json(a));
    cJSON_AddItemToObject(o, "recent_errors", failures_json(a));
    int64_t now_minute = minute_of(a->clock(a->clock_user));
    cJSON *s = cJSON_AddObjectToObject(o, "series");
    cJSON_AddNumberToObject(s, "step_seconds", 60);
    cJSON_AddNumberToObject(s, "start", (double)(now_minute - ACTIVITY_MINUTES + 1) * 60.0);
    add_series(s, &a->total, now_minute);
    cJSON *pools = cJSON_AddObjectToObject(s, "pools");
    for (size_t i = 0; i < a->n_pools; i++)
        add_series(cJSON_AddObjectToObject(pools, a->pools[i].pool), &a->pools[i], now_minute);
}
