/* Unit tests of engine/config.c: defaults, precedence, the .env syntax, validation messages,
 * secrets and URL redaction. Every case starts from an environment without the settings. */
#include "check.h"
#include "config.h"
#include "secrets.h"

#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK_STR(got, want)                                                                  \
    do {                                                                                      \
        const char *got_ = (got), *want_ = (want);                                            \
        CHECK(got_ && strcmp(got_, want_) == 0, "got \"%s\", want \"%s\"",                    \
              got_ ? got_ : "(null)", want_);                                                 \
    } while (0)

#define CHECK_LACKS(haystack, needle)                                                         \
    do {                                                                                      \
        const char *h_ = (haystack);                                                          \
        CHECK(h_ && !strstr(h_, needle), "\"%s\" contains \"%s\"", h_ ? h_ : "(null)", needle); \
    } while (0)

static const char *const SECRET = "hunter2-s3cret";
/* Variables the tests set besides the table settings; cleared before every case. */
static const char *const extra_vars[] = {"CUSTOM_VAR", "ENV_ONLY", "PLAIN", NULL};

static char tmpdir[] = "/tmp/m2p-test-config-XXXXXX";
static char err[4096];

static void clear_env(void)
{
    for (int i = 0; i < CFG_COUNT; i++)
        unsetenv(config_name((config_id)i));
    for (int i = 0; extra_vars[i]; i++)
        unsetenv(extra_vars[i]);
}

/* Writes `content` to a file in the temporary directory; returns its path (static buffer). */
static const char *write_file(const char *name, const char *content)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    fputs(content, f);
    fclose(f);
    return path;
}

/* Loads with a .env file holding `content` (NULL: no .env file at all). */
static config *load(const char *content)
{
    const char *path = content ? write_file("test.env", content) : "";
    return config_load(path, err, sizeof err);
}

/* Loads with one variable set in the environment and no .env file; expects failure and
 * returns the message. */
static const char *load_error(const char *name, const char *value)
{
    clear_env();
    setenv(name, value, 1);
    config *c = load(NULL);
    CHECK(c == NULL, "%s=%s was accepted", name, value);
    config_free(c);
    unsetenv(name);
    return err;
}

static char *capture(void (*print)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    print(f);
    fclose(f);
    return text;
}

/* ===== The table ===== */

/* Every id has an entry (the table uses designated initializers) and names are unique. */
static bool test_table(void)
{
    bool complete = true;
    for (int i = 0; i < CFG_COUNT; i++) {
        const char *name = config_name((config_id)i);
        CHECK(name != NULL, "setting id %d has no entry in the table", i);
        if (!name) {
            complete = false;
            continue;
        }
        for (int j = 0; j < i; j++)
            CHECK(!config_name((config_id)j) || strcmp(name, config_name((config_id)j)) != 0,
                  "%s is in the table twice", name);
    }
    CHECK(config_name(CFG_COUNT) == NULL, "an id past the end has a name");
    return complete;
}

/* ===== Defaults and precedence ===== */

