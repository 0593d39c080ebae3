"""Issue 12: no secret ever reaches the engine's output, whatever path prints a value.

Secrets: the database password (in DATABASE_URL, percent-encoded), WEBHOOK_SECRET,
ADMIN_TOKEN, SOCKETIO_AUTH, and the user:password of every URL setting. Every run below
gets all of them and greps ALL of stdout and stderr for each secret, its percent-encoded form
and every 8-character piece of it (a cut-off secret is a leak too):

- a .env line `SETTING=${SECRET}` for each secret and settings of every type (the first
  hostile run found AUTO_MIGRATE=${DATABASE_URL} printing the password in "is not a boolean");
- invalid URL settings with user:password@ (SOCKETIO_URL, CPU_POOL_URL, ZPOOL_URL, ...);
- `--check` with a CPU_POOL_URL that has credentials and a query (cpu_pool_url_query_dropped);
- `--help`;
- the service, --once and --migrate failing on an unreachable database, at debug level, in
  both log formats, with credentials in every URL setting;
- a running engine (--dry-run) polling the simulator through URLs with credentials: its log,
  /status, /metrics and the answer of a POST /reload that fails on AUTO_MIGRATE=${DATABASE_URL};
- `--probe` (prints the request URL) and `--check` with a script error quoting a setting.
No PostgreSQL is needed: the database is 127.0.0.1:1 (connection refused).
"""

import os
import urllib.parse

import harness
from adminhttp import free_port, request, wait_listening
from harness import check

DB_PW = "Zq7dbPw!s3cr@t"
DATABASE_URL = "postgresql://m2p:%s@127.0.0.1:1/m2p" % urllib.parse.quote(DB_PW, safe="")
WEBHOOK_SECRET = "Wh00kSecret/x9+="
ADMIN_TOKEN = "Adm1nTok3n:y8q"
SIO_TOKEN = "S10authTok z7w"
SOCKETIO_AUTH = '{"token":"%s"}' % SIO_TOKEN
SIO_PW = "SioPassw0rd7"
CPU_PW = "CpuPassw0rd8"
ZPOOL_PW = "ZpoolPassw0rd9"
HOOK_PW = "HookUrlPassw0rd6"

SECRETS = {"DATABASE_URL": DATABASE_URL, "WEBHOOK_SECRET": WEBHOOK_SECRET,
           "ADMIN_TOKEN": ADMIN_TOKEN, "SOCKETIO_AUTH": SOCKETIO_AUTH}
SECRET_TEXTS = [DB_PW, WEBHOOK_SECRET, ADMIN_TOKEN, SIO_TOKEN, SIO_PW, CPU_PW, ZPOOL_PW,
                HOOK_PW]

# One or more settings of every type, and every setting the hostile run named.
TARGETS = ["AUTO_MIGRATE", "ENGINE_ID", "CPU_POOL_URL", "ZPOOL_URL", "SOCKETIO_URL",
           "AP_PER_ADVC", "DB_POOL_SIZE", "LOG_LEVEL", "SOCKETIO_NAMESPACE", "SOCKETIO_PATH",
           "WEBHOOK_URLS", "PG_NOTIFY_CHANNEL", "ZPOOL_PROXY", "ADMIN_LISTEN", "RPLANT_DIV2",
           "ADVC_ADDRESS_VERSIONS", "RPLANT_DASH_URL", "HTTP_CLIENT"]


def needles():
    found = set()
    for s in SECRET_TEXTS:
        for form in (s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)):
            found.add(form)
            for i in range(len(form) - 7):
                found.add(form[i:i + 8])
    return found


NEEDLES = needles()


def check_absent(text, what):
    hits = sorted(n for n in NEEDLES if n in text)
    if hits:
        i = text.find(hits[0])
        harness.fail("%s: a secret (or a piece of one: %r) is in the output:\n%s"
                     % (what, hits[:3], text[max(0, i - 300):i + 300]))


