"""Issue 9: the demo (examples/demo.sh) starts the Socket.IO relay when Node.js is there.

- test_demo_starts_the_relay: the demo, its relay port taken (DEMO_RELAY_PORT), starts the
  relay on a free port instead, prints the page's URL for alice; the page is served, a
  socket.io-client in alice's room receives her rewards from the engine; the relay's engine
  token is in no output; Ctrl-C stops the relay with everything else.
- test_demo_runs_without_node: with no node or npm on PATH the demo says so and runs
  without the relay (rewards, totals, exit status 0).

Like demo_lifecycle.sh, the demo runs with DEMO_BUILD (no install, no build) and its own
DEMO_WORK; every process it starts carries DEMO_WORK in its environment.
"""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import harness
import relay_helpers
from harness import check, fail
from relay_helpers import Client


def leftovers(work):
    """Processes (other than ours) with DEMO_WORK=work in their environment."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if ("DEMO_WORK=" + work).encode() in env:
            found.append(int(pid))
    return found


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(kv.decode("utf-8", "replace").split("=", 1)
                    for kv in f.read().split(b"\0") if b"=" in kv)


class Demo:
    def __init__(self, ctx, env_extra, path=None):
        os.chmod(ctx.tmp, 0o755)  # PostgreSQL runs as the postgres user when we are root
        self.work = os.path.join(ctx.tmp, "work")
        self.log = os.path.join(ctx.tmp, "demo.log")
        env = dict(os.environ, DEMO_WORK=self.work, DEMO_BUILD=ctx.build_dir, **env_extra)
        env.pop("DATABASE_URL", None)
        if path is not None:
            env["PATH"] = path
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen([os.path.join(harness.REPO, "examples", "demo.sh")],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, cwd=harness.REPO, env=env,
                                     start_new_session=True)
        harness._register(self.proc)

    def text(self):
        return harness.read_text(self.log)

    def wait_text(self, pattern, what, timeout=180):
        def found():
            m = re.search(pattern, self.text(), re.M)
            if m is None and self.proc.poll() is not None:
                fail("the demo exited (status %s) while waiting for %s; its output ends:\n%s"
                     % (self.proc.returncode, what, "\n".join(self.text().splitlines()[-20:])))
            return m
        return harness.wait_until(found, timeout, what, interval=0.2)

    def wait_exit(self, timeout=120):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            fail("the demo did not exit within %d s" % timeout)
        harness._unregister(self.proc)
        self._out.close()
        return rc

    def kill_all(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in leftovers(self.work):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def with_demo(fn):
    def test(ctx):
        demos = []
        try:
            fn(ctx, lambda *a, **kw: demos.append(Demo(ctx, *a, **kw)) or demos[-1])
        except BaseException:
            for line in (demos[-1].text().splitlines()[-20:] if demos else []):
                print("     demo| " + line[:300])
            raise
        finally:
            relay_helpers.close_all(ctx)
            for d in demos:
                d.kill_all()
    test.__name__ = fn.__name__
    return test


@with_demo
def test_demo_starts_the_relay(ctx, start_demo):
    relay_helpers.require_node()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    try:
        demo = start_demo({"DEMO_RELAY_PORT": str(busy)})
        m = demo.wait_text(r"^  (http://127\.0\.0\.1:(\d+))/\?player=(\d+)$", "the page's URL")
    finally:
        taken.close()
    url, port, alice = m.group(1), int(m.group(2)), int(m.group(3))
    check(port != busy, "the relay should have moved off the taken port %d" % busy)
    with urllib.request.urlopen(url + "/?player=%d" % alice, timeout=30) as r:
        page = r.read().decode()
    check(r.status == 200 and "/socket.io/socket.io.js" in page and "mining_reward" in page,
          "GET / should serve the rewards page: %d %r" % (r.status, page[:200]))

    relay_pid = [p for p in leftovers(demo.work)
                 if "RELAY_ENGINE_TOKEN" in environ_of(p)]
    check(len(relay_pid) == 1, "one relay process should run: %s" % relay_pid)
    token = environ_of(relay_pid[0])["RELAY_ENGINE_TOKEN"]
    check(len(token) >= 32, "the demo's engine token is too short: %d characters" % len(token))

    player = Client(ctx, url, join=alice, name="alice").wait_ready()
    line = player.wait_line(lambda l: "reward" in l, "a reward for alice", timeout=180)
    check(line["reward"].get("player_id") == alice and line["reward"].get("username") == "alice",
          "alice's room got another player's reward: %s" % line["reward"])

    os.killpg(demo.proc.pid, signal.SIGINT)
    demo.wait_exit()
    harness.wait_until(lambda: not leftovers(demo.work), 30, "everything the demo started to "
                       "stop (left: %s)" % leftovers(demo.work))
    logs = demo.text()
    for name in ("relay.out", "sim.out", "sim.err"):
        path = os.path.join(demo.work, "demo", name)
        if os.path.exists(path):
            logs += harness.read_text(path)
    check(token not in logs, "the engine token appears in the demo's output or logs")


@with_demo
def test_demo_runs_without_node(ctx, start_demo):
    # PATH: every command of the usual directories except node and npm
    nonode = os.path.join(ctx.tmp, "bin")
    os.makedirs(nonode)
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = os.path.join(nonode, name)
            if name not in ("node", "nodejs", "npm", "npx") and not os.path.lexists(target):
                os.symlink(os.path.join(d, name), target)
    demo = start_demo({"DEMO_SECONDS": "3"}, path=nonode)
    rc = demo.wait_exit(180)
    text = demo.text()
    check(rc == 0, "the demo without Node.js failed (status %s):\n%s"
          % (rc, "\n".join(text.splitlines()[-20:])))
    check("Node.js is not installed" in text, "the demo did not say the relay is off")
    check("total_advc_mined" in text, "the demo did not print the players' totals")
    check("Socket.IO relay on" not in text, "a relay started without Node.js?")
    check(not leftovers(demo.work), "processes left: %s" % leftovers(demo.work))


harness.main(globals())
