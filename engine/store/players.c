/* Players from a JSON file (the --accounts / --dry-run account source), and the helpers
 * shared with the database's players. */
#include "players.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <yajl/yajl_parse.h>

#define MAX_PLAYERS_FILE (512u * 1024 * 1024)
#define MAX_TEXT 256 /* bytes in a username or a wallet */

/* The file is read in chunks and parsed as a stream of events (yajl), so that a file of a
 * million players never exists as a whole in memory, neither as text nor as a tree: the
 * peak while loading stays below what the same players cost the running engine.
 *
 * Depths: 0 outside, 1 in the array of players, 2 in a player, 3 in its "wallets". A value
 * that is not needed (an unknown key's, a repeated key's: the first one counts, as it did
 * with a tree) or that is already wrong is skipped with everything it contains. */
enum field { F_OTHER, F_ID, F_USERNAME, F_WALLET, F_WALLETS };
enum { BAD_ID = 1, BAD_USERNAME = 2, BAD_WALLET = 4, BAD_WALLETS = 8 };

typedef struct loader {
    player_list *out;
    size_t cap;
    size_t index; /* of the player being read */
    int depth;
    int skip;     /* > 0: inside a skipped value, this many containers deep */
    enum field key;
    unsigned seen, bad;
    player cur;
    size_t wallets_cap;
    char *pool;   /* "wallets": the key whose value comes next */
    bool done;    /* the array of players ended */
    char err[200];
} loader;

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

static void entry_reset(loader *L)
{
    player_free(&L->cur);
    memset(&L->cur, 0, sizeof L->cur);
    L->cur.id = -1; /* no player_id yet */
    L->wallets_cap = 0;
    free(L->pool);
    L->pool = NULL;
    L->seen = L->bad = 0;
}

/* A string as C code sees it: up to the first NUL (as cJSON's copies were). */
static char *text_of(const unsigned char *s, size_t len)
{
    return strndup((const char *)s, len);
}

static int fail_entry(loader *L, const char *why)
{
    snprintf(L->err, sizeof L->err, "entry %zu: %s", L->index, why);
    return 0;
}

static int fail_file(loader *L)
{
    snprintf(L->err, sizeof L->err, "expected a JSON array of players");
    return 0;
}

static int finish_entry(loader *L)
{
    if (L->cur.id < 0 || (L->bad & BAD_ID))
        return fail_entry(L, "player_id must be a positive integer");
    if (L->bad & BAD_USERNAME)
        return fail_entry(L, "username must be a string of at most 256 bytes");
    if (L->bad & BAD_WALLET)
        return fail_entry(L, "wallet must be a string of at most 256 bytes");
    if (L->bad & BAD_WALLETS)
        return fail_entry(L, "wallets must be an object of pool name -> wallet string");
    if (L->out->n == L->cap) {
        L->cap = L->cap ? L->cap * 2 : 1024;
        L->out->items = realloc(L->out->items, L->cap * sizeof *L->out->items);
    }
    L->out->items[L->out->n++] = L->cur;
    memset(&L->cur, 0, sizeof L->cur); /* now the list's */
    L->index++;
    entry_reset(L);
    return 1;
}

static unsigned bad_of(enum field f)
{
    return f == F_ID ? BAD_ID : f == F_USERNAME ? BAD_USERNAME : f == F_WALLET ? BAD_WALLET
                                                                               : BAD_WALLETS;
}

/* The kinds of value an event starts. */
enum kind { K_NULL, K_SCALAR, K_NUMBER, K_STRING, K_MAP, K_ARRAY };

/* A value in a player (depth 2) for L->key: false when it is to be skipped. */
static bool player_field(loader *L, enum kind k, const unsigned char *s, size_t len)
{
    enum field f = L->key;
    if (f == F_OTHER || (L->seen & bad_of(f)))
        return false;
    L->seen |= bad_of(f);
    if (f == F_ID) {
        double v = 0;
        if (k == K_NUMBER) {
            char *num = text_of(s, len); /* yajl's number text is not NUL-terminated */
            v = strtod(num, NULL);
            free(num);
        }
        if (k != K_NUMBER || !(v >= 1 && v <= 9007199254740991.0) || v != floor(v))
            L->bad |= BAD_ID;
        else
            L->cur.id = (int64_t)v;
        return false;
    }
    if (k == K_NULL)
        return false;
    if (f == F_WALLETS) {
        if (k == K_MAP)
            return true;
        L->bad |= BAD_WALLETS;
        return false;
    }
    char **dst = f == F_USERNAME ? &L->cur.username : &L->cur.wallet;
    if (k != K_STRING || strnlen((const char *)s, len) > MAX_TEXT)
        L->bad |= bad_of(f);
    else
        *dst = text_of(s, len);
    return false;
}

