/* The poller's player index (engine/poll/poller_index.c): after any mix of inserts and
 * removals every present id is found at its entry and no removed one is, also in a small,
 * crowded table where runs of linear probing wrap around its end (issue 12: the entries of
 * players that left are removed from the index and reused). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "poller_internal.h"

#define ENTRIES 700 /* in a 1024-slot index: long runs */

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check_all(poller *p, const bool *in, const char *when)
{
    size_t wrong = 0;
    for (size_t i = 0; i < ENTRIES; i++) {
        player_entry *e = poller_find_player(p, p->players[i].p.id);
        wrong += in[i] ? e != &p->players[i] : e != NULL;
    }
    CHECK(wrong == 0, "%zu of %d ids looked up wrong %s", wrong, ENTRIES, when);
}

static void test_churn(void)
{
    poller *p = calloc(1, sizeof *p);
    p->players = calloc(ENTRIES, sizeof *p->players);
    poller_index_grow(p); /* no entries yet: 1024 empty slots */
    p->n_players = ENTRIES;
    bool in[ENTRIES] = {0};
    for (size_t i = 0; i < ENTRIES; i++)
        p->players[i].p.id = (int64_t)(next_random() % 5000) * 7919 + (int64_t)i; /* unique */
    for (int round = 0; round < 20000; round++) {
        size_t i = next_random() % ENTRIES;
        if (in[i])
            poller_index_remove(p, p->players[i].p.id);
        else
            poller_index_insert(p, p->players[i].p.id, (uint32_t)i);
        in[i] = !in[i];
        if (round % 997 == 0)
            check_all(p, in, "during churn");
    }
    check_all(p, in, "after churn");
    poller_index_remove(p, -12345); /* not there: nothing changes */
    check_all(p, in, "after removing an unknown id");
    size_t used = 0;
    for (size_t s = 0; s < p->player_index_cap; s++)
        used += p->player_index[s] != 0;
    size_t present = 0;
    for (size_t i = 0; i < ENTRIES; i++)
        present += in[i];
    CHECK(used == present, "%zu slots used for %zu present ids (removals leave no trace)", used,
          present);
    for (size_t i = 0; i < ENTRIES; i++) /* entries released: a grow skips them */
        p->players[i].unused = !in[i];
    poller_index_grow(p);
    check_all(p, in, "after a grow");
    free(p->player_index);
    free(p->players);
    free(p);
}

int main(void)
{
    test_churn();
    return check_summary();
}
