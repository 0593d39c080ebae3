/* The --accounts file loader (engine/store/players.c): what it accepts and how it names what
 * is wrong, and that its streaming reader (one entry's tree at a time, issue 11) answers
 * exactly like the whole-file cJSON tree it replaced (players_load_file_tree, kept as the
 * reference): the same players or the same error, over many generated files, valid and not
 * (every case where yajl and cJSON disagree, truncations, mutations, nesting around cJSON's
 * limit, every escape, odd numbers, files of several read chunks). */
#include "check.h"
#include "players.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];
static int compared, decided;

static int load(const char *text, player_list *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    err[0] = '\0';
    return players_load_file(path, out, err, errlen);
}

static void expect_error(const char *text, const char *message)
{
    player_list list;
    char err[512];
    CHECK(load(text, &list, err, sizeof err) == -1, "accepted: %s", text);
    CHECK_CONTAINS(err, message);
    CHECK(strncmp(err, path, strlen(path)) == 0, "the error does not name the file: %s", err);
    CHECK(list.n == 0 && list.items == NULL, "a failed load left players");
}

static void test_good_file(void)
{
    player_list list;
    char err[512];
    const char *text =
        "[{\"player_id\": 1, \"username\": \"a\", \"wallet\": \"W1\","
        "  \"wallets\": {\"zpool\": \"B1\", \"rplant\": \"R1\"}},"
        " {\"player_id\": 2, \"extra\": {\"a\": [1, {\"wallet\": \"no\"}], \"b\": null},"
        "  \"wallet\": null, \"wallets\": null},"
        " {\"player_id\": 3, \"player_id\": \"x\", \"wallet\": \"W3\", \"wallet\": 7,"
        "  \"username\": \"c\\u00e9\"}"
        "] trailing text is ignored";
    CHECK(load(text, &list, err, sizeof err) == 0, "%s", err);
    CHECK(list.n == 3, "%zu players", list.n);
    if (list.n == 3) {
        CHECK(list.items[0].id == 1 && strcmp(list.items[0].username, "a") == 0 &&
                  strcmp(list.items[0].wallet, "W1") == 0, "player 1");
        CHECK(list.items[0].n_wallets == 2, "player 1's wallets");
        CHECK(strcmp(player_wallet_for(&list.items[0], "zpool"), "B1") == 0, "zpool wallet");
        CHECK(strcmp(player_wallet_for(&list.items[0], "rplant"), "R1") == 0, "rplant wallet");
        CHECK(strcmp(player_wallet_for(&list.items[0], "cpu-pool"), "W1") == 0, "default");
        CHECK(list.items[1].id == 2 && !list.items[1].wallet && !list.items[1].username &&
                  list.items[1].n_wallets == 0, "player 2: unknown keys skipped, nulls");
        CHECK(list.items[2].id == 3 && strcmp(list.items[2].wallet, "W3") == 0,
              "player 3: the first of a repeated key counts");
        CHECK(strcmp(list.items[2].username, "c\xc3\xa9") == 0, "escapes decoded");
    }
    player_list_free(&list);

    CHECK(load("  [ ]  ", &list, err, sizeof err) == 0 && list.n == 0, "empty array: %s", err);
    player_list_free(&list);
}

