"""Issue 8: awards that look wrong are held for review, not paid.

The pool is a tiny Lua script in a temporary --pools directory that asks a Python HTTP server
this test controls, so every account's cumulative `paid` is exactly what the test sets.

- test_ceiling_held_then_released_once (PostgreSQL): a payout above MAX_AWARD_ADVC is held:
  not in the totals, no mining_events row, no outbox row, `award_held` logged, and the
  account's state moves past it (later polls do not decide it again; the next payout is
  counted from the held one). `--release-held ID` pays it once (totals, mining_events,
  outbox); a second release and a reject of the released one change nothing and exit 3;
  a second held award rejected never reaches the totals and cannot be released afterwards;
  an unknown id is a clear error. The engine keeps running throughout: the release moves the
  account's version on, and the engine's next award for it is still paid exactly once. Last,
  m2p_commit_poll called directly shows that a held award's key stays reserved: neither a
  normal award under a rejected award's key nor a held one under a released award's key is
  stored.
- test_factor_rule_in_memory (--dry-run --accounts): after five awards, an award more than
  MAX_AWARD_FACTOR times the largest is held, and only then; a poll above the ceiling is held
  in the memory store as well.
- test_limits_follow_sighup: the default ceiling applies when nothing is set, and a new
  MAX_AWARD_ADVC applies after SIGHUP.
- test_factor_history_comes_from_the_database: the award history that the factor rule
  compares against is the database's (m2p_accounts.award_count, largest_award), so a
  restarted engine holds the same award a running one would.
"""

import json
import os
import signal
from decimal import Decimal

import harness
import pgserver
from harness import check
from pgserver import numeric_text

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


TEST_POOL = harness.PAID_POOL_SCRIPT


PaidServer = harness.PaidServer


with_server = harness.with_paid_server


def step(server, wallet, value, polls=3):
    """Sets `wallet`'s paid counter and waits until it was served `polls` times: an account
    is never polled twice at once, so every poll but the last has been committed."""
    server.set(wallet, value)
    harness.wait_until(lambda: server.times_served(wallet, value) >= polls, 30,
                       "%d polls of %s at %s" % (polls, wallet, value))


def totals(**advc):
    """{player_id: (advc text, ap text)} with AP = 100 x ADVC; keys are p1, p2, ..."""
    return {int(k[1:]): (numeric_text(Decimal(v)), numeric_text(Decimal(v) * 100))
            for k, v in advc.items()}


LIMITS = {"MAX_AWARD_ADVC": 1000, "MAX_AWARD_FACTOR": 100}


# ====================================================================== PostgreSQL


def held_rows(gdb):
    """[(id, player_id, key, advc, ap, status, hold_reason, mining_event_id)] by id."""
    return gdb.sql("SELECT id, player_id, idempotency_key, advc_amount::text,"
                   " ap_awarded::text, status, hold_reason, mining_event_id"
                   " FROM m2p_held_awards ORDER BY id")


def counts(gdb, player):
    return (int(gdb.value("SELECT count(*) FROM mining_events WHERE player_id = %d" % player)),
            int(gdb.value("SELECT count(*) FROM m2p_outbox o JOIN mining_events e"
                          " ON e.id = o.mining_event_id WHERE e.player_id = %d" % player)))


def held_cli(ctx, gdb, *args):
    rc, _, out, err = ctx.run_engine(list(args), {"DATABASE_URL": gdb.conninfo()},
                                     scripts=False)
    return rc, out, err