static void test_defaults(void)
{
    clear_env();
    config *c = load(NULL);
    CHECK(c != NULL, "defaults rejected: %s", err);
    if (!c)
        return;
    CHECK_STR(config_string(c, CFG_DATABASE_URL), "");
    CHECK_STR(config_string(c, CFG_SOCKETIO_URL), "");
    CHECK(config_int(c, CFG_POLL_INTERVAL_SECONDS) == 60, "poll interval");
    CHECK(config_number(c, CFG_POLL_INTERVAL_SECONDS) == 60.0, "int read as number");
    CHECK(config_number(c, CFG_POOL_REQUEST_TIMEOUT) == 10.0, "request timeout");
    CHECK(config_number(c, CFG_POOL_CONNECT_TIMEOUT) == 5.0, "connect timeout");
    CHECK(config_number(c, CFG_AP_PER_ADVC) == 100.0, "AP per ADVC");
    CHECK(config_number(c, CFG_MIN_PAYOUT_DELTA) == 0.0001, "min payout delta");
    CHECK(config_number(c, CFG_BTC_TO_ADVC_RATE) == 1000000.0, "BTC rate");
    CHECK(fabs(config_number(c, CFG_ZPOOL_PER_SECOND) - 1.0 / 65) < 1e-15, "zpool rate");
    CHECK(config_number(c, CFG_SHUTDOWN_TIMEOUT_SECONDS) == 10.0, "shutdown timeout");
    CHECK(config_int(c, CFG_SCRIPT_INSTRUCTION_BUDGET) == 10000000, "instruction budget");
    CHECK(config_int(c, CFG_SCRIPT_MEMORY_LIMIT_MB) == 256, "memory limit");
    CHECK(config_int(c, CFG_POOL_MAX_RESPONSE_BYTES) == 1048576, "max response");
    CHECK(config_enum(c, CFG_LOG_LEVEL) == 1, "log level index");
    CHECK_STR(config_string(c, CFG_LOG_LEVEL), "info");
    CHECK_STR(config_string(c, CFG_LOG_FORMAT), "auto");
    CHECK(config_bool(c, CFG_CPU_POOL_ENABLED), "cpu-pool enabled");
    CHECK(config_bool(c, CFG_RPLANT_ENABLED), "rplant enabled");
    CHECK(config_bool(c, CFG_ZPOOL_ENABLED), "zpool enabled");
    CHECK(!config_bool(c, CFG_REWARD_HISTORY), "reward history");
    CHECK_STR(config_string(c, CFG_CPU_POOL_URL), "http://cpu-pool.com/api/worker_stats");
    CHECK_STR(config_string(c, CFG_RPLANT_URL), "https://pool.rplant.xyz/api/walletEx/advc");
    CHECK_STR(config_string(c, CFG_ZPOOL_URL), "https://zpool.ca/api/walletEx");
    for (int i = 0; i < CFG_COUNT; i++)
        CHECK(config_source_of(c, (config_id)i) == CFG_SOURCE_DEFAULT, "%s source",
              config_name((config_id)i));
    CHECK(config_env_file(c) == NULL, "no .env file was read");
    /* A table setting left at its default looks up as unset, so a script's own default
     * applies (an operator editing the default in rewards.lua gets what they wrote). */
    CHECK(config_lookup(c, "POLL_INTERVAL_SECONDS") == NULL, "default looks up as unset");
    CHECK(config_lookup(c, "AP_PER_ADVC") == NULL, "default looks up as unset");
    CHECK(config_lookup(c, "DATABASE_URL") == NULL, "empty default looks up as unset");
    CHECK(config_lookup(c, "CUSTOM_VAR") == NULL, "unset variable");
    config_free(c);
}

static void test_environment_wins(void)
{
    clear_env();
    setenv("POLL_INTERVAL_SECONDS", "45", 1);
    setenv("CUSTOM_VAR", "from-env", 1);
    setenv("LOG_FORMAT", "", 1); /* empty counts as unset: the file's value applies */
    config *c = load("POLL_INTERVAL_SECONDS=30\nCUSTOM_VAR=from-file\nLOG_FORMAT=text\n"
                     "AP_PER_ADVC=250\nMIN_PAYOUT_DELTA=\nZPOOL_ENABLED=off\n");
    CHECK(c != NULL, "rejected: %s", err);
    if (!c)
        return;
    CHECK(config_int(c, CFG_POLL_INTERVAL_SECONDS) == 45, "environment wins over .env");
    CHECK(config_source_of(c, CFG_POLL_INTERVAL_SECONDS) == CFG_SOURCE_ENVIRONMENT, "source");
    CHECK_STR(config_lookup(c, "CUSTOM_VAR"), "from-env");
    CHECK_STR(config_string(c, CFG_LOG_FORMAT), "text");
    CHECK(config_source_of(c, CFG_LOG_FORMAT) == CFG_SOURCE_ENV_FILE, "empty env var");
    CHECK(config_number(c, CFG_AP_PER_ADVC) == 250.0, ".env applies when env is unset");
    CHECK(config_source_of(c, CFG_AP_PER_ADVC) == CFG_SOURCE_ENV_FILE, "source");
    CHECK(config_number(c, CFG_MIN_PAYOUT_DELTA) == 0.0001, "empty .env value = default");
    CHECK(config_source_of(c, CFG_MIN_PAYOUT_DELTA) == CFG_SOURCE_DEFAULT, "source");
    CHECK(!config_bool(c, CFG_ZPOOL_ENABLED), "bool from .env");
    CHECK_STR(config_lookup(c, "ZPOOL_ENABLED"), "false"); /* canonical spelling */
    CHECK_CONTAINS(config_env_file(c), "test.env");
    config_free(c);

    /* The process environment is never modified. */
    clear_env();
    c = load("CUSTOM_VAR=only-in-file\n");
    CHECK(c != NULL, "rejected: %s", err);
    CHECK(getenv("CUSTOM_VAR") == NULL, "config_load called setenv");
    if (c)
        CHECK_STR(config_lookup(c, "CUSTOM_VAR"), "only-in-file");
    config_free(c);
}

/* ===== The .env syntax ===== */

