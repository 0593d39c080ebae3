"""Issue 4: the database password never appears in the engine's output.

The server requires scram-sha-256 for the role the engine uses (pg_hba: only postgres is
trusted), and the engine gets DATABASE_URL with a password, as a key=value conninfo and as
a postgresql:// URL:

- a WRONG password: the service, --migrate and --once all fail with a message about the
  authentication, and neither the password nor any fragment of it is in stdout or stderr
  (also with LOG_LEVEL=debug and LOG_FORMAT=text, and with a password that needs quoting);
- an invalid setting next to the secret DATABASE_URL: exit 78, no password in the message;
- the RIGHT password: the engine runs and polls; then the role's password is changed and
  its sessions are terminated, so every reconnection attempt fails authentication for a
  while; the password is still nowhere in the output.
"""

import harness
import pgserver
from harness import check

ROLE = "m2p_app"
RIGHT = "Rt7pQx2VmZ9kLw4s"
WRONG = "Wq8nJz3HfY6cBd1e"
WRONG_QUOTED = "Wx9 p@ss'w0rd\\Kj5"   # a space, an @, a quote and a backslash

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer(hba=["local all postgres trust",
                                     "local all all scram-sha-256"])
        _pg.sql("SET password_encryption = 'scram-sha-256'; "
                "CREATE ROLE %s LOGIN PASSWORD '%s'" % (ROLE, RIGHT))
        _pg.sql('CREATE DATABASE "secret" OWNER %s' % ROLE)
    return _pg


def quote_conninfo(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fragments(password):
    """The password and every 6-character piece of it (a partial leak is a leak too)."""
    parts = {password}
    for i in range(len(password) - 5):
        parts.add(password[i:i + 6])
    return parts


def check_absent(text, password, what):
    found = sorted(f for f in fragments(password) if f in text)
    check(not found, "%s: the password (or a piece of it: %s) appears in the output:\n%s"
          % (what, found[:3], excerpt(text, found[0]) if found else ""))


def excerpt(text, needle):
    i = text.find(needle)
    return text[max(0, i - 300):i + 300]


def check_auth_failure_hidden(ctx, urls, password):
    for form, url in urls:
        for args, extra in (([], {}),
                            ([], {"LOG_LEVEL": "debug"}),
                            ([], {"LOG_FORMAT": "text"}),
                            (["--migrate"], {}),
                            (["--once"], {})):
            settings = dict({"DATABASE_URL": url}, **extra)
            rc, _, out, err = ctx.run_engine(args, settings, scripts=args != ["--migrate"],
                                             timeout=60)
            what = "%s %s %s" % (form, " ".join(args) or "service", extra or "")
            text = out + "\n" + err
            check(rc != 0, "%s: the engine succeeded with a wrong password" % what)
            check("authentication failed" in text or "password" in text.lower(),
                  "%s: the failure should say authentication failed: %s" % (what, text[-800:]))
            check_absent(text, password, what)


def test_wrong_password_never_printed(ctx):
    server = pg()
    urls = [("conninfo", server.conninfo(db="secret", user=ROLE, password=WRONG)),
            ("url", server.url(db="secret", user=ROLE, password=WRONG))]
    check_auth_failure_hidden(ctx, urls, WRONG)


def test_wrong_password_that_needs_quoting(ctx):
    server = pg()
    base = server.conninfo(db="secret", user=ROLE)
    urls = [("quoted conninfo", base + " password=" + quote_conninfo(WRONG_QUOTED)),
            ("percent-encoded url", server.url(db="secret", user=ROLE, password=WRONG_QUOTED))]
    check_auth_failure_hidden(ctx, urls, WRONG_QUOTED)


def test_invalid_setting_next_to_the_password(ctx):
    server = pg()
    url = server.url(db="secret", user=ROLE, password=RIGHT)
    for args in ([], ["--migrate"]):
        rc, _, out, err = ctx.run_engine(args, {"DATABASE_URL": url,
                                                "POLL_INTERVAL_SECONDS": "0"}, timeout=60)
        check(rc == 78, "an invalid setting should exit 78, got %s: %s" % (rc, out + err))
        check("POLL_INTERVAL_SECONDS" in out + err, "the bad setting is not named: %s"
              % (out + err))
        check_absent(out + "\n" + err, RIGHT, "invalid configuration %s" % args)


def test_right_password_then_lost(ctx):
    server = pg()
    sim = ctx.start_sim("--clock", "manual")
    url = server.conninfo(db="secret", user=ROLE, password=RIGHT)
    gdb = pgserver.GameDb(server, "secret")
    rc, _, out, err = ctx.run_engine(["--migrate"], {"DATABASE_URL": url}, scripts=False)
    check(rc == 0, "--migrate as %s failed: %s %s" % (ROLE, out, err))
    check_absent(out + "\n" + err, RIGHT, "--migrate")
    players = harness.make_players(3)
    gdb.add_players(players)
    settings = pgserver.engine_settings(sim, gdb, DATABASE_URL=url, ENGINE_ID="secretive")
    eng = ctx.start_engine([], settings)
    pgserver.wait_polls([eng], None, pgserver.accounts_of(players), 2, "polls with the "
                        "right password")
    # the password changes under the engine and its sessions are cut: every reconnection
    # fails authentication until the password is back
    mark = eng.count()
    server.sql("ALTER ROLE %s PASSWORD 'SomethingElse42'" % ROLE)
    server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s'"
               % ROLE)
    eng.wait_for(lambda e: e["event"] == "database_connect_failed", 60,
                 "a failed reconnection", since=mark)
    failure = eng.named("database_connect_failed", mark)[0]
    check("authentication" in failure.get("error", ""),
          "the reconnection should fail authentication: %s" % failure["_raw"])
    server.sql("ALTER ROLE %s PASSWORD '%s'" % (ROLE, RIGHT))
    mark = eng.count()
    eng.wait_for(lambda e: e["event"] == "database_connected", 90, "the reconnection",
                 since=mark)
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    with open(eng.stdout_path) as f:
        text = f.read()
    text += "\n" + eng.stderr_text()
    check_absent(text, RIGHT, "a running engine that lost its connections")


harness.main(globals())
