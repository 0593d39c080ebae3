/* docs/operations.md carries the settings table that config_print_markdown() writes, between
 * the lines "<!-- settings:begin -->" and "<!-- settings:end -->"; this test fails when they
 * drift apart. Run from the repository root (CTest does). To bring the docs up to date:
 *   M2P_UPDATE_DOCS=1 build/tests/test_config_docs
 * It also checks that the operator's sections (upgrade, scaling, troubleshooting) name only
 * settings, log events, metrics, tables and options that exist (check_names below).
 */
#include "check.h"
#include "config.h"

#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ============================================ The operator's sections name what exists
 *
 * The sections below tell an operator which log event, setting, metric, table or option to
 * look at; a name that does not exist (a typo, an event renamed since) sends them nowhere.
 * In backticks there, every SETTING_NAME must be in the settings table, every
 * lower_snake_name must start a string literal in the engine's C or Lua sources (log events,
 * metrics, JSON fields) or be a word of its SQL (tables, columns, functions), and every
 * --option of an `m2p-engine ...` command must be one the command line knows. */

static const char *const NAMED_SECTIONS[] = {"Upgrade and migrations",
                                             "Scaling to several instances", "Troubleshooting"};
static const char *const SOURCE_DIRS[] = {"engine", "pools", "scripts"};
/* Names of PostgreSQL's that the sections may mention: not the engine's to check. */
static const char *const OUTSIDE_NAMES[] = {"pg_dump", "pg_restore", "max_connections"};

static FILE *corpus_code, *corpus_sql; /* nftw has no user pointer */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int add_source(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    /* The store's C files hold its SQL statements: their words count as SQL too. */
    bool sql = ends_with(path, ".sql") || strncmp(path, "engine/store/", 13) == 0;
    if (type != FTW_F || !(sql || ends_with(path, ".c") || ends_with(path, ".h") ||
                           ends_with(path, ".lua")))
        return 0;
    char *text = read_all(path);
    if (text && !ends_with(path, ".sql"))
        fprintf(corpus_code, "%s\n", text);
    if (text && sql)
        fprintf(corpus_sql, "%s\n", text);
    free(text);
    return 0;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* `name` at the start of a "..." or '...' literal, or as a whole word (SQL). */
static bool occurs(const char *text, const char *name, bool as_word)
{
    size_t n = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
        char before = p == text ? ' ' : p[-1];
        if (ident_char(p[n]))
            continue;
        if (before == '"' || before == '\'' || (as_word && !ident_char(before)))
            return true;
    }
    return false;
}

