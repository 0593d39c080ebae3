"""Issue 8: which wallet belongs to whom, and refusals said once (a real PostgreSQL).

Two small pools on a loopback server the test controls (GET /<kind>/<wallet> ->
{"wallet", "paid"}): `testpool` checks ADVC addresses (base58check), `testbtc` Bitcoin ones
(bech32 case-insensitive: its canonical form is lower case). Each check below was a lost or
doubled award, or a log line per poll, before the change:

- A player changes wallet and the new wallet's cumulative counter lands on values the old
  wallet was paid at: every ADVC is still awarded (award keys carry the wallet).
- Two players with the same wallet, or one bech32 address in upper and lower case: paid once,
  to the first; the other is refused (`wallet_refused`, once), never polled, and shown in
  polling_cycle_complete. When the owner moves to another wallet, the other player gets it.
- An invalid wallet is refused once, not per poll (again after a change of its row), and
  never reaches the pool.
- The first owner stays the owner across a restart and with two engines sharing the
  database, even when the other player's id is lower.
- Without a database (--accounts) the first in file order keeps a wallet, and a reload of
  the scripts re-checks refused wallets.
"""

import signal
import time
from decimal import Decimal

import harness
import pgserver
from harness import check
from pgserver import numeric_text

# Checksum-valid test addresses (/tmp/m2p-wallets-done, harness.advc_wallet/btc_wallet).
W_SHARED = "AVKQt14kUsHQwX3ktixCqJDvmCkiCCT91C"
W_OTHER = "APNfwY4sPbwVN48217LvUAESVibygqWYwC"
W_OLD = "AcawQGT8Ntbufpc67C5GjuU767PWWZkq2A"
W_NEW = "AXwKLA16xbLWu7MfQfHwf9oaV9CxEHCzTp"
W_BAD_CHECKSUM = "AK25iob33ob4rFbcfU4fXzrTiqf3pwYNQY"
B_SHARED = "bc1qcpydtxu7slwf60sr32yjjc2xf3rcazcttlac2g"
B_OTHER = "bc1q8swmu4u2l9fv8y684a9zdfg6ju23chplmna2fd"

POOL_SOURCE = r'''
-- A test pool: GET <TESTPOOL_URL>/%(kind)s/<wallet> -> {"wallet": ..., "paid": "..."}
return {
  name = "%(name)s",
  currency = "ADVC",
  wallet_pattern = %(check)s,
  request = function(wallet)
    return {url = m2p.env("TESTPOOL_URL", "http://127.0.0.1:9") .. "/%(kind)s/"
                  .. m2p.urlencode(wallet)}
  end,
  parse = function(response)
    local j = response.json
    if type(j) ~= "table" then return nil, "not a JSON object" end
    if type(j.wallet) ~= "string" or j.wallet:lower() ~= response.wallet:lower() then
      return nil, "another wallet's answer"
    end
    local paid, err = m2p.num(j.paid)
    if paid == nil then return nil, "paid: " .. tostring(err) end
    return {paid = paid}
  end,
  limits = {concurrency = 4},
}
'''


def pool_scripts():
    return {
        "testpool.lua": POOL_SOURCE % {"name": "testpool", "kind": "advc",
                                       "check": "m2p.advc_address"},
        "testbtc.lua": POOL_SOURCE % {"name": "testbtc", "kind": "btc",
                                      "check": "m2p.btc_address"},
    }


PaidServer = harness.PaidServer


_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def player(pid, wallet, **wallets):
    p = {"player_id": pid, "username": "player%d" % pid, "wallet": wallet}
    if wallets:
        p["wallets"] = wallets
    return p


def totals(**advc):
    """{player_id: (advc, ap)} as text, from p<ID>=ADVC keywords."""
    return {int(k[1:]): (numeric_text(Decimal(v)), numeric_text(Decimal(v) * 100))
            for k, v in advc.items()}


def refusals(eng, player_id, pool, since=0):
    return [e for e in eng.named("wallet_refused", since)
            if e.get("player_id") == player_id and e.get("pool") == pool]


