/* Engine membership and account ownership (see membership.h). */
#include "membership.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const SQL_HEARTBEAT =
    "INSERT INTO m2p_engines (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET heartbeat = now()";
static const char *const SQL_LIVE =
    "SELECT id FROM m2p_engines WHERE heartbeat > now() - make_interval(secs => $1::float8)"
    " ORDER BY id";
static const char *const SQL_FORGET_DEAD =
    "DELETE FROM m2p_engines WHERE heartbeat < now() - interval '1 day'";
static const char *const SQL_LEAVE = "DELETE FROM m2p_engines WHERE id = $1";

struct membership {
    struct ev_loop *loop;
    db *db;
    char *id;
    char dead_after[32];
    ev_timer heartbeat;
    char **live; /* sorted engine ids, including this one */
    uint64_t *live_seeds;
    int n_live;
    bool known;
    bool leaving;
    unsigned ticks;
    void (*on_change)(void *);
    void *on_change_user;
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* A 64-bit mix so that nearby seeds and ids give unrelated scores. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

bool membership_owns(void *user, int64_t player_id, const char *pool)
{
    membership *m = user;
    if (!m->known || m->n_live <= 1)
        return true;
    uint64_t account = fnv1a(fnv1a(0xcbf29ce484222325ULL, &player_id, sizeof player_id), pool,
                             strlen(pool));
    int best = 0;
    uint64_t best_score = 0;
    for (int i = 0; i < m->n_live; i++) {
        uint64_t score = mix(account ^ m->live_seeds[i]);
        if (i == 0 || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return strcmp(m->live[best], m->id) == 0;
}

static void free_live(membership *m)
{
    for (int i = 0; i < m->n_live; i++)
        free(m->live[i]);
    free(m->live);
    free(m->live_seeds);
    m->live = NULL;
    m->live_seeds = NULL;
    m->n_live = 0;
}

static bool same_live(const membership *m, const db_result *r)
{
    if (r->rows != m->n_live)
        return false;
    for (int i = 0; i < r->rows; i++)
        if (strcmp(db_value(r, i, 0), m->live[i]) != 0)
            return false;
    return true;
}

static void on_live(void *user, const db_result *r)
{
    membership *m = user;
    if (m->leaving)
        return;
    if (!r->ok) {
        log_message(LOG_WARNING, "membership_failed", "%s", r->error);
        return; /* keep the last view: the database will come back */
    }
    if (m->known && same_live(m, r))
        return;
    free_live(m);
    m->n_live = r->rows;
    m->live = calloc((size_t)r->rows + 1, sizeof *m->live);
    m->live_seeds = calloc((size_t)r->rows + 1, sizeof *m->live_seeds);
    for (int i = 0; i < r->rows; i++) {
        m->live[i] = strdup(db_value(r, i, 0));
        m->live_seeds[i] = fnv1a(0xcbf29ce484222325ULL, m->live[i], strlen(m->live[i]));
    }
    m->known = true;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "engine_id", m->id);
    cJSON_AddNumberToObject(f, "live_engines", m->n_live);
    log_emit(LOG_INFO, "membership_changed", f);
    if (m->on_change)
        m->on_change(m->on_change_user);
}

static void on_heartbeat(void *user, const db_result *r)
{
    membership *m = user;
    if (m->leaving)
        return;
    if (!r->ok) {
        log_message(LOG_WARNING, "membership_failed", "%s", r->error);
        return;
    }
    const char *params[] = {m->dead_after};
    db_query(m->db, SQL_LIVE, 1, params, on_live, m);
}

static void ignore(void *user, const db_result *r)
{
    (void)user;
    (void)r;
}

static void beat(membership *m)
{
    const char *params[] = {m->id};
    db_query(m->db, SQL_HEARTBEAT, 1, params, on_heartbeat, m);
    if (m->ticks++ % 100 == 0)
        db_query(m->db, SQL_FORGET_DEAD, 0, NULL, ignore, m);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    beat(w->data);
}

membership *membership_new(struct ev_loop *loop, db *d, const char *engine_id,
                           double heartbeat_seconds, double dead_after_seconds)
{
    membership *m = calloc(1, sizeof *m);
    m->loop = loop;
    m->db = d;
    m->id = strdup(engine_id);
    snprintf(m->dead_after, sizeof m->dead_after, "%.3f", dead_after_seconds);
    ev_timer_init(&m->heartbeat, on_timer, heartbeat_seconds, heartbeat_seconds);
    m->heartbeat.data = m;
    ev_timer_start(loop, &m->heartbeat);
    beat(m);
    return m;
}

void membership_on_change(membership *m, void (*fn)(void *), void *user)
{
    m->on_change = fn;
    m->on_change_user = user;
}

void membership_leave(membership *m)
{
    if (!m || m->leaving)
        return;
    m->leaving = true;
    ev_timer_stop(m->loop, &m->heartbeat);
    const char *params[] = {m->id};
    db_query(m->db, SQL_LEAVE, 1, params, ignore, NULL);
}

void membership_free(membership *m)
{
    if (!m)
        return;
    ev_timer_stop(m->loop, &m->heartbeat);
    free_live(m);
    free(m->id);
    free(m);
}

int membership_live_count(const membership *m) { return m->n_live; }
const char *membership_engine_id(const membership *m) { return m->id; }
