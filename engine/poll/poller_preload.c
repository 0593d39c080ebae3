/* Account state in pages: a started engine reads the stored state of its accounts a page of
 * a pool at a time (account_store.load_page) instead of one statement per account before each
 * first poll, which made the first cycle after a restart several times slower than polling
 * without a database.
 *
 * The first poll of an account that is not loaded starts a page: that account and the
 * not-loaded accounts of the same pool on both sides of it (in account order, alternately
 * below and above, up to PAGE_MAX), which are applied as the page's answer comes, before
 * they are due. Both sides, because the order in which accounts fall due is not account
 * order: `--once` pops its heap of equal due times roughly from the last account down, the
 * service spreads them over the interval. A poll of an account that is in a page still being
 * read waits for that page. After the page, an account the page did not settle (its wallet's
 * claim is not yet its player's exactly as given, the read failed, or it was never in a page)
 * goes through the per-account load, which claims the wallet as before: who owns a wallet is
 * decided exactly as without pages.
 *
 * Reading ahead: when a page's answer settled most of its accounts (a restart, not a first
 * start), the next page of the pool is read at once, continuing from where that page stopped
 * on each side, while its accounts are being polled; so the polls rarely wait for a round
 * trip. At most one such page per pool is in flight. It counts as in flight for the poller
 * (as a recheck does): a stopping or `--once` engine finishes only after its answer.
 *
 * Accounts applied by a page are not in flight; a change of the account meanwhile (removed,
 * new wallet, lost ownership) bumps its epoch, and its entry is then ignored. */
#include "poller_internal.h"

#include <stdlib.h>

#define PAGE_MAX 2000             /* accounts per statement: a few hundred kB of keys */
#define SCAN_MAX (PAGE_MAX * 8)   /* accounts looked at per page, so late pages stay cheap */

typedef struct page_entry {
    uint32_t account, epoch;
    poll_ctx *waiting; /* the account's first poll, waiting for this page; NULL: none */
} page_entry;

struct preload_page {
    poller *p;
    struct preload_page *next; /* the poller's pages being read */
    uint16_t slot;
    bool ahead;      /* read ahead (no poll waited for it to start): counted in in_flight */
    size_t below;    /* the next account to look at below the page; 0: none left */
    size_t above;    /* the next account to look at above it; n_accounts: none left */
    size_t n;
    page_entry entries[];
};

/* An account a page may take: active, scheduled (not parked), not loaded, not polling, not
 * in another page, and already checked by this generation with a wallet that is its own
 * canonical form (the others are rare and go through their own load). */
static bool takes(const poller *p, uint32_t id, uint16_t slot)
{
    const account *a = &p->accounts[id];
    return a->slot == slot && a->active && !a->loaded && !a->in_flight && !a->preloading &&
           !a->page_missed && a->refused == REFUSED_NONE && a->checked_gen == p->gen_seq &&
           !a->canonical_differs;
}

/* Keys point into the players: they are read by load_page() during the call only. */
static void add_entry(preload_page *pg, account_key *keys, const poller *p, uint32_t id,
                      const char *canonical)
{
    page_entry *e = &pg->entries[pg->n];
    account_key *k = &keys[pg->n++];
    e->account = id;
    e->epoch = p->accounts[id].epoch;
    e->waiting = NULL;
    k->player_id = player_of(p, id)->id;
    k->wallet = wallet_of(p, id);
    k->canonical = canonical;
}

static void on_page(void *ctx, bool ok, const stored_account *stored);

static preload_page *page_new(poller *p, uint16_t slot, size_t below, size_t above)
{
    preload_page *pg = calloc(1, sizeof *pg + PAGE_MAX * sizeof pg->entries[0]);
    pg->p = p;
    pg->slot = slot;
    pg->below = below;
    pg->above = above;
    return pg;
}

/* The accounts a page takes from its two sides, one from each in turn (a side that has only
 * loaded accounts left stops at its share of SCAN_MAX); where each side stopped is kept for
 * the page read ahead after this one. */
static void collect(poller *p, preload_page *pg, account_key *keys)
{
    size_t n = p->n_accounts, scanned_below = 0, scanned_above = 0;
    while (pg->n < PAGE_MAX) {
        bool more_below = pg->below > 0 && scanned_below < SCAN_MAX / 2;
        bool more_above = pg->above < n && scanned_above < SCAN_MAX / 2;
        if (!more_below && !more_above)
            break;
        if (more_below) {
            uint32_t id = (uint32_t)--pg->below;
            scanned_below++;
            if (takes(p, id, pg->slot))
                add_entry(pg, keys, p, id, wallet_of(p, id));
        }
        if (more_above && pg->n < PAGE_MAX) {
            uint32_t id = (uint32_t)pg->above++;
            scanned_above++;
            if (takes(p, id, pg->slot))
                add_entry(pg, keys, p, id, wallet_of(p, id));
        }
    }
}

