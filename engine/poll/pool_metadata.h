/* Pool metadata: the second request a pool script may declare,
 *
 *     metadata = { url = "...", refresh = seconds, parse = function(response) ... end }
 *
 * fetched by the engine on its own schedule instead of once per poll (rplant's /api/dash,
 * which says per coin how many decimals its amounts carry). This module owns the schedule and
 * the cache; engine/script/script.c runs metadata.parse and keeps the last good result where the
 * pool's parse finds it (response.metadata, or response.metadata_error when there is none).
 *
 * - At start (pool_metadata_sync), every enabled pool that declares metadata is fetched at
 *   once; then every `refresh` seconds after a success, and after a failure again in 5 s,
 *   10 s, 20 s, ... (at most the refresh period, at most 10 minutes). A failure keeps the last
 *   good result; only while there is none do the pool's polls see metadata_error.
 * - Requests go through the poller's HTTP client (its connection cache, timeouts and body
 *   limit) with the pool's proxy and interface. A failure is logged (pool_metadata_failed)
 *   and never stops anything else.
 * - Reload: sync with the new generation. A pool whose metadata URL (and proxy/interface) is
 *   unchanged keeps its last good answer, which the NEW script's metadata.parse reads again at
 *   once (no request), so an edited parse applies immediately; if the new parse refuses it,
 *   or the URL changed, the metadata is fetched again at once.
 * - A poll of a pool whose first fetch has not finished yet waits for it (pool_metadata_wait),
 *   so the first polls (--once: the only polls) do not all fail for want of metadata.
 *
 * Single-threaded: everything runs on the loop of the HTTP client.
 */
#ifndef M2P_POOL_METADATA_H
#define M2P_POOL_METADATA_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "script.h"

struct ev_loop;
typedef struct pool_metadata pool_metadata;

/* `http` points at the owner's client pointer, read at every fetch: the owner may free the
 * client and set its pointer to NULL at shutdown (fetches then fail, nothing crashes).
 * Free the module after the client: the client's cancelled callbacks still reach it. */
pool_metadata *pool_metadata_new(struct ev_loop *loop, http_client *const *http);
void pool_metadata_free(pool_metadata *m);

/* Makes the pools of `rt` (the current generation) the ones served, as described above.
 * Metadata results are handed to this runtime from now on. */
void pool_metadata_sync(pool_metadata *m, script_runtime *rt);

/* When the first fetch for `pool` has not finished yet: remembers ready(user), to be called
 * once it has (successfully or not), and returns true. Otherwise (no metadata declared, or
 * already fetched) returns false and never calls ready. */
bool pool_metadata_wait(pool_metadata *m, const char *pool, void (*ready)(void *user),
                        void *user);

/* What a pool's parse sees now: true when the pool declares metadata, with *json the last
 * good result (or NULL) and *error the last failure (or NULL). */
bool pool_metadata_get(const pool_metadata *m, const char *pool, const char **json,
                       const char **error);

/* The last good answer (for --probe --record): its body and Content-Type, or NULL. */
const char *pool_metadata_answer(const pool_metadata *m, const char *pool, size_t *len,
                                 const char **content_type);

/* No more fetches (shutdown): timers stop, answers in flight are still taken. */
void pool_metadata_stop(pool_metadata *m);

#endif
