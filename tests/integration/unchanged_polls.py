"""Issue 11: an unchanged poll costs no commit, also when the rules' state moves on every poll.

scripts/rewards.lua writes `accounted.polled = ctx.now` into every state, so the state of an
unchanged poll (same observation, no award) differs from the stored one each time. Such a
poll is written by the batched touch (one UPDATE per second for all of them), not by
m2p_commit_poll (engine/store/db_store.c). One engine, 6 players x 3 pools, the simulator's
manual clock (no payouts until the test moves it), real PostgreSQL:

- after the baselines, unchanged polls bump no account's version (no m2p_commit_poll ran),
  the engine counts well under one statement per poll, and the stored state carries a
  `polled` of a poll after a mark within the flush interval;
- after a restart, the first cycle commits nothing either (versions unchanged);
- a version moved on by someone else (another engine's commit, simulated here) fences the
  touch: that row's state is no longer overwritten (its `polled` stays), its version is not
  bumped, its last_success still is;
- then payouts: every account's mining_events add up to the simulator's ledger exactly, and
  stay there over more polls (exactly once, the fenced account included).
"""

import time

import harness
import pgserver
from harness import check

PLAYERS = 6

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def polled(gdb):
    """{(player_id, pool): the stored state's accounted.polled}."""
    return {(int(p), pool): int(t) for p, pool, t in gdb.sql(
        "SELECT player_id, pool_name, (state->'accounted'->>'polled')::bigint"
        " FROM m2p_accounts")}


def statements_per_poll(eng, since):
    """The engine's own count of statements over its polls, from polling_cycle_complete."""
    cycles = [e for e in eng.named("polling_cycle_complete", since)
              if "database_statements" in e]
    check(len(cycles) >= 2, "fewer than two polling_cycle_complete records to compare")
    a, b = cycles[0], cycles[-1]
    polls = b["metrics"]["polls_total"] - a["metrics"]["polls_total"]
    check(polls > 0, "no polls between two polling_cycle_complete records")
    return (b["database_statements"] - a["database_statements"]) / polls


def wait_flushed_after(gdb, accounts, mark, what):
    """Waits until every account's stored `polled` is at least `mark` (an os.time())."""
    harness.wait_until(lambda: all(polled(gdb).get(a, 0) >= mark for a in accounts), 30, what)


def test_unchanged_polls_are_touched_not_committed(ctx):
    server = pg()
    gdb = pgserver.GameDb.create(server, "unchanged")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "4", "--seed", "7")
    players = harness.make_players(PLAYERS)
    accounts = pgserver.accounts_of(players)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    base = pgserver.ledgers(sim, players)
    settings = pgserver.engine_settings(sim, gdb, ENGINE_ID="unchanged")
    eng = ctx.start_engine([], settings)
    pgserver.wait_polls([eng], None, accounts, 2, "the baselines")
    baselines = gdb.accounts()
    check(len(baselines) == len(accounts), "baselines missing from m2p_accounts")

    # Unchanged polls: touched, not committed; the stored state still moves on.
    mark = int(time.time()) + 1
    since = eng.count()
    time.sleep(mark - time.time())
    pgserver.wait_polls([eng], [since], accounts, 3, "unchanged polls")
    check(gdb.accounts() == baselines,
          "an unchanged poll was committed (a version moved): %s"
          % {a: v for a, v in gdb.accounts().items() if baselines.get(a) != v})
    per_poll = statements_per_poll(eng, since)
    harness.note("%.3f statements per unchanged poll" % per_poll)
    check(per_poll < 0.5, "%.3f statements per unchanged poll (one commit each?)" % per_poll)
    wait_flushed_after(gdb, accounts, mark, "the touched states to carry the latest `polled`")
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    check(gdb.accounts() == baselines, "stopping the engine committed something")

    # A restart: the first cycle loads the states (in pages) and commits nothing.
    eng = ctx.start_engine([], settings)
    pgserver.wait_polls([eng], None, accounts, 2, "the first cycle after the restart")
    check(gdb.accounts() == baselines,
          "the first cycle after a restart committed: %s"
          % {a: v for a, v in gdb.accounts().items() if baselines.get(a) != v})

    # Another engine's commit moves one account's version on: the touches of this engine,
    # still at the old version, must not overwrite that row's state any more.
    fenced = accounts[0]
    gdb.script("UPDATE m2p_accounts SET version = version + 1"
               " WHERE player_id = %d AND pool_name = %s"
               % (fenced[0], pgserver.lit(fenced[1])))
    bumped_at = gdb.value("SELECT now()::text")
    frozen = polled(gdb)[fenced]
    others = [a for a in accounts if a != fenced]
    wait_flushed_after(gdb, others, frozen + 2, "touches after the fencing commit")
    harness.wait_until(lambda: gdb.value(
        "SELECT last_success > %s::timestamptz FROM m2p_accounts"
        " WHERE player_id = %d AND pool_name = %s"
        % (pgserver.lit(bumped_at), fenced[0], pgserver.lit(fenced[1]))) == "t", 30,
        "a touch of the fenced account after the commit")
    check(polled(gdb)[fenced] == frozen,
          "a touch at the old version overwrote the state of a row another commit moved on")
    check(gdb.accounts()[fenced][1] == baselines[fenced][1] + 1,
          "a touch changed the version of the fenced account")

    # Payouts: awarded exactly once, the fenced account too (its commit conflicts, the
    # engine reloads and decides again).
    sim.advance(9)
    end = pgserver.ledgers(sim, players)
    per_account = pgserver.expected_advc(base, end)
    check(any(v > 0 for v in per_account.values()), "the simulator paid nothing")
    expected = pgserver.expected_player_totals(per_account)
    pgserver.wait_totals(gdb, expected, "the totals to match the ledger", engines=[eng])
    since = pgserver.marks([eng])
    pgserver.wait_polls([eng], since, accounts, 3, "more polls after the payouts")
    diff = pgserver.totals_diff(gdb, expected)
    check(not diff, "totals moved after they matched the ledger: %s" % diff)
    pgserver.check_accounts_exact(gdb, per_account, base, end)
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


