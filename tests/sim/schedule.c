/* Deterministic payout schedule per (pool, wallet), with a cache of prefix sums so that the
 * cumulative paid amount is O(new payouts) per request instead of O(all payouts). */
#include "sim.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sim_pool_names[POOL_COUNT] = {"cpu-pool", "rplant", "zpool", "rplant-dash"};

int sim_pool_from_name(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < POOL_COUNT; i++)
    if (strcmp(name, sim_pool_names[i]) == 0) return i;
  return -1;
}

/* Amount ranges in 1e-8 units: ADVC pools 0.1-5.0 ADVC, zpool 0.00001-0.0005 BTC. */
static const int64_t amount_min[POOL_COUNT] = {10000000, 10000000, 1000, 0};
static const int64_t amount_max[POOL_COUNT] = {500000000, 500000000, 50000, 0};

#define DAY_MS INT64_C(86400000)

uint64_t fnv1a64_update(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= FNV_PRIME;
  }
  return h;
}

uint64_t fnv1a64_str(uint64_t h, const char *s) { return fnv1a64_update(h, s, strlen(s)); }

static uint64_t fnv_int(uint64_t h, int64_t k) {
  char b[24];
  int n = snprintf(b, sizeof b, "%" PRId64, k);
  return fnv1a64_update(h, b, (size_t)n);
}

void fmt_units(int64_t units, char *out) {
  const char *sign = units < 0 ? "-" : "";
  uint64_t u = units < 0 ? (uint64_t)0 - (uint64_t)units : (uint64_t)units;
  snprintf(out, 32, "%s%" PRIu64 ".%08" PRIu64, sign, u / 100000000u, u % 100000000u);
}

void sched_init(struct sched *s, int pool, const char *wallet) {
  uint64_t h = fnv1a64_str(FNV_OFFSET, g_cfg.seed);
  h = fnv1a64_str(h, "|");
  h = fnv1a64_str(h, sim_pool_names[pool]);
  h = fnv1a64_str(h, "|");
  h = fnv1a64_str(h, wallet);
  s->pool = pool;
  s->wallet = wallet;
  s->base = h;
  s->phase_ms = (int64_t)(h % (uint64_t)g_cfg.interval_ms);
}

/* FNV-1a 64 of "<seed>|<pool>|<wallet>|<k>" */
static uint64_t hash_k(const struct sched *s, int64_t k) {
  return fnv_int(fnv1a64_str(s->base, "|"), k);
}

/* splitmix64's finalizer: FNV-1a of strings that differ only in their last bytes differ only
 * in a few bits, which shows in the low digits; this spreads them over all 64 bits. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t sched_amount(const struct sched *s, int64_t k) {
  uint64_t span = (uint64_t)(amount_max[s->pool] - amount_min[s->pool] + 1);
  return amount_min[s->pool] + (int64_t)(mix64(hash_k(s, k)) % span);
}

int64_t sched_time_ms(const struct sched *s, int64_t k) { return k * g_cfg.interval_ms - s->phase_ms; }

/* Number of payouts k >= 1 with k*I - P <= now, i.e. floor((now + P) / I). */
int64_t sched_count_at(const struct sched *s, int64_t now_ms) {
  if (now_ms < 0) return 0;
  return (now_ms + s->phase_ms) / g_cfg.interval_ms;
}

int64_t sched_payout_unix(const struct sched *s, int64_t k) {
  return g_cfg.epoch + sched_time_ms(s, k) / 1000;
}

/* 64 hex digits: mix64(FNV-1a 64 of "<seed>|<pool>|<wallet>|<k>|tx<i>") for i = 0..3. */
void sched_txid(const struct sched *s, int64_t k, char out[65]) {
  uint64_t h = hash_k(s, k);
  for (int i = 0; i < 4; i++) {
    uint64_t hi = mix64(fnv_int(fnv1a64_str(h, "|tx"), i));
    snprintf(out + 16 * i, 17, "%016" PRIx64, hi);
  }
}

/* ---- prefix sum cache ---- */

struct centry {
  struct centry *next;
  uint64_t key;
  int pool;
  int64_t k[2];   /* two cursors: [0] for "paid so far", [1] for the 24h window start */
  int64_t sum[2];
  char wallet[];
};

#define CACHE_BUCKETS 65536u
#define CACHE_MAX_ENTRIES 1000000u
static struct centry *cache[CACHE_BUCKETS];
static size_t cache_entries;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void move_cursor(const struct sched *s, int64_t *ck, int64_t *cs, int64_t target) {
  int64_t k = *ck, sum = *cs;
  if (target < k && target < k - target) { /* cheaper to restart from 0 */
    k = 0;
    sum = 0;
  }
  while (k < target) sum += sched_amount(s, ++k);
  while (k > target) sum -= sched_amount(s, k--);
  *ck = k;
  *cs = sum;
}

static int64_t prefix_sum(const struct sched *s, int64_t n, int slot) {
  if (n <= 0) return 0;
  pthread_mutex_lock(&cache_lock);
  struct centry **pp = &cache[s->base % CACHE_BUCKETS];
  struct centry *e = *pp;
  while (e && !(e->key == s->base && e->pool == s->pool && strcmp(e->wallet, s->wallet) == 0))
    e = e->next;
  if (!e && cache_entries < CACHE_MAX_ENTRIES) {
    size_t wl = strlen(s->wallet);
    e = calloc(1, sizeof *e + wl + 1);
    if (e) {
      e->key = s->base;
      e->pool = s->pool;
      memcpy(e->wallet, s->wallet, wl + 1);
      e->next = *pp;
      *pp = e;
      cache_entries++;
    }
  }
  int64_t result;
  if (e) {
    move_cursor(s, &e->k[slot], &e->sum[slot], n);
    result = e->sum[slot];
  } else {
    int64_t k = 0, sum = 0;
    move_cursor(s, &k, &sum, n);
    result = sum;
  }
  pthread_mutex_unlock(&cache_lock);
  return result;
}

void sched_cache_free(void) {
  pthread_mutex_lock(&cache_lock);
  for (size_t i = 0; i < CACHE_BUCKETS; i++) {
    struct centry *e = cache[i];
    while (e) {
      struct centry *next = e->next;
      free(e);
      e = next;
    }
    cache[i] = NULL;
  }
  cache_entries = 0;
  pthread_mutex_unlock(&cache_lock);
}

void sched_view(const struct sched *s, int64_t now_ms, struct wallet_view *v) {
  const int64_t I = g_cfg.interval_ms;
  memset(v, 0, sizeof *v);
  v->now_ms = now_ms;
  v->n = sched_count_at(s, now_ms);
  v->paid = prefix_sum(s, v->n, 0);
  /* Accrual towards the next payout grows linearly from the previous payout time
   * (or -phase before the first one); it is exactly amount(n+1) at payout time. */
  int64_t t_prev = v->n * I - s->phase_ms;
  int64_t since = now_ms - t_prev; /* in [0, I) */
  if (since < 0) since = 0;
  v->accrued = sched_amount(s, v->n + 1) * since / I; /* <= 5e8 * 1e9: fits in int64 */
  if (s->pool == POOL_ZPOOL) {
    int64_t m = now_ms >= DAY_MS ? sched_count_at(s, now_ms - DAY_MS) : 0;
    v->paid24h = v->paid - prefix_sum(s, m, 1);
  }
  uint64_t hh = mix64(fnv1a64_str(s->base, "|hashrate"));
  v->hashrate = 1000 + (int64_t)(hh % 99000u);
  v->shares = v->hashrate * (now_ms / 1000) / 100;
}
