/* Replays a fuzz target's saved inputs without a fuzzing engine: the CTest side of
 * tests/fuzz/. Every regular file of every directory given (corpus/<target>,
 * regressions/<target>) goes once through LLVMFuzzerTestOneInput, in name order, so a crash
 * the fuzzer once found fails the normal (and the ASan) suite on any compiler.
 *
 *   usage: <target>_replay DIR...   (a missing directory counts as empty) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Reads a whole file; NULL (reason on stderr) when it cannot. */
static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Runs every regular file of dir; returns the number of files run, -1 on a read error. */
static int replay_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0)
        return 0;
    int run = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (run >= 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len;
            uint8_t *data = read_all(path, &len);
            if (!data) {
                run = -1;
            } else {
                LLVMFuzzerTestOneInput(data, len);
                free(data);
                run++;
            }
        }
        free(names[i]);
    }
    free(names);
    return run;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = replay_dir(argv[i]);
        if (n < 0)
            return 1;
        printf("%s: %d input(s)\n", argv[i], n);
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "no inputs found: a replay with nothing to run proves nothing\n");
        return 1;
    }
    return 0;
}
