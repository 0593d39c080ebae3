/* Wallet refusals (see poller_internal.h for how the poller's files fit).
 *
 * An active account whose wallet the pool's wallet check refuses, or whose wallet belongs to
 * another player on that pool, is parked: out of the scheduler, never near request building
 * or HTTP. It is said once (wallet_refused) per change of the players row; a reload or a
 * re-check logs again only when the outcome changes. Invalid wallets wait for a new row or a
 * new script generation; another player's wallet is re-checked now and then, quietly, so it
 * is picked up once its owner has moved on. Who owns a wallet: the store decides when it
 * claims wallets (the database, durable and shared by every engine); otherwise the first
 * account activated in this process keeps it.
 *
 * poller.c calls in at activation (poller_admit), before each poll (poller_may_poll), with
 * each load (poller_owned), on reload (poller_recheck_all_refused) and every polling cycle
 * (poller_recheck_duplicates). */
#include "poller_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scheduler.h"
#include "wallet_owners.h"

#define RECHECKS_PER_CYCLE 1000 /* refused duplicates re-checked per polling cycle, at most */

/* Keeps the counters of the cycle summary in step with the account's refusal. */
void poller_set_refusal(poller *p, account *a, uint8_t kind)
{
    pool_metrics *m = p->slots[a->slot].metrics;
    if ((a->refused != REFUSED_NONE) != (kind != REFUSED_NONE)) {
        if (kind != REFUSED_NONE)
            m->wallets_refused++;
        else
            m->wallets_refused--;
    }
    if ((a->refused == REFUSED_DUPLICATE) != (kind == REFUSED_DUPLICATE)) {
        if (kind == REFUSED_DUPLICATE)
            p->refused_duplicates++;
        else
            p->refused_duplicates--;
    }
    a->refused = kind;
}

static uint32_t outcome_hash(const char *text)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++)
        h = (h ^ *s) * 16777619u;
    return h ? h : 1;
}

/* A wallet is the player's text, and a refusal's reason may quote it: printable ASCII only,
 * at most `max` characters ("..." marks a cut), so a hostile one can neither forge log lines
 * nor flood them (cJSON escapes what is left). */
static void add_text_field(cJSON *f, const char *name, const char *value, size_t max)
{
    char text[320];
    size_t n = 0;
    if (max > sizeof text - 4)
        max = sizeof text - 4;
    for (const unsigned char *s = (const unsigned char *)value; *s && n < max; s++)
        text[n++] = *s >= 0x20 && *s < 0x7f ? (char)*s : '?';
    if (value[n]) {
        memcpy(text + n, "...", 3);
        n += 3;
    }
    text[n] = '\0';
    cJSON_AddStringToObject(f, name, text);
}

static void refuse(poller *p, uint32_t id, uint8_t kind, const char *reason)
{
    account *a = &p->accounts[id];
    scheduler_remove(p->sched, id);
    poller_set_refusal(p, a, kind);
    a->loaded = false;
    uint32_t h = outcome_hash(reason);
    if (h == a->refusal_logged)
        return;
    a->refusal_logged = h;
    cJSON *f = poller_account_fields(p, id);
    add_text_field(f, "wallet", wallet_of(p, id), 100);
    add_text_field(f, "reason", reason, 300);
    log_emit(LOG_WARNING, "wallet_refused", f);
}

static void refuse_duplicate(poller *p, uint32_t id, int64_t owner)
{
    char reason[160];
    snprintf(reason, sizeof reason, "wallet already belongs to player %lld on %s",
             (long long)owner, p->slots[p->accounts[id].slot].name);
    refuse(p, id, REFUSED_DUPLICATE, reason);
}

/* The account's wallet is its own and valid again after a refusal was logged: say so. */
static void accept(poller *p, uint32_t id)
{
    account *a = &p->accounts[id];
    poller_set_refusal(p, a, REFUSED_NONE);
    if (!a->refusal_logged)
        return;
    a->refusal_logged = 0;
    cJSON *f = poller_account_fields(p, id);
    add_text_field(f, "wallet", wallet_of(p, id), 100);
    cJSON_AddStringToObject(f, "message", "the wallet is polled again");
    log_emit(LOG_INFO, "wallet_accepted", f);
}

static bool wallet_valid(poller *p, uint32_t id, char *canonical, size_t len)
{
    char err[512];
    int script_index = p->slots[p->accounts[id].slot].script_index;
    const char *wallet = wallet_of(p, id);
    if (script_wallet_check(p->gen->rt, script_index, wallet, canonical, len, err,
                            sizeof err) == 0) {
        p->accounts[id].canonical_differs = strcmp(canonical, wallet) != 0;
        return true;
    }
    refuse(p, id, REFUSED_INVALID, err);
    return false;
}

/* Whether account `owner` holds `canonical` on `slot` right now (the ownership table keeps
 * hashes, and stale entries: this is the exact check). */