static void test_errors(void)
{
    char long_text[400];
    expect_error("{\"player_id\": 1}", "expected a JSON array of players");
    expect_error("", "expected a JSON array of players");
    expect_error("nope", "expected a JSON array of players");
    expect_error("[{\"player_id\": 1}", "expected a JSON array of players");
    expect_error("[1]", "entry 0: must be an object");
    expect_error("[{\"player_id\": 1}, [2]]", "entry 1: must be an object");
    expect_error("[{\"player_id\": 1}, {\"player_id\": 0}]",
                 "entry 1: player_id must be a positive integer");
    expect_error("[{\"player_id\": 1.5}]", "entry 0: player_id must be a positive integer");
    expect_error("[{\"player_id\": \"1\"}]", "entry 0: player_id must be a positive integer");
    expect_error("[{\"player_id\": 9007199254740992}]",
                 "entry 0: player_id must be a positive integer");
    expect_error("[{\"username\": 5}]", "entry 0: player_id must be a positive integer");
    expect_error("[{\"player_id\": 1, \"username\": 5, \"wallet\": 5}]",
                 "entry 0: username must be a string of at most 256 bytes");
    expect_error("[{\"player_id\": 1, \"wallet\": {\"a\": [\"b\"]}}]",
                 "entry 0: wallet must be a string of at most 256 bytes");
    snprintf(long_text, sizeof long_text, "[{\"player_id\": 1, \"wallet\": \"%0257d\"}]", 0);
    expect_error(long_text, "entry 0: wallet must be a string of at most 256 bytes");
    expect_error("[{\"player_id\": 1, \"wallets\": [\"x\"]}]",
                 "entry 0: wallets must be an object of pool name -> wallet string");
    expect_error("[{\"player_id\": 1, \"wallets\": {\"zpool\": 1}}]",
                 "entry 0: wallets must be an object of pool name -> wallet string");
    expect_error("[{\"player_id\": 1, \"wallets\": {\"zpool\": {\"a\": 1}}}]",
                 "entry 0: wallets must be an object of pool name -> wallet string");

    player_list list;
    char err[512];
    CHECK(players_load_file("/nonexistent/players.json", &list, err, sizeof err) == -1,
          "a missing file was loaded");
    CHECK_CONTAINS(err, "/nonexistent/players.json: No such file");
}

/* ---- the stream against the tree ---- */

static void write_bytes(const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_players(const player_list *a, const player_list *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const player *x = &a->items[i], *y = &b->items[i];
        if (x->id != y->id || !same_text(x->username, y->username) ||
            !same_text(x->wallet, y->wallet) || x->n_wallets != y->n_wallets)
            return false;
        for (size_t w = 0; w < x->n_wallets; w++)
            if (!same_text(x->wallets[w].pool, y->wallets[w].pool) ||
                !same_text(x->wallets[w].wallet, y->wallets[w].wallet))
                return false;
    }
    return true;
}

/* Whether the stream must decide the file itself: '[' after a byte order mark (which cJSON
 * skips in a text of at least 5 bytes) and whitespace (any byte <= 32). */
static bool plain_start(const char *text, size_t len)
{
    size_t i = len >= 5 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    while (i < len && (unsigned char)text[i] <= 32)
        i++;
    return i < len && text[i] == '[';
}

/* The loaders on the same bytes: the same players, or the same error text. */
static void same_answer(const char *text, size_t len, const char *what)
{
    player_list tree, file, stream;
    char e_tree[512] = "", e_file[512] = "", e_stream[512] = "";
    write_bytes(text, len);
    int r_tree = players_load_file_tree(path, &tree, e_tree, sizeof e_tree);
    int r_file = players_load_file(path, &file, e_file, sizeof e_file);
    int r_stream = players_load_stream(path, &stream, e_stream, sizeof e_stream);
    compared++;
    CHECK(r_file == r_tree && strcmp(e_file, e_tree) == 0 && same_players(&file, &tree),
          "%s (%zu bytes): tree %d \"%s\" (%zu players), loader %d \"%s\" (%zu players)", what,
          len, r_tree, e_tree, tree.n, r_file, e_file, file.n);
    if (r_stream != -2) {
        decided++;
        CHECK(r_stream == r_tree && strcmp(e_stream, e_tree) == 0 &&
                  same_players(&stream, &tree),
              "%s (%zu bytes): tree %d \"%s\", stream %d \"%s\"", what, len, r_tree, e_tree,
              r_stream, e_stream);
    }
    CHECK(r_stream != -2 || !plain_start(text, len), "%s: the stream did not decide", what);
    if (r_tree != 0)
        CHECK(file.n == 0 && file.items == NULL, "%s: a failed load left players", what);
    player_list_free(&tree);
    player_list_free(&file);
    player_list_free(&stream);
}

