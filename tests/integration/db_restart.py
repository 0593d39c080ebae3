"""Issue 4: the database restarted under a running engine: nothing lost or duplicated.

One engine polls 10 players x 3 pools (simulator, manual clock) and commits to a real
PostgreSQL, which is taken away four times while payouts keep coming:
  1. pg_ctl restart -m fast    (connections closed by the server, back at once)
  2. pg_ctl restart -m immediate (backends killed, crash recovery)
  3. pg_ctl stop, the clock moves and the engine runs without a database for a while (its
     reconnection attempts fail; commits wait for a connection), then pg_ctl start
  4. pg_ctl restart -m fast again, right after a clock step (commits in flight)
The engine must keep running, log database_disconnected and database_connected, follow a
player inserted after the restarts (NOTIFY works on the new listen connection), and in the
end every total equals the simulator's ledger exactly.

Stopping (SIGTERM) around an outage must be clean too (status 0, no sanitizer report):
just as the database comes back (statements queued during the outage run while the engine
closes), and while it is still down with commits waiting for a connection (the engine
gives up after its shutdown timeout; the next engine awards what was not stored).
"""

import time

import harness
import pgserver
from harness import check

PLAYERS = 10

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def connected_after(eng, since, role=None):
    return [e for e in eng.named("database_connected", since)
            if role is None or e.get("role") == role]


def test_database_restart_mid_run(ctx):
    server = pg()
    gdb = pgserver.GameDb.create(server, "restart")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "4", "--seed", "5")
    players = harness.make_players(PLAYERS)
    late = harness.make_players(1, first_id=PLAYERS + 1)
    accounts = pgserver.accounts_of(players)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    base = pgserver.ledgers(sim, players)
    check(all(int(l["count"]) == 0 for l in base.values()), "paid at time 0")
    eng = ctx.start_engine([], pgserver.engine_settings(sim, gdb, ENGINE_ID="restart"))
    pgserver.wait_polls([eng], None, accounts, 2, "the baselines")
    check(len(gdb.accounts()) == len(accounts), "baselines missing from m2p_accounts")

    started = time.monotonic()

    def step(seconds, what):
        since = pgserver.marks([eng])
        sim.advance(seconds)
        pgserver.wait_polls([eng], since, accounts, 2, what)
        harness.note("%5.1f s: %s" % (time.monotonic() - started, what))

    def back_up(mark, what):
        # every pool connection and the listen connection come back
        harness.wait_until(lambda: len(connected_after(eng, mark, "listen")) >= 1
                           and len(connected_after(eng, mark, "pool")) >= 1
                           or eng.proc.poll() is not None, 60,
                           "database_connected after %s" % what)
        check(eng.proc.poll() is None, "the engine exited after %s (status %s): %s"
              % (what, eng.proc.returncode, eng.stderr_text()[-2000:]))
        harness.note("%5.1f s: back up after %s" % (time.monotonic() - started, what))

    step(9, "polls after the first clock step")

    for n, mode in ((1, "fast"), (2, "immediate")):
        mark = eng.count()
        sim.advance(7)
        time.sleep(0.3)
        server.restart(mode)
        back_up(mark, "restart %d (-m %s)" % (n, mode))
        step(6, "polls after restart %d" % n)

    # 3: a few seconds without any database while payouts continue
    mark = eng.count()
    server.stop("fast")
    sim.advance(8)
    harness.wait_until(lambda: eng.named("database_connect_failed", mark)
                       or eng.proc.poll() is not None, 30,
                       "a failed reconnection attempt while the database is down")
    check(eng.proc.poll() is None, "the engine exited while the database was down: %s"
          % eng.stderr_text()[-2000:])
    time.sleep(1)
    server.start()
    back_up(mark, "stop/start")
    step(5, "polls after the outage")

    # 4: restart with commits in flight
    mark = eng.count()
    sim.advance(11)
    server.restart("fast")
    back_up(mark, "restart 4")

    disconnected = eng.named("database_disconnected")
    check(len(disconnected) >= 4, "expected database_disconnected for each restart, got %d"
          % len(disconnected))

    # players still follow the table: NOTIFY on the re-established listen connection
    late_base = pgserver.ledgers(sim, late)
    mark = pgserver.marks([eng])
    gdb.add_players(late)
    pgserver.wait_polls([eng], mark, pgserver.accounts_of(late), 2,
                        "the polls of a player inserted after the restarts", timeout=30)
    step(13, "polls after the last step")

    end = pgserver.ledgers(sim, players + late)
    per_account = pgserver.expected_advc({**base, **late_base}, end)
    expected = pgserver.expected_player_totals(per_account)
    pgserver.wait_totals(gdb, expected, "the totals to match the ledger", engines=[eng])
    since = pgserver.marks([eng])
    pgserver.wait_polls([eng], since, accounts, 2, "two more polls")
    diff = pgserver.totals_diff(gdb, expected)
    check(not diff, "totals moved after they matched the ledger: %s" % diff)
    pgserver.check_accounts_exact(gdb, per_account, {**base, **late_base}, end)
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    harness.note("%d disconnections, %d failed commits, %d mining_events"
                 % (len(disconnected), len(eng.named("pool_poll_commit_failed")),
                    int(gdb.value("SELECT count(*) FROM mining_events"))))
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    check(eng.named("engine_stopped"), "no engine_stopped at the end")


