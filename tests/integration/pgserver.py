"""A throw-away PostgreSQL server for the integration tests (stdlib only), and helpers for
tests that run m2p-engine against a game database in it.

    pg = PgServer()                 # initdb into a fresh temporary directory, then start
    pg.createdb("game")
    rows = pg.sql("SELECT 1, NULL", db="game")        # -> [("1", None)]
    pg.restart()                    # pg_ctl restart -m fast
    pg.close()                      # stop and delete (also done at exit, whatever happens)

The server listens only on a Unix socket in its own directory (no TCP port at all), with
fsync off, and trusts every local connection unless told otherwise (`hba=` lines). When the
tests run as root, initdb and the server run as the `postgres` OS user (PostgreSQL refuses
to run as root): the directory is chown()ed to it and commands go through `runuser`.
A test process that dies without cleaning up (SIGKILL, a ctest timeout) leaves nothing
behind either: a watchdog process started with each server stops it and deletes its
directory once the test process is gone.

Everything is done with the PostgreSQL 15 binaries and `psql`; values come back as text
(exactly as PostgreSQL prints them, so NUMERIC amounts can be compared digit for digit),
NULL as None.
"""

import atexit
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
_FIELD = "\x1f"
_RECORD = "\x1e"
_NULL = "\x02NULL\x02"

_servers = []

# Run by a separate process (own session) for each server: waits until the test process
# closes the pipe or dies, however it dies (SIGKILL, a ctest timeout), then stops the
# server if it still runs and deletes the directory.
_WATCHDOG = r"""
import os, shutil, subprocess, sys
top, pg_ctl, data, as_postgres = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
try:
    sys.stdin.buffer.read()
except BaseException:
    pass
if os.path.exists(os.path.join(data, "postmaster.pid")):
    cmd = [pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "60", "stop"]
    if as_postgres:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, cwd=top, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
shutil.rmtree(top, ignore_errors=True)
"""


class PgError(Exception):
    pass


def _pg_bin(name):
    for d in PG_BIN_DIRS:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return found
    raise PgError("PostgreSQL binary %s not found (looked in %s and PATH)"
                  % (name, ", ".join(PG_BIN_DIRS)))


def _cleanup_all():
    for s in list(_servers):
        try:
            s.close()
        except Exception:
            pass


atexit.register(_cleanup_all)