static void same_answer_str(const char *text) { same_answer(text, strlen(text), text); }

/* Entries with every kind of value the players' fields and unknown keys can hold. */
static const char *const ENTRIES[] = {
    "{\"player_id\": 1, \"username\": \"a\", \"wallet\": \"W1\", \"wallets\": {\"zpool\": \"B\"}}",
    "{\"player_id\":2,\"wallet\":"
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"}",
    "{\"player_id\": 3, \"x\": \"],}[{,\\\"\", \"y\": [1, {\"z\": [\"]\"]}], \"wallet\": null}",
    "\t{ \"player_id\" :4e0 , \"username\" : \"tab\tinside\", \"wallets\" : null }\r\n",
    "{\"player_id\": 5, \"n\": [01, -0, 1.5e3, 1e400, -1e-400, 9007199254740993, true,"
    " false]}",
    "{\"player_id\": 9007199254740991, \"player_id\": \"second\", \"wallet\": \"W\","
    " \"wallet\": 1}",
    "{\"player_id\": 6, \"e\": {}, \"a\": [], \"s\": \"\", \"u\": \"\\u0000x\"}",
    "{\"player_id\": 7, \"wallets\": {\"a\": \"1\", \"b\": \"2\", \"a\": \"3\"}, \"k\": {\"\": 0}}",
};
#define N_ENTRIES (sizeof ENTRIES / sizeof ENTRIES[0])

static size_t build_file(char *buf, size_t cap, const char *before, const char *sep,
                         const char *after)
{
    size_t n = (size_t)snprintf(buf, cap, "%s", before);
    for (size_t i = 0; i < N_ENTRIES; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? sep : "", ENTRIES[i]);
    n += (size_t)snprintf(buf + n, cap - n, "%s", after);
    return n;
}

