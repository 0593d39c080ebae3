/* Structured logging.
 *
 * Every record is `timestamp` (ISO 8601 UTC, milliseconds), `level`, `event`, then context
 * fields, the shape of the old service's structlog output so existing log pipelines keep
 * parsing it. The text format is for people at a terminal: "time LEVEL event key=value ...".
 */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static struct {
    log_level min_level;
    log_format format;
    FILE *out;
} logger = {LOG_INFO, LOG_FORMAT_JSON, NULL};

static const char *const level_names[] = {"debug", "info", "warning", "error"};

void log_configure(log_level min_level, log_format format, FILE *out)
{
    logger.min_level = min_level;
    if (format == LOG_FORMAT_AUTO)
        format = isatty(fileno(out ? out : stdout)) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    logger.format = format;
    logger.out = out;
}

bool log_enabled(log_level level) { return level >= logger.min_level; }

const char *log_level_name(log_level level) { return level_names[level]; }

bool log_level_parse(const char *name, log_level *out)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    if (strcasecmp(name, "warn") == 0) {
        *out = LOG_WARNING;
        return true;
    }
    return false;
}

bool log_format_parse(const char *name, log_format *out)
{
    if (strcasecmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else if (strcasecmp(name, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcasecmp(name, "auto") == 0)
        *out = LOG_FORMAT_AUTO;
    else
        return false;
    return true;
}

static void format_timestamp(char *buf, size_t len)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", now.tv_nsec / 1000000L);
}

static void emit_text(FILE *out, const char *ts, log_level level, const char *event,
                      const cJSON *fields)
{
    fprintf(out, "%s %-7s %s", ts, level_names[level], event);
    for (const cJSON *f = fields ? fields->child : NULL; f; f = f->next) {
        if (cJSON_IsString(f)) {
            fprintf(out, " %s=%s", f->string, f->valuestring);
        } else {
            char *v = cJSON_PrintUnformatted(f);
            fprintf(out, " %s=%s", f->string, v ? v : "?");
            free(v);
        }
    }
    fputc('\n', out);
}

static void emit_json(FILE *out, const char *ts, log_level level, const char *event,
                      cJSON *fields)
{
    cJSON *record = cJSON_CreateObject();
    cJSON_AddStringToObject(record, "timestamp", ts);
    cJSON_AddStringToObject(record, "level", level_names[level]);
    cJSON_AddStringToObject(record, "event", event);
    /* Move the context fields after the fixed ones, keeping their order. */
    while (fields && fields->child) {
        cJSON *f = cJSON_DetachItemViaPointer(fields, fields->child);
        if (strcmp(f->string, "timestamp") == 0 || strcmp(f->string, "level") == 0 ||
            strcmp(f->string, "event") == 0) {
            cJSON_Delete(f); /* never let context overwrite the fixed fields */
            continue;
        }
        cJSON_AddItemToObject(record, f->string, f);
    }
    char *line = cJSON_PrintUnformatted(record);
    if (line) {
        fputs(line, out);
        fputc('\n', out);
        free(line);
    }
    cJSON_Delete(record);
}

void log_emit(log_level level, const char *event, cJSON *fields)
{
    if (!log_enabled(level)) {
        cJSON_Delete(fields);
        return;
    }
    FILE *out = logger.out ? logger.out : stdout;
    char ts[40];
    format_timestamp(ts, sizeof ts);
    if (logger.format == LOG_FORMAT_TEXT)
        emit_text(out, ts, level, event, fields);
    else
        emit_json(out, ts, level, event, fields);
    fflush(out);
    cJSON_Delete(fields);
}

void log_message(log_level level, const char *event, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "message", msg);
    log_emit(level, event, fields);
}
