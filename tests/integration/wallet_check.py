"""Issue 8: the operator's look at wallet ownership before or while the engine runs.

`m2p-engine --check-wallets` (players from the database) and `m2p-engine --check --accounts
FILE` list, per pool, every account whose wallet the engine would refuse and why, then a
summary line; exit 4 when anything is refused. Two small pools (testpool: ADVC base58check
addresses; testbtc: Bitcoin addresses, bech32 case-insensitive, canonical lower case).

- test_database_report: an invalid wallet, two players sharing one wallet, one bech32 address
  in two letter cases; unverified and inactive players are not looked at. The exact lines,
  exit 4, nothing written (no claim, no migration). Then the engine itself runs: it refuses
  exactly what the check listed, and the check after its claims says the same.
- test_database_claims: a claim that holds wins over a lower player id (also when its owner
  is deactivated, or retyped the address in another letter case); a claim whose owner moved
  to another wallet does not.
- test_database_never_migrated: the old service's schema (players only): no claims, the
  lowest id keeps a wallet, and the check does not migrate the database.
- test_accounts_file: the first in file order keeps a wallet; hostile wallet and username
  text is printed cut and printable; a clean file exits 0; a broken file exits 1.
- test_plain_check_unchanged: `--check` alone never reads a database even when
  DATABASE_URL is set; `--check-wallets` without a usable database exits 1 without printing
  the password.
"""

import harness
import pgserver
from harness import check

W_SHARED = "AVKQt14kUsHQwX3ktixCqJDvmCkiCCT91C"
W_OTHER = "APNfwY4sPbwVN48217LvUAESVibygqWYwC"
W_THIRD = "AcawQGT8Ntbufpc67C5GjuU767PWWZkq2A"
W_BAD_CHECKSUM = "AK25iob33ob4rFbcfU4fXzrTiqf3pwYNQY"
B_SHARED = "bc1qcpydtxu7slwf60sr32yjjc2xf3rcazcttlac2g"
B_OTHER = "bc1q8swmu4u2l9fv8y684a9zdfg6ju23chplmna2fd"

EXIT_REFUSED = 4

POOL_SOURCE = r'''
return {
  name = "%(name)s",
  currency = "ADVC",
  wallet_pattern = %(check)s,
  request = function(wallet)
    return {url = m2p.env("TESTPOOL_URL", "http://127.0.0.1:9") .. "/" .. m2p.urlencode(wallet)}
  end,
  parse = function(response) return nil, "no pool here" end,
}
'''

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def pools(ctx, btc=True):
    scripts = {"testpool.lua": POOL_SOURCE % {"name": "testpool", "check": "m2p.advc_address"}}
    if btc:
        scripts["testbtc.lua"] = POOL_SOURCE % {"name": "testbtc", "check": "m2p.btc_address"}
    return ctx.pools_dir(scripts)


def player(pid, wallet, **wallets):
    p = {"player_id": pid, "username": "player%d" % pid, "wallet": wallet}
    if wallets:
        p["wallets"] = wallets
    return p


def wallet_lines(out):
    """The report's lines: everything after the scripts' `ok   ...` lines."""
    return [l for l in out.splitlines() if not l.startswith("ok   ")]


def check_report(ctx, args, settings, pools_dir, expected, status, what):
    rc, _, out, err = ctx.run_engine(args, settings, pools_dir=pools_dir)
    lines = wallet_lines(out)
    check(lines == expected, "%s: the report\n%s\nexpected\n%s\nstderr: %s"
          % (what, "\n".join(lines), "\n".join(expected), err))
    check(rc == status, "%s: exit status %s, expected %s; stderr: %s" % (what, rc, status, err))
    return out, err


def dup(pid, name, wallet, owner, pool):
    return ('  refused: player %d (%s) wallet "%s": wallet already belongs to player %d on %s'
            % (pid, name, wallet, owner, pool))


def invalid(pid, name, wallet, reason="bad base58check checksum"):
    return '  refused: player %d (%s) wallet "%s": invalid wallet: %s' % (pid, name, wallet,
                                                                         reason)


# ------------------------------------------------------------------------------ database


