"""Issue 4: three engines on one database share the accounts, and survive losing one.

Three engines (ENGINE_ID engine-a, -b, -c) poll 30 players x 3 pools at a 4 s interval,
with the simulator on its manual clock (advanced by the test, so payouts keep coming).

- Steady state (all three see three live engines, every account polled since): over a
  window of 4 intervals, every account is polled floor(W/I)-1 .. ceil(W/I)+1 times in total
  by the three engines together (once per interval, within the scheduler's jitter; the
  counts are taken from the three engines' debug logs), each account by exactly one engine,
  and every engine has a share.
- engine-b is killed with SIGKILL. Each account it polled is polled again by one of the
  others within two intervals (+25% jitter) of the kill: its heartbeat expires after 3/4
  interval, the others notice at their next heartbeat (every 1/4 interval) and schedule
  the accounts within the next interval.
- No award twice: in the end every player's totals equal the simulator's ledger exactly,
  no idempotency key is stored twice, and totals equal the sum of mining_events.
"""

import math
import signal
import time

import harness
import pgserver
from harness import check

PLAYERS = 30
INTERVAL = 4
WINDOW_INTERVALS = 4
NAMES = ("engine-a", "engine-b", "engine-c")

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def live_view(eng):
    changes = eng.named("membership_changed")
    return changes[-1].get("live_engines") if changes else None


def test_three_engines_share_and_take_over(ctx):
    gdb = pgserver.GameDb.create(pg(), "three")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "5", "--seed", "9")
    players = harness.make_players(PLAYERS)
    accounts = pgserver.accounts_of(players)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    base = pgserver.ledgers(sim, players)
    check(all(int(l["count"]) == 0 for l in base.values()), "paid at time 0")

    engines = [ctx.start_engine([], pgserver.engine_settings(
        sim, gdb, ENGINE_ID=name, POLL_INTERVAL_SECONDS=INTERVAL)) for name in NAMES]

    def all_see(n, group):
        return all(live_view(e) == n for e in group) or any(e.proc.poll() is not None
                                                           for e in group)

    harness.wait_until(lambda: all_see(3, engines), 60, "all three engines to see 3 live")
    for e in engines:
        check(e.proc.poll() is None, "%s exited: %s" % (e.args, e.stderr_text()[-2000:]))
    settled = pgserver.marks(engines)
    pgserver.wait_polls(engines, settled, accounts, 2, "two polls of every account after "
                        "the engines settled", timeout=90)
    check(len(gdb.accounts()) == len(accounts), "baselines missing in m2p_accounts")

    # ---- steady state: once per interval, by one engine each
    window = WINDOW_INTERVALS * INTERVAL
    t0 = time.time()
    for _ in range(WINDOW_INTERVALS):
        time.sleep(INTERVAL / 2)
        sim.advance(3)
        time.sleep(INTERVAL / 2)
    t1 = time.time()
    check(all(live_view(e) == 3 for e in engines),
          "membership changed during the window: %s" % [live_view(e) for e in engines])
    low = math.floor(window / INTERVAL) - 1
    high = math.ceil(window / INTERVAL) + 1
    per_account, pollers = {}, {}
    for name, e in zip(NAMES, engines):
        for ev in e.named("pool_poll_success"):
            if ev["_ts"] is not None and t0 <= ev["_ts"] <= t1:
                key = (ev["player_id"], ev["pool"])
                per_account[key] = per_account.get(key, 0) + 1
                pollers.setdefault(key, set()).add(name)
    missing = [a for a in accounts if a not in per_account]
    check(not missing, "accounts not polled at all in %d s: %s" % (window, missing[:10]))
    bad = {a: n for a, n in per_account.items() if not low <= n <= high}
    check(not bad, "over %.1f s at a %d s interval every account should be polled %d..%d "
                   "times by the three engines together; these were not: %s"
          % (t1 - t0, INTERVAL, low, high, sorted(bad.items())[:10]))
    shared = {a: sorted(n) for a, n in pollers.items() if len(n) > 1}
    check(not shared, "accounts polled by more than one engine in steady state: %s"
          % sorted(shared.items())[:10])
    owned = {name: sorted(a for a, n in pollers.items() if name in n) for name in NAMES}
    harness.note("accounts per engine: %s; polls per account %s"
                 % ({n: len(a) for n, a in owned.items()}, sorted(set(per_account.values()))))
    check(all(owned[n] for n in NAMES), "an engine polled nothing: %s"
          % {n: len(a) for n, a in owned.items()})

    # ---- engine-b dies: its accounts go on, polled by the others
    victim = engines[1]
    survivors = [engines[0], engines[2]]
    victim.stop(signal.SIGKILL)
    t_kill = time.time()
    sim.advance(4)
    orphans = owned["engine-b"]

    def first_polls():
        firsts = {}
        for e in survivors:
            for ev in e.named("pool_poll_success"):
                key = (ev["player_id"], ev["pool"])
                if key in orphans and ev["_ts"] is not None and ev["_ts"] > t_kill:
                    firsts[key] = min(firsts.get(key, ev["_ts"]), ev["_ts"])
        return firsts

    harness.wait_until(lambda: len(first_polls()) == len(orphans)
                       or any(e.proc.poll() is not None for e in survivors), 60,
                       "engine-b's %d accounts to be polled by the others" % len(orphans))
    for e in survivors:
        check(e.proc.poll() is None, "a surviving engine exited: %s" % e.stderr_text()[-2000:])
    delays = {a: t - t_kill for a, t in first_polls().items()}
    worst = max(delays.values())
    harness.note("engine-b's %d accounts taken over, the last %.2f s after the kill"
                 % (len(orphans), worst))
    limit = 2 * INTERVAL * 1.25
    late = {a: round(d, 2) for a, d in delays.items() if d > limit}
    check(not late, "accounts of the killed engine first polled later than two intervals "
                    "(+25%%, %.1f s) after the kill: %s" % (limit, sorted(late.items())[:10]))
    harness.wait_until(lambda: all_see(2, survivors), 30, "the survivors to see 2 live")

    # ---- no award twice, none lost
    mark = pgserver.marks(survivors)
    sim.advance(6)
    pgserver.wait_polls(survivors, mark, accounts, 2, "two polls of every account by the "
                        "two survivors")
    end = pgserver.ledgers(sim, players)
    per_account_advc = pgserver.expected_advc(base, end)
    expected = pgserver.expected_player_totals(per_account_advc)
    pgserver.wait_totals(gdb, expected, "the totals to match the ledger", engines=survivors)
    pgserver.check_accounts_exact(gdb, per_account_advc, base, end)
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    for e in survivors:
        rc = e.stop()
        e.expect_clean_exit(rc)
    left = [r[0] for r in gdb.sql("SELECT id FROM m2p_engines ORDER BY id")]
    check(left == ["engine-b"], "stopped engines should leave m2p_engines (only the killed "
                                "one stays until it is forgotten): %s" % left)


harness.main(globals())
