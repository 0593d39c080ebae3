/* A test driver for the Socket.IO sink (engine/notify/socketio.c), standing in for the
 * outbox: it delivers the events it reads on stdin and prints every outcome, so that
 * tests/integration/socketio_sink.py can run the sink against the real socket.io server.
 *
 *   sio_driver URL [--namespace NS] [--path P] [--ack-timeout S] [--reconnect-min S]
 *              [--reconnect-max S] [--refused-retry S] [--redeliver] [--quit-on-outcome]
 *   env SIO_DRIVER_AUTH: the auth JSON (an environment variable, not argv, like a secret)
 *
 * stdin, one command a line:   send <event_id> <payload JSON object>    |    quit
 * stdout, one JSON object a line:
 *   {"ready": true|false}
 *   {"outcome": "delivered"|"retry"|"gone", "event_id": "...", "error": "..."|null}
 * Like the outbox, it delivers only while the sink is ready (events wait until then), and
 * with --redeliver an event that ended in "retry" is delivered again. stderr: the log.
 * EOF on stdin is "quit": the sink is freed (in-flight events end "retry" "shutting down").
 * --quit-on-outcome: "quit" from inside the first done callback (free() from a callback). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "http.h"
#include "log.h"
#include "notify/socketio.h"

typedef struct event_item {
    char *event_id;
    char *payload;
    struct event_item *next;   /* in the waiting list */
} event_item;

static struct {
    struct ev_loop *loop;
    notify_sink *sink;
    event_item *waiting, *waiting_tail;
    bool redeliver, quit_on_outcome, quitting;
    char line[1 << 17];
    size_t line_len;
    ev_io stdin_w;
} D;

static void print_json(cJSON *j)
{
    char *text = cJSON_PrintUnformatted(j);
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    cJSON_Delete(j);
}

static void item_free(event_item *it)
{
    free(it->event_id);
    free(it->payload);
    free(it);
}

static void wait_push(event_item *it)
{
    it->next = NULL;
    if (D.waiting_tail)
        D.waiting_tail->next = it;
    else
        D.waiting = it;
    D.waiting_tail = it;
}

static void deliver_waiting(void);
static void quit(void);

static void on_done(void *user, notify_outcome outcome, const char *error)
{
    event_item *it = user;
    static const char *const names[] = {"delivered", "retry", "gone"};
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "outcome", names[outcome]);
    cJSON_AddStringToObject(j, "event_id", it->event_id);
    if (error)
        cJSON_AddStringToObject(j, "error", error);
    else
        cJSON_AddNullToObject(j, "error");
    print_json(j);
    if (outcome == NOTIFY_RETRY && D.redeliver && !D.quitting) {
        wait_push(it);
        deliver_waiting();
    } else {
        item_free(it);
    }
    if (D.quit_on_outcome && !D.quitting)
        quit();  /* frees the sink from inside its own done callback */
}

static void deliver_waiting(void)
{
    while (D.waiting && D.sink->ops->ready(D.sink)) {
        event_item *it = D.waiting;
        D.waiting = it->next;
        if (!D.waiting)
            D.waiting_tail = NULL;
        notify_event ev = {.event_id = it->event_id, .player_id = 1, .payload = it->payload,
                           .payload_len = strlen(it->payload)};
        if (D.sink->ops->deliver(D.sink, &ev, on_done, it) != 0) {
            fprintf(stderr, "sio_driver: deliver returned -1 for %s\n", it->event_id);
            wait_push(it);
            return;
        }
    }
}

static void on_ready(void *user, notify_sink *s)
{
    (void)user;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ready", s->ops->ready(s));
    print_json(j);
    deliver_waiting();
}

static void quit(void)
{
    D.quitting = true;
    ev_io_stop(D.loop, &D.stdin_w);
    D.sink->ops->free(D.sink);
    D.sink = NULL;
    while (D.waiting) {
        event_item *it = D.waiting;
        D.waiting = it->next;
        item_free(it);
    }
    ev_break(D.loop, EVBREAK_ALL);
}

static void on_command(char *line)
{
    if (strcmp(line, "quit") == 0) {
        quit();
        return;
    }
    char *id = NULL, *payload = NULL;
    if (strncmp(line, "send ", 5) == 0) {
        id = line + 5;
        payload = strchr(id, ' ');
    }
    if (!payload) {
        fprintf(stderr, "sio_driver: unknown command: %s\n", line);
        return;
    }
    *payload++ = '\0';
    event_item *it = calloc(1, sizeof *it);
    it->event_id = strdup(id);
    it->payload = strdup(payload);
    wait_push(it);
    deliver_waiting();
}

static void on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    ssize_t n = read(w->fd, D.line + D.line_len, sizeof D.line - 1 - D.line_len);
    if (n <= 0) {
        quit();
        return;
    }
    D.line_len += (size_t)n;
    char *nl;
    while (!D.quitting && (nl = memchr(D.line, '\n', D.line_len)) != NULL) {
        *nl = '\0';
        on_command(D.line);
        size_t used = (size_t)(nl + 1 - D.line);
        memmove(D.line, nl + 1, D.line_len - used);
        D.line_len -= used;
    }
    if (D.line_len == sizeof D.line - 1) {
        fprintf(stderr, "sio_driver: command line too long\n");
        quit();
    }
}

int main(int argc, char **argv)
{
    socketio_options o = {0};
    if (argc < 2) {
        fprintf(stderr, "usage: sio_driver URL [options] (see the source)\n");
        return 2;
    }
    o.url = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--redeliver") == 0 || strcmp(a, "--quit-on-outcome") == 0) {
            *(a[2] == 'r' ? &D.redeliver : &D.quit_on_outcome) = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "sio_driver: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--namespace") == 0)
            o.namespace = v;
        else if (strcmp(a, "--path") == 0)
            o.path = v;
        else if (strcmp(a, "--ack-timeout") == 0)
            o.ack_timeout = atof(v);
        else if (strcmp(a, "--reconnect-min") == 0)
            o.reconnect_min = atof(v);
        else if (strcmp(a, "--reconnect-max") == 0)
            o.reconnect_max = atof(v);
        else if (strcmp(a, "--refused-retry") == 0)
            o.refused_retry = atof(v);
        else {
            fprintf(stderr, "sio_driver: unknown option %s\n", a);
            return 2;
        }
    }
    o.auth = getenv("SIO_DRIVER_AUTH");
    log_configure(LOG_DEBUG, LOG_FORMAT_JSON, stderr);
    http_global_init();
    D.loop = ev_default_loop(0);
    D.sink = socketio_sink_new(D.loop, &o);
    if (!D.sink)
        return 1;
    D.sink->on_ready = on_ready;
    ev_io_init(&D.stdin_w, on_stdin, 0, EV_READ);
    ev_io_start(D.loop, &D.stdin_w);
    ev_run(D.loop, 0);
    ev_loop_destroy(D.loop);
    http_global_cleanup();
    return 0;
}
