/* Polling counters and the polling_cycle_complete event. */
#include "metrics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "activity.h"
#include "log.h"

/* Pool APIs answer in tens of milliseconds to seconds; POOL_REQUEST_TIMEOUT defaults to 10. */
const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                                0.25,  0.5,  1,     2.5,  5, 10};

/* Without memory for the activity the engine still counts; the status page shows less. */
void metrics_init(metrics *m)
{
    memset(m, 0, sizeof *m);
    m->activity = activity_new();
}

void metrics_free(metrics *m)
{
    for (size_t i = 0; i < m->n_pools; i++)
        free(m->pools[i].name);
    free(m->pools);
    activity_free(m->activity);
    memset(m, 0, sizeof *m);
}

pool_metrics *metrics_pool(metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n_pools; i++)
        if (strcmp(m->pools[i].name, name) == 0)
            return &m->pools[i];
    /* Pools are few and added rarely (start, reload); a fixed capacity keeps pointers stable. */
    if (!m->pools)
        m->pools = calloc(256, sizeof *m->pools);
    if (m->n_pools == 256)
        return &m->pools[255];
    pool_metrics *p = &m->pools[m->n_pools++];
    p->name = strdup(name);
    return p;
}

void metrics_record_poll(metrics *m, pool_metrics *pool, bool success, double response_ms)
{
    m->polls_total++;
    pool->requests++;
    activity_poll(m->activity, pool->name, success);
    if (success) {
        m->polls_successful++;
        pool->successes++;
    } else {
        m->cycle_failures++;
        pool->failures++;
    }
    if (response_ms >= 0) {
        pool->response_ms_total += response_ms;
        pool->timed_responses++;
        for (size_t i = 0; i < METRICS_LATENCY_BUCKETS; i++)
            if (response_ms / 1000.0 <= metrics_latency_bounds[i]) {
                pool->latency_buckets[i]++;
                break;
            }
    }
}

void metrics_record_award(metrics *m, pool_metrics *pool, int64_t player_id, double advc,
                          double ap, bool held)
{
    activity_award(m->activity, pool->name, player_id, advc, ap, held);
    if (held) {
        pool->awards_held++;
        return;
    }
    m->rewards_detected++;
    pool->awards++;
    pool->advc_awarded += advc;
    pool->ap_awarded += ap;
}

void metrics_record_failure(metrics *m, pool_metrics *pool, int64_t player_id, const char *why)
{
    activity_failure(m->activity, pool->name, player_id, why);
}

/* Pacing of one pool: present once the poller has scheduled it. */
static void add_pacing(cJSON *o, const pool_metrics *p)
{
    if (!p->scheduled)
        return;
    cJSON_AddNumberToObject(o, "accounts", (double)p->accounts);
    cJSON_AddNumberToObject(o, "effective_interval_seconds", p->effective_interval);
    if (p->max_interval <= 0)
        return;
    cJSON_AddNumberToObject(o, "max_interval_seconds", p->max_interval);
    if (p->capacity != SIZE_MAX)
        cJSON_AddNumberToObject(o, "accounts_per_egress", (double)p->capacity);
    cJSON_AddBoolToObject(o, "interval_exceeds_max", p->exceeds_max);
}

cJSON *metrics_to_json(const metrics *m)
{
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "polls_total", (double)m->polls_total);
    cJSON_AddNumberToObject(out, "polls_successful", (double)m->polls_successful);
    cJSON_AddNumberToObject(out, "rewards_detected", (double)m->rewards_detected);
    cJSON_AddNumberToObject(out, "script_reloads", (double)m->script_reloads);
    cJSON_AddNumberToObject(out, "script_reload_failures", (double)m->script_reload_failures);
    size_t refused = 0;
    for (size_t i = 0; i < m->n_pools; i++)
        refused += m->pools[i].wallets_refused;
    cJSON_AddNumberToObject(out, "wallets_refused", (double)refused);
    cJSON_AddNumberToObject(out, "player_entries", (double)m->player_entries);
    cJSON_AddNumberToObject(out, "account_entries", (double)m->account_entries);
    cJSON *pools = cJSON_AddObjectToObject(out, "pools");
    for (size_t i = 0; i < m->n_pools; i++) {
        const pool_metrics *p = &m->pools[i];
        cJSON *o = cJSON_AddObjectToObject(pools, p->name);
        cJSON_AddNumberToObject(o, "requests", (double)p->requests);
        cJSON_AddNumberToObject(o, "successes", (double)p->successes);
        cJSON_AddNumberToObject(o, "failures", (double)p->failures);
        cJSON_AddNumberToObject(o, "success_rate",
                                p->requests ? (double)p->successes / (double)p->requests : 0);
        cJSON_AddNumberToObject(o, "avg_response_time_ms",
                                p->timed_responses
                                    ? p->response_ms_total / (double)p->timed_responses
                                    : 0);
        cJSON_AddNumberToObject(o, "wallets_refused", (double)p->wallets_refused);
        add_pacing(o, p);
    }
    return out;
}

void metrics_log_cycle(metrics *m, size_t player_count, cJSON *extra)
{
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddNumberToObject(fields, "player_count", (double)player_count);
    cJSON_AddNumberToObject(fields, "failures", (double)m->cycle_failures);
    while (extra && extra->child) {
        cJSON *item = cJSON_DetachItemViaPointer(extra, extra->child);
        cJSON_AddItemToObject(fields, item->string, item);
    }
    cJSON_Delete(extra);
    cJSON_AddItemToObject(fields, "metrics", metrics_to_json(m));
    log_emit(LOG_INFO, "polling_cycle_complete", fields);
    m->cycle_failures = 0;
}
