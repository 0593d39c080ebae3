/* Shared mutable state of the simulator: clocks, injected faults, statistics, the request
 * arrival log and the zpool rate limiter. Every function here is thread-safe. */
#include "sim.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sim_config g_cfg;

void sim_log(const char *fmt, ...) {
  if (g_cfg.quiet) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "m2p-sim: %s\n", buf);
}

/* ---- clocks ---- */

static struct timespec start_ts;
static _Atomic int64_t manual_ms;

void sim_clock_init(void) {
  clock_gettime(CLOCK_MONOTONIC, &start_ts);
  atomic_store(&manual_ms, 0);
}

int64_t sim_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)(ts.tv_sec - start_ts.tv_sec) * 1000 + (ts.tv_nsec - start_ts.tv_nsec) / 1000000;
}

int64_t sim_now_ms(void) { return g_cfg.manual_clock ? atomic_load(&manual_ms) : sim_mono_ms(); }

int64_t sim_advance_ms(int64_t delta) { return atomic_fetch_add(&manual_ms, delta) + delta; }

/* ---- faults ---- */

const char *const fault_kind_names[F_KIND_COUNT] = {
    "none",      "latency",     "timeout", "status",       "empty",          "html",
    "truncated", "wrong_miner", "huge",    "error_object", "string_amounts", "coins"};

int fault_kind_from_name(const char *name) {
  if (!name) return -1;
  for (int i = 1; i < F_KIND_COUNT; i++)
    if (strcmp(name, fault_kind_names[i]) == 0) return i;
  return -1;
}

struct fault_rule {
  struct fault_rule *next;
  struct fault_spec spec;
  uint64_t prng; /* splitmix64 state, seeded from "<seed>|<pool>|<kind>" */
  int64_t served;
};

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* ---- statistics ---- */

#define RING_CAP 100000u

struct pool_stats {
  uint64_t requests;
  uint64_t by_status[600];
  uint64_t faults_served;
  uint64_t by_fault[F_KIND_COUNT];
  uint64_t rate_limited;
  int64_t held;     /* suspended right now (latency/timeout faults) */
  uint64_t dropped; /* closed without an answer (timeout faults, shutdown) */
};

struct ratelimit_entry {
  char ip[64];
  double t;       /* time of the last accepted request (s) */
  double avg;     /* moving average of the time between accepted requests (s) */
  double expires; /* memcache expiry: 300 s after the last accepted request */
};
#define RATELIMIT_MAX 1024

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault_rule *faults[POOL_COUNT];
static struct pool_stats stats[POOL_COUNT + 1];
static int64_t *ring[POOL_COUNT];
static uint64_t ring_total[POOL_COUNT];
static struct ratelimit_entry ratelimit[RATELIMIT_MAX];
static int ratelimit_n;

void state_init(void) {
  for (int p = 0; p < POOL_COUNT; p++) {
    ring[p] = calloc(RING_CAP, sizeof *ring[p]);
    if (!ring[p]) {
      fprintf(stderr, "m2p-sim: out of memory\n");
      exit(1);
    }
  }
}

static void faults_clear_locked(int pool) {
  struct fault_rule *r = faults[pool];
  while (r) {
    struct fault_rule *next = r->next;
    free(r);
    r = next;
  }
  faults[pool] = NULL;
}

void state_reset(void) {
  pthread_mutex_lock(&lock);
  for (int p = 0; p < POOL_COUNT; p++) {
    faults_clear_locked(p);
    ring_total[p] = 0;
  }
  for (int p = 0; p <= POOL_COUNT; p++) { /* connections held right now stay counted */
    int64_t held = stats[p].held;
    memset(&stats[p], 0, sizeof stats[p]);
    stats[p].held = held;
  }
  ratelimit_n = 0;
  pthread_mutex_unlock(&lock);
}

void state_free(void) {
  pthread_mutex_lock(&lock);
  for (int p = 0; p < POOL_COUNT; p++) {
    faults_clear_locked(p);
    free(ring[p]);
    ring[p] = NULL;
  }
  pthread_mutex_unlock(&lock);
}

/* A new rule replaces an existing rule of the same kind; otherwise it is appended, and rules
 * are tried in the order they were added. */
