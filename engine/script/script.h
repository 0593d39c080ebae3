/* The scripting runtime: the only room of the engine that knows the Lua stack.
 *
 * A runtime is one generation of scripts: a LuaJIT state holding every pool script of a
 * directory plus the shared rules (convert.lua, rewards.lua), each in its own sandbox. The
 * rest of the engine calls plain C functions with C values: build the request for an
 * account, and turn a response into an observation, a new account state and awards.
 *
 * Every call into Lua runs under an instruction budget and a memory ceiling; a script error
 * never escapes as anything but an error string naming the file and line.
 */
#ifndef M2P_SCRIPT_H
#define M2P_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct script_runtime script_runtime;

/* Configuration lookup used by m2p.env(): returns the raw value or NULL when unset. */
typedef const char *(*script_env_fn)(void *user, const char *name);

typedef struct script_options {
    const char *pools_dir;        /* every *.lua file in it is a pool */
    const char *scripts_dir;      /* convert.lua and rewards.lua */
    long long instruction_budget; /* per call into Lua; default 10,000,000 */
    size_t memory_limit_bytes;    /* ceiling for the whole state; default 256 MiB */
    size_t max_body_bytes;        /* responses larger than this fail the poll; default 1 MiB */
    script_env_fn env;            /* NULL: getenv */
    void *env_user;
    /* Leave the JIT compiler on. Compiled loops do not run count hooks, so the instruction
     * budget cannot stop them: for measurements only (bench/), never in the engine. */
    bool unsafe_allow_jit;
} script_options;

void script_options_defaults(script_options *o);

typedef struct pool_limits {
    int concurrency;   /* 0 = unset */
    double per_second; /* 0 = unset */
    double interval;   /* seconds, 0 = unset */
    double max_interval; /* seconds the pool's data stays complete (zpool: 24 h of payouts);
                            0 = unset */
} pool_limits;

typedef struct script_pool {
    const char *name;
    const char *file;
    const char *currency;
    bool enabled;
    pool_limits limits;
    const char *proxy;     /* egress proxy for this pool's requests, or NULL */
    const char *interface; /* source interface or address, or NULL */
    bool same_host_redirects; /* redirects = "same-host": follow redirects on the pool's
                                 own host and port; default: follow none */
    /* The pool's metadata request (docs/scripting.md, "Pool metadata"), fetched by
     * engine/poll/pool_metadata.c: NULL when the script declares none. */
    const char *metadata_url;
    double metadata_refresh; /* seconds between two fetches */
    /* The engine may reuse an account's request until its wallet, the generation or
     * `request_serial` changes (cache_request = false in the script: built every poll). */
    bool cache_request;
    /* Counts the runs of the pool's metadata.parse: script code outside request() that a
     * request() may depend on (an upvalue it sets). A cached request is stale once it moves. */
    unsigned request_serial;
} script_pool;

/* Loads the rules and every pool script. Returns NULL (reason in err) only when the runtime
 * cannot work at all: the rules are missing or broken, or the pools directory is unreadable.
 * A broken pool script is left out and recorded as a load error. */
script_runtime *script_runtime_new(const script_options *opts, char *err, size_t errlen);
void script_runtime_free(script_runtime *rt);

size_t script_load_error_count(const script_runtime *rt);
const char *script_load_error(const script_runtime *rt, size_t i); /* "file:line: message" */

size_t script_pool_count(const script_runtime *rt);
const script_pool *script_pool_at(const script_runtime *rt, size_t i);
int script_pool_find(const script_runtime *rt, const char *name); /* index or -1 */

/* ---- one poll ---------------------------------------------------------------------- */

typedef struct script_request {
    char *url;
    char **headers; /* "Name: value" */
    size_t n_headers;
} script_request;

typedef struct script_response {
    long status;
    const char *const *header_names; /* any case */
    const char *const *header_values;
    size_t n_headers;
    const char *body;
    size_t body_len;
} script_response;

typedef struct script_account {
    long long player_id;
    const char *username;   /* may be NULL */
    const char *wallet;
    const char *state_json; /* what the last successful poll returned; NULL at first */
} script_account;

