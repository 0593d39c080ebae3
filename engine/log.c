/* Structured logging.
 *
 * Every record is `timestamp` (ISO 8601 UTC, milliseconds), `level`, `event`, then context
 * fields, the shape of the old service's structlog output so existing log pipelines keep
 * parsing it. The text format is for people at a terminal: "time LEVEL event key=value ...".
 *
 * Usernames, wallets and pool answers reach the log, so neither format copies text raw: a
 * JSON line is valid UTF-8 (log shippers reject a line that is not), and a text line is one
 * line with nothing a terminal would act on (a newline would forge a record, ESC [ would
 * repaint the screen).
 */
#include "log.h"

#include "secrets.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

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

/* A control character as the C-like escape a reader recognises: \n, \r, \t, \x1b for the
 * other ASCII controls and DEL, \u009b or \u202e for the C1 controls and bidi marks. */
static void put_escape(FILE *out, uint32_t cp)
{
    if (cp == '\n')
        fputs("\\n", out);
    else if (cp == '\r')
        fputs("\\r", out);
    else if (cp == '\t')
        fputs("\\t", out);
    else if (cp < 0x80)
        fprintf(out, "\\x%02x", (unsigned)cp);
    else
        fprintf(out, "\\u%04x", (unsigned)cp);
}

/* `text` on a text line: runs of printable UTF-8 as they are, each terminal control escaped
 * (put_escape) and each byte of invalid UTF-8 as \xNN, so a reader sees what was sent. */
static void put_text(FILE *out, const char *text)
{
    const char *run = text ? text : "", *s = run;
    while (*s) {
        uint32_t cp;
        size_t n = utf8_sequence(s, &cp);
        if (n && !utf8_terminal_control(cp)) {
            s += n;
            continue;
        }
        fwrite(run, 1, (size_t)(s - run), out);
        if (n)
            put_escape(out, cp);
        else
            fprintf(out, "\\x%02x", (unsigned)(unsigned char)*s);
        s += n ? n : 1;
        run = s;
    }
    fwrite(run, 1, (size_t)(s - run), out);
}

static void emit_text(FILE *out, const char *ts, log_level level, const char *event,
                      const cJSON *fields)
{
    fprintf(out, "%s %-7s ", ts, level_names[level]);
    put_text(out, event);
    for (const cJSON *f = fields ? fields->child : NULL; f; f = f->next) {
        fputc(' ', out);
        put_text(out, f->string);
        fputc('=', out);
        if (cJSON_IsString(f)) {
            put_text(out, f->valuestring);
        } else {
            /* cJSON escapes C0 controls but prints DEL, C1, bidi marks and invalid bytes
             * as they are: the printed value goes through put_text as well. */
            char *v = cJSON_PrintUnformatted(f);
            put_text(out, v ? v : "?");
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
        /* cJSON copies bytes above 0x7F as they are, so an invalid byte from a pool or a
         * players row would make the whole line invalid UTF-8. Such bytes can only sit
         * inside strings (keys or values; the rest is ASCII), and '?' is valid there:
         * scrubbing the printed line equals scrubbing every string before printing. */
        utf8_scrub(line);
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
    /* Here, not at each call site: a field may hold a secret its writer could not know of
     * (a script's URL with user:password@, another setting expanded from DATABASE_URL). */
    secrets_scrub_json(fields);
    char *clean_event = secrets_scrub(event);
    if (clean_event)
        event = clean_event;
    if (logger.format == LOG_FORMAT_TEXT)
        emit_text(out, ts, level, event, fields);
    else
        emit_json(out, ts, level, event, fields);
    fflush(out);
    free(clean_event);
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
