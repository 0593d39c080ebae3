/* The HTTP side: libmicrohttpd daemon, routing, pool endpoints with injected faults, control
 * endpoints under /_sim/, and the thread that releases suspended connections (latency and
 * timeout faults) without ever blocking an MHD worker thread. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#define CT_JSON "application/json"
#define CT_HTML "text/html; charset=UTF-8"
#define HUGE_BODY_BYTES (2u * 1024u * 1024u)
#define LEDGER_MAX_PAYOUTS 100000
#define HOLD_POLL_MS 100
#define DEFAULT_LATENCY_MS 1000
#define NO_STATS (-1)

enum req_state { RS_NEW = 0, RS_HELD, RS_DONE };

/* Per-request context: created by the URI logger (so the raw request-target is kept, NOMP
 * takes the raw query string as the address), freed by the completion callback. */
struct req {
  char *uri;
  bool headers_seen;
  enum req_state state;
  int pool;
  struct fault_pick fault;
  /* While held: guarded by h_lock, read by the release thread. */
  struct req *hnext;
  struct MHD_Connection *conn;
  int fd;
  int64_t deadline; /* sim_mono_ms(); INT64_MAX = until the client goes away */
  bool in_list;
  bool drop;
};

/* ---- held (suspended) connections ---- */

static pthread_mutex_t h_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t h_cond;
static struct req *h_head;
static bool h_stopping;   /* no new suspensions */
static int64_t h_suspended; /* suspended and not yet seen again by the handler */
static pthread_t h_thread;
static bool h_thread_started;

static bool peer_closed(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {.fd = fd, .events = POLLRDHUP, .revents = 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void release_locked(struct req *r, bool drop) {
  r->in_list = false;
  r->drop = drop;
  MHD_resume_connection(r->conn);
}

static void *held_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&h_lock);
  while (!h_stopping) {
    int64_t now = sim_mono_ms(), next = INT64_MAX;
    struct req **pp = &h_head;
    while (*pp) {
      struct req *r = *pp;
      bool release = r->deadline <= now;
      if (!release && r->fault.kind == F_TIMEOUT) {
        if (peer_closed(r->fd))
          release = true; /* the client gave up */
        else if (now + HOLD_POLL_MS < next)
          next = now + HOLD_POLL_MS;
      }
      if (release) {
        *pp = r->hnext;
        release_locked(r, false);
        continue;
      }
      if (r->deadline < next) next = r->deadline;
      pp = &r->hnext;
    }
    if (next == INT64_MAX) {
      pthread_cond_wait(&h_cond, &h_lock);
    } else {
      int64_t wait_ms = next - sim_mono_ms();
      if (wait_ms < 0) wait_ms = 0;
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_sec += (time_t)(wait_ms / 1000);
      ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&h_cond, &h_lock, &ts);
    }
  }
  while (h_head) { /* shutting down: let every held connection go, without an answer */
    struct req *r = h_head;
    h_head = r->hnext;
    release_locked(r, true);
  }
  pthread_mutex_unlock(&h_lock);
  return NULL;
}

static int held_start(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h_cond, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&h_thread, NULL, held_main, NULL) != 0) return -1;
  h_thread_started = true;
  return 0;
}

/* Suspends the connection until the fault's delay passes (latency) or the client goes away
 * (timeout). Returns false when shutting down (then nothing was suspended). */
static bool held_suspend(struct MHD_Connection *c, struct req *r) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  int64_t now = sim_mono_ms();
  pthread_mutex_lock(&h_lock);
  if (h_stopping) {
    pthread_mutex_unlock(&h_lock);
    return false;
  }
  r->conn = c;
  r->fd = ci ? ci->connect_fd : -1;
  if (r->fault.kind == F_LATENCY)
    r->deadline = now + (r->fault.ms >= 0 ? r->fault.ms : DEFAULT_LATENCY_MS);
  else
    r->deadline = r->fault.ms >= 0 ? now + r->fault.ms : INT64_MAX;
  r->state = RS_HELD;
  r->in_list = true;
  r->drop = false;
  r->hnext = h_head;
  h_head = r;
  h_suspended++;
  stats_held(r->pool, 1);
  MHD_suspend_connection(c);
  pthread_cond_signal(&h_cond);
  pthread_mutex_unlock(&h_lock);
  return true;
}

