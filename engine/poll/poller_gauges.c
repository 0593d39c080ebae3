/* The gauges of GET /metrics and /status that no poll updates by itself (see
 * poller_internal.h for how the poller's files fit): per pool the circuit breaker's state and
 * the scheduler lag, copied from the scheduler, and the accounts tracked and owned, counted
 * from the players and accounts.
 *
 * Tracked: a present player names a wallet for an enabled pool (whichever engine polls it).
 * Owned: of those, the accounts this engine is active for (membership decides with several
 * engines); parked (refused) accounts are owned but not scheduled (m2p_accounts). */
#include "poller_internal.h"

#include "scheduler.h"

#define COUNT_EVERY 1.0 /* seconds: the count walks every player, a scrape storm must not */

static void count_accounts(poller *p)
{
    for (uint16_t s = 0; s < p->n_slots; s++)
        p->slots[s].metrics->accounts_tracked = p->slots[s].metrics->accounts_owned = 0;
    for (size_t i = 0; i < p->n_players; i++) {
        const player_entry *e = &p->players[i];
        if (!e->present)
            continue;
        for (uint16_t s = 0; s < p->n_slots; s++)
            if (p->slots[s].script_index >= 0 && player_wallet_for(&e->p, p->slots[s].name))
                p->slots[s].metrics->accounts_tracked++;
    }
    for (size_t id = 0; id < p->n_accounts; id++)
        if (p->accounts[id].active)
            p->slots[p->accounts[id].slot].metrics->accounts_owned++;
}

void poller_refresh_gauges(poller *p)
{
    for (uint16_t s = 0; s < p->n_slots; s++) {
        sched_pool_status st;
        scheduler_pool_status(p->sched, s, &st);
        pool_metrics *m = p->slots[s].metrics;
        m->breaker = st.breaker;
        scheduler_pool_lag(p->sched, s, &m->lag);
    }
    double now = ev_now(p->loop);
    if (p->gauges_counted_at > 0 && now - p->gauges_counted_at < COUNT_EVERY)
        return;
    p->gauges_counted_at = now;
    count_accounts(p);
}
