"""Issue 11: request caching (docs/scripting.md, "Requests are cached"), on a real PostgreSQL.

Two small pools on a loopback server the test controls (harness.PaidServer: GET
/<kind>/<wallet> -> {"wallet", "paid"}); each request() says it ran with m2p.log
(`test_request_built`, with the wallet), so the test counts the builds:

- `testpool` (cached, the default): over several polls of each account its request is built
  once per account; a wallet change builds the new wallet's request once (and the old one's
  never again); a reload of the script builds every request once more.
- `testnonce` (`cache_request = false`): built for every poll.
- A `cache_request` that is not a boolean is a load error naming the field.
Each count was one build per poll before the change.
"""

import harness
import pgserver
from harness import check

W1 = "AVKQt14kUsHQwX3ktixCqJDvmCkiCCT91C"
W2 = "APNfwY4sPbwVN48217LvUAESVibygqWYwC"
W_NEW = "AXwKLA16xbLWu7MfQfHwf9oaV9CxEHCzTp"
N_POLLS = 3

POOL_SOURCE = r'''
-- A test pool (revision %(rev)d): GET <TESTPOOL_URL>/%(kind)s/<wallet>
return {
  name = "%(name)s",
  currency = "ADVC",
  wallet_pattern = m2p.advc_address,
  %(cache)s
  request = function(wallet)
    m2p.log("info", "test_request_built", {pool = "%(name)s", wallet = wallet})
    return {url = m2p.env("TESTPOOL_URL", "http://127.0.0.1:9") .. "/%(kind)s/"
                  .. m2p.urlencode(wallet),
            headers = {Accept = "application/json"}}
  end,
  parse = function(response)
    local j = response.json
    if type(j) ~= "table" or j.wallet ~= response.wallet then return nil, "not this wallet" end
    local paid, err = m2p.num(j.paid)
    if paid == nil then return nil, "paid: " .. tostring(err) end
    return {paid = paid}
  end,
  limits = {concurrency = 2},
}
'''


def source(name, kind, cache="", rev=1):
    return POOL_SOURCE % {"name": name, "kind": kind, "cache": cache, "rev": rev}


_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def builds(eng, pool, wallet, since=0):
    return len([e for e in eng.named("test_request_built", since)
                if e.get("pool") == pool and e.get("wallet") == wallet])


def polls(eng, pool, player_id, since=0):
    return len([e for e in eng.named("pool_poll_success", since)
                if e.get("pool") == pool and e.get("player_id") == player_id])


def wait_polls(eng, accounts, n, what, since=0):
    eng.wait_until(lambda ev: all(polls(eng, pool, pid, since) >= n for pool, pid in accounts),
                   60, what)


@harness.with_paid_server
def test_built_once_per_wallet_and_generation(ctx, server):
    for w in (W1, W2, W_NEW):
        server.set(w, "1")
    gdb = pgserver.GameDb.create(pg(), "request_cache")
    pgserver.migrate(ctx, gdb)
    gdb.add_players([{"player_id": 1, "username": "player1", "wallet": W1},
                     {"player_id": 2, "username": "player2", "wallet": W2}])
    pools_dir, scripts_dir = harness.live_dirs(ctx, pools=[])
    cached_path = pools_dir + "/testpool.lua"
    harness.save_file(cached_path, source("testpool", "advc"))
    harness.save_file(pools_dir + "/testnonce.lua",
                      source("testnonce", "nonce", "cache_request = false,"))
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url,
                                        ENGINE_ID="request-cache")
    eng = harness.start_engine_dirs(ctx, [], settings, pools_dir, scripts_dir)
    accounts = [(pool, pid) for pool in ("testpool", "testnonce") for pid in (1, 2)]
    wait_polls(eng, accounts, N_POLLS, "%d polls of every account" % N_POLLS)

    for w in (W1, W2):
        n = builds(eng, "testpool", w)
        check(n == 1, "testpool: %s's request was built %d times over %d+ polls (cached: once)"
              % (w, n, N_POLLS))
    snap = pgserver.marks([eng])[0]
    for pid, w in ((1, W1), (2, W2)):
        # the opt-out: a build per poll (a poll whose build is logged may still be running)
        b, p = builds(eng, "testnonce", w), polls(eng, "testnonce", pid)
        check(b >= p >= N_POLLS, "testnonce (cache_request = false): %s built %d times for %d "
              "polls" % (w, b, p))

    # a wallet change: the new wallet's request is built once, the old one's never again
    gdb.sql("UPDATE players SET wallet_address = %s WHERE id = 1" % pgserver.lit(W_NEW))
    first = eng.wait_until(lambda ev: next(
        (i for i in range(snap, len(ev)) if ev[i]["event"] == "test_request_built"
         and ev[i].get("pool") == "testpool" and ev[i].get("wallet") == W_NEW), None),
        60, "the new wallet's first request")
    wait_polls(eng, [("testpool", 1)], N_POLLS, "%d polls of the new wallet" % N_POLLS,
               since=first)
    check(builds(eng, "testpool", W_NEW) == 1,
          "testpool: the new wallet's request was built %d times" % builds(eng, "testpool", W_NEW))
    check(builds(eng, "testpool", W1, snap) == 0, "the old wallet's request was built again")
    check(builds(eng, "testpool", W2) == 1,
          "testpool: the unchanged wallet's request was built %d times" % builds(eng, "testpool", W2))

    # a reload: every request is built once more, under the new generation
    mark = eng.count()
    harness.save_file(cached_path, source("testpool", "advc", rev=2), how="rename")
    eng.wait_for(lambda e: e["event"] == "script_reloaded", 30, "the reload", since=mark)
    wait_polls(eng, [("testpool", 1), ("testpool", 2)], N_POLLS, "polls after the reload",
               since=mark)
    for w in (W_NEW, W2):
        n = builds(eng, "testpool", w, mark)
        check(n == 1, "testpool after the reload: %s's request was built %d times (once)" % (w, n))
    failures = harness.poll_ends(eng.snapshot(), names=harness.POLL_FAILURE_EVENTS)
    check(not failures, "polls failed: %s" % failures[:3])
    eng.expect_clean_exit(eng.stop())


def test_cache_request_must_be_boolean(ctx):
    pools = ctx.pools_dir({"testpool.lua": source("testpool", "advc", 'cache_request = "no",')})
    rc, events, out, err = ctx.run_engine(["--check", "--accounts", ctx.accounts(1, zpool=False)],
                                          {}, pools_dir=pools, timeout=30)
    text = out + err
    check(rc != 0, "--check accepted cache_request = \"no\" (exit %d)" % rc)
    check("field 'cache_request' must be a boolean" in text,
          "the load error does not name cache_request: %s" % text[-1500:])


harness.main(globals())
