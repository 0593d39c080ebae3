/* GET /metrics: the engine's counters in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), plus the standard process
 * metrics read from /proc/self. Names: m2p_ prefix, _total for counters, seconds. */
#ifndef M2P_ADMIN_METRICS_TEXT_H
#define M2P_ADMIN_METRICS_TEXT_H

#include <stddef.h>

#include "admin/admin.h"

/* The exposition text (caller frees) and its length; NULL when out of memory. */
char *metrics_text_render(const admin_view *v, size_t *len);

/* Seconds since this process started (from /proc/self/stat). */
double process_uptime_seconds(void);

#endif
