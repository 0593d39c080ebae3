"""Issue 5: a pool script dropped into pools/ starts being polled; deleting it stops it.

An engine on a real PostgreSQL (pgserver.py) polls rplant and zpool at the simulator (manual
clock); cpu-pool is disabled, so every request the simulator counts for cpu-pool comes from
the new pool. While the engine runs, pools/cpu-pool-2.lua is created: a copy of the shipped
cpu-pool.lua with name "cpu-pool-2", limits of its own and its URL from CPU_POOL_2_URL.

- the reload is logged, with a `pool_schedule` for cpu-pool-2 showing every player's account
  and its own limits;
- each of its accounts is polled within about one interval: at its first poll, no account
  of the other pools had been polled more than twice since the reload;
- its m2p_accounts rows appear (one per player, the player's wallet); the first observation
  is a baseline (the wallets were already paid: nothing awarded for that history), payouts
  after it are awarded exactly as the simulator's ledger says;
- the other pools keep polling throughout;
- after pools/cpu-pool-2.lua is deleted and a grace period (two polls of every other account,
  time for polls in flight to finish), the simulator gets no further cpu-pool request and the
  engine logs no cpu-pool-2 poll, while the other pools go on; the pool's history stays in
  the database.
"""

import os
from decimal import Decimal

import harness
import pgserver
from harness import check
from pgserver import numeric_text

PLAYERS = 5
OTHER_POOLS = ("rplant", "zpool")
NEW = "cpu-pool-2"

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def new_pool_source():
    src = harness.shipped_pool("cpu-pool", "{ concurrency = 2, per_second = 40 }")
    src = harness.replaced(src, 'name = "cpu-pool"', 'name = "%s"' % NEW)
    src = harness.replaced(src, 'm2p.env("CPU_POOL_URL", DEFAULT_URL)',
                           'm2p.env("CPU_POOL_2_URL", DEFAULT_URL)')
    src = harness.replaced(src, 'm2p.env_bool("CPU_POOL_ENABLED", true)',
                           'm2p.env_bool("CPU_POOL_2_ENABLED", true)')
    return src


def cpu_requests(sim):
    return int(sim.stats()["cpu-pool"]["requests"])