static void test_env_file_syntax(void)
{
    clear_env();
    setenv("ENV_ONLY", "E", 1);
    config *c = load("\xEF\xBB\xBF# a comment\n"
                     "\n"
                     "   \t\n"
                     "   # an indented comment\n"
                     "PLAIN=plain value   \n"
                     "export EXPORTED=yes\n"
                     "export\tEXPORTED_TAB=tab\n"
                     "  SPACED  =   around  \n"
                     "INLINE=value # a comment\n"
                     "INLINE_TAB=value\t# a comment\n"
                     "HASH=a#b\n"
                     "ONLY_COMMENT= # nothing but a comment\n"
                     "STARTS_WITH_HASH=#value\n"
                     "EMPTY=\n"
                     "SQ='single # kept \\n kept'  # comment\n"
                     "SQ_ESC='it\\'s a \\\\ backslash'\n"
                     "DQ=\"line1\\nline2 \\\"q\\\" back\\\\slash\\ttab\"   # comment\n"
                     "DQ_HASH=\"a # b\"\n"
                     "DQ_SPACES=\"  padded  \"\n"
                     "DQ_UNKNOWN_ESCAPE=\"a\\qb\"\n"
                     "EQUALS=a=b=c\n"
                     "CRLF=crlf\r\n"
                     "DUP=first\n"
                     "DUP=second\n"
                     "REF=${PLAIN}|${ENV_ONLY}|${NOT_SET_ANYWHERE:-fallback}|"
                     "${NOT_SET_EITHER}|$PLAIN\n"
                     "REF_SQ='${PLAIN}'\n"
                     "NOT_REF=${PLAIN:x}\n"
                     "LAST_LINE=no newline at the end");
    CHECK(c != NULL, "rejected: %s", err);
    if (!c)
        return;
    CHECK_STR(config_lookup(c, "PLAIN"), "plain value");
    CHECK_STR(config_lookup(c, "EXPORTED"), "yes");
    CHECK_STR(config_lookup(c, "EXPORTED_TAB"), "tab");
    CHECK_STR(config_lookup(c, "SPACED"), "around");
    CHECK_STR(config_lookup(c, "INLINE"), "value");
    CHECK_STR(config_lookup(c, "INLINE_TAB"), "value");
    CHECK_STR(config_lookup(c, "HASH"), "a#b");
    CHECK(config_lookup(c, "ONLY_COMMENT") == NULL, "NAME= # comment is empty");
    CHECK_STR(config_lookup(c, "STARTS_WITH_HASH"), "#value");
    CHECK(config_lookup(c, "EMPTY") == NULL, "empty value counts as unset");
    CHECK_STR(config_lookup(c, "SQ"), "single # kept \\n kept");
    CHECK_STR(config_lookup(c, "SQ_ESC"), "it's a \\ backslash");
    CHECK_STR(config_lookup(c, "DQ"), "line1\nline2 \"q\" back\\slash\ttab");
    CHECK_STR(config_lookup(c, "DQ_HASH"), "a # b");
    CHECK_STR(config_lookup(c, "DQ_SPACES"), "  padded  ");
    CHECK_STR(config_lookup(c, "DQ_UNKNOWN_ESCAPE"), "a\\qb");
    CHECK_STR(config_lookup(c, "EQUALS"), "a=b=c");
    CHECK_STR(config_lookup(c, "CRLF"), "crlf");
    CHECK_STR(config_lookup(c, "DUP"), "second");
    CHECK_STR(config_lookup(c, "REF"), "plain value|E|fallback||$PLAIN");
    CHECK_STR(config_lookup(c, "REF_SQ"), "plain value"); /* python-dotenv expands these too */
    CHECK_STR(config_lookup(c, "NOT_REF"), "${PLAIN:x}");
    CHECK_STR(config_lookup(c, "LAST_LINE"), "no newline at the end");
    config_free(c);

    /* A line of exactly the maximum length is fine. */
    clear_env();
    size_t max = CONFIG_ENV_LINE_MAX;
    char *line = malloc(max + 2);
    memcpy(line, "CUSTOM_VAR=", 11);
    memset(line + 11, 'x', max - 11);
    line[max] = '\n';
    line[max + 1] = '\0';
    c = load(line);
    CHECK(c != NULL, "line of %zu bytes rejected: %s", max, err);
    if (c)
        CHECK(strlen(config_lookup(c, "CUSTOM_VAR")) == max - 11, "long value");
    config_free(c);
    free(line);
}

/* Loads a .env file that is malformed at `lineno`; checks "path:lineno: reason". */
static void expect_malformed(const char *content, int lineno, const char *reason)
{
    clear_env();
    config *c = load(content);
    CHECK(c == NULL, "accepted a malformed line %d (%s)", lineno, reason);
    config_free(c);
    char where[600];
    snprintf(where, sizeof where, "%s/test.env:%d: ", tmpdir, lineno);
    CHECK_CONTAINS(err, where);
    CHECK_CONTAINS(err, reason);
}