@with_server
def test_ceiling_held_then_released_once(ctx, server):
    gdb = pgserver.GameDb.create(pg(), "held_ceiling")
    players = harness.make_players(2, zpool=False)
    w1, w2 = players[0]["wallet"], players[1]["wallet"]
    server.set(w1, "10")
    server.set(w2, "10")
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    pools = ctx.pools_dir({"testpool.lua": TEST_POOL})
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url, ENGINE_ID="held",
                                        **LIMITS)
    eng = ctx.start_engine([], settings, pools_dir=pools)
    pgserver.wait_polls([eng], None, [(1, "testpool"), (2, "testpool")], 2, "the baselines")

    # ---- 1500 ADVC in one poll is above MAX_AWARD_ADVC: held; player 2's 2 ADVC is paid
    server.set(w2, "12")
    step(server, w1, "1510")
    pgserver.wait_totals(gdb, totals(p1=0, p2=2), "player 2's normal award", engines=[eng])
    held = eng.wait_for(lambda e: e["event"] == "award_held", 30, "award_held")
    check(held["level"] == "warning" and held["player_id"] == 1 and held["pool"] == "testpool"
          and held["why"] == "MAX_AWARD_ADVC" and held.get("key")
          and harness.decimal_field(held, "advc") == Decimal(1500),
          "award_held should name pool, player_id, key, advc 1500 and why: %s" % held["_raw"])
    check(not [e for e in eng.named("mining_reward_detected") if e["player_id"] == 1],
          "the held award was logged as mining_reward_detected")
    rows = held_rows(gdb)
    check(len(rows) == 1 and rows[0][1:6] == ("1", held["key"], "1500.00000000",
                                               "150000.00000000", "held")
          and "MAX_AWARD_ADVC" in rows[0][6] and rows[0][7] is None,
          "m2p_held_awards should hold the award, status held: %s" % rows)
    held_id = rows[0][0]
    check(counts(gdb, 1) == (0, 0), "a held award has mining_events/outbox rows: %s"
          % (counts(gdb, 1),))

    # ---- the state moved past it: more polls at 1510 decide nothing again, and the next
    # payout counts from 1510 (5 ADVC), not from 10
    step(server, w1, "1510", polls=6)
    step(server, w1, "1515")
    pgserver.wait_totals(gdb, totals(p1=5, p2=2), "the payout after the held one",
                         engines=[eng])
    check(len(eng.named("award_held")) == 1 and len(held_rows(gdb)) == 1,
          "the held payout was decided again: %s" % [e["_raw"] for e in eng.named("award_held")])

    rc, out, err = held_cli(ctx, gdb, "--list-held")
    check(rc == 0 and out.startswith("id\t") and ("\n%s\t1\t" % held_id) in out
          and "1500.00000000" in out and "MAX_AWARD_ADVC" in out,
          "--list-held (status %s) should list the held award: %r %r" % (rc, out, err))

    # ---- release: totals, mining_events, outbox, once
    rc, out, err = held_cli(ctx, gdb, "--release-held", held_id)
    check(rc == 0 and "released" in out and "1500.00000000" in out,
          "--release-held exited %s: %r %r" % (rc, out, err))
    check('"held_award_released"' in err, "no held_award_released log record: %r" % err)
    check(gdb.totals()[1] == totals(p1=1505)[1], "after the release player 1 has %s"
          % (gdb.totals()[1],))
    check(counts(gdb, 1) == (2, 2), "after the release player 1 has %s events/outbox rows"
          % (counts(gdb, 1),))
    event = gdb.sql("SELECT id, advc_amount::text, ap_awarded::text, previous_paid::text,"
                    " current_paid::text FROM mining_events WHERE idempotency_key = '%s'"
                    % held["key"].replace("'", "''"))
    check(len(event) == 1 and event[0][1:] == ("1500.00000000", "150000.00000000",
                                               "10.00000000", "1510.00000000"),
          "the released award's mining_events row: %s" % event)
    rows = held_rows(gdb)
    check(rows[0][5] == "released" and rows[0][7] == event[0][0],
          "the held row should be released and point at its event: %s" % rows)

    for args in (("--release-held", held_id), ("--reject-held", held_id)):
        rc, out, err = held_cli(ctx, gdb, *args)
        check(rc == 3 and "already released" in err,
              "%s a second time: status %s, %r %r" % (" ".join(args), rc, out, err))
        check(gdb.totals()[1] == totals(p1=1505)[1] and counts(gdb, 1) == (2, 2)
              and held_rows(gdb)[0][5] == "released",
              "%s a second time changed something" % " ".join(args))
    rc, out, err = held_cli(ctx, gdb, "--list-held")
    check(rc == 0 and out.strip() == "no held awards", "--list-held: %r %r" % (out, err))

    # ---- the engine still runs: the release moved the account's version on, and its next
    # award is paid exactly once
    step(server, w1, "1517")
    pgserver.wait_totals(gdb, totals(p1=1507), "the award after the release", engines=[eng])

    # ---- another held award, rejected: never in the totals, cannot be released later
    step(server, w1, "3517")
    eng.wait_until(lambda evs: len([e for e in evs if e["event"] == "award_held"]) == 2, 30,
                   "the second award_held")
    rows = held_rows(gdb)
    check(len(rows) == 2 and rows[1][3] == "2000.00000000" and rows[1][5] == "held",
          "the second held award: %s" % rows)
    second = rows[1][0]
    rc, out, err = held_cli(ctx, gdb, "--reject-held", second)
    check(rc == 0 and "rejected" in out and '"held_award_rejected"' in err,
          "--reject-held exited %s: %r %r" % (rc, out, err))
    for args in (("--release-held", second), ("--reject-held", second)):
        rc, out, err = held_cli(ctx, gdb, *args)
        check(rc == 3 and "already rejected" in err,
              "%s after the reject: status %s, %r %r" % (" ".join(args), rc, out, err))
    step(server, w1, "3517", polls=4)
    check(gdb.totals()[1] == totals(p1=1507)[1] and counts(gdb, 1) == (3, 3),
          "the rejected award reached player 1: %s, %s" % (gdb.totals()[1], counts(gdb, 1)))
    check(held_rows(gdb)[1][5] == "rejected", "status: %s" % held_rows(gdb))

    # ---- unknown and malformed ids
    rc, out, err = held_cli(ctx, gdb, "--release-held", "987654")
    check(rc == 1 and "no held award 987654" in err, "unknown id: %s %r %r" % (rc, out, err))
    rc, out, err = held_cli(ctx, gdb, "--reject-held", "1; DROP TABLE players")
    check(rc == 2 and "positive integer" in err, "malformed id: %s %r %r" % (rc, out, err))

    check(gdb.totals()[2] == totals(p2=2)[2], "player 2 was affected: %s" % (gdb.totals(),))
    rc = eng.stop()
    eng.expect_clean_exit(rc)

    # ---- the keys stay reserved, whatever the engine sends: a normal award under the
    # rejected award's key and a held one under the released award's key are both skipped;
    # only the award with a fresh key is paid
    rejected_key, released_key = held_rows(gdb)[1][2], held["key"]

    def award(key, advc, held_why=None):
        a = {"key": key, "advc": advc, "ap": str(Decimal(advc) * 100), "reason": "direct",
             "previous_paid": None, "current_paid": None}
        if held_why:
            a["held"] = held_why
        return a

    awards = [award(rejected_key, "3.00000000"), award(released_key, "4.00000000", "test"),
              award("direct:fresh", "1.00000000")]
    version = gdb.value("SELECT m2p_commit_poll(1, 'testpool', wallet, version, state,"
                        " observation_hash, NULL, %s::jsonb, 'test') FROM m2p_accounts"
                        " WHERE player_id = 1" % pgserver.lit(json.dumps(awards)))
    check(version is not None, "the direct commit conflicted")
    check(gdb.totals()[1] == totals(p1=1508)[1] and counts(gdb, 1) == (4, 4)
          and len(held_rows(gdb)) == 2,
          "a reserved key was awarded again: %s, %s, %s" % (gdb.totals()[1], counts(gdb, 1),
                                                            held_rows(gdb)))
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))