class PgServer:
    """One PostgreSQL cluster in a temporary directory. Started by the constructor."""

    def __init__(self, hba=None, settings=None, port=5432, start=True):
        """hba: pg_hba.conf lines replacing the default 'trust everything local';
        settings: extra {name: value} server settings (-c name=value)."""
        self.port = port
        base = None if len(tempfile.gettempdir()) < 50 else "/tmp"  # socket paths are short
        self.dir = tempfile.mkdtemp(prefix="m2p-pg-", dir=base)
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self.settings = dict(settings or {})
        self.running = False
        self._closed = False
        self._as_postgres = os.geteuid() == 0
        _servers.append(self)
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, self.dir, _pg_bin("pg_ctl"), self.data,
             "1" if self._as_postgres else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, cwd="/")
        try:
            if self._as_postgres:
                pw = pwd.getpwnam("postgres")
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o755)  # the engine (any user) reaches the socket
            self._run([_pg_bin("initdb"), "-D", self.data, "-U", "postgres", "-A", "trust",
                       "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                      what="initdb", timeout=120)
            if hba is not None:
                self.write_hba(hba)
            if start:
                self.start()
        except BaseException:
            self.close()
            raise

    # ---- processes

    def _cmd(self, argv):
        return (["runuser", "-u", "postgres", "--"] + argv) if self._as_postgres else argv

    def _run(self, argv, what, timeout=120, check=True, input_text=None, env=None):
        try:
            r = subprocess.run(self._cmd(argv), cwd=self.dir, capture_output=True,
                               timeout=timeout, input=input_text, text=True,
                               env=env, stdin=None if input_text is not None
                               else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PgError("%s did not finish within %d s" % (what, timeout))
        if check and r.returncode != 0:
            raise PgError("%s failed (status %d): %s%s" % (what, r.returncode,
                                                          r.stderr.strip()[-2000:],
                                                          self._log_tail()))
        return r

    def _log_tail(self, n=15):
        try:
            with open(self.logfile, errors="replace") as f:
                lines = f.read().splitlines()[-n:]
        except OSError:
            return ""
        return ("\nserver log:\n  " + "\n  ".join(lines)) if lines else ""

    def _options(self):
        opts = ["-c listen_addresses=''", "-c unix_socket_directories=%s" % self.dir,
                "-c fsync=off", "-c full_page_writes=off", "-p %d" % self.port,
                "-c max_connections=100"]
        for k, v in self.settings.items():
            opts.append("-c %s=%s" % (k, v))
        return " ".join(opts)

    def start(self):
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-w", "-t", "120",
                   "-o", self._options(), "start"], what="pg_ctl start", timeout=150)
        self.running = True

    def stop(self, mode="fast"):
        if not self.running:
            return
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-w", "-t", "120", "-m", mode, "stop"],
                  what="pg_ctl stop", timeout=150)
        self.running = False

    def restart(self, mode="fast"):
        """pg_ctl restart: every connection is closed, the server is back when this returns."""
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-w", "-t", "120",
                   "-m", mode, "-o", self._options(), "restart"],
                  what="pg_ctl restart", timeout=150)
        self.running = True

    def reload(self):
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "reload"], what="pg_ctl reload")

    def processes(self):
        """The postmaster's pid and its children's (backends, checkpointer, ...)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return []
        pids = [master]
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == master:
                pids.append(int(entry))
        return pids

    def pause(self):
        """SIGSTOP to every process of the server: it hangs (connections stay open, nothing
        answers) instead of failing. resume() (also done by close()) undoes it."""
        import signal
        self._paused = self.processes()
        for pid in self._paused:
            os.kill(pid, signal.SIGSTOP)

    def resume(self):
        import signal
        for pid in getattr(self, "_paused", []):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        self._paused = []

    def write_hba(self, lines):
        path = os.path.join(self.data, "pg_hba.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def server_log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        """Stops the server (immediately) and deletes its directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.resume()  # a stopped postmaster would not act on pg_ctl's signal
            if self.running or os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._run([_pg_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "-m",
                           "immediate", "stop"], what="pg_ctl stop", timeout=90, check=False)
        finally:
            self.running = False
            shutil.rmtree(self.dir, ignore_errors=True)
            if self in _servers:
                _servers.remove(self)
            try:
                self._watchdog.stdin.close()  # nothing left for it to do: it exits
                self._watchdog.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- connecting

    def conninfo(self, db="postgres", user="postgres", password=None):
        """A libpq key=value connection string (the socket directory as host)."""
        s = "host=%s port=%d user=%s dbname=%s" % (self.dir, self.port, user, db)
        if password is not None:
            s += " password=%s" % password
        return s

    def url(self, db="postgres", user="postgres", password=None):
        """The same as a postgresql:// URL (host= as a query parameter)."""
        from urllib.parse import quote
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return "postgresql://%s@/%s?host=%s&port=%d" % (auth, quote(db, safe=""),
                                                        quote(self.dir, safe=""), self.port)

    def _psql(self, db, user, password, args, input_text=None, timeout=120):
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
        env["PGCONNECT_TIMEOUT"] = "30"
        if password is not None:
            env["PGPASSWORD"] = password
        argv = [_pg_bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.dir, "-p", str(self.port), "-U", user, "-d", db,
                "-F", _FIELD, "-R", _RECORD, "-P", "null=" + _NULL, "-P", "pager=off"] + args
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                               input=input_text,
                               stdin=None if input_text is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PgError("psql did not finish within %d s" % timeout)
        if r.returncode != 0:
            raise PgError("psql failed (status %d): %s" % (r.returncode, r.stderr.strip()))
        return r.stdout

    @staticmethod
    def _rows(out, several=False):
        """psql's unaligned output: fields and records separated by our separators; each
        result set ends with a newline (so with several statements, records are split at
        newlines too: a script's values must not contain any)."""
        if not several:
            if out == "":
                return []  # no rows, or a statement without any
            records = out[:-1].split(_RECORD) if out.endswith("\n") else out.split(_RECORD)
        else:
            records = [p for rec in out.split(_RECORD) for p in rec.split("\n") if p != ""]
        return [tuple(None if v == _NULL else v for v in rec.split(_FIELD)) for rec in records]

    def sql(self, query, db="postgres", user="postgres", password=None):
        """Runs one statement; returns its rows as tuples of text (None for NULL)."""
        return self._rows(self._psql(db, user, password, ["-c", query]))

    def value(self, query, db="postgres", **kw):
        """The single value of a one-row, one-column query."""
        rows = self.sql(query, db=db, **kw)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise PgError("expected one value from %r, got %r" % (query, rows))
        return rows[0][0]

    def script(self, text, db="postgres", user="postgres", password=None):
        """Runs a file of SQL (several statements) from a string; returns the rows printed."""
        return self._rows(self._psql(db, user, password, ["-f", "-"], input_text=text),
                          several=True)

    def createdb(self, name):
        self.sql('CREATE DATABASE "%s"' % name)
        return name

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sql("SELECT 1")
                return
            except PgError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


