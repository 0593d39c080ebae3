/* Sinks from the configuration (see notifiers.h). */
#include "notify/notifiers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify/socketio.h"
#include "notify/webhook.h"

static int add(notify_sink ***sinks, int *n, notify_sink *s)
{
    notify_sink **grown = realloc(*sinks, (size_t)(*n + 1) * sizeof *grown);
    if (!grown) {
        s->ops->free(s);
        return -1;
    }
    grown[(*n)++] = s;
    *sinks = grown;
    return 0;
}

static void free_all(notify_sink **sinks, int n)
{
    for (int i = 0; i < n; i++)
        sinks[i]->ops->free(sinks[i]);
    free(sinks);
}

static notify_sink *new_socketio(struct ev_loop *loop, const config *cfg)
{
    socketio_options o = {
        .url = config_string(cfg, CFG_SOCKETIO_URL),
        .namespace = config_string(cfg, CFG_SOCKETIO_NAMESPACE),
        .path = config_string(cfg, CFG_SOCKETIO_PATH),
        .auth = config_string(cfg, CFG_SOCKETIO_AUTH),
        .ack_timeout = config_number(cfg, CFG_NOTIFY_TIMEOUT),
    };
    return socketio_sink_new(loop, &o);
}

/* One sink per URL; two URLs with the same sink name (they differ only in userinfo or
 * query) would share their delivery rows, so that is refused. */
static int add_webhooks(struct ev_loop *loop, const config *cfg, notify_sink ***sinks, int *n,
                        char *err, size_t errlen)
{
    char *list = strdup(config_string(cfg, CFG_WEBHOOK_URLS)), *save = NULL;
    if (!list)
        return -1;
    int rc = 0;
    for (char *url = strtok_r(list, ",", &save); url && rc == 0;
         url = strtok_r(NULL, ",", &save)) {
        webhook_options o = {.url = url,
                             .secret = config_string(cfg, CFG_WEBHOOK_SECRET),
                             .timeout_s = config_number(cfg, CFG_NOTIFY_TIMEOUT)};
        notify_sink *s = webhook_sink_new(loop, NULL, &o);
        if (!s) {
            char name[320] = "";
            webhook_sink_name(url, name, sizeof name);
            snprintf(err, errlen, "WEBHOOK_URLS: cannot use %s", name[0] ? name : "a URL");
            rc = -1;
            break;
        }
        for (int i = 0; i < *n && rc == 0; i++)
            if (strcmp((*sinks)[i]->name, s->name) == 0) {
                snprintf(err, errlen, "WEBHOOK_URLS: %s is listed twice", s->name);
                s->ops->free(s);
                rc = -1;
            }
        if (rc == 0 && add(sinks, n, s) != 0) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    free(list);
    return rc;
}

int notifiers_new(struct ev_loop *loop, const config *cfg, notify_sink ***sinks, char *err,
                  size_t errlen)
{
    *sinks = NULL;
    int n = 0;
    if (config_string(cfg, CFG_SOCKETIO_URL)[0]) {
        notify_sink *s = new_socketio(loop, cfg);
        if (!s || add(sinks, &n, s) != 0) {
            snprintf(err, errlen, "SOCKETIO_URL: cannot create the Socket.IO client");
            free_all(*sinks, n);
            *sinks = NULL;
            return -1;
        }
    }
    if (add_webhooks(loop, cfg, sinks, &n, err, errlen) != 0) {
        free_all(*sinks, n);
        *sinks = NULL;
        return -1;
    }
    return n;
}
