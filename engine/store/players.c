/* Players from a JSON file (the --accounts / --dry-run account source).
 *
 * A file of a million players is about 94 MB; a cJSON tree of all of it cost about 460 MiB
 * more and was the engine's peak (issue 11). So the file is read in chunks and each element
 * of the top-level array is parsed on its own, with cJSON as before: only one player's text
 * and tree exist at a time. cJSON stays the judge of every element, and the little that is
 * scanned here (where an element ends) is chosen so that the verdict is cJSON's own for the
 * whole file (the reasoning is above players_load_stream's helpers). A file whose start is
 * not the plain case (no '[' after the byte order mark and whitespace), or that is not a
 * regular file, is parsed as a whole tree as before (players_load_file_tree): the same
 * answer, with the old peak. */
#include "players.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#define MAX_PLAYERS_FILE (512u * 1024 * 1024)
#define CHUNK (1u << 16)
#define NOT_ARRAY "expected a JSON array of players"

static char *read_all(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            if (cap >= MAX_PLAYERS_FILE)
                break;
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (n >= MAX_PLAYERS_FILE) {
        snprintf(err, errlen, "%s: larger than 512 MiB", path);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static char *optional_string(const cJSON *obj, const char *key, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (!cJSON_IsString(v) || strlen(v->valuestring) > 256) {
        *bad = 1;
        return NULL;
    }
    return strdup(v->valuestring);
}

static int load_wallets(const cJSON *entry, player *p)
{
    const cJSON *wallets = cJSON_GetObjectItemCaseSensitive(entry, "wallets");
    if (!wallets || cJSON_IsNull(wallets))
        return 0;
    if (!cJSON_IsObject(wallets))
        return -1;
    p->wallets = calloc((size_t)cJSON_GetArraySize(wallets) + 1, sizeof *p->wallets);
    for (const cJSON *w = wallets->child; w; w = w->next) {
        if (!cJSON_IsString(w) || strlen(w->valuestring) > 256)
            return -1;
        p->wallets[p->n_wallets].pool = strdup(w->string);
        p->wallets[p->n_wallets++].wallet = strdup(w->valuestring);
    }
    return 0;
}

static void player_free(player *p)
{
    for (size_t i = 0; i < p->n_wallets; i++) {
        free(p->wallets[i].pool);
        free(p->wallets[i].wallet);
    }
    free(p->wallets);
    free(p->username);
    free(p->wallet);
}

static int load_player(const cJSON *entry, player *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(entry, "player_id");
    int bad = 0;
    if (!cJSON_IsObject(entry)) {
        snprintf(err, errlen, "must be an object");
        return -1;
    }
    if (!cJSON_IsNumber(id) || id->valuedouble < 1 || id->valuedouble > 9007199254740991.0 ||
        id->valuedouble != floor(id->valuedouble)) {
        snprintf(err, errlen, "player_id must be a positive integer");
        return -1;
    }
    p->id = (int64_t)id->valuedouble;
    p->username = optional_string(entry, "username", &bad);
    if (bad) {
        snprintf(err, errlen, "username must be a string of at most 256 bytes");
        goto fail;
    }
    p->wallet = optional_string(entry, "wallet", &bad);
    if (bad) {
        snprintf(err, errlen, "wallet must be a string of at most 256 bytes");
        goto fail;
    }
    if (load_wallets(entry, p) != 0) {
        snprintf(err, errlen, "wallets must be an object of pool name -> wallet string");
        goto fail;
    }
    return 0;
fail:
    player_free(p);
    return -1;
}

/* The whole file as one cJSON tree: the reference the streaming loader answers like, and its
 * fallback for the files it does not decide. */
int players_load_file_tree(const char *path, player_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = read_all(path, &len, err, errlen);
    if (!text)
        return -1;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(doc)) {
        snprintf(err, errlen, "%s: " NOT_ARRAY, path);
        cJSON_Delete(doc);
        return -1;
    }
    out->items = calloc((size_t)cJSON_GetArraySize(doc) + 1, sizeof *out->items);
    size_t index = 0;
    for (const cJSON *entry = doc->child; entry; entry = entry->next, index++) {
        char why[160];
        if (load_player(entry, &out->items[out->n], why, sizeof why) != 0) {
            snprintf(err, errlen, "%s: entry %zu: %s", path, index, why);
            cJSON_Delete(doc);
            player_list_free(out);
            return -1;
        }
        out->n++;
    }
    cJSON_Delete(doc);
    return 0;
}

/* The streaming loader (players_load_stream).
 *
 * cJSON parses an array as '[' ws value ws (',' ws value ws)* ']' (ws: any byte <= 32) and,
 * as the loader calls it, ignores what follows the array. So the file is the text up to its
 * '[', then the pieces between that '[', the commas and the closing ']'; each piece is parsed
 * by cJSON as "[" piece "]", which runs cJSON's own code for that stretch of the file at the
 * same nesting depth (1) and so gives the element cJSON would have built, or fails where the
 * whole file would fail. Where a piece ends is found by a scan that knows only strings
 * (a backslash escapes the next byte, as cJSON's string scan does) and brackets: inside a
 * value cJSON accepts, no comma or ']' is outside a string and outside every bracket, so the
 * scan cannot end a good element early, and the bytes after it are whitespace then the
 * separator cJSON looks for. A piece cJSON refuses, a comma where an element should be, a
 * '}' that closes nothing or the end of the file inside the array all make the file one
 * cJSON refuses. The text before the '[' is judged by cJSON as well ("<it>[]"), so that its
 * handling of a byte order mark is the library's. */
enum { DECIDE_UNSURE = -2 };

typedef struct piece {
    char *p;
    size_t len, cap;
} piece;

typedef struct stream {
    const char *path;
    player_list *out;
    size_t cap;
    piece text;       /* "[" and the current piece (or, before the array, the text before it) */
    bool in_array, in_string, escape, done;
    long depth;       /* brackets open in the current piece, outside strings */
    size_t index;     /* of the current element */
    char why[200];    /* the first entry that is wrong: told once the whole array parses */
} stream;

static int piece_add(piece *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) { /* + 1: room for the closing ']' end_piece adds */
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p)
            return -1;
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    return 0;
}