# ====================================================================== game database


def lit(value):
    """A SQL literal for a Python value (test data only)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


Q8 = Decimal("0.00000001")


def numeric_text(d):
    """A Decimal as PostgreSQL prints a NUMERIC(30, 8): '12.30000000'."""
    return format(Decimal(d).quantize(Q8), "f")


class GameDb:
    """One database of a PgServer, as the engine uses it."""

    def __init__(self, pg, name):
        self.pg = pg
        self.name = name

    @classmethod
    def create(cls, pg, name):
        pg.createdb(name)
        return cls(pg, name)

    def conninfo(self, **kw):
        return self.pg.conninfo(db=self.name, **kw)

    def sql(self, query, **kw):
        return self.pg.sql(query, db=self.name, **kw)

    def value(self, query, **kw):
        return self.pg.value(query, db=self.name, **kw)

    def script(self, text, **kw):
        return self.pg.script(text, db=self.name, **kw)

    def add_players(self, players, verified=True, active=True, atomic=False):
        """Inserts players as make_players() describes them ({player_id, username, wallet,
        wallets: {pool: wallet}}), with their ids, and their per-pool wallets. atomic: in one
        transaction, so that a running engine never reads a player without its wallets."""
        if not players:
            return
        rows = ", ".join("(%d, %s, %s, %s, %s, %s)" % (
            p["player_id"], lit(p["username"]), lit(p["username"] + "@example.com"),
            lit(p.get("wallet")), lit(verified), lit(active)) for p in players)
        text = ("INSERT INTO players (id, username, email, wallet_address, verified, active) "
                "VALUES %s;\n" % rows)
        wallets = [(p["player_id"], pool, w) for p in players
                   for pool, w in sorted(p.get("wallets", {}).items())]
        if wallets:
            text += ("INSERT INTO m2p_player_wallets (player_id, pool_name, wallet) VALUES %s;\n"
                     % ", ".join("(%d, %s, %s)" % (i, lit(pool), lit(w))
                                 for i, pool, w in wallets))
        text += ("SELECT setval(pg_get_serial_sequence('players', 'id'), "
                 "(SELECT max(id) FROM players));\n")
        self.script("BEGIN;\n%sCOMMIT;\n" % text if atomic else text)

    def totals(self):
        """{player_id: (total_advc_mined text, total_ap text)}"""
        return {int(i): (advc, ap) for i, advc, ap in
                self.sql("SELECT id, total_advc_mined::text, total_ap::text FROM players")}

    def event_sums(self):
        """{(player_id, pool): (sum advc text, sum ap text, count)} over mining_events."""
        return {(int(p), pool): (a, b, int(n)) for p, pool, a, b, n in self.sql(
            "SELECT player_id, pool_name, sum(advc_amount)::numeric(30,8)::text,"
            " sum(ap_awarded)::numeric(30,8)::text, count(*) FROM mining_events"
            " GROUP BY player_id, pool_name")}

    def accounts(self):
        """{(player_id, pool): (wallet, version)} from m2p_accounts."""
        return {(int(p), pool): (w, int(v)) for p, pool, w, v in self.sql(
            "SELECT player_id, pool_name, wallet, version FROM m2p_accounts")}

    def integrity_problems(self, ap_per_advc=Decimal(100)):
        """What must always hold, whatever happened: a list of problems (empty = fine).
        - no idempotency key twice for an account, none missing;
        - every event's AP is its ADVC x ap_per_advc, both > 0;
        - every player's totals equal the sum of its mining_events;
        - every award has its outbox row."""
        problems = []
        dups = self.sql("SELECT player_id, pool_name, idempotency_key, count(*)"
                        " FROM mining_events GROUP BY 1, 2, 3 HAVING count(*) > 1 LIMIT 10")
        if dups:
            problems.append("idempotency keys used more than once: %s" % dups)
        nokey = self.value("SELECT count(*) FROM mining_events WHERE idempotency_key IS NULL")
        if nokey != "0":
            problems.append("%s mining_events without an idempotency key" % nokey)
        bad_ap = self.sql("SELECT id, advc_amount::text, ap_awarded::text FROM mining_events"
                          " WHERE advc_amount <= 0 OR ap_awarded <> round(advc_amount * %s, 8)"
                          " LIMIT 10" % ap_per_advc)
        if bad_ap:
            problems.append("events whose AP is not ADVC x %s: %s" % (ap_per_advc, bad_ap))
        mismatch = self.sql(
            "SELECT p.id, p.total_advc_mined::text, p.total_ap::text,"
            " coalesce(e.advc, 0)::text, coalesce(e.ap, 0)::text FROM players p"
            " LEFT JOIN (SELECT player_id, sum(advc_amount) AS advc, sum(ap_awarded) AS ap"
            "            FROM mining_events GROUP BY player_id) e ON e.player_id = p.id"
            " WHERE p.total_advc_mined <> coalesce(e.advc, 0)"
            "    OR p.total_ap <> coalesce(e.ap, 0) LIMIT 10")
        if mismatch:
            problems.append("players whose totals differ from the sum of their mining_events "
                            "(id, total_advc, total_ap, events advc, events ap): %s" % mismatch)
        orphans = self.value("SELECT count(*) FROM mining_events e WHERE NOT EXISTS"
                             " (SELECT 1 FROM m2p_outbox o WHERE o.mining_event_id = e.id)")
        if orphans != "0":
            problems.append("%s mining_events without an outbox row" % orphans)
        return problems


# ====================================================================== expectations


def ledger_advc(ledger, btc_to_advc=Decimal(1000000)):
    """What a simulator ledger entry's cumulative payouts are worth in ADVC."""
    paid = Decimal(ledger["paid"])
    return paid * btc_to_advc if ledger.get("currency") == "BTC" else paid


