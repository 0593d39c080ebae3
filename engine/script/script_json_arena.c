/* yajl's memory per parse without malloc per parse.
 *
 * Why: a yajl parse mallocs its handle, its lexer, two 2,048-byte buffers and a stack, and
 * frees them all at the end; in the steady-state profile the 2,048-byte ones alone missed
 * glibc's per-thread cache and cost about 460 instructions a malloc (malloc_consolidate).
 * Everything yajl asks for within one parse is taken front to back from one buffer that lives
 * as long as the Lua state and is reset before and after each parse. Only a block that does
 * not fit (a string with escapes longer than a few KiB) is malloc'd, and is listed, so that a
 * reset frees it even when a Lua error unwound through yajl and yajl_free never ran.
 */
#include "script_json_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every block starts on this boundary (yajl keeps pointers and sizes in them), after a
 * header of this size holding its size. */
#define ALIGNMENT 8

struct arena_overflow {
    arena_overflow *next, *prev;
    size_t size;
    _Alignas(16) unsigned char data[]; /* malloc'd: as aligned as malloc gives */
};

_Static_assert(sizeof(size_t) <= ALIGNMENT, "a block's header holds its size");

static size_t round_up(size_t n) { return (n + ALIGNMENT - 1) & ~(size_t)(ALIGNMENT - 1); }

static int in_buffer(const script_json_arena *a, const void *p)
{
    uintptr_t at = (uintptr_t)p, start = (uintptr_t)a->buffer;
    return at >= start && at < start + SCRIPT_JSON_ARENA_BYTES;
}

static size_t *header_of(void *p) { return (size_t *)((unsigned char *)p - ALIGNMENT); }

static size_t offset_of(const script_json_arena *a, const void *p)
{
    return (size_t)((const unsigned char *)p - a->buffer);
}

/* The block handed out last can grow, or be given back, in place. */
static int is_last(const script_json_arena *a, void *p)
{
    return offset_of(a, p) + round_up(*header_of(p)) == a->used;
}

static void link_overflow(script_json_arena *a, arena_overflow *o)
{
    o->prev = NULL;
    o->next = a->overflows;
    if (o->next)
        o->next->prev = o;
    a->overflows = o;
}

static void unlink_overflow(script_json_arena *a, arena_overflow *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        a->overflows = o->next;
    if (o->next)
        o->next->prev = o->prev;
}

static arena_overflow *overflow_of(void *p)
{
    return (arena_overflow *)((unsigned char *)p - offsetof(arena_overflow, data));
}

static void *arena_malloc(void *ctx, size_t size)
{
    script_json_arena *a = ctx;
    size_t need = ALIGNMENT + round_up(size);
    if (size < SCRIPT_JSON_ARENA_BYTES && need <= SCRIPT_JSON_ARENA_BYTES - a->used) {
        unsigned char *block = a->buffer + a->used + ALIGNMENT;
        *header_of(block) = size;
        a->used += need;
        return block;
    }
    arena_overflow *o = malloc(sizeof *o + size);
    if (!o)
        return NULL;
    o->size = size;
    link_overflow(a, o);
    return o->data;
}

static void arena_free(void *ctx, void *p)
{
    script_json_arena *a = ctx;
    if (!p)
        return;
    if (in_buffer(a, p)) {
        if (is_last(a, p))
            a->used = offset_of(a, p) - ALIGNMENT;
        return; /* else it is forgotten at the reset */
    }
    arena_overflow *o = overflow_of(p);
    unlink_overflow(a, o);
    free(o);
}

static void *realloc_overflow(script_json_arena *a, void *p, size_t size)
{
    arena_overflow *o = overflow_of(p);
    unlink_overflow(a, o);
    arena_overflow *grown = realloc(o, sizeof *o + size);
    if (!grown) {
        link_overflow(a, o);
        return NULL;
    }
    grown->size = size;
    link_overflow(a, grown);
    return grown->data;
}

static void *arena_realloc(void *ctx, void *p, size_t size)
{
    script_json_arena *a = ctx;
    if (!p)
        return arena_malloc(ctx, size);
    if (!in_buffer(a, p))
        return realloc_overflow(a, p, size);
    size_t old = *header_of(p);
    if (is_last(a, p) && size < SCRIPT_JSON_ARENA_BYTES &&
        offset_of(a, p) + round_up(size) <= SCRIPT_JSON_ARENA_BYTES) {
        *header_of(p) = size;
        a->used = offset_of(a, p) + round_up(size);
        return p;
    }
    if (size <= old)
        return p;
    void *moved = arena_malloc(ctx, size);
    if (!moved)
        return NULL;
    memcpy(moved, p, old);
    arena_free(ctx, p);
    return moved;
}

void script_json_arena_init(script_json_arena *a)
{
    a->used = 0;
    a->overflows = NULL;
}

void script_json_arena_reset(script_json_arena *a)
{
    while (a->overflows) {
        arena_overflow *o = a->overflows;
        a->overflows = o->next;
        free(o);
    }
    a->used = 0;
}

yajl_alloc_funcs script_json_arena_funcs(script_json_arena *a)
{
    return (yajl_alloc_funcs){.malloc = arena_malloc,
                              .realloc = arena_realloc,
                              .free = arena_free,
                              .ctx = a};
}

size_t script_json_arena_overflow_count(const script_json_arena *a)
{
    size_t n = 0;
    for (const arena_overflow *o = a->overflows; o; o = o->next)
        n++;
    return n;
}
