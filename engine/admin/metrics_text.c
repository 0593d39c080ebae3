/* Prometheus text exposition of the engine's metrics (see metrics_text.h). */
#include "admin/metrics_text.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct text {
    char *buf;
    size_t len, cap;
    bool failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->buf && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap : 4096);
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

/* A label value as the format wants it: backslash, double quote and line feed escaped (pool
 * and sink names come from scripts and settings). */
static void put_label(text *t, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            put(t, "\\\\");
        else if (*p == '"')
            put(t, "\\\"");
        else if (*p == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *p);
    }
}

static void header(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} number */
static void sample(text *t, const char *name, const char *label, const char *value, double n)
{
    put(t, "%s{%s=\"", name, label);
    put_label(t, value);
    put(t, "\"} %.17g\n", n);
}

/* ====================================================================== Polling */

static void poll_counts(text *t, const metrics *m)
{
    header(t, "m2p_polls_total", "counter", "Finished polls by pool and outcome.");
    for (size_t i = 0; i < m->n_pools; i++) {
        const pool_metrics *p = &m->pools[i];
        static const char *const outcomes[] = {"success", "failure"};
        const uint64_t counts[] = {p->successes, p->failures};
        for (int o = 0; o < 2; o++) {
            put(t, "m2p_polls_total{pool=\"");
            put_label(t, p->name);
            put(t, "\",outcome=\"%s\"} %llu\n", outcomes[o], (unsigned long long)counts[o]);
        }
    }
    header(t, "m2p_awards_total", "counter", "Awards paid by pool (held awards not counted).");
    for (size_t i = 0; i < m->n_pools; i++)
        sample(t, "m2p_awards_total", "pool", m->pools[i].name, (double)m->pools[i].awards);
    header(t, "m2p_accounts", "gauge", "Accounts scheduled per pool.");
    for (size_t i = 0; i < m->n_pools; i++)
        sample(t, "m2p_accounts", "pool", m->pools[i].name, (double)m->pools[i].accounts);
    header(t, "m2p_poll_interval_seconds", "gauge",
           "Effective seconds between two polls of one account, per pool (pacing included).");
    for (size_t i = 0; i < m->n_pools; i++)
        if (m->pools[i].scheduled)
            sample(t, "m2p_poll_interval_seconds", "pool", m->pools[i].name,
                   m->pools[i].effective_interval);
    header(t, "m2p_wallets_refused", "gauge", "Accounts parked per pool (invalid or taken wallet).");
    for (size_t i = 0; i < m->n_pools; i++)
        sample(t, "m2p_wallets_refused", "pool", m->pools[i].name,
               (double)m->pools[i].wallets_refused);
}

static void bucket(text *t, const char *name, const char *pool, const char *le, uint64_t n)
{
    put(t, "%s_bucket{pool=\"", name);
    put_label(t, pool);
    put(t, "\",le=\"%s\"} %llu\n", le, (unsigned long long)n);
}

/* One pool's histogram: `counts` per bucket (not cumulative), `total` with those over the
 * last bound, `sum` in seconds. */
static void histogram(text *t, const char *name, const char *pool, const double *bounds,
                      const uint64_t *counts, size_t n, uint64_t total, double sum)
{
    char metric[96];
    uint64_t cumulative = 0;
    for (size_t b = 0; b < n; b++) {
        char le[32];
        snprintf(le, sizeof le, "%g", bounds[b]);
        cumulative += counts[b];
        bucket(t, name, pool, le, cumulative);
    }
    bucket(t, name, pool, "+Inf", total);
    snprintf(metric, sizeof metric, "%s_sum", name);
    sample(t, metric, "pool", pool, sum);
    snprintf(metric, sizeof metric, "%s_count", name);
    sample(t, metric, "pool", pool, (double)total);
}

static void poll_durations(text *t, const metrics *m)
{
    header(t, "m2p_poll_duration_seconds", "histogram",
           "Pool response times (requests that got an HTTP answer).");
    for (size_t i = 0; i < m->n_pools; i++) {
        const pool_metrics *p = &m->pools[i];
        histogram(t, "m2p_poll_duration_seconds", p->name, metrics_latency_bounds,
                  p->latency_buckets, METRICS_LATENCY_BUCKETS, p->timed_responses,
                  p->response_ms_total / 1000.0);
    }
}

/* ===================================================== Awards, scheduling, accounts */

typedef double (*pool_value_fn)(const pool_metrics *p);

