/* Output helpers of the command-line modes (see cli_output.h). */
#include "cli_output.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"

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
    for (const unsigned char *c = (const unsigned char *)(text ? text : ""); *c; c++)
        fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, out);
}