static void test_env_file_errors(void)
{
    expect_malformed("A=1\nJUST_A_NAME\n", 2, "found only a name");
    expect_malformed("# c\n\nTWO WORDS=1\n", 3, "expected '=' after the name");
    expect_malformed("=value\n", 1, "expected NAME=value");
    expect_malformed("A=1\nB=\"never closed\n", 2, "unterminated double-quoted value");
    expect_malformed("B='never closed\n", 1, "unterminated single-quoted value");
    expect_malformed("A='quoted' trailing\n", 1, "unexpected text after the closing quote");
    expect_malformed("A=\"quoted\"trailing\n", 1, "unexpected text after the closing quote");

    size_t max = CONFIG_ENV_LINE_MAX;
    char *line = malloc(max + 16);
    strcpy(line, "OK=1\nA=");
    memset(line + 7, 'x', max - 1);
    strcpy(line + 7 + max - 1, "\n");
    expect_malformed(line, 2, "line is longer than 8192 bytes");
    free(line);

    /* The offending line is never echoed: it may hold a password. */
    expect_malformed("DATABASE_URL=\"postgresql://u:hunter2-s3cret@db/m2p\n", 1, "unterminated");
    CHECK_LACKS(err, SECRET);
}

static void test_env_file_paths(void)
{
    clear_env();
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.env", tmpdir);
    config *c = config_load(path, err, sizeof err);
    CHECK(c == NULL, "an explicitly given missing .env file was accepted");
    config_free(c);
    CHECK_CONTAINS(err, path);
    CHECK_CONTAINS(err, "No such file");

    c = config_load(tmpdir, err, sizeof err);
    CHECK(c == NULL, "a directory was accepted as .env file");
    config_free(c);
    CHECK_CONTAINS(err, "not a regular file");

    /* The default ./.env: optional, and read when present. */
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd) || chdir(tmpdir) != 0) {
        CHECK(0, "cannot change into %s", tmpdir);
        return;
    }
    c = config_load(NULL, err, sizeof err);
    CHECK(c != NULL, "a missing default .env file is an error: %s", err);
    if (c)
        CHECK(config_env_file(c) == NULL, "no file read");
    config_free(c);

    write_file(".env", "POLL_INTERVAL_SECONDS=120\n");
    c = config_load(NULL, err, sizeof err);
    CHECK(c != NULL, "default .env rejected: %s", err);
    if (c) {
        CHECK(config_int(c, CFG_POLL_INTERVAL_SECONDS) == 120, "default .env not read");
        CHECK_STR(config_env_file(c), ".env");
    }
    config_free(c);

    c = config_load("", err, sizeof err); /* "" = no .env file, even if one exists */
    CHECK(c != NULL, "rejected: %s", err);
    if (c)
        CHECK(config_int(c, CFG_POLL_INTERVAL_SECONDS) == 60, "\"\" still read ./.env");
    config_free(c);
    unlink(".env");
    CHECK(chdir(cwd) == 0, "cannot change back to %s", cwd);
}

/* ===== Validation ===== */

static void expect_value(const char *name, const char *value, config_id id, double want)
{
    clear_env();
    setenv(name, value, 1);
    config *c = load(NULL);
    CHECK(c != NULL, "%s=\"%s\" rejected: %s", name, value, err);
    if (c)
        CHECK(config_number(c, id) == want, "%s=\"%s\" gave %.17g, want %.17g", name, value,
              config_number(c, id), want);
    config_free(c);
}

