/* Configuration: one table of settings drives parsing, validation, --help and the docs.
 *
 * The engine keeps the environment variables of the Python service it replaces, including
 * its .env file with python-dotenv semantics: variables already in the environment win over
 * the file, and the file may use `export`, quotes, inline comments and ${VAR} references.
 * The file's values live in the config object; the process environment is never modified.
 *
 * Flow: config_load() reads the .env file into `file_vars`, then resolves every setting of
 * `settings[]` (environment, then file, then default) through the same parser for its type.
 * Defaults are text and go through that parser too, so a default and a value typed by an
 * operator can never mean different things. Every invalid value is reported, not just the
 * first, and a secret's value is never echoed.
 */
#include "config.h"

#include "admin/admin.h"
#include "secrets.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ===== The settings table ===== */

enum { CFG_SECRET = 1 << 0 };

typedef struct config_setting {
    const char *name;
    config_type type;
    const char *default_value;     /* text, parsed like a value from the environment */
    double min, max;               /* int and number: accepted range, inclusive */
    const char *const *words;      /* enum: accepted values; url: accepted schemes */
    unsigned flags;                /* CFG_SECRET: the value is never printed */
    const char *accepted;          /* string: what is accepted, for help and errors */
    /* string: validates `value`, may rewrite it in place (never longer) */
    bool (*check)(char *value);
    const char *meaning;
} config_setting;

static const char *const log_levels[] = {"debug", "info", "warning", "error", NULL};
/* In the order of log_format (log.h): config_enum is cast to it. */
static const char *const log_formats[] = {"json", "text", "auto", NULL};
static const char *const http_clients[] = {"auto", "libcurl", NULL};
static const char *const http_schemes[] = {"http", "https", NULL};
static const char *const socketio_schemes[] = {"http", "https", "ws", "wss", NULL};

static bool check_database_url(char *value);

static bool check_proxy_url(char *value)
{
    const char *sep = strstr(value, "://");
    if (!sep || sep == value || !sep[3])
        return false;
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
            return false;
    return true;
}

/* RPLANT_DIV2: a small decimal exponent. */
static bool check_div2(char *value)
{
    char *end;
    long v = strtol(value, &end, 10);
    return end != value && *end == '\0' && v >= 0 && v <= 30 && isdigit((unsigned char)*value);
}

/* "23,51": one or more decimal bytes separated by commas. */
static bool check_byte_list(char *value)
{
    const char *p = value;
    for (;;) {
        char *end;
        if (!isdigit((unsigned char)*p))
            return false;
        long v = strtol(p, &end, 10);
        if (v < 0 || v > 255 || end - p > 3)
            return false;
        if (*end == '\0')
            return true;
        if (*end != ',')
            return false;
        p = end + 1;
    }
}

/* SOCKETIO_NAMESPACE: "/" or "/name" of URL-safe characters (it is written into packets). */
static bool check_namespace(char *value)
{
    if (value[0] != '/' || strlen(value) > 200)
        return false;
    for (const char *p = value + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_./~", *p))
            return false;
    return true;
}

/* SOCKETIO_PATH: an absolute URL path of URL-safe characters. */
static bool check_url_path(char *value)
{
    return check_namespace(value) && !strstr(value, "//");
}

/* SOCKETIO_AUTH: a JSON object (the CONNECT packet's payload); empty = none. */
static bool check_json_object(char *value)
{
    if (!*value)
        return true;
    cJSON *j = cJSON_ParseWithOpts(value, NULL, 1); /* nothing may follow the object */
    bool ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

/* WEBHOOK_URLS: http(s) URLs separated by commas, without spaces. */
static bool check_url_list(char *value)
{
    if (!*value)
        return true;
    char *copy = strdup(value), *save = NULL;
    bool ok = copy != NULL;
    for (char *u = copy ? strtok_r(copy, ",", &save) : NULL; ok && u;
         u = strtok_r(NULL, ",", &save)) {
        ok = (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) &&
             check_proxy_url(u);
    }
    if (ok && (value[strlen(value) - 1] == ',' || value[0] == ',' || strstr(value, ",,")))
        ok = false;
    free(copy);
    return ok;
}

/* PG_NOTIFY_CHANNEL: a plain lower-case identifier, 1-63 bytes. pg_notify() takes the name
 * as it is, while an unquoted LISTEN folds it to lower case: "M2P" would never be heard. */
static bool check_channel(char *value)
{
    size_t n = strlen(value);
    if (n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)value[i]) && !isdigit((unsigned char)value[i]) &&
            value[i] != '_')
            return false;
    return n == 0 || !isdigit((unsigned char)value[0]);
}

/* The address itself is parsed where it is used (admin.c). "off" turns the endpoint off (an
 * empty variable counts as unset here, which means the default). */
static bool check_admin_listen(char *value)
{
    if (strcmp(value, "off") == 0)
        return true;
    struct sockaddr_storage addr;
    socklen_t len;
    bool loopback;
    char err[256];
    return admin_parse_listen(value, &addr, &len, &loopback, err, sizeof err) == 0;
}

static bool check_engine_id(char *value)
{
    size_t n = strlen(value);
    if (n > 100)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 0x21 || (unsigned char)value[i] > 0x7e)
            return false;
    return true;
}

/* One line per kind of setting, in the manner of Redis's createIntConfig(): the id, the
 * variable name and the entry can never disagree. */
#define SETTING_STRING(n, def, flags_, accepted_, check_, meaning_)                           \
    [CFG_##n] = {.name = #n, .type = CFG_TYPE_STRING, .default_value = def, .flags = flags_,   \
                 .accepted = accepted_, .check = check_, .meaning = meaning_}
#define SETTING_INT(n, def, lo, hi, meaning_)                                                 \
    [CFG_##n] = {.name = #n, .type = CFG_TYPE_INT, .default_value = def, .min = lo, .max = hi, \
                 .meaning = meaning_}
