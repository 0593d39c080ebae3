/* Fixture runner for `--script-test`.
 *
 * A fixture is one JSON file: {name, pool, wallet?, env?, metadata?, steps: [{metadata?,
 * response, expect}]}. Each case gets a fresh script runtime (so its env overrides apply at
 * load, as they would at start-up) and one account whose state carries from step to step
 * exactly as it would between live polls: a failed step leaves it unchanged. The pool's
 * metadata (pools that declare a metadata request) comes from the fixture, never from the
 * network. Differences are reported field by field so a wrong expectation reads as a diff,
 * not as a boolean.
 */
#include "scripttest.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <ev.h>
#include <libgen.h>

#include "log.h"
#include "watch.h"

#define DEFAULT_WALLET "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy"
#define MAX_FIXTURE_BYTES (8 * 1024 * 1024)

/* What went wrong in a case: the first problem, as one line. */
typedef struct verdict {
    char text[2048];
    bool failed;
} verdict;

static void fail(verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(verdict *v, const char *fmt, ...)
{
    if (v->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
    v->failed = true;
}

/* ============================================================ Collecting fixtures */

typedef struct path_list {
    char **items;
    size_t n;
} path_list;

static void path_list_add(path_list *l, const char *path)
{
    l->items = realloc(l->items, (l->n + 1) * sizeof *l->items);
    l->items[l->n++] = strdup(path);
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_json_file(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0 && name[0] != '.';
}

static void collect(const char *path, path_list *out)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        path_list_add(out, path); /* a missing file is reported when it is read */
        return;
    }
    DIR *dir = opendir(path);
    if (!dir)
        return;
    path_list found = {0};
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        if (stat(child, &st) == 0 && (S_ISDIR(st.st_mode) || is_json_file(e->d_name)))
            path_list_add(&found, child);
    }
    closedir(dir);
    if (found.n)
        qsort(found.items, found.n, sizeof *found.items, compare_paths);
    for (size_t i = 0; i < found.n; i++) {
        collect(found.items[i], out);
        free(found.items[i]);
    }
    free(found.items);
}

static cJSON *read_json_file(const char *path, verdict *v)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(v, "cannot open fixture");
        return NULL;
    }
    char *buf = malloc(MAX_FIXTURE_BYTES + 1);
    size_t n = fread(buf, 1, MAX_FIXTURE_BYTES + 1, f);
    fclose(f);
    cJSON *doc = NULL;
    if (n > MAX_FIXTURE_BYTES)
        fail(v, "fixture larger than 8 MiB");
    else if (!(doc = cJSON_ParseWithLength(buf, n)))
        fail(v, "fixture is not valid JSON (near byte %zu)",
             cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - buf) : n);
    free(buf);
    return doc;
}

/* ================================================================ Comparisons */

static bool numbers_match(double expected, double got)
{
    double tolerance = fmax(1e-9, fabs(expected) * 1e-12);
    return fabs(expected - got) <= tolerance;
}

static void describe(const cJSON *item, char *buf, size_t len)
{
    char *text = item ? cJSON_PrintUnformatted(item) : NULL;
    snprintf(buf, len, "%s", text ? text : "(missing)");
    free(text);
}

/* Subset match: every member of `expected` must be in `got`; numbers to 1e-9. */
static void compare_subset(const cJSON *expected, const cJSON *got, const char *where,
                           verdict *v)
{
    char e[256], g[256], path[512];
    if (cJSON_IsObject(expected) || cJSON_IsArray(expected)) {
        bool array = cJSON_IsArray(expected);
        if (!got || (array ? !cJSON_IsArray(got) : !cJSON_IsObject(got))) {
            describe(got, g, sizeof g);
            fail(v, "%s: expected %s, got %s", where, array ? "a list" : "an object", g);
            return;
        }
        if (array && cJSON_GetArraySize(expected) != cJSON_GetArraySize(got)) {
            fail(v, "%s: expected %d entries, got %d", where, cJSON_GetArraySize(expected),
                 cJSON_GetArraySize(got));
            return;
        }
        int i = 0;
        for (const cJSON *child = expected->child; child; child = child->next, i++) {
            const cJSON *other = array ? cJSON_GetArrayItem(got, i)
                                       : cJSON_GetObjectItemCaseSensitive(got, child->string);
            if (array)
                snprintf(path, sizeof path, "%s[%d]", where, i + 1);
            else
                snprintf(path, sizeof path, "%s.%s", where, child->string);
            compare_subset(child, other, path, v);
        }
        return;
    }
    bool same = cJSON_IsNumber(expected)
                    ? cJSON_IsNumber(got) && numbers_match(expected->valuedouble, got->valuedouble)
                    : got && cJSON_Compare(expected, got, true);
    if (!same) {
        describe(expected, e, sizeof e);
        describe(got, g, sizeof g);
        fail(v, "%s: expected %s, got %s", where, e, g);
    }
}

