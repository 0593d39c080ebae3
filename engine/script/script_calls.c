/* The calls into pool and rule scripts (see script.h): each packs its arguments, runs one
 * pipeline.lua entry point through script_run_protected and copies the validated result out,
 * so no Lua value outlives the call. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "log.h"
#include "script_internal.h"
#include "script_json.h"

/* ==================================================================== Requests */

struct request_call {
    int pool;
    const char *wallet;
    script_request *out;
    bool wallet_checked;
};

/* No byte Lua's %c or %s matches (control characters, space, DEL; NUL included): what
 * pipeline.lua's patterns for URLs and wallets refuse, scanned here for a fraction of the
 * pattern's instructions. */
static bool no_space_or_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

/* The same test as pipeline.lua's check_url: url:match("^https?://[^%c%s]+$"), #url <= 4096. */
static bool url_valid(const char *url, size_t len)
{
    size_t scheme = len >= 7 && memcmp(url, "http://", 7) == 0    ? 7
                    : len >= 8 && memcmp(url, "https://", 8) == 0 ? 8
                                                                  : 0;
    return scheme && len > scheme && len <= 4096 &&
           no_space_or_control(url + scheme, len - scheme);
}

static int request_entry(lua_State *L)
{
    struct request_call *c = lua_touserdata(L, 1);
    script_push_pipeline(L, "request");
    lua_pushinteger(L, c->pool + 1);
    lua_pushstring(L, c->wallet);
    lua_pushboolean(L, c->wallet_checked);
    lua_pushboolean(L, 1); /* engine_checks_url: url_valid below */
    lua_call(L, 4, 2);
    size_t url_len;
    const char *url = lua_tolstring(L, -2, &url_len); /* a string: the pipeline checked */
    if (!url_valid(url, url_len)) {
        script_push_pipeline(L, "refuse_url"); /* raises the pipeline's own error */
        lua_pushinteger(L, c->pool + 1);
        lua_pushvalue(L, -4);
        lua_call(L, 2, 0);
    }
    /* Validated: a string and a list of strings. Nothing below raises. */
    size_t n = lua_objlen(L, -1);
    c->out->url = strdup(url);
    c->out->headers = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        c->out->headers[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    c->out->n_headers = n;
    return 0;
}

/* Every entry point takes a pool index from the caller: out of range is an error, not UB. */
static bool pool_exists(const script_runtime *rt, int pool, char *err, size_t errlen)
{
    if (pool >= 0 && (size_t)pool < rt->n_pools)
        return true;
    snprintf(err, errlen, "no such pool");
    return false;
}

static int request_with(script_runtime *rt, int pool, const char *wallet, script_request *out,
                        bool wallet_checked, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!pool_exists(rt, pool, err, errlen))
        return -1;
    struct request_call call = {pool, wallet ? wallet : "", out, wallet_checked};
    if (script_run_protected(rt, request_entry, &call, err, errlen) != 0) {
        script_request_clear(out);
        return -1;
    }
    return 0;
}

int script_request_build(script_runtime *rt, int pool, const char *wallet, script_request *out,
                         char *err, size_t errlen)
{
    return request_with(rt, pool, wallet, out, false, err, errlen);
}

int script_request_build_checked_wallet(script_runtime *rt, int pool, const char *wallet,
                                        script_request *out, char *err, size_t errlen)
{
    return request_with(rt, pool, wallet, out, true, err, errlen);
}

struct wallet_call {
    int pool;
    const char *wallet;
    char *canonical;
    size_t canonical_len;
};

static int wallet_entry(lua_State *L)
{
    struct wallet_call *c = lua_touserdata(L, 1);
    script_push_pipeline(L, "wallet_check");
    lua_pushinteger(L, c->pool + 1);
    lua_pushstring(L, c->wallet);
    lua_pushboolean(L, no_space_or_control(c->wallet, strlen(c->wallet))); /* clean */
    lua_call(L, 3, 1);
    /* Validated by the pipeline: a string (it raised otherwise), cut to fit as snprintf would. */
    size_t len;
    const char *canonical = lua_tolstring(L, -1, &len);
    if (c->canonical_len == 0)
        return 0;
    if (len >= c->canonical_len)
        len = c->canonical_len - 1;
    memcpy(c->canonical, canonical, len);
    c->canonical[len] = '\0';
    return 0;
}

int script_wallet_check(script_runtime *rt, int pool, const char *wallet, char *canonical,
                        size_t canonical_len, char *err, size_t errlen)
{
    if (!pool_exists(rt, pool, err, errlen))
        return -1;
    struct wallet_call call = {pool, wallet ? wallet : "", canonical, canonical_len};
    return script_run_protected(rt, wallet_entry, &call, err, errlen);
}

