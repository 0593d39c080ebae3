/* Shared by the fuzz targets (tests/fuzz/fuzz_*.c): the libFuzzer entry point and a helper
 * that splits one input into parts. Built two ways: with clang's -fsanitize=fuzzer
 * (-DM2P_FUZZ=ON, tests/fuzz/run.sh) and with replay_main.c as a plain CTest (gcc). */
#ifndef M2P_FUZZ_H
#define M2P_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Next part of a multi-part input: the bytes up to the next NUL (or the end). Returns its
 * length and moves *data / *size past it and its NUL. A simple framing on purpose: the
 * fuzzer finds a NUL byte easily, and a seed stays readable (`tr '\0' '|' < seed`). */
static inline size_t fuzz_next_part(const uint8_t **data, size_t *size, const uint8_t **part)
{
    *part = *data;
    size_t n = 0;
    while (n < *size && (*data)[n] != 0)
        n++;
    size_t skip = n < *size ? n + 1 : n;
    *data += skip;
    *size -= skip;
    return n;
}

#endif