/* Called on the MHD side once a held request is seen again (handler after resume, or the
 * completion callback). Returns whether the connection must be dropped without an answer. */
static bool held_done(struct req *r) {
  bool drop = false, was_held = false;
  pthread_mutex_lock(&h_lock);
  if (r->state == RS_HELD) {
    if (r->in_list) { /* only possible if MHD gave up on a suspended connection itself */
      struct req **pp = &h_head;
      while (*pp && *pp != r) pp = &(*pp)->hnext;
      if (*pp) *pp = r->hnext;
      r->in_list = false;
    }
    r->state = RS_DONE;
    h_suspended--;
    drop = r->drop;
    was_held = true;
  }
  pthread_mutex_unlock(&h_lock);
  if (was_held) stats_held(r->pool, -1);
  return drop;
}

static void held_shutdown(void) {
  if (!h_thread_started) return;
  pthread_mutex_lock(&h_lock);
  h_stopping = true;
  pthread_cond_signal(&h_cond);
  pthread_mutex_unlock(&h_lock);
  pthread_join(h_thread, NULL);
  h_thread_started = false;
  /* Wait (bounded) until MHD has taken every resumed connection back. */
  for (int i = 0; i < 300; i++) {
    pthread_mutex_lock(&h_lock);
    int64_t n = h_suspended;
    pthread_mutex_unlock(&h_lock);
    if (n <= 0) break;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  pthread_cond_destroy(&h_cond);
}

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *c, int stats_pool, unsigned code, const char *ctype,
                                 void *body, size_t len, enum MHD_ResponseMemoryMode mode,
                                 const char *retry_after) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
  if (!resp) {
    if (mode == MHD_RESPMEM_MUST_FREE) free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  if (retry_after && retry_after[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
  if (code == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
  enum MHD_Result ret = MHD_queue_response(c, code, resp);
  MHD_destroy_response(resp);
  if (stats_pool != NO_STATS && ret == MHD_YES) stats_status(stats_pool, code);
  return ret;
}

static enum MHD_Result send_static(struct MHD_Connection *c, int stats_pool, unsigned code, const char *ctype,
                                   const char *text) {
  return send_body(c, stats_pool, code, ctype, (void *)text, strlen(text), MHD_RESPMEM_PERSISTENT, NULL);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, cJSON *o) {
  if (!o) return send_static(c, NO_STATS, 500, CT_JSON, "{\"ok\":false,\"error\":\"out of memory\"}");
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!s) return send_static(c, NO_STATS, 500, CT_JSON, "{\"ok\":false,\"error\":\"out of memory\"}");
  return send_body(c, NO_STATS, code, CT_JSON, s, strlen(s), MHD_RESPMEM_MUST_FREE, NULL);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *msg) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 0);
  cJSON_AddStringToObject(o, "error", msg);
  return send_json(c, code, o);
}

static enum MHD_Result send_status_page(struct MHD_Connection *c, int pool, unsigned code,
                                        const char *retry_after) {
  const char *reason = MHD_get_reason_phrase_for(code);
  if (!reason || !reason[0]) reason = "Error";
  char *page = NULL;
  int n = asprintf(&page,
                   "<!DOCTYPE html>\n<html><head><title>%u %s</title></head>\n<body>\n<center><h1>%u %s</h1></center>\n"
                   "<hr><center>nginx</center>\n</body></html>\n",
                   code, reason, code, reason);
  if (n < 0) return MHD_NO;
  return send_body(c, pool, code, CT_HTML, page, (size_t)n, MHD_RESPMEM_MUST_FREE, retry_after);
}

static const char html_page[] =
    "<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>Just a moment...</title>"
    "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head>\n"
    "<body><h1>Checking your browser before accessing the pool.</h1>"
    "<p>This process is automatic. Your browser will redirect to your requested content shortly.</p>"
    "</body></html>\n";

static const char error_object[] = "{\"result\":\"error\",\"message\":\"Invalid wallet address\"}";

static const char not_found_page[] =
    "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body>\n"
    "<center><h1>404 Not Found</h1></center>\n<hr><center>nginx</center>\n</body></html>\n";