def test_database_report(ctx):
    gdb = pgserver.GameDb.create(pg(), "report")
    pgserver.migrate(ctx, gdb)
    gdb.add_players([player(1, W_SHARED, testbtc=B_SHARED),
                     player(2, W_SHARED, testbtc=B_SHARED.upper()),
                     player(3, W_BAD_CHECKSUM, testbtc=B_OTHER)])
    # not polled, so not looked at: an unverified and an inactive player naming the wallets
    gdb.add_players([player(4, W_BAD_CHECKSUM, testbtc=B_SHARED)], verified=False)
    gdb.add_players([player(5, W_SHARED)], active=False)
    pools_dir = pools(ctx)
    settings = {"DATABASE_URL": gdb.conninfo()}
    expected = [
        "wallets on testbtc: 3 accounts, 1 refused",
        dup(2, "player2", B_SHARED.upper(), 1, "testbtc"),
        "wallets on testpool: 3 accounts, 2 refused",
        dup(2, "player2", W_SHARED, 1, "testpool"),
        invalid(3, "player3", W_BAD_CHECKSUM),
        "wallets: 6 accounts on 2 pools (3 players from the database), 3 refused: "
        "1 invalid, 2 another player's",
    ]
    check_report(ctx, ["--check-wallets"], settings, pools_dir, expected, EXIT_REFUSED,
                 "before the engine ran")
    check(gdb.value("SELECT count(*) FROM m2p_wallet_claims") == "0",
          "--check-wallets wrote wallet claims")

    # the engine refuses exactly those (3 is invalid on testpool only: B_OTHER is its own)
    eng = ctx.start_engine([], pgserver.engine_settings(None, gdb, ENGINE_ID="check"),
                           pools_dir=pools_dir)
    want = {(2, "testbtc", "wallet already belongs to player 1 on testbtc"),
            (2, "testpool", "wallet already belongs to player 1 on testpool"),
            (3, "testpool", "invalid wallet: bad base58check checksum")}
    got = eng.wait_until(
        lambda ev: (lambda s: s if len(s) >= 3 else None)(
            {(e.get("player_id"), e.get("pool"), e.get("reason"))
             for e in ev if e["event"] == "wallet_refused"}), 30, "three wallet_refused")
    check(got == want, "the engine refused %s, the check listed %s" % (sorted(got),
                                                                     sorted(want)))
    harness.wait_until(lambda: gdb.value("SELECT count(*) FROM m2p_wallet_claims") == "3", 30,
                       "the engine's three claims")
    eng.expect_clean_exit(eng.stop())
    check_report(ctx, ["--check-wallets"], settings, pools_dir, expected, EXIT_REFUSED,
                 "after the engine claimed the wallets")


def test_database_claims(ctx):
    gdb = pgserver.GameDb.create(pg(), "claims")
    pgserver.migrate(ctx, gdb)
    gdb.add_players([player(7, W_SHARED), player(3, W_SHARED), player(8, W_THIRD),
                     player(2, W_OTHER), player(4, W_OTHER)])
    gdb.add_players([player(9, W_THIRD)], active=False)
    # 7 claimed W_SHARED before 3 existed; 9 (deactivated since) still holds W_THIRD; 4's
    # claim of W_OTHER is stale (made while its row named another wallet): the lowest id wins
    gdb.sql("INSERT INTO m2p_wallet_claims (pool_name, wallet, player_id, wallet_as_given)"
            " VALUES ('testpool', %s, 7, %s), ('testpool', %s, 9, %s),"
            " ('testpool', %s, 4, %s)"
            % (pgserver.lit(W_SHARED), pgserver.lit(W_SHARED), pgserver.lit(W_THIRD),
               pgserver.lit(W_THIRD), pgserver.lit(W_OTHER), pgserver.lit(W_BAD_CHECKSUM)))
    expected = [
        "wallets on testpool: 5 accounts, 3 refused",
        dup(3, "player3", W_SHARED, 7, "testpool"),
        dup(4, "player4", W_OTHER, 2, "testpool"),
        dup(8, "player8", W_THIRD, 9, "testpool"),
        "wallets: 5 accounts on 1 pool (5 players from the database), 3 refused: "
        "0 invalid, 3 another player's",
    ]
    check_report(ctx, ["--check-wallets"], {"DATABASE_URL": gdb.conninfo()},
                 pools(ctx, btc=False), expected, EXIT_REFUSED, "with claims")
    check(gdb.value("SELECT count(*) FROM m2p_wallet_claims") == "3", "claims were changed")

    # an owner who retyped its bech32 address in upper case keeps its claim
    gdb = pgserver.GameDb.create(pg(), "claimcase")
    pgserver.migrate(ctx, gdb)
    gdb.add_players([player(11, B_SHARED.upper()), player(10, B_SHARED)])
    gdb.sql("INSERT INTO m2p_wallet_claims (pool_name, wallet, player_id, wallet_as_given)"
            " VALUES ('testbtc', %s, 11, %s)" % (pgserver.lit(B_SHARED), pgserver.lit(B_SHARED)))
    btc_only = ctx.pools_dir({"testbtc.lua": POOL_SOURCE % {"name": "testbtc",
                                                           "check": "m2p.btc_address"}})
    check_report(ctx, ["--check-wallets"], {"DATABASE_URL": gdb.conninfo()}, btc_only, [
        "wallets on testbtc: 2 accounts, 1 refused",
        dup(10, "player10", B_SHARED, 11, "testbtc"),
        "wallets: 2 accounts on 1 pool (2 players from the database), 1 refused: "
        "0 invalid, 1 another player's",
    ], EXIT_REFUSED, "an owner who retyped the case")


