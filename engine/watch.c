/* Directory watching with inotify (see watch.h).
 *
 * Directories, not files, are watched: a rename over a script (how most editors save), a new
 * file and a deleted file all show up as events on the directory, and so does an in-place
 * write (IN_CLOSE_WRITE). Each relevant event restarts a short timer; the callback runs when
 * the directory has been quiet that long.
 */
#include "watch.h"

#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"

#define WATCH_MASK \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | \
     IN_MOVE_SELF)

struct dir_watch {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer quiet;
    char **suffixes;
    size_t n_suffixes;
    void (*changed)(void *);
    void *user;
};

static bool relevant(const dir_watch *w, const struct inotify_event *e)
{
    if (!e->len)
        return (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
    size_t n = strlen(e->name);
    for (size_t i = 0; i < w->n_suffixes; i++) {
        size_t m = strlen(w->suffixes[i]);
        if (n > m && e->name[0] != '.' && strcmp(e->name + n - m, w->suffixes[i]) == 0)
            return true;
    }
    return false;
}

static void on_events(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    dir_watch *w = io->data;
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0)
            break; /* EAGAIN: drained */
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            any |= relevant(w, e) || (e->mask & IN_Q_OVERFLOW);
            p += sizeof *e + e->len;
        }
    }
    if (any)
        ev_timer_again(loop, &w->quiet);
}

static void on_quiet(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    dir_watch *w = t->data;
    ev_timer_stop(loop, t);
    w->changed(w->user);
}

dir_watch *dir_watch_new(struct ev_loop *loop, const char *const *dirs, size_t n_dirs,
                         const char *const *suffixes, size_t n_suffixes, double quiet,
                         void (*changed)(void *), void *user)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        log_message(LOG_WARNING, "watch_failed", "inotify: %s", strerror(errno));
        return NULL;
    }
    for (size_t i = 0; i < n_dirs; i++) {
        if (inotify_add_watch(fd, dirs[i], WATCH_MASK) < 0)
            log_message(LOG_WARNING, "watch_failed", "%s: %s", dirs[i], strerror(errno));
    }
    dir_watch *w = calloc(1, sizeof *w);
    w->loop = loop;
    w->fd = fd;
    w->changed = changed;
    w->user = user;
    w->suffixes = calloc(n_suffixes ? n_suffixes : 1, sizeof *w->suffixes);
    for (size_t i = 0; i < n_suffixes; i++)
        w->suffixes[i] = strdup(suffixes[i]);
    w->n_suffixes = n_suffixes;
    ev_io_init(&w->io, on_events, fd, EV_READ);
    ev_init(&w->quiet, on_quiet);
    w->quiet.repeat = quiet;
    w->io.data = w->quiet.data = w;
    ev_io_start(loop, &w->io);
    return w;
}

void dir_watch_free(dir_watch *w)
{
    if (!w)
        return;
    ev_io_stop(w->loop, &w->io);
    ev_timer_stop(w->loop, &w->quiet);
    close(w->fd);
    for (size_t i = 0; i < w->n_suffixes; i++)
        free(w->suffixes[i]);
    free(w->suffixes);
    free(w);
}