static void test_numbers(void)
{
    CHECK_STR(load_error("POLL_INTERVAL_SECONDS", "0"),
              "POLL_INTERVAL_SECONDS: \"0\" is outside 1..86400 (seconds between polls of one "
              "account)");
    CHECK_STR(load_error("POLL_INTERVAL_SECONDS", "86401"),
              "POLL_INTERVAL_SECONDS: \"86401\" is outside 1..86400 (seconds between polls of "
              "one account)");
    const char *not_int[] = {"abc", "60s", "1e3", "6.0", "0x10", "", " ", "99999999999999999999",
                             "- 1", NULL};
    for (int i = 0; not_int[i]; i++) {
        if (!*not_int[i] || !strcmp(not_int[i], " "))
            continue; /* empty counts as unset; " " is checked below */
        const char *e = load_error("POLL_INTERVAL_SECONDS", not_int[i]);
        CHECK_CONTAINS(e, "POLL_INTERVAL_SECONDS: \"");
        CHECK_CONTAINS(e, not_int[i]);
        CHECK_CONTAINS(e, "is not a whole number in 1..86400");
    }
    CHECK_CONTAINS(load_error("POLL_INTERVAL_SECONDS", " "), "is not a whole number");
    expect_value("POLL_INTERVAL_SECONDS", " 30 ", CFG_POLL_INTERVAL_SECONDS, 30);
    expect_value("POLL_INTERVAL_SECONDS", "+86400", CFG_POLL_INTERVAL_SECONDS, 86400);
    expect_value("SCRIPT_INSTRUCTION_BUDGET", "10000000000", CFG_SCRIPT_INSTRUCTION_BUDGET,
                 1e10);
    CHECK_CONTAINS(load_error("SCRIPT_INSTRUCTION_BUDGET", "10000000001"),
                   "is outside 1000..1e10");
    CHECK_CONTAINS(load_error("SCRIPT_MEMORY_LIMIT_MB", "4"), "\"4\" is outside 8..65536");
    CHECK_CONTAINS(load_error("POOL_MAX_RESPONSE_BYTES", "100"), "is outside 1024..67108864");

    expect_value("POOL_REQUEST_TIMEOUT", "2.5", CFG_POOL_REQUEST_TIMEOUT, 2.5);
    expect_value("POOL_REQUEST_TIMEOUT", ".5", CFG_POOL_REQUEST_TIMEOUT, 0.5);
    expect_value("POOL_REQUEST_TIMEOUT", "3.", CFG_POOL_REQUEST_TIMEOUT, 3);
    expect_value("AP_PER_ADVC", "1e12", CFG_AP_PER_ADVC, 1e12);
    expect_value("AP_PER_ADVC", "0", CFG_AP_PER_ADVC, 0);
    expect_value("MIN_PAYOUT_DELTA", "1E-8", CFG_MIN_PAYOUT_DELTA, 1e-8);
    expect_value("BTC_TO_ADVC_RATE", "\t2000000\n", CFG_BTC_TO_ADVC_RATE, 2e6);
    expect_value("ZPOOL_PER_SECOND", "0.5", CFG_ZPOOL_PER_SECOND, 0.5);
    CHECK_STR(load_error("POOL_REQUEST_TIMEOUT", "0.05"),
              "POOL_REQUEST_TIMEOUT: \"0.05\" is outside 0.1..300 (seconds one pool HTTP request "
              "may take in total)");
    CHECK_CONTAINS(load_error("AP_PER_ADVC", "1e13"), "AP_PER_ADVC: \"1e13\" is outside 0..1e12");
    CHECK_CONTAINS(load_error("AP_PER_ADVC", "-1"), "is outside 0..1e12");
    CHECK_CONTAINS(load_error("BTC_TO_ADVC_RATE", "0"), "is outside 1e-12..1e15");
    CHECK_CONTAINS(load_error("ZPOOL_PER_SECOND", "101"), "is outside");
    CHECK_CONTAINS(load_error("SHUTDOWN_TIMEOUT_SECONDS", "601"), "is outside 0..600");
    const char *not_number[] = {"abc", "inf", "nan", "0x10", "1,5", "1e", "e5", ".", "+", "5s",
                                "1e999", NULL};
    for (int i = 0; not_number[i]; i++) {
        const char *e = load_error("POOL_CONNECT_TIMEOUT", not_number[i]);
        CHECK_CONTAINS(e, "POOL_CONNECT_TIMEOUT: \"");
        CHECK_CONTAINS(e, "is not a decimal number in 0.1..300");
    }
    /* Values are quoted escaped and shortened in messages. */
    const char *e = load_error("POLL_INTERVAL_SECONDS", "a\"b\nc");
    CHECK_CONTAINS(e, "\"a\\\"b\\x0ac\"");
    e = load_error("POLL_INTERVAL_SECONDS", "12345678901234567890123456789012345678901234567890"
                                            "12345678901234567890xyz");
    CHECK_CONTAINS(e, "...\" is not a whole number");
}

static void test_bools(void)
{
    static const struct {
        const char *text;
        bool value;
    } spellings[] = {
        {"true", true},  {"TRUE", true},   {"True", true}, {"1", true},   {"yes", true},
        {"YES", true},   {"on", true},     {"On", true},   {"false", false}, {"FALSE", false},
        {"0", false},    {"no", false},    {"No", false},  {"off", false}, {"OFF", false},
        {" yes ", true},
    };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        clear_env();
        setenv("CPU_POOL_ENABLED", spellings[i].text, 1);
        config *c = load(NULL);
        CHECK(c != NULL, "\"%s\" rejected: %s", spellings[i].text, err);
        if (c) {
            CHECK(config_bool(c, CFG_CPU_POOL_ENABLED) == spellings[i].value, "\"%s\"",
                  spellings[i].text);
            CHECK_STR(config_string(c, CFG_CPU_POOL_ENABLED),
                      spellings[i].value ? "true" : "false");
        }
        config_free(c);
    }
    const char *bad[] = {"maybe", "2", "y", "enabled", "truee", NULL};
    for (int i = 0; bad[i]; i++) {
        const char *e = load_error("RPLANT_ENABLED", bad[i]);
        CHECK_CONTAINS(e, "RPLANT_ENABLED: \"");
        CHECK_CONTAINS(e, bad[i]);
        CHECK_CONTAINS(e, "is not a boolean: use true/false, 1/0, yes/no or on/off");
    }
}