/* A valid JSON document of exactly HUGE_BODY_BYTES: the normal body with a "padding" member. */
static char *make_huge(char *body, size_t *len) {
  static const char prefix[] = "{\"padding\":\"";
  const char *rest = (body && *len > 2 && body[0] == '{') ? body + 1 : "}";
  size_t restlen = strlen(rest);
  const char *sep = rest[0] == '}' ? "\"" : "\",";
  size_t fixed = strlen(prefix) + strlen(sep) + restlen;
  size_t pad = fixed < HUGE_BODY_BYTES ? HUGE_BODY_BYTES - fixed : 0;
  char *out = malloc(fixed + pad + 1);
  if (out) {
    char *p = out;
    memcpy(p, prefix, strlen(prefix));
    p += strlen(prefix);
    memset(p, 'x', pad);
    p += pad;
    memcpy(p, sep, strlen(sep));
    p += strlen(sep);
    memcpy(p, rest, restlen + 1);
    *len = fixed + pad;
  }
  free(body);
  return out;
}

/* ---- pool endpoints ---- */

static int route(const char *url) {
  if (strcmp(url, "/api/worker_stats") == 0) return POOL_CPU;
  if (strncmp(url, "/api/walletEx/advc/", 19) == 0 || strncmp(url, "/api/wallet/advc/", 17) == 0)
    return POOL_RPLANT;
  if (strcmp(url, "/api/walletEx") == 0) return POOL_ZPOOL;
  if (strcmp(url, "/api/dash") == 0) return POOL_RPLANT_DASH;
  return -1;
}

/* The wallet the request names, malloc'd. */
static char *request_wallet(struct MHD_Connection *c, const struct req *r, const char *url) {
  switch (r->pool) {
  case POOL_CPU: { /* NOMP: url.split("?")[1].split(".")[0], on the raw (undecoded) URL */
    const char *q = r->uri ? strchr(r->uri, '?') : NULL;
    if (!q) return strdup("");
    q++;
    return strndup(q, strcspn(q, "?.#"));
  }
  case POOL_RPLANT: {
    const char *w = url + (strncmp(url, "/api/walletEx/", 14) == 0 ? 19 : 17);
    return strndup(w, strcspn(w, "/"));
  }
  case POOL_ZPOOL: {
    const char *a = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "address");
    return strdup(a ? a : "");
  }
  default:
    return strdup("");
  }
}

static void client_ip(struct MHD_Connection *c, char *out, size_t n) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  snprintf(out, n, "?");
  if (!ci || !ci->client_addr) return;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)n);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)n);
}

static enum MHD_Result serve_pool(struct MHD_Connection *c, struct req *r, const char *url) {
  const int pool = r->pool;
  const enum fault_kind kind = r->fault.kind;
  switch (kind) {
  case F_STATUS:
    return send_status_page(c, pool, (unsigned)r->fault.code, r->fault.retry_after);
  case F_EMPTY:
    return send_static(c, pool, 200, CT_HTML, "");
  case F_HTML:
    return send_static(c, pool, 200, CT_HTML, html_page);
  case F_ERROR_OBJECT:
    return send_static(c, pool, 200, CT_JSON, error_object);
  default:
    break;
  }
  if (pool == POOL_ZPOOL && g_cfg.zpool_rate_limit > 0) {
    char ip[64];
    client_ip(c, ip, sizeof ip);
    if (!ratelimit_allow(ip)) {
      stats_rate_limited();
      return send_static(c, pool, 200, CT_HTML, "");
    }
  }
  char *wallet = request_wallet(c, r, url);
  if (!wallet) return MHD_NO;
  char *other = NULL;
  const char *data_wallet = wallet;
  if (kind == F_WRONG_MINER) {
    if (asprintf(&other, "%s-other", wallet) < 0) other = NULL;
    if (other) data_wallet = other;
  }
  enum amount_fmt fmt = kind == F_STRING_AMOUNTS ? AMT_STRING : kind == F_COINS ? AMT_COINS : AMT_NUMBER;
  size_t len = 0;
  char *body = pool_body(pool, data_wallet, fmt, &len);
  free(other);
  free(wallet);
  if (kind == F_TRUNCATED) len /= 2;
  if (kind == F_HUGE) body = make_huge(body, &len);
  if (!body || len == 0) {
    free(body);
    return send_static(c, pool, 200, CT_HTML, "");
  }
  return send_body(c, pool, 200, CT_JSON, body, len, MHD_RESPMEM_MUST_FREE, NULL);
}

