/* The Lua allocator (engine/script/script_alloc.c) called directly, the way LuaJIT calls it:
 * small blocks are reused from a bounded cache, contents survive every move between size
 * classes, the ceiling counts the sizes Lua asked for and still refuses growth past it, and
 * (under AddressSanitizer) a cached block is poisoned. tests/unit/test_script.c covers the
 * ceiling through real scripts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "script_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

static script_runtime *fake_runtime(size_t limit)
{
    script_runtime *rt = calloc(1, sizeof *rt);
    rt->opts.memory_limit_bytes = limit;
    return rt;
}

static void *alloc(script_runtime *rt, void *ptr, size_t osize, size_t nsize)
{
    return script_limited_alloc(rt, ptr, osize, nsize);
}

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 1);
}

static int intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + 1))
            return 0;
    return 1;
}

/* A freed small block is kept and handed out again for any size of its class. */
static void test_reuse(void)
{
    script_runtime *rt = fake_runtime(1u << 20);
    void *a = alloc(rt, NULL, 0, 40);
    CHECK(a && ((uintptr_t)a % 16) == 0, "a class block is not 16-byte aligned");
    alloc(rt, a, 40, 0);
    CHECK(script_alloc_cached(rt) == 1, "freed block not cached: %zu", script_alloc_cached(rt));
    void *b = alloc(rt, NULL, 0, 33);
    CHECK(b == a, "a block of the same class was not reused");
    CHECK(script_alloc_cached(rt) == 0, "reused block still counted as cached");
    alloc(rt, b, 33, 0);
    void *big = alloc(rt, NULL, 0, 4096);
    alloc(rt, big, 4096, 0);
    CHECK(script_alloc_cached(rt) == 1, "a large block went to the cache");
    CHECK(rt->memory_used == 0, "memory_used after freeing everything: %zu", rt->memory_used);
    script_alloc_release(rt);
    CHECK(script_alloc_cached(rt) == 0, "release left blocks cached");
    free(rt);
}

/* Growth inside a class keeps the block; moves to another class or to malloc keep contents. */
static void test_resize_keeps_contents(void)
{
    script_runtime *rt = fake_runtime(1u << 20);
    unsigned char *p = alloc(rt, NULL, 0, 17);
    fill(p, 17);
    unsigned char *q = alloc(rt, p, 17, 32);
    CHECK(q == p && intact(q, 17), "growth within a class moved or lost the block");
    fill(q, 32);
    p = alloc(rt, q, 32, 200);
    CHECK(p && intact(p, 32), "small-to-small growth lost contents");
    fill(p, 200);
    q = alloc(rt, p, 200, 5000);
    CHECK(q && intact(q, 200), "small-to-large growth lost contents");
    fill(q, 5000);
    p = alloc(rt, q, 5000, 100);
    CHECK(p && intact(p, 100), "large-to-small shrink lost contents");
    q = alloc(rt, p, 100, 20);
    CHECK(q && intact(q, 20), "small shrink across classes lost contents");
    CHECK(rt->memory_used == 20, "memory_used counts %zu, Lua holds 20", rt->memory_used);
    alloc(rt, q, 20, 0);
    CHECK(rt->memory_used == 0, "memory_used after the free: %zu", rt->memory_used);
    script_alloc_release(rt);
    free(rt);
}

/* Freeing many blocks of one class caches no more than the bound; the rest go to free(). */
static void test_cache_is_bounded(void)
{
    enum { N = 20000 }; /* 24 bytes: the 32-byte class, 640 KiB, more than its bound */
    script_runtime *rt = fake_runtime(1u << 30);
    void **blocks = malloc(N * sizeof *blocks);
    for (int i = 0; i < N; i++)
        blocks[i] = alloc(rt, NULL, 0, 24);
    for (int i = 0; i < N; i++)
        alloc(rt, blocks[i], 24, 0);
    size_t cached = script_alloc_cached(rt);
    CHECK(cached > 0 && cached * 32 <= 256 * 1024, "cache holds %zu blocks of one class", cached);
    script_alloc_release(rt);
    free(blocks);
    free(rt);
}

/* The ceiling counts what Lua asked for, and refuses growth past it only inside a call. */
static void test_ceiling(void)
{
    script_runtime *rt = fake_runtime(100);
    void *p = alloc(rt, NULL, 0, 17);
    CHECK(rt->memory_used == 17, "the rounded block was counted: %zu", rt->memory_used);
    rt->in_call = true;
    void *q = alloc(rt, NULL, 0, 84);
    CHECK(q == NULL && rt->aborted == ABORT_MEMORY, "growth past the ceiling allowed");
    CHECK(rt->memory_used == 17, "a refused allocation was counted: %zu", rt->memory_used);
    q = alloc(rt, NULL, 0, 83);
    CHECK(q != NULL && rt->memory_used == 100, "an allocation up to the ceiling was refused");
    CHECK(alloc(rt, p, 17, 18) == NULL, "growth of a block past the ceiling allowed");
    void *shrunk = alloc(rt, q, 83, 10);
    CHECK(shrunk != NULL && rt->memory_used == 27, "a shrink at the ceiling failed");
    rt->in_call = false;
    void *outside = alloc(rt, NULL, 0, 1000);
    CHECK(outside != NULL, "the ceiling applied outside a call");
    alloc(rt, outside, 1000, 0);
    alloc(rt, shrunk, 10, 0);
    alloc(rt, p, 17, 0);
    CHECK(rt->memory_used == 0, "memory_used after freeing everything: %zu", rt->memory_used);
    script_alloc_release(rt);
    free(rt);
}

/* Under ASan a block in the cache is poisoned, so a use after Lua freed it is still caught. */
static void test_cached_block_poisoned(void)
{
#if defined(__SANITIZE_ADDRESS__)
    script_runtime *rt = fake_runtime(1u << 20);
    char *p = alloc(rt, NULL, 0, 64);
    alloc(rt, p, 64, 0);
    CHECK(__asan_address_is_poisoned(p + 8) && __asan_address_is_poisoned(p + 63),
          "a cached block is addressable");
    p = alloc(rt, NULL, 0, 64);
    CHECK(!__asan_address_is_poisoned(p) && !__asan_address_is_poisoned(p + 63),
          "a block handed out again is still poisoned");
    alloc(rt, p, 64, 0);
    script_alloc_release(rt);
    free(rt);
#endif
}

int main(void)
{
    test_reuse();
    test_resize_keeps_contents();
    test_cache_is_bounded();
    test_ceiling();
    test_cached_block_poisoned();
    return check_summary();
}
