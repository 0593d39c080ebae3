/* Response bodies in the three pools' formats (see shared/pool-apis.md). Amounts are emitted
 * with exactly 8 decimals from integer 1e-8 units, so they are exact. */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ZPOOL_PAYOUTS 50
#define MAX_RPLANT_PAYMENTS 50

/* Adds an amount in the requested representation: a JSON number with 8 decimals (default,
 * and rplant's AMT_COINS) or the same as a JSON string. */
static void add_amount(cJSON *obj, const char *key, int64_t units, enum amount_fmt fmt) {
  char buf[48];
  fmt_units(units, buf);
  if (fmt == AMT_STRING)
    cJSON_AddStringToObject(obj, key, buf);
  else
    cJSON_AddRawToObject(obj, key, buf);
}

/* rplant's amounts: atomic units of 10^-div2 coin, an integer (the digits of the 1e-8 units
 * followed by div2 - 8 zeros, so no overflow whatever div2); as a JSON string with
 * AMT_STRING; in coins with AMT_COINS (rplant before 2024). */
static void add_rplant_amount(cJSON *obj, const char *key, int64_t units, enum amount_fmt fmt) {
  if (fmt == AMT_COINS) {
    add_amount(obj, key, units, AMT_NUMBER);
    return;
  }
  char buf[64];
  if (units == 0)
    snprintf(buf, sizeof buf, "0");
  else
    snprintf(buf, sizeof buf, "%" PRId64 "%.*s", units, g_cfg.rplant_div2 - 8, "0000000000");
  if (fmt == AMT_STRING)
    cJSON_AddStringToObject(obj, key, buf);
  else
    cJSON_AddRawToObject(obj, key, buf);
}

static void hashrate_string(int64_t hs, char *out, size_t n) {
  if (hs >= 1000000)
    snprintf(out, n, "%.2f MH", (double)hs / 1e6);
  else if (hs >= 1000)
    snprintf(out, n, "%.2f KH", (double)hs / 1e3);
  else
    snprintf(out, n, "%" PRId64 " H", hs);
}

/* NOMP /api/worker_stats. A wallet NOMP cannot know (empty, or "addr=..." from the wrong query
 * form) gets the echoed miner string and zeros everywhere, like the real pool. */
static cJSON *cpu_pool_json(const char *wallet, enum amount_fmt fmt) {
  cJSON *o = cJSON_CreateObject();
  bool unknown = wallet[0] == '\0' || strpbrk(wallet, "=&") != NULL;
  struct wallet_view v;
  memset(&v, 0, sizeof v);
  if (!unknown) {
    struct sched s;
    sched_init(&s, POOL_CPU, wallet);
    sched_view(&s, sim_now_ms(), &v);
  }
  int64_t immature = v.accrued / 3;
  int64_t balance = v.accrued - immature;
  cJSON_AddStringToObject(o, "miner", wallet);
  cJSON_AddNumberToObject(o, "totalHash", (double)v.hashrate);
  cJSON_AddNumberToObject(o, "totalShares", (double)v.shares);
  cJSON_AddNumberToObject(o, "networkSols", 0);
  add_amount(o, "immature", immature, fmt);
  add_amount(o, "balance", balance, fmt);
  add_amount(o, "paid", v.paid, fmt);
  cJSON *workers = cJSON_AddObjectToObject(o, "workers");
  if (!unknown) {
    char name[512], hrs[32];
    snprintf(name, sizeof name, "%.480s.rig1", wallet);
    cJSON *w = cJSON_AddObjectToObject(workers, name);
    hashrate_string(v.hashrate, hrs, sizeof hrs);
    cJSON_AddStringToObject(w, "name", name);
    cJSON_AddNumberToObject(w, "shares", (double)v.shares);
    cJSON_AddNumberToObject(w, "invalidshares", 0);
    cJSON_AddNumberToObject(w, "hashrate", (double)v.hashrate);
    cJSON_AddStringToObject(w, "hashrateString", hrs);
  }
  cJSON_AddObjectToObject(o, "history");
  return o;
}

/* rplant /api/walletEx/advc/<W> and /api/wallet/advc/<W>: `total` is the amount paid so far;
 * every amount in atomic units (10^-div2 coin, div2 from /api/dash); `payments` the most
 * recent 50, newest first. */