/* A value in "wallets" (depth 3), for the pool named by the key before it. */
static void wallet_field(loader *L, enum kind k, const unsigned char *s, size_t len)
{
    if (k != K_STRING || strnlen((const char *)s, len) > MAX_TEXT || !L->pool) {
        L->bad |= BAD_WALLETS;
        return;
    }
    player *p = &L->cur;
    if (p->n_wallets == L->wallets_cap) {
        L->wallets_cap = L->wallets_cap ? L->wallets_cap * 2 : 2;
        p->wallets = realloc(p->wallets, L->wallets_cap * sizeof *p->wallets);
    }
    p->wallets[p->n_wallets].pool = L->pool;
    p->wallets[p->n_wallets++].wallet = text_of(s, len);
    L->pool = NULL;
}

/* Every value event: where it belongs, and whether a container it opens is entered. */
static int on_value(loader *L, enum kind k, const unsigned char *s, size_t len)
{
    bool container = k == K_MAP || k == K_ARRAY, enter = false;
    if (L->skip) {
        L->skip += container;
        return 1;
    }
    switch (L->depth) {
    case 0:
        if (k != K_ARRAY || L->done)
            return fail_file(L);
        enter = true;
        break;
    case 1:
        if (k != K_MAP)
            return fail_entry(L, "must be an object");
        entry_reset(L);
        enter = true;
        break;
    case 2:
        enter = player_field(L, k, s, len);
        break;
    default:
        wallet_field(L, k, s, len);
        break;
    }
    if (enter)
        L->depth++;
    else if (container)
        L->skip = 1;
    return 1;
}

static int on_end(loader *L)
{
    if (L->skip) {
        L->skip--;
        return 1;
    }
    L->depth--;
    if (L->depth == 0)
        L->done = true;
    return L->depth == 1 ? finish_entry(L) : 1;
}

static int on_null(void *ctx) { return on_value(ctx, K_NULL, NULL, 0); }
static int on_bool(void *ctx, int v)
{
    (void)v;
    return on_value(ctx, K_SCALAR, NULL, 0);
}
static int on_number(void *ctx, const char *s, size_t len)
{
    return on_value(ctx, K_NUMBER, (const unsigned char *)s, len);
}
static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    return on_value(ctx, K_STRING, s, len);
}
static int on_start_map(void *ctx) { return on_value(ctx, K_MAP, NULL, 0); }
static int on_start_array(void *ctx) { return on_value(ctx, K_ARRAY, NULL, 0); }
static int on_end_container(void *ctx) { return on_end(ctx); }

static int on_key(void *ctx, const unsigned char *s, size_t len)
{
    loader *L = ctx;
    if (L->skip)
        return 1;
    if (L->depth == 3) {
        free(L->pool);
        L->pool = text_of(s, len);
        return 1;
    }
#define IS(name) (len == sizeof name - 1 && memcmp(s, name, len) == 0)
    L->key = IS("player_id") ? F_ID : IS("username") ? F_USERNAME : IS("wallet") ? F_WALLET
           : IS("wallets") ? F_WALLETS : F_OTHER;
#undef IS
    return 1;
}

static const yajl_callbacks CALLBACKS = {
    on_null, on_bool, NULL, NULL, on_number, on_string,
    on_start_map, on_key, on_end_container, on_start_array, on_end_container,
};

/* Feeds the file to the parser; 0 when the text was a well-formed array of good players. */
static int parse_file(FILE *f, yajl_handle h, loader *L, const char *path, char *err,
                      size_t errlen)
{
    unsigned char chunk[1 << 16];
    size_t total = 0, got;
    yajl_status st = yajl_status_ok;
    while (st == yajl_status_ok && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        total += got;
        if (total >= MAX_PLAYERS_FILE) {
            snprintf(err, errlen, "%s: larger than 512 MiB", path);
            return -1;
        }
        st = yajl_parse(h, chunk, got);
    }
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st == yajl_status_ok && !L->done)
        fail_file(L); /* empty, or ended inside the array */
    else if (st == yajl_status_error && !L->err[0])
        fail_file(L); /* not JSON */
    if (!L->err[0] && ferror(f))
        snprintf(L->err, sizeof L->err, "read error");
    if (L->err[0]) {
        snprintf(err, errlen, "%s: %s", path, L->err);
        return -1;
    }
    return 0;
}

int players_load_file(const char *path, player_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    loader L = {.out = out};
    entry_reset(&L);
    yajl_handle h = yajl_alloc(&CALLBACKS, NULL, &L);
    /* As the tree parser was: text after the array is ignored, strings are not checked for
     * UTF-8 here (a wallet is checked by its pool's script). */
    yajl_config(h, yajl_allow_trailing_garbage, 1);
    yajl_config(h, yajl_dont_validate_strings, 1);
    int rc = parse_file(f, h, &L, path, err, errlen);
    yajl_free(h);
    fclose(f);
    entry_reset(&L);
    if (rc != 0) {
        player_list_free(out);
        return -1;
    }
    if (out->n < L.cap) /* the list is kept while the engine runs: no slack */
        out->items = realloc(out->items, (out->n ? out->n : 1) * sizeof *out->items);
    return 0;
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
