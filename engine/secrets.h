/* Secrets: the one scrubber every printed setting value, URL and log record goes through.
 *
 * It removes (a) every value the engine knows to be secret (the settings marked secret in
 * config.c: DATABASE_URL's password in all its written and decoded forms, WEBHOOK_SECRET,
 * ADMIN_TOKEN, SOCKETIO_AUTH), wherever it appears, also percent-encoded, and (b) the user
 * information ("user:password@") of any URL in the text. Removed text becomes "***".
 *
 * Why process-wide: a secret leaks through whatever prints it (another setting's error after
 * ${VAR} expansion, a script's log field, libpq's message), and no call site can know which
 * values are secret. config_load remembers them here; log_emit and the error paths ask for
 * scrubbed copies. Remembered values stay for the life of the process (a reload only adds).
 */
#ifndef M2P_SECRETS_H
#define M2P_SECRETS_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* Remembers `value` (and its percent-encoded form) as a secret. "" and NULL are ignored. */
void secrets_remember(const char *value);
/* Remembers the password of a PostgreSQL URL or key=value conninfo, as written and decoded. */
void secrets_remember_conninfo(const char *conninfo);

/* A copy of `text` without any remembered secret and without URL user information.
 * Caller frees; NULL on NULL text or out of memory. */
char *secrets_scrub(const char *text);
/* The same, in place in a buffer of `len` bytes (the result is never longer than what fits:
 * it is truncated if need be). */
void secrets_scrub_buffer(char *buf, size_t len);
/* Writes prefix, the scrubbed text and a newline to out (for CLI lines printed with printf,
 * outside the log). */
void secrets_print_line(FILE *out, const char *prefix, const char *text);
/* Scrubs every string (values and names) inside `item`, recursively, in place. */
void secrets_scrub_json(cJSON *item);

/* Lower-level, for a caller with its own list (the database's conninfo, db_scrub.c):
 * `text` with each of `list` (longest first) and every "double-quoted" fragment of one of
 * them replaced by ***. Does NOT strip URL user information. Caller frees. */
char *secrets_scrub_list(char *const *list, int n, const char *text);

/* Forgets every remembered secret (tests). */
void secrets_forget_all(void);

#endif