static cJSON *rplant_json(const char *wallet, enum amount_fmt fmt) {
  struct sched s;
  struct wallet_view v;
  sched_init(&s, POOL_RPLANT, wallet);
  sched_view(&s, sim_now_ms(), &v);
  int64_t unsold = v.accrued / 4;
  int64_t balance = v.accrued - unsold;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "address", wallet);
  cJSON_AddStringToObject(o, "coin", "advc");
  add_rplant_amount(o, "balance", balance, fmt);
  add_rplant_amount(o, "unsold", unsold, fmt);
  add_rplant_amount(o, "unpaid", balance + unsold, fmt);
  add_rplant_amount(o, "total", v.paid, fmt);
  cJSON_AddNumberToObject(o, "hashrate", (double)v.hashrate);
  cJSON_AddNumberToObject(o, "workers", 1);
  cJSON *payments = cJSON_AddArrayToObject(o, "payments");
  for (int64_t k = v.n; k >= 1 && k > v.n - MAX_RPLANT_PAYMENTS; k--) {
    char tx[65];
    cJSON *p = cJSON_CreateObject();
    sched_txid(&s, k, tx);
    cJSON_AddNumberToObject(p, "time", (double)sched_payout_unix(&s, k));
    add_rplant_amount(p, "amount", sched_amount(&s, k), fmt);
    cJSON_AddStringToObject(p, "tx", tx);
    cJSON_AddItemToArray(payments, p);
  }
  return o;
}

/* rplant /api/dash, the part its clients read: tbs.<pool key>.info.div2, the decimals of the
 * coin's atomic units. A second coin makes a client look the key up, not take the first. */
static cJSON *rplant_dash_json(void) {
  cJSON *o = cJSON_CreateObject();
  cJSON *tbs = cJSON_AddObjectToObject(o, "tbs");
  cJSON *advc = cJSON_AddObjectToObject(tbs, "advc");
  cJSON_AddStringToObject(advc, "symbol", "ADVC");
  cJSON_AddStringToObject(advc, "algo", "yespoweradvc");
  cJSON *info = cJSON_AddObjectToObject(advc, "info");
  cJSON_AddNumberToObject(info, "div2", g_cfg.rplant_div2);
  cJSON *other = cJSON_AddObjectToObject(tbs, "microbitcoin");
  cJSON_AddStringToObject(other, "symbol", "MBC");
  cJSON_AddStringToObject(other, "algo", "power2b");
  cJSON_AddNumberToObject(cJSON_AddObjectToObject(other, "info"), "div2", 4);
  return o;
}

/* zpool (YiiMP) /api/walletEx: no cumulative paid field; paid24h is a sliding 24 h window;
 * payouts are the most recent 50, newest first. */
static cJSON *zpool_json(const char *wallet, enum amount_fmt fmt) {
  struct sched s;
  struct wallet_view v;
  sched_init(&s, POOL_ZPOOL, wallet);
  sched_view(&s, sim_now_ms(), &v);
  int64_t unsold = v.accrued / 4;
  int64_t balance = v.accrued - unsold;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "currency", "BTC");
  add_amount(o, "unsold", unsold, fmt);
  add_amount(o, "balance", balance, fmt);
  add_amount(o, "unpaid", balance + unsold, fmt);
  add_amount(o, "paid24h", v.paid24h, fmt);
  add_amount(o, "total", balance + unsold + v.paid24h, fmt);
  cJSON *miners = cJSON_AddArrayToObject(o, "miners");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "version", "cpuminer-opt/23.15");
  cJSON_AddStringToObject(m, "password", "c=BTC");
  cJSON_AddStringToObject(m, "ID", "");
  cJSON_AddStringToObject(m, "algo", "yespower");
  cJSON_AddNumberToObject(m, "difficulty", 0.0123);
  cJSON_AddNumberToObject(m, "subscribe", 1);
  cJSON_AddNumberToObject(m, "accepted", (double)v.hashrate);
  cJSON_AddNumberToObject(m, "rejected", 0);
  cJSON_AddItemToArray(miners, m);
  cJSON *payouts = cJSON_AddArrayToObject(o, "payouts");
  for (int64_t k = v.n; k >= 1 && k > v.n - MAX_ZPOOL_PAYOUTS; k--) {
    char amount[32], tx[65];
    cJSON *p = cJSON_CreateObject();
    fmt_units(sched_amount(&s, k), amount);
    sched_txid(&s, k, tx);
    cJSON_AddNumberToObject(p, "time", (double)sched_payout_unix(&s, k));
    cJSON_AddStringToObject(p, "amount", amount);
    cJSON_AddStringToObject(p, "tx", tx);
    cJSON_AddItemToArray(payouts, p);
  }
  return o;
}

char *pool_body(int pool, const char *wallet, enum amount_fmt fmt, size_t *len) {
  cJSON *o = NULL;
  *len = 0;
  switch (pool) {
  case POOL_CPU:
    o = cpu_pool_json(wallet, fmt);
    break;
  case POOL_RPLANT:
    if (wallet[0] == '\0') return NULL; /* nothing to report: empty body */
    o = rplant_json(wallet, fmt);
    break;
  case POOL_ZPOOL:
    if (wallet[0] == '\0') return NULL; /* YiiMP: unknown wallet -> empty body */
    o = zpool_json(wallet, fmt);
    break;
  case POOL_RPLANT_DASH:
    o = rplant_dash_json();
    break;
  default:
    return NULL;
  }
  if (!o) return NULL;
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (body) *len = strlen(body);
  return body;
}