static bool holds(poller *p, uint32_t owner, uint16_t slot, const char *canonical)
{
    const account *o = &p->accounts[owner];
    if (!o->active || o->refused != REFUSED_NONE || o->slot != slot)
        return false;
    char theirs[WALLET_TEXT_MAX], err[64];
    return script_wallet_check(p->gen->rt, p->slots[slot].script_index, wallet_of(p, owner),
                               theirs, sizeof theirs, err, sizeof err) == 0 &&
           strcmp(theirs, canonical) == 0;
}

static bool claim_in_process(poller *p, uint32_t id, const char *canonical)
{
    uint16_t slot = p->accounts[id].slot;
    uint64_t key = wallet_owners_key(slot, canonical);
    uint32_t owner = wallet_owners_get(p->owners, key);
    if (owner != WALLET_OWNER_NONE && owner != id && holds(p, owner, slot, canonical)) {
        refuse_duplicate(p, id, player_of(p, owner)->id);
        return false;
    }
    wallet_owners_set(p->owners, key, id);
    return true;
}

/* The current generation's wallet check and, when the store does not claim wallets, the
 * in-process ownership rule; writes the canonical wallet. false: refused (parked). With a
 * store that claims wallets, the ownership is decided by the next load. */
bool poller_admit(poller *p, uint32_t id, char *canonical, size_t len)
{
    p->accounts[id].checked_gen = p->gen_seq;
    if (!wallet_valid(p, id, canonical, len))
        return false;
    if (p->store->claims_wallets)
        return true;
    if (!claim_in_process(p, id, canonical))
        return false;
    accept(p, id);
    return true;
}

/* The canonical wallet for a load. The check costs some 10 us of Lua: an account checked by
 * this generation whose wallet is its own canonical form (nearly all) is not checked twice. */
static bool load_wallet(poller *p, uint32_t id, char *canonical, size_t len)
{
    const account *a = &p->accounts[id];
    if (a->checked_gen == p->gen_seq && !a->canonical_differs) {
        snprintf(canonical, len, "%s", wallet_of(p, id));
        return true;
    }
    return poller_admit(p, id, canonical, len);
}

/* Whether the account may be polled now: after a reload the new generation may judge its
 * wallet differently, and a load needs the canonical wallet for its claim (written to
 * `canonical` when the account is not loaded). */
bool poller_may_poll(poller *p, uint32_t id, char *canonical, size_t len)
{
    const account *a = &p->accounts[id];
    if (!a->loaded)
        return load_wallet(p, id, canonical, len);
    return a->checked_gen == p->gen_seq || poller_admit(p, id, canonical, len);
}

/* The store's word on who owns the wallet, with the account's load. */
bool poller_owned(poller *p, uint32_t id, const stored_account *stored)
{
    if (!p->store->claims_wallets)
        return true;
    if (stored->owner == player_of(p, id)->id) {
        accept(p, id);
        return true;
    }
    refuse_duplicate(p, id, stored->owner);
    return false;
}

typedef struct recheck_ctx {
    poller *p;
    uint32_t account, epoch;
} recheck_ctx;

static void on_rechecked(void *ctx, bool ok, const stored_account *stored)
{
    recheck_ctx *r = ctx;
    poller *p = r->p;
    account *a = &p->accounts[r->account];
    p->in_flight--;
    if (ok && !p->stopping && a->active && a->epoch == r->epoch &&
        a->refused == REFUSED_DUPLICATE && poller_owned(p, r->account, stored))
        poller_schedule(p, r->account); /* the first poll loads it again (and adopts its state) */
    free(r);
    poller_check_finished(p);
}

/* A parked account, checked again (after a reload, or now and then for a duplicate). */
static void recheck(poller *p, uint32_t id)
{
    account *a = &p->accounts[id];
    bool duplicate = a->refused == REFUSED_DUPLICATE;
    char canonical[WALLET_TEXT_MAX];
    if (!poller_admit(p, id, canonical, sizeof canonical))
        return;
    if (p->store->claims_wallets && duplicate) {
        recheck_ctx *r = malloc(sizeof *r);
        *r = (recheck_ctx){p, id, a->epoch};
        p->in_flight++;
        p->store->load(p->store, player_of(p, id)->id, p->slots[a->slot].name,
                       wallet_of(p, id), canonical, on_rechecked, r);
        return;
    }
    poller_set_refusal(p, a, REFUSED_NONE); /* valid now; a claiming store decides at the load */
    poller_schedule(p, id);
}

/* After a reload: every parked account, in activation order (account ids grow with it), so
 * that the first in file order still keeps a wallet within this process. */
void poller_recheck_all_refused(poller *p)
{
    for (uint32_t id = 0; id < p->n_accounts; id++)
        if (p->accounts[id].active && p->accounts[id].refused != REFUSED_NONE)
            recheck(p, id);
}

/* Each polling cycle: a share of the other players' wallets, round-robin. */
void poller_recheck_duplicates(poller *p)
{
    size_t budget = RECHECKS_PER_CYCLE;
    for (size_t n = 0; n < p->n_accounts && budget > 0 && p->refused_duplicates > 0; n++) {
        uint32_t id = (uint32_t)(p->recheck_cursor++ % p->n_accounts);
        const account *a = &p->accounts[id];
        if (!a->active || a->refused != REFUSED_DUPLICATE)
            continue;
        budget--;
        recheck(p, id);
    }
}
