"""Issue 5: changed rules apply from the next decision on, and nothing else changes.

An engine on a real PostgreSQL (pgserver.py) polls the simulator (manual clock) with its own
copies of pools/ and scripts/. Payouts are made and awarded under the shipped rules (AP = 100
x ADVC); then scripts/rewards.lua is edited while the engine runs so that AP = 150 x ADVC, and
more payouts are made. Then:

- the reload is logged (`script_reloaded`, trigger "file change") with a new
  rules_generation, and counted (`script_reloads` = 1, `script_reload_failures` = 0);
- the awards made before are untouched: same rows, AP = 100 x ADVC, the old rules_generation;
- every award made after has AP = 150 x ADVC and the new rules_generation (the one logged);
- per account, the awards add up exactly to what the simulator's ledger paid in each phase,
  and the players' totals are the sums of both;
- no poll was dropped: no poll failed, every account kept being polled across the reload
  (polls counted per account; `m2p_accounts.last_success` advanced past the reload for every
  account), and over the window around the reload the accounts of a pool were polled evenly.

test_edited_default_applies edits only the default in
`m2p.env_number("AP_PER_ADVC", 100, 0, 1e12)` (AP_PER_ADVC is not set anywhere), the edit the
issue describes, and expects the same: the next payout at 150 x ADVC.
"""

from decimal import Decimal

import harness
import pgserver
from harness import check
from pgserver import numeric_text

PLAYERS = 6
AP_LINE = 'local AP_PER_ADVC = m2p.env_number("AP_PER_ADVC", 100, 0, 1e12)'
Q8 = Decimal("0.00000001")

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def events_table(gdb):
    """{id: (player_id, pool, advc text, ap text, rules_generation)} of every mining_event."""
    return {int(i): (int(p), pool, a, b, g) for i, p, pool, a, b, g in gdb.sql(
        "SELECT id, player_id, pool_name, advc_amount::text, ap_awarded::text,"
        " rules_generation FROM mining_events")}


def advc_by_account(rows):
    sums = {}
    for pid, pool, advc, _, _ in rows:
        sums[(pid, pool)] = sums.get((pid, pool), Decimal(0)) + Decimal(advc)
    return sums


def check_ap(rows, factor, generation, what):
    bad = [r for r in rows
           if r[3] != numeric_text((Decimal(r[2]) * factor).quantize(Q8)) or r[4] != generation]
    check(not bad, "%s: awards whose AP is not ADVC x %s or whose rules_generation is not %s "
                   "((player, pool, advc, ap, generation), ...): %s"
          % (what, factor, generation, bad[:6]))


