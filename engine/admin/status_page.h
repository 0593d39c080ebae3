/* The live status page (GET /): HTML, JavaScript and CSS from engine/admin/page/, compiled
 * into the binary by engine/admin/embed_page.cmake. The page fetches GET /status every few
 * seconds and draws it; it needs nothing from the internet. */
#ifndef M2P_STATUS_PAGE_H
#define M2P_STATUS_PAGE_H

#include <stddef.h>

typedef struct page_file {
    const char *path; /* "/" for index.html, else "/NAME" */
    const char *type; /* Content-Type */
    const char *data;
    size_t len;
} page_file;

extern const page_file page_files[]; /* terminated by path == NULL */

/* The file served at `path`, or NULL. */
const page_file *page_find(const char *path);

/* What the page may load: only itself and GET /status from this origin (no inline script,
 * no other site), so a player-controlled string that reached the DOM could not run. */
#define PAGE_CSP                                                                           \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "        \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#endif
