/* Each account's request, kept from one poll to the next (docs/scripting.md, "Requests are
 * cached").
 *
 * A pool's request() depends on the wallet, the settings (m2p.env: a settings change is a
 * new generation) and, at most, what its metadata.parse left in the script: so an account's
 * request is built by Lua once, and again only when one of those changes. That saves the
 * Lua call, the wallet check and the copies on every poll.
 *
 * Memory: an account keeps the end of its URL only: what follows its common prefix with the
 * first URL its pool kept (the pool's base URL, so mostly the wallet), and the prefix's
 * length. The headers are kept once per pool, the first list built in the pool's current
 * epoch; an account whose request() returns other headers is simply not cached (built every
 * poll, as a pool with cache_request = false).
 *
 * Validity is one number: a pool's epoch, taken from a counter of the poller that never
 * repeats. It is renewed when the generation changes (map_pools resets it) and when the
 * pool's metadata.parse has run (script_pool.request_serial); an account's URL is used only
 * under the epoch it was built in. A changed wallet deactivates the account (poller.c),
 * which forgets its URL, as does every (de)activation. */
#include <stdlib.h>
#include <string.h>

#include "poller_internal.h"

static void forget_headers(request_cache *rc)
{
    free(rc->url_prefix);
    rc->url_prefix = NULL;
    rc->url_prefix_len = 0;
    for (size_t i = 0; i < rc->n_headers; i++)
        free(rc->headers[i]);
    free(rc->headers);
    rc->headers = NULL;
    rc->n_headers = 0;
    rc->headers_set = false;
}

void poller_requests_reset(pool_slot *slot)
{
    forget_headers(&slot->requests);
    slot->requests.epoch = 0;
}

void poller_request_forget(account *a)
{
    free(a->request_url);
    a->request_url = NULL;
    a->request_prefix = 0;
    a->request_epoch = 0;
}

/* The pool's current epoch: a new one when its metadata.parse ran since the last. */
static uint32_t current_epoch(poller *p, pool_slot *slot, const script_pool *sp)
{
    request_cache *rc = &slot->requests;
    if (rc->epoch == 0 || rc->serial != sp->request_serial) {
        forget_headers(rc);
        p->request_epochs = p->request_epochs == UINT32_MAX ? 1 : p->request_epochs + 1;
        rc->epoch = p->request_epochs;
        rc->serial = sp->request_serial;
    }
    return rc->epoch;
}

static bool same_headers(const request_cache *rc, const script_request *req)
{
    if (rc->n_headers != req->n_headers)
        return false;
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcmp(rc->headers[i], req->headers[i]) != 0)
            return false;
    return true;
}

/* Keeps what was just built, when its headers are the pool's (or become them). */
static bool keep(account *a, request_cache *rc, uint32_t epoch, script_request *req)
{
    poller_request_forget(a); /* built under an older epoch */
    if (!rc->headers_set) {
        rc->headers = req->headers; /* taken over: req keeps its URL only */
        rc->n_headers = req->n_headers;
        rc->headers_set = true;
        req->headers = NULL;
        req->n_headers = 0;
    } else if (!same_headers(rc, req)) {
        return false;
    }
    if (!rc->url_prefix) {
        rc->url_prefix = strdup(req->url);
        rc->url_prefix_len = strlen(req->url);
    }
    size_t n = 0;
    while (n < rc->url_prefix_len && n < UINT16_MAX && req->url[n] == rc->url_prefix[n])
        n++;
    a->request_url = strdup(req->url + n);
    a->request_prefix = (uint16_t)n;
    a->request_epoch = epoch;
    return true;
}

/* The account's cached URL, put together in out->url_text. */
static void cached_url(const account *a, const request_cache *rc, poller_request *out)
{
    size_t tail = strlen(a->request_url);
    if (a->request_prefix + tail >= sizeof out->url_text) {
        out->url = ""; /* cannot happen: the pipeline refuses URLs over 4096 bytes */
        return;
    }
    memcpy(out->url_text, rc->url_prefix, a->request_prefix);
    memcpy(out->url_text + a->request_prefix, a->request_url, tail + 1);
    out->url = out->url_text;
}

int poller_request_get(poller *p, const poll_ctx *c, poller_request *out, char *err,
                       size_t errlen)
{
    account *a = &p->accounts[c->account];
    pool_slot *slot = &p->slots[a->slot];
    const script_pool *sp = script_pool_at(c->gen->rt, (size_t)c->script_index);
    out->url = NULL; /* not memset: url_text is 4 KiB, written only when used */
    out->headers = NULL;
    out->n_headers = 0;
    memset(&out->built, 0, sizeof out->built);
    /* A poll that began under an older generation builds with it and keeps nothing. */
    bool cacheable = sp->cache_request && c->gen == p->gen;
    uint32_t epoch = cacheable ? current_epoch(p, slot, sp) : 0;
    bool cached = cacheable && a->request_url && a->request_epoch == epoch;
    if (!cached) {
        /* As for the poll (poller_poll.c, on_script_result): a wallet this generation checked
         * and found to be its own canonical form is not checksummed again by request(). */
        bool checked = c->gen == p->gen && a->checked_gen == p->gen_seq &&
                       !a->canonical_differs && !a->refused;
        if ((checked ? script_request_build_checked_wallet : script_request_build)(
                c->gen->rt, c->script_index, wallet_of(p, c->account), &out->built, err,
                errlen) != 0)
            return -1;
        cached = cacheable && keep(a, &slot->requests, epoch, &out->built);
    }
    if (cached) {
        cached_url(a, &slot->requests, out);
        out->headers = (const char *const *)slot->requests.headers;
        out->n_headers = slot->requests.n_headers;
    } else {
        out->url = out->built.url;
        out->headers = (const char *const *)out->built.headers;
        out->n_headers = out->built.n_headers;
    }
    return 0;
}

void poller_request_release(poller_request *r)
{
    script_request_clear(&r->built);
    r->url = NULL;
    r->headers = NULL;
    r->n_headers = 0;
}
