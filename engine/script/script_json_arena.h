/* The memory of one yajl parse (part of the Lua room; used by script_json_stream.c): a fixed
 * buffer that is handed out front to back and forgotten as a whole, with malloc'd blocks
 * beyond it for the rare parse that needs more (a long string with escapes). */
#ifndef M2P_SCRIPT_JSON_ARENA_H
#define M2P_SCRIPT_JSON_ARENA_H

#include <stddef.h>

#include <yajl/yajl_common.h>

/* Room for everything a parse of a typical body needs: yajl's handle, lexer, their two
 * 2,048-byte buffers and the nesting stack, with the block headers. */
#define SCRIPT_JSON_ARENA_BYTES 8192

typedef struct arena_overflow arena_overflow;

typedef struct script_json_arena {
    size_t used;               /* bytes of `buffer` handed out, headers included */
    arena_overflow *overflows; /* malloc'd blocks, beyond the buffer */
    /* 8-byte aligned, as a Lua userdata is: enough for what yajl keeps (pointers, sizes) */
    unsigned char buffer[SCRIPT_JSON_ARENA_BYTES];
} script_json_arena;

/* Empty, with nothing allocated. */
void script_json_arena_init(script_json_arena *a);
/* Forgets every block, including those of a parse that a Lua error cut short; frees the
 * overflow blocks. The arena stays usable. */
void script_json_arena_reset(script_json_arena *a);
/* yajl's allocation functions, allocating from `a`. */
yajl_alloc_funcs script_json_arena_funcs(script_json_arena *a);
/* Blocks beyond the buffer now allocated (for tests). */
size_t script_json_arena_overflow_count(const script_json_arena *a);

#endif
