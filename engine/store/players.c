/* Players from a JSON file (the --dry-run account source). */
#include "players.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define MAX_PLAYERS_FILE (512u * 1024 * 1024)

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

int players_load_file(const char *path, player_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = read_all(path, &len, err, errlen);
    if (!text)
        return -1;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(doc)) {
        snprintf(err, errlen, "%s: expected a JSON array of players", path);
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