def polls_of(engines, player_id, pool):
    return sum(1 for eng in engines for e in eng.named("pool_poll_success")
               if e.get("player_id") == player_id and e.get("pool") == pool)


def wait_served(server, wallet, value, n=2, timeout=30):
    harness.wait_until(lambda: server.times_served(wallet, value) >= n, timeout,
                       "%d polls of %s at %s" % (n, wallet, value))


with_server = harness.with_paid_server


def start(ctx, gdb, server, engine_id, **extra):
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url, ENGINE_ID=engine_id,
                                        **extra)
    return ctx.start_engine([], settings, pools_dir=ctx.test_pools)


def prepare(ctx, name):
    gdb = pgserver.GameDb.create(pg(), name)
    pgserver.migrate(ctx, gdb)
    ctx.test_pools = ctx.pools_dir(pool_scripts())
    return gdb


# ------------------------------------------------------------------------- wallet change


@with_server
def test_wallet_change_awards_every_payout(ctx, server):
    gdb = prepare(ctx, "change")
    server.set(W_OLD, "0")
    server.set(W_NEW, "0")
    gdb.add_players([player(1, W_OLD)])
    eng = start(ctx, gdb, server, "change")
    pgserver.wait_polls([eng], None, [(1, "testpool")], 2, "the baseline")
    for value in ("2", "4"):
        server.set(W_OLD, value)
        wait_served(server, W_OLD, value)
    pgserver.wait_totals(gdb, totals(p1=4), "the old wallet's payouts", engines=[eng])

    # the new wallet's counter passes 2 and 4 again: values the old wallet was paid at
    mark = pgserver.marks([eng])
    gdb.sql("UPDATE players SET wallet_address = %s WHERE id = 1" % pgserver.lit(W_NEW))
    harness.wait_until(lambda: server.times_served(W_NEW, "0") >= 2, 30,
                       "two polls of the new wallet")
    check(eng.named("account_rebaselined", mark[0]), "no account_rebaselined logged")
    for value in ("2", "4", "6"):
        server.set(W_NEW, value)
        wait_served(server, W_NEW, value)
    pgserver.wait_totals(gdb, totals(p1=10), "every ADVC of both wallets (4 + 6)",
                         engines=[eng])
    n = gdb.value("SELECT count(*) FROM mining_events WHERE player_id = 1")
    check(n == "5", "5 awards expected (2 on the old wallet, 3 on the new), got %s" % n)
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    eng.expect_clean_exit(eng.stop())


# --------------------------------------------------------------- one wallet, one player


