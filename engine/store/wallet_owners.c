/* The per-process wallet ownership table (see wallet_owners.h): open addressing with linear
 * probing, at most half full. */
#include "wallet_owners.h"

#include <stdlib.h>

typedef struct owner_entry {
    uint64_t key; /* 0 = empty (wallet_owners_key never returns 0) */
    uint32_t account;
} owner_entry;

struct wallet_owners {
    owner_entry *entries;
    size_t cap, n; /* cap: a power of two */
};

wallet_owners *wallet_owners_new(void) { return calloc(1, sizeof(wallet_owners)); }

void wallet_owners_free(wallet_owners *w)
{
    if (!w)
        return;
    free(w->entries);
    free(w);
}

/* FNV-1a over the pool number and the wallet, then splitmix64's finalizer so that the low
 * bits (the probe start) depend on every byte. */
uint64_t wallet_owners_key(unsigned pool, const char *canonical)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 4; i++)
        h = (h ^ ((pool >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
    for (const unsigned char *s = (const unsigned char *)canonical; *s; s++)
        h = (h ^ *s) * 0x100000001b3ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

static owner_entry *slot_of(const wallet_owners *w, uint64_t key)
{
    size_t i = (size_t)key & (w->cap - 1);
    while (w->entries[i].key && w->entries[i].key != key)
        i = (i + 1) & (w->cap - 1);
    return &w->entries[i];
}

uint32_t wallet_owners_get(const wallet_owners *w, uint64_t key)
{
    if (!w->cap)
        return WALLET_OWNER_NONE;
    const owner_entry *e = slot_of(w, key);
    return e->key ? e->account : WALLET_OWNER_NONE;
}

static void grow(wallet_owners *w)
{
    owner_entry *old = w->entries;
    size_t old_cap = w->cap;
    w->cap = old_cap ? old_cap * 2 : 1024;
    w->entries = calloc(w->cap, sizeof *w->entries);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            *slot_of(w, old[i].key) = old[i];
    free(old);
}

void wallet_owners_set(wallet_owners *w, uint64_t key, uint32_t account)
{
    if ((w->n + 1) * 2 > w->cap)
        grow(w);
    owner_entry *e = slot_of(w, key);
    if (!e->key) {
        e->key = key;
        w->n++;
    }
    e->account = account;
}
