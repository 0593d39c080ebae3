/* The --accounts file loader (engine/store/players.c): what it accepts and how it names what
 * is wrong. It reads the file as a stream (issue 11: no tree of the whole file); every case
 * here behaved the same with the tree parser it replaced (first key wins, text after the
 * array ignored, errors name the entry and the field). */
#include "check.h"
#include "players.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

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

int main(void)
{
    snprintf(path, sizeof path, "/tmp/m2p-test-players-%d.json", (int)getpid());
    test_good_file();
    test_errors();
    unlink(path);
    return check_summary();
}