@with_server
def test_one_wallet_one_player(ctx, server):
    gdb = prepare(ctx, "owners")
    server.set(W_SHARED, "10")
    server.set(B_SHARED, "1")
    server.set(B_OTHER, "1")
    server.set(W_OTHER, "0")
    players = [player(1, W_SHARED, testbtc=B_SHARED),
               player(2, W_SHARED, testbtc=B_SHARED.upper()),
               player(3, W_BAD_CHECKSUM, testbtc=B_OTHER)]
    gdb.add_players(players)
    eng = start(ctx, gdb, server, "owners")
    owners = [(1, "testpool"), (1, "testbtc"), (3, "testbtc")]
    pgserver.wait_polls([eng], None, owners, 2, "the baselines")

    expected_reasons = {
        (2, "testpool"): "wallet already belongs to player 1 on testpool",
        (2, "testbtc"): "wallet already belongs to player 1 on testbtc",
    }
    for (pid, pool), reason in expected_reasons.items():
        got = [e.get("reason") for e in refusals(eng, pid, pool)]
        check(got == [reason], "player %d on %s: wallet_refused reasons %s, expected [%r]"
              % (pid, pool, got, reason))
    bad = refusals(eng, 3, "testpool")
    check(len(bad) == 1 and bad[0].get("reason", "").startswith("invalid wallet")
          and bad[0].get("wallet") == W_BAD_CHECKSUM,
          "the invalid wallet's refusal: %s" % [e["_raw"] for e in bad])

    server.set(W_SHARED, "15")
    server.set(B_SHARED, "4")
    server.set(B_OTHER, "2")
    pgserver.wait_totals(gdb, totals(p1=8, p2=0, p3=1), "payouts to the first owners only",
                         engines=[eng])

    # several more polls: every refusal is still said once, and nothing refused was polled
    mark = pgserver.marks([eng])
    pgserver.wait_polls([eng], mark, owners, 5, "five more polls of every owner")
    for pid, pool in list(expected_reasons) + [(3, "testpool")]:
        n = len(refusals(eng, pid, pool))
        check(n == 1, "player %d on %s: %d wallet_refused lines over many polls, expected 1"
              % (pid, pool, n))
        check(polls_of([eng], pid, pool) == 0, "player %d was polled on %s" % (pid, pool))
    check(server.requests_for(W_BAD_CHECKSUM) == 0,
          "the invalid wallet reached the pool %d times" % server.requests_for(W_BAD_CHECKSUM))
    check(server.requests_for(B_SHARED.upper()) == 0, "the upper-case address was polled")
    metrics = harness.last_metrics(eng)
    check(metrics and metrics.get("wallets_refused") == 3,
          "polling_cycle_complete wallets_refused: %s" % (metrics or {}).get("wallets_refused"))
    per_pool = {k: v.get("wallets_refused") for k, v in metrics["pools"].items()}
    check(per_pool == {"testpool": 2, "testbtc": 1}, "wallets_refused per pool: %s" % per_pool)

    # a change of the players row: its refusal is said again (once)
    mark = pgserver.marks([eng])
    gdb.sql("UPDATE players SET username = 'player3b' WHERE id = 3")
    eng.wait_for(lambda e: e["event"] == "wallet_refused" and e.get("player_id") == 3,
                 30, "the refusal after the row changed", since=mark[0])
    pgserver.wait_polls([eng], pgserver.marks([eng]), owners, 3, "three more polls")
    check(len(refusals(eng, 3, "testpool", mark[0])) == 1,
          "after one row change: %d refusals" % len(refusals(eng, 3, "testpool", mark[0])))

    # the owner moves to another wallet: the other player gets the shared one
    mark = pgserver.marks([eng])
    gdb.sql("UPDATE players SET wallet_address = %s WHERE id = 1" % pgserver.lit(W_OTHER))
    eng.wait_for(lambda e: e["event"] == "wallet_accepted" and e.get("player_id") == 2
                 and e.get("pool") == "testpool", 30, "player 2 to get the freed wallet",
                 since=mark[0])
    pgserver.wait_polls([eng], mark, [(2, "testpool"), (1, "testpool")], 2,
                        "the polls of the new owner and of the moved player")
    server.set(W_SHARED, "20")
    server.set(W_OTHER, "1")
    pgserver.wait_totals(gdb, totals(p1=9, p2=5, p3=1), "payouts after the move",
                         engines=[eng])
    claims = {(pool, w): int(pid) for pool, w, pid in gdb.sql(
        "SELECT pool_name, wallet, player_id FROM m2p_wallet_claims")}
    check(claims == {("testpool", W_SHARED): 2, ("testpool", W_OTHER): 1,
                     ("testbtc", B_SHARED): 1, ("testbtc", B_OTHER): 3},
          "m2p_wallet_claims: %s" % claims)
    check(len(refusals(eng, 2, "testbtc")) == 1, "player 2's testbtc refusal was said again")
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    eng.expect_clean_exit(eng.stop())


