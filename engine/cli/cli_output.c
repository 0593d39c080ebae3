/* Output helpers of the command-line modes (see cli_output.h). */
#include "cli_output.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "utf8.h"

void cli_db_error(FILE *out, const char *prefix, const char *conninfo, const char *what,
                  const char *detail)
{
    char *clean = db_scrub(conninfo, detail && detail[0] ? detail : "unknown error");
    size_t n = clean ? strlen(clean) : 0;
    while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
        clean[--n] = '\0';
    fprintf(out, "%s%s: %s\n", prefix, what, clean ? clean : "out of memory");
    free(clean);
}

void cli_put_clean(FILE *out, const char *text)
{
    for (const char *s = text ? text : ""; *s;) {
        uint32_t cp;
        size_t n = utf8_sequence(s, &cp);
        if (n == 0 || utf8_terminal_control(cp)) {
            fputc('?', out);
            s += n ? n : 1;
        } else {
            fwrite(s, 1, n, out);
            s += n;
        }
    }
}