static bool matches(const char *s, size_t n, bool upper)
{
    bool underscore = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool letter = upper ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z');
        if (c == '_' && i > 0 && i + 1 < n)
            underscore = true;
        else if (!letter && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return underscore;
}

static bool is_outside_name(const char *name)
{
    for (size_t i = 0; i < sizeof OUTSIDE_NAMES / sizeof OUTSIDE_NAMES[0]; i++)
        if (strcmp(OUTSIDE_NAMES[i], name) == 0)
            return true;
    return false;
}

static bool is_setting(const char *name)
{
    for (int i = 0; i < CFG_COUNT; i++)
        if (strcmp(config_name((config_id)i), name) == 0)
            return true;
    return false;
}

/* Every --option of an m2p-engine command (a span that starts with "m2p-engine" or "--",
 * or a line of a code block from "m2p-engine" on) must be in main.c's table ({"option", ...). */
static void check_options(const char *command, const char *main_c, const char *section)
{
    char line[512];
    snprintf(line, sizeof line, " %.*s", (int)strcspn(command, "\n"), command);
    for (const char *p = strstr(line, " --"); p; p = strstr(p + 1, " --")) {
        char option[64], entry[80];
        size_t n = strspn(p + 3, "abcdefghijklmnopqrstuvwxyz-");
        if (n == 0 || n >= sizeof option)
            continue;
        snprintf(option, sizeof option, "%.*s", (int)n, p + 3);
        snprintf(entry, sizeof entry, "{\"%s\",", option);
        CHECK(strstr(main_c, entry) != NULL,
              "%s, section \"%s\": `%s` uses --%s, which engine/main.c does not know", DOCS_PATH,
              section, line + 1, option);
    }
}

static void check_span(const char *span, const char *code, const char *sql, const char *main_c,
                       const char *section)
{
    size_t n = strlen(span);
    if (matches(span, n, true))
        CHECK(is_setting(span), "%s, section \"%s\": `%s` is not in the settings table",
              DOCS_PATH, section, span);
    else if (matches(span, n, false))
        CHECK(is_outside_name(span) || occurs(code, span, false) || occurs(sql, span, true),
              "%s, section \"%s\": `%s` is no log event, metric, field or table of engine/, "
              "pools/ or scripts/",
              DOCS_PATH, section, span);
    else if (strncmp(span, "m2p-engine", 10) == 0 || strncmp(span, "--", 2) == 0)
        check_options(span, main_c, section);
}

/* The text of "## title" up to the next "## " heading. */
static char *section_of(const char *doc, const char *title)
{
    char heading[128];
    snprintf(heading, sizeof heading, "\n## %s\n", title);
    const char *start = strstr(doc, heading);
    if (!start)
        return NULL;
    start += strlen(heading);
    const char *end = strstr(start, "\n## ");
    size_t len = end ? (size_t)(end - start) : strlen(start);
    return strndup(start, len);
}

/* The commands of a ``` block: each line's "m2p-engine ..." part. Returns the block's end. */
static char *check_code_block(char *fence, const char *main_c, const char *section)
{
    char *body = strchr(fence, '\n'); /* the closing fence may be indented */
    char *end = body ? strstr(body, "```") : NULL;
    end = end ? end + 3 : fence + strlen(fence);
    for (const char *line = body; line && line < end; line = strchr(line + 1, '\n')) {
        const char *eol = strchr(line + 1, '\n');
        const char *cmd = strstr(line + 1, "m2p-engine --");
        if (cmd && (!eol || cmd < eol) && cmd < end)
            check_options(cmd, main_c, section);
    }
    return end;
}

static int check_section_names(const char *doc, const char *code, const char *sql,
                               const char *main_c, const char *title)
{
    char *text = section_of(doc, title);
    CHECK(text != NULL, "%s has no section \"## %s\"", DOCS_PATH, title);
    int spans = 0;
    for (char *p = text ? strchr(text, '`') : NULL; p; p = strchr(p, '`')) {
        if (strncmp(p, "```", 3) == 0) {
            p = check_code_block(p, main_c, title);
            continue;
        }
        char *close = strchr(p + 1, '`');
        if (!close)
            break;
        *close = '\0';
        check_span(p + 1, code, sql, main_c, title);
        spans++;
        p = close + 1;
    }
    free(text);
    return spans;
}

static void check_names(const char *doc)
{
    char *code = NULL, *sql = NULL;
    size_t code_len = 0, sql_len = 0;
    corpus_code = open_memstream(&code, &code_len);
    corpus_sql = open_memstream(&sql, &sql_len);
    for (size_t i = 0; i < sizeof SOURCE_DIRS / sizeof SOURCE_DIRS[0]; i++)
        CHECK(nftw(SOURCE_DIRS[i], add_source, 16, FTW_PHYS) == 0, "cannot read %s/",
              SOURCE_DIRS[i]);
    fclose(corpus_code);
    fclose(corpus_sql);
    char *main_c = read_all("engine/main.c");
    CHECK(main_c != NULL && occurs(code, "polling_cycle_complete", false) &&
              occurs(sql, "m2p_accounts", true),
          "the engine's sources were not read (tests run from the repository root)");
    for (size_t i = 0; main_c && i < sizeof NAMED_SECTIONS / sizeof NAMED_SECTIONS[0]; i++)
        CHECK(check_section_names(doc, code, sql, main_c, NAMED_SECTIONS[i]) > 0,
              "section \"%s\" of %s names nothing in backticks", NAMED_SECTIONS[i], DOCS_PATH);
    free(main_c);
    free(code);
    free(sql);
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
    if (doc)
        check_names(doc);
    free(doc);
    free(table);
    return check_summary();
}
