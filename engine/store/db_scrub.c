/* PostgreSQL access: keeping the conninfo's password out of every text that leaves the
 * module (log records, db_result.error, db_last_error, db_connect_blocking's err).
 *
 * Why a seam of its own: libpq quotes conninfo fragments in its messages, so the password
 * can appear decoded, as written (percent-encoded in a URL, quoted in key=value form) or in
 * pieces between double quotes. Finding those spans is a small parser of both conninfo forms
 * that the rest of the module never needs to see: it only asks for a scrubbed copy
 * (dbi_scrub with the db's secrets, collected once by db_new; db_scrub for a conninfo given
 * per call) and for one-line text (dbi_flatten).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "secrets.h"

static void add_secret(char ***list, int *n, const char *s, size_t len)
{
    if (!s || len == 0)
        return;
    for (int i = 0; i < *n; i++)
        if (strlen((*list)[i]) == len && memcmp((*list)[i], s, len) == 0)
            return;
    char **nl = realloc(*list, sizeof(char *) * (size_t)(*n + 1));
    if (!nl)
        return;
    *list = nl;
    char *copy = strndup(s, len);
    if (!copy)
        return;
    nl[(*n)++] = copy;
}

/* Spans of the conninfo that hold the password as written, plus the decoded password. */
static void collect_secrets(const char *ci, char ***list, int *n)
{
    *list = NULL;
    *n = 0;
    if (!ci)
        return;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(ci, &perr);
    if (opts) {
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (o->val && strcmp(o->keyword, "password") == 0)
                add_secret(list, n, o->val, strlen(o->val));
        PQconninfoFree(opts);
    }
    PQfreemem(perr);

    const char *sep = strstr(ci, "://");
    if (sep && (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0)) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++)
            if (*p == '@')
                at = p;
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (colon)
                add_secret(list, n, colon + 1, (size_t)(at - colon - 1));
        }
        const char *q = strchr(auth, '?');
        while (q) {
            q++;
            if (strncmp(q, "password=", 9) == 0) {
                const char *v = q + 9;
                add_secret(list, n, v, strcspn(v, "&"));
            }
            q = strchr(q, '&');
        }
        return;
    }
    /* key=value form: from the value to the next "word =" or the end. */
    for (const char *p = ci; (p = strstr(p, "password")) != NULL; p += 8) {
        if (p > ci && dbi_ident_char(p[-1]))
            continue;
        const char *v = p + 8;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        if (*v != '=')
            continue;
        v++;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        const char *end = v;
        if (*end == '\'') {
            end++;
            while (*end && *end != '\'') {
                if (*end == '\\' && end[1])
                    end++;
                end++;
            }
            if (*end)
                end++;
        }
        /* extend over further words that are not "key=" */
        for (;;) {
            const char *w = end;
            while (*w && *w != ' ' && *w != '\t' && *w != '\n' && *w != '\r')
                w++;
            end = w;
            while (*w == ' ' || *w == '\t' || *w == '\n' || *w == '\r')
                w++;
            if (!*w)
                break;
            const char *k = w;
            while (dbi_ident_char(*k))
                k++;
            while (*k == ' ' || *k == '\t')
                k++;
            if (k > w && *k == '=')
                break;
            end = w;
        }
        add_secret(list, n, v, (size_t)(end - v));
        /* the quoted value without its quotes */
        if (end - v >= 2 && *v == '\'')
            add_secret(list, n, v + 1, (size_t)(end - v - 2));
    }
}

static int cmp_len_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

void dbi_secrets_load(const char *conninfo, char ***list, int *n)
{
    collect_secrets(conninfo, list, n);
    if (*n > 1)
        qsort(*list, (size_t)*n, sizeof **list, cmp_len_desc);
}

void dbi_secrets_free(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* The replacing itself is the engine's one scrubber (secrets.c); this file only knows where
 * a conninfo keeps its password. */
static char *scrub_with(char **secrets, int nsecrets, const char *text)
{
    return secrets_scrub_list(secrets, nsecrets, text);
}

void db_conninfo_secrets(const char *conninfo, char ***list, int *n)
{
    dbi_secrets_load(conninfo, list, n);
}

void db_conninfo_secrets_free(char **list, int n) { dbi_secrets_free(list, n); }

char *db_scrub(const char *conninfo, const char *text)
{
    char **secrets;
    int n;
    dbi_secrets_load(conninfo, &secrets, &n);
    char *out = scrub_with(secrets, n, text);
    dbi_secrets_free(secrets, n);
    return out;
}

char *dbi_scrub(const db *d, const char *text)
{
    return scrub_with(d->secrets, d->nsecrets, text);
}

void dbi_flatten(char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}
