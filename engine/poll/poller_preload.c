/* Account state in pages: a started engine reads the stored state of its accounts a page of
 * a pool at a time (account_store.load_page) instead of one statement per account before each
 * first poll, which made the first cycle after a restart several times slower than polling
 * without a database.
 *
 * The first poll of an account that is not loaded starts a page: that account and the next
 * not-loaded accounts of the same pool (in account order, up to PAGE_MAX), which are applied
 * as the page's answer comes, before they are due. A poll of an account that is in a page
 * still being read waits for that page. After the page, an account the page did not settle
 * (its wallet's claim is not yet its player's exactly as given, the read failed, or it was
 * never in a page) goes through the per-account load, which claims the wallet as before:
 * who owns a wallet is decided exactly as without pages.
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

/* The waiting poll's account first, then the next accounts of its pool that a page takes. */
static preload_page *collect(poller *p, poll_ctx *c, const char *canonical, account_key *keys)
{
    preload_page *pg = calloc(1, sizeof *pg + PAGE_MAX * sizeof pg->entries[0]);
    pg->p = p;
    uint16_t slot = p->accounts[c->account].slot;
    add_entry(pg, keys, p, c->account, canonical);
    pg->entries[0].waiting = c;
    size_t n = p->n_accounts, scanned = 0;
    for (size_t id = (c->account + 1) % n; id != c->account && scanned < SCAN_MAX &&
                                           pg->n < PAGE_MAX;
         id = (id + 1) % n, scanned++)
        if (takes(p, (uint32_t)id, slot))
            add_entry(pg, keys, p, (uint32_t)id, wallet_of(p, (uint32_t)id));
    return pg;
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
    /* Resumed polls may finish at once and start others: every account is settled first. */
    for (size_t i = 0; i < pg->n; i++)
        if (pg->entries[i].waiting)
            poller_load_resume(pg->entries[i].waiting);
    free(pg);
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
    preload_page *pg = collect(p, c, canonical, keys);
    if (pg->n < 2) { /* a page of one is the account's own load, which also claims */
        free(keys);
        free(pg);
        return false;
    }
    for (size_t i = 0; i < pg->n; i++)
        p->accounts[pg->entries[i].account].preloading = true;
    pg->next = p->preloads;
    p->preloads = pg;
    /* on_page may run within the call (the statement could not be queued): pg is then gone. */
    p->store->load_page(p->store, p->slots[p->accounts[c->account].slot].name, keys, pg->n,
                        on_page, pg);
    free(keys);
    return true;
}
