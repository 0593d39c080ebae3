/* Lua sources compiled into the binary (see engine/embed.cmake). */
#ifndef M2P_EMBEDDED_H
#define M2P_EMBEDDED_H

#include <stddef.h>

typedef struct embedded_file {
    const char *name; /* file name, e.g. "prelude.lua" */
    const char *text;
    size_t len;
} embedded_file;

extern const embedded_file embedded_files[]; /* terminated by name == NULL */

const embedded_file *embedded_find(const char *name);

#endif