static void compare_reward(const cJSON *expected, const poll_outcome *out, int step, verdict *v)
{
    double advc = 0, ap = 0;
    for (size_t i = 0; i < out->n_awards; i++) {
        advc += out->awards[i].advc;
        ap += out->awards[i].ap;
    }
    if (cJSON_IsNull(expected)) {
        if (out->n_awards)
            fail(v, "step %d: reward: expected none, got advc %.8f ap %.8f (%s)", step, advc, ap,
                 out->awards[0].key);
        return;
    }
    if (!out->n_awards) {
        fail(v, "step %d: reward: expected an award, got none", step);
        return;
    }
    const cJSON *e_advc = cJSON_GetObjectItemCaseSensitive(expected, "advc");
    const cJSON *e_ap = cJSON_GetObjectItemCaseSensitive(expected, "ap");
    if (cJSON_IsNumber(e_advc) && !numbers_match(e_advc->valuedouble, advc))
        fail(v, "step %d: reward.advc: expected %.8f, got %.8f", step, e_advc->valuedouble, advc);
    if (cJSON_IsNumber(e_ap) && !numbers_match(e_ap->valuedouble, ap))
        fail(v, "step %d: reward.ap: expected %.8f, got %.8f", step, e_ap->valuedouble, ap);
}

/* ======================================================================= Steps */

typedef struct case_env {
    const cJSON *env; /* the fixture's "env" object, or NULL */
} case_env;

static const char *case_env_lookup(void *user, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(((case_env *)user)->env, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* A step's response: status (default 200), headers object, body (string raw, else JSON). */
typedef struct step_response {
    script_response r;
    const char **names, **values;
    char *body;
} step_response;

static void build_response(const cJSON *spec, step_response *s)
{
    memset(s, 0, sizeof *s);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(spec, "status");
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(spec, "headers");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(spec, "body");
    s->r.status = cJSON_IsNumber(status) ? (long)status->valuedouble : 200;
    int n = cJSON_IsObject(headers) ? cJSON_GetArraySize(headers) : 0;
    s->names = calloc((size_t)n + 1, sizeof(char *));
    s->values = calloc((size_t)n + 1, sizeof(char *));
    for (const cJSON *h = n ? headers->child : NULL; h; h = h->next) {
        if (!cJSON_IsString(h))
            continue;
        s->names[s->r.n_headers] = h->string;
        s->values[s->r.n_headers++] = h->valuestring;
    }
    s->r.header_names = s->names;
    s->r.header_values = s->values;
    if (cJSON_IsString(body))
        s->body = strdup(body->valuestring);
    else if (body)
        s->body = cJSON_PrintUnformatted(body);
    else
        s->body = strdup("");
    s->r.body = s->body;
    s->r.body_len = strlen(s->body);
}

static void free_response(step_response *s)
{
    free(s->names);
    free(s->values);
    free(s->body);
}

/* A fixture's "metadata" (at the top: before step 1, as the engine's first fetch; in a step:
 * a refresh before its poll): the answer to the pool's metadata request, {status, headers,
 * body} like a step's response, or {"error": "..."} for a fetch that failed. It goes through
 * metadata.parse as in the engine; a failure keeps the last good metadata. `last` is the last
 * good result's JSON, for "expect.metadata". */
static void give_metadata(script_runtime *rt, int pool, const cJSON *spec, int step,
                          verdict *v, char **last)
{
    const script_pool *sp = script_pool_at(rt, (size_t)pool);
    if (!sp->metadata_url) {
        fail(v, "step %d: the fixture gives metadata, but %s declares no metadata request",
             step, sp->file);
        return;
    }
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(spec, "error");
    if (cJSON_IsString(error)) {
        script_metadata_failed(rt, pool, error->valuestring);
        return;
    }
    step_response s;
    build_response(spec, &s);
    char err[1024], *json = NULL;
    if (script_metadata_parse(rt, pool, &s.r, &json, err, sizeof err) == 0) {
        free(*last);
        *last = json;
    }
    free_response(&s);
}

static void check_metadata(const cJSON *expected, const char *last, int step, verdict *v)
{
    if (cJSON_IsNull(expected)) {
        if (last)
            fail(v, "step %d: metadata: expected none, got %s", step, last);
        return;
    }
    cJSON *got = last ? cJSON_Parse(last) : NULL;
    char where[32];
    snprintf(where, sizeof where, "step %d: metadata", step);
    compare_subset(expected, got, where, v);
    cJSON_Delete(got);
}

/* Checks "expect.error" against a failure message; true when the step expected to fail. */
static bool check_expected_error(const cJSON *expect, const char *error, int step, verdict *v)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(expect, "error");
    bool wants_error = e && !cJSON_IsFalse(e) && !cJSON_IsNull(e);
    if (!wants_error) {
        if (error)
            fail(v, "step %d: unexpected error: %s", step, error);
        return false;
    }
    if (!error)
        fail(v, "step %d: expected an error%s%s, the poll succeeded", step,
             cJSON_IsString(e) ? " containing " : "", cJSON_IsString(e) ? e->valuestring : "");
    else if (cJSON_IsString(e) && !strstr(error, e->valuestring))
        fail(v, "step %d: expected an error containing \"%s\", got: %s", step, e->valuestring,
             error);
    return true;
}

static void check_request(script_runtime *rt, int pool, const char *wallet, const cJSON *expect,
                          int step, verdict *v, char **error)
{
    char err[1024];
    script_request req;
    if (script_request_build(rt, pool, wallet, &req, err, sizeof err) != 0) {
        *error = strdup(err);
        return;
    }
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(expect, "request"), "url");
    if (cJSON_IsString(url) && strcmp(url->valuestring, req.url) != 0)
        fail(v, "step %d: request.url: expected %s, got %s", step, url->valuestring, req.url);
    script_request_clear(&req);
}

