/* docs/operations.md carries the settings table that config_print_markdown() writes, between
 * the lines "<!-- settings:begin -->" and "<!-- settings:end -->"; this test fails when they
 * drift apart. Run from the repository root (CTest does). To bring the docs up to date:
 *   M2P_UPDATE_DOCS=1 build/tests/test_config_docs
 */
#include "check.h"
#include "config.h"

#include <stdlib.h>
#include <string.h>

#define DOCS_PATH "docs/operations.md"
#define BEGIN_MARK "<!-- settings:begin -->\n"
#define END_MARK "<!-- settings:end -->"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;)
        fwrite(buf, 1, n, out);
    fclose(out);
    fclose(f);
    return text;
}

static char *generated_table(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_print_markdown(out);
    fclose(out);
    return text;
}

/* Rewrites the block between the markers with `table`. */
static int update_docs(const char *doc, const char *block, const char *end, const char *table)
{
    FILE *f = fopen(DOCS_PATH, "w");
    if (!f) {
        perror(DOCS_PATH);
        return 1;
    }
    fwrite(doc, 1, (size_t)(block - doc), f);
    fputs(table, f);
    fputs(end, f);
    fclose(f);
    printf("updated the settings table in %s\n", DOCS_PATH);
    return 0;
}

int main(void)
{
    char *doc = read_all(DOCS_PATH), *table = generated_table();
    CHECK(doc != NULL, "cannot read %s (tests run from the repository root)", DOCS_PATH);
    const char *begin = doc ? strstr(doc, BEGIN_MARK) : NULL;
    const char *block = begin ? begin + strlen(BEGIN_MARK) : NULL;
    const char *end = block ? strstr(block, END_MARK) : NULL;
    CHECK(begin != NULL, "%s has no line \"%s\"", DOCS_PATH, "<!-- settings:begin -->");
    CHECK(end != NULL && (end == block || end[-1] == '\n'),
          "%s has no line \"%s\" after the begin marker", DOCS_PATH, END_MARK);
    if (begin && end) {
        size_t len = (size_t)(end - block);
        bool same = len == strlen(table) && memcmp(block, table, len) == 0;
        const char *update = getenv("M2P_UPDATE_DOCS");
        if (!same && update && strcmp(update, "1") == 0) {
            int status = update_docs(doc, block, end, table);
            free(doc);
            free(table);
            return status;
        }
        CHECK(same,
              "the settings table in %s differs from config_print_markdown(); run\n"
              "  M2P_UPDATE_DOCS=1 <build>/tests/test_config_docs\n"
              "from the repository root to update it. Expected:\n%s",
              DOCS_PATH, table);
    }
    free(doc);
    free(table);
    return check_summary();
}