static void per_pool(text *t, const metrics *m, const char *name, const char *type,
                     const char *help, pool_value_fn value)
{
    header(t, name, type, help);
    for (size_t i = 0; i < m->n_pools; i++)
        sample(t, name, "pool", m->pools[i].name, value(&m->pools[i]));
}

static double advc_of(const pool_metrics *p) { return p->advc_awarded; }
static double ap_of(const pool_metrics *p) { return p->ap_awarded; }
static double held_of(const pool_metrics *p) { return (double)p->awards_held; }
static double tracked_of(const pool_metrics *p) { return (double)p->accounts_tracked; }
static double owned_of(const pool_metrics *p) { return (double)p->accounts_owned; }
static double breaker_of(const pool_metrics *p) { return (double)p->breaker; }

static void awards_and_scheduling(text *t, const metrics *m)
{
    per_pool(t, m, "m2p_advc_awarded_total", "counter",
             "ADVC of the awards this engine paid, by pool (held awards not counted).", advc_of);
    per_pool(t, m, "m2p_ap_awarded_total", "counter",
             "Adventure Points of the awards this engine paid, by pool.", ap_of);
    per_pool(t, m, "m2p_awards_held_total", "counter",
             "Awards stored as held by this engine (award limits), by pool.", held_of);
    per_pool(t, m, "m2p_accounts_tracked", "gauge",
             "Players with a wallet on the pool, whichever engine polls them.", tracked_of);
    per_pool(t, m, "m2p_accounts_owned", "gauge",
             "Accounts of the pool this engine polls (scale-out membership).", owned_of);
    per_pool(t, m, "m2p_pool_breaker_state", "gauge",
             "Circuit breaker of the pool: 0 closed, 1 open, 2 probing.", breaker_of);
    header(t, "m2p_scheduler_lag_seconds", "histogram",
           "How late due polls start (pacing, concurrency, Retry-After, breaker), by pool.");
    for (size_t i = 0; i < m->n_pools; i++) {
        const pool_metrics *p = &m->pools[i];
        histogram(t, "m2p_scheduler_lag_seconds", p->name, sched_lag_bounds, p->lag.buckets,
                  SCHED_LAG_BUCKETS, p->lag.count, p->lag.sum);
    }
}

/* ================================================================ Health, sinks */

static void notifications(text *t, const outbox *ob)
{
    size_t n = ob ? outbox_sink_count(ob) : 0;
    static const char *const names[] = {"m2p_notifications_delivered_total",
                                        "m2p_notifications_failed_total",
                                        "m2p_notifications_expired_total"};
    static const char *const helps[] = {"Notifications delivered by sink.",
                                        "Failed delivery attempts by sink.",
                                        "Notifications given up after NOTIFY_MAX_AGE by sink."};
    for (int k = 0; k < 3; k++) {
        header(t, names[k], "counter", helps[k]);
        for (size_t i = 0; i < n; i++) {
            outbox_sink_stats st = outbox_stats(ob, i);
            uint64_t v = k == 0 ? st.delivered : k == 1 ? st.failed : st.expired;
            sample(t, names[k], "sink", st.name, (double)v);
        }
    }
    header(t, "m2p_notifications_in_flight", "gauge", "Notifications handed to the sink, unanswered.");
    for (size_t i = 0; i < n; i++) {
        outbox_sink_stats st = outbox_stats(ob, i);
        sample(t, "m2p_notifications_in_flight", "sink", st.name, (double)st.in_flight);
    }
    header(t, "m2p_notification_sink_ready", "gauge", "1 while the sink's receiver is reachable.");
    for (size_t i = 0; i < n; i++) {
        outbox_sink_stats st = outbox_stats(ob, i);
        sample(t, "m2p_notification_sink_ready", "sink", st.name, st.ready ? 1 : 0);
    }
}

/* From the database (db_stats.h): absent until its first answer. */
static void database_stats(text *t, const db_stats *s)
{
    if (!db_stats_known(s))
        return;
    header(t, "m2p_held_awards_awaiting_release", "gauge",
           "Held awards no operator has released or rejected yet (every engine's).");
    put(t, "m2p_held_awards_awaiting_release %lld\n", db_stats_held_awaiting_release(s));
    size_t n = db_stats_sink_count(s);
    header(t, "m2p_outbox_depth", "gauge",
           "Notifications the sink has not delivered nor given up, in the database.");
    for (size_t i = 0; i < n; i++) {
        db_stats_sink k = db_stats_sink_at(s, i);
        sample(t, "m2p_outbox_depth", "sink", k.name, (double)k.depth);
    }
    header(t, "m2p_outbox_oldest_age_seconds", "gauge",
           "Age of the sink's oldest undelivered notification; 0 when none waits.");
    for (size_t i = 0; i < n; i++) {
        db_stats_sink k = db_stats_sink_at(s, i);
        sample(t, "m2p_outbox_oldest_age_seconds", "sink", k.name, k.oldest_age_seconds);
    }
}