void faults_add(int pool, const struct fault_spec *spec) {
  struct fault_rule *nr = calloc(1, sizeof *nr);
  if (!nr) return;
  nr->spec = *spec;
  uint64_t h = fnv1a64_str(FNV_OFFSET, g_cfg.seed);
  h = fnv1a64_str(h, "|");
  h = fnv1a64_str(h, sim_pool_names[pool]);
  h = fnv1a64_str(h, "|");
  nr->prng = fnv1a64_str(h, fault_kind_names[spec->kind]);
  pthread_mutex_lock(&lock);
  struct fault_rule **pp = &faults[pool];
  while (*pp && (*pp)->spec.kind != spec->kind) pp = &(*pp)->next;
  if (*pp) {
    nr->next = (*pp)->next;
    free(*pp);
  }
  *pp = nr;
  pthread_mutex_unlock(&lock);
}

void faults_clear(int pool) {
  pthread_mutex_lock(&lock);
  faults_clear_locked(pool);
  pthread_mutex_unlock(&lock);
}

bool faults_pick(int pool, struct fault_pick *out) {
  memset(out, 0, sizeof *out);
  out->kind = F_NONE;
  pthread_mutex_lock(&lock);
  struct fault_rule **pp = &faults[pool];
  while (*pp) {
    struct fault_rule *r = *pp;
    bool apply = true;
    if (r->spec.rate < 1.0) {
      double u = (double)(splitmix64(&r->prng) >> 11) * 0x1.0p-53;
      apply = u < r->spec.rate;
    }
    if (apply) {
      out->kind = r->spec.kind;
      out->ms = r->spec.ms;
      out->code = r->spec.code;
      memcpy(out->retry_after, r->spec.retry_after, sizeof out->retry_after);
      r->served++;
      stats[pool].faults_served++;
      stats[pool].by_fault[r->spec.kind]++;
      if (r->spec.count > 0 && --r->spec.count == 0) { /* used up: remove */
        *pp = r->next;
        free(r);
      }
      break;
    }
    pp = &r->next;
  }
  pthread_mutex_unlock(&lock);
  return out->kind != F_NONE;
}

cJSON *faults_json(int pool) {
  cJSON *arr = cJSON_CreateArray();
  pthread_mutex_lock(&lock);
  for (struct fault_rule *r = faults[pool]; r; r = r->next) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", fault_kind_names[r->spec.kind]);
    cJSON_AddNumberToObject(o, "remaining", (double)r->spec.count);
    cJSON_AddNumberToObject(o, "rate", r->spec.rate);
    if (r->spec.ms >= 0) cJSON_AddNumberToObject(o, "ms", (double)r->spec.ms);
    if (r->spec.kind == F_STATUS) cJSON_AddNumberToObject(o, "code", r->spec.code);
    if (r->spec.retry_after[0]) cJSON_AddStringToObject(o, "retry_after", r->spec.retry_after);
    cJSON_AddNumberToObject(o, "served", (double)r->served);
    cJSON_AddItemToArray(arr, o);
  }
  pthread_mutex_unlock(&lock);
  return arr;
}

void stats_arrival(int pool) {
  int64_t t = sim_mono_ms();
  pthread_mutex_lock(&lock);
  stats[pool].requests++;
  if (pool < POOL_COUNT) {
    ring[pool][ring_total[pool] % RING_CAP] = t;
    ring_total[pool]++;
  }
  pthread_mutex_unlock(&lock);
}

void stats_status(int pool, unsigned code) {
  pthread_mutex_lock(&lock);
  if (code < 600) stats[pool].by_status[code]++;
  pthread_mutex_unlock(&lock);
}

void stats_held(int pool, int delta) {
  pthread_mutex_lock(&lock);
  stats[pool].held += delta;
  pthread_mutex_unlock(&lock);
}

void stats_dropped(int pool) {
  pthread_mutex_lock(&lock);
  stats[pool].dropped++;
  pthread_mutex_unlock(&lock);
}

void stats_rate_limited(void) {
  pthread_mutex_lock(&lock);
  stats[POOL_ZPOOL].rate_limited++;
  pthread_mutex_unlock(&lock);
}

