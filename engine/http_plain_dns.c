/* Non-blocking name resolution with getaddrinfo_a (see http_plain_dns.h).
 *
 * Ownership: a lookup is on its resolver's list until the loop thread takes its result. The
 * glibc thread that completes it only marks it done and wakes the loop, under g_lock; if the
 * resolver is gone by then (lookup->d == NULL), that thread frees the lookup itself. g_lock
 * is global because the notification has nothing else to lock that is sure to exist.
 */
#include "http_plain_dns.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

typedef struct plain_lookup plain_lookup;

struct plain_lookup {
    struct gaicb cb;
    struct addrinfo hints;
    char port[8];
    plain_dns *d;               /* NULL once orphaned (under g_lock) */
    int done;                   /* glibc finished it (under g_lock) */
    void *key;
    plain_lookup *next;
};

struct plain_dns {
    struct ev_loop *loop;
    ev_async wake;
    plain_dns_fn fn;
    void *user;
    plain_lookup *lookups;      /* under g_lock */
    int in_wake, freed;         /* plain_dns_free() from a callback of on_wake() */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void lookup_free(plain_lookup *l)
{
    if (l->cb.ar_result)
        freeaddrinfo(l->cb.ar_result);
    free((char *)l->cb.ar_name);
    free(l);
}

/* Runs on a glibc thread: touches nothing but the lookup and, while it lives, the wake-up. */
static void on_notify(union sigval v)
{
    plain_lookup *l = v.sival_ptr;
    pthread_mutex_lock(&g_lock);
    int orphaned = l->d == NULL;
    if (!orphaned) {
        l->done = 1;
        ev_async_send(l->d->loop, &l->d->wake);
    }
    pthread_mutex_unlock(&g_lock);
    if (orphaned)
        lookup_free(l);
}

/* Takes the finished lookups off the list under the lock, then reports them without it:
 * the callback may start new lookups. */
static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    plain_dns *d = w->data;
    plain_lookup *finished = NULL;
    pthread_mutex_lock(&g_lock);
    for (plain_lookup **pp = &d->lookups; *pp;) {
        plain_lookup *l = *pp;
        if (l->done) {
            *pp = l->next;
            l->next = finished;
            finished = l;
        } else {
            pp = &l->next;
        }
    }
    pthread_mutex_unlock(&g_lock);
    /* A callback may free the resolver (its client freed): the rest are only released. */
    d->in_wake = 1;
    while (finished) {
        plain_lookup *l = finished;
        finished = l->next;
        int rc = gai_error(&l->cb);
        if (!d->freed)
            d->fn(d->user, l->key, rc == 0 ? l->cb.ar_result : NULL,
                  rc == 0 ? NULL : gai_strerror(rc));
        lookup_free(l);
    }
    d->in_wake = 0;
    if (d->freed)
        free(d);
}

plain_dns *plain_dns_new(struct ev_loop *loop, plain_dns_fn fn, void *user)
{
    plain_dns *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->fn = fn;
    d->user = user;
    ev_async_init(&d->wake, on_wake);
    d->wake.data = d;
    ev_async_start(loop, &d->wake);
    ev_unref(loop);  /* a pending lookup belongs to a request, whose timer keeps the loop */
    return d;
}

void plain_dns_free(plain_dns *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&g_lock);
    plain_lookup *l = d->lookups;
    d->lookups = NULL;
    while (l) {
        plain_lookup *next = l->next;
        if (l->done) {
            lookup_free(l);  /* glibc is finished with it; only the wake-up was pending */
        } else {
            l->d = NULL;     /* on_notify frees it */
        }
        l = next;
    }
    pthread_mutex_unlock(&g_lock);
    ev_ref(d->loop);
    ev_async_stop(d->loop, &d->wake);
    if (d->in_wake)
        d->freed = 1;  /* on_wake() frees it when its loop is done */
    else
        free(d);
}

int plain_dns_start(plain_dns *d, const char *host, int port, void *key)
{
    plain_lookup *l = calloc(1, sizeof *l);
    char *name = l ? strdup(host) : NULL;
    if (!name) {
        free(l);
        return -1;
    }
    l->d = d;
    l->key = key;
    snprintf(l->port, sizeof l->port, "%d", port);
    l->hints.ai_family = AF_UNSPEC;
    l->hints.ai_socktype = SOCK_STREAM;
    l->hints.ai_flags = AI_ADDRCONFIG;
    l->cb.ar_name = name;
    l->cb.ar_service = l->port;
    l->cb.ar_request = &l->hints;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD;
    sev.sigev_notify_function = on_notify;
    sev.sigev_value.sival_ptr = l;
    struct gaicb *list[1] = {&l->cb};
    /* On the list before glibc can complete it: on_notify may run before getaddrinfo_a
     * returns. */
    pthread_mutex_lock(&g_lock);
    l->next = d->lookups;
    d->lookups = l;
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
    if (rc != 0)
        d->lookups = l->next;
    pthread_mutex_unlock(&g_lock);
    if (rc != 0) {
        lookup_free(l);
        return -1;
    }
    return 0;
}
