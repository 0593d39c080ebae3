"""Issue 4: a database created by the old Python service is migrated in place.

tests/fixtures/db/old_service_schema.sql is the old service's schema as SQLAlchemy created
it (FLOAT amounts, INTEGER ap_awarded, TIMESTAMP columns, no database defaults) with a few
rows. On it:

- AUTO_MIGRATE=false refuses to start while migrations are pending (and changes nothing);
- `m2p-engine --migrate` keeps every row, turns the amounts into NUMERIC(30,8) equal to the
  old values rounded to 8 places, adds the database defaults (a player inserted with just
  username, email, wallet_address, verified and active works);
- a second --migrate is a no-op (nothing applied, the schema identical);
- the engine runs on it (AUTO_MIGRATE=false is fine now) and awards exactly on top of the
  old totals;
- a schema version newer than the engine knows makes it refuse to start, with a message
  that says so;
- a share count beyond 2^31 (the old total_shares column is an INTEGER) still commits.
"""

import os
from decimal import Decimal

import harness
import pgserver
from harness import check
from pgserver import numeric_text

FIXTURE = os.path.join(harness.REPO, "tests", "fixtures", "db", "old_service_schema.sql")
AMOUNTS = {
    "players": ("total_ap", "total_advc_mined"),
    "mining_events": ("advc_amount", "ap_awarded", "previous_paid", "current_paid"),
    "pool_snapshots": ("paid", "balance", "immature"),
}
_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def rows_as_text(gdb, table):
    """Every row, amounts rounded to 8 places as text, timestamps to the second."""
    cols = [r[0] for r in gdb.sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = '%s' AND column_name NOT IN ('idempotency_key', 'reason',"
        " 'rules_generation') ORDER BY ordinal_position" % table)]
    exprs = []
    for c in cols:
        if c in AMOUNTS.get(table, ()):
            exprs.append("round(%s::numeric, 8)::numeric(30,8)::text" % c)
        elif c.endswith("_time") or c.endswith("_at") or c == "last_mining_event":
            exprs.append("to_char(%s, 'YYYY-MM-DD HH24:MI:SS')" % c)
        else:
            exprs.append("%s::text" % c)
    return cols, gdb.sql("SELECT %s FROM %s ORDER BY id" % (", ".join(exprs), table))


def schema_fingerprint(gdb):
    return {
        "columns": gdb.sql("SELECT table_name, column_name, data_type, numeric_precision,"
                           " numeric_scale, column_default, is_nullable"
                           " FROM information_schema.columns WHERE table_schema = 'public'"
                           " ORDER BY 1, 2"),
        "indexes": gdb.sql("SELECT indexname, indexdef FROM pg_indexes"
                           " WHERE schemaname = 'public' ORDER BY 1"),
        "constraints": gdb.sql("SELECT conrelid::regclass::text, conname,"
                               " pg_get_constraintdef(oid) FROM pg_constraint"
                               " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"),
        "triggers": gdb.sql("SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
                            " WHERE NOT tgisinternal ORDER BY 1, 2"),
        "functions": gdb.sql("SELECT proname, md5(prosrc) FROM pg_proc"
                             " WHERE pronamespace = 'public'::regnamespace ORDER BY 1"),
        "migrations": gdb.sql("SELECT version, name, applied_at::text"
                              " FROM m2p_schema_migrations ORDER BY 1"),
    }


def column_type(gdb, table, column):
    return gdb.sql("SELECT data_type, numeric_precision, numeric_scale"
                   " FROM information_schema.columns WHERE table_schema = 'public'"
                   " AND table_name = '%s' AND column_name = '%s'" % (table, column))


def engine_log_text(out, err):
    return out + "\n" + err


