"""Issue 12: valgrind memcheck reports no leak and no memory error for a polling run.

The engine runs under valgrind (--leak-check=full, definite and indirect leaks count as
errors, --error-exitcode) against the simulator: PostgreSQL as the store, a few players on
all three pools at a 1 s interval, polls with payouts, a player deactivated and a new one
inserted (the entries of issue 12's churn fix are released and reused), a SIGHUP that swaps
in a new script generation (the old one is freed once its polls end), then SIGTERM: exit 0
and a clean valgrind report.

Plain build only (valgrind and ASan do not mix): the test says "skipped" under the ASan
build, and when valgrind is not installed (tests/install-deps.sh installs it).

Suppressions: tests/integration/memcheck.supp, empty today. LuaJIT's heap is its own
mmap-based allocator (memcheck sees no blocks of it), and nothing in LuaJIT, libcurl, libpq
or libev is reported. A suppression may only cover a report understood to be a false
positive, explained next to it, never a leak.
"""

import os
import re
import shutil
import signal

import harness
import pgserver
from harness import check

PLAYERS = 4
SUPPRESSIONS = os.path.join(harness.REPO, "tests", "integration", "memcheck.supp")


def valgrind_prefix(log):
    return ["valgrind", "--tool=memcheck", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
            "--error-exitcode=99", "--track-fds=no", "--num-callers=30",
            "--suppressions=" + SUPPRESSIONS, "--log-file=" + log]


def report_summary(log):
    text = harness.read_text(log)
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    return text, int(errors.group(1)) if errors else None


def test_polling_run_under_memcheck(ctx):
    if harness.sanitized_build(ctx.build_dir) or not shutil.which("valgrind"):
        print("     skipped: %s" % ("ASan build" if shutil.which("valgrind")
                                    else "valgrind is not installed"))
        return
    pg = pgserver.PgServer()
    try:
        gdb = pgserver.GameDb.create(pg, "memcheck")
        sim = ctx.start_sim("--payout-interval", "2", "--seed", "5")
        pgserver.migrate(ctx, gdb)
        players = harness.make_players(PLAYERS)
        gdb.add_players(players)
        log = os.path.join(ctx.tmp, "valgrind.log")
        eng = ctx.start_engine([], pgserver.engine_settings(sim, gdb, ENGINE_ID="memcheck"),
                               prefix=valgrind_prefix(log))
        pgserver.wait_polls([eng], None, pgserver.accounts_of(players), 2,
                            "two polls of every account under valgrind", timeout=90)
        # churn: one player leaves, a new one arrives (takes the released entries)
        newcomer = harness.make_players(1, first_id=PLAYERS + 1)
        gdb.sql("UPDATE players SET active = false WHERE id = 1")
        gdb.add_players(newcomer, atomic=True)
        mark = pgserver.marks([eng])
        pgserver.wait_polls([eng], mark, pgserver.accounts_of(newcomer), 1,
                            "the new player's first poll", timeout=60)
        mark = pgserver.marks([eng])
        eng.send_signal(signal.SIGHUP)
        eng.wait_for(lambda e: e["event"] == "script_reloaded", 60, "script_reloaded", mark[0])
        pgserver.wait_polls([eng], mark, pgserver.accounts_of(players[1:] + newcomer), 2,
                            "two polls with the new generation", timeout=60)
        rc = eng.stop(timeout=90)
        text, errors = report_summary(log)
        check(errors is not None, "no valgrind summary in %s:\n%s" % (log, text[-3000:]))
        check(rc != 99 and errors == 0,
              "valgrind found %s errors (exit %s):\n%s" % (errors, rc, text[-6000:]))
        eng.expect_clean_exit(rc)
        harness.note("valgrind: %s" % " ".join(
            l.split("== ", 1)[-1] for l in text.splitlines()
            if "definitely lost" in l or "indirectly lost" in l or "possibly lost" in l
            or "still reachable" in l))
    finally:
        pg.close()


harness.main(globals())