#define SETTING_NUMBER(n, def, lo, hi, meaning_)                                              \
    [CFG_##n] = {.name = #n, .type = CFG_TYPE_NUMBER, .default_value = def, .min = lo,         \
                 .max = hi, .meaning = meaning_}
#define SETTING_BOOL(n, def, meaning_)                                                        \
    [CFG_##n] = {.name = #n, .type = CFG_TYPE_BOOL, .default_value = def, .meaning = meaning_}
#define SETTING_ENUM(n, def, words_, meaning_)                                                \
    [CFG_##n] = {.name = #n, .type = CFG_TYPE_ENUM, .default_value = def, .words = words_,     \
                 .meaning = meaning_}
#define SETTING_URL(n, def, schemes, meaning_)                                                \
    [CFG_##n] = {.name = #n, .type = CFG_TYPE_URL, .default_value = def, .words = schemes,     \
                 .meaning = meaning_}

/* Ranges whose upper end is "practically unlimited" are still finite, so that a typo such as
 * an extra zero is reported instead of silently accepted. */
static const config_setting settings[CFG_COUNT] = {
    SETTING_STRING(DATABASE_URL, "", CFG_SECRET, "postgresql:// URL or key=value conninfo",
                   check_database_url,
                   "the game's PostgreSQL database (players, pool_snapshots, mining_events); a "
                   "SQLAlchemy driver suffix (postgresql+asyncpg://) is dropped; empty = none"),
    SETTING_BOOL(AUTO_MIGRATE, "true",
                 "apply pending schema migrations at start; false: refuse to start until "
                 "'m2p-engine --migrate' has run"),
    SETTING_INT(DB_POOL_SIZE, "4", 1, 64, "connections to PostgreSQL"),
    SETTING_NUMBER(DB_RESULT_TIMEOUT_SECONDS, "30", 0, 86400,
                   "seconds a connection with queries sent may go without a result before it "
                   "is dropped and reconnected (a hung server); 0 = wait however long it "
                   "takes"),
    SETTING_NUMBER(DATABASE_STATS_INTERVAL, "15", 0.5, 3600,
                   "seconds between two reads of the outbox depth and the held awards for "
                   "GET /metrics and /status (one small query each time)"),
    SETTING_BOOL(STORE_RAW_RESPONSES, "false",
                 "keep each snapshot's raw pool response in pool_snapshots.raw_response"),
    SETTING_INT(SNAPSHOT_HEARTBEAT, "0", 0, 31536000,
                "seconds after which an unchanged observation is snapshotted again; 0 = only "
                "the first observation and changes"),
    SETTING_INT(SNAPSHOT_RETENTION_DAYS, "0", 0, 36500,
                "delete pool_snapshots older than this many days, in small batches; 0 = keep all"),
    SETTING_STRING(ENGINE_ID, "", 0, "name of 1-100 printable characters", check_engine_id,
                   "this engine's name among the engines sharing the database; empty = "
                   "hostname-pid"),
    SETTING_URL(SOCKETIO_URL, "", socketio_schemes,
                "Socket.IO server that receives mining_reward events; empty = no Socket.IO "
                "notifications"),
    SETTING_STRING(SOCKETIO_NAMESPACE, "/", 0, "\"/\" or \"/name\"", check_namespace,
                   "Socket.IO namespace the engine connects to"),
    SETTING_STRING(SOCKETIO_PATH, "/socket.io/", 0, "absolute URL path", check_url_path,
                   "the Socket.IO server's path (its `path` option)"),
    SETTING_STRING(SOCKETIO_AUTH, "", CFG_SECRET, "JSON object", check_json_object,
                   "sent as the CONNECT packet's auth payload (the server sees it as "
                   "socket.handshake.auth); empty = none"),
    SETTING_STRING(WEBHOOK_URLS, "", 0, "comma-separated http(s) URLs", check_url_list,
                   "each mining_reward is POSTed to every one of these URLs; empty = none"),
    SETTING_STRING(WEBHOOK_SECRET, "", CFG_SECRET, "any text",  NULL,
                   "key of the X-M2P-Signature HMAC-SHA256 on webhook requests; empty = "
                   "unsigned"),
    SETTING_STRING(PG_NOTIFY_CHANNEL, "", 0, "1-63 lower-case letters, digits, _",
                   check_channel,
                   "pg_notify(channel, payload) in each award's transaction, for games that "
                   "LISTEN; empty = off"),
    SETTING_INT(NOTIFY_MAX_AGE, "86400", 60, 31536000,
                "seconds an undelivered notification is retried before it is given up "
                "(logged as notification_expired)"),
    SETTING_NUMBER(NOTIFY_TIMEOUT, "10", 0.1, 300,
                   "seconds a receiver has to acknowledge one notification (Socket.IO ack, "
                   "webhook answer) before it is retried"),
    SETTING_INT(POLL_INTERVAL_SECONDS, "60", 1, 86400, "seconds between polls of one account"),
    SETTING_NUMBER(POOL_REQUEST_TIMEOUT, "10", 0.1, 300,
                   "seconds one pool HTTP request may take in total"),
    SETTING_NUMBER(POOL_CONNECT_TIMEOUT, "5", 0.1, 300,
                   "seconds to establish the connection to a pool"),
    SETTING_INT(POOL_MAX_RESPONSE_BYTES, "1048576", 1024, 67108864,
                "largest pool response body accepted; a larger one is a failed poll"),
    SETTING_ENUM(HTTP_CLIENT, "auto", http_clients,
                 "auto: plain http:// GETs (no proxy, interface or redirects) through the "
                 "engine's own HTTP/1.1 client, everything else through libcurl; libcurl: "
                 "every pool request (and --probe's) through libcurl; the Socket.IO notifier's http:// "
                 "long-polling uses the plain client either way"),
    SETTING_BOOL(CPU_POOL_ENABLED, "true", "poll accounts on cpu-pool.com"),
    SETTING_BOOL(CPU_POOL_TLS_VERIFY, "true",
                 "verify the TLS certificate and host name of cpu-pool over https; false (a "
                 "test pool with a self-signed certificate only) is logged as "
                 "pool_tls_verify_off at start; no script can turn it off"),
    SETTING_URL(CPU_POOL_URL, "http://cpu-pool.com/api/worker_stats", http_schemes,
                "cpu-pool (NOMP) worker_stats endpoint; the wallet is the whole query string"),
    SETTING_INT(CPU_POOL_CONCURRENCY, "8", 0, 10000,
                "cpu-pool requests in flight at a time from this engine; 0 = no cap (10000)"),
    SETTING_NUMBER(CPU_POOL_PER_SECOND, "10", 0, 100000,
                   "cpu-pool requests started per second from this engine; 0 = no cap"),
    SETTING_BOOL(RPLANT_ENABLED, "true", "poll accounts on pool.rplant.xyz"),
    SETTING_BOOL(RPLANT_TLS_VERIFY, "true",
                 "verify the TLS certificate and host name of rplant over https; false (a "
                 "test pool with a self-signed certificate only) is logged as "
                 "pool_tls_verify_off at start; no script can turn it off"),
    SETTING_URL(RPLANT_URL, "https://pool.rplant.xyz/api/walletEx/advc", http_schemes,
                "rplant walletEx endpoint; the wallet is appended as a path segment"),
    SETTING_INT(RPLANT_CONCURRENCY, "8", 0, 10000,
                "rplant requests in flight at a time from this engine; 0 = no cap (10000)"),
    SETTING_NUMBER(RPLANT_PER_SECOND, "10", 0, 100000,
                   "rplant requests started per second from this engine; 0 = no cap"),
    SETTING_BOOL(ZPOOL_ENABLED, "true", "poll accounts on zpool.ca"),
    SETTING_BOOL(ZPOOL_TLS_VERIFY, "true",
                 "verify the TLS certificate and host name of zpool over https; false (a "
                 "test pool with a self-signed certificate only) is logged as "
                 "pool_tls_verify_off at start; no script can turn it off"),
    SETTING_URL(ZPOOL_URL, "https://zpool.ca/api/walletEx", http_schemes,
                "zpool (YiiMP) walletEx endpoint; the wallet is sent as ?address="),
    SETTING_NUMBER(ZPOOL_PER_SECOND, "0.015384615384615385", 1e-6, 100,
                   "walletEx requests per second to zpool from this engine (YiiMP allows about "
                   "one a minute per client address; default 1/65); raise only with several "
                   "egress addresses"),
    SETTING_STRING(ZPOOL_PROXY, "", 0, "proxy URL (http://, https://, socks5h://)",
                   check_proxy_url,
                   "send zpool requests through this proxy (one egress address per engine "
                   "spreads zpool's per-address rate limit); empty = direct"),
    SETTING_STRING(ZPOOL_INTERFACE, "", 0, "interface name or address", check_engine_id,
                   "source interface or address for zpool requests, as libcurl's "
                   "CURLOPT_INTERFACE (\"eth1\", \"host!10.0.0.2\"); empty = any"),
    SETTING_STRING(RPLANT_DIV2, "", 0, "integer exponent 0-30", check_div2,
                   "rplant reports amounts in atomic units: divide them by 10^RPLANT_DIV2 (0 = "
                   "amounts are coins); empty = read div2 from rplant's /api/dash"),
    SETTING_URL(RPLANT_DASH_URL, "", http_schemes,
                "rplant's /api/dash (per-coin div2); empty = /api/dash on RPLANT_URL's host"),
    SETTING_STRING(ADVC_ADDRESS_VERSIONS, "23,51", 0, "comma-separated bytes 0-255",
                   check_byte_list,
                   "base58check version bytes of valid ADVC addresses (mainnet P2PKH 23, P2SH "
                   "51); a wallet with another version or a bad checksum is never polled"),
    SETTING_NUMBER(AP_PER_ADVC, "100", 0, 1e12, "Adventure Points awarded per ADVC paid out"),
    SETTING_NUMBER(MIN_PAYOUT_DELTA, "0.0001", 0, 1e12,
                   "smallest increase of a paid counter (ADVC) that is awarded; smaller "
                   "increases add up until they reach it"),
    SETTING_NUMBER(BTC_TO_ADVC_RATE, "1000000", 1e-12, 1e15,
                   "ADVC per BTC, for pools that pay in BTC (zpool)"),
    SETTING_BOOL(REWARD_HISTORY, "false",
                 "award what a wallet was paid before its first observation (otherwise that "
                 "is the baseline)"),
    SETTING_INT(DECREASE_CONFIRM_POLLS, "3", 1, 1000,
                "consecutive successful polls that must show a lower cumulative paid counter "
                "before it becomes the new baseline (a glitch that comes back awards nothing)"),
    SETTING_NUMBER(MAX_AWARD_ADVC, "1000", 0, 1e15,
                   "awards of one poll and account above this many ADVC are held for review "
                   "(m2p-engine --release-held / --reject-held); 0 = no ceiling"),
    SETTING_NUMBER(MAX_AWARD_FACTOR, "100", 0, 1e15,
                   "an award more than this many times the account's largest earlier award "
                   "(once it has five) is held for review; 0 = off"),
    SETTING_INT(SCRIPT_INSTRUCTION_BUDGET, "10000000", 1000, 1e10,
                "Lua instructions one script call may run before it is stopped"),
    SETTING_INT(SCRIPT_MEMORY_LIMIT_MB, "256", 8, 65536, "memory limit of the Lua scripts, in MiB"),
    SETTING_ENUM(LOG_LEVEL, "info", log_levels, "minimum level of log records"),
    SETTING_ENUM(LOG_FORMAT, "auto", log_formats,
                 "json: one JSON object per line, as the old service wrote; text: for "
                 "terminals; auto: text when stdout is a terminal, json otherwise (journald, "
                 "files, pipes)"),
    SETTING_NUMBER(SHUTDOWN_TIMEOUT_SECONDS, "10", 0, 600,
                   "seconds to finish polls in flight after SIGTERM before exiting (notification "
                   "deliveries in flight end at once; their events stay in the outbox and are "
                   "sent again)"),
    SETTING_STRING(ADMIN_LISTEN, "127.0.0.1:9464", 0, "ADDRESS:PORT ([IPv6], localhost) or off",
                   check_admin_listen,
                   "the admin HTTP endpoint (/metrics, /healthz, /readyz, /status, POST /reload); "
                   "off = none; an address other than loopback needs ADMIN_TOKEN"),
    SETTING_STRING(ADMIN_TOKEN, "", CFG_SECRET, "any text", NULL,
                   "bearer token required by POST /reload (Authorization: Bearer ...); empty = "
                   "none (allowed only on a loopback ADMIN_LISTEN)"),
};

static const char *const true_words[] = {"true", "1", "yes", "on", NULL};
static const char *const false_words[] = {"false", "0", "no", "off", NULL};

static const char *const type_names[] = {
    [CFG_TYPE_STRING] = "string", [CFG_TYPE_INT] = "int", [CFG_TYPE_NUMBER] = "number",
    [CFG_TYPE_BOOL] = "bool", [CFG_TYPE_ENUM] = "enum", [CFG_TYPE_URL] = "url",
};

/* ===== The config object ===== */

typedef struct file_var {
    char *name;
    char *value;
} file_var;

typedef struct setting_value {
    char *text; /* canonical text of the value */
    config_source source;
    union {
        int64_t i;
        double d;
        bool b;
        int e;
    } v;
} setting_value;

struct config {
    char *env_file; /* the .env file read, NULL if none */
    file_var *file_vars;
    size_t nfile_vars, cap_file_vars;
    setting_value values[CFG_COUNT];
};

static const config_setting *setting_by_name(const char *name)
{
    for (int i = 0; i < CFG_COUNT; i++)
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    return NULL;
}

static const char *file_var_get(const config *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->nfile_vars; i++)
        if (strlen(c->file_vars[i].name) == len && memcmp(c->file_vars[i].name, name, len) == 0)
            return c->file_vars[i].value;
    return NULL;
}