@with_server
def test_first_owner_survives_restart_and_engines(ctx, server):
    gdb = prepare(ctx, "firstowner")
    server.set(W_SHARED, "7")
    server.set(W_OTHER, "0")
    gdb.add_players([player(7, W_SHARED)])
    eng = start(ctx, gdb, server, "one")
    pgserver.wait_polls([eng], None, [(7, "testpool")], 2, "the owner's baseline")
    eng.expect_clean_exit(eng.stop())

    # a player with a LOWER id names the same wallet; two engines share the accounts
    gdb.add_players([player(3, W_SHARED), player(4, W_OTHER)])
    engines = [start(ctx, gdb, server, "a"), start(ctx, gdb, server, "b")]
    pgserver.wait_polls(engines, None, [(7, "testpool"), (4, "testpool")], 2,
                        "polls by the two engines")
    harness.wait_until(lambda: any(refusals(e, 3, "testpool") for e in engines), 30,
                       "the refusal of player 3")
    server.set(W_SHARED, "12")
    server.set(W_OTHER, "1")
    pgserver.wait_totals(gdb, totals(p7=5, p3=0, p4=1), "the payout to the first owner",
                         engines=engines)
    pgserver.wait_polls(engines, pgserver.marks(engines), [(7, "testpool")], 3, "more polls")
    check(polls_of(engines, 3, "testpool") == 0, "player 3 was polled")
    reasons = {e.get("reason") for eng in engines for e in refusals(eng, 3, "testpool")}
    check(reasons == {"wallet already belongs to player 7 on testpool"},
          "player 3's refusals: %s" % reasons)
    check(gdb.totals()[3] == totals(p3=0)[3], "player 3 was paid: %s" % (gdb.totals()[3],))
    for eng in engines:
        eng.expect_clean_exit(eng.stop())


# ---------------------------------------------------------------- without a database


@with_server
def test_accounts_file_first_in_file_order_and_reload(ctx, server):
    server.set(W_SHARED, "1")
    server.set(W_OTHER, "1")
    # player 9 comes first in the file: it keeps the wallet although player 2's id is lower;
    # player 6's wallet is hostile text: logged cut and printable, once
    hostile = "A" * 130 + '"\n{"event":"forged"}\u00e9'
    accounts = ctx.write_json("accounts.json", [player(9, W_SHARED), player(2, W_SHARED),
                                                player(5, W_OTHER), player(6, hostile)])
    pools_dir, scripts_dir = harness.live_dirs(ctx, pools=[])
    source = POOL_SOURCE % {"name": "testpool", "kind": "advc", "check": '"^Z"'}
    path = pools_dir + "/testpool.lua"
    harness.save_file(path, source)
    settings = {"TESTPOOL_URL": server.url, "POLL_INTERVAL_SECONDS": 1, "LOG_LEVEL": "debug"}
    eng = harness.start_engine_dirs(ctx, ["--dry-run", "--accounts", accounts], settings,
                                    pools_dir, scripts_dir)
    eng.wait_until(lambda ev: len([e for e in ev if e["event"] == "polling_cycle_complete"]) >= 4,
                   30, "four polling cycles")
    for pid in (9, 2, 5, 6):
        n = len(refusals(eng, pid, "testpool"))
        check(n == 1, "player %d: %d wallet_refused lines over four cycles" % (pid, n))
    check(refusals(eng, 6, "testpool")[0].get("wallet") == "A" * 100 + "...",
          "the hostile wallet as logged: %r" % refusals(eng, 6, "testpool")[0].get("wallet"))
    check(not eng.named("forged"), "a wallet forged a log line")
    check(server.requests_for(W_SHARED) + server.requests_for(W_OTHER) == 0,
          "a refused wallet reached the pool")
    schedule = eng.named("pool_schedule")
    check(schedule and schedule[0].get("wallets_refused") == 4,
          "pool_schedule at start: %s" % (schedule[0]["_raw"] if schedule else None))

    # the reloaded script accepts the wallets: re-checked, the first in file order keeps it
    mark = eng.count()
    harness.save_file(path, harness.replaced(source, 'wallet_pattern = "^Z"',
                                             "wallet_pattern = m2p.advc_address"))
    eng.wait_until(lambda ev: {e.get("player_id") for e in ev[mark:]
                               if e["event"] == "pool_poll_success"} >= {9, 5}, 30,
                   "polls after the reload")
    accepted = {e.get("player_id") for e in eng.named("wallet_accepted", mark)}
    check(accepted == {9, 5}, "wallet_accepted after the reload: %s" % sorted(accepted))
    dup = [e.get("reason") for e in refusals(eng, 2, "testpool", mark)]
    check(dup == ["wallet already belongs to player 9 on testpool"],
          "player 2 after the reload: %s" % dup)
    eng.wait_until(lambda ev: len([e for e in ev[mark:] if e["event"] == "pool_poll_success"
                                   and e.get("player_id") == 9]) >= 3, 30, "more polls")
    check(polls_of([eng], 2, "testpool") == 0, "player 2 was polled")
    check(len(refusals(eng, 2, "testpool", mark)) == 1, "player 2's refusal was said again")
    check(not refusals(eng, 6, "testpool", mark),
          "the hostile wallet's refusal (same reason) was said again after the reload")
    eng.expect_clean_exit(eng.stop())