static int keep_player(stream *S, const cJSON *entry)
{
    if (S->why[0])
        return 0; /* an earlier entry is wrong: the rest is only checked to parse */
    if (S->out->n + 1 >= S->cap) {
        size_t cap = S->cap ? S->cap * 2 : 1024;
        player *items = realloc(S->out->items, cap * sizeof *items);
        if (!items)
            return -1;
        S->out->items = items;
        S->cap = cap;
    }
    char why[160];
    if (load_player(entry, &S->out->items[S->out->n], why, sizeof why) != 0)
        snprintf(S->why, sizeof S->why, "entry %zu: %s", S->index, why);
    else
        S->out->n++;
    return 0;
}

/* The piece before a separator is complete: 0 to go on, -1 the file is not an array cJSON
 * accepts, DECIDE_UNSURE when something happened that the reasoning above does not cover. */
static int end_piece(stream *S, bool last)
{
    const char *end = NULL;
    if (piece_add(&S->text, "]", 1) != 0)
        return DECIDE_UNSURE;
    cJSON *doc = cJSON_ParseWithLengthOpts(S->text.p, S->text.len, &end, 0);
    int rc = 0;
    if (!cJSON_IsArray(doc) || end != S->text.p + S->text.len)
        rc = -1;
    else if (!doc->child) /* only whitespace: "[ ]" is an empty array, "[1, ]" is refused */
        rc = last && S->index == 0 ? 0 : -1;
    else if (doc->child->next || keep_player(S, doc->child) != 0)
        rc = DECIDE_UNSURE; /* two values between separators cannot happen; nor memory */
    cJSON_Delete(doc);
    S->index++;
    S->text.len = 1; /* the "[" stays */
    S->done = last;
    return rc;
}

/* Before the array: a byte order mark, whitespace, then '['. */
static int scan_start(stream *S, const unsigned char *s, size_t n, size_t *used)
{
    size_t i = 0;
    for (; i < n && s[i] != '['; i++) {
        /* Only whitespace and, at the very start, the bytes of a byte order mark: the rest
         * (a top-level object, an empty file) is left to the whole-tree parser. */
        bool bom = S->text.len + i < 3 && (s[i] == 0xEF || s[i] == 0xBB || s[i] == 0xBF);
        if (s[i] > 32 && !bom)
            return DECIDE_UNSURE;
    }
    if (piece_add(&S->text, (const char *)s, i < n ? i + 1 : i) != 0)
        return DECIDE_UNSURE;
    *used = i < n ? i + 1 : i;
    if (i == n)
        return 0;
    const char *end = NULL;
    if (piece_add(&S->text, "]", 1) != 0)
        return DECIDE_UNSURE;
    cJSON *doc = cJSON_ParseWithLengthOpts(S->text.p, S->text.len, &end, 0);
    bool plain = cJSON_IsArray(doc) && !doc->child && end == S->text.p + S->text.len;
    cJSON_Delete(doc);
    S->text.p[0] = '[';
    S->text.len = 1;
    S->in_array = true;
    return plain ? 0 : DECIDE_UNSURE;
}