/* Sends the page, or frees it and returns false when it has fewer than `min` accounts. */
static bool send_page(poller *p, preload_page *pg, account_key *keys, size_t min)
{
    if (pg->n < min) {
        free(pg);
        return false;
    }
    for (size_t i = 0; i < pg->n; i++)
        p->accounts[pg->entries[i].account].preloading = true;
    if (pg->ahead)
        p->in_flight++;
    pg->next = p->preloads;
    p->preloads = pg;
    /* on_page may run within the call (the statement could not be queued): pg is then gone. */
    p->store->load_page(p->store, p->slots[pg->slot].name, keys, pg->n, on_page, pg);
    return true;
}

static bool reading_ahead(const poller *p, uint16_t slot)
{
    for (const preload_page *pg = p->preloads; pg; pg = pg->next)
        if (pg->ahead && pg->slot == slot)
            return true;
    return false;
}

/* The next page of the pool, from where `done` stopped on each side, when `done` settled
 * most of its accounts: pages that settle little (a first start: no wallet claimed yet) are
 * not worth reading before a poll asks. */
static void read_ahead(poller *p, const preload_page *done, size_t settled)
{
    if (p->stopping || settled * 2 < done->n || reading_ahead(p, done->slot))
        return;
    account_key *keys = calloc(PAGE_MAX, sizeof *keys);
    preload_page *pg = page_new(p, done->slot, done->below, done->above);
    pg->ahead = true;
    collect(p, pg, keys);
    send_page(p, pg, keys, 1);
    free(keys);
}

/* The page's answer for one account that is still as it was when the page was made. One it
 * does not settle is not put in a page again (a first start, where no wallet is claimed yet,
 * would otherwise read every account in page after page). */
static void apply(poller *p, const page_entry *e, const stored_account *stored)
{
    account *a = &p->accounts[e->account];
    if (!a->active || a->epoch != e->epoch || a->loaded)
        return;
    if (!stored || !stored->owner)
        a->page_missed = true;
    else if (poller_owned(p, e->account, stored)) /* its player's: accepted */
        poller_adopt_stored(p, e->account, stored);
}

static size_t count_settled(const preload_page *pg, bool ok, const stored_account *stored)
{
    size_t settled = 0;
    for (size_t i = 0; ok && i < pg->n; i++)
        settled += stored[i].owner != 0;
    return settled;
}

static void unlink_page(poller *p, preload_page *pg)
{
    for (preload_page **at = &p->preloads; *at; at = &(*at)->next)
        if (*at == pg) {
            *at = pg->next;
            return;
        }
}

static void on_page(void *ctx, bool ok, const stored_account *stored)
{
    preload_page *pg = ctx;
    poller *p = pg->p;
    unlink_page(p, pg);
    for (size_t i = 0; i < pg->n; i++) {
        p->accounts[pg->entries[i].account].preloading = false;
        apply(p, &pg->entries[i], ok ? &stored[i] : NULL);
    }
    read_ahead(p, pg, count_settled(pg, ok, stored)); /* before the polls resume: they pump */
    /* Resumed polls may finish at once and start others: every account is settled first. */
    for (size_t i = 0; i < pg->n; i++)
        if (pg->entries[i].waiting)
            poller_load_resume(pg->entries[i].waiting);
    bool ahead = pg->ahead;
    free(pg);
    if (ahead) {
        p->in_flight--;
        poller_check_finished(p);
    }
}

/* A poll of an account in a page being read waits for it (few pages are read at a time). */
static bool wait_for_page(poller *p, poll_ctx *c)
{
    for (preload_page *pg = p->preloads; pg; pg = pg->next)
        for (size_t i = 0; i < pg->n; i++)
            if (pg->entries[i].account == c->account && !pg->entries[i].waiting) {
                pg->entries[i].waiting = c;
                return true;
            }
    return false;
}

bool poller_preload(poller *p, poll_ctx *c, const char *canonical)
{
    if (!p->store->load_page || p->accounts[c->account].page_missed)
        return false;
    if (p->accounts[c->account].preloading)
        return wait_for_page(p, c);
    account_key *keys = calloc(PAGE_MAX, sizeof *keys);
    preload_page *pg = page_new(p, p->accounts[c->account].slot, c->account, c->account + 1);
    add_entry(pg, keys, p, c->account, canonical);
    pg->entries[0].waiting = c;
    collect(p, pg, keys);
    /* A page of one is the account's own load, which also claims. */
    bool sent = send_page(p, pg, keys, 2);
    free(keys);
    return sent;
}
