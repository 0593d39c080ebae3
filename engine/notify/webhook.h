/* Webhook sink: POSTs each mining_reward to one URL, signed with HMAC-SHA256 (see
 * docs/notifications.md, "Webhooks", for what a receiver sees and how it verifies).
 *
 * One sink per URL of WEBHOOK_URLS. Outcomes: a 2xx answer is NOTIFY_DELIVERED; 410 Gone is
 * NOTIFY_GONE and the sink is never ready again (logged once as webhook_gone); any other
 * status (3xx included: redirects are not followed), a timeout or a connection failure is
 * NOTIFY_RETRY with "HTTP 500", "timeout after 10000 ms" or libcurl's message as the error. */
#ifndef M2P_NOTIFY_WEBHOOK_H
#define M2P_NOTIFY_WEBHOOK_H

#include <stddef.h>

#include "http.h"
#include "notify/sink.h"

struct ev_loop;

/* Bound on a receiver's answer body, which is read and ignored. A larger one makes the
 * delivery a NOTIFY_RETRY ("response body too large"), whatever the status. Applies when
 * the sink has its own HTTP client; a shared client keeps its own max_body_bytes. */
#define WEBHOOK_MAX_RESPONSE_BYTES ((size_t)64 << 10)

typedef struct webhook_options {
    const char *url;     /* http:// or https://; userinfo and query reach the receiver but
                            never the sink's name, logs or errors */
    const char *secret;  /* WEBHOOK_SECRET; NULL or "" = requests carry no X-M2P-Signature */
    double timeout_s;    /* NOTIFY_TIMEOUT: one whole request; <= 0 = 10 s */
} webhook_options;

/* The sink's name for `url`: "webhook:" + the URL rebuilt by libcurl's URL parser without
 * userinfo, query and fragment (they may hold tokens), with the host in lower case and
 * without a default port (one receiver, one name), e.g.
 * "https://u:pw@example.com:8443/hook?key=k" -> "webhook:https://example.com:8443/hook".
 * The name keys the m2p_deliveries rows and appears in logs. Returns 0, or -1 when url is
 * not an http(s) URL libcurl accepts or the name does not fit in `cap` (out is then ""). */
int webhook_sink_name(const char *url, char *out, size_t cap);

/* `shared`: an HTTP client to send through (not owned; it must outlive the sink), or NULL
 * for a client of the sink's own. The secret is copied, and wiped when the sink is freed.
 * Returns NULL when the URL is rejected (webhook_sink_name) or on allocation failure.
 * deliver() returns -1 for an event_id that is not 1-20 ASCII digits: it becomes a header. */
notify_sink *webhook_sink_new(struct ev_loop *loop, http_client *shared,
                              const webhook_options *o);

#endif
