"""Talking to the engine's admin endpoint (ADMIN_LISTEN) from the integration tests."""

import socket
import urllib.error
import urllib.request

import harness
from harness import check


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, path, method="GET", headers=None, body=None, timeout=10):
    """(status, headers, body text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8")


def wait_listening(eng, port):
    """Waits until the engine's /healthz answers (fails if the engine exits first)."""
    def up():
        check(eng.proc.poll() is None, "the engine exited (status %s): %s"
              % (eng.proc.returncode, eng.stderr_text()[-2000:]))
        try:
            return request(port, "/healthz")[0] == 200
        except OSError:
            return False
    harness.wait_until(up, 30, "the admin endpoint to answer /healthz")
