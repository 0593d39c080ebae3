/* Database statistics for the admin endpoint (see db_stats.h). */
#include "db_stats.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Row 1: the held awards (sink NULL). Then one row per sink of $1 (a JSON array of names):
 * its delivery rows still pending, plus the unsettled outbox rows its worker has not seen
 * yet (no delivery row for the sink: m2p_see_outbox adds them at the next claim). least()
 * skips NULLs, so an empty side does not hide the other's oldest row. */
static const char STATS_SQL[] =
    "SELECT NULL::text, count(*)::bigint, NULL::double precision"
    "  FROM m2p_held_awards WHERE status = 'held' "
    "UNION ALL "
    "SELECT s.name, d.n + o.n,"
    "       coalesce(extract(epoch FROM now() - least(d.oldest, o.oldest)), 0)::double precision"
    "  FROM jsonb_array_elements_text($1::jsonb) AS s(name)"
    " CROSS JOIN LATERAL (SELECT count(*) AS n, min(p.created_at) AS oldest"
    "                       FROM m2p_deliveries p"
    "                      WHERE p.sink = s.name AND p.delivered_at IS NULL"
    "                        AND p.expired_at IS NULL) d"
    " CROSS JOIN LATERAL (SELECT count(*) AS n, min(x.created_at) AS oldest"
    "                       FROM m2p_outbox x"
    "                      WHERE x.delivered_at IS NULL"
    "                        AND NOT EXISTS (SELECT 1 FROM m2p_deliveries e"
    "                                         WHERE e.outbox_id = x.id"
    "                                           AND e.sink = s.name)) o";

typedef struct sink_row {
    char *name;
    long long depth;
    double oldest_age;
} sink_row;

struct db_stats {
    struct ev_loop *loop;
    db *db;
    ev_timer timer;
    char *sinks_json;
    sink_row *sinks;
    size_t n_sinks;
    long long held;
    bool known, pending, failing, stopped;
};

static sink_row *find_sink(db_stats *s, const char *name)
{
    for (size_t i = 0; i < s->n_sinks; i++)
        if (strcmp(s->sinks[i].name, name) == 0)
            return &s->sinks[i];
    return NULL;
}

static void take_rows(db_stats *s, const db_result *r)
{
    for (int row = 0; row < r->rows; row++) {
        if (db_is_null(r, row, 0)) {
            s->held = strtoll(db_value(r, row, 1), NULL, 10);
            continue;
        }
        sink_row *k = find_sink(s, db_value(r, row, 0));
        if (!k)
            continue;
        k->depth = strtoll(db_value(r, row, 1), NULL, 10);
        k->oldest_age = strtod(db_value(r, row, 2), NULL);
        if (k->oldest_age < 0)
            k->oldest_age = 0; /* clocks of several engines' sessions: never a negative age */
    }
}

static void on_stats(void *user, const db_result *r)
{
    db_stats *s = user;
    s->pending = false;
    if (r->ok) {
        take_rows(s, r);
        s->known = true;
        s->failing = false;
        return;
    }
    if (!s->failing && !s->stopped)
        log_message(LOG_WARNING, "database_stats_failed",
                    "outbox and held-award statistics not read (kept from the last read): %s",
                    r->error);
    s->failing = true;
}

static void query(db_stats *s)
{
    if (s->pending || s->stopped)
        return;
    const char *params[] = {s->sinks_json};
    if (db_query(s->db, STATS_SQL, 1, params, on_stats, s) == 0)
        s->pending = true;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    query(w->data);
}

static char *names_json(const char *const *sinks, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(sinks[i]));
    char *text = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return text;
}

db_stats *db_stats_new(struct ev_loop *loop, db *d, const char *const *sinks, size_t n,
                       double interval)
{
    db_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->db = d;
    s->sinks_json = names_json(sinks, n);
    s->sinks = calloc(n ? n : 1, sizeof *s->sinks);
    if (!s->sinks_json || !s->sinks) {
        db_stats_free(s);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        s->sinks[i].name = strdup(sinks[i]);
        if (!s->sinks[i].name) {
            db_stats_free(s);
            return NULL;
        }
        s->n_sinks++;
    }
    ev_timer_init(&s->timer, on_timer, interval, interval);
    s->timer.data = s;
    ev_timer_start(loop, &s->timer);
    query(s);
    return s;
}

void db_stats_stop(db_stats *s)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    ev_timer_stop(s->loop, &s->timer);
}

void db_stats_free(db_stats *s)
{
    if (!s)
        return;
    db_stats_stop(s);
    for (size_t i = 0; i < s->n_sinks; i++)
        free(s->sinks[i].name);
    free(s->sinks);
    free(s->sinks_json);
    free(s);
}

bool db_stats_known(const db_stats *s) { return s && s->known; }

long long db_stats_held_awaiting_release(const db_stats *s) { return s ? s->held : 0; }

size_t db_stats_sink_count(const db_stats *s) { return s ? s->n_sinks : 0; }

db_stats_sink db_stats_sink_at(const db_stats *s, size_t i)
{
    const sink_row *k = &s->sinks[i];
    return (db_stats_sink){k->name, k->depth, k->oldest_age};
}

cJSON *db_stats_json(const db_stats *s)
{
    if (!db_stats_known(s))
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "held_awaiting_release", (double)s->held);
    cJSON *sinks = cJSON_AddObjectToObject(o, "sinks");
    for (size_t i = 0; i < s->n_sinks; i++) {
        cJSON *k = cJSON_AddObjectToObject(sinks, s->sinks[i].name);
        cJSON_AddNumberToObject(k, "depth", (double)s->sinks[i].depth);
        cJSON_AddNumberToObject(k, "oldest_age_seconds", s->sinks[i].oldest_age);
    }
    return o;
}