def run(ctx, args, settings=None, env_file=None, scripts=True, expect=None, pools_dir=None):
    merged = dict(SECRETS, **(settings or {}))
    if env_file is not None:
        with open(os.path.join(ctx.tmp, ".env"), "w") as f:
            f.write(env_file)
    rc, _, out, err = ctx.run_engine(args, merged, scripts=scripts, timeout=60,
                                     pools_dir=pools_dir)
    what = "%s %s %r" % (" ".join(args) or "service", settings or "", env_file or "")
    check_absent(out + "\n" + err, what)
    if expect is not None:
        check(rc in expect, "%s: exit %s, expected %s:\n%s" % (what, rc, expect, out + err))
    return rc, out + err


def test_secret_expanded_into_other_settings(ctx):
    # The known case first, with its exact message, so the test shows what it guards.
    rc, text = run(ctx, ["--migrate"], env_file="AUTO_MIGRATE=${DATABASE_URL}\n",
                   scripts=False, expect=(78,))
    check("AUTO_MIGRATE" in text and "is not a boolean" in text,
          "the bad setting should be named: %s" % text)
    for name in SECRETS:
        for target in TARGETS:
            run(ctx, ["--migrate"], env_file="%s=${%s}\n" % (target, name), scripts=False,
                expect=(1, 78))


def test_secret_given_directly_to_other_settings(ctx):
    # the value typed (or pasted) into the wrong variable, with text around it
    for name, value in SECRETS.items():
        for target in TARGETS:
            run(ctx, ["--migrate"], {target: "x " + value + " y"}, scripts=False,
                expect=(1, 78))


def test_invalid_urls_with_userinfo(ctx):
    cases = {
        "SOCKETIO_URL": ["ftp://sio:%s@127.0.0.1:1/" % SIO_PW,
                         "ws://sio:%s@" % SIO_PW,
                         "http://sio:%s@127.0.0.1:1/a b" % SIO_PW,
                         "http://sio:%s@127.0.0.1:1/\"x" % SIO_PW],
        "CPU_POOL_URL": ["gopher://cpu:%s@127.0.0.1:1/" % CPU_PW,
                         "http://cpu:%s@ 127.0.0.1:1/" % CPU_PW],
        "ZPOOL_URL": ["ws://zp:%s@127.0.0.1:1/api" % ZPOOL_PW],
        "RPLANT_DASH_URL": ["ftp://zp:%s@127.0.0.1:1/api" % ZPOOL_PW],
        "WEBHOOK_URLS": ["http://wh:%s@127.0.0.1:1/hook,ftp://wh:%s@x/" % (HOOK_PW, HOOK_PW)],
        "ZPOOL_PROXY": ["http://px:%s@127.0.0.1:1 /" % ZPOOL_PW],
    }
    for name, values in cases.items():
        for value in values:
            rc, text = run(ctx, ["--migrate"], {name: value}, scripts=False, expect=(1, 78))
            check(rc != 78 or name in text,
                  "%s=%r: the setting should be named: %s" % (name, value, text))
            # what the settings let through, the service itself refuses or uses
            run(ctx, [], {name: value})


def test_check_and_help(ctx):
    pool_urls = {"CPU_POOL_URL": "http://cpu:%s@127.0.0.1:1/api/worker_stats?addr=" % CPU_PW,
                 "ZPOOL_URL": "http://zp:%s@127.0.0.1:1/api/walletEx" % ZPOOL_PW,
                 "SOCKETIO_URL": "http://sio:%s@127.0.0.1:1/" % SIO_PW,
                 "WEBHOOK_URLS": "http://wh:%s@127.0.0.1:1/hook" % HOOK_PW}
    rc, text = run(ctx, ["--check"], pool_urls, expect=(0,))
    check("cpu_pool_url_query_dropped" in text,
          "the query-dropped warning should be printed: %s" % text)
    check("127.0.0.1:1/api/worker_stats" in text, "the URL (without credentials) should be "
          "shown: %s" % text)
    run(ctx, ["--check"], dict(pool_urls, LOG_FORMAT="json"), expect=(0,))
    run(ctx, ["--help"], pool_urls, scripts=False, expect=(0,))