static cJSON *one_pool_stats(const struct pool_stats *s) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "requests", (double)s->requests);
  cJSON *bs = cJSON_AddObjectToObject(o, "by_status");
  for (unsigned c = 0; c < 600; c++) {
    if (!s->by_status[c]) continue;
    char key[8];
    snprintf(key, sizeof key, "%u", c);
    cJSON_AddNumberToObject(bs, key, (double)s->by_status[c]);
  }
  cJSON_AddNumberToObject(o, "faults_served", (double)s->faults_served);
  cJSON *bf = cJSON_AddObjectToObject(o, "by_fault");
  for (int k = 1; k < F_KIND_COUNT; k++)
    if (s->by_fault[k]) cJSON_AddNumberToObject(bf, fault_kind_names[k], (double)s->by_fault[k]);
  cJSON_AddNumberToObject(o, "held", (double)s->held);
  cJSON_AddNumberToObject(o, "dropped", (double)s->dropped);
  return o;
}

cJSON *stats_json(void) {
  struct pool_stats *copy = malloc(sizeof stats);
  if (!copy) return NULL;
  pthread_mutex_lock(&lock);
  memcpy(copy, stats, sizeof stats);
  pthread_mutex_unlock(&lock);
  cJSON *o = cJSON_CreateObject();
  for (int p = 0; p < POOL_COUNT; p++) {
    cJSON *ps = one_pool_stats(&copy[p]);
    if (p == POOL_ZPOOL) cJSON_AddNumberToObject(ps, "rate_limited", (double)copy[p].rate_limited);
    cJSON_AddItemToObject(o, sim_pool_names[p], ps);
  }
  cJSON_AddItemToObject(o, "other", one_pool_stats(&copy[POOL_OTHER]));
  cJSON_AddNumberToObject(o, "uptime_ms", (double)sim_mono_ms());
  cJSON_AddNumberToObject(o, "sim_time_ms", (double)sim_now_ms());
  cJSON_AddStringToObject(o, "clock", g_cfg.manual_clock ? "manual" : "real");
  free(copy);
  return o;
}

cJSON *requests_json(int pool, int64_t since_ms) {
  uint64_t total;
  size_t n;
  int64_t *times = NULL;
  pthread_mutex_lock(&lock);
  total = ring_total[pool];
  n = total < RING_CAP ? (size_t)total : RING_CAP;
  times = malloc((n ? n : 1) * sizeof *times);
  if (times) {
    uint64_t first = total - n;
    for (size_t i = 0; i < n; i++) times[i] = ring[pool][(first + i) % RING_CAP];
  }
  pthread_mutex_unlock(&lock);
  if (!times) return NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "pool", sim_pool_names[pool]);
  cJSON_AddNumberToObject(o, "total", (double)total);
  cJSON_AddNumberToObject(o, "now_ms", (double)sim_mono_ms());
  cJSON *arr = cJSON_AddArrayToObject(o, "times");
  for (size_t i = 0; i < n; i++)
    if (times[i] >= since_ms) cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)times[i]));
  free(times);
  return o;
}

/* YiiMP's LimitRequest($name, $limit): per client IP, the time of the last ACCEPTED request and
 * a moving average a = (a*67 + (now - t)*33) / 100 of the time between accepted requests (the
 * first request, or the first after the 300 s memcache expiry, starts at a = limit). A request
 * is refused while a < limit, and a refusal stores nothing. */
bool ratelimit_allow(const char *client_ip) {
  const double limit = g_cfg.zpool_rate_limit;
  if (limit <= 0) return true;
  const double now = (double)sim_mono_ms() / 1000.0;
  bool allowed;
  pthread_mutex_lock(&lock);
  struct ratelimit_entry *e = NULL, *free_slot = NULL;
  for (int i = 0; i < ratelimit_n; i++) {
    if (strcmp(ratelimit[i].ip, client_ip) == 0) e = &ratelimit[i];
    else if (!free_slot && ratelimit[i].expires <= now) free_slot = &ratelimit[i];
  }
  double a;
  if (!e || e->expires <= now)
    a = limit;
  else
    a = (e->avg * 67.0 + (now - e->t) * 33.0) / 100.0;
  allowed = a >= limit;
  if (allowed) {
    if (!e) e = free_slot;
    if (!e && ratelimit_n < RATELIMIT_MAX) e = &ratelimit[ratelimit_n++];
    if (!e) e = &ratelimit[0]; /* table full of live clients: recycle */
    snprintf(e->ip, sizeof e->ip, "%s", client_ip);
    e->t = now;
    e->avg = a;
    e->expires = now + 300.0;
  }
  pthread_mutex_unlock(&lock);
  return allowed;
}