# ====================================================================== engines on a database
#
# Glue between harness.Context (simulator, engines) and a GameDb. Accounts are
# (player_id, pool) pairs; players are make_players()-style dicts.

POOLS = ("cpu-pool", "rplant", "zpool")


def wallet_of(player, pool):
    return player.get("wallets", {}).get(pool, player.get("wallet"))


def migrate(ctx, gdb, settings=None):
    """m2p-engine --migrate on the database; fails the test unless it succeeds."""
    import harness
    s = dict(settings or {}, DATABASE_URL=gdb.conninfo())
    rc, _, out, err = ctx.run_engine(["--migrate"], s, scripts=False)
    harness.check(rc == 0, "m2p-engine --migrate failed (status %s): %s %s" % (rc, out, err))
    return out


def engine_settings(sim, gdb, **extra):
    """The usual settings of an engine polling the simulator and storing into gdb."""
    s = {"DATABASE_URL": gdb.conninfo(), "POLL_INTERVAL_SECONDS": 1, "LOG_LEVEL": "debug",
         "ZPOOL_PER_SECOND": 100}
    if sim is not None:
        s.update(sim.pool_env())
    s.update(extra)
    return s


def accounts_of(players, pools=POOLS):
    return [(p["player_id"], pool) for p in players for pool in pools
            if wallet_of(p, pool)]


