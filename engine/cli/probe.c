/* --probe: the live path of one poll (script request -> HTTP -> parse -> convert -> decide),
 * printed for a person instead of stored. The second, identical poll shows what the rules
 * would award from this observation as a baseline: normally nothing. A pool that declares a
 * metadata request has it fetched first (engine/poll/pool_metadata.c, as the engine does before its
 * first poll), and the probe prints what the pool's parse was given. */
#include "probe.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "log.h"
#include "pool_metadata.h"
#include "pool_tls.h"
#include "script.h"
#include "secrets.h"
#include "settings.h"

typedef struct probe {
    script_runtime *rt;
    int pool;
    const char *wallet;
    const char *url;
    const char *record_file;
    pool_metadata *metadata; /* the pool's metadata request, when it declares one */
    int status;              /* exit status */
} probe;

/* The metadata answer as a fixture's "metadata" (what --script-test hands to
 * metadata.parse), or {"error": ...} when there was none. */
static void record_metadata(probe *pr, cJSON *doc)
{
    const script_pool *sp = script_pool_at(pr->rt, (size_t)pr->pool);
    const char *json, *error, *content_type;
    size_t len;
    if (!pool_metadata_get(pr->metadata, sp->name, &json, &error))
        return;
    const char *body = pool_metadata_answer(pr->metadata, sp->name, &len, &content_type);
    cJSON *metadata = cJSON_AddObjectToObject(doc, "metadata");
    if (!body) {
        cJSON_AddStringToObject(metadata, "error", error ? error : "no answer");
        return;
    }
    cJSON_AddNumberToObject(metadata, "status", 200);
    cJSON *headers = cJSON_AddObjectToObject(metadata, "headers");
    if (content_type)
        cJSON_AddStringToObject(headers, "Content-Type", content_type);
    cJSON *parsed = cJSON_ParseWithLength(body, len);
    cJSON_AddItemToObject(metadata, "body", parsed ? parsed : cJSON_CreateString(body));
}

/* The response as a fixture: the body as JSON when it is JSON (readable, editable), else as
 * the raw string; the expectation is what the script made of it now. */
static void record_fixture(probe *pr, const http_response *r, const char *observation_json,
                           const char *error)
{
    const script_pool *sp = script_pool_at(pr->rt, (size_t)pr->pool);
    cJSON *doc = cJSON_CreateObject();
    char name[160];
    snprintf(name, sizeof name, "recorded %s response", sp->name);
    cJSON_AddStringToObject(doc, "name", name);
    cJSON_AddStringToObject(doc, "pool", sp->name);
    cJSON_AddStringToObject(doc, "wallet", pr->wallet);
    /* Fixtures are hermetic: keep the settings the scripts read (the pool URL among them). */
    cJSON *env = cJSON_AddObjectToObject(doc, "env");
    for (size_t i = 0; i < script_env_read_count(pr->rt); i++) {
        const char *name = script_env_read(pr->rt, i);
        const char *value = script_env_value(pr->rt, name);
        if (value)
            cJSON_AddStringToObject(env, name, value);
    }
    record_metadata(pr, doc);
    cJSON *step = cJSON_CreateObject();
    cJSON *response = cJSON_AddObjectToObject(step, "response");
    cJSON_AddNumberToObject(response, "status", (double)r->status);
    cJSON *headers = cJSON_AddObjectToObject(response, "headers");
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcmp(r->header_names[i], "content-type") == 0)
            cJSON_AddStringToObject(headers, "Content-Type", r->header_values[i]);
    cJSON *body = cJSON_ParseWithLength(r->body, r->body_len);
    cJSON_AddItemToObject(response, "body", body ? body : cJSON_CreateString(r->body));
    cJSON *expect = cJSON_AddObjectToObject(step, "expect");
    cJSON *request = cJSON_AddObjectToObject(expect, "request");
    cJSON_AddStringToObject(request, "url", pr->url);
    if (observation_json) {
        cJSON_AddItemToObject(expect, "observation", cJSON_Parse(observation_json));
        cJSON_AddNullToObject(expect, "reward");
    } else {
        cJSON_AddStringToObject(expect, "error", error);
    }
    cJSON *steps = cJSON_AddArrayToObject(doc, "steps");
    cJSON_AddItemToArray(steps, step);
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    FILE *f = fopen(pr->record_file, "w");
    if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) {
        fprintf(stderr, "m2p-engine: cannot write %s\n", pr->record_file);
        pr->status = 1;
    } else {
        printf("recorded: %s (run it with --script-test %s)\n", pr->record_file, pr->record_file);
    }
    if (f)
        fclose(f);
    free(text);
}

static void print_conversion(probe *pr, const char *observation_json)
{
    cJSON *obs = cJSON_Parse(observation_json);
    const script_pool *sp = script_pool_at(pr->rt, (size_t)pr->pool);
    static const char *const fields[] = {"paid", "paid24h", "balance", "unpaid", "immature"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obs, fields[i]);
        double advc;
        char err[512];
        if (!cJSON_IsNumber(v))
            continue;
        if (script_to_advc(pr->rt, pr->pool, v->valuedouble, &advc, err, sizeof err) == 0)
            printf("  %-9s %.8f %s = %.8f ADVC\n", fields[i], v->valuedouble, sp->currency, advc);
        else
            printf("  %-9s %.8f %s: conversion failed: %s\n", fields[i], v->valuedouble,
                   sp->currency, err);
    }
    cJSON_Delete(obs);
}

