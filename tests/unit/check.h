/* A minimal test harness for the C unit tests: CHECK records a failure with file:line and
 * goes on; check_summary() prints "N passed, N failed" and gives the exit status. */
#ifndef M2P_TEST_CHECK_H
#define M2P_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            check_passed++;                                                                \
        } else {                                                                           \
            check_failed++;                                                                \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                   \
    do {                                                                                   \
        const char *check_h_ = (haystack);                                                 \
        CHECK(check_contains(check_h_, (needle)), "expected \"%s\" in \"%s\"", (needle),    \
              check_h_ ? check_h_ : "(null)");                                             \
    } while (0)

static inline int check_contains(const char *haystack, const char *needle)
{
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
