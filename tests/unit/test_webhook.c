/* Unit tests for engine/notify/webhook.c and hmac.c: the HMAC against RFC 4231's vectors,
 * sink names without credentials, event ids that could inject headers, and the outcomes
 * that need no HTTP server: a refused connection, a receiver that accepts the connection
 * but never answers (timeout), and free() with deliveries in flight. What a real receiver
 * sees (headers, body, signature, 2xx/410/500) is tested by
 * tests/integration/webhook_sink.py against Python and Node receivers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "check.h"
#include "http.h"
#include "notify/hmac.h"
#include "notify/webhook.h"

/* ---- helpers ------------------------------------------------------------------------- */

typedef struct outcome_log {
    int calls;
    notify_outcome outcome;
    char error[256];
} outcome_log;

static void record(void *user, notify_outcome outcome, const char *error)
{
    outcome_log *l = user;
    l->calls++;
    l->outcome = outcome;
    snprintf(l->error, sizeof l->error, "%s", error ? error : "(null)");
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    *(int *)w->data = 1;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until `l` has an outcome; a generous deadline turns a hang into a failure. */
static void run_until_done(struct ev_loop *loop, outcome_log *l)
{
    int expired = 0;
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, 30.0, 0.0);
    deadline.data = &expired;
    ev_timer_start(loop, &deadline);
    while (l->calls == 0 && !expired)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &deadline);
    CHECK(!expired, "no outcome within 30 s");
}

/* A loopback TCP socket bound to a free port; listening (connections complete in the
 * kernel's backlog but are never answered) or not (connections are refused). */
