/* Structured logging: one JSON object per line (LOG_FORMAT=json) or readable text. */
#ifndef M2P_LOG_H
#define M2P_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR } log_level;
/* In the order of LOG_FORMAT's words in config.c (json, text, auto). */
typedef enum { LOG_FORMAT_JSON, LOG_FORMAT_TEXT, LOG_FORMAT_AUTO } log_format;

/* Defaults: info, json, stdout. `out` is not owned. LOG_FORMAT_AUTO is decided here, once:
 * text when `out` is a terminal, json otherwise (journald, files, pipes). */
void log_configure(log_level min_level, log_format format, FILE *out);
bool log_enabled(log_level level);

/* Parse "debug"/"info"/"warning"/"warn"/"error" (any case). Returns false if unknown. */
bool log_level_parse(const char *name, log_level *out);
bool log_format_parse(const char *name, log_format *out);
const char *log_level_name(log_level level);

/* Writes one record: timestamp, level, event, then every member of `fields` in order.
 * Takes ownership of `fields` (may be NULL). */
void log_emit(log_level level, const char *event, cJSON *fields);

/* Shorthand for a record whose only context is a human-readable message. */
void log_message(log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