/* ---- control endpoints ---- */

static const char *arg(struct MHD_Connection *c, const char *key) {
  return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < min || v > max) return false;
  *out = v;
  return true;
}

static bool parse_double(const char *s, double min, double max, double *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < min || v > max) return false;
  *out = v;
  return true;
}

static enum MHD_Result ctl_advance(struct MHD_Connection *c) {
  if (!g_cfg.manual_clock) return send_error(c, 409, "the clock is real: start with --clock manual");
  double secs;
  if (!parse_double(arg(c, "seconds"), 0, 1e9, &secs))
    return send_error(c, 400, "seconds must be a number in [0, 1e9]");
  int64_t now = sim_advance_ms((int64_t)llround(secs * 1000.0));
  sim_log("advance %.3f s -> sim time %" PRId64 " ms", secs, now);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON_AddNumberToObject(o, "sim_time_ms", (double)now);
  cJSON_AddNumberToObject(o, "sim_time", (double)now / 1000.0);
  return send_json(c, 200, o);
}

static enum MHD_Result ctl_fault(struct MHD_Connection *c) {
  const char *pool_name = arg(c, "pool");
  const char *kind_name = arg(c, "kind");
  int first, last;
  if (pool_name && strcmp(pool_name, "all") == 0) {
    first = 0;
    last = POOL_COUNT - 1;
  } else {
    first = last = sim_pool_from_name(pool_name);
    if (first < 0) return send_error(c, 400, "pool must be cpu-pool, rplant, zpool, rplant-dash or all");
  }
  if (kind_name && strcmp(kind_name, "clear") == 0) {
    for (int p = first; p <= last; p++) faults_clear(p);
    sim_log("faults cleared for %s", pool_name);
  } else if (kind_name) {
    struct fault_spec spec;
    memset(&spec, 0, sizeof spec);
    int kind = fault_kind_from_name(kind_name);
    if (kind < 0) return send_error(c, 400, "unknown fault kind");
    spec.kind = (enum fault_kind)kind;
    spec.count = -1;
    spec.rate = 1.0;
    spec.ms = -1;
    spec.code = 503;
    const char *v;
    if ((v = arg(c, "count")) && !parse_i64(v, 1, INT64_MAX, &spec.count))
      return send_error(c, 400, "count must be a positive integer");
    if ((v = arg(c, "rate")) && !parse_double(v, 0.0, 1.0, &spec.rate))
      return send_error(c, 400, "rate must be in [0, 1]");
    if ((v = arg(c, "ms")) && !parse_i64(v, 0, INT64_C(86400000) * 365, &spec.ms))
      return send_error(c, 400, "ms must be a non-negative integer");
    if ((v = arg(c, "code"))) {
      int64_t code;
      if (!parse_i64(v, 200, 599, &code)) return send_error(c, 400, "code must be in [200, 599]");
      spec.code = (int)code;
    }
    if ((v = arg(c, "retry_after"))) {
      int64_t ra;
      if (!parse_i64(v, 0, INT64_C(999999999), &ra))
        return send_error(c, 400, "retry_after must be a non-negative integer (seconds)");
      snprintf(spec.retry_after, sizeof spec.retry_after, "%" PRId64, ra);
    }
    for (int p = first; p <= last; p++) faults_add(p, &spec);
    sim_log("fault %s on %s (count=%" PRId64 " rate=%g ms=%" PRId64 " code=%d retry_after=%s)", kind_name,
            pool_name, spec.count, spec.rate, spec.ms, spec.kind == F_STATUS ? spec.code : 0,
            spec.retry_after[0] ? spec.retry_after : "-");
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ok", 1);
  cJSON *fo = cJSON_AddObjectToObject(o, "faults");
  for (int p = first; p <= last; p++) cJSON_AddItemToObject(fo, sim_pool_names[p], faults_json(p));
  return send_json(c, 200, o);
}

static enum MHD_Result ctl_ledger(struct MHD_Connection *c) {
  int pool = sim_pool_from_name(arg(c, "pool"));
  const char *wallet = arg(c, "wallet");
  if (pool < 0 || pool == POOL_RPLANT_DASH) return send_error(c, 400, "pool must be cpu-pool, rplant or zpool");
  if (!wallet) return send_error(c, 400, "wallet is required");
  struct sched s;
  struct wallet_view v;
  sched_init(&s, pool, wallet);
  sched_view(&s, sim_now_ms(), &v);
  char buf[32], tx[65];
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "pool", sim_pool_names[pool]);
  cJSON_AddStringToObject(o, "wallet", wallet);
  cJSON_AddStringToObject(o, "currency", pool == POOL_ZPOOL ? "BTC" : "ADVC");
  cJSON_AddNumberToObject(o, "sim_time_ms", (double)v.now_ms);
  fmt_units(v.paid, buf);
  cJSON_AddStringToObject(o, "paid", buf);
  fmt_units(v.accrued, buf);
  cJSON_AddStringToObject(o, "unpaid", buf);
  if (pool == POOL_ZPOOL) {
    fmt_units(v.paid24h, buf);
    cJSON_AddStringToObject(o, "paid24h", buf);
  }
  cJSON_AddNumberToObject(o, "count", (double)v.n);
  int64_t first = v.n - LEDGER_MAX_PAYOUTS + 1;
  if (first < 1) first = 1;
  cJSON_AddBoolToObject(o, "truncated", first > 1);
  cJSON *arr = cJSON_AddArrayToObject(o, "payouts");
  for (int64_t k = first; k <= v.n; k++) {
    cJSON *p = cJSON_CreateObject();
    sched_txid(&s, k, tx);
    fmt_units(sched_amount(&s, k), buf);
    cJSON_AddNumberToObject(p, "k", (double)k);
    cJSON_AddStringToObject(p, "tx", tx);
    cJSON_AddStringToObject(p, "amount", buf);
    cJSON_AddNumberToObject(p, "time", (double)sched_payout_unix(&s, k));
    cJSON_AddNumberToObject(p, "sim_time_ms", (double)sched_time_ms(&s, k));
    cJSON_AddItemToArray(arr, p);
  }
  return send_json(c, 200, o);
}