def test_new_pool_starts_and_stops(ctx):
    gdb = pgserver.GameDb.create(pg(), "reload_new_pool")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "9")
    players = harness.make_players(PLAYERS)
    ids = [p["player_id"] for p in players]
    others = pgserver.accounts_of(players, OTHER_POOLS)
    new_accounts = [(pid, NEW) for pid in ids]
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    pools_dir, scripts_dir = harness.live_dirs(ctx)
    settings = pgserver.engine_settings(sim, gdb, ENGINE_ID="newpool", CPU_POOL_ENABLED="false",
                                        CPU_POOL_2_URL=sim.base + "/api/worker_stats")
    sim.advance(35)  # the wallets have been paid before the new pool appears
    eng = harness.start_engine_dirs(ctx, [], settings, pools_dir, scripts_dir)
    pgserver.wait_polls([eng], None, others, 2, "the baselines of rplant and zpool")
    check(cpu_requests(sim) == 0, "cpu-pool is disabled, yet the simulator got %d requests"
          % cpu_requests(sim))

    # ---- the new pool appears
    mark = eng.count()
    harness.save_file(pools_dir + "/%s.lua" % NEW, new_pool_source(), how="rename")
    reloaded = eng.wait_for(lambda e: e["event"] in ("script_reloaded", "script_reload_failed"),
                            30, "the reload after creating %s.lua" % NEW, since=mark)
    check(reloaded["event"] == "script_reloaded", "the new pool did not load: %s"
          % reloaded["_raw"])
    reload_at = eng.snapshot().index(reloaded)
    schedules = [e for e in eng.named("pool_schedule", mark) if e.get("pool") == NEW]
    check(schedules, "no pool_schedule for %s after the reload" % NEW)
    s = schedules[-1]
    check(s.get("accounts") == PLAYERS and s.get("concurrency") == 2
          and s.get("per_second") == 40,
          "pool_schedule of %s: %s (expected %d accounts, concurrency 2, 40 per second)"
          % (NEW, s["_raw"], PLAYERS))
    pgserver.wait_polls([eng], [reload_at], new_accounts, 2,
                        "two polls of every %s account" % NEW, timeout=30)
    # within about one interval: when each new account was first polled, the accounts of the
    # other pools (one poll per interval) had been polled at most twice since the reload
    events = eng.snapshot()
    seen, late = set(), []
    counts = {}
    for e in events[reload_at:]:
        if e["event"] != "pool_poll_success":
            continue
        key = (e["player_id"], e["pool"])
        if e["pool"] == NEW and key not in seen:
            seen.add(key)
            busiest = max(counts.values()) if counts else 0
            if busiest > 2:
                late.append((key, busiest))
        elif e["pool"] != NEW:
            counts[key] = counts.get(key, 0) + 1
    check(not late, "%s accounts first polled only after other accounts had been polled more "
                    "than twice since the reload (account, their polls): %s" % (NEW, late))

    rows = {k: v for k, v in gdb.accounts().items() if k[1] == NEW}
    check(sorted(rows) == sorted(new_accounts),
          "m2p_accounts rows of %s: %s" % (NEW, sorted(rows)))
    wrong = {k: w for k, (w, _) in rows.items() if w != harness.advc_wallet(k[0])}
    check(not wrong, "m2p_accounts rows of %s with the wrong wallet: %s" % (NEW, wrong))
    check(cpu_requests(sim) > 0, "the simulator got no request of the new pool")
    history = gdb.sql("SELECT player_id, advc_amount FROM mining_events WHERE pool_name = '%s'"
                      % NEW)
    check(not history, "the first observation of %s was awarded: %s" % (NEW, history))

    # ---- it awards like any pool: from its baselines on
    base = {a: sim.ledger("cpu-pool", harness.advc_wallet(a[0])) for a in new_accounts}
    mark = eng.count()
    sim.advance(25)
    pgserver.wait_polls([eng], [mark], new_accounts + others, 2,
                        "two polls of every account after the payouts")
    end = {a: sim.ledger("cpu-pool", harness.advc_wallet(a[0])) for a in new_accounts}
    want = {a: Decimal(end[a]["paid"]) - Decimal(base[a]["paid"]) for a in new_accounts}
    check(all(v > 0 for v in want.values()), "the simulator paid nothing: %s" % want)
    want_text = {a: (numeric_text(v), numeric_text(v * 100)) for a, v in want.items()}

    def sums_match():
        got = gdb.event_sums()
        return all(got.get(a, (None, None, 0))[:2] == want_text[a] for a in new_accounts)
    try:
        harness.wait_until(sums_match, 30, "the %s awards to match the ledger" % NEW, 0.2)
    except harness.TestFailure:
        got = gdb.event_sums()
        harness.fail("%s awards (account, stored, expected): %s"
                     % (NEW, [(a, got.get(a), want_text[a]) for a in new_accounts]))

    # ---- the pool is deleted
    mark = eng.count()
    os.remove(pools_dir + "/%s.lua" % NEW)
    reloaded = eng.wait_for(lambda e: e["event"] in ("script_reloaded", "script_reload_failed"),
                            30, "the reload after deleting %s.lua" % NEW, since=mark)
    check(reloaded["event"] == "script_reloaded", "the deletion did not reload: %s"
          % reloaded["_raw"])
    gone_at = eng.snapshot().index(reloaded)
    check(not [e for e in eng.named("pool_schedule", gone_at) if e.get("pool") == NEW],
          "%s still has a pool_schedule after its deletion" % NEW)
    # grace period: polls in flight finish
    pgserver.wait_polls([eng], [gone_at], others, 2, "two polls of the other pools after the "
                        "deletion")
    after_grace = eng.count()
    requests_then = cpu_requests(sim)
    in_flight = [e for e in eng.snapshot()[gone_at:]
                 if e.get("pool") == NEW and e["event"] in harness.POLL_END_EVENTS]
    check(len(in_flight) <= 2, "%d %s polls ended after the deletion, more than its "
                               "concurrency (2) could have had in flight" % (len(in_flight), NEW))
    # the others go on for three more polls each; cpu-pool-2 is silent
    pgserver.wait_polls([eng], [after_grace], others, 3, "three more polls of the other pools")
    requests_now = cpu_requests(sim)
    check(requests_now == requests_then,
          "the simulator got %d more cpu-pool requests after %s was deleted"
          % (requests_now - requests_then, NEW))
    late = [e["_raw"] for e in eng.snapshot()[after_grace:] if e.get("pool") == NEW]
    check(not late, "%s still logged after its deletion: %s" % (NEW, late[:3]))

    rows_after = {k for k in gdb.accounts() if k[1] == NEW}
    check(rows_after == set(new_accounts), "the m2p_accounts rows of the deleted pool should "
                                           "stay: %s" % sorted(rows_after))
    events = eng.snapshot()
    failures = harness.poll_ends(events, names=harness.POLL_FAILURE_EVENTS)
    check(not failures, "polls failed: %s" % [e["_raw"] for e in failures[:5]])
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    m = [e for e in eng.snapshot() if e["event"] == "engine_stopped"][0]["metrics"]
    check(m.get("script_reloads") == 2 and m.get("script_reload_failures") == 0,
          "metrics: script_reloads %s, script_reload_failures %s (expected 2, 0)"
          % (m.get("script_reloads"), m.get("script_reload_failures")))


harness.main(globals())