def test_stop_as_database_returns(ctx):
    """SIGTERM just as the database comes back after an outage (no payout pending, so no
    poll waits for a commit): what was queued meanwhile (heartbeats, batched timestamps,
    the player refresh after LISTEN) runs while the engine closes. It must exit cleanly:
    status 0, no sanitizer report."""
    server = pg()
    gdb = pgserver.GameDb.create(server, "stop_returns")
    sim = ctx.start_sim("--clock", "manual")
    players = harness.make_players(3)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    eng = ctx.start_engine([], pgserver.engine_settings(sim, gdb, ENGINE_ID="stop-returns"))
    pgserver.wait_polls([eng], None, pgserver.accounts_of(players), 2, "the baselines")
    mark = eng.count()
    server.stop("fast")
    try:
        eng.wait_for(lambda e: e["event"] == "database_connect_failed", 30,
                     "a failed reconnection", since=mark)
        time.sleep(1.5)  # heartbeats queue up meanwhile
    finally:
        server.start()
    rc = eng.stop(timeout=30)
    eng.expect_clean_exit(rc)


def test_stop_while_database_down(ctx):
    """SIGTERM while the database is down and commits are waiting for a connection: the
    engine exits cleanly (status 0, no sanitizer report) within its shutdown timeout plus
    the few seconds it gives last writes; the commits that never reached the database are
    not lost: the next engine awards them."""
    server = pg()
    gdb = pgserver.GameDb.create(server, "stop_down")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "4", "--seed", "6")
    players = harness.make_players(5)
    accounts = pgserver.accounts_of(players)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    base = pgserver.ledgers(sim, players)
    settings = pgserver.engine_settings(sim, gdb, ENGINE_ID="stop-down",
                                        SHUTDOWN_TIMEOUT_SECONDS=1)
    eng = ctx.start_engine([], settings)
    pgserver.wait_polls([eng], None, accounts, 2, "the baselines")
    server.stop("fast")
    try:
        mark = eng.count()
        sim.advance(9)  # payouts whose commits cannot be written
        eng.wait_for(lambda e: e["event"] == "pool_poll_success", 30,
                     "a poll while the database is down", since=mark)
        eng.wait_for(lambda e: e["event"] == "database_connect_failed", 30,
                     "a failed reconnection", since=mark)
        # 1 s for the polls in flight, 3 s for the last writes: 30 s is plenty
        rc = eng.stop(timeout=30)
        eng.expect_clean_exit(rc)
    finally:
        server.start()
    eng2 = ctx.start_engine([], settings)
    end = pgserver.ledgers(sim, players)
    per_account = pgserver.expected_advc(base, end)
    pgserver.wait_totals(gdb, pgserver.expected_player_totals(per_account),
                         "the next engine to award what the stopped one could not store",
                         engines=[eng2])
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))
    rc = eng2.stop()
    eng2.expect_clean_exit(rc)


harness.main(globals())
