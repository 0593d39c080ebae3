/* Request header lists built once per distinct header set (see http_headers.h).
 *
 * An entry is the caller's lines joined by '\n' plus a GET/POST mark (the key), its FNV-1a
 * hash, and the curl_slist libcurl is given. Entries are counted while requests use them, so
 * a full cache replaces only a list no request holds; when every entry is in use (a caller
 * whose headers differ per request, e.g. a signature) the request simply gets a list of its
 * own, as before the cache existed.
 */
#include "http_headers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Enough for every pool and notifier of one engine; small enough for a linear scan. */
#define HTTP_HEADER_SETS 32

struct http_header_set {
    uint64_t hash;
    char *key;
    size_t key_len;
    struct curl_slist *list;
    size_t refs;                /* requests holding list */
};

struct http_header_cache {
    char *user_agent_line;      /* "User-Agent: m2p-engine/<version>" */
    char *accept_encoding_line; /* what CURLOPT_ACCEPT_ENCODING "" would send; NULL = none */
    http_header_set sets[HTTP_HEADER_SETS];
};

/* The Accept-Encoding value libcurl sends for CURLOPT_ACCEPT_ENCODING "": every encoding
 * it was built to decode, in its order. Sent by us so that libcurl skips formatting it;
 * decoding stays libcurl's (the option remains set). An encoding a newer libcurl adds is
 * then merely not advertised. */
static char *accept_encoding_line(void)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    char line[128] = "Accept-Encoding: ";
    int any = 0;
    if (v->features & CURL_VERSION_LIBZ) {
        strcat(line, "deflate, gzip");
        any = 1;
    }
    if (v->features & CURL_VERSION_BROTLI) {
        strcat(line, any ? ", br" : "br");
        any = 1;
    }
#ifdef CURL_VERSION_ZSTD
    if (v->features & CURL_VERSION_ZSTD) {
        strcat(line, any ? ", zstd" : "zstd");
        any = 1;
    }
#endif
    return any ? strdup(line) : NULL;
}

http_header_cache *http_header_cache_new(const char *user_agent)
{
    http_header_cache *hc = calloc(1, sizeof *hc);
    if (!hc)
        return NULL;
    size_t len = strlen("User-Agent: ") + strlen(user_agent) + 1;
    hc->user_agent_line = malloc(len);
    if (hc->user_agent_line)
        snprintf(hc->user_agent_line, len, "User-Agent: %s", user_agent);
    hc->accept_encoding_line = accept_encoding_line();
    if (!hc->user_agent_line) {
        http_header_cache_free(hc);
        return NULL;
    }
    return hc;
}

static void set_clear(http_header_set *s)
{
    free(s->key);
    curl_slist_free_all(s->list);
    memset(s, 0, sizeof *s);
}

void http_header_cache_free(http_header_cache *hc)
{
    if (!hc)
        return;
    for (size_t i = 0; i < HTTP_HEADER_SETS; i++)
        set_clear(&hc->sets[i]);
    free(hc->user_agent_line);
    free(hc->accept_encoding_line);
    free(hc);
}

/* ---- keys ------------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Hash and key length of a header set, the same bytes set_key() writes. */
static uint64_t key_hash(const char *const *headers, size_t n, int post, size_t *key_len)
{
    uint64_t h = 14695981039346656037ULL;
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(headers[i]);
        h = fnv1a(fnv1a(h, headers[i], l), "\n", 1);
        len += l + 1;
    }
    *key_len = len;
    return fnv1a(h, post ? "P" : "G", 1);
}

static int key_equal(const http_header_set *s, const char *const *headers, size_t n, int post)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(headers[i]);
        if (pos + l + 1 >= s->key_len || memcmp(s->key + pos, headers[i], l) != 0 ||
            s->key[pos + l] != '\n')
            return 0;
        pos += l + 1;
    }
    return pos + 1 == s->key_len && s->key[pos] == (post ? 'P' : 'G');
}

