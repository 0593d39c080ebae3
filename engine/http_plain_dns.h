/* Non-blocking name resolution for engine/http_plain.c (internal).
 *
 * glibc's getaddrinfo_a() resolves on its own threads; its completion notification (a
 * SIGEV_THREAD callback) only wakes the loop through an ev_async, and the result is handed
 * over on the loop thread. A lookup still running when its resolver is freed is orphaned:
 * it frees itself when glibc finishes it, so no callback ever reaches freed memory.
 *
 * Threading: a resolver belongs to its loop's thread, like the HTTP client that owns it.
 */
#ifndef M2P_HTTP_PLAIN_DNS_H
#define M2P_HTTP_PLAIN_DNS_H

struct addrinfo;
struct ev_loop;

typedef struct plain_dns plain_dns;

/* Called on the loop thread with the addresses (NULL when the lookup failed; `error` is
 * then gai_strerror()'s text). `ai` is freed when the call returns. */
typedef void (*plain_dns_fn)(void *user, void *key, const struct addrinfo *ai,
                             const char *error);

plain_dns *plain_dns_new(struct ev_loop *loop, plain_dns_fn fn, void *user);
/* Orphans lookups still running; no callback runs after this. NULL is a no-op. */
void plain_dns_free(plain_dns *d);
/* Starts resolving `host` (TCP, any family) for `key`. 0, or -1 when it could not start. */
int plain_dns_start(plain_dns *d, const char *host, int port, void *key);

#endif