static void test_enums_and_urls(void)
{
    clear_env();
    setenv("LOG_LEVEL", "WARNING", 1);
    setenv("LOG_FORMAT", "Text", 1);
    setenv("SOCKETIO_URL", "wss://game.example:8443/socket.io", 1);
    setenv("ZPOOL_URL", " HTTPS://proxy.example/api/walletEx ", 1);
    config *c = load(NULL);
    CHECK(c != NULL, "rejected: %s", err);
    if (c) {
        CHECK(config_enum(c, CFG_LOG_LEVEL) == 2, "warning is index 2");
        CHECK_STR(config_string(c, CFG_LOG_LEVEL), "warning");
        CHECK_STR(config_string(c, CFG_LOG_FORMAT), "text");
        CHECK_STR(config_string(c, CFG_SOCKETIO_URL), "wss://game.example:8443/socket.io");
        CHECK_STR(config_string(c, CFG_ZPOOL_URL), "HTTPS://proxy.example/api/walletEx");
    }
    config_free(c);

    CHECK_STR(load_error("LOG_LEVEL", "verbose"),
              "LOG_LEVEL: \"verbose\" is not one of debug, info, warning, error (minimum level "
              "of log records)");
    CHECK_CONTAINS(load_error("LOG_FORMAT", "xml"), "\"xml\" is not one of json, text, auto");
    const char *bad_urls[] = {"ftp://pool.example/x", "https://", "https:///path",
                              "pool.example/api", "http://pool example/x", "ws://pool.example",
                              NULL};
    for (int i = 0; bad_urls[i]; i++) {
        const char *e = load_error("CPU_POOL_URL", bad_urls[i]);
        CHECK_CONTAINS(e, "CPU_POOL_URL: \"");
        CHECK_CONTAINS(e, bad_urls[i]);
        CHECK_CONTAINS(e, "is not an http or https URL");
    }
    CHECK_CONTAINS(load_error("SOCKETIO_URL", "tcp://x"), "is not an http, https, ws or wss URL");

    /* Every bad setting is reported in one run. */
    clear_env();
    setenv("POLL_INTERVAL_SECONDS", "0", 1);
    setenv("LOG_LEVEL", "loud", 1);
    c = load("ZPOOL_ENABLED=perhaps\n");
    CHECK(c == NULL, "accepted");
    config_free(c);
    CHECK_CONTAINS(err, "POLL_INTERVAL_SECONDS: \"0\"");
    CHECK_CONTAINS(err, "\nZPOOL_ENABLED: \"perhaps\"");
    CHECK_CONTAINS(err, "\nLOG_LEVEL: \"loud\"");
}

/* ===== Notifier settings ===== */

static void test_notifier_settings(void)
{
    clear_env();
    setenv("SOCKETIO_AUTH", "{\"token\": \"hunter2-s3cret\"}", 1);
    setenv("WEBHOOK_URLS", "https://a.example/hook,http://127.0.0.1:8080/x", 1);
    setenv("PG_NOTIFY_CHANNEL", "m2p_rewards", 1);
    setenv("SOCKETIO_NAMESPACE", "/game", 1);
    config *c = load(NULL);
    CHECK(c != NULL, "rejected: %s", err);
    if (c) {
        CHECK_STR(config_string(c, CFG_SOCKETIO_PATH), "/socket.io/");
        CHECK(config_int(c, CFG_NOTIFY_MAX_AGE) == 86400, "NOTIFY_MAX_AGE default");
        cJSON *json = config_to_json(c);
        char *text = cJSON_PrintUnformatted(json);
        CHECK_LACKS(text, SECRET);
        free(text);
        cJSON_Delete(json);
    }
    config_free(c);

    /* The auth payload is a secret: a bad one is reported without its value. */
    const char *bad_auth[] = {"{\"token\": \"hunter2-s3cret\"", "[\"hunter2-s3cret\"]",
                              "{\"token\": \"hunter2-s3cret\"} trailing", NULL};
    for (int i = 0; bad_auth[i]; i++) {
        const char *e = load_error("SOCKETIO_AUTH", bad_auth[i]);
        CHECK_CONTAINS(e, "SOCKETIO_AUTH");
        CHECK_LACKS(e, SECRET);
    }
    const char *bad_hooks[] = {"ftp://a.example/x", "https://a.example/x,", ",https://a.example",
                               "https://a.example/x,,https://b.example", "https://a b/x", NULL};
    for (int i = 0; bad_hooks[i]; i++)
        CHECK_CONTAINS(load_error("WEBHOOK_URLS", bad_hooks[i]), "WEBHOOK_URLS");
    const char *bad_channels[] = {"m2p-rewards", "1abc", "a;NOTIFY x", "M2P_Rewards", NULL};
    for (int i = 0; bad_channels[i]; i++)
        CHECK_CONTAINS(load_error("PG_NOTIFY_CHANNEL", bad_channels[i]), "PG_NOTIFY_CHANNEL");
    CHECK_CONTAINS(load_error("SOCKETIO_NAMESPACE", "game"), "SOCKETIO_NAMESPACE");
    CHECK_CONTAINS(load_error("SOCKETIO_PATH", "/socket.io/?x=1"), "SOCKETIO_PATH");
    CHECK_CONTAINS(load_error("NOTIFY_MAX_AGE", "5"), "NOTIFY_MAX_AGE");
    clear_env();
}

