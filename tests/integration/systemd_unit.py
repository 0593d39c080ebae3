"""Issue 10, systemd: the example unit and the engine's side of Type=notify.

The unit: `systemd-analyze verify` accepts it (ExecStart pointed at the built binary, which
verify insists exists) with no warning at all, and `systemd-analyze security --offline`
rates it OK or better (docs/operations.md quotes the score). The protocol: the engine is
given NOTIFY_SOCKET, an AF_UNIX datagram socket bound here, as systemd would: READY=1
arrives once polling has started (after engine_started is logged), WATCHDOG=1 arrives again
and again when WATCHDOG_USEC is set and never when it is not, and STOPPING=1 follows SIGTERM,
after which the engine still exits 0.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import REPO, check

UNIT = os.path.join(REPO, "examples", "m2p-engine.service")


def unit_for(ctx):
    """A copy of the example unit whose ExecStart is the binary under test."""
    with open(UNIT) as f:
        text = f.read()
    text, n = re.subn(r"^ExecStart=\S+", "ExecStart=" + ctx.engine_bin, text, flags=re.M)
    check(n == 1, "the unit has %d ExecStart= lines" % n)
    path = os.path.join(ctx.tmp, "m2p-engine.service")
    with open(path, "w") as f:
        f.write(text)
    return path, text


def test_unit_passes_systemd_analyze(ctx):
    tool = shutil.which("systemd-analyze")
    check(tool, "systemd-analyze is missing (Debian package systemd: tests/install-deps.sh)")
    path, text = unit_for(ctx)
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=m2p",
                 "EnvironmentFile=", "NoNewPrivileges=true", "ProtectSystem=strict",
                 "ProtectHome=true", "PrivateTmp=true",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "SystemCallFilter=@system-service", "MemoryMax="):
        check(re.search("^" + re.escape(line), text, flags=re.M), "the unit lacks %s" % line)
    r = subprocess.run([tool, "verify", path], capture_output=True, text=True, timeout=60)
    # verify exits 0 on some mistakes (an unknown Type=) and only prints them: no output at all.
    check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
          "systemd-analyze verify (status %s):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    r = subprocess.run([tool, "security", "--offline=true", path], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
    check(m, "no score from systemd-analyze security:\n%s%s" % (r.stdout[-1000:], r.stderr))
    harness.note("systemd-analyze security: %s %s" % (m.group(1), m.group(2)))
    check(m.group(2) in ("SAFE", "OK"), "exposure %s %s" % (m.group(1), m.group(2)))


class NotifySocket:
    """What systemd's end of NOTIFY_SOCKET receives: one list of KEY=VALUE lines per datagram,
    with the time it arrived."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self._lock = threading.Lock()
        self._done = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            with self._lock:
                self.messages.append((time.time(), data.decode("utf-8", "replace").split("\n")))

    def with_line(self, line):
        with self._lock:
            return [(t, m) for t, m in self.messages if line in m]

    def wait_for(self, line, count=1, what=None):
        harness.wait_until(lambda: len(self.with_line(line)) >= count, 30,
                           what or "%d x %s on NOTIFY_SOCKET" % (count, line))
        return self.with_line(line)

    def close(self):
        self._done = True
        self._thread.join(5)
        self.sock.close()


def start_notified(ctx, extra):
    sim = ctx.start_sim()
    notify = NotifySocket(os.path.join(ctx.tmp, "notify.sock"))
    settings = dict(sim.pool_env(), NOTIFY_SOCKET=notify.path, **extra)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(2)], settings)
    return eng, notify


def test_ready_watchdog_stopping(ctx):
    eng, notify = start_notified(ctx, {"WATCHDOG_USEC": "200000"})
    try:
        ready_at = notify.wait_for("READY=1")[0][0]
        started = eng.wait_for(lambda e: e["event"] == "engine_started", 30, "engine_started")
        # The log line is written before the datagram is sent: its (truncated) timestamp
        # cannot be later than the datagram's arrival.
        check(started["_ts"] <= ready_at, "READY=1 arrived before polling started")
        check(len(notify.with_line("READY=1")) == 1, "READY=1 more than once")
        notify.wait_for("WATCHDOG=1", count=5)
        check(not notify.with_line("STOPPING=1"), "STOPPING=1 before SIGTERM")
        eng.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        eng.expect_clean_exit(eng.wait_exit(60))
    finally:
        notify.close()


def test_no_watchdog_unless_asked(ctx):
    eng, notify = start_notified(ctx, {})
    try:
        notify.wait_for("READY=1")
        eng.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        eng.expect_clean_exit(eng.wait_exit(60))
        check(not notify.with_line("WATCHDOG=1"), "WATCHDOG=1 without WATCHDOG_USEC")
    finally:
        notify.close()


harness.main(globals())