static void engine_state(text *t, const admin_view *v)
{
    if (v->db) {
        header(t, "m2p_database_up", "gauge", "1 while PostgreSQL is reachable.");
        put(t, "m2p_database_up %d\n", db_healthy(v->db) ? 1 : 0);
    }
    header(t, "m2p_script_reloads_total", "counter", "Successful script reloads.");
    put(t, "m2p_script_reloads_total %llu\n",
        (unsigned long long)(v->metrics ? v->metrics->script_reloads : 0));
    header(t, "m2p_script_reload_failures_total", "counter",
           "Reloads that failed (the running generation was kept).");
    put(t, "m2p_script_reload_failures_total %llu\n",
        (unsigned long long)(v->metrics ? v->metrics->script_reload_failures : 0));
    header(t, "m2p_player_entries", "gauge",
           "Entries of the poller's player table, in use or free for reuse.");
    put(t, "m2p_player_entries %zu\n", v->metrics ? v->metrics->player_entries : 0);
    header(t, "m2p_account_entries", "gauge",
           "Entries of the poller's account table, in use or free for reuse.");
    put(t, "m2p_account_entries %zu\n", v->metrics ? v->metrics->account_entries : 0);
    header(t, "m2p_build_info", "gauge", "Always 1; the engine's version as a label.");
    put(t, "m2p_build_info{version=\"");
    put_label(t, M2P_VERSION);
    put(t, "\"} 1\n");
}

/* ===================================================================== Process */

/* Fields 14 (utime), 15 (stime), 22 (starttime, ticks after boot) and 24 (rss, pages) of
 * /proc/self/stat; the command name (field 2) may hold spaces and parentheses, so parsing
 * starts after its last ')'. */
static bool proc_stat(double *cpu, double *start_ticks, double *rss_pages)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return false;
    unsigned long long utime, stime, start;
    long long rss;
    /* after ") ": state(3) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                      "%*d %*d %llu %*u %lld",
               &utime, &stime, &start, &rss) != 4)
        return false;
    double hz = (double)sysconf(_SC_CLK_TCK);
    *cpu = (double)(utime + stime) / hz;
    *start_ticks = (double)start;
    *rss_pages = (double)rss;
    return true;
}

static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    double btime = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lf", &btime) == 1)
            break;
    if (f)
        fclose(f);
    return btime;
}

static double process_start_time(void)
{
    double cpu, start, rss;
    if (!proc_stat(&cpu, &start, &rss))
        return 0;
    return boot_time() + start / (double)sysconf(_SC_CLK_TCK);
}

double process_uptime_seconds(void)
{
    double start = process_start_time();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double t = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    return start > 0 && t > start ? t - start : 0;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}

static void process_metrics(text *t)
{
    double cpu, start, rss;
    if (proc_stat(&cpu, &start, &rss)) {
        header(t, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        put(t, "process_cpu_seconds_total %.17g\n", cpu);
        header(t, "process_resident_memory_bytes", "gauge", "Resident memory size.");
        put(t, "process_resident_memory_bytes %.17g\n", rss * (double)sysconf(_SC_PAGESIZE));
        header(t, "process_start_time_seconds", "gauge", "Start time since the Unix epoch.");
        put(t, "process_start_time_seconds %.17g\n",
            boot_time() + start / (double)sysconf(_SC_CLK_TCK));
    }
    int fds = open_fds();
    if (fds >= 0) {
        header(t, "process_open_fds", "gauge", "Open file descriptors.");
        put(t, "process_open_fds %d\n", fds);
    }
}

char *metrics_text_render(const admin_view *v, size_t *len)
{
    text t = {0};
    static const metrics none;
    const metrics *m = v->metrics ? v->metrics : &none;
    poll_counts(&t, m);
    poll_durations(&t, m);
    awards_and_scheduling(&t, m);
    notifications(&t, v->outbox);
    database_stats(&t, v->db_stats);
    engine_state(&t, v);
    process_metrics(&t);
    if (t.failed || !t.buf) {
        free(t.buf);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}