static void test_fixed_cases(void)
{
    static const char *const cases[] = {
        /* the outer structure */
        "[]", "[ ]", " \n[\n]\n", "[]]", "[] x", "[]{", "[1]]", "[,]", "[,1]", "[1,]", "[1,,1]",
        "[", "[ ", "[{", "]", "{}", "{\"a\": [1]}", "\"[]\"", "null", "[] [", "[{}}]",
        "[{\"player_id\": 1}}", "[{\"player_id\": 1}]}", "[{\"player_id\": 1} {\"player_id\": 2}]",
        "[{\"player_id\": 1}]trailing", "[{\"player_id\": 1},]", "[{\"player_id\": 1}\x7f]",
        "[{\"player_id\": 1}\x1f,\x01{\"player_id\": 2}\x0b]", "[{\"player_id\": 1}/**/]",
        /* a byte order mark, where cJSON skips it and where it does not */
        "\xEF\xBB\xBF[]", "\xEF\xBB\xBF[", "\xEF\xBB\xBF", "\xEF\xBB[]", "\xBB\xEF\xBF[]",
        " \xEF\xBB\xBF[]", "\xEF\xBB\xBF \n[{\"player_id\": 1}]", "\xEF\xBB\xBF\xEF\xBB\xBF[]",
        /* strings: escapes, raw control bytes, surrogates, bytes that are not UTF-8 */
        "[{\"player_id\": 1, \"wallet\": \"\\ud800\"}]",
        "[{\"player_id\": 1, \"wallet\": \"\\udc00\"}]",
        "[{\"player_id\": 1, \"wallet\": \"\\ud800\\u0041\"}]",
        "[{\"player_id\": 1, \"wallet\": \"\\ud83d\\ude00\"}]",
        "[{\"player_id\": 1, \"wallet\": \"\\x\"}]", "[{\"player_id\": 1, \"wallet\": \"\\u12\"}]",
        "[{\"player_id\": 1, \"wallet\": \"\\u12G4\"}]",
        "[{\"player_id\": 1, \"wallet\": \"a\nb\"}]",
        "[{\"player_id\": 1, \"wallet\": \"\xff\xfe\"}]",
        "[{\"player_id\": 1, \"wallet\": \"\\\\\"}]", "[{\"player_id\": 1, \"wallet\": \"\\\"}]",
        "[{\"player_id\": 1, \"wallet\": \"unterminated}]", "[\"]\"]", "[\"\\\"]\"]",
        /* numbers cJSON reads with strtod */
        "[{\"player_id\": 01}]", "[{\"player_id\": 1.0}]", "[{\"player_id\": 1e0}]",
        "[{\"player_id\": 1E+0}]", "[{\"player_id\": +1}]", "[{\"player_id\": .5e1}]",
        "[{\"player_id\": 1.}]", "[{\"player_id\": -}]", "[{\"player_id\": 0x1}]",
        "[{\"player_id\": 1e400}]", "[{\"player_id\": 9007199254740993}]",
        "[{\"player_id\": Infinity}]", "[{\"player_id\": NaN}]", "[{\"player_id\": 1 2}]",
        "[{\"player_id\": 1-2}]", "[{\"player_id\": 1}, 1e999, {\"player_id\": 2}]",
        "[{\"player_id\": 100000000000000000000000000000000000000000000000000000000000000001}]",
        /* literals */
        "[true]", "[nul]", "[null]", "[nulll]", "[fals]", "[{\"player_id\": 1, \"wallet\": nul}]",
        /* an entry that is wrong, then one that does not parse: the file is refused as such */
        "[{\"player_id\": 0}, {\"player_id\": 1]", "[{\"player_id\": 0}, {\"player_id\": 1}",
        "[{\"player_id\": 0}, {\"player_id\": 1}]", "[{\"player_id\": 0}, {\"player_id\": 0}]",
        "[{\"player_id\": 1}, 7, {\"player_id\": 0}]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_answer_str(cases[i]);

    /* NUL bytes: whitespace to cJSON between values, and inside a string */
    same_answer("[\0{\"player_id\": 1}\0]", 20, "NUL between values");
    same_answer("[{\"player_id\": 1, \"wallet\": \"a\0b\"}]", 36, "NUL in a string");
    same_answer("[{\"player_id\": 1}]\0", 19, "NUL after the array");
    same_answer("\0[]", 3, "NUL before the array");

    char buf[4096];
    static const char *const seps[] = {",", " , ", "\n,\n", "\x01,\x02", ",\t"};
    for (size_t i = 0; i < sizeof seps / sizeof seps[0]; i++) {
        size_t n = build_file(buf, sizeof buf, "[", seps[i], "]");
        same_answer(buf, n, "the entries");
        n = build_file(buf, sizeof buf, "\xEF\xBB\xBF\r\n[ ", seps[i], " ] tail");
        same_answer(buf, n, "the entries, with a byte order mark");
    }
}

static void test_every_truncation(void)
{
    char buf[4096];
    size_t n = build_file(buf, sizeof buf, "\xEF\xBB\xBF [", ",", "]\n");
    for (size_t len = 0; len <= n; len++)
        same_answer(buf, len, "a truncated file");
}

/* cJSON refuses more than 1000 nested containers, the array of players included. */
static void test_nesting(void)
{
    size_t cap = 8192;
    char *buf = malloc(cap);
    for (int depth = 996; depth <= 1002; depth++) {
        for (int kind = 0; kind < 3; kind++) {
            size_t n = (size_t)snprintf(buf, cap, "[{\"player_id\": 1, \"x\": ");
            int inner = kind == 2 ? depth - 1 : depth - 2; /* with the array and the entry */
            for (int i = 0; i < inner; i++)
                n += (size_t)snprintf(buf + n, cap - n, kind == 0 ? "[" : "{\"k\":");
            n += (size_t)snprintf(buf + n, cap - n, "1");
            for (int i = 0; i < inner; i++)
                buf[n++] = kind == 0 ? ']' : '}';
            n += (size_t)snprintf(buf + n, cap - n, "}]");
            if (kind == 2) { /* the entry itself nested: "[[[...]]]" */
                n = 0;
                for (int i = 0; i < depth; i++)
                    buf[n++] = '[';
                for (int i = 0; i < depth; i++)
                    buf[n++] = ']';
            }
            char what[64];
            snprintf(what, sizeof what, "nesting %d (kind %d)", depth, kind);
            same_answer(buf, n, what);
        }
    }
    free(buf);
}

static unsigned long long rng = 88172645463325252ull;

static unsigned next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

/* Random edits of a good file with the bytes that matter to the scan and to cJSON. */
static void test_mutations(void)
{
    static const char alphabet[] = "[]{},:\"\\ 0a1e.-u\t\n\x01\xEF";
    char base[4096], buf[4200];
    size_t n = build_file(base, sizeof base, "[", ",", "]");
    for (int round = 0; round < 3000; round++) {
        size_t len = n;
        memcpy(buf, base, n);
        for (unsigned edits = 1 + next_random() % 3; edits > 0; edits--) {
            size_t at = next_random() % len;
            char c = alphabet[next_random() % (sizeof alphabet - 1)];
            switch (next_random() % 3) {
            case 0: buf[at] = c; break;
            case 1: memmove(buf + at + 1, buf + at, len++ - at); buf[at] = c; break;
            default: memmove(buf + at, buf + at + 1, --len - at); break;
            }
        }
        same_answer(buf, len, "a mutated file");
    }
}

/* Several read chunks: entries, strings and escapes across their boundaries. */
static void test_large_file(void)
{
    size_t cap = 1 << 18, n = 0;
    char *buf = malloc(cap);
    buf[n++] = '[';
    for (int i = 1; i <= 700; i++)
        n += (size_t)snprintf(buf + n, cap - n,
                              "%s{\"player_id\": %d, \"username\": \"p\\u00e9%d\", \"wallet\": "
                              "\"W%0*d\", \"pad\": [\"%*s\\\"\"]}",
                              i > 1 ? ",\n" : "", i, i, 1 + i % 100, i, i % 250, "");
    buf[n++] = ']';
    same_answer(buf, n, "700 players");
    for (size_t cut = 2 * 65536 - 30; cut < 2 * 65536 + 30; cut += 7)
        same_answer(buf, cut, "700 players, truncated at a chunk boundary");
    for (int round = 0; round < 25; round++) {
        size_t at = next_random() % n;
        char saved = buf[at];
        buf[at] = "\"\\]},["[next_random() % 6];
        same_answer(buf, n, "700 players, one byte changed");
        buf[at] = saved;
    }
    free(buf);
}

static void test_limits(void)
{
    player_list list;
    char err[512];
    /* A sparse file of 512 MiB: refused from its size, as before, without reading it. */
    FILE *f = fopen(path, "wb");
    CHECK(f && ftruncate(fileno(f), 512l * 1024 * 1024) == 0, "sparse file");
    if (f)
        fclose(f);
    CHECK(players_load_file(path, &list, err, sizeof err) == -1, "a 512 MiB file was loaded");
    CHECK_CONTAINS(err, "larger than 512 MiB");
    CHECK(list.n == 0 && list.items == NULL, "a failed load left players");

    /* Not a regular file: the tree parser answers. */
    char e_tree[512];
    CHECK(players_load_stream("/dev/null", &list, err, sizeof err) == -2, "/dev/null decided");
    CHECK(players_load_file("/dev/null", &list, err, sizeof err) == -1 &&
              players_load_file_tree("/dev/null", &list, e_tree, sizeof e_tree) == -1 &&
              strcmp(err, e_tree) == 0, "/dev/null: %s", err);
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/m2p-test-players-%d.json", (int)getpid());
    test_good_file();
    test_errors();
    test_fixed_cases();
    test_every_truncation();
    test_nesting();
    test_mutations();
    test_large_file();
    test_limits();
    printf("%d files compared with the tree loader, %d decided by the stream\n", compared,
           decided);
    unlink(path);
    return check_summary();
}