def test_old_schema_migrated_in_place(ctx):
    gdb = pgserver.GameDb.create(pg(), "old_schema")
    with open(FIXTURE) as f:
        gdb.script(f.read())
    before = {t: rows_as_text(gdb, t) for t in AMOUNTS}
    check(column_type(gdb, "players", "total_ap") == [("double precision", "53", None)],
          "the fixture should have FLOAT amounts: %s" % column_type(gdb, "players", "total_ap"))

    # ---- AUTO_MIGRATE=false with pending migrations: refuses, changes nothing
    rc, _, out, err = ctx.run_engine([], {"DATABASE_URL": gdb.conninfo(),
                                          "AUTO_MIGRATE": "false"}, timeout=60)
    text = engine_log_text(out, err)
    check(rc != 0, "the engine started with pending migrations and AUTO_MIGRATE=false")
    check("AUTO_MIGRATE=false" in text and "--migrate" in text and "pending" in text,
          "the refusal should say migrations are pending and how to apply them: %s"
          % text[-1500:])
    check(column_type(gdb, "players", "total_ap") == [("double precision", "53", None)],
          "AUTO_MIGRATE=false changed the schema")
    check(not gdb.sql("SELECT 1 FROM information_schema.tables WHERE table_name LIKE 'm2p_%'"),
          "AUTO_MIGRATE=false created tables")

    # ---- --migrate: rows kept, amounts NUMERIC and equal, defaults present
    out = pgserver.migrate(ctx, gdb)
    migrations = [f for f in os.listdir(os.path.join(harness.REPO, "engine", "migrations"))
                  if f.endswith(".sql")]
    check("%d migration(s) applied" % len(migrations) in out, "--migrate said: %r" % out)
    for table, cols in AMOUNTS.items():
        for c in cols:
            check(column_type(gdb, table, c) == [("numeric", "30", "8")],
                  "%s.%s is %s after the migration, not NUMERIC(30,8)"
                  % (table, c, column_type(gdb, table, c)))
    after = {t: rows_as_text(gdb, t) for t in AMOUNTS}
    for t in AMOUNTS:
        check(after[t] == before[t], "%s changed in the migration:\nbefore %s\nafter  %s"
              % (t, before[t], after[t]))
    exact = gdb.sql("SELECT username, total_ap::text, total_advc_mined::text FROM players"
                    " ORDER BY id")
    check(exact == [("alice", "1250.00000000", "12.50000000"),
                    ("bob", "10.00000000", "0.10000000"),
                    ("carol", "112.34567890", "1.12345679"),
                    ("dave", "0.00000000", "0.00000000")],
          "players' amounts after the migration: %s" % exact)
    events = gdb.sql("SELECT advc_amount::text, ap_awarded::text, previous_paid::text,"
                     " current_paid::text FROM mining_events ORDER BY id")
    check(events == [("10.00000000", "1000.00000000", "100.00000000", "110.00000000"),
                     ("2.50000000", "250.00000000", "0.50000000", "3.00000000"),
                     ("0.10000000", "10.00000000", "2.57500000", "2.67500000"),
                     ("1.12345679", "112.00000000", "0.00012300", "0.00124646")],
          "mining_events' amounts after the migration: %s" % events)

    erin = harness.make_players(1, first_id=5)[0]
    row = gdb.sql("INSERT INTO players (username, email, wallet_address, verified, active)"
                  " VALUES ('erin', 'erin@example.com', %s, true, true) RETURNING id,"
                  " total_ap::text, total_advc_mined::text, level, created_at IS NOT NULL,"
                  " updated_at IS NOT NULL, last_mining_event IS NULL"
                  % pgserver.lit(erin["wallet"]))
    check(row == [("5", "0.00000000", "0.00000000", "1", "t", "t", "t")],
          "a player inserted with only username, email, wallet_address, verified and active: "
          "%s" % row)
    row = gdb.sql("INSERT INTO mining_events (player_id, pool_name) VALUES (4, 'x')"
                  " RETURNING processed, notified, event_time IS NOT NULL")
    check(row == [("f", "f", "t")], "mining_events defaults: %s" % row)
    gdb.sql("DELETE FROM mining_events WHERE pool_name = 'x'")

    # ---- a second --migrate changes nothing
    fingerprint = schema_fingerprint(gdb)
    out = pgserver.migrate(ctx, gdb)
    check("0 migration(s) applied" in out, "the second --migrate said: %r" % out)
    again = schema_fingerprint(gdb)
    for k in fingerprint:
        check(again[k] == fingerprint[k], "the second --migrate changed the %s:\n%s\n%s"
              % (k, fingerprint[k], again[k]))
    check({t: rows_as_text(gdb, t) for t in ("mining_events", "pool_snapshots")}
          == {t: after[t] for t in ("mining_events", "pool_snapshots")},
          "the second --migrate changed rows")

    # ---- the engine runs on it and awards on top of the old totals
    run_engine_on_migrated(ctx, gdb, erin)

    # ---- a schema newer than the engine: refuses, clearly
    gdb.sql("INSERT INTO m2p_schema_migrations (version, name) VALUES (999, 'from the future')")
    rc, _, out, err = ctx.run_engine([], {"DATABASE_URL": gdb.conninfo()}, timeout=60)
    text = engine_log_text(out, err)
    check(rc != 0, "the engine started on a schema newer than it knows")
    check("999" in text and "newer than this engine" in text,
          "the refusal should name the version and say it is newer: %s" % text[-1500:])
    rc, _, out, err = ctx.run_engine(["--migrate"], {"DATABASE_URL": gdb.conninfo()},
                                     scripts=False, timeout=60)
    text = engine_log_text(out, err)
    check(rc != 0 and "newer than this engine" in text,
          "--migrate on a newer schema: status %s, %s" % (rc, text[-1500:]))
    check(gdb.value("SELECT max(version) FROM m2p_schema_migrations") == "999",
          "the newer version's record was touched")