typedef struct case_account {
    char *state;    /* the account state, step to step */
    char *metadata; /* the last good metadata (JSON), or NULL */
} case_account;

static void run_step(script_runtime *rt, int pool, const char *wallet, const cJSON *step_spec,
                     int step, case_account *acc, verdict *v)
{
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(step_spec, "expect");
    const cJSON *response = cJSON_GetObjectItemCaseSensitive(step_spec, "response");
    const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(step_spec, "metadata");
    char **state = &acc->state;
    char *error = NULL;
    if (metadata)
        give_metadata(rt, pool, metadata, step, v, &acc->metadata);
    check_request(rt, pool, wallet, expect, step, v, &error);
    poll_outcome out = {0};
    if (!error && cJSON_IsObject(response)) {
        step_response s;
        build_response(response, &s);
        script_account account = {1, "fixture", wallet, *state};
        if (script_poll(rt, pool, &account, &s.r, &out) != 0)
            error = strdup(out.error);
        free_response(&s);
    } else if (!error) {
        fail(v, "step %d: no \"response\" object", step);
    }
    if (!check_expected_error(expect, error, step, v) && !error && !v->failed) {
        const cJSON *obs = cJSON_GetObjectItemCaseSensitive(expect, "observation");
        if (obs) {
            cJSON *got = cJSON_Parse(out.observation_json);
            char where[32];
            snprintf(where, sizeof where, "step %d: observation", step);
            compare_subset(obs, got, where, v);
            cJSON_Delete(got);
        }
        const cJSON *reward = cJSON_GetObjectItemCaseSensitive(expect, "reward");
        if (reward)
            compare_reward(reward, &out, step, v);
        free(*state);
        *state = strdup(out.state_json);
    }
    const cJSON *expected_metadata = cJSON_GetObjectItemCaseSensitive(expect, "metadata");
    if (expected_metadata)
        check_metadata(expected_metadata, acc->metadata, step, v);
    poll_outcome_clear(&out);
    free(error);
}

/* ======================================================================= Cases */

static const char *load_error_for(script_runtime *rt, const char *pool_name)
{
    char needle[256];
    snprintf(needle, sizeof needle, "/%s.lua", pool_name);
    for (size_t i = 0; i < script_load_error_count(rt); i++)
        if (strstr(script_load_error(rt, i), needle))
            return script_load_error(rt, i);
    return NULL;
}

static void run_case(const script_options *base, const cJSON *doc, verdict *v)
{
    const cJSON *pool_name = cJSON_GetObjectItemCaseSensitive(doc, "pool");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(doc, "steps");
    const cJSON *wallet = cJSON_GetObjectItemCaseSensitive(doc, "wallet");
    if (!cJSON_IsString(pool_name) || !cJSON_IsArray(steps) || !cJSON_GetArraySize(steps)) {
        fail(v, "invalid fixture: needs \"pool\" (string) and \"steps\" (non-empty list)");
        return;
    }
    case_env env = {cJSON_GetObjectItemCaseSensitive(doc, "env")};
    script_options opts = *base;
    opts.env = case_env_lookup;
    opts.env_user = &env;
    char err[1024];
    script_runtime *rt = script_runtime_new(&opts, err, sizeof err);
    if (!rt) {
        fail(v, "%s", err);
        return;
    }
    int pool = script_pool_find(rt, pool_name->valuestring);
    if (pool < 0) {
        const char *why = load_error_for(rt, pool_name->valuestring);
        fail(v, "%s", why ? why : "no pool script with that name");
    }
    case_account acc = {NULL, NULL};
    const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
    if (pool >= 0 && metadata)
        give_metadata(rt, pool, metadata, 0, v, &acc.metadata);
    else if (pool >= 0 && script_pool_at(rt, (size_t)pool)->metadata_url)
        script_metadata_failed(rt, pool, "this fixture gives no \"metadata\"");
    int i = 1;
    for (const cJSON *step = steps->child; step && !v->failed; step = step->next, i++)
        run_step(rt, pool, cJSON_IsString(wallet) ? wallet->valuestring : DEFAULT_WALLET, step,
                 i, &acc, v);
    free(acc.state);
    free(acc.metadata);
    script_runtime_free(rt);
}

