"""Issue 12: SIGHUP and SIGTERM while the engine is busy lose and double nothing.

15 players x 3 pools on the simulator's manual clock (payouts every 3 simulated seconds, a
third of cpu-pool's answers 300 ms late, so polls are in flight), PostgreSQL, and two sinks:
the official socket.io server from npm (sio_recorder.js) and a webhook receiver
(notify_support.FaultyWebhook). After the baselines the clock moves 3 simulated seconds three
times; SIGHUPs come in between (each a full reload of settings and scripts). Then the
webhook receiver stops answering (it holds every request for 30 s), the clock moves again,
and once a delivery is in flight the engine gets SIGTERM.

- SIGHUP: every reload succeeded (script_reloaded, trigger SIGHUP); per pool every account
  was polled as often as every other (within one), never more than once per interval, and
  again after the last reload (none lost, none doubled); every request the simulator
  received has exactly one outcome in the log.
- SIGTERM: exit status 0 (with ASan: no leak), one engine_stopped and no poll after it, without
  waiting for the held delivery (the 20 s wait only catches a hang, long before the 30 s hold
  ends), and its claim handed back at once (no lease left: docs/notifications.md).
- Nothing lost: a restarted engine brings every player's totals to the simulator's ledger
  exactly, mining_events add up per account (zpool by tx id), no duplicate, and every award
  arrives at both sinks (the one cut at SIGTERM again, same event_id).
About 20 s.
"""

import json
import math
import signal
import time

import harness
import notify_support as ns
import pgserver
from harness import check
from notify_delivery import SECRET, TOKEN, pg, wait_all_notified  # one PgServer

PLAYERS = 15
POOLS = ("cpu-pool", "rplant", "zpool")
SHUTDOWN_TIMEOUT = 5
HOLD_S = 30                  # the receiver's hold: longer than the 20 s hang guard


def sighups_while_paying(sim, eng, rounds=3, hups=3):
    mark = eng.count()
    for r in range(rounds):
        sim.advance(3)
        for _ in range(hups if r < 2 else 0):
            time.sleep(0.25)
            eng.send_signal(signal.SIGHUP)
        time.sleep(0.6)
    reloads = [e for e in eng.snapshot()[mark:]
               if e["event"] in ("script_reloaded", "script_reload_failed")]

    def all_polled_since_last_reload(events):
        last = max(i for i, e in enumerate(events) if e["event"] == "script_reloaded")
        return all(len(harness.polls_per_account(events[last:], p)) == PLAYERS for p in POOLS)
    eng.wait_until(all_polled_since_last_reload, 30, "every account polled after the SIGHUPs")
    return reloads


def check_polls(sim, eng, events, players):
    """No poll lost or doubled across the reloads. Not harness.check_cadence's lower bound: a
    loaded machine (ASan) polls zpool (concurrency 1) slower than its interval, evenly."""
    for pool in POOLS:
        at_sim = int(sim.requests(pool)["total"])
        logged = len(harness.poll_ends(events, pool))
        check(at_sim == logged, "%s: the simulator received %d requests, the engine logged %d "
                                "outcomes: polls lost or left half-done" % (pool, at_sim, logged))
        # the pool's own interval: 15 accounts at cpu-pool's and rplant's 10 requests/s: 1.5 s
        interval = [e for e in events if e["event"] == "pool_schedule"
                    and e["pool"] == pool][-1]["effective_interval_seconds"]
        counts = harness.polls_per_account(events, pool)
        most = math.ceil(harness.run_window(events) / interval) + 1
        harness.note("%s: polls per account %s, at most %d" % (pool, sorted(counts.values()), most))
        check(len(counts) == PLAYERS and max(counts.values()) <= most
              and max(counts.values()) - min(counts.values()) <= 1,
              "%s: every account polled evenly, at most %d times (a reload neither drops nor "
              "doubles a poll): %s" % (pool, most, counts))


def check_stopped(eng, rc):
    eng.expect_clean_exit(rc)
    events = eng.snapshot()
    names = [e["event"] for e in events]
    check(names.count("shutdown_requested") == 1 and names.count("engine_stopped") == 1,
          "expected one shutdown_requested and one engine_stopped, got %s" % names[-3:])
    # engine_stopped is the last line (engine/run.c logs it after the outbox has stopped):
    # no poll, no award, no delivery after it.
    late = [e["_raw"] for e in events[names.index("engine_stopped") + 1:]]
    check(not late, "logged after engine_stopped: %s" % late[:3])
    return events


def test_sighup_and_sigterm_under_load(ctx):
    gdb = pgserver.GameDb.create(pg(), "signals")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "3", "--seed", "11")
    sim.fault("cpu-pool", "latency", ms=300, rate=0.33)
    players = harness.make_players(PLAYERS)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    base = pgserver.ledgers(sim, players)
    sio = ns.SioServer(ctx, TOKEN)
    hook = ns.FaultyWebhook(SECRET, slow_s=HOLD_S)
    hook.listen()
    settings = pgserver.engine_settings(
        sim, gdb, ENGINE_ID="signals", SHUTDOWN_TIMEOUT_SECONDS=SHUTDOWN_TIMEOUT,
        SOCKETIO_URL=sio.url, SOCKETIO_AUTH=json.dumps({"token": TOKEN}),
        WEBHOOK_URLS=hook.url, WEBHOOK_SECRET=SECRET, NOTIFY_TIMEOUT=10)
    eng = ctx.start_engine([], settings)
    harness.wait_until(lambda: len(gdb.accounts()) == 3 * PLAYERS or eng.proc.poll(), 60,
                       "every account's baseline")

    reloads = sighups_while_paying(sim, eng)
    bad = [e["_raw"] for e in reloads
           if e["event"] != "script_reloaded" or e.get("trigger") != "SIGHUP"]
    check(reloads and not bad, "SIGHUP reloads failed or missing: %s" % bad[:3])
    check(int(gdb.value("SELECT count(*) FROM mining_events")) > 0, "no award before SIGTERM")

    hook.faults = ["slow"]            # every webhook request is held from now on
    sim.advance(3)
    harness.wait_until(lambda: any(a == "slow" for a, _, _, _ in hook.answers()), 20,
                       "a webhook delivery in flight")
    eng.send_signal(signal.SIGTERM)
    events = check_stopped(eng, eng.wait_exit(20))
    check_polls(sim, eng, events, players)
    leased = gdb.value("SELECT count(*) FROM m2p_deliveries WHERE lease_until IS NOT NULL")
    check(leased == "0", "%s deliveries still leased after a normal stop" % leased)
    harness.note("%d reloads, %d awards before SIGTERM"
                 % (len(reloads), int(gdb.value("SELECT count(*) FROM mining_events"))))

    hook.faults = []
    end = pgserver.ledgers(sim, players)
    per_account = pgserver.expected_advc(base, end)
    eng = ctx.start_engine([], settings)
    pgserver.wait_totals(gdb, pgserver.expected_player_totals(per_account),
                         "every player's totals to match the ledger after SIGTERM",
                         timeout=60, engines=[eng])
    pgserver.check_accounts_exact(gdb, per_account, base, end)
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    wait_all_notified(gdb, [eng])
    n = int(gdb.value("SELECT count(*) FROM mining_events"))
    harness.wait_until(lambda: len(sio.ids()) >= n, 10, "the Socket.IO server's records")
    repeats = ns.check_each_award_delivered(
        gdb, {"socketio": [ev for _, ev in sio.events()], "webhook": hook.confirmed()})
    harness.note("%d awards, repeats by event_id %s" % (n, repeats))
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    sio.stop()
    hook.close()


harness.main(globals())