def ledgers(sim, players, pools=POOLS):
    """{(player_id, pool): ledger} for every account, at the simulator's current time."""
    return {(p["player_id"], pool): sim.ledger(pool, wallet_of(p, pool))
            for p in players for pool in pools if wallet_of(p, pool)}


def polls_since(engines, since, name="pool_poll_success"):
    """{(player_id, pool): count} of `name` events logged by `engines` after the indices
    `since` (one per engine; None = from the start)."""
    counts = {}
    for i, eng in enumerate(engines):
        start = since[i] if since else 0
        for e in eng.named(name, start):
            key = (e.get("player_id"), e.get("pool"))
            counts[key] = counts.get(key, 0) + 1
    return counts


def marks(engines):
    return [eng.count() for eng in engines]


def wait_polls(engines, since, accounts, n, what, timeout=60):
    """Waits until every account in `accounts` has at least n successful polls logged (by
    any of `engines`) after `since`. With n = 2 the first of them surely finished (its
    commit included) after `since`: an account is never polled twice at once."""
    import harness
    accounts = list(accounts)

    def missing():
        counts = polls_since(engines, since)
        return [a for a in accounts if counts.get(a, 0) < n]

    deadline = time.monotonic() + timeout
    while True:
        left = missing()
        if not left:
            return
        for eng in engines:
            if eng.proc.poll() is not None:
                harness.fail("an engine exited (status %s) while waiting for %s"
                             % (eng.proc.returncode, what))
        if time.monotonic() > deadline:
            harness.fail("timed out after %d s waiting for %s; %d accounts lack %d polls, "
                         "e.g. %s" % (timeout, what, len(left), n, left[:5]))
        time.sleep(0.1)


def expected_advc(base, end):
    """{account: ADVC} awarded between two ledger snapshots of the same accounts."""
    return {a: ledger_advc(end[a]) - ledger_advc(base[a]) for a in end}


def expected_player_totals(per_account, ap_per_advc=Decimal(100), start=None):
    """{player_id: (advc text, ap text)} from per-account ADVC, plus `start`
    ({player_id: (advc, ap) Decimals}) for players that had totals before."""
    sums = {}
    for (pid, _), advc in per_account.items():
        sums[pid] = sums.get(pid, Decimal(0)) + advc
    out = {}
    for pid, advc in sums.items():
        a0, p0 = (start or {}).get(pid, (Decimal(0), Decimal(0)))
        out[pid] = (numeric_text(a0 + advc), numeric_text(p0 + advc * ap_per_advc))
    return out


def totals_diff(gdb, expected):
    """Players whose stored totals differ from `expected`: {id: (got, expected)}."""
    got = gdb.totals()
    return {pid: (got.get(pid), want) for pid, want in expected.items()
            if got.get(pid) != want}


def wait_totals(gdb, expected, what, timeout=60, engines=()):
    """Waits until every player in `expected` has exactly those totals (as text)."""
    import harness
    deadline = time.monotonic() + timeout
    while True:
        diff = totals_diff(gdb, expected)
        if not diff:
            return
        for eng in engines:
            if eng.proc.poll() is not None:
                harness.fail("an engine exited (status %s) while waiting for %s"
                             % (eng.proc.returncode, what))
        if time.monotonic() > deadline:
            harness.fail("timed out after %d s waiting for %s: %d players differ, "
                         "(id: (stored advc, ap), (expected advc, ap)): %s"
                         % (timeout, what, len(diff), sorted(diff.items())[:6]))
        time.sleep(0.2)


