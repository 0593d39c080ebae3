/* Configuration: the engine's settings, read from the environment and an optional .env file.
 *
 * One table in config.c describes every setting (name, type, default, accepted range, meaning);
 * parsing, validation errors, `--help` and the table in docs/operations.md all come from it.
 * The variable names are those of the Python service m2p-engine replaces.
 */
#ifndef M2P_CONFIG_H
#define M2P_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* Exit status for an invalid configuration (EX_CONFIG from sysexits.h). */
#define CONFIG_EXIT_INVALID 78

/* Longest .env line accepted, in bytes (without the line ending). */
#define CONFIG_ENV_LINE_MAX 8192

/* The settings in the table, in the order --help and the docs list them. */
typedef enum config_id {
    CFG_DATABASE_URL,
    CFG_AUTO_MIGRATE,
    CFG_DB_POOL_SIZE,
    CFG_DB_RESULT_TIMEOUT_SECONDS,
    CFG_DATABASE_STATS_INTERVAL,
    CFG_STORE_RAW_RESPONSES,
    CFG_SNAPSHOT_HEARTBEAT,
    CFG_SNAPSHOT_RETENTION_DAYS,
    CFG_ENGINE_ID,
    CFG_SOCKETIO_URL,
    CFG_SOCKETIO_NAMESPACE,
    CFG_SOCKETIO_PATH,
    CFG_SOCKETIO_AUTH,
    CFG_WEBHOOK_URLS,
    CFG_WEBHOOK_SECRET,
    CFG_PG_NOTIFY_CHANNEL,
    CFG_NOTIFY_MAX_AGE,
    CFG_NOTIFY_TIMEOUT,
    CFG_POLL_INTERVAL_SECONDS,
    CFG_POOL_REQUEST_TIMEOUT,
    CFG_POOL_CONNECT_TIMEOUT,
    CFG_POOL_MAX_RESPONSE_BYTES,
    CFG_HTTP_CLIENT,
    CFG_CPU_POOL_ENABLED,
    CFG_CPU_POOL_TLS_VERIFY,
    CFG_CPU_POOL_URL,
    CFG_CPU_POOL_CONCURRENCY,
    CFG_CPU_POOL_PER_SECOND,
    CFG_RPLANT_ENABLED,
    CFG_RPLANT_TLS_VERIFY,
    CFG_RPLANT_URL,
    CFG_RPLANT_CONCURRENCY,
    CFG_RPLANT_PER_SECOND,
    CFG_ZPOOL_ENABLED,
    CFG_ZPOOL_TLS_VERIFY,
    CFG_ZPOOL_URL,
    CFG_ZPOOL_PER_SECOND,
    CFG_ZPOOL_PROXY,
    CFG_ZPOOL_INTERFACE,
    CFG_RPLANT_DIV2,
    CFG_RPLANT_DASH_URL,
    CFG_ADVC_ADDRESS_VERSIONS,
    CFG_AP_PER_ADVC,
    CFG_MIN_PAYOUT_DELTA,
    CFG_BTC_TO_ADVC_RATE,
    CFG_REWARD_HISTORY,
    CFG_DECREASE_CONFIRM_POLLS,
    CFG_MAX_AWARD_ADVC,
    CFG_MAX_AWARD_FACTOR,
    CFG_SCRIPT_INSTRUCTION_BUDGET,
    CFG_SCRIPT_MEMORY_LIMIT_MB,
    CFG_LOG_LEVEL,
    CFG_LOG_FORMAT,
    CFG_SHUTDOWN_TIMEOUT_SECONDS,
    CFG_ADMIN_LISTEN,
    CFG_ADMIN_TOKEN,
    CFG_COUNT
} config_id;

typedef enum config_type {
    CFG_TYPE_STRING,
    CFG_TYPE_INT,    /* int64_t */
    CFG_TYPE_NUMBER, /* double */
    CFG_TYPE_BOOL,
    CFG_TYPE_ENUM,   /* one of a fixed list of words, any case */
    CFG_TYPE_URL,    /* scheme://host... with a scheme from a fixed list */
} config_type;

/* Where a setting's value came from. */
typedef enum config_source {
    CFG_SOURCE_DEFAULT,
    CFG_SOURCE_ENVIRONMENT,
    CFG_SOURCE_ENV_FILE,
} config_source;

typedef struct config config;

/* Reads the settings. `env_file`: NULL = "./.env" if it exists; "" = no .env file; any other
 * path must exist. The real environment wins over the file; a variable set to the empty string
 * counts as unset. The process environment is never modified.
 * Returns NULL and writes the reason(s) to `err` (one per line, no trailing newline; file:line
 * for a malformed .env line) when the file cannot be read or a value is invalid. */
config *config_load(const char *env_file, char *err, size_t errlen);
void config_free(config *c);

/* Typed values of table settings. Asking for the wrong type is a programming error (abort).
 * config_number also accepts int settings; config_string accepts every setting and returns
 * the value as text (canonical spelling for bool and enum; "" for an unset string). */
int64_t config_int(const config *c, config_id id);
double config_number(const config *c, config_id id);
bool config_bool(const config *c, config_id id);
const char *config_string(const config *c, config_id id);
/* Index of an enum setting's value in its list of accepted values, e.g. LOG_LEVEL:
 * 0 debug, 1 info, 2 warning, 3 error (the order of log_level in log.h). */
int config_enum(const config *c, config_id id);
config_source config_source_of(const config *c, config_id id);
/* The variable name of a table setting, e.g. "POLL_INTERVAL_SECONDS". */
const char *config_name(config_id id);

/* The value of any variable, from the environment, then the .env file; NULL if unset or empty
 * (also for a table setting left at its default: the script's own default then applies). For a
 * variable in the table a value that is set comes validated, in canonical form. */
const char *config_lookup(const config *c, const char *name);

/* Path of the .env file that was read, or NULL if none was. */
const char *config_env_file(const config *c);

/* Every table setting with its typed value (secrets redacted), for a startup log record. */
cJSON *config_to_json(const config *c);

/* Settings part of --help: name, type and range, default, meaning. */
void config_print_help(FILE *out);
/* The Markdown table that docs/operations.md carries between its settings markers. */
void config_print_markdown(FILE *out);

/* A copy of a PostgreSQL URL or key=value conninfo with the password replaced by ***, for
 * logs and messages. Handles postgresql://user:pw@host/db, postgres://..., ?password=... and
 * password=... / password='...'. Caller frees; NULL on NULL input or out of memory. */
char *config_redact_url(const char *url);

#endif