/* The log lines scripts write while one case runs (m2p.log, the rules' warnings) are kept
 * and shown under the case only when it fails: a passing run reads as one line per case, and
 * a failing one has its logs next to its diff instead of somewhere above it. */
typedef struct case_logs {
    FILE *stream;
    char *text;
    size_t len;
} case_logs;

static void case_logs_start(case_logs *l)
{
    *l = (case_logs){0};
    l->stream = open_memstream(&l->text, &l->len);
    if (l->stream)
        log_configure(LOG_WARNING, LOG_FORMAT_TEXT, l->stream);
}

/* Back to what main() set for --script-test: warnings and worse, as text, on stderr. */
static void case_logs_finish(case_logs *l, bool show, FILE *out)
{
    log_configure(LOG_WARNING, LOG_FORMAT_TEXT, stderr);
    if (l->stream)
        fclose(l->stream);
    char *save = NULL;
    for (char *line = show && l->text ? strtok_r(l->text, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save))
        fprintf(out, "     log: %s\n", line);
    free(l->text);
}

int scripttest_run(const script_options *base, const char *const *paths, int n_paths, FILE *out)
{
    path_list files = {0};
    for (int i = 0; i < n_paths; i++)
        collect(paths[i], &files);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < files.n; i++) {
        verdict v = {.failed = false};
        cJSON *doc = read_json_file(files.items[i], &v);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
        case_logs logs;
        case_logs_start(&logs);
        if (doc)
            run_case(base, doc, &v);
        fprintf(out, "%-4s %s: %s\n", v.failed ? "FAIL" : "ok", files.items[i],
                cJSON_IsString(name) ? name->valuestring : "(unnamed)");
        if (v.failed)
            fprintf(out, "     %s\n", v.text);
        case_logs_finish(&logs, v.failed, out);
        if (v.failed)
            failed++;
        else
            passed++;
        cJSON_Delete(doc);
        free(files.items[i]);
    }
    free(files.items);
    fprintf(out, "%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

/* ================================================================ --watch */

typedef struct watch_run {
    const script_options *base;
    const char *const *paths;
    int n_paths;
    FILE *out;
} watch_run;

static void rerun(void *user)
{
    watch_run *w = user;
    fprintf(w->out, "\n-- change detected: running the fixtures again\n");
    scripttest_run(w->base, w->paths, w->n_paths, w->out);
    fflush(w->out);
}

/* Every directory that holds fixtures (a file path watches its directory). */
static void fixture_dirs(const char *const *paths, int n_paths, path_list *dirs)
{
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            path_list_add(dirs, paths[i]);
            DIR *d = opendir(paths[i]);
            for (struct dirent *e; d && (e = readdir(d));) {
                char child[4096];
                snprintf(child, sizeof child, "%s/%s", paths[i], e->d_name);
                if (e->d_name[0] != '.' && stat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
                    const char *one[] = {child};
                    fixture_dirs(one, 1, dirs);
                }
            }
            if (d)
                closedir(d);
        } else {
            char *copy = strdup(paths[i]);
            path_list_add(dirs, dirname(copy));
            free(copy);
        }
    }
}

int scripttest_watch(const script_options *base, const char *const *paths, int n_paths,
                     FILE *out)
{
    watch_run w = {base, paths, n_paths, out};
    scripttest_run(base, paths, n_paths, out);
    fflush(out);
    path_list dirs = {0};
    path_list_add(&dirs, base->pools_dir);
    path_list_add(&dirs, base->scripts_dir);
    fixture_dirs(paths, n_paths, &dirs);
    static const char *const suffixes[] = {".lua", ".json"};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    dir_watch *watch = dir_watch_new(loop, (const char *const *)dirs.items, dirs.n, suffixes, 2,
                                     0.2, rerun, &w);
    int status = 1;
    if (watch) {
        fprintf(out, "-- watching %zu directories; Ctrl-C to stop\n", dirs.n);
        fflush(out);
        ev_run(loop, 0);
        status = 0;
    }
    dir_watch_free(watch);
    ev_loop_destroy(loop);
    for (size_t i = 0; i < dirs.n; i++)
        free(dirs.items[i]);
    free(dirs.items);
    return status;
}