typedef struct award {
    double advc; /* rounded to 8 decimal places */
    double ap;   /* rounded to 8 decimal places */
    char *key;   /* unique per account: the idempotency key */
    char *reason;
    bool inexact; /* the rules could not compute it to 1e-8 (award_limits.h: held) */
} award;

typedef struct poll_outcome {
    char *error;            /* set when the poll failed: nothing else is set */
    char *observation_json; /* the validated observation, keys sorted */
    char *state_json;       /* the account state to keep for the next poll */
    award *awards;
    size_t n_awards;
} poll_outcome;

/* Builds the request for `wallet` on pool `pool`. 0 on success; -1 with a reason in err
 * ("invalid wallet", or the script's error with file:line). */
int script_request_build(script_runtime *rt, int pool, const char *wallet, script_request *out,
                         char *err, size_t errlen);
/* script_request_build for a wallet the caller has checked with script_wallet_check in this
 * runtime and found to be its own canonical form (as for script_poll_checked_wallet): the
 * address checksum is not computed again. */
int script_request_build_checked_wallet(script_runtime *rt, int pool, const char *wallet,
                                        script_request *out, char *err, size_t errlen);
void script_request_clear(script_request *req);

/* Checks `wallet` for pool `pool` as request building does (length, characters, the pool's
 * wallet_pattern, address checksums). On success returns 0 and writes the wallet's canonical
 * form (the key under which a wallet belongs to one player: bech32 lower-cased, others as
 * they are) into `canonical`. On failure returns -1 with the reason in err, e.g.
 * "invalid wallet: bad base58check checksum". */
int script_wallet_check(script_runtime *rt, int pool, const char *wallet, char *canonical,
                        size_t canonical_len, char *err, size_t errlen);

/* Turns a response into an outcome. Returns 0, or -1 when the poll failed (out->error). */
int script_poll(script_runtime *rt, int pool, const script_account *account,
                const script_response *response, poll_outcome *out);
void poll_outcome_clear(poll_outcome *out);

/* script_poll for a wallet the caller has checked with script_wallet_check in this runtime
 * and found to be its own canonical form: the poll does not check it again. (An address
 * checksum: with cached requests no request() has checked it moments before, and the
 * pipeline remembers only the last 4096 wallets of a pool.) */
int script_poll_checked_wallet(script_runtime *rt, int pool, const script_account *account,
                               const script_response *response, poll_outcome *out);

/* ---- pool metadata ------------------------------------------------------------------ */

/* Hands the answer to pool `pool`'s metadata request to its metadata.parse. On success (0)
 * the result becomes what the pool's parse sees as response.metadata in this runtime, and its
 * JSON is returned in *json (malloc'd; json may be NULL). On failure (-1, the reason in err)
 * the last good metadata stays; when there is none, parse sees the reason as
 * response.metadata_error. */
int script_metadata_parse(script_runtime *rt, int pool, const script_response *response,
                          char **json, char *err, size_t errlen);

/* A metadata fetch that failed before parse (transport error, timeout): recorded as a failed
 * metadata.parse is. */
void script_metadata_failed(script_runtime *rt, int pool, const char *reason);

/* convert.to_advc(amount, pool currency): 0, or -1 with the script's error. */
int script_to_advc(script_runtime *rt, int pool, double amount, double *advc, char *err,
                   size_t errlen);

/* What the rules say about `account`'s state (rewards.explain, docs/scripting.md): JSON
 * {"baseline": text, "next_award": text} in *json (malloc'd). 0, or -1 with the reason. */
int script_explain(script_runtime *rt, int pool, const script_account *account, char **json,
                   char *err, size_t errlen);

/* Content hash (16 hex digits) of the rules this generation decides with (convert.lua and
 * rewards.lua): recorded with every award. */
const char *script_rules_generation(const script_runtime *rt);

/* The configuration variables scripts have looked up with m2p.env* (secrets such as
 * DATABASE_URL are never given to scripts), and their current values. */
size_t script_env_read_count(const script_runtime *rt);
const char *script_env_read(const script_runtime *rt, size_t i);
const char *script_env_value(const script_runtime *rt, const char *name);

/* Lua memory in use, bytes (for metrics and tests). */
size_t script_memory_used(const script_runtime *rt);

#endif