/* The bytes of the array, up to its closing ']'. */
static int scan_array(stream *S, const unsigned char *s, size_t n, size_t *used)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (S->in_string) {
            if (S->escape)
                S->escape = false;
            else if (c == '\\')
                S->escape = true;
            else if (c == '"')
                S->in_string = false;
            continue;
        }
        if (c == '"')
            S->in_string = true;
        else if (c == '[' || c == '{')
            S->depth++;
        else if ((c == ']' || c == '}') && S->depth > 0)
            S->depth--;
        else if (c == '}')
            return -1; /* closes nothing: no value cJSON accepts ends like that */
        else if (c == ']' || (c == ',' && S->depth == 0)) {
            if (piece_add(&S->text, (const char *)s + from, i - from) != 0)
                return DECIDE_UNSURE;
            from = i + 1;
            int rc = end_piece(S, c == ']');
            if (rc != 0 || S->done) {
                *used = i + 1;
                return rc;
            }
        }
    }
    *used = n;
    return piece_add(&S->text, (const char *)s + from, n - from) != 0 ? DECIDE_UNSURE : 0;
}

/* 0: the players are loaded; -1: the error is in err; DECIDE_UNSURE: nothing was decided. */
static int stream_file(FILE *f, stream *S, char *err, size_t errlen)
{
    unsigned char *chunk = malloc(CHUNK);
    int rc = chunk ? 0 : DECIDE_UNSURE;
    size_t got = 0;
    while (rc == 0 && !S->done && (got = fread(chunk, 1, CHUNK, f)) > 0) {
        for (size_t at = 0, used = 0; rc == 0 && !S->done && at < got; at += used)
            rc = S->in_array ? scan_array(S, chunk + at, got - at, &used)
                             : scan_start(S, chunk + at, got - at, &used);
    }
    free(chunk);
    if (rc == 0 && !S->done)
        rc = ferror(f) || !S->in_array ? DECIDE_UNSURE : -1; /* the file ends in the array */
    if (rc == 0 && S->why[0]) {
        snprintf(err, errlen, "%s: %s", S->path, S->why);
        return -1;
    }
    if (rc == -1)
        snprintf(err, errlen, "%s: " NOT_ARRAY, S->path);
    return rc;
}

int players_load_stream(const char *path, player_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f); /* a pipe cannot be read twice: the tree parser reads it */
        return DECIDE_UNSURE;
    }
    if ((uintmax_t)st.st_size >= MAX_PLAYERS_FILE) {
        fclose(f);
        snprintf(err, errlen, "%s: larger than 512 MiB", path);
        return -1;
    }
    stream S = {.path = path, .out = out};
    int rc = stream_file(f, &S, err, errlen);
    fclose(f);
    free(S.text.p);
    if (rc != 0) {
        player_list_free(out);
        return rc;
    }
    /* Trimmed to its size, with a zeroed entry after the last as the tree loader left it. */
    player *items = realloc(out->items, (out->n + 1) * sizeof *items);
    if (items)
        out->items = items;
    if (out->items)
        memset(&out->items[out->n], 0, sizeof *out->items);
    return 0;
}

int players_load_file(const char *path, player_list *out, char *err, size_t errlen)
{
    int rc = players_load_stream(path, out, err, errlen);
    return rc == DECIDE_UNSURE ? players_load_file_tree(path, out, err, errlen) : rc;
}

void player_set_wallets_json(player *p, const char *json)
{
    cJSON *wallets = cJSON_Parse(json);
    int n = cJSON_IsObject(wallets) ? cJSON_GetArraySize(wallets) : 0;
    p->wallets = n ? calloc((size_t)n, sizeof *p->wallets) : NULL;
    for (const cJSON *w = n ? wallets->child : NULL; w; w = w->next) {
        if (!cJSON_IsString(w))
            continue;
        p->wallets[p->n_wallets].pool = strdup(w->string);
        p->wallets[p->n_wallets++].wallet = strdup(w->valuestring);
    }
    cJSON_Delete(wallets);
}

const char *player_wallet_for(const player *p, const char *pool)
{
    for (size_t i = 0; i < p->n_wallets; i++)
        if (strcmp(p->wallets[i].pool, pool) == 0)
            return p->wallets[i].wallet;
    return p->wallet;
}

void player_list_free_items(player_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        player_free(&list->items[i]);
}

void player_list_free(player_list *list)
{
    player_list_free_items(list);
    free(list->items);
    memset(list, 0, sizeof *list);
}
