/* Secrets: one scrubber for every printed value (see secrets.h for the rules and the why).
 *
 * The list is guarded by a mutex: resolver threads (http.c) may log while the main thread
 * reloads the configuration. It is sorted longest first so that a secret containing another
 * is replaced whole, not left half visible around a shorter one's ***.
 */
#include "secrets.h"

#include "store/db.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    pthread_mutex_t lock;
    char **items;
    int n;
} known = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static int cmp_len_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Adds one copy of s[0..len) to the list unless it is there; caller holds the lock. */
static void add_locked(const char *s, size_t len)
{
    if (!s || len == 0)
        return;
    for (int i = 0; i < known.n; i++)
        if (strlen(known.items[i]) == len && memcmp(known.items[i], s, len) == 0)
            return;
    char **grown = realloc(known.items, sizeof(char *) * (size_t)(known.n + 1));
    if (!grown)
        return;
    known.items = grown;
    char *copy = strndup(s, len);
    if (!copy)
        return;
    known.items[known.n++] = copy;
    qsort(known.items, (size_t)known.n, sizeof *known.items, cmp_len_desc);
}

/* The form a URL or a form body would carry: every byte but unreserved ones as %XX. */
static char *percent_encoded(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static void remember_locked(const char *value)
{
    if (!value || !*value)
        return;
    add_locked(value, strlen(value));
    char *enc = percent_encoded(value);
    if (enc)
        add_locked(enc, strlen(enc));
    free(enc);
}

void secrets_remember(const char *value)
{
    pthread_mutex_lock(&known.lock);
    remember_locked(value);
    pthread_mutex_unlock(&known.lock);
}

void secrets_remember_conninfo(const char *conninfo)
{
    char **list = NULL;
    int n = 0;
    db_conninfo_secrets(conninfo, &list, &n);
    pthread_mutex_lock(&known.lock);
    for (int i = 0; i < n; i++)
        remember_locked(list[i]);
    pthread_mutex_unlock(&known.lock);
    db_conninfo_secrets_free(list, n);
}

void secrets_forget_all(void)
{
    pthread_mutex_lock(&known.lock);
    for (int i = 0; i < known.n; i++)
        free(known.items[i]);
    free(known.items);
    known.items = NULL;
    known.n = 0;
    pthread_mutex_unlock(&known.lock);
}

/* Every "double-quoted" fragment of `cur` that is a piece of a secret becomes *** (libpq
 * quotes conninfo pieces in its messages). In place: the text only gets shorter. */
static void mask_quoted_fragments(char *cur, char *const *list, int n)
{
    for (char *q = strchr(cur, '"'); q; q = strchr(q, '"')) {
        char *e = strchr(q + 1, '"');
        if (!e)
            break;
        size_t fl = (size_t)(e - q - 1);
        bool hit = false;
        for (int i = 0; i < n && fl > 0 && !hit; i++)
            for (const char *p = list[i]; !hit && (p = strchr(p, q[1])) != NULL; p++)
                hit = strncmp(p, q + 1, fl) == 0;
        if (hit) {
            if (fl >= 3) {
                memcpy(q + 1, "***", 3);
                memmove(q + 4, e, strlen(e) + 1);
                e = q + 4;
            } else {
                memset(q + 1, '*', fl); /* shorter than ***: keep the length */
            }
        }
        q = e + 1;
    }
}

/* `cur` with every occurrence of `s` replaced by ***; frees cur. NULL on out of memory. */
static char *replace_all(char *cur, const char *s)
{
    size_t sl = strlen(s);
    if (sl == 0 || !strstr(cur, s))
        return cur;
    char *out = malloc(strlen(cur) * 3 + 4), *o = out;
    if (!out) {
        free(cur);
        return NULL;
    }
    for (const char *p = cur; *p;) {
        if (strncmp(p, s, sl) == 0) {
            memcpy(o, "***", 3);
            o += 3;
            p += sl;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    free(cur);
    return out;
}

char *secrets_scrub_list(char *const *list, int n, const char *text)
{
    if (!text)
        return NULL;
    char *cur = strdup(text);
    for (int i = 0; cur && i < n; i++)
        cur = replace_all(cur, list[i]);
    if (cur)
        mask_quoted_fragments(cur, list, n);
    return cur;
}

/* Ends a URL inside running text: white space, quotes and brackets never belong to one. */
static bool url_end(char ch)
{
    return ch == '\0' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '"' ||
           ch == '\'' || ch == '<' || ch == '>' || ch == '`' || ch == ')' || ch == ']' ||
           ch == ',' || ch == ';';
}

/* In place: the user information of "scheme://user:password@host" becomes *** (the URL
 * keeps its '@' and host). The LAST '@' before
 * the URL ends is taken, so a password holding '/', '?' or '@' goes whole; an '@' in a path
 * redacts too much, never too little. */
static void strip_userinfo(char *s)
{
    for (char *p = strstr(s, "://"); p; p = strstr(p, "://")) {
        char *start = p + 3, *at = NULL, *q = start;
        for (; !url_end(*q); q++)
            if (*q == '@')
                at = q;
        size_t ui = at ? (size_t)(at - start) : 0;
        if (ui >= 3) {
            memcpy(start, "***", 3);
            memmove(start + 3, at, strlen(at) + 1);
        } else if (ui > 0) {
            memset(start, '*', ui); /* shorter than ***: keep the length */
        }
        p = start;
    }
}

char *secrets_scrub(const char *text)
{
    if (!text)
        return NULL;
    pthread_mutex_lock(&known.lock);
    char *out = secrets_scrub_list(known.items, known.n, text);
    pthread_mutex_unlock(&known.lock);
    if (out)
        strip_userinfo(out);
    return out;
}

void secrets_scrub_buffer(char *buf, size_t len)
{
    if (!buf || len == 0)
        return;
    char *clean = secrets_scrub(buf);
    if (!clean) {
        buf[0] = '\0'; /* out of memory: nothing rather than a secret */
        return;
    }
    snprintf(buf, len, "%s", clean);
    free(clean);
}

void secrets_print_line(FILE *out, const char *prefix, const char *text)
{
    char *clean = secrets_scrub(text ? text : "");
    fprintf(out, "%s%s\n", prefix, clean ? clean : "***");
    free(clean);
}

/* Whether `text` holds anything to scrub: a URL with an '@' after its "://", or a secret.
 * Most log fields hold neither, and then nothing is copied. */
static bool needs_scrub(const char *text)
{
    for (const char *p = strstr(text, "://"); p; p = strstr(p + 3, "://"))
        for (const char *q = p + 3; !url_end(*q); q++)
            if (*q == '@')
                return true;
    pthread_mutex_lock(&known.lock);
    bool hit = false;
    for (int i = 0; i < known.n && !hit; i++)
        hit = strstr(text, known.items[i]) != NULL;
    pthread_mutex_unlock(&known.lock);
    /* libpq's "quoted" pieces of a password are found by the full scrub only */
    return hit || (known.n > 0 && strchr(text, '"'));
}

/* A string is rewritten only when it holds something to scrub. */
static void scrub_string(char **slot)
{
    if (!*slot || !needs_scrub(*slot))
        return;
    char *clean = secrets_scrub(*slot);
    if (!clean || strcmp(clean, *slot) == 0) {
        free(clean);
        if (clean)
            return;
        clean = strdup("***"); /* out of memory: nothing rather than a secret */
        if (!clean)
            return;
    }
    /* cJSON frees with its hooks: malloc/free, which this engine never replaces. */
    cJSON_free(*slot);
    *slot = clean;
}

void secrets_scrub_json(cJSON *item)
{
    for (; item; item = item->next) {
        if (item->string && !(item->type & cJSON_StringIsConst))
            scrub_string(&item->string);
        if (cJSON_IsString(item) || cJSON_IsRaw(item))
            scrub_string(&item->valuestring);
        if (item->child)
            secrets_scrub_json(item->child);
    }
}
