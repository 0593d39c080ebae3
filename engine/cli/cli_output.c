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

/* What a terminal may act on: C0 and C1 controls, DEL, and the bidirectional overrides and
 * isolates that reorder what follows them on the line. */
static bool terminal_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F;
}

void cli_put_clean(FILE *out, const char *text)
{
    for (const char *s = text ? text : ""; *s;) {
        uint32_t cp;
        size_t n = utf8_sequence(s, &cp);
        if (n == 0 || terminal_control(cp)) {
            fputc('?', out);
            s += n ? n : 1;
        } else {
            fwrite(s, 1, n, out);
            s += n;
        }
    }
}
