/* Pacing (see poller_internal.h for how the poller's files fit).
 *
 * A pool declares in limits.max_interval how stale its data may get (zpool lists only the
 * last 24 hours of payouts). When its accounts cannot all be polled that often from this
 * engine's egress, payouts are missed for good: the engine says so at start and on reload,
 * whenever it starts or stops being so, and in every polling_cycle_complete.
 *
 * poller.c calls poller_check_pacing at start and reload (after the pool_schedule lines)
 * and every polling cycle. */
#include "poller_internal.h"

#include <stdio.h>

#include "log.h"
#include "scheduler.h"

static void pacing_status(poller *p, uint16_t s, sched_pool_status *st)
{
    scheduler_pool_status(p->sched, s, st);
    pool_metrics *m = p->slots[s].metrics;
    m->scheduled = true;
    m->accounts = st->accounts;
    m->effective_interval = st->effective_interval;
    m->max_interval = st->max_interval;
    m->capacity = st->capacity;
    m->exceeds_max = st->exceeds_max;
}

static void warn_interval_exceeds_max(poller *p, uint16_t s, const sched_pool_status *st)
{
    const script_pool *sp = script_pool_at(p->gen->rt, (size_t)p->slots[s].script_index);
    char message[512];
    if (st->capacity == 0)
        snprintf(message, sizeof message,
                 "POLL_INTERVAL_SECONDS or the pool's limits.interval is longer than its "
                 "max_interval of %.0f s: every account misses payouts",
                 st->max_interval);
    else
        snprintf(message, sizeof message,
                 "%zu accounts need %.0f s per round, longer than the pool's max_interval of "
                 "%.0f s: payouts are missed for good. One egress address serves %zu accounts "
                 "within max_interval; spread the accounts over more egress addresses (the "
                 "pool's proxy or interface settings, or more engines each with its own "
                 "egress): see docs/operations.md, Scheduling",
                 st->accounts, st->effective_interval, st->max_interval, st->capacity);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "pool", p->slots[s].name);
    cJSON_AddNumberToObject(f, "accounts", (double)st->accounts);
    cJSON_AddNumberToObject(f, "effective_interval_seconds", st->effective_interval);
    cJSON_AddNumberToObject(f, "max_interval_seconds", st->max_interval);
    cJSON_AddNumberToObject(f, "per_second", sp->limits.per_second);
    cJSON_AddNumberToObject(f, "accounts_per_egress", (double)st->capacity);
    cJSON_AddStringToObject(f, "message", message);
    log_emit(LOG_WARNING, "pool_interval_exceeds_max", f);
}

/* `again`: at start and reload, a pool over its max_interval is said even if it was before. */
void poller_check_pacing(poller *p, bool again)
{
    for (uint16_t s = 0; s < p->n_slots; s++) {
        pool_slot *slot = &p->slots[s];
        if (slot->script_index < 0) {
            slot->metrics->scheduled = false;
            continue;
        }
        sched_pool_status st;
        pacing_status(p, s, &st);
        if (st.exceeds_max && (again || !slot->pacing_warned)) {
            warn_interval_exceeds_max(p, s, &st);
        } else if (!st.exceeds_max && slot->pacing_warned) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "pool", slot->name);
            cJSON_AddNumberToObject(f, "accounts", (double)st.accounts);
            cJSON_AddNumberToObject(f, "effective_interval_seconds", st.effective_interval);
            cJSON_AddNumberToObject(f, "max_interval_seconds", st.max_interval);
            log_emit(LOG_INFO, "pool_interval_within_max", f);
        }
        slot->pacing_warned = st.exceeds_max;
    }
}
