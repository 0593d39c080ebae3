/* Values on their way into PostgreSQL that it would refuse: text that is not UTF-8
 * (SQLSTATE 22021), a \u0000 escape in json/jsonb (22P05), a number beyond NUMERIC(30,8)
 * (22003). One such value fails the whole m2p_commit_poll statement, and since a pool keeps
 * answering the same body, every later poll of that account would fail the same way: the
 * account would never be awarded again. These helpers make such values storable (text) or
 * let the caller refuse them before anything is sent (amounts), naming what was wrong. */
#ifndef M2P_DB_VALUES_H
#define M2P_DB_VALUES_H

#include <stdbool.h>

/* What dbv_json_clean changed (bits). */
#define DBV_INVALID_UTF8 1u /* bytes outside a valid UTF-8 sequence, now U+FFFD each */
#define DBV_NUL_ESCAPE 2u   /* \u0000 escapes inside strings, dropped */

/* A copy of JSON text that PostgreSQL's json/jsonb input takes: every byte that does not
 * belong to a valid UTF-8 sequence becomes U+FFFD, every \u0000 escape is dropped (an
 * escaped backslash followed by "u0000" is left alone). *changed gets the DBV_ bits (0 when
 * the copy equals the input). NULL in: NULL out; out of memory: NULL. Caller frees. */
char *dbv_json_clean(const char *json, unsigned *changed);

/* Whether text is a decimal number PostgreSQL's numeric input takes ([+-], digits with an
 * optional point, an optional exponent; no hex, inf or nan), and its value in *out. */
bool dbv_decimal_text(const char *text, double *out);

/* Whether a double fits NUMERIC(30,8) (finite, |x| < 1e22). */
bool dbv_double_fits_numeric(double x);

#endif
