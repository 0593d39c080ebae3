/* The admin endpoint's pure parts: ADMIN_LISTEN parsing (engine/admin/admin.h) and the
 * Prometheus text of engine/admin/metrics_text.h (label escaping, cumulative buckets). */
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/metrics_text.h"
#include "check.h"

static bool parses(const char *text, bool *loopback)
{
    struct sockaddr_storage addr;
    socklen_t len;
    char err[256];
    return admin_parse_listen(text, &addr, &len, loopback, err, sizeof err) == 0;
}

static void test_listen_addresses(void)
{
    bool lo = false;
    CHECK(parses("127.0.0.1:9464", &lo) && lo, "IPv4 loopback");
    CHECK(parses("127.8.0.1:1", &lo) && lo, "all of 127/8 is loopback");
    CHECK(parses("localhost:9464", &lo) && lo, "localhost");
    CHECK(parses("[::1]:9464", &lo) && lo, "IPv6 loopback");
    CHECK(parses("0.0.0.0:9464", &lo) && !lo, "any address is not loopback");
    CHECK(parses("[::]:9464", &lo) && !lo, "IPv6 any is not loopback");
    CHECK(parses("[::ffff:10.0.0.1]:80", &lo) && !lo, "a mapped non-loopback address");
    const char *bad[] = {"", "9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                         "127.0.0.1:65536", "127.0.0.1:94a4", "::1:9464", "[::1]9464",
                         "example.com:9464", "127.0.0.1:9464 ", NULL};
    for (int i = 0; bad[i]; i++)
        CHECK(!parses(bad[i], &lo), "\"%s\" is refused", bad[i]);
}

static void test_label_values_are_escaped(void)
{
    metrics m;
    metrics_init(&m);
    pool_metrics *p = metrics_pool(&m, "we\"ird\\pool\nname");
    metrics_record_poll(&m, p, true, 3);     /* 0.003 s: first bucket */
    metrics_record_poll(&m, p, true, 200);   /* 0.2 s: the 0.25 bucket */
    metrics_record_poll(&m, p, false, 60000); /* beyond the last bound: +Inf only */
    metrics_record_poll(&m, p, false, -1);   /* no answer: not timed */
    admin_view v = {.metrics = &m, .script_generation = "x"};
    size_t len = 0;
    char *text = metrics_text_render(&v, &len);
    CHECK(text && strlen(text) == len, "rendered");
    CHECK_CONTAINS(text, "m2p_polls_total{pool=\"we\\\"ird\\\\pool\\nname\",outcome=\"success\"} 2\n");
    CHECK_CONTAINS(text, "outcome=\"failure\"} 2\n");
    CHECK_CONTAINS(text, "le=\"0.005\"} 1\n");
    CHECK_CONTAINS(text, "le=\"0.1\"} 1\n");
    CHECK_CONTAINS(text, "le=\"0.25\"} 2\n");
    CHECK_CONTAINS(text, "le=\"10\"} 2\n");
    CHECK_CONTAINS(text, "le=\"+Inf\"} 3\n");
    CHECK_CONTAINS(text, "m2p_poll_duration_seconds_count{pool=\"we\\\"ird\\\\pool\\nname\"} 3\n");
    CHECK(!strstr(text, "m2p_database_up"), "no database gauge without a database");
    CHECK_CONTAINS(text, "# TYPE m2p_poll_duration_seconds histogram\n");
    CHECK_CONTAINS(text, "m2p_build_info{version=\"" M2P_VERSION "\"} 1\n");
    CHECK_CONTAINS(text, "process_open_fds ");
    CHECK_CONTAINS(text, "# TYPE m2p_player_entries gauge\nm2p_player_entries 0\n");
    CHECK_CONTAINS(text, "# TYPE m2p_account_entries gauge\nm2p_account_entries 0\n");
    free(text);
    metrics_free(&m);
}

/* The awards, accounts, breaker and scheduler-lag series of every pool, and the database's
 * numbers only once db_stats has them. */
static void test_awards_accounts_breaker_lag(void)
{
    metrics m;
    metrics_init(&m);
    pool_metrics *p = metrics_pool(&m, "zpool");
    metrics_record_award(&m, p, 7, 1.5, 150, false);
    metrics_record_award(&m, p, 7, 0.25, 25, false);
    metrics_record_award(&m, p, 8, 5000, 500000, true); /* held: not in the paid sums */
    p->accounts_tracked = 5;
    p->accounts_owned = 3;
    p->breaker = BREAKER_OPEN;
    p->lag.count = 4;
    p->lag.sum = 70.5;
    p->lag.buckets[0] = 2; /* <= 0.01 s */
    p->lag.buckets[7] = 1; /* <= 60 s */
    admin_view v = {.metrics = &m, .script_generation = "x"};
    size_t len = 0;
    char *text = metrics_text_render(&v, &len);
    CHECK_CONTAINS(text, "# TYPE m2p_advc_awarded_total counter\n");
    CHECK_CONTAINS(text, "m2p_advc_awarded_total{pool=\"zpool\"} 1.75\n");
    CHECK_CONTAINS(text, "m2p_ap_awarded_total{pool=\"zpool\"} 175\n");
    CHECK_CONTAINS(text, "m2p_awards_held_total{pool=\"zpool\"} 1\n");
    CHECK_CONTAINS(text, "m2p_awards_total{pool=\"zpool\"} 2\n");
    CHECK_CONTAINS(text, "# TYPE m2p_accounts_tracked gauge\n");
    CHECK_CONTAINS(text, "m2p_accounts_tracked{pool=\"zpool\"} 5\n");
    CHECK_CONTAINS(text, "m2p_accounts_owned{pool=\"zpool\"} 3\n");
    CHECK_CONTAINS(text, "m2p_pool_breaker_state{pool=\"zpool\"} 1\n");
    CHECK_CONTAINS(text, "# TYPE m2p_scheduler_lag_seconds histogram\n");
    CHECK_CONTAINS(text, "m2p_scheduler_lag_seconds_bucket{pool=\"zpool\",le=\"0.01\"} 2\n");
    CHECK_CONTAINS(text, "m2p_scheduler_lag_seconds_bucket{pool=\"zpool\",le=\"15\"} 2\n");
    CHECK_CONTAINS(text, "m2p_scheduler_lag_seconds_bucket{pool=\"zpool\",le=\"60\"} 3\n");
    CHECK_CONTAINS(text, "m2p_scheduler_lag_seconds_bucket{pool=\"zpool\",le=\"900\"} 3\n");
    CHECK_CONTAINS(text, "m2p_scheduler_lag_seconds_bucket{pool=\"zpool\",le=\"+Inf\"} 4\n");
    CHECK_CONTAINS(text, "m2p_scheduler_lag_seconds_sum{pool=\"zpool\"} 70.5\n");
    CHECK_CONTAINS(text, "m2p_scheduler_lag_seconds_count{pool=\"zpool\"} 4\n");
    CHECK(!strstr(text, "m2p_outbox_depth") && !strstr(text, "m2p_held_awards_awaiting"),
          "no database statistics without db_stats");
    free(text);
    metrics_free(&m);
}

int main(void)
{
    test_listen_addresses();
    test_label_values_are_escaped();
    test_awards_accounts_breaker_lag();
    return check_summary();
}
