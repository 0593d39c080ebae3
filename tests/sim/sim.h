/* m2p-sim: a local simulator of the three pools' HTTP APIs (cpu-pool/NOMP, rplant, zpool/YiiMP)
 * for the engine's tests, demo and benchmark. See tests/sim/README.md. */
#ifndef M2P_SIM_H
#define M2P_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

/* POOL_RPLANT_DASH is rplant's /api/dash (its metadata: the decimals of each coin), an endpoint
 * of its own so that faults and statistics can target it apart from walletEx. */
enum sim_pool { POOL_CPU = 0, POOL_RPLANT, POOL_ZPOOL, POOL_RPLANT_DASH, POOL_COUNT };
/* Index used for statistics of requests that matched no pool endpoint. */
#define POOL_OTHER POOL_COUNT

extern const char *const sim_pool_names[POOL_COUNT];
int sim_pool_from_name(const char *name); /* -1 when unknown */

/* ---- configuration (main.c); written once before any thread starts, read-only after ---- */
struct sim_config {
  int port;
  char seed[32];            /* canonical decimal form of --seed, used verbatim in every hash */
  int64_t interval_ms;      /* --payout-interval, in milliseconds */
  bool manual_clock;        /* --clock manual */
  double zpool_rate_limit;  /* --zpool-rate-limit seconds, 0 = off */
  bool quiet;
  int threads;              /* MHD threads: 1 = one internal epoll thread, >1 = thread pool */
  int64_t epoch;            /* unix time of sim time 0 (payout "time" fields) */
  int rplant_div2;          /* --rplant-div2: decimals of rplant's atomic units (8..18) */
};
extern struct sim_config g_cfg;

void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- clocks (state.c) ---- */
void sim_clock_init(void);
int64_t sim_mono_ms(void);            /* real milliseconds since start (monotonic) */
int64_t sim_now_ms(void);             /* sim time in ms: real since start, or the manual clock */
int64_t sim_advance_ms(int64_t delta); /* manual clock only; returns the new sim time */

/* ---- payout schedule (schedule.c) ---- */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
uint64_t fnv1a64_update(uint64_t h, const void *data, size_t len);
uint64_t fnv1a64_str(uint64_t h, const char *s);

struct sched {
  int pool;
  const char *wallet;
  uint64_t base;     /* FNV-1a 64 of "<seed>|<pool>|<wallet>" */
  int64_t phase_ms;  /* base % interval_ms */
};

struct wallet_view {
  int64_t now_ms;
  int64_t n;          /* payouts made so far (k = 1..n) */
  int64_t paid;       /* sum of amounts k = 1..n, in 1e-8 units */
  int64_t accrued;    /* unpaid amount accrued towards payout n+1, in 1e-8 units */
  int64_t paid24h;    /* sum of payouts in (now - 24h, now] (zpool only) */
  int64_t hashrate;   /* H/s, constant per wallet */
  int64_t shares;     /* grows with sim time */
};

void sched_init(struct sched *s, int pool, const char *wallet);
int64_t sched_amount(const struct sched *s, int64_t k);
int64_t sched_time_ms(const struct sched *s, int64_t k);
int64_t sched_count_at(const struct sched *s, int64_t now_ms);
void sched_txid(const struct sched *s, int64_t k, char out[65]);
int64_t sched_payout_unix(const struct sched *s, int64_t k);
void sched_view(const struct sched *s, int64_t now_ms, struct wallet_view *v);
void sched_cache_free(void);
/* "12.34567890" from 1e-8 units; out must hold 32 bytes */
void fmt_units(int64_t units, char *out);

/* ---- pool response bodies (pools.c) ---- */
/* AMT_NUMBER: the pool's own form (rplant: atomic units, an integer; others: coins with 8
 * decimals); AMT_STRING: the same digits as a JSON string; AMT_COINS: rplant in coins, as
 * before its 2024 change to atomic units. */
enum amount_fmt { AMT_NUMBER = 0, AMT_STRING, AMT_COINS };
/* Returns a malloc'd body (free()-able) and its length; NULL with *len = 0 means an empty body. */
char *pool_body(int pool, const char *wallet, enum amount_fmt fmt, size_t *len);

/* ---- faults, statistics, rate limiter (state.c) ---- */
enum fault_kind {
  F_NONE = 0,
  F_LATENCY,
  F_TIMEOUT,
  F_STATUS,
  F_EMPTY,
  F_HTML,
  F_TRUNCATED,
  F_WRONG_MINER,
  F_HUGE,
  F_ERROR_OBJECT,
  F_STRING_AMOUNTS,
  F_COINS,
  F_KIND_COUNT
};
extern const char *const fault_kind_names[F_KIND_COUNT];
int fault_kind_from_name(const char *name); /* -1 when unknown; "clear" is handled by the caller */

struct fault_pick {
  enum fault_kind kind;
  int64_t ms;
  int code;
  char retry_after[24];
};

struct fault_spec {
  enum fault_kind kind;
  int64_t count;  /* -1 = unlimited */
  double rate;    /* 0..1 */
  int64_t ms;     /* -1 = unset */
  int code;
  char retry_after[24];
};

void state_init(void);
void state_free(void);
void state_reset(void);

void faults_add(int pool, const struct fault_spec *spec);
void faults_clear(int pool);
bool faults_pick(int pool, struct fault_pick *out); /* consumes count; false = no fault */
cJSON *faults_json(int pool);

void stats_arrival(int pool); /* pool or POOL_OTHER */
void stats_status(int pool, unsigned code);
void stats_rate_limited(void);
void stats_held(int pool, int delta); /* connections suspended by latency/timeout faults */
void stats_dropped(int pool);         /* requests closed without an answer */
cJSON *stats_json(void);
cJSON *requests_json(int pool, int64_t since_ms);

bool ratelimit_allow(const char *client_ip); /* zpool LimitRequest emulation */

/* ---- HTTP server (server.c) ---- */
struct MHD_Daemon;
/* Starts the MHD daemon on an already bound and listening socket (which MHD then owns). */
struct MHD_Daemon *server_start(int listen_fd);
/* Stops accepting, releases held (suspended) connections, stops the daemon. */
void server_stop(struct MHD_Daemon *d);

#endif
