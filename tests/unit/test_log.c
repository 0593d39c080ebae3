/* Issue 12, "Already found": hostile text in log records. A newline in a username must not
 * forge a record in LOG_FORMAT=text, an ANSI escape must not reach the terminal, and bytes of
 * invalid UTF-8 from a pool must not make a JSON line invalid (log shippers reject it). Each
 * record is written to a temporary file, read back and checked byte by byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "log.h"
#include "utf8.h"

/* A username that tries to start a second record of its own. */
#define FORGED "alice\n2026-12-02T04:00:00.000Z info    mining_reward_detected ap_awarded=1e9"
/* Clears the screen, sets the window title, then a CSI as a C1 control, DEL and bidi marks. */
#define ANSI "\x1b[2J\x1b]0;pwned\x07" "bob\xc2\x9b" "31m\x7f\xe2\x80\xae" "evil\xe2\x81\xa6x\r"
/* Invalid UTF-8 of every kind: a lone continuation byte, an overlong '/', an overlong NUL, a
 * surrogate, a code point above U+10FFFF, a lead byte before ASCII, a sequence cut by the end. */
#define INVALID "a\x80" "b\xc0\xaf" "c\xe0\x80\x80" "d\xed\xa0\x80" "e\xf4\x90\x80\x80" \
                "f\xc3 g\xe2\x82"
#define BAD_KEY "wallet\n\xff"
#define FINE "caf\xc3\xa9 \xf0\x9f\x98\x80 \\n tab-less"

typedef struct {
    char *text;
    size_t len;
} captured;

/* Every record of `emit` as the logger wrote it, in `format`. */
static captured capture(log_format format, void (*emit)(void))
{
    FILE *f = tmpfile();
    log_configure(LOG_DEBUG, format, f);
    emit();
    log_configure(LOG_INFO, LOG_FORMAT_JSON, NULL);
    long size = ftell(f);
    captured c = {calloc(1, (size_t)size + 1), (size_t)size};
    rewind(f);
    CHECK(fread(c.text, 1, c.len, f) == c.len, "read back the log");
    fclose(f);
    return c;
}

static void emit_hostile(void)
{
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "username", FORGED);
    cJSON_AddStringToObject(fields, "pool", ANSI);
    cJSON_AddStringToObject(fields, "error", INVALID);
    cJSON_AddStringToObject(fields, BAD_KEY, "x");
    cJSON_AddStringToObject(fields, "fine", FINE);
    cJSON *nested = cJSON_AddObjectToObject(fields, "metrics");
    cJSON_AddStringToObject(nested, "pool", ANSI INVALID);
    log_emit(LOG_WARNING, "hostile_fields", fields);
    log_message(LOG_ERROR, "hostile_message", "got %s from %s", INVALID, FORGED);
    log_emit(LOG_INFO, "hostile\nevent\x1b", NULL);
}

enum { RECORDS = 3 };

static size_t count_lines(const captured *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->len; i++)
        n += c->text[i] == '\n';
    return n;
}

/* Whether `len` bytes at `s` are all valid UTF-8 (NUL bytes count as invalid). */
static int valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(s + i, NULL);
        if (n == 0 || s[i] == '\0')
            return 0;
        i += n;
    }
    return 1;
}

/* The first code point a terminal would act on other than '\n' (count_lines checks those:
 * one per record). */
static long first_control(const captured *c)
{
    for (size_t i = 0; i < c->len;) {
        uint32_t cp;
        size_t n = utf8_sequence(c->text + i, &cp);
        if (n == 0)
            return (long)i;
        if (utf8_terminal_control(cp) && cp != '\n')
            return (long)i;
        i += n;
    }
    return -1;
}