@with_server
def test_factor_history_comes_from_the_database(ctx, server):
    gdb = pgserver.GameDb.create(pg(), "held_factor")
    players = harness.make_players(1, zpool=False)
    w1 = players[0]["wallet"]
    server.set(w1, "10")
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    pools = ctx.pools_dir({"testpool.lua": TEST_POOL})
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url, ENGINE_ID="f1",
                                        **LIMITS)
    eng = ctx.start_engine([], settings, pools_dir=pools)
    pgserver.wait_polls([eng], None, [(1, "testpool")], 2, "the baseline")
    for paid in ("11", "12", "13", "14", "15.5"):  # five awards, the largest 1.5
        step(server, w1, paid)
    pgserver.wait_totals(gdb, totals(p1="5.5"), "five awards", engines=[eng])
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    history = gdb.sql("SELECT award_count, largest_award::text FROM m2p_accounts")
    check(history == [("5", "1.50000000")], "m2p_accounts award history: %s" % history)

    # A new engine knows the history only from the database: 151 > 100 x 1.5 is held.
    server.set(w1, "166.5")
    eng = ctx.start_engine([], dict(settings, ENGINE_ID="f2"), pools_dir=pools)
    held = eng.wait_for(lambda e: e["event"] == "award_held", 30, "award_held")
    check(held["why"] == "MAX_AWARD_FACTOR" and harness.decimal_field(held, "advc") == 151,
          "expected the factor rule: %s" % held["_raw"])
    step(server, w1, "166.5")
    check(gdb.totals()[1] == totals(p1="5.5")[1], "the held award was paid: %s" % (gdb.totals(),))
    rows = held_rows(gdb)
    check(len(rows) == 1 and "MAX_AWARD_FACTOR" in rows[0][6] and rows[0][5] == "held",
          "m2p_held_awards: %s" % rows)
    # 150 = exactly 100 x 1.5 is not above the factor: paid
    step(server, w1, "316.5")
    pgserver.wait_totals(gdb, totals(p1="155.5"), "an award at the factor", engines=[eng])
    history = gdb.sql("SELECT award_count, largest_award::text FROM m2p_accounts")
    check(history == [("6", "150.00000000")], "the history after a paid award: %s" % history)
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


