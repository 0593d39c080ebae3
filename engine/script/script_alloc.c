/* The Lua state's allocator: the memory ceiling, and a small-block cache in front of malloc.
 *
 * Why a cache. A steady-state poll calls the allocator about 118 times (table parts, strings,
 * closures of the pipeline: allocations and as many frees), nearly all of them for 16-256
 * bytes, and glibc's malloc, realloc and free took 15,500 instructions of it per poll
 * (docs/performance.md, "The Lua allocator"). Blocks of up to
 * SMALL_MAX bytes are therefore rounded up to a multiple of CLASS_BYTES and, when Lua frees
 * them, kept on a per-size free list of the runtime, to be handed out again by a pointer pop.
 *
 * Why the bound is in bytes, and that large. Lua's collector frees in bursts: one sweep gives
 * back the garbage of many polls, thousands of blocks, which the next polls then allocate
 * again. A list of 256 blocks overflowed on every sweep (half the frees and allocations still
 * went to malloc, measured with --once over 10,000 accounts); 256 KiB per class (4 MiB per
 * runtime at most) catches 97 % of them. That memory is what glibc would keep in its own free
 * bins anyway; script_alloc_release gives it back after lua_close.
 *
 * Allocation is also charged to the instruction budget (ALLOC_BYTES_PER_INSTRUCTION): a C
 * function that builds a large string runs no Lua instructions for it.
 *
 * The ceiling is unchanged: memory_used counts the sizes Lua asked for, not the rounded
 * blocks or the cached ones, so LUA_MEMORY_LIMIT means what it meant before.
 *
 * Lua assumes that an allocation never fails when it shrinks (osize >= nsize): every
 * shrinking path below falls back to the old, larger block instead of returning NULL.
 *
 * Under AddressSanitizer a cached block is poisoned, so that a use after Lua freed it is
 * still reported although malloc never sees the free. */
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "script_internal.h"

#define CLASS_BYTES 16     /* malloc's alignment on x86-64: every class block stays aligned */
#define SMALL_MAX 256      /* larger blocks go straight to malloc/realloc/free */
#define CACHED_BYTES_PER_CLASS (256 * 1024) /* 4 MiB at most per runtime */
/* Bytes of growth charged as one instruction: a memset of 16 bytes costs about what one
 * interpreted instruction does, so a loop of string.rep(x, 5e7) is stopped after a few
 * hundred milliseconds instead of running for hours under the instruction count alone. */
#define ALLOC_BYTES_PER_INSTRUCTION 16

_Static_assert(SMALL_MAX / CLASS_BYTES == SCRIPT_ALLOC_CLASSES, "one free list per class");

static size_t class_of(size_t bytes) { return bytes ? (bytes - 1) / CLASS_BYTES : 0; }
static size_t class_bytes(size_t cls) { return (cls + 1) * CLASS_BYTES; }

static void *cache_take(script_block_cache *cache, size_t cls)
{
    void **block = cache->free[cls];
    if (!block)
        return malloc(class_bytes(cls));
    ASAN_UNPOISON_MEMORY_REGION(block, class_bytes(cls));
    cache->free[cls] = *block;
    cache->count[cls]--;
    return block;
}

/* `block` holds at least class_bytes(cls) bytes (it may hold more: see resize). */
static void cache_give(script_block_cache *cache, void *block, size_t cls)
{
    if ((cache->count[cls] + 1) * class_bytes(cls) > CACHED_BYTES_PER_CLASS) {
        free(block);
        return;
    }
    *(void **)block = cache->free[cls];
    cache->free[cls] = block;
    cache->count[cls]++;
    ASAN_POISON_MEMORY_REGION(block, class_bytes(cls));
}

/* A small block moved to another class (grown, or shrunk by a whole class). */
static void *move_small(script_block_cache *cache, void *ptr, size_t old, size_t nsize)
{
    void *p = nsize <= SMALL_MAX ? cache_take(cache, class_of(nsize)) : malloc(nsize);
    if (!p)
        return nsize < old ? ptr : NULL; /* a failed shrink keeps the larger block */
    memcpy(p, ptr, old < nsize ? old : nsize);
    cache_give(cache, ptr, class_of(old));
    return p;
}

static void *resize(script_block_cache *cache, void *ptr, size_t old, size_t nsize)
{
    if (!ptr)
        return nsize <= SMALL_MAX ? cache_take(cache, class_of(nsize)) : malloc(nsize);
    if (old <= SMALL_MAX) {
        if (nsize <= SMALL_MAX && class_of(nsize) == class_of(old))
            return ptr; /* the block already has room: the common string/table regrowth */
        return move_small(cache, ptr, old, nsize);
    }
    /* A large block: realloc, shrunk to a whole class block when it becomes small, so that
     * it can go to a free list later. */
    void *p = realloc(ptr, nsize <= SMALL_MAX ? class_bytes(class_of(nsize)) : nsize);
    if (!p && nsize < old)
        return ptr; /* a failed shrink keeps the larger block */
    return p;
}

void *script_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    script_runtime *rt = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        if (ptr && old <= SMALL_MAX)
            cache_give(&rt->blocks, ptr, class_of(old));
        else
            free(ptr);
        rt->memory_used -= old;
        return NULL;
    }
    if (rt->in_call && nsize > old) {
        if (rt->memory_used - old + nsize > rt->opts.memory_limit_bytes) {
            rt->aborted = ABORT_MEMORY;
            return NULL;
        }
        /* Growth is work done in C (string.rep, table.concat, load's parser), charged to the
         * budget here; the count hook raises the error within HOOK_STEP instructions. */
        rt->instructions += (long long)((nsize - old) / ALLOC_BYTES_PER_INSTRUCTION);
    }
    void *p = resize(&rt->blocks, ptr, old, nsize);
    if (p)
        rt->memory_used = rt->memory_used - old + nsize;
    return p;
}

size_t script_alloc_cached(const script_runtime *rt)
{
    size_t n = 0;
    for (size_t cls = 0; cls < SCRIPT_ALLOC_CLASSES; cls++)
        n += rt->blocks.count[cls];
    return n;
}

void script_alloc_release(script_runtime *rt)
{
    for (size_t cls = 0; cls < SCRIPT_ALLOC_CLASSES; cls++) {
        while (rt->blocks.free[cls]) {
            void **block = rt->blocks.free[cls];
            ASAN_UNPOISON_MEMORY_REGION(block, class_bytes(cls));
            rt->blocks.free[cls] = *block;
            free(block);
        }
        rt->blocks.count[cls] = 0;
    }
}