static char *key_new(const char *const *headers, size_t n, int post, size_t key_len)
{
    char *key = malloc(key_len);
    if (!key)
        return NULL;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(headers[i]);
        memcpy(key + pos, headers[i], l);
        key[pos + l] = '\n';
        pos += l + 1;
    }
    key[pos] = post ? 'P' : 'G';
    return key;
}

/* ---- lists ----------------------------------------------------------------------------- */

/* Rejects CR/LF so a caller-supplied value cannot inject extra header lines. */
static int header_line_valid(const char *h)
{
    const char *colon = h ? strchr(h, ':') : NULL;
    return colon && colon != h && !strpbrk(h, "\r\n");
}

/* Whether a caller line names `name` ("Name:"): then the caller's line wins, as it would
 * over libcurl's own header. */
static int names_header(const char *const *headers, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (strncasecmp(headers[i], name, len) == 0 && headers[i][len] == ':')
            return 1;
    return 0;
}

static int append(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

static struct curl_slist *list_build(const http_header_cache *hc, const char *const *headers,
                                     size_t n, int post)
{
    struct curl_slist *list = NULL;
    int bad = 0;
    if (!names_header(headers, n, "User-Agent"))
        bad |= append(&list, hc->user_agent_line);
    if (hc->accept_encoding_line && !names_header(headers, n, "Accept-Encoding"))
        bad |= append(&list, hc->accept_encoding_line);
    /* A POST gets no "Expect: 100-continue": the receivers are ours to call, and the wait
     * for a 100 that many servers never send would add a second to each delivery. */
    if (post)
        bad |= append(&list, "Expect:");
    for (size_t i = 0; i < n && !bad; i++)
        bad |= !header_line_valid(headers[i]) || append(&list, headers[i]) != 0;
    if (bad) {
        curl_slist_free_all(list);
        return NULL;
    }
    return list;
}

/* A free slot, or one whose list no request holds; NULL when all are in use. */
static http_header_set *slot_for_new(http_header_cache *hc)
{
    for (size_t i = 0; i < HTTP_HEADER_SETS; i++)
        if (!hc->sets[i].key)
            return &hc->sets[i];
    for (size_t i = 0; i < HTTP_HEADER_SETS; i++)
        if (hc->sets[i].refs == 0)
            return &hc->sets[i];
    return NULL;
}

int http_header_acquire(http_header_cache *hc, const char *const *headers, size_t n, int post,
                        http_header_ref *ref)
{
    ref->list = NULL;
    ref->set = NULL;
    /* Line breaks are checked on every call: the cache key joins lines with '\n', so one line
     * holding "A: x\nB: y" would otherwise match a cached pair of lines. */
    for (size_t i = 0; i < n; i++)
        if (!headers[i] || strpbrk(headers[i], "\r\n"))
            return -1;
    size_t key_len;
    uint64_t hash = key_hash(headers, n, post, &key_len);
    for (size_t i = 0; i < HTTP_HEADER_SETS; i++) {
        http_header_set *s = &hc->sets[i];
        if (s->key && s->hash == hash && key_equal(s, headers, n, post)) {
            s->refs++;
            ref->list = s->list;
            ref->set = s;
            return 0;
        }
    }
    struct curl_slist *list = list_build(hc, headers, n, post);
    if (!list)
        return -1;
    http_header_set *s = slot_for_new(hc);
    char *key = s ? key_new(headers, n, post, key_len) : NULL;
    if (key) {
        set_clear(s);
        *s = (http_header_set){.hash = hash, .key = key, .key_len = key_len, .list = list,
                               .refs = 1};
        ref->set = s;
    }
    ref->list = list;
    return 0;
}

void http_header_release(http_header_ref *ref)
{
    if (ref->set)
        ref->set->refs--;
    else
        curl_slist_free_all(ref->list);
    ref->list = NULL;
    ref->set = NULL;
}