@with_server
def test_claim_taken_over_while_the_owners_engine_is_stalled(ctx, server):
    """Two engines. The owner's row goes W -> another wallet -> W while its engine is stopped
    (a stand-in for a slow engine or a LISTEN outage): the other engine's re-check takes the
    claim on W meanwhile. The stalled engine must not go on paying its player for W: the claim
    is checked again when a poll is stored, so one payout to W is paid to one player only."""
    gdb = prepare(ctx, "stalled")
    W = harness.advc_wallet(900)
    OTHER = harness.advc_wallet(901)
    server.set(W, "10")
    server.set(OTHER, "0")
    own = {i: harness.advc_wallet(i) for i in range(1, 9)}
    for w in own.values():
        server.set(w, "0")
    gdb.add_players([player(i, own[i]) for i in own])
    engines = [start(ctx, gdb, server, "a"), start(ctx, gdb, server, "b")]
    pgserver.wait_polls(engines, None, [(i, "testpool") for i in own], 2, "every player polled")
    # Which engine polls whom: each account is owned by exactly one of them.
    mark0 = pgserver.marks(engines)
    pgserver.wait_polls(engines, mark0, [(i, "testpool") for i in own], 2, "every player again")
    where = {}
    for n, eng in enumerate(engines):
        for e in eng.named("pool_poll_success", mark0[n]):
            where.setdefault(e.get("player_id"), set()).add(n)
    on_a = [i for i in own if where.get(i) == {0}]
    on_b = [i for i in own if where.get(i) == {1}]
    check(on_a and on_b, "players split over the engines: %s" % where)
    pa, pb = on_a[0], on_b[0]
    # pa names W first and is polled with it; then pb names W: refused.
    gdb.sql("UPDATE players SET wallet_address = %s WHERE id = %d" % (pgserver.lit(W), pa))
    pgserver.wait_polls(engines, pgserver.marks(engines), [(pa, "testpool")], 2, "owner on W")
    gdb.sql("UPDATE players SET wallet_address = %s WHERE id = %d" % (pgserver.lit(W), pb))
    harness.wait_until(lambda: refusals(engines[1], pb, "testpool"), 30, "pb refused")
    mark = pgserver.marks(engines)
    engines[0].send_signal(signal.SIGSTOP)
    try:
        gdb.sql("UPDATE players SET wallet_address = %s WHERE id = %d"
                % (pgserver.lit(OTHER), pa))
        engines[1].wait_for(lambda e: e["event"] == "wallet_accepted"
                            and e.get("player_id") == pb, 60, "pb to take over W",
                            since=mark[1])
        # pb's baseline on W (10) is stored before anything moves.
        pgserver.wait_polls(engines[1:], pgserver.marks(engines[1:]), [(pb, "testpool")], 2,
                            "pb polled on W")
        gdb.sql("UPDATE players SET wallet_address = %s WHERE id = %d" % (pgserver.lit(W), pa))
    finally:
        engines[0].send_signal(signal.SIGCONT)
    # The payout: both accounts are polled with W's new figure at least twice.
    server.set(W, "15")
    harness.wait_until(lambda: server.times_served(W, "15") >= 4, 60, "W polled at 15")
    pgserver.wait_polls(engines, pgserver.marks(engines), [(pb, "testpool")], 2, "pb again")
    t = gdb.totals()
    paid = [p for p in (pa, pb) if Decimal(t[p][0]) > 0]
    check(paid == [pb] and t[pb] == totals(p1=5)[1],
          "the 5 ADVC payout to W was paid to %s (totals %s); only the claim holder, player %d,"
          " may be paid" % (paid, t, pb))
    for eng in engines:
        eng.stop()


harness.main(globals())