/* ===== Secrets ===== */

static void test_secret(void)
{
    /* A bad DATABASE_URL is reported without its value, here and in the other messages. */
    const char *e = load_error("DATABASE_URL", "mysql://user:hunter2-s3cret@db/m2p");
    CHECK_CONTAINS(e, "DATABASE_URL: the value (not shown) is not a postgresql:// URL");
    CHECK_LACKS(e, SECRET);
    CHECK_LACKS(e, "mysql");
    e = load_error("DATABASE_URL", "hunter2-s3cret");
    CHECK_LACKS(e, SECRET);

    clear_env();
    setenv("DATABASE_URL", "postgresql://m2p:hunter2-s3cret@db:5432/game", 1);
    setenv("POLL_INTERVAL_SECONDS", "x", 1);
    config *c = load(NULL);
    CHECK(c == NULL, "accepted");
    config_free(c);
    CHECK_LACKS(err, SECRET);

    /* Valid forms; the SQLAlchemy driver suffix of the old service is dropped. */
    static const char *const forms[][2] = {
        {"postgresql://m2p:pw@db:5432/game", "postgresql://m2p:pw@db:5432/game"},
        {"postgres://m2p@db/game", "postgres://m2p@db/game"},
        {"postgresql+asyncpg://m2p:pw@db/game", "postgresql://m2p:pw@db/game"},
        {"postgres+psycopg2://db/game", "postgres://db/game"},
        {"host=db dbname=game password='a b'", "host=db dbname=game password='a b'"},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        clear_env();
        setenv("DATABASE_URL", forms[i][0], 1);
        c = load(NULL);
        CHECK(c != NULL, "%s rejected: %s", forms[i][0], err);
        if (c)
            CHECK_STR(config_string(c, CFG_DATABASE_URL), forms[i][1]);
        config_free(c);
    }
    CHECK_CONTAINS(load_error("DATABASE_URL", "postgresql+://db/game"), "DATABASE_URL");
    CHECK_CONTAINS(load_error("DATABASE_URL", "postgresql+as-yncpg://db"), "DATABASE_URL");

    /* The startup record of the settings redacts it. */
    clear_env();
    setenv("DATABASE_URL", "postgresql://m2p:hunter2-s3cret@db:5432/game", 1);
    c = load(NULL);
    CHECK(c != NULL, "rejected: %s", err);
    if (c) {
        cJSON *json = config_to_json(c);
        char *text = cJSON_PrintUnformatted(json);
        CHECK_LACKS(text, SECRET);
        CHECK_CONTAINS(text, "\"DATABASE_URL\":\"postgresql://m2p:***@db:5432/game\"");
        CHECK_CONTAINS(text, "\"POLL_INTERVAL_SECONDS\":60");
        CHECK_CONTAINS(text, "\"CPU_POOL_ENABLED\":true");
        CHECK_CONTAINS(text, "\"LOG_LEVEL\":\"info\"");
        free(text);
        cJSON_Delete(json);
    }
    config_free(c);

    char *help = capture(config_print_help), *md = capture(config_print_markdown);
    CHECK_LACKS(help, SECRET);
    CHECK_LACKS(md, SECRET);
    free(help);
    free(md);
    clear_env();
}

/* Issue 12: a secret expanded into, or pasted into, ANOTHER setting is not shown in that
 * setting's message, nor is the user:password of an invalid URL. */
