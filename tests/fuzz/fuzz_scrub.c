/* Fuzz target: the DATABASE_URL scrubber (engine/store/db_scrub.c, db_scrub) and the
 * redaction of config_redact_url (engine/config.c), on a hostile conninfo and message.
 *
 * Input framing: conninfo, a NUL, then the text to scrub (the rest, up to its first NUL).
 * Checks, besides no crash: whatever password libpq itself reads from the conninfo
 * (PQconninfoParse) does not appear in db_scrub's output when the text contained it. The
 * check is skipped for a password containing '*', the character the scrubber writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "config.h"
#include "db.h"
#include "fuzz.h"

/* The password libpq reads from conninfo (malloc'd), or NULL. */
static char *libpq_password(const char *conninfo)
{
    char *perr = NULL, *pw = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (o->val && o->val[0] && strcmp(o->keyword, "password") == 0)
            pw = strdup(o->val);
    PQconninfoFree(opts);
    PQfreemem(perr);
    return pw;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part;
    size_t n = fuzz_next_part(&data, &size, &part);
    char *conninfo = strndup((const char *)part, n);
    n = fuzz_next_part(&data, &size, &part);
    char *text = strndup((const char *)part, n);
    if (!conninfo || !text) {
        free(conninfo);
        free(text);
        return 0;
    }
    char *scrubbed = db_scrub(conninfo, text);
    char *pw = libpq_password(conninfo);
    if (scrubbed && pw && !strchr(pw, '*') && strstr(scrubbed, pw)) {
        fprintf(stderr, "fuzz_scrub: the password (%zu bytes) survived db_scrub\n", strlen(pw));
        abort();
    }
    free(pw);
    free(scrubbed);
    free(config_redact_url(conninfo));
    free(conninfo);
    free(text);
    return 0;
}
