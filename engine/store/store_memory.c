/* The in-memory account store of --dry-run and --accounts (see account_store_memory in
 * poller.h): every account starts unobserved and a commit succeeds at once, so nothing
 * outlives the process. It does not claim wallets: the poller keeps the ownership rule
 * within the process (poller_wallets.c). */
#include "poller.h"

static void memory_load(account_store *self, int64_t player_id, const char *pool,
                        const char *wallet, const char *canonical, load_done_fn done, void *ctx)
{
    (void)self;
    (void)player_id;
    (void)pool;
    (void)wallet;
    (void)canonical;
    stored_account none = {.found = false};
    done(ctx, true, &none);
}

static void memory_commit(account_store *self, const poll_commit *c, commit_done_fn done,
                          void *ctx)
{
    (void)self;
    done(ctx, COMMIT_OK, c->version + 1, NULL);
}

account_store *account_store_memory(void)
{
    static account_store store = {memory_load, memory_commit, false, NULL}; /* no pages */
    return &store;
}