def test_unreachable_database(ctx):
    urls = {"CPU_POOL_URL": "http://cpu:%s@127.0.0.1:1/api/worker_stats?addr=" % CPU_PW,
            "ZPOOL_URL": "http://zp:%s@127.0.0.1:1/api/walletEx" % ZPOOL_PW,
            "SOCKETIO_URL": "http://sio:%s@127.0.0.1:1/" % SIO_PW,
            "WEBHOOK_URLS": "http://wh:%s@127.0.0.1:1/hook" % HOOK_PW,
            "ENGINE_ID": "engine-" + ADMIN_TOKEN, "LOG_LEVEL": "debug"}
    conninfo = "host=127.0.0.1 port=1 dbname=m2p user=m2p password='%s'" % DB_PW
    for fmt in ("json", "text"):
        for args in ([], ["--once"], ["--migrate"]):
            for db in (DATABASE_URL, conninfo):
                rc, text = run(ctx, args, dict(urls, LOG_FORMAT=fmt, DATABASE_URL=db),
                               scripts=args != ["--migrate"], expect=(1,))
                check("database" in text, "the failure should name the database: %s" % text)


def test_running_engine_status_and_reload(ctx):
    """A running engine (--dry-run, no database) with credentials in every pool URL, a
    secret in ENGINE_ID and a reload that fails on AUTO_MIGRATE=${DATABASE_URL}: its logs,
    /status, /metrics and the reload's answer hold no secret, and it still polls."""
    port = free_port()
    sim = ctx.start_sim("--payout-interval", "2")
    settings = {name: url.replace("http://", "http://u:%s@" % CPU_PW, 1)
                for name, url in sim.pool_env().items()}
    settings.update(POLL_INTERVAL_SECONDS=1, LOG_LEVEL="debug", ZPOOL_PER_SECOND=100,
                    ADMIN_LISTEN="127.0.0.1:%d" % port, ENGINE_ID="e-" + WEBHOOK_SECRET)
    settings.update(SECRETS)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(2)], settings)
    wait_listening(eng, port)
    for pool in ("cpu-pool", "rplant", "zpool"):  # the credentials did not break the URLs
        eng.wait_for(lambda e: e["event"] == "pool_poll_success" and e.get("pool") == pool,
                     30, "a successful poll of %s" % pool)
    with open(os.path.join(ctx.tmp, ".env"), "w") as f:
        f.write("AUTO_MIGRATE=${DATABASE_URL}\n")
    status, _, reload_body = request(port, "/reload", "POST",
                                     {"Authorization": "Bearer " + ADMIN_TOKEN})
    check(status == 500 and "AUTO_MIGRATE" in str(reload_body),
          "the reload should fail naming AUTO_MIGRATE: %s %s" % (status, reload_body))
    status_body = request(port, "/status")[2]
    metrics = request(port, "/metrics")[2]
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    with open(eng.stdout_path) as f:
        out = f.read()
    for what, text in (("output", out + "\n" + eng.stderr_text()), ("/status", status_body),
                       ("/metrics", metrics), ("the reload answer", reload_body)):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        check_absent(text, what)


def test_probe_and_script_errors(ctx):
    """--probe prints the request URL (with credentials in the pool URL), and --check prints
    a script's load error that quotes a setting's value."""
    sim = ctx.start_sim("--clock", "manual")
    settings = {name: url.replace("http://", "http://u:%s@" % CPU_PW, 1)
                for name, url in sim.pool_env().items()}
    for pool, wallet in (("cpu-pool", harness.advc_wallet(1)), ("zpool", harness.btc_wallet(1))):
        rc, text = run(ctx, ["--probe", pool, wallet], settings, expect=(0,))
        check("url: http://***@127.0.0.1" in text, "--probe %s: the URL should be shown "
              "without its credentials: %s" % (pool, text))
    pools = os.path.join(ctx.tmp, "pools")
    os.mkdir(pools)
    with open(os.path.join(pools, "leaky.lua"), "w") as f:
        f.write('error("bad endpoint " .. m2p.env("ZPOOL_URL", "") .. " " ..\n'
                '      m2p.env("ENGINE_ID", ""))\n')
    rc, text = run(ctx, ["--check"], {"ZPOOL_URL": "http://zp:%s@127.0.0.1:1/" % ZPOOL_PW,
                                      "ENGINE_ID": "e-" + ADMIN_TOKEN},
                   pools_dir=pools, expect=(1,))
    check("bad endpoint http://***@127.0.0.1:1/" in text,
          "--check should show the script's error, scrubbed: %s" % text)


harness.main(globals())
