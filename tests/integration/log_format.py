"""Issue 10, Logs: LOG_FORMAT=auto is the default, LOG_LEVEL and LOG_FORMAT change at reload.

With no LOG_FORMAT set the engine writes JSON lines into a pipe (journald, files, every other
test here) and readable "time level event key=value" text into a terminal (a pseudo-terminal
stands in for one). A SIGHUP after the --env-file changed switches the running engine from
info to debug (pool_poll_success is a debug record) and from JSON to text.
"""

import json
import os
import pty
import select
import signal
import subprocess
import time

import harness
from harness import check


def read_pty_until(fd, proc, needle, timeout):
    """What the engine wrote to the terminal, once it contains `needle`."""
    out = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            harness.fail("no %r on the terminal within %.0f s; it shows:\n%s"
                         % (needle, timeout, out.decode("utf-8", "replace")[-2000:]))
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the engine closed the terminal (it exited)
                chunk = b""
            if not chunk:
                harness.fail("the engine exited (status %s) before writing %r"
                             % (proc.poll(), needle))
            out += chunk
    return out.decode("utf-8", "replace")


def test_auto_is_text_at_a_terminal(ctx):
    sim = ctx.start_sim()
    master, slave = pty.openpty()
    argv = [ctx.engine_bin, "--dry-run", "--accounts", ctx.accounts(2)] + ctx.default_args()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.DEVNULL, cwd=ctx.tmp,
                            env=ctx.engine_env(sim.pool_env()))
    os.close(slave)
    try:
        text = read_pty_until(master, proc, "engine_started", 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        os.close(master)
    line = next(l for l in text.splitlines() if "engine_started" in l)
    check(not line.lstrip().startswith("{"), "a terminal got JSON: %r" % line)
    check(" info " in line and "message=" in line, "not the text format: %r" % line)
    check(rc == 0, "the engine exited with status %s" % rc)


def test_auto_is_json_in_a_pipe(ctx):
    sim = ctx.start_sim()
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(2)], sim.pool_env())
    eng.wait_for(lambda e: e["event"] == "engine_started", 30, "engine_started as JSON")
    eng.expect_clean_exit(eng.stop())
    check(not eng.other_lines, "lines that are not JSON records: %s" % eng.other_lines[:3])


def write_env(path, level, fmt):
    with open(path, "w") as f:
        f.write("LOG_LEVEL=%s\nLOG_FORMAT=%s\n" % (level, fmt))


def test_level_and_format_change_at_reload(ctx):
    sim = ctx.start_sim("--payout-interval", "2")
    env_file = os.path.join(ctx.tmp, "m2p.env")
    write_env(env_file, "info", "json")
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, ZPOOL_PER_SECOND=100)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(3), "--env-file", env_file],
                           settings)
    eng.wait_for(lambda e: e["event"] == "polling_cycle_complete", 30, "a polling cycle")
    check(not eng.named("pool_poll_success"), "debug records at LOG_LEVEL=info")

    write_env(env_file, "debug", "json")
    mark = eng.count()
    eng.send_signal(signal.SIGHUP)
    eng.wait_for(lambda e: e["event"] == "script_reloaded", 30, "the reload", since=mark)
    eng.wait_for(lambda e: e["event"] == "pool_poll_success", 30,
                 "a debug record after LOG_LEVEL=debug and SIGHUP", since=mark)

    write_env(env_file, "info", "text")
    eng.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: any("script_reloaded" in l for l in eng.other_lines), 30,
                       "script_reloaded as a text line after LOG_FORMAT=text and SIGHUP")
    text = [l for l in eng.other_lines if "script_reloaded" in l][0]
    check("trigger=SIGHUP" in text, "not the text format: %r" % text)
    for line in eng.other_lines:
        try:
            json.loads(line)
            harness.fail("a JSON line after LOG_FORMAT=text: %r" % line)
        except ValueError:
            pass
    eng.expect_clean_exit(eng.stop())


harness.main(globals())