/* Environment first, then the .env file; empty counts as unset. */
static const char *raw_lookup(const config *c, const char *name, config_source *source)
{
    const char *v = getenv(name);
    if (v && *v) {
        if (source)
            *source = CFG_SOURCE_ENVIRONMENT;
        return v;
    }
    v = file_var_get(c, name, strlen(name));
    if (v && *v) {
        if (source)
            *source = CFG_SOURCE_ENV_FILE;
        return v;
    }
    return NULL;
}

/* ===== Messages ===== */

/* Appends one line to the error buffer (lines separated by '\n'); truncates quietly. */
static void err_add(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_add(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    size_t used = strnlen(err, errlen - 1);
    if (used > 0 && used + 1 < errlen) {
        err[used++] = '\n';
        err[used] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/* A value quoted for a message: escaped, and shortened when long. */
static void quote_value(char *buf, size_t len, const char *value)
{
    enum { SHOWN = 60 };
    size_t n = 0;
    buf[n++] = '"';
    size_t i = 0;
    for (; value[i] && i < SHOWN && n + 8 < len; i++) {
        unsigned char ch = (unsigned char)value[i];
        if (ch == '"' || ch == '\\')
            n += (size_t)snprintf(buf + n, len - n, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            n += (size_t)snprintf(buf + n, len - n, "\\x%02x", ch);
        else
            buf[n++] = (char)ch;
    }
    if (value[i] && n + 5 < len)
        n += (size_t)snprintf(buf + n, len - n, "...");
    snprintf(buf + n, len - n, "\"");
}

/* Readable form of a range end: 86400, 0.1, 1e12 (not 1000000000000 or 1e+12). */
static void format_number(char *buf, size_t len, double x)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", x);
    size_t n = strlen(tmp), zeros = 0;
    char *e = strchr(tmp, 'e');
    if (e) {
        int exponent = atoi(e + 1);
        *e = '\0';
        snprintf(buf, len, "%se%d", tmp, exponent);
        return;
    }
    if (!strchr(tmp, '.'))
        while (zeros < n - 1 && tmp[n - 1 - zeros] == '0')
            zeros++;
    if (zeros >= 7) /* a power of ten is easier to check than a run of zeros */
        snprintf(buf, len, "%.*se%zu", (int)(n - zeros), tmp, zeros);
    else
        snprintf(buf, len, "%s", tmp);
}

/* "a, b, c" or, with last_sep " or ", "a, b or c". */
static void join_words(char *buf, size_t len, const char *const *words, const char *last_sep)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; words[i] && n < len; i++) {
        const char *sep = i == 0 ? "" : words[i + 1] ? ", " : last_sep;
        n += (size_t)snprintf(buf + n, len - n, "%s%s", sep, words[i]);
    }
}

/* What a setting accepts: "1..86400", "debug, info, warning, error", "http or https URL". */
static void accepted_text(char *buf, size_t len, const config_setting *s)
{
    char lo[40], hi[40], words[128];
    switch (s->type) {
    case CFG_TYPE_INT:
    case CFG_TYPE_NUMBER:
        format_number(lo, sizeof lo, s->min);
        format_number(hi, sizeof hi, s->max);
        snprintf(buf, len, "%s..%s", lo, hi);
        break;
    case CFG_TYPE_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case CFG_TYPE_ENUM:
        join_words(buf, len, s->words, ", ");
        break;
    case CFG_TYPE_URL:
        join_words(words, sizeof words, s->words, " or ");
        snprintf(buf, len, "%s URL", words);
        break;
    case CFG_TYPE_STRING:
        snprintf(buf, len, "%s", s->accepted ? s->accepted : "any text");
        break;
    }
}

/* ===== Parsing values ===== */

static bool is_space(char ch) { return isspace((unsigned char)ch) != 0; }

/* A copy of `s` without leading and trailing white space. */
static char *trimmed_copy(const char *s)
{
    while (is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        n--;
    return strndup(s, n);
}

/* Decimal numbers only, like m2p.num in the prelude: no hex, inf, nan or trailing text. */
static bool parse_decimal(const char *s, double *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t int_digits = strspn(p, "0123456789");
    p += int_digits;
    size_t frac_digits = 0;
    if (*p == '.') {
        p++;
        frac_digits = strspn(p, "0123456789");
        p += frac_digits;
    }
    if (int_digits + frac_digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        size_t exp_digits = strspn(p, "0123456789");
        if (exp_digits == 0)
            return false;
        p += exp_digits;
    }
    if (*p != '\0')
        return false;
    errno = 0;
    double x = strtod(s, NULL);
    if (!isfinite(x))
        return false;
    *out = x;
    return true;
}

static bool parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
        return false;
    errno = 0;
    long long x = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return false;
    *out = (int64_t)x;
    return true;
}

static int word_index(const char *const *words, const char *s)
{
    for (int i = 0; words[i]; i++)
        if (strcasecmp(words[i], s) == 0)
            return i;
    return -1;
}

/* scheme://host[...] with an accepted scheme, a host, and no white space or control bytes. */
static bool valid_url(const char *s, const char *const *schemes)
{
    const char *sep = strstr(s, "://");
    if (!sep)
        return false;
    bool scheme_ok = false;
    for (int i = 0; schemes[i]; i++)
        if (strlen(schemes[i]) == (size_t)(sep - s) &&
            strncasecmp(schemes[i], s, (size_t)(sep - s)) == 0)
            scheme_ok = true;
    if (!scheme_ok)
        return false;
    const char *host = sep + 3;
    if (strcspn(host, "/?#") == 0)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* DATABASE_URL: a PostgreSQL URL or a key=value conninfo string. The old service's value is a
 * SQLAlchemy URL that may name a driver (postgresql+asyncpg://); libpq does not know that
 * form, so the "+driver" part is dropped. */
static bool check_database_url(char *value)
{
    const char *sep = strstr(value, "://");
    if (!sep)
        return strchr(value, '=') != NULL;
    size_t scheme_len = (size_t)(sep - value);
    size_t base_len = strncasecmp(value, "postgresql", 10) == 0 ? 10
                      : strncasecmp(value, "postgres", 8) == 0  ? 8
                                                                : 0;
    if (base_len == 0)
        return false;
    if (scheme_len == base_len)
        return true;
    if (value[base_len] != '+' || scheme_len == base_len + 1)
        return false;
    for (const char *p = value + base_len + 1; p < sep; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    memmove(value + base_len, sep, strlen(sep) + 1);
    return true;
}

/* Parses `raw` as setting `s` into `out`; on error adds one message line to err. */
static bool parse_setting(const config_setting *s, const char *raw, setting_value *out,
                          char *err, size_t errlen)
{
    /* Plain strings are kept as given; everything else ignores surrounding white space. */
    char *text = s->type == CFG_TYPE_STRING && !s->check ? strdup(raw) : trimmed_copy(raw);
    const char *why = NULL, *canonical = NULL;
    char accepted[160];
    if (!text)
        goto out_of_memory;
    accepted_text(accepted, sizeof accepted, s);
    switch (s->type) {
    case CFG_TYPE_INT:
        if (!parse_int(text, &out->v.i))
            why = "is not a whole number in";
        else if ((double)out->v.i < s->min || (double)out->v.i > s->max)
            why = "is outside";
        break;
    case CFG_TYPE_NUMBER:
        if (!parse_decimal(text, &out->v.d))
            why = "is not a decimal number in";
        else if (out->v.d < s->min || out->v.d > s->max)
            why = "is outside";
        break;
    case CFG_TYPE_BOOL:
        if (word_index(true_words, text) >= 0) {
            out->v.b = true;
            canonical = "true";
        } else if (word_index(false_words, text) >= 0) {
            out->v.b = false;
            canonical = "false";
        } else {
            why = "is not a boolean: use";
            snprintf(accepted, sizeof accepted, "true/false, 1/0, yes/no or on/off");
        }
        break;
    case CFG_TYPE_ENUM:
        out->v.e = word_index(s->words, text);
        if (out->v.e < 0)
            why = "is not one of";
        else
            canonical = s->words[out->v.e];
        break;
    case CFG_TYPE_URL:
        if (*text && !valid_url(text, s->words))
            why = "is not an";
        break;
    case CFG_TYPE_STRING:
        if (*text && s->check && !s->check(text))
            why = "is not a";
        break;
    }
    if (why) {
        char shown[96];
        /* Scrubbed before it is shortened: a cut could leave half a password behind. */
        char *clean = s->flags & CFG_SECRET ? NULL : secrets_scrub(raw);
        if (clean)
            quote_value(shown, sizeof shown, clean);
        else
            snprintf(shown, sizeof shown, "the value (not shown)");
        free(clean);
        err_add(err, errlen, "%s: %s %s %s (%s)", s->name, shown, why, accepted, s->meaning);
        free(text);
        return false;
    }
    if (canonical) {
        free(text);
        if (!(text = strdup(canonical)))
            goto out_of_memory;
    }
    out->text = text;
    return true;

out_of_memory:
    err_add(err, errlen, "%s: out of memory", s->name);
    return false;
}

/* ===== The .env file ===== */

#define M2P_STR_(x) #x
#define M2P_STR(x) M2P_STR_(x)

static bool file_var_set(config *c, const char *name, size_t name_len, char *value)
{
    for (size_t i = 0; i < c->nfile_vars; i++) {
        if (strlen(c->file_vars[i].name) == name_len &&
            memcmp(c->file_vars[i].name, name, name_len) == 0) {
            free(c->file_vars[i].value); /* a later line wins, as in python-dotenv */
            c->file_vars[i].value = value;
            return true;
        }
    }
    if (c->nfile_vars == c->cap_file_vars) {
        size_t cap = c->cap_file_vars ? c->cap_file_vars * 2 : 16;
        file_var *grown = realloc(c->file_vars, cap * sizeof *grown);
        if (!grown)
            return false;
        c->file_vars = grown;
        c->cap_file_vars = cap;
    }
    char *copy = strndup(name, name_len);
    if (!copy)
        return false;
    c->file_vars[c->nfile_vars++] = (file_var){copy, value};
    return true;
}

/* ${NAME} and ${NAME:-default} references, resolved like python-dotenv without override:
 * the environment, then lines above in the file, then the default, then "". Unlike
 * python-dotenv an empty variable counts as unset here too, as `:-` does in a shell. */
static char *interpolate(const config *c, const char *value)
{
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (!f)
        return NULL;
    for (const char *p = value; *p;) {
        const char *close = p[0] == '$' && p[1] == '{' ? strchr(p + 2, '}') : NULL;
        const char *name = p + 2, *name_end = close, *def = NULL;
        if (close) {
            name_end = name + strcspn(name, ":}");
            if (*name_end == ':') {
                if (name_end[1] == '-')
                    def = name_end + 2;
                else
                    close = NULL; /* not a reference: python-dotenv keeps it literally */
            }
        }
        if (!close) {
            fputc(*p++, f);
            continue;
        }
        char *key = strndup(name, (size_t)(name_end - name));
        const char *v = key ? getenv(key) : NULL;
        if (!v || !*v)
            v = file_var_get(c, name, (size_t)(name_end - name));
        if (v && *v)
            fputs(v, f);
        else if (def)
            fwrite(def, 1, (size_t)(close - def), f);
        free(key);
        p = close + 1;
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Decodes the quoted value starting at *pp (which points at the quote) into `out`, leaving
 * *pp after the closing quote. Double quotes decode \n \t \r \" \\ \' \a \b \f \v; single
 * quotes only \' and \\ (python-dotenv). Returns false if the quote is not closed. */
static bool read_quoted(const char **pp, char *out)
{
    const char *p = *pp;
    char quote = *p++;
    size_t n = 0;
    for (; *p && *p != quote; p++) {
        if (*p == '\\' && p[1]) {
            char e = p[1], decoded = 0;
            if (quote == '\'') {
                if (e == '\'' || e == '\\')
                    decoded = e;
            } else {
                const char *from = "nrtabfv\"'\\", *to = "\n\r\t\a\b\f\v\"'\\";
                const char *hit = strchr(from, e);
                if (hit)
                    decoded = to[hit - from];
            }
            if (decoded) {
                out[n++] = decoded;
                p++;
                continue;
            }
        }
        out[n++] = *p;
    }
    out[n] = '\0';
    if (*p != quote)
        return false;
    *pp = p + 1;
    return true;
}

/* Parses one line (no line ending). Returns NULL if it is fine, else why it is malformed. */
static const char *parse_env_line(config *c, const char *line)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#')
        return NULL;
    if (strncmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) {
        p += 6;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    const char *name = p;
    size_t name_len = strcspn(p, "= \t#\"'");
    if (name_len == 0)
        return "expected NAME=value";
    p += name_len;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '=')
        return *p ? "expected '=' after the name" : "expected NAME=value, found only a name";
    p++;
    bool spaced = *p == ' ' || *p == '\t';
    while (*p == ' ' || *p == '\t')
        p++;

    /* The decoded value is never longer than the rest of the line. */
    char *value = malloc(strlen(p) + 1);
    if (!value)
        return "out of memory";
    if (*p == '"' || *p == '\'') {
        char quote = *p;
        if (!read_quoted(&p, value)) {
            free(value);
            return quote == '"' ? "unterminated double-quoted value (values span one line)"
                                : "unterminated single-quoted value (values span one line)";
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != '#') {
            free(value);
            return "unexpected text after the closing quote";
        }
    } else if (spaced && *p == '#') {
        value[0] = '\0'; /* NAME= # comment */
    } else {
        /* Unquoted: up to an inline comment (white space then #), trailing space dropped. */
        size_t n = 0;
        for (; p[n]; n++)
            if (p[n] == '#' && n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                break;
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        memcpy(value, p, n);
        value[n] = '\0';
    }
    char *resolved = interpolate(c, value);
    free(value);
    if (!resolved || !file_var_set(c, name, name_len, resolved)) {
        free(resolved);
        return "out of memory";
    }
    return NULL;
}

static bool read_env_file(config *c, const char *path, bool required, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && !required)
            return true;
        err_add(err, errlen, "%s: cannot open the .env file: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
        err_add(err, errlen, "%s: the .env file is not a regular file", path);
        fclose(f);
        return false;
    }
    c->env_file = strdup(path);
    bool ok = c->env_file != NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    for (unsigned lineno = 1; ok && (len = getline(&line, &cap, f)) >= 0; lineno++) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        const char *text = line;
        if (lineno == 1 && strncmp(text, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 byte order mark */
            text += 3;
        const char *why;
        if ((size_t)len > CONFIG_ENV_LINE_MAX)
            why = "line is longer than " M2P_STR(CONFIG_ENV_LINE_MAX) " bytes";
        else if (strlen(line) != (size_t)len)
            why = "line contains a NUL byte";
        else
            why = parse_env_line(c, text);
        if (why) {
            /* The line itself is never shown: it may hold a password. */
            err_add(err, errlen, "%s:%u: %s", path, lineno, why);
            ok = false;
        }
    }
    if (ok && ferror(f)) {
        err_add(err, errlen, "%s: read error: %s", path, strerror(errno));
        ok = false;
    }
    if (!c->env_file)
        err_add(err, errlen, "%s: out of memory", path);
    free(line);
    fclose(f);
    return ok;
}

/* ===== Loading ===== */

/* The values of the secret settings, before any value is parsed: an invalid value of ANY
 * setting may contain one (AUTO_MIGRATE=${DATABASE_URL}), and its message must not show it. */
static void remember_secrets(const config *c)
{
    for (int i = 0; i < CFG_COUNT; i++) {
        if (!(settings[i].flags & CFG_SECRET))
            continue;
        const char *raw = raw_lookup(c, settings[i].name, NULL);
        if (i == CFG_DATABASE_URL)
            secrets_remember_conninfo(raw);
        else
            secrets_remember(raw);
        /* Trimmed too: settings with a check ignore surrounding white space. */
        char *trimmed = raw ? trimmed_copy(raw) : NULL;
        if (trimmed && i != CFG_DATABASE_URL)
            secrets_remember(trimmed);
        free(trimmed);
    }
}

config *config_load(const char *env_file, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    config *c = calloc(1, sizeof *c);
    if (!c) {
        err_add(err, errlen, "out of memory");
        return NULL;
    }
    bool ok = true;
    if (!env_file)
        ok = read_env_file(c, ".env", false, err, errlen);
    else if (*env_file)
        ok = read_env_file(c, env_file, true, err, errlen);
    if (ok)
        remember_secrets(c);
    if (ok) {
        /* Every setting is parsed, so that one run reports every bad value. */
        for (int i = 0; i < CFG_COUNT; i++) {
            config_source source = CFG_SOURCE_DEFAULT;
            const char *raw = raw_lookup(c, settings[i].name, &source);
            if (!raw)
                raw = settings[i].default_value;
            c->values[i].source = source;
            if (!parse_setting(&settings[i], raw, &c->values[i], err, errlen))
                ok = false;
        }
    }
    if (!ok) {
        secrets_scrub_buffer(err, errlen); /* e.g. a .env path given as ${DATABASE_URL} */
        config_free(c);
        return NULL;
    }
    return c;
}

void config_free(config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nfile_vars; i++) {
        free(c->file_vars[i].name);
        free(c->file_vars[i].value);
    }
    free(c->file_vars);
    for (int i = 0; i < CFG_COUNT; i++)
        free(c->values[i].text);
    free(c->env_file);
    free(c);
}

/* ===== Getters ===== */

/* The value of setting `id` for a getter that accepts type `want` (ANY_TYPE: every type). */
enum { ANY_TYPE = -1 };
static const setting_value *value_of(const config *c, config_id id, int want, const char *getter)
{
    if ((unsigned)id >= CFG_COUNT) {
        fprintf(stderr, "%s: no setting with id %d\n", getter, (int)id);
        abort();
    }
    int have = (int)settings[id].type;
    if (want != ANY_TYPE && have != want && !(want == CFG_TYPE_NUMBER && have == CFG_TYPE_INT)) {
        fprintf(stderr, "%s(%s): the setting is of type %s\n", getter, settings[id].name,
                type_names[have]);
        abort();
    }
    return &c->values[id];
}

int64_t config_int(const config *c, config_id id)
{
    return value_of(c, id, CFG_TYPE_INT, "config_int")->v.i;
}

double config_number(const config *c, config_id id)
{
    const setting_value *v = value_of(c, id, CFG_TYPE_NUMBER, "config_number");
    return settings[id].type == CFG_TYPE_INT ? (double)v->v.i : v->v.d;
}

bool config_bool(const config *c, config_id id)
{
    return value_of(c, id, CFG_TYPE_BOOL, "config_bool")->v.b;
}

int config_enum(const config *c, config_id id)
{
    return value_of(c, id, CFG_TYPE_ENUM, "config_enum")->v.e;
}

const char *config_string(const config *c, config_id id)
{
    return value_of(c, id, ANY_TYPE, "config_string")->text;
}

config_source config_source_of(const config *c, config_id id)
{
    return value_of(c, id, ANY_TYPE, "config_source_of")->source;
}

const char *config_name(config_id id)
{
    return (unsigned)id < CFG_COUNT ? settings[id].name : NULL;
}

const char *config_lookup(const config *c, const char *name)
{
    const config_setting *s = setting_by_name(name);
    if (s) {
        /* Unset means unset: a script's own default then applies, so an operator who edits
         * the default in rewards.lua gets what they wrote. A value that is set is returned
         * validated, in canonical form. */
        const setting_value *v = &c->values[s - settings];
        return v->source != CFG_SOURCE_DEFAULT && v->text[0] ? v->text : NULL;
    }
    return raw_lookup(c, name, NULL);
}

const char *config_env_file(const config *c) { return c->env_file; }

cJSON *config_to_json(const config *c)
{
    cJSON *obj = cJSON_CreateObject();
    for (int i = 0; obj && i < CFG_COUNT; i++) {
        const config_setting *s = &settings[i];
        const setting_value *v = &c->values[i];
        switch (s->type) {
        case CFG_TYPE_INT:
            cJSON_AddNumberToObject(obj, s->name, (double)v->v.i);
            break;
        case CFG_TYPE_NUMBER:
            cJSON_AddNumberToObject(obj, s->name, v->v.d);
            break;
        case CFG_TYPE_BOOL:
            cJSON_AddBoolToObject(obj, s->name, v->v.b);
            break;
        default:
            if (s->flags & CFG_SECRET) {
                char *redacted = config_redact_url(v->text);
                cJSON_AddStringToObject(obj, s->name, redacted ? redacted : "***");
                free(redacted);
            } else {
                cJSON_AddStringToObject(obj, s->name, v->text);
            }
        }
    }
    return obj;
}

/* ===== --help and docs ===== */

/* Writes `text` word-wrapped to `width` columns, every line indented by `indent`. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
    int col = 0;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            col = fprintf(out, "%*s", indent, "");
        else
            col += fprintf(out, " ");
        col += fprintf(out, "%.*s", (int)word, text);
        text += word;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

void config_print_help(FILE *out)
{
    fprintf(out, "Settings: environment variables, or NAME=value lines in the .env file for\n"
                 "variables the environment does not set. An empty value counts as unset;\n"
                 "booleans accept true/false, 1/0, yes/no, on/off.\n");
    for (int i = 0; i < CFG_COUNT; i++) {
        const config_setting *s = &settings[i];
        char accepted[160];
        accepted_text(accepted, sizeof accepted, s);
        fprintf(out, "  %-26s ", s->name);
        switch (s->type) {
        case CFG_TYPE_INT:
        case CFG_TYPE_NUMBER:
            fprintf(out, "%s %s", type_names[s->type], accepted);
            break;
        case CFG_TYPE_BOOL:
            fprintf(out, "bool");
            break;
        case CFG_TYPE_ENUM:
            fprintf(out, "one of %s", accepted);
            break;
        case CFG_TYPE_URL:
        case CFG_TYPE_STRING:
            fprintf(out, "%s%s", s->flags & CFG_SECRET ? "secret, " : "", accepted);
            break;
        }
        fprintf(out, " (default: %s)\n", *s->default_value ? s->default_value : "empty");
        print_wrapped(out, s->meaning, 6, 79);
    }
}

static void print_md_cell(FILE *out, const char *text)
{
    fputs(" ", out);
    for (; *text; text++) {
        if (*text == '|')
            fputc('\\', out);
        fputc(*text, out);
    }
    fputs(" |", out);
}

void config_print_markdown(FILE *out)
{
    fprintf(out, "| Variable | Type | Default | Accepted | Meaning |\n");
    fprintf(out, "| --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < CFG_COUNT; i++) {
        const config_setting *s = &settings[i];
        char cell[256], accepted[160];
        fputs("|", out);
        snprintf(cell, sizeof cell, "`%s`", s->name);
        print_md_cell(out, cell);
        snprintf(cell, sizeof cell, "%s%s", type_names[s->type],
                 s->flags & CFG_SECRET ? ", secret" : "");
        print_md_cell(out, cell);
        if (*s->default_value)
            snprintf(cell, sizeof cell, "`%s`", s->default_value);
        else
            snprintf(cell, sizeof cell, "*(empty)*");
        print_md_cell(out, cell);
        accepted_text(accepted, sizeof accepted, s);
        print_md_cell(out, accepted);
        print_md_cell(out, s->meaning);
        fputc('\n', out);
    }
    fprintf(out,
            "\nBooleans accept `true`/`false`, `1`/`0`, `yes`/`no` and `on`/`off` in any case. "
            "A variable set to the empty string counts as unset.\n");
}

/* ===== Redaction ===== */

/* Writes a URL's query string (from after '?' up to '#' or the end), with the value of
 * every password parameter replaced. */
static void redact_query(FILE *f, const char *q, size_t len)
{
    while (len > 0) {
        size_t param = 0;
        while (param < len && q[param] != '&')
            param++;
        if (param >= 9 && strncasecmp(q, "password=", 9) == 0) {
            fwrite(q, 1, 9, f);
            fputs("***", f);
        } else
            fwrite(q, 1, param, f);
        q += param;
        len -= param;
        if (len > 0) { /* the '&' */
            fputc('&', f);
            q++;
            len--;
        }
    }
}

static void redact_uri(FILE *f, const char *url, const char *authority)
{
    fwrite(url, 1, (size_t)(authority - url), f);
    /* The LAST '@' ends the user info: a password may contain an unescaped '@' or '/'. When
     * the query string has an '@' this redacts too much, never too little. */
    const char *at = strrchr(authority, '@');
    const char *rest = authority;
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        if (colon) {
            fwrite(authority, 1, (size_t)(colon + 1 - authority), f);
            fputs("***", f);
        } else {
            fwrite(authority, 1, (size_t)(at - authority), f);
        }
        rest = at;
    }
    size_t before_query = strcspn(rest, "?#");
    fwrite(rest, 1, before_query, f);
    rest += before_query;
    if (*rest == '?') {
        fputc('?', f);
        rest++;
        size_t query = strcspn(rest, "#");
        redact_query(f, rest, query);
        rest += query;
    }
    fputs(rest, f);
}

/* libpq keyword form: key = value pairs, values bare or single-quoted with \ escapes. What
 * cannot be parsed is replaced as a whole: it might be a password. */
static void redact_conninfo(FILE *f, const char *s)
{
    const char *p = s;
    while (*p) {
        const char *start = p;
        while (is_space(*p))
            p++;
        const char *key = p;
        while (*p && *p != '=' && !is_space(*p))
            p++;
        size_t key_len = (size_t)(p - key);
        while (is_space(*p))
            p++;
        if (key_len == 0 && *p == '\0') {
            fputs(start, f);
            return;
        }
        if (key_len == 0 || *p != '=')
            goto unparsable;
        p++;
        while (is_space(*p))
            p++;
        const char *value = p;
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p != '\'')
                goto unparsable;
            p++;
        } else {
            for (; *p && !is_space(*p); p++)
                if (*p == '\\' && p[1])
                    p++;
        }
        fwrite(start, 1, (size_t)(value - start), f);
        if (key_len == 8 && strncasecmp(key, "password", 8) == 0)
            fputs("***", f);
        else
            fwrite(value, 1, (size_t)(p - value), f);
        continue;
    unparsable:
        fwrite(start, 1, (size_t)(key - start), f);
        fputs("***", f);
        return;
    }
}

char *config_redact_url(const char *url)
{
    if (!url)
        return NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    const char *sep = strstr(url, "://");
    size_t scheme_len = sep ? (size_t)(sep - url) : 0;
    if (sep && scheme_len > 0 && strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789+.-") == scheme_len)
        redact_uri(f, url, sep + 3);
    else
        redact_conninfo(f, url);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
