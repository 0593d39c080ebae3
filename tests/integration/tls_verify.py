"""TLS verification of pool requests (issue 12): on by default, off only by the operator.

A cpu-pool over https on loopback with a self-signed certificate made by `openssl req` at test
time (for 127.0.0.1, so that only the trust is missing, not the name). Three engines at once:

- defaults: every poll fails with libcurl's "SSL certificate problem" and nothing is awarded;
- CPU_POOL_TLS_VERIFY=false: pool_tls_verify_off is logged at start, the polls succeed and
  the honest increase is awarded;
- a copy of pools/cpu-pool.lua that asks for no verification in every spelling a script
  could try (`tls_verify = false`, `insecure = true`, `ssl_verify = false`): ignored, the
  polls fail as with the defaults.

Engine: --dry-run --accounts (awards are logged as mining_reward_detected), one second between
polls. Nothing is asserted about time.
"""

import os
import ssl
import subprocess
import threading

import harness
from harness import check
from hostile_answers import BASELINE, HONEST, Pool, json_answer, nomp_body, wallet_of


def self_signed(ctx):
    cert, key = os.path.join(ctx.tmp, "cert.pem"), os.path.join(ctx.tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def tls_pool(cert, key):
    """cpu-pool's worker_stats over https: a wallet's first answer is the baseline, every later
    one the honest increase."""
    seen, lock = {}, threading.Lock()

    def answer(n, path):
        wallet = wallet_of(path)
        with lock:
            k = seen[wallet] = seen.get(wallet, 0) + 1
        return json_answer(nomp_body(wallet, BASELINE if k == 1 else HONEST))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    return Pool(answer, tls)


def insecure_script_pools(ctx):
    with open(os.path.join(harness.REPO, "pools", "cpu-pool.lua")) as f:
        source = f.read()
    marker = '  name = "cpu-pool",\n'
    check(marker in source, "pools/cpu-pool.lua changed: no %r line" % marker)
    asks = '  tls_verify = false,\n  insecure = true,\n  ssl_verify = false,\n'
    return ctx.pools_dir({"cpu-pool.lua": source.replace(marker, marker + asks, 1)})


def named(events, name):
    return [e for e in events if e["event"] == name]


def test_self_signed_pool(ctx):
    pool = tls_pool(*self_signed(ctx))
    try:
        base = {"CPU_POOL_URL": pool.base + "/api/worker_stats", "RPLANT_ENABLED": "false", "ZPOOL_ENABLED": "false",
                "POLL_INTERVAL_SECONDS": "1", "LOG_LEVEL": "debug"}
        runs = {}
        for i, (what, extra, pools) in enumerate([
                ("defaults", {}, None),
                ("CPU_POOL_TLS_VERIFY=false", {"CPU_POOL_TLS_VERIFY": "false"}, None),
                ("a script asking for no verification", {}, insecure_script_pools(ctx))]):
            accounts = ctx.accounts(1, first_id=1 + i, zpool=False, name="accounts%d.json" % i)
            runs[what] = ctx.start_engine(["--dry-run", "--accounts", accounts],
                                          dict(base, **extra), pools_dir=pools)
        off = runs["CPU_POOL_TLS_VERIFY=false"]
        off.wait_until(lambda evs: named(evs, "mining_reward_detected"), timeout=60,
                       what="the award through an unverified connection")
        for what in ("defaults", "a script asking for no verification"):
            runs[what].wait_until(lambda evs: named(evs, "pool_poll_http_error"),
                                  timeout=60, what="a refused poll (%s)" % what)
        for what, eng in runs.items():
            eng.expect_clean_exit(eng.stop())
        for what in ("defaults", "a script asking for no verification"):
            events = runs[what].snapshot()
            errors = [e.get("error", "") for e in named(events, "pool_poll_http_error")]
            check(all("SSL certificate problem" in e for e in errors),
                  "%s: the refusal does not say it was the certificate: %s" % (what, errors))
            check(not named(events, "pool_poll_success") and
                  not named(events, "mining_reward_detected"),
                  "%s: a self-signed pool was polled successfully" % what)
            check(not named(events, "pool_tls_verify_off"),
                  "%s: pool_tls_verify_off logged without the setting" % what)
        events = off.snapshot()
        warned = named(events, "pool_tls_verify_off")
        check(len(warned) == 1 and warned[0].get("pool") == "cpu-pool" and
              warned[0].get("level") == "warning",
              "CPU_POOL_TLS_VERIFY=false must log one pool_tls_verify_off warning: %s" % warned)
        got = [e["advc_amount"] for e in named(events, "mining_reward_detected")]
        check(got == [HONEST - BASELINE], "awards %s through the unverified pool, expected %s"
              % (got, [HONEST - BASELINE]))
    finally:
        pool.close()


if __name__ == "__main__":
    harness.main(globals())
