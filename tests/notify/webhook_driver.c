/* Test driver for the webhook sink (tests/integration/webhook_sink.py): delivers events
 * to one URL the way the outbox would and prints each outcome as a JSON line.
 *
 *   webhook_driver URL TIMEOUT_S [--parallel] ID=PAYLOAD_FILE...
 *
 * WEBHOOK_SECRET comes from the environment, as in the engine. Events are delivered one
 * after the other (each waits for its outcome), or all at once with --parallel. Output:
 *   {"name": "webhook:http://127.0.0.1:8080/hook"}
 *   {"event_id": "7", "outcome": "retry", "error": "HTTP 500", "ready": true}
 * outcome is delivered, retry, gone, or refused (deliver() returned -1). The sink's log
 * lines go to stderr. Exit status 0 unless the arguments are wrong. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include "http.h"
#include "log.h"
#include "notify/webhook.h"

typedef struct pending {
    notify_sink *sink;
    char id[64];
    char *payload;
    size_t payload_len;
    bool finished;
} pending;

static const char *outcome_name(notify_outcome o)
{
    switch (o) {
    case NOTIFY_DELIVERED: return "delivered";
    case NOTIFY_RETRY: return "retry";
    case NOTIFY_GONE: return "gone";
    }
    return "?";
}

static void print_outcome(const pending *p, const char *outcome, const char *error)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "event_id", p->id);
    cJSON_AddStringToObject(j, "outcome", outcome);
    if (error)
        cJSON_AddStringToObject(j, "error", error);
    cJSON_AddBoolToObject(j, "ready", p->sink->ops->ready(p->sink));
    char *text = cJSON_PrintUnformatted(j);
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    cJSON_Delete(j);
}

static void on_done(void *user, notify_outcome outcome, const char *error)
{
    pending *p = user;
    p->finished = true;
    print_outcome(p, outcome_name(outcome), error);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (buf && fseek(f, 0, SEEK_SET) == 0 && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    if (f)
        fclose(f);
    return buf;
}

static int parse_event(const char *arg, pending *p)
{
    const char *eq = strchr(arg, '=');
    if (!eq || (size_t)(eq - arg) >= sizeof p->id)
        return -1;
    memcpy(p->id, arg, (size_t)(eq - arg));
    p->id[eq - arg] = '\0';
    p->payload = read_file(eq + 1, &p->payload_len);
    return p->payload ? 0 : -1;
}

/* Starts one delivery; a refusal is an outcome of its own. */
static void start(pending *p)
{
    notify_event ev = {.event_id = p->id, .player_id = 1, .payload = p->payload,
                       .payload_len = p->payload_len};
    if (p->sink->ops->deliver(p->sink, &ev, on_done, p) != 0) {
        p->finished = true;
        print_outcome(p, "refused", NULL);
    }
}

static bool all_finished(const pending *ps, int n)
{
    for (int i = 0; i < n; i++) {
        if (!ps[i].finished)
            return false;
    }
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: webhook_driver URL TIMEOUT_S [--parallel] ID=PAYLOAD_FILE...\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    bool parallel = strcmp(argv[3], "--parallel") == 0;
    int first = parallel ? 4 : 3, n = argc - first;
    struct ev_loop *loop = ev_default_loop(0);
    log_configure(LOG_DEBUG, LOG_FORMAT_JSON, stderr);
    const char *secret = getenv("WEBHOOK_SECRET");
    webhook_options o = {.url = argv[1], .secret = secret, .timeout_s = atof(argv[2])};
    notify_sink *sink = webhook_sink_new(loop, NULL, &o);
    pending *ps = calloc((size_t)(n > 0 ? n : 1), sizeof *ps);
    if (!sink || !ps || n <= 0) {
        fprintf(stderr, "webhook_driver: the sink could not be created\n");
        return 2;
    }
    cJSON *name = cJSON_CreateObject();
    cJSON_AddStringToObject(name, "name", sink->name);
    char *name_text = cJSON_PrintUnformatted(name);
    printf("%s\n", name_text);
    free(name_text);
    cJSON_Delete(name);
    for (int i = 0; i < n; i++) {
        ps[i].sink = sink;
        if (parse_event(argv[first + i], &ps[i]) != 0)
            return usage();
    }
    for (int i = 0; i < n; i++) {
        start(&ps[i]);
        while (!parallel && !ps[i].finished)
            ev_run(loop, EVRUN_ONCE);
    }
    while (!all_finished(ps, n))
        ev_run(loop, EVRUN_ONCE);
    sink->ops->free(sink);
    for (int i = 0; i < n; i++)
        free(ps[i].payload);
    free(ps);
    http_global_cleanup();
    return 0;
}
