/* Watches directories for changed files (inotify on the libev loop) and reports them once
 * a burst is over: editors that write a temporary file and rename it, and many saves in a
 * row, end in one call. */
#ifndef M2P_WATCH_H
#define M2P_WATCH_H

#include <stddef.h>

struct ev_loop;
typedef struct dir_watch dir_watch;

/* Calls changed(user) `quiet` seconds after the last change to a file in one of `dirs` whose
 * name ends with one of `suffixes` (e.g. ".lua"). NULL (reason logged) if inotify fails. */
dir_watch *dir_watch_new(struct ev_loop *loop, const char *const *dirs, size_t n_dirs,
                         const char *const *suffixes, size_t n_suffixes, double quiet,
                         void (*changed)(void *user), void *user);
void dir_watch_free(dir_watch *w);

#endif