def check_accounts_exact(gdb, per_account, base=None, end=None):
    """Every account's mining_events add up to exactly its expected ADVC (and AP = x100);
    for zpool (awards by tx id) the keys are exactly the new payouts' tx ids."""
    import harness
    sums = gdb.event_sums()
    bad = []
    for a, advc in sorted(per_account.items()):
        got = sums.get(a, ("0.00000000", "0.00000000", 0))
        if got[0] != numeric_text(advc) or got[1] != numeric_text(advc * 100):
            bad.append((a, got[:2], numeric_text(advc)))
    harness.check(not bad, "accounts whose mining_events do not add up to the ledger "
                           "(account, (advc, ap) stored, advc expected): %s" % bad[:8])
    extra = set(sums) - set(per_account)
    harness.check(not extra, "mining_events for unexpected accounts: %s" % sorted(extra)[:8])
    if base is None or end is None:
        return
    keys = {}
    for pid, pool, key in gdb.sql("SELECT player_id, pool_name, idempotency_key"
                                  " FROM mining_events WHERE pool_name = 'zpool'"):
        keys.setdefault((int(pid), pool), set()).add(key)
    for a in per_account:
        if a[1] != "zpool":
            continue
        harness.check(not end[a]["truncated"], "the simulator ledger of %s is truncated" % (a,))
        n0 = int(base[a]["count"])
        want = {p["tx"] for p in end[a]["payouts"] if int(p["k"]) > n0}
        # keys are tx:<wallet id>:<tx> (scripts/rewards.lua); anything else stays as is
        got = {k.split(":", 2)[2] if k.startswith("tx:") and k.count(":") >= 2 else k
               for k in keys.get(a, set())}
        harness.check(got == want, "%s: stored award keys differ from the new payouts' tx ids: "
                                   "missing %s, extra %s" % (a, sorted(want - got)[:3],
                                                             sorted(got - want)[:3]))


_shared = None


def shared_server():
    """One PgServer for all the tests of a file, started on first use (initdb costs seconds)."""
    global _shared
    if _shared is None:
        _shared = PgServer()
    return _shared


class LedgerRun:
    """One engine polling the simulator's players into a GameDb from a baseline at the
    simulator's current time: the setup and the final check of the tests that take the
    database away under payouts (the simulator on a manual clock, so the test decides when
    payouts happen)."""

    def __init__(self, ctx, gdb, sim, players, **settings):
        import harness
        self.ctx, self.gdb, self.sim, self.players = ctx, gdb, sim, players
        self.accounts = accounts_of(players)
        migrate(ctx, gdb)
        gdb.add_players(players)
        self.base = ledgers(sim, players)
        self.eng = ctx.start_engine([], engine_settings(sim, gdb, **settings))
        wait_polls([self.eng], None, self.accounts, 2, "the baselines")
        harness.check(len(gdb.accounts()) == len(self.accounts),
                      "baselines missing from m2p_accounts")
        self.started = time.monotonic()

    def step(self, seconds, what, polls=2, timeout=60):
        """Moves the clock and waits until every account has `polls` more successful polls
        (with 2, the first of them surely finished, its commit included)."""
        import harness
        since = marks([self.eng])
        self.sim.advance(seconds)
        wait_polls([self.eng], since, self.accounts, polls, what, timeout=timeout)
        harness.note("%5.1f s: %s" % (time.monotonic() - self.started, what))

    def check_exact(self, timeout=60):
        """The totals reach the ledger, stay there over two more polls, and every account's
        mining_events add up to it, with no duplicate and no foreign row."""
        import harness
        end = ledgers(self.sim, self.players)
        per_account = expected_advc(self.base, end)
        expected = expected_player_totals(per_account)
        wait_totals(self.gdb, expected, "the totals to match the ledger", timeout=timeout,
                    engines=[self.eng])
        wait_polls([self.eng], marks([self.eng]), self.accounts, 2, "two more polls")
        diff = totals_diff(self.gdb, expected)
        harness.check(not diff, "totals moved after they matched the ledger: %s" % diff)
        check_accounts_exact(self.gdb, per_account, self.base, end)
        problems = self.gdb.integrity_problems()
        harness.check(not problems, "; ".join(problems))