void script_request_clear(script_request *req)
{
    for (size_t i = 0; i < req->n_headers; i++)
        free(req->headers[i]);
    free(req->headers);
    free(req->url);
    memset(req, 0, sizeof *req);
}

/* ======================================================================= Polls */

struct poll_call {
    script_runtime *rt;
    int pool;
    const script_account *account;
    const script_response *response;
    poll_outcome *out;
    bool wallet_checked;
};

static void push_account(lua_State *L, const script_account *a, bool wallet_checked)
{
    /* Sized for every field below: a table grown on the fifth costs a rehash per poll. */
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, (lua_Number)a->player_id);
    lua_setfield(L, -2, "player_id");
    if (a->username) {
        lua_pushstring(L, a->username);
        lua_setfield(L, -2, "username");
    }
    lua_pushstring(L, a->wallet ? a->wallet : "");
    lua_setfield(L, -2, "wallet");
    if (wallet_checked) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "wallet_checked");
    }
    if (a->state_json) {
        lua_pushstring(L, a->state_json);
        lua_setfield(L, -2, "state");
    }
}

static void push_headers(lua_State *L, const script_response *r)
{
    lua_createtable(L, 0, (int)r->n_headers);
    for (size_t i = 0; i < r->n_headers; i++) {
        char name[256];
        size_t n = 0;
        for (const char *p = r->header_names[i]; *p && n < sizeof name - 1; p++)
            name[n++] = (char)tolower((unsigned char)*p);
        name[n] = '\0';
        lua_pushstring(L, r->header_values[i]);
        lua_setfield(L, -2, name);
    }
}

static void push_response(lua_State *L, script_runtime *rt, const script_response *r)
{
    if (r->body_len > rt->opts.max_body_bytes)
        luaL_error(L, "response body too large (%d bytes, limit %d)", (int)r->body_len,
                   (int)rt->opts.max_body_bytes);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)r->status);
    lua_setfield(L, -2, "status");
    push_headers(L, r);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    lua_setfield(L, -2, "body");
    script_json_set_response(L, -1, r->body, r->body_len);
}

static void copy_awards(lua_State *L, int list, poll_outcome *out)
{
    size_t n = lua_objlen(L, list);
    out->awards = calloc(n ? n : 1, sizeof *out->awards);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, list, (int)i + 1);
        int a = lua_gettop(L);
        out->awards[i].advc = script_field_number(L, a, "advc");
        out->awards[i].ap = script_field_number(L, a, "ap");
        out->awards[i].key = script_field_strdup(L, a, "key");
        out->awards[i].reason = script_field_strdup(L, a, "reason");
        lua_getfield(L, a, "inexact");
        out->awards[i].inexact = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_pop(L, 1);
    }
    out->n_awards = n;
}

/* The account's fields as arguments of pipeline.poll_account, which builds the table that
 * push_account would: in a Lua constructor its keys are constants, where every lua_setfield
 * from C interns its key again (some 2,000 instructions per poll). */
static void push_account_fields(lua_State *L, const script_account *a, bool wallet_checked)
{
    lua_pushnumber(L, (lua_Number)a->player_id);
    if (a->username)
        lua_pushstring(L, a->username);
    else
        lua_pushnil(L);
    lua_pushstring(L, a->wallet ? a->wallet : "");
    lua_pushboolean(L, wallet_checked);
    if (a->state_json)
        lua_pushstring(L, a->state_json);
    else
        lua_pushnil(L);
}

static int poll_entry(lua_State *L)
{
    struct poll_call *c = lua_touserdata(L, 1);
    script_push_pipeline(L, "poll_account");
    lua_pushinteger(L, c->pool + 1);
    push_account_fields(L, c->account, c->wallet_checked);
    push_response(L, c->rt, c->response);
    lua_call(L, 7, 3);
    /* Validated by the pipeline: two strings and a list of awards. Nothing below raises. */
    c->out->observation_json = strdup(lua_tostring(L, -3));
    c->out->state_json = strdup(lua_tostring(L, -2));
    copy_awards(L, lua_gettop(L), c->out);
    return 0;
}

static int poll_with(script_runtime *rt, int pool, const script_account *account,
                     const script_response *response, poll_outcome *out, bool wallet_checked)
{
    memset(out, 0, sizeof *out);
    char err[1024];
    if (pool < 0 || (size_t)pool >= rt->n_pools) {
        out->error = strdup("no such pool");
        return -1;
    }
    struct poll_call call = {rt, pool, account, response, out, wallet_checked};
    if (script_run_protected(rt, poll_entry, &call, err, sizeof err) != 0) {
        poll_outcome_clear(out);
        out->error = strdup(err);
        return -1;
    }
    return 0;
}

