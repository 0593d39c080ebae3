/* What the command-line modes print, the same way in each: database errors as one line with
 * the password scrubbed, and text from players and pools with control characters made
 * harmless. */
#ifndef M2P_CLI_OUTPUT_H
#define M2P_CLI_OUTPUT_H

#include <stdio.h>

/* "<prefix><what>: <detail>\n" on `out`: every trace of the conninfo's password replaced
 * (db_scrub), trailing newlines of libpq's message dropped. */
void cli_db_error(FILE *out, const char *prefix, const char *conninfo, const char *what,
                  const char *detail);

/* `text` with each control character (a tab that would shift columns, a terminal escape, a
 * C1 control, a bidirectional override) and each byte of invalid UTF-8 printed as '?'. NULL
 * prints nothing. */
void cli_put_clean(FILE *out, const char *text);

#endif