def test_new_formula_applies_from_the_next_payout(ctx):
    gdb = pgserver.GameDb.create(pg(), "reload_rules")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "5")
    players = harness.make_players(PLAYERS)
    accounts = pgserver.accounts_of(players)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    pools_dir, scripts_dir = harness.live_dirs(ctx)
    rewards_path = scripts_dir + "/rewards.lua"
    original = harness.read_text(rewards_path)

    base = pgserver.ledgers(sim, players)
    eng = harness.start_engine_dirs(ctx, [], pgserver.engine_settings(sim, gdb, ENGINE_ID="r1"),
                                    pools_dir, scripts_dir)
    pgserver.wait_polls([eng], None, accounts, 2, "the baseline of every account")

    # ---- phase 1: the shipped rules
    since = pgserver.marks([eng])
    sim.advance(25)
    pgserver.wait_polls([eng], since, accounts, 2, "two polls of every account after the "
                        "first payouts")
    mid = pgserver.ledgers(sim, players)
    phase1 = pgserver.expected_advc(base, mid)
    check(all(v > 0 for v in phase1.values()), "some account was paid nothing in phase 1: %s"
          % phase1)
    pgserver.wait_totals(gdb, pgserver.expected_player_totals(phase1),
                         "the phase 1 awards to be stored", engines=[eng])
    before = events_table(gdb)
    generations = {r[4] for r in before.values()}
    check(len(generations) == 1 and None not in generations,
          "the phase 1 awards should share one rules_generation: %s" % generations)
    gen_a = generations.pop()
    check_ap(before.values(), Decimal(100), gen_a, "phase 1")
    check(not eng.named("script_reloaded"), "a reload before any edit")

    # ---- the edit: AP = 150 x ADVC, saved the way most editors save (rename over the file)
    edit_mark = eng.count()
    edited = harness.replaced(original, AP_LINE,
                              "local AP_PER_ADVC = 150  -- was: " + AP_LINE)
    harness.save_file(rewards_path, edited, how="rename")
    reloaded = eng.wait_for(lambda e: e["event"] == "script_reloaded", 30,
                            "script_reloaded after the edit", since=edit_mark)
    check(reloaded.get("trigger") == "file change", "trigger: %s" % reloaded.get("trigger"))
    gen_b = reloaded.get("rules_generation")
    check(gen_b and gen_b != gen_a, "the rules_generation did not change: %s -> %s"
          % (gen_a, gen_b))
    check(not eng.named("script_reload_failed", edit_mark),
          "script_reload_failed: %s" % eng.named("script_reload_failed", edit_mark))
    reload_at = eng.snapshot().index(reloaded)

    # every account is polled after the reload, and its last_success moves past it
    after_reload = pgserver.marks([eng])
    pgserver.wait_polls([eng], after_reload, accounts, 2, "two polls of every account after "
                        "the reload")
    stamp = reloaded["timestamp"]
    harness.wait_until(lambda: int(gdb.value(
        "SELECT count(*) FROM m2p_accounts WHERE last_success > '%s'::timestamptz" % stamp))
        == len(accounts), 30, "last_success past the reload for every account")

    # ---- phase 2: the edited rules
    since = pgserver.marks([eng])
    sim.advance(25)
    pgserver.wait_polls([eng], since, accounts, 2, "two polls of every account after the "
                        "second payouts")
    end = pgserver.ledgers(sim, players)
    phase2 = pgserver.expected_advc(mid, end)
    check(all(v > 0 for v in phase2.values()), "some account was paid nothing in phase 2: %s"
          % phase2)
    want = {}
    for (pid, _), advc in list(phase1.items()) + list(phase2.items()):
        want.setdefault(pid, [Decimal(0), Decimal(0)])
    for (pid, _), advc in phase1.items():
        want[pid][0] += advc
        want[pid][1] += advc * 100
    for (pid, _), advc in phase2.items():
        want[pid][0] += advc
        want[pid][1] += advc * 150
    expected = {pid: (numeric_text(a), numeric_text(b)) for pid, (a, b) in want.items()}
    pgserver.wait_totals(gdb, expected, "the players' totals (phase 1 at 100 AP, phase 2 at "
                         "150 AP per ADVC)", engines=[eng])
    window_end = eng.count()

    after = events_table(gdb)
    changed = {i: (before[i], after.get(i)) for i in before if after.get(i) != before[i]}
    check(not changed, "awards made before the edit changed: %s" % list(changed.items())[:5])
    new_rows = [r for i, r in after.items() if i not in before]
    check_ap(new_rows, Decimal(150), gen_b, "after the edit")
    got1 = advc_by_account(before.values())
    got2 = advc_by_account(new_rows)
    bad = [(a, got1.get(a), phase1[a]) for a in accounts if got1.get(a) != phase1[a]]
    check(not bad, "phase 1 awards differ from the ledger (account, awarded, paid): %s" % bad)
    bad = [(a, got2.get(a), phase2[a]) for a in accounts if got2.get(a) != phase2[a]]
    check(not bad, "phase 2 awards differ from the ledger (account, awarded, paid): %s" % bad)

    # ---- nothing dropped around the reload
    events = eng.snapshot()
    failures = harness.poll_ends(events, names=harness.POLL_FAILURE_EVENTS)
    check(not failures, "polls failed: %s" % [e["_raw"] for e in failures[:5]])
    window = events[edit_mark:window_end]
    for pool in pgserver.POOLS:
        before_counts = harness.polls_per_account(events[:reload_at], pool)
        counts = harness.polls_per_account(window, pool)
        ids = sorted(p["player_id"] for p in players)
        missing = [i for i in ids if counts.get(i, 0) < 2 or before_counts.get(i, 0) < 2]
        check(not missing, "%s: accounts not polled both before and after the reload: %s "
                           "(before %s, around %s)" % (pool, missing, before_counts, counts))
        spread = max(counts.values()) - min(counts.values())
        harness.note("%s: polls per account around the reload %s" % (pool, counts))
        check(spread <= 2, "%s: over the window around the reload the accounts were not "
                           "polled evenly (some lost polls?): %s" % (pool, counts))

    rc = eng.stop()
    eng.expect_clean_exit(rc)
    m = [e for e in eng.snapshot() if e["event"] == "engine_stopped"][0]["metrics"]
    check(m.get("script_reloads") == 1 and m.get("script_reload_failures") == 0,
          "metrics: script_reloads %s, script_reload_failures %s (expected 1, 0)"
          % (m.get("script_reloads"), m.get("script_reload_failures")))
    logged = eng.named("mining_reward_detected")
    check(len(logged) == len(after), "%d awards logged, %d stored" % (len(logged), len(after)))