static void test_secret_in_other_settings(void)
{
    static const char *const secrets[][2] = {
        {"DATABASE_URL", "postgresql://m2p:hunter2-s3cret@db:5432/game"},
        {"WEBHOOK_SECRET", "hunter2-s3cret"},
        {"ADMIN_TOKEN", "hunter2-s3cret"},
        {"SOCKETIO_AUTH", "{\"token\":\"hunter2-s3cret\"}"},
    };
    static const char *const targets[] = {"AUTO_MIGRATE", "CPU_POOL_URL", "ZPOOL_URL",
                                          "SOCKETIO_URL", "AP_PER_ADVC", "DB_POOL_SIZE",
                                          "LOG_LEVEL", "SOCKETIO_NAMESPACE", NULL};
    secrets_forget_all(); /* the earlier cases' passwords ("a b") would mask these texts */
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        for (int t = 0; targets[t]; t++) {
            clear_env();
            setenv(secrets[i][0], secrets[i][1], 1);
            char line[128];
            snprintf(line, sizeof line, "%s=${%s}\n", targets[t], secrets[i][0]);
            config *c = load(line);
            CHECK(c == NULL, "%s accepted", line);
            config_free(c);
            CHECK_CONTAINS(err, targets[t]);
            CHECK_LACKS(err, SECRET);
            CHECK_LACKS(err, "hunter2"); /* not even a cut-off piece */
        }
    }
    /* the exact message of the first hostile run's case */
    clear_env();
    setenv("DATABASE_URL", secrets[0][1], 1);
    config *c = load("AUTO_MIGRATE=${DATABASE_URL}\n");
    config_free(c);
    CHECK_CONTAINS(err, "AUTO_MIGRATE: \"postgresql://***@db:5432/game\" is not a boolean");

    /* user information of any URL, secret setting or not */
    const char *e = load_error("SOCKETIO_URL", "ftp://sio:hunter2-s3cret@127.0.0.1:1/");
    CHECK_CONTAINS(e, "SOCKETIO_URL: \"ftp://***@127.0.0.1:1/\"");
    CHECK_LACKS(e, "hunter2");
    e = load_error("CPU_POOL_URL", "gopher://cpu:hunter2-s3cret@pool/x");
    CHECK_LACKS(e, "hunter2");
    CHECK_LACKS(e, "cpu:");
    clear_env();
    secrets_forget_all();
}

static void test_redaction(void)
{
    static const char *const cases[][2] = {
        {"postgresql://user:pw@host/db", "postgresql://user:***@host/db"},
        {"postgres://user:pw@host:5432/db?sslmode=require",
         "postgres://user:***@host:5432/db?sslmode=require"},
        {"postgresql+asyncpg://u:pw@h/db", "postgresql+asyncpg://u:***@h/db"},
        {"postgresql://user@host/db", "postgresql://user@host/db"},
        {"postgresql://host/db", "postgresql://host/db"},
        {"postgresql://u:p@ss/w@rd@host/db", "postgresql://u:***@host/db"},
        {"postgresql://u:pw@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"},
        {"postgresql://host/db?user=u&password=pw&sslmode=require",
         "postgresql://host/db?user=u&password=***&sslmode=require"},
        {"postgresql://host/db?password=pw#frag", "postgresql://host/db?password=***#frag"},
        {"postgresql://u:pw@host/db?PASSWORD=x", "postgresql://u:***@host/db?PASSWORD=***"},
        {"host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"},
        {"password=pw", "password=***"},
        {"host=h password = 'p w\\'x' dbname=d", "host=h password = *** dbname=d"},
        {"  host=h  password=p\\ w port=5432", "  host=h  password=*** port=5432"},
        {"host=h password='never closed", "host=h ***"},
        {"host=h hunter2", "host=h ***"},
        {"hunter2", "***"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = config_redact_url(cases[i][0]);
        CHECK_STR(r, cases[i][1]);
        free(r);
    }
    CHECK(config_redact_url(NULL) == NULL, "NULL in, NULL out");
}

/* ===== --help and programming errors ===== */

static void test_help(void)
{
    char *help = capture(config_print_help);
    for (int i = 0; i < CFG_COUNT; i++)
        CHECK_CONTAINS(help, config_name((config_id)i));
    CHECK_CONTAINS(help, "POLL_INTERVAL_SECONDS      int 1..86400 (default: 60)\n"
                         "      seconds between polls of one account\n");
    CHECK_CONTAINS(help, "one of debug, info, warning, error (default: info)");
    CHECK_CONTAINS(help, "(default: https://zpool.ca/api/walletEx)");
    free(help);

    char *md = capture(config_print_markdown);
    CHECK_CONTAINS(md, "| `POLL_INTERVAL_SECONDS` | int | `60` | 1..86400 | seconds between polls "
                       "of one account |\n");
    CHECK_CONTAINS(md, "| `DATABASE_URL` | string, secret | *(empty)* |");
    free(md);
}

static void test_wrong_getter_aborts(void)
{
    clear_env();
    config *c = load(NULL);
    if (!c) {
        CHECK(0, "defaults rejected: %s", err);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        (void)config_int(c, CFG_LOG_LEVEL);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
          "config_int on an enum setting did not abort (status %d)", status);
    config_free(c);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    if (!test_table())
        return check_summary(); /* the other cases would trip over the missing entry */
    test_defaults();
    test_environment_wins();
    test_env_file_syntax();
    test_env_file_errors();
    test_env_file_paths();
    test_numbers();
    test_bools();
    test_enums_and_urls();
    test_notifier_settings();
    test_secret();
    test_secret_in_other_settings();
    test_redaction();
    test_help();
    test_wrong_getter_aborts();

    char path[600];
    snprintf(path, sizeof path, "%s/test.env", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return check_summary();
}