static int loopback_socket(int listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        (listening && listen(fd, 16) != 0) ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("loopback socket");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static notify_event event(const char *id, const char *payload)
{
    return (notify_event){.event_id = id, .player_id = 1, .payload = payload,
                          .payload_len = payload ? strlen(payload) : 0};
}

/* ---- hmac ---------------------------------------------------------------------------- */

static void test_hmac_vectors(void)
{
    char hex[HMAC_SHA256_HEX_LEN + 1];
    /* RFC 4231 test case 2, the message split into pieces as the signature passes it. */
    hmac_piece jefe[] = {{"what do ya", 10}, {"", 0}, {" want for nothing?", 18}};
    CHECK(hmac_sha256_hex("Jefe", 4, jefe, 3, hex) == 0, "hmac failed");
    CHECK(strcmp(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0,
          "RFC 4231 case 2: %s", hex);

    unsigned char key[20];
    memset(key, 0x0b, sizeof key);
    hmac_piece hi[] = {{"Hi There", 8}};
    CHECK(hmac_sha256_hex(key, sizeof key, hi, 1, hex) == 0, "hmac failed");
    CHECK(strcmp(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7") == 0,
          "RFC 4231 case 1: %s", hex);

    /* Empty key and message (Python: hmac.new(b"", b"", "sha256")). */
    CHECK(hmac_sha256_hex(NULL, 0, NULL, 0, hex) == 0, "hmac with empty key failed");
    CHECK(strcmp(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad") == 0,
          "empty key: %s", hex);
}

/* ---- names --------------------------------------------------------------------------- */

static void expect_name(const char *url, const char *want)
{
    char name[320];
    int rc = webhook_sink_name(url, name, sizeof name);
    CHECK(rc == 0 && strcmp(name, want) == 0, "%s -> rc %d \"%s\", want \"%s\"", url, rc, name,
          want);
}

static void expect_no_name(const char *url, size_t cap)
{
    char name[320] = "untouched";
    CHECK(webhook_sink_name(url, name, cap) == -1 && name[0] == '\0',
          "%s should have no name, got \"%s\"", url ? url : "(null)", name);
}

static void test_names(void)
{
    expect_name("http://127.0.0.1:8080/hook", "webhook:http://127.0.0.1:8080/hook");
    expect_name("https://user:pw-secret@example.com:8443/a/b?token=q-secret#frag-secret",
                "webhook:https://example.com:8443/a/b");
    expect_name("https://user@example.com?k=v", "webhook:https://example.com/");
    expect_name("http://example.com/x#only-fragment", "webhook:http://example.com/x");
    /* One receiver, one name: default port, host case and dot segments normalised. */
    expect_name("https://Example.COM:443/a/../hook", "webhook:https://example.com/hook");
    expect_name("http://example.com:80", "webhook:http://example.com/");
    expect_name("http://[::1]:8080/h", "webhook:http://[::1]:8080/h");
    expect_no_name("ftp://example.com/x", 320);
    expect_no_name("example.com/hook", 320);
    expect_no_name("http://exa mple.com/", 320);
    expect_no_name("http://example.com/\r\nX-Evil: 1", 320);
    expect_no_name(NULL, 320);
    expect_no_name("http://example.com/hook", 20); /* does not fit */
}

/* ---- sink ---------------------------------------------------------------------------- */

static void test_new_and_refused_events(struct ev_loop *loop)
{
    webhook_options o = {.url = "http://127.0.0.1:9/hook?key=k", .secret = "s3", .timeout_s = 1};
    notify_sink *s = webhook_sink_new(loop, NULL, &o);
    CHECK(s != NULL, "sink not created");
    if (!s)
        return;
    CHECK(strcmp(s->name, "webhook:http://127.0.0.1:9/hook") == 0, "name %s", s->name);
    CHECK(s->ops->ready(s), "a new webhook sink is ready");

    outcome_log l = {0};
    const char *bad_ids[] = {"", "12\r\nX-Evil: 1", "12 ", "-1", "abc", "123456789012345678901"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        notify_event ev = event(bad_ids[i], "{}");
        CHECK(s->ops->deliver(s, &ev, record, &l) == -1, "event id \"%s\" accepted", bad_ids[i]);
    }
    notify_event no_id = event(NULL, "{}"), no_payload = event("1", NULL);
    CHECK(s->ops->deliver(s, &no_id, record, &l) == -1, "NULL event id accepted");
    CHECK(s->ops->deliver(s, &no_payload, record, &l) == -1, "NULL payload accepted");
    CHECK(l.calls == 0, "done called for a refused event");
    s->ops->free(s);

    o.url = "ftp://127.0.0.1/hook";
    CHECK(webhook_sink_new(loop, NULL, &o) == NULL, "an ftp:// sink was created");
}

/* The error names neither the userinfo nor the path or query of the URL. */
static void test_connection_refused(struct ev_loop *loop)
{
    int port, fd = loopback_socket(0, &port);
    char url[200];
    snprintf(url, sizeof url, "http://user:pw-secret@127.0.0.1:%d/path-secret?q=q-secret", port);
    webhook_options o = {.url = url, .secret = "key-secret", .timeout_s = 10};
    notify_sink *s = webhook_sink_new(loop, NULL, &o);
    outcome_log l = {0};
    notify_event ev = event("17", "{\"event_id\":\"17\"}");
    CHECK(s && s->ops->deliver(s, &ev, record, &l) == 0, "deliver did not start");
    CHECK(l.calls == 0, "done called from inside deliver");
    run_until_done(loop, &l);
    CHECK(l.calls == 1 && l.outcome == NOTIFY_RETRY, "refused: %d calls, outcome %d", l.calls,
          l.outcome);
    CHECK(l.error[0] != '\0', "no error text");
    CHECK(!strstr(l.error, "secret"), "error leaks part of the URL or the key: %s", l.error);
    CHECK(s->ops->ready(s), "a refused connection must not stop the sink");
    s->ops->free(s);
    close(fd);
}

static void test_timeout(struct ev_loop *loop)
{
    int port, fd = loopback_socket(1, &port);
    char url[100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    webhook_options o = {.url = url, .secret = "k", .timeout_s = 0.2};
    notify_sink *s = webhook_sink_new(loop, NULL, &o);
    outcome_log l = {0};
    notify_event ev = event("18", "{}");
    CHECK(s && s->ops->deliver(s, &ev, record, &l) == 0, "deliver did not start");
    run_until_done(loop, &l);
    CHECK(l.outcome == NOTIFY_RETRY && strcmp(l.error, "timeout after 200 ms") == 0,
          "timeout: outcome %d, error \"%s\"", l.outcome, l.error);
    s->ops->free(s);
    close(fd);
}

/* One connection on `fd`: reads the whole POST (headers and Content-Length bytes, so that
 * closing sends no RST), answers with `reply` and closes. */
static void *answer_once(void *arg)
{
    const char **job = arg; /* {listening fd as text, reply} */
    int fd = accept(atoi(job[0]), NULL, NULL);
    char buf[8192];
    size_t len = 0, want = 0;
    while (fd >= 0 && len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
        if (end && !want)
            want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
        if (want && len >= want)
            break;
    }
    if (fd >= 0) {
        send(fd, job[1], strlen(job[1]), MSG_NOSIGNAL);
        close(fd);
    }
    return NULL;
}

/* A receiver cut inside the headers after "200 OK" has not acknowledged anything: the event
 * is retried, not counted as delivered (issue 12; engine/http.c waits for the blank line). */
static void test_cut_after_200(struct ev_loop *loop)
{
    static const char *const replies[] = {"HTTP/1.1 200 OK\r\n",
                                          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
                                          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    for (int i = 0; i < 3; i++) {
        int port, fd = loopback_socket(1, &port);
        char url[100], fd_text[16];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
        snprintf(fd_text, sizeof fd_text, "%d", fd);
        const char *job[2] = {fd_text, replies[i]};
        pthread_t t;
        pthread_create(&t, NULL, answer_once, job);
        webhook_options o = {.url = url, .secret = "k", .timeout_s = 5};
        notify_sink *s = webhook_sink_new(loop, NULL, &o);
        outcome_log l = {0};
        notify_event ev = event("19", "{}");
        CHECK(s && s->ops->deliver(s, &ev, record, &l) == 0, "deliver did not start");
        run_until_done(loop, &l);
        pthread_join(t, NULL);
        notify_outcome want = i == 2 ? NOTIFY_DELIVERED : NOTIFY_RETRY;
        CHECK(l.outcome == want, "answer cut after %zu bytes: outcome %d (%s), expected %d",
              strlen(replies[i]), l.outcome, l.error, want);
        s->ops->free(s);
        close(fd);
    }
}

/* free() finishes every delivery in flight, inside the call, exactly once; with a shared
 * client the answer that still arrives later is dropped without touching the freed sink
 * (ASan would see it). */
static void test_free_in_flight(struct ev_loop *loop, http_client *shared)
{
    int port, fd = loopback_socket(1, &port);
    char url[100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    webhook_options o = {.url = url, .secret = "", .timeout_s = 0.2};
    notify_sink *s = webhook_sink_new(loop, shared, &o);
    outcome_log a = {0}, b = {0};
    notify_event e1 = event("1", "{}"), e2 = event("2", "{}");
    CHECK(s && s->ops->deliver(s, &e1, record, &a) == 0 && s->ops->deliver(s, &e2, record, &b) == 0,
          "deliver did not start");
    s->ops->free(s);
    CHECK(a.calls == 1 && b.calls == 1, "free: %d and %d calls", a.calls, b.calls);
    CHECK(a.outcome == NOTIFY_RETRY && strcmp(a.error, "shutting down") == 0,
          "free: outcome %d \"%s\"", a.outcome, a.error);
    if (shared) {
        while (http_in_flight(shared) > 0)  /* the requests time out after 200 ms */
            ev_run(loop, EVRUN_ONCE);
        CHECK(a.calls == 1 && b.calls == 1, "a done callback ran twice");
    }
    close(fd);
}

int main(void)
{
    struct ev_loop *loop = ev_default_loop(0);
    test_hmac_vectors();
    test_names();
    test_new_and_refused_events(loop);
    test_connection_refused(loop);
    test_timeout(loop);
    test_cut_after_200(loop);
    test_free_in_flight(loop, NULL);
    http_client *shared = http_client_new(loop, NULL);
    test_free_in_flight(loop, shared);
    http_client_free(shared);
    http_global_cleanup();
    return check_summary();
}