# ====================================================================== memory store


@with_server
def test_factor_rule_in_memory(ctx, server):
    players = harness.make_players(3, zpool=False)
    w1, w2, w3 = (p["wallet"] for p in players)
    for w in (w1, w2, w3):
        server.set(w, "10")
    pools = ctx.pools_dir({"testpool.lua": TEST_POOL})
    settings = dict(LIMITS, TESTPOOL_URL=server.url, POLL_INTERVAL_SECONDS=1)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.write_json("a.json", players)],
                           settings, pools_dir=pools)
    for w in (w1, w2, w3):
        step(server, w, "10", polls=2)
    # player 1: five awards of 1, then 200 (> 100 x 1): held; then 1 more: paid (from 215)
    # player 2: four awards of 1, then 150: paid (the rule needs five)
    # player 3: 2000 in one poll: above MAX_AWARD_ADVC, held; then 1 more: paid
    for paid in ("11", "12", "13", "14", "15"):
        step(server, w1, paid)
    for paid in ("11", "12", "13", "14", "164"):
        step(server, w2, paid)
    step(server, w3, "2010")
    step(server, w1, "215")
    step(server, w1, "216")
    step(server, w3, "2011")
    rc = eng.stop()
    eng.expect_clean_exit(rc)

    def awards(player):
        return [harness.decimal_field(e, "advc_amount") for e in eng.named("mining_reward_detected")
                if e["player_id"] == player]

    held = {e["player_id"]: e for e in eng.named("award_held")}
    check(sorted(held) == [1, 3], "held: %s" % [e["_raw"] for e in eng.named("award_held")])
    check(held[1]["why"] == "MAX_AWARD_FACTOR" and harness.decimal_field(held[1], "advc") == 200,
          "player 1: %s" % held[1]["_raw"])
    check(held[3]["why"] == "MAX_AWARD_ADVC" and harness.decimal_field(held[3], "advc") == 2000,
          "player 3: %s" % held[3]["_raw"])
    check(awards(1) == [1] * 6, "player 1's paid awards: %s" % awards(1))
    check(awards(2) == [1] * 4 + [150], "player 2's paid awards: %s" % awards(2))
    check(awards(3) == [1], "player 3's paid awards: %s" % awards(3))
    check(not eng.named("account_conflict"), "the memory store conflicted")


@with_server
def test_limits_follow_sighup(ctx, server):
    """The defaults apply when nothing is set (1000 ADVC), and SIGHUP applies a new
    MAX_AWARD_ADVC from the .env file to the polls decided after it."""
    players = harness.make_players(1, zpool=False)
    w1 = players[0]["wallet"]
    server.set(w1, "10")
    env_file = os.path.join(ctx.tmp, "limits.env")
    harness.save_file(env_file, "POLL_INTERVAL_SECONDS=1\n")
    pools = ctx.pools_dir({"testpool.lua": TEST_POOL})
    settings = {"TESTPOOL_URL": server.url, "MAX_AWARD_ADVC": None}
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.write_json("a.json", players),
                            "--env-file", env_file], settings, pools_dir=pools)
    step(server, w1, "10", polls=2)
    step(server, w1, "1010.00000001")  # 1000.00000001 ADVC: above the default ceiling
    held = eng.wait_for(lambda e: e["event"] == "award_held", 30, "award_held")
    check(held["why"] == "MAX_AWARD_ADVC", "default ceiling: %s" % held["_raw"])

    harness.save_file(env_file, "POLL_INTERVAL_SECONDS=1\nMAX_AWARD_ADVC=5000\n")
    mark = eng.count()
    eng.send_signal(signal.SIGHUP)
    eng.wait_for(lambda e: e["event"] == "script_reloaded", 30, "script_reloaded", since=mark)
    step(server, w1, "5010")  # 3999.99999999 ADVC: paid under the new ceiling
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    paid = [harness.decimal_field(e, "advc_amount") for e in eng.named("mining_reward_detected")]
    check(paid == [Decimal("3999.99999999")], "paid after the reload: %s" % paid)
    check(len(eng.named("award_held")) == 1, "held: %s" % eng.named("award_held"))


harness.main(globals())