static void print_second_poll(probe *pr, const script_response *sr, const char *state)
{
    script_account account = {0, "probe", pr->wallet, state};
    poll_outcome again;
    if (script_poll(pr->rt, pr->pool, &account, sr, &again) != 0) {
        printf("second identical poll: failed: %s\n", again.error);
    } else if (again.n_awards == 0) {
        printf("second identical poll: no award (the first observation is the baseline)\n");
    } else {
        for (size_t i = 0; i < again.n_awards; i++)
            printf("second identical poll: award %.8f ADVC, %.8f AP (%s)\n",
                   again.awards[i].advc, again.awards[i].ap, again.awards[i].key);
    }
    poll_outcome_clear(&again);
}

static void on_response(void *user, const http_response *r)
{
    probe *pr = user;
    if (!r->ok) {
        printf("request failed after %.0f ms: %s\n", r->total_ms, r->error);
        return;
    }
    printf("status: %ld in %.0f ms, %zu bytes\n", r->status, r->total_ms, r->body_len);
    script_response sr = {r->status, r->header_names, r->header_values, r->n_headers, r->body,
                          r->body_len};
    script_account account = {0, "probe", pr->wallet, NULL};
    poll_outcome out;
    if (script_poll(pr->rt, pr->pool, &account, &sr, &out) != 0) {
        printf("no observation: %s\n", out.error);
        printf("body: %.*s\n", (int)(r->body_len > 2000 ? 2000 : r->body_len), r->body);
        if (pr->record_file)
            record_fixture(pr, r, NULL, out.error);
        poll_outcome_clear(&out);
        return;
    }
    printf("observation: %s\n", out.observation_json);
    print_conversion(pr, out.observation_json);
    print_second_poll(pr, &sr, out.state_json);
    pr->status = 0;
    if (pr->record_file)
        record_fixture(pr, r, out.observation_json, NULL);
    poll_outcome_clear(&out);
}

static void on_metadata_ready(void *loop)
{
    ev_break(loop, EVBREAK_ONE);
}

/* A pool that declares metadata: fetch it first, as the engine does before the first poll,
 * and show what the pool's parse will be given. */
static void fetch_metadata(probe *pr, struct ev_loop *loop)
{
    const script_pool *sp = script_pool_at(pr->rt, (size_t)pr->pool);
    if (!sp->metadata_url)
        return;
    secrets_print_line(stdout, "metadata url: ", sp->metadata_url);
    pool_metadata_sync(pr->metadata, pr->rt);
    if (pool_metadata_wait(pr->metadata, sp->name, on_metadata_ready, loop))
        ev_run(loop, 0);
    pool_metadata_stop(pr->metadata); /* one fetch is enough for one probe */
    const char *json, *error;
    pool_metadata_get(pr->metadata, sp->name, &json, &error);
    if (json)
        printf("metadata: %s\n", json);
    else
        printf("metadata unavailable: %s\n", error ? error : "no answer");
}

static int send_probe(probe *pr, const config *cfg)
{
    char err[1024];
    script_request req;
    if (script_request_build(pr->rt, pr->pool, pr->wallet, &req, err, sizeof err) != 0) {
        fprintf(stderr, "m2p-engine: %s\n", err);
        return -1;
    }
    secrets_print_line(stdout, "url: ", req.url); /* a pool URL may carry user:password@ */
    pr->url = req.url;
    for (size_t i = 0; i < req.n_headers; i++)
        printf("header: %s\n", req.headers[i]);
    http_options ho;
    settings_http_options(cfg, &ho);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    http_client *http = http_client_new(loop, &ho);
    pr->metadata = pool_metadata_new(loop, &http);
    fetch_metadata(pr, loop);
    /* The same redirect policy as a poll, so the probe shows what a poll would decide on. */
    const script_pool *sp = script_pool_at(pr->rt, (size_t)pr->pool);
    http_request hr = {.url = req.url,
                       .headers = (const char *const *)req.headers,
                       .n_headers = req.n_headers,
                       .tls_no_verify = pool_tls_warn_if_off(pr->rt, sp->name),
                       .redirects = sp->same_host_redirects ? HTTP_REDIRECTS_SAME_HOST
                                                            : HTTP_REDIRECTS_NONE};
    int rc = http_get(http, &hr, on_response, pr);
    if (rc == 0)
        ev_run(loop, 0); /* returns when the only watcher, the transfer, is done */
    else
        fprintf(stderr, "m2p-engine: the request could not be started\n");
    http_client_free(http);
    pool_metadata_free(pr->metadata); /* after the client: its cancelled fetches reach it */
    pr->metadata = NULL;
    ev_loop_destroy(loop);
    script_request_clear(&req);
    return rc;
}

int run_probe(const config *cfg, const char *pools_dir, const char *scripts_dir,
              const char *pool, const char *wallet, const char *record_file)
{
    probe pr = {.wallet = wallet, .record_file = record_file, .status = 1};
    pr.rt = settings_load_scripts(cfg, pools_dir, scripts_dir, false);
    if (!pr.rt)
        return 1;
    pr.pool = script_pool_find(pr.rt, pool);
    if (pr.pool < 0) {
        fprintf(stderr, "m2p-engine: no pool named '%s' in %s\n", pool, pools_dir);
    } else {
        const script_pool *sp = script_pool_at(pr.rt, (size_t)pr.pool);
        printf("pool: %s (%s, %s)%s\n", sp->name, sp->file, sp->currency,
               sp->enabled ? "" : " [disabled]");
        if (send_probe(&pr, cfg) != 0)
            pr.status = 1;
    }
    script_runtime_free(pr.rt);
    return pr.status;
}