def test_large_share_count_after_migration(ctx):
    """The old schema's pool_snapshots.total_shares is an INTEGER; a fresh database gets a
    BIGINT, and the engine writes any share count a pool reports. After the migration a
    poll whose snapshot has 3,000,000,000 shares must still commit (award included), as it
    does on a fresh database: the commit is the engine's own m2p_commit_poll, called here
    exactly as the engine calls it for a first observation with one award."""
    gdb = pgserver.GameDb.create(pg(), "old_shares")
    with open(FIXTURE) as f:
        gdb.script(f.read())
    pgserver.migrate(ctx, gdb)
    # The engine claims the wallet when it loads the account, before any commit.
    gdb.sql("SELECT m2p_claim_wallet(1, 'cpu-pool', 'AMyieqS8YdythV8LjL9b1QpWoFN6xHWh8d',"
            " 'AMyieqS8YdythV8LjL9b1QpWoFN6xHWh8d')")
    call = ("SELECT m2p_commit_poll(1, 'cpu-pool', 'AMyieqS8YdythV8LjL9b1QpWoFN6xHWh8d', 0,"
            " '{\"paid\": 1}'::jsonb, '0123456789abcdef',"
            " '{\"paid\": 1, \"shares\": 3000000000, \"hashrate\": 1.5}'::jsonb,"
            " '[{\"key\": \"k1\", \"advc\": \"1.00000000\", \"ap\": \"100.00000000\","
            " \"reason\": \"test\", \"previous_paid\": null, \"current_paid\": 1}]'::jsonb,"
            " 'test')")
    try:
        version = gdb.value(call)
    except pgserver.PgError as e:
        harness.fail("the commit of a snapshot with 3e9 shares fails on the migrated old "
                     "schema (total_shares is %s): %s"
                     % (column_type(gdb, "pool_snapshots", "total_shares"), e))
    check(version == "1", "m2p_commit_poll returned %r" % version)
    check(gdb.value("SELECT total_ap::text FROM players WHERE id = 1") == "1350.00000000",
          "the award was not added to the old total")


def run_engine_on_migrated(ctx, gdb, erin):
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "17")
    # alice (1), bob (2) and erin (5) are verified and active; carol is inactive, dave
    # unverified. zpool pays each of them at a BTC address.
    followed = [
        {"player_id": 1, "wallet": harness.advc_wallet(1), "wallets": {"zpool": harness.btc_wallet(1)}},
        {"player_id": 2, "wallet": harness.advc_wallet(2), "wallets": {"zpool": harness.btc_wallet(2)}},
        {"player_id": 5, "wallet": erin["wallet"], "wallets": {"zpool": harness.btc_wallet(5)}},
    ]
    gdb.sql("INSERT INTO m2p_player_wallets (player_id, pool_name, wallet) VALUES %s"
            % ", ".join("(%d, 'zpool', %s)" % (p["player_id"],
                                               pgserver.lit(p["wallets"]["zpool"]))
                        for p in followed + [{"player_id": 3, "wallets": {
                            "zpool": harness.btc_wallet(3)}}]))
    start = {int(i): (Decimal(a), Decimal(b)) for i, a, b in gdb.sql(
        "SELECT id, total_advc_mined, total_ap FROM players")}
    old_events = gdb.sql("SELECT id FROM mining_events ORDER BY id")
    accounts = pgserver.accounts_of(followed)
    base = pgserver.ledgers(sim, followed)
    eng = ctx.start_engine([], pgserver.engine_settings(sim, gdb, ENGINE_ID="old",
                                                        AUTO_MIGRATE="false"))
    pgserver.wait_polls([eng], None, accounts, 2, "the baselines on the migrated database")
    for step in (12, 25):
        mark = pgserver.marks([eng])
        sim.advance(step)
        pgserver.wait_polls([eng], mark, accounts, 2, "two polls after a clock step")
    end = pgserver.ledgers(sim, followed)
    per_account = pgserver.expected_advc(base, end)
    expected = pgserver.expected_player_totals(per_account, start=start)
    for pid in (3, 4):  # not followed: unchanged
        expected[pid] = tuple(numeric_text(v) for v in start[pid])
    pgserver.wait_totals(gdb, expected, "old totals + the ledger", engines=[eng])
    new = {(int(p), pool): (a, n) for p, pool, a, n in gdb.sql(
        "SELECT player_id, pool_name, sum(advc_amount)::numeric(30,8)::text, count(*)"
        " FROM mining_events WHERE idempotency_key IS NOT NULL GROUP BY 1, 2")}
    bad = {a: (new.get(a, ("0.00000000",))[0], numeric_text(v))
           for a, v in per_account.items() if new.get(a, ("0.00000000",))[0] != numeric_text(v)}
    check(not bad, "new mining_events per account (stored, expected): %s" % bad)
    check(gdb.sql("SELECT id FROM mining_events WHERE idempotency_key IS NULL ORDER BY id")
          == old_events, "the old mining_events changed")
    dups = gdb.sql("SELECT player_id, pool_name, idempotency_key FROM mining_events"
                   " WHERE idempotency_key IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1")
    check(not dups, "duplicate award keys: %s" % dups)
    failed = eng.named("pool_poll_commit_failed") + eng.named("commit_failed")
    check(not failed, "commits failed on the migrated database: %s"
          % [e["_raw"][:300] for e in failed[:3]])
    snaps = int(gdb.value("SELECT count(*) FROM pool_snapshots WHERE snapshot_time > now()"
                          " - interval '1 hour'"))
    check(snaps >= len(accounts), "only %d new pool_snapshots for %d accounts"
          % (snaps, len(accounts)))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