static enum MHD_Result ctl_requests(struct MHD_Connection *c) {
  int pool = sim_pool_from_name(arg(c, "pool"));
  if (pool < 0) return send_error(c, 400, "pool must be cpu-pool, rplant, zpool or rplant-dash");
  int64_t since = 0;
  const char *v = arg(c, "since");
  if (v && !parse_i64(v, 0, INT64_MAX, &since)) return send_error(c, 400, "since must be ms since start");
  return send_json(c, 200, requests_json(pool, since));
}

static enum MHD_Result ctl_time(struct MHD_Connection *c) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "clock", g_cfg.manual_clock ? "manual" : "real");
  int64_t now = sim_now_ms();
  cJSON_AddNumberToObject(o, "sim_time_ms", (double)now);
  cJSON_AddNumberToObject(o, "sim_time", (double)now / 1000.0);
  cJSON_AddNumberToObject(o, "uptime_ms", (double)sim_mono_ms());
  cJSON_AddNumberToObject(o, "interval_ms", (double)g_cfg.interval_ms);
  cJSON_AddStringToObject(o, "seed", g_cfg.seed);
  cJSON_AddNumberToObject(o, "epoch", (double)g_cfg.epoch);
  return send_json(c, 200, o);
}

static enum MHD_Result control(struct MHD_Connection *c, const char *what) {
  if (strcmp(what, "advance") == 0) return ctl_advance(c);
  if (strcmp(what, "fault") == 0) return ctl_fault(c);
  if (strcmp(what, "ledger") == 0) return ctl_ledger(c);
  if (strcmp(what, "stats") == 0) return send_json(c, 200, stats_json());
  if (strcmp(what, "requests") == 0) return ctl_requests(c);
  if (strcmp(what, "time") == 0) return ctl_time(c);
  if (strcmp(what, "reset") == 0) {
    state_reset();
    sim_log("reset");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    return send_json(c, 200, o);
  }
  return send_error(c, 404, "unknown control endpoint");
}

