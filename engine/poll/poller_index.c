/* The poller's player index (see poller_internal.h for how the poller's files fit): open
 * addressing with linear probing on the player id, each slot the entry's index + 1 (0:
 * empty). Players that leave are removed from it (their entries are reused, issue 12), by
 * backward-shift deletion, so that a churning table never fills up with tombstones and a
 * lookup never walks past the players that left. */
#include "poller_internal.h"

#include <stdlib.h>

static size_t id_hash(int64_t id, size_t cap)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x >> 17) & (cap - 1);
}

void poller_index_insert(poller *p, int64_t id, uint32_t index)
{
    size_t i = id_hash(id, p->player_index_cap);
    while (p->player_index[i])
        i = (i + 1) & (p->player_index_cap - 1);
    p->player_index[i] = index + 1;
}

/* Doubles the index (1024 slots at first) and puts every entry in use back. */
void poller_index_grow(poller *p)
{
    free(p->player_index);
    p->player_index_cap = p->player_index_cap ? p->player_index_cap * 2 : 1024;
    p->player_index = calloc(p->player_index_cap, sizeof *p->player_index);
    for (size_t i = 0; i < p->n_players; i++)
        if (!p->players[i].unused)
            poller_index_insert(p, p->players[i].p.id, (uint32_t)i);
}

player_entry *poller_find_player(const poller *p, int64_t id)
{
    if (!p->player_index_cap)
        return NULL;
    for (size_t i = id_hash(id, p->player_index_cap); p->player_index[i];
         i = (i + 1) & (p->player_index_cap - 1)) {
        player_entry *e = &p->players[p->player_index[i] - 1];
        if (e->p.id == id)
            return e;
    }
    return NULL;
}

/* The hole left at i is filled by the next entry of the run whose home slot is not
 * cyclically in (i, j] (it would not be found from its home otherwise), and so on until an
 * empty slot ends the run. Called while the entry still holds its id. */
void poller_index_remove(poller *p, int64_t id)
{
    if (!p->player_index_cap)
        return;
    size_t mask = p->player_index_cap - 1, i = id_hash(id, p->player_index_cap);
    while (p->player_index[i] && p->players[p->player_index[i] - 1].p.id != id)
        i = (i + 1) & mask;
    if (!p->player_index[i])
        return;
    for (size_t j = i;;) {
        p->player_index[i] = 0;
        size_t home;
        do {
            j = (j + 1) & mask;
            if (!p->player_index[j])
                return;
            home = id_hash(p->players[p->player_index[j] - 1].p.id, p->player_index_cap);
        } while (i <= j ? (i < home && home <= j) : (i < home || home <= j));
        p->player_index[i] = p->player_index[j];
        i = j;
    }
}