def test_database_never_migrated(ctx):
    gdb = pgserver.GameDb.create(pg(), "oldschema")
    gdb.script("CREATE TABLE players (id SERIAL PRIMARY KEY, username VARCHAR(50) UNIQUE,"
               " email VARCHAR(100), wallet_address VARCHAR(100), verified BOOLEAN,"
               " active BOOLEAN);\n"
               "INSERT INTO players (id, username, wallet_address, verified, active) VALUES"
               " (5, 'five', %s, true, true), (6, 'six', %s, true, true);"
               % (pgserver.lit(W_SHARED), pgserver.lit(W_SHARED)))
    expected = [
        "wallets on testpool: 2 accounts, 1 refused",
        dup(6, "six", W_SHARED, 5, "testpool"),
        "wallets: 2 accounts on 1 pool (2 players from the database), 1 refused: "
        "0 invalid, 1 another player's",
    ]
    check_report(ctx, ["--check-wallets"], {"DATABASE_URL": gdb.conninfo()},
                 pools(ctx, btc=False), expected, EXIT_REFUSED, "the old service's schema")
    check(gdb.value("SELECT to_regclass('m2p_schema_migrations') IS NULL") == "t",
          "--check-wallets migrated the database")


# ------------------------------------------------------------------------------ a file


def test_accounts_file(ctx):
    hostile = "A" * 130 + '"\n{"event":"forged"}\u00e9'
    accounts = ctx.write_json("accounts.json", [
        player(9, W_SHARED, testbtc=B_SHARED.upper()),
        player(2, W_SHARED, testbtc=B_SHARED),
        player(5, W_BAD_CHECKSUM, testbtc=B_OTHER),
        {"player_id": 6, "username": "evil\x1b[2J" + "x" * 80, "wallet": hostile,
         "wallets": {"testbtc": B_OTHER}},
        # the same player again: its data replaces the first entry's, in the first's place
        player(9, W_SHARED, testbtc=B_SHARED.upper()),
    ])
    pools_dir = pools(ctx)
    expected = [
        "wallets on testbtc: 4 accounts, 2 refused",
        dup(2, "player2", B_SHARED, 9, "testbtc"),
        dup(6, "evil?[2J" + "x" * 56 + "...", B_OTHER, 5, "testbtc"),
        "wallets on testpool: 4 accounts, 3 refused",
        dup(2, "player2", W_SHARED, 9, "testpool"),
        invalid(5, "player5", W_BAD_CHECKSUM),
    ]
    rc, _, out, err = ctx.run_engine(["--check", "--accounts", accounts], {},
                                     pools_dir=pools_dir)
    lines = wallet_lines(out)
    check(rc == EXIT_REFUSED, "exit status %s: %s" % (rc, err))
    check(lines[:6] == expected, "the report\n%s\nexpected first\n%s"
          % ("\n".join(lines), "\n".join(expected)))
    check(len(lines) == 8 and lines[6].startswith(
        '  refused: player 6 (evil?[2J' + "x" * 56 + '...) wallet "' + "A" * 100 + '...": '
        "invalid wallet: "), "the hostile wallet's line: %r" % lines[6:7])
    check(lines[7] == "wallets: 8 accounts on 2 pools (4 players from %s), 5 refused: "
          "2 invalid, 3 another player's" % accounts, "the summary: %r" % lines[7:])
    check("forged" not in out and "\x1b" not in out, "hostile text reached the output")

    clean = ctx.write_json("clean.json", [player(1, W_SHARED), player(2, W_OTHER)])
    only_pool = ctx.pools_dir({"testpool.lua": POOL_SOURCE % {"name": "testpool",
                                                             "check": "m2p.advc_address"}})
    check_report(ctx, ["--check", "--accounts", clean], {}, only_pool, [
        "wallets on testpool: 2 accounts, 0 refused",
        "wallets: 2 accounts on 1 pool (2 players from %s), none refused" % clean,
    ], 0, "a clean file")

    broken = ctx.write_json("broken.json", [{"player_id": "x"}])
    rc, _, out, err = ctx.run_engine(["--check", "--accounts", broken], {},
                                     pools_dir=only_pool)
    check(rc == 1 and "entry 0: player_id must be a positive integer" in err,
          "a broken file: status %s, stderr %r" % (rc, err))


def test_plain_check_unchanged(ctx):
    pools_dir = pools(ctx)
    dead = "postgresql://m2p:s3cretpw@127.0.0.1:1/game"
    rc, _, out, err = ctx.run_engine(["--check"], {"DATABASE_URL": dead}, pools_dir=pools_dir)
    check(rc == 0 and wallet_lines(out) == [] and err == "",
          "--check with DATABASE_URL set: status %s, out %r, err %r" % (rc, out, err))
    rc, _, out, err = ctx.run_engine(["--check-wallets"], {"DATABASE_URL": dead},
                                     pools_dir=pools_dir)
    check(rc == 1 and "cannot connect to the database" in err,
          "--check-wallets, database down: status %s, err %r" % (rc, err))
    check("s3cretpw" not in out + err, "the password was printed: %r" % (out + err))
    rc, _, out, err = ctx.run_engine(["--check-wallets"], {}, pools_dir=pools_dir)
    check(rc == 1 and "DATABASE_URL is not set" in err,
          "--check-wallets without DATABASE_URL: status %s, err %r" % (rc, err))


harness.main(globals())