/* ---- MHD callbacks ---- */

static struct req *req_new(const char *uri) {
  struct req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->pool = -1;
  r->fd = -1;
  if (uri) r->uri = strdup(uri);
  return r;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *c) {
  (void)cls;
  (void)c;
  return req_new(uri);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  struct req *r = *con_cls;
  if (!r) return;
  if (r->state == RS_HELD) { /* closed before the handler saw it again */
    held_done(r);
    stats_dropped(r->pool);
  }
  free(r->uri);
  free(r);
  *con_cls = NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
  (void)cls;
  (void)version;
  (void)upload_data;
  struct req *r = *con_cls;
  if (!r) {
    if (!(r = req_new(NULL))) return MHD_NO;
    *con_cls = r;
  }
  if (!r->headers_seen) { /* first call: headers only */
    r->headers_seen = true;
    return MHD_YES;
  }
  if (*upload_data_size) { /* a body is accepted and ignored: parameters go in the query */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (r->state == RS_HELD) { /* resumed after a latency or timeout fault */
    bool drop = held_done(r);
    if (drop || r->fault.kind == F_TIMEOUT) {
      stats_dropped(r->pool);
      return MHD_NO;
    }
    return serve_pool(c, r, url);
  }
  if (r->state != RS_NEW) return MHD_NO;
  r->state = RS_DONE;

  if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "POST"))
    return send_static(c, NO_STATS, MHD_HTTP_METHOD_NOT_ALLOWED, CT_HTML, "");
  if (strncmp(url, "/_sim/", 6) == 0) return control(c, url + 6);

  r->pool = route(url);
  if (r->pool < 0) {
    stats_arrival(POOL_OTHER);
    return send_static(c, POOL_OTHER, 404, CT_HTML, not_found_page);
  }
  stats_arrival(r->pool);
  faults_pick(r->pool, &r->fault);
  if (r->fault.kind == F_LATENCY || r->fault.kind == F_TIMEOUT) {
    if (held_suspend(c, r)) return MHD_YES;
    if (r->fault.kind == F_TIMEOUT) { /* shutting down */
      stats_dropped(r->pool);
      return MHD_NO;
    }
  }
  return serve_pool(c, r, url);
}

static void panic_cb(void *cls, const char *file, unsigned int line, const char *reason) {
  (void)cls;
  fprintf(stderr, "m2p-sim: libmicrohttpd panic at %s:%u: %s\n", file ? file : "?", line,
          reason ? reason : "?");
  abort();
}

/* MHD's own error messages, minus the one it prints whenever the handler drops a connection on
 * purpose (timeout faults, shutdown). */
static void mhd_logger(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  if (g_cfg.quiet) return;
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  if (strncmp(buf, "Application reported internal error", 35) == 0) return;
  size_t n = strlen(buf);
  while (n && buf[n - 1] == '\n') buf[--n] = '\0';
  fprintf(stderr, "m2p-sim: libmicrohttpd: %s\n", buf);
}

/* The external logger must come first, or MHD logs the options before it the default way. */
#define COMMON_OPTIONS                                                                             \
  MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,    \
      MHD_OPTION_URI_LOG_CALLBACK, uri_logger, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, \
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_CONNECTION_LIMIT,               \
      (unsigned int)10000

struct MHD_Daemon *server_start(int listen_fd) {
  MHD_set_panic_func(panic_cb, NULL);
  if (held_start() != 0) return NULL;
  unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  struct MHD_Daemon *d;
  if (g_cfg.threads > 1)
    d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL, COMMON_OPTIONS, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned int)g_cfg.threads, MHD_OPTION_END);
  else
    d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL, COMMON_OPTIONS, MHD_OPTION_END);
  if (!d) held_shutdown();
  return d;
}

void server_stop(struct MHD_Daemon *d) {
  MHD_socket lfd = MHD_quiesce_daemon(d); /* stop accepting; the listen socket is ours again */
  held_shutdown();
  MHD_stop_daemon(d);
  if (lfd != MHD_INVALID_SOCKET) close(lfd);
}