int script_poll(script_runtime *rt, int pool, const script_account *account,
                const script_response *response, poll_outcome *out)
{
    return poll_with(rt, pool, account, response, out, false);
}

int script_poll_checked_wallet(script_runtime *rt, int pool, const script_account *account,
                               const script_response *response, poll_outcome *out)
{
    return poll_with(rt, pool, account, response, out, true);
}

/* ================================================================ Pool metadata */

struct metadata_call {
    script_runtime *rt;
    int pool;
    const script_response *response;
    char **json;
};

static int metadata_entry(lua_State *L)
{
    struct metadata_call *c = lua_touserdata(L, 1);
    script_push_pipeline(L, "metadata_parse");
    lua_pushinteger(L, c->pool + 1);
    push_response(L, c->rt, c->response);
    lua_call(L, 2, 1);
    /* Validated by the pipeline: the result's JSON text. Nothing below raises. */
    if (c->json)
        *c->json = strdup(lua_tostring(L, -1));
    return 0;
}

struct metadata_failure {
    int pool;
    const char *reason;
};

static int metadata_failed_entry(lua_State *L)
{
    struct metadata_failure *c = lua_touserdata(L, 1);
    script_push_pipeline(L, "metadata_failed");
    lua_pushinteger(L, c->pool + 1);
    lua_pushstring(L, c->reason);
    lua_call(L, 2, 0);
    return 0;
}

void script_metadata_failed(script_runtime *rt, int pool, const char *reason)
{
    char err[256];
    if (pool < 0 || (size_t)pool >= rt->n_pools || !rt->pools[pool].metadata_url)
        return;
    struct metadata_failure call = {pool, reason ? reason : "metadata fetch failed"};
    if (script_run_protected(rt, metadata_failed_entry, &call, err, sizeof err) != 0)
        log_message(LOG_ERROR, "pool_metadata_failed", "%s: cannot record the failure: %s",
                    rt->pools[pool].name, err);
}

int script_metadata_parse(script_runtime *rt, int pool, const script_response *response,
                          char **json, char *err, size_t errlen)
{
    if (json)
        *json = NULL;
    if (!pool_exists(rt, pool, err, errlen))
        return -1;
    if (!rt->pools[pool].metadata_url) {
        snprintf(err, errlen, "%s declares no metadata", rt->pools[pool].file);
        return -1;
    }
    struct metadata_call call = {rt, pool, response, json};
    rt->pools[pool].request_serial++; /* parse runs, whether it succeeds or not */
    if (script_run_protected(rt, metadata_entry, &call, err, errlen) == 0)
        return 0;
    /* Recorded in a second call: the first may have been aborted by the budget. */
    script_metadata_failed(rt, pool, err);
    return -1;
}

struct convert_call {
    int pool;
    double amount, advc;
};

static int convert_entry(lua_State *L)
{
    struct convert_call *c = lua_touserdata(L, 1);
    script_push_pipeline(L, "to_advc");
    lua_pushinteger(L, c->pool + 1);
    lua_pushnumber(L, c->amount);
    lua_call(L, 2, 1);
    c->advc = lua_tonumber(L, -1);
    return 0;
}

int script_to_advc(script_runtime *rt, int pool, double amount, double *advc, char *err,
                   size_t errlen)
{
    if (!pool_exists(rt, pool, err, errlen))
        return -1;
    struct convert_call call = {pool, amount, 0};
    if (script_run_protected(rt, convert_entry, &call, err, errlen) != 0)
        return -1;
    *advc = call.advc;
    return 0;
}

struct explain_call {
    int pool;
    const script_account *account;
    char **json;
};

static int explain_entry(lua_State *L)
{
    struct explain_call *c = lua_touserdata(L, 1);
    script_push_pipeline(L, "explain");
    lua_pushinteger(L, c->pool + 1);
    push_account(L, c->account, false);
    lua_call(L, 2, 1);
    *c->json = strdup(lua_tostring(L, -1)); /* the pipeline's json_encode: a string */
    return 0;
}

int script_explain(script_runtime *rt, int pool, const script_account *account, char **json,
                   char *err, size_t errlen)
{
    *json = NULL;
    if (!pool_exists(rt, pool, err, errlen))
        return -1;
    struct explain_call call = {pool, account, json};
    if (script_run_protected(rt, explain_entry, &call, err, errlen) != 0) {
        free(*json);
        *json = NULL;
        return -1;
    }
    return 0;
}

void poll_outcome_clear(poll_outcome *out)
{
    for (size_t i = 0; i < out->n_awards; i++) {
        free(out->awards[i].key);
        free(out->awards[i].reason);
    }
    free(out->awards);
    free(out->error);
    free(out->observation_json);
    free(out->state_json);
    memset(out, 0, sizeof *out);
}