def test_a_state_postgresql_refuses_does_not_poison_the_batch(ctx):
    """Custom rules that put a string PostgreSQL cannot take (invalid UTF-8) into one
    account's state, only on its unchanged polls. That state must not ride in the batched
    touch, where it would fail the one UPDATE for every account each second: it takes its own
    account's commit (where the store replaces the bytes, commit_value_cleaned), and the
    others' touches go on."""
    gdb = pgserver.GameDb.create(pg(), "unchanged_bad")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "4", "--seed", "7")
    players = harness.make_players(PLAYERS)
    accounts = pgserver.accounts_of(players)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    pools_dir, scripts_dir = harness.live_dirs(ctx, pools=("cpu-pool",))
    rewards_path = scripts_dir + "/rewards.lua"
    bad = accounts[0]
    source = harness.read_text(rewards_path)
    anchor = "  acc.polled, acc.unit = ctx.now, current.unit\n"
    check(anchor in source, "scripts/rewards.lua changed: the test's anchor line is gone")
    source = source.replace(anchor, anchor + (
        "  if prev and ctx.player_id == %d then acc.note = \"\\255\" end\n" % bad[0]))
    with open(rewards_path, "w") as f:
        f.write(source)
    cpu = [a for a in accounts if a[1] == "cpu-pool"]
    settings = pgserver.engine_settings(sim, gdb, ENGINE_ID="unchanged_bad")
    eng = harness.start_engine_dirs(ctx, [], settings, pools_dir, scripts_dir)
    pgserver.wait_polls([eng], None, cpu, 2, "the baselines")
    mark = int(time.time()) + 1
    since = eng.count()
    time.sleep(mark - time.time())
    others = [a for a in cpu if a != bad]
    wait_flushed_after(gdb, others, mark, "the other accounts' touches (a bad state in the "
                       "batch would fail every one of them)")
    check(not eng.named("touch_failed", since), "a touch batch failed: %s"
          % eng.named("touch_failed", since)[:1])
    cleaned = [e for e in eng.named("commit_value_cleaned", since)
               if e.get("player_id") == bad[0]]
    check(cleaned, "the refused state was not sent to its own account's commit")
    unreadable = [e for e in eng.named("account_state_unreadable", since)
                  if e.get("player_id") == bad[0]]
    check(not unreadable, "the state kept after the cleaned commit was not read back (the "
          "next poll saw no previous state): %s" % unreadable[:1])
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