static void test_text_is_one_line_per_record(void)
{
    captured c = capture(LOG_FORMAT_TEXT, emit_hostile);
    CHECK(count_lines(&c) == RECORDS, "%zu lines for %d records:\n%s", count_lines(&c),
          RECORDS, c.text);
    CHECK(c.len && c.text[c.len - 1] == '\n', "the last record ends its line");
    CHECK(valid_utf8(c.text, c.len), "the text log is valid UTF-8");
    long at = first_control(&c);
    CHECK(at < 0, "a raw control character at byte %ld: %s", at, at < 0 ? "" : c.text + at);
    /* Each control is still visible, as an escape a reader recognises. */
    CHECK_CONTAINS(c.text, " username=alice\\n2026-12-02T04:00:00.000Z info ");
    CHECK_CONTAINS(c.text, " pool=\\x1b[2J\\x1b]0;pwned\\x07bob\\u009b31m\\x7f\\u202eevil"
                           "\\u2066x\\r ");
    CHECK_CONTAINS(c.text, " error=a\\x80b\\xc0\\xafc\\xe0\\x80\\x80d\\xed\\xa0\\x80e"
                           "\\xf4\\x90\\x80\\x80f\\xc3 g\\xe2\\x82 ");
    CHECK_CONTAINS(c.text, " wallet\\n\\xff=x ");
    CHECK_CONTAINS(c.text, " fine=" FINE " ");
    CHECK_CONTAINS(c.text, " metrics={\"pool\":\"\\u001b[2J"); /* cJSON's own escape, kept */
    CHECK_CONTAINS(c.text, "\\u009b31m\\x7f\\u202eevil");      /* what cJSON leaves raw */
    CHECK_CONTAINS(c.text, " hostile\\nevent\\x1b\n");
    CHECK_CONTAINS(c.text, " message=got a\\x80b");
    free(c.text);
}

/* The string `raw` with each invalid byte replaced, as the JSON log must carry it. */
static char *scrubbed(const char *raw)
{
    char *s = strdup(raw);
    utf8_scrub(s);
    return s;
}

static void check_member(const cJSON *record, const char *key, const char *raw)
{
    char *want_key = scrubbed(key), *want = scrubbed(raw);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, want_key);
    CHECK(cJSON_IsString(v) && strcmp(v->valuestring, want) == 0, "%s: \"%s\" for \"%s\"",
          key, cJSON_IsString(v) ? v->valuestring : "(missing)", want);
    free(want_key);
    free(want);
}

static void check_json_records(cJSON *lines[RECORDS])
{
    check_member(lines[0], "event", "hostile_fields");
    check_member(lines[0], "username", FORGED);
    check_member(lines[0], "pool", ANSI);
    check_member(lines[0], "error", INVALID);
    check_member(lines[0], BAD_KEY, "x");
    check_member(lines[0], "fine", FINE);
    check_member(cJSON_GetObjectItemCaseSensitive(lines[0], "metrics"), "pool", ANSI INVALID);
    char *message = scrubbed("got " INVALID " from " FORGED);
    check_member(lines[1], "message", message);
    free(message);
    check_member(lines[2], "event", "hostile\nevent\x1b");
}

static void test_json_is_valid_utf8(void)
{
    captured c = capture(LOG_FORMAT_JSON, emit_hostile);
    CHECK(count_lines(&c) == RECORDS, "%zu lines for %d records", count_lines(&c), RECORDS);
    cJSON *lines[RECORDS] = {NULL};
    size_t n = 0;
    for (char *line = c.text, *end; n < RECORDS && (end = strchr(line, '\n')); line = end + 1) {
        CHECK(valid_utf8(line, (size_t)(end - line)), "JSON line %zu is invalid UTF-8", n);
        char *raw = line;
        while (raw < end && (unsigned char)*raw >= 0x20)
            raw++;
        CHECK(raw == end, "a raw control byte 0x%02x in JSON line %zu", (unsigned char)*raw, n);
        *end = '\0';
        lines[n] = cJSON_Parse(line);
        CHECK(cJSON_IsObject(lines[n]), "JSON line %zu does not parse: %s", n, line);
        n++;
    }
    if (n == RECORDS && lines[0] && lines[1] && lines[2])
        check_json_records(lines);
    for (size_t i = 0; i < RECORDS; i++)
        cJSON_Delete(lines[i]);
    free(c.text);
}

static void emit_plain(void)
{
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "username", "alice");
    cJSON_AddNumberToObject(fields, "player_id", 7);
    log_emit(LOG_INFO, "mining_reward_detected", fields);
}

/* Ordinary records are written exactly as before. */
static void test_plain_records_unchanged(void)
{
    captured t = capture(LOG_FORMAT_TEXT, emit_plain);
    CHECK_CONTAINS(t.text, "Z info    mining_reward_detected username=alice player_id=7\n");
    captured j = capture(LOG_FORMAT_JSON, emit_plain);
    CHECK_CONTAINS(j.text, "\",\"level\":\"info\",\"event\":\"mining_reward_detected\","
                           "\"username\":\"alice\",\"player_id\":7}\n");
    free(t.text);
    free(j.text);
}

int main(void)
{
    test_text_is_one_line_per_record();
    test_json_is_valid_utf8();
    test_plain_records_unchanged();
    return check_summary();
}