def test_edited_default_applies(ctx):
    """The edit of the issue: only the script's default changes (100 -> 150); AP_PER_ADVC is
    not set. The next payout must be awarded at 150 AP per ADVC. No database: the awards are
    read from the log (mining_reward_detected), the state is in memory."""
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "6")
    players = harness.make_players(3, zpool=False)
    pools_dir, scripts_dir = harness.live_dirs(ctx, pools=("cpu-pool",))
    rewards_path = scripts_dir + "/rewards.lua"
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, LOG_LEVEL="debug")
    eng = harness.start_engine_dirs(ctx, ["--accounts", ctx.accounts(3, zpool=False)],
                                    settings, pools_dir, scripts_dir)
    ids = [p["player_id"] for p in players]

    def wait_two_polls(since, what):
        eng.wait_until(lambda evs: len(ids) == len(
            [n for n in harness.polls_per_account(evs[since:], "cpu-pool",
                                                  ["pool_poll_success"]).values() if n >= 2]),
            40, what)

    wait_two_polls(0, "the baselines")
    mark = eng.count()
    harness.save_file(rewards_path, harness.replaced(
        harness.read_text(rewards_path), AP_LINE,
        'local AP_PER_ADVC = m2p.env_number("AP_PER_ADVC", 150, 0, 1e12)'))
    eng.wait_for(lambda e: e["event"] == "script_reloaded", 30, "script_reloaded", since=mark)
    mark = eng.count()
    wait_two_polls(mark, "two polls after the reload")
    mark = eng.count()
    sim.advance(25)
    wait_two_polls(mark, "two polls after the payouts")
    awards = eng.named("mining_reward_detected", mark)
    check(len(awards) == len(ids), "expected one award per account, got %s"
          % [e["_raw"] for e in awards])
    ratios = sorted({str((harness.decimal_field(e, "ap_awarded")
                          / harness.decimal_field(e, "advc_amount")).quantize(Decimal("0.01")))
                     for e in awards})
    check(ratios == ["150.00"],
          "after rewards.lua's default was edited from 100 to 150 (AP_PER_ADVC unset), awards "
          "were made at %s AP per ADVC, expected 150: the built-in default of the AP_PER_ADVC "
          "setting (100) is handed to the script by m2p.env_number as if it were set, so the "
          "script's own default is never used (e.g. %s)" % (ratios, awards[0]["_raw"]))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
