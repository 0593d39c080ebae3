"""Issue 12: money is exact to 1e-8, or held with a reason (docs/reliability.md, "Money exact
to 1e-8").

One engine, real PostgreSQL, the test pool of harness.PAID_POOL_SCRIPT whose cumulative `paid`
the test sets; MAX_AWARD_ADVC and MAX_AWARD_FACTOR are switched off, so the exact-range rule
is the only one that can hold an award. After the baselines, one payout per player:

- player 1, 65559444.69885246 -> 65559447.28895620: 2.59010374 ADVC and 259.01037400 AP
  stored (in doubles the difference is 2.59010375), and mining_events' previous_paid and
  current_paid are the two counters to the 8th decimal (cJSON printed 15 digits);
- player 2, 120000000 -> 120000002.11111109 (the payout of the issue, stored as 2.11111102
  before): the counter is beyond 2^26, where a double no longer names one amount of 8
  decimals, so the award is held (why exact_range), not paid;
- player 3, 67108860.00000001 -> 67108863.99999999, the last counter below 2^26: paid exactly;
- player 4, 67108860.00000001 -> 67108864.00000001, the first side of 2^26: held;
- player 5, 10 -> 1e19 + 10 (1e19 ADVC in one poll): held, amount intact in the held row.
"""

from decimal import Decimal

import harness
import pgserver
from harness import check

# player: (baseline, after the payout, stored ADVC or None for held)
CASES = {
    1: ("65559444.69885246", "65559447.28895620", "2.59010374"),
    2: ("120000000", "120000002.11111109", None),
    3: ("67108860.00000001", "67108863.99999999", "3.99999998"),
    4: ("67108860.00000001", "67108864.00000001", None),
    5: ("10", "10000000000000000010", None),
}


def expected_totals(paid):
    """{player_id: (advc, ap)} as PostgreSQL prints them; held awards count 0."""
    out = {}
    for pid, (_, _, advc) in CASES.items():
        v = Decimal(advc) if paid and advc else Decimal(0)
        out[pid] = (pgserver.numeric_text(v), pgserver.numeric_text(v * 100))
    return out


@harness.with_paid_server
def test_exact_or_held(ctx, server):
    gdb = pgserver.GameDb.create(pgserver.PgServer(), "money_exact")  # stopped at exit
    players = harness.make_players(len(CASES), zpool=False)
    wallet = {p["player_id"]: p["wallet"] for p in players}
    for pid, (base, _, _) in CASES.items():
        server.set(wallet[pid], base)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    pools = ctx.pools_dir({"testpool.lua": harness.PAID_POOL_SCRIPT})
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url, ENGINE_ID="money",
                                        MAX_AWARD_ADVC=0, MAX_AWARD_FACTOR=0)
    eng = ctx.start_engine([], settings, pools_dir=pools)
    pgserver.wait_polls([eng], None, [(pid, "testpool") for pid in CASES], 2, "the baselines")

    for pid, (_, after, _) in CASES.items():
        server.set(wallet[pid], after)
    pgserver.wait_totals(gdb, expected_totals(True), "the exact awards", engines=[eng])
    held_ids = {pid for pid, case in CASES.items() if case[2] is None}
    eng.wait_until(lambda evs: {e["player_id"] for e in evs if e["event"] == "award_held"}
                   >= held_ids, 30, "award_held for players %s" % sorted(held_ids))
    # Polls after the payouts decide nothing again (the states are exact).
    pgserver.wait_polls([eng], pgserver.marks([eng]), [(pid, "testpool") for pid in CASES], 2,
                        "more polls after the payouts")
    check(gdb.totals() == expected_totals(True),
          "totals changed on later polls: %s" % gdb.totals())

    events = gdb.sql("SELECT player_id, advc_amount::text, ap_awarded::text,"
                     " previous_paid::text, current_paid::text FROM mining_events"
                     " ORDER BY player_id")
    want = [(str(pid), advc, pgserver.numeric_text(Decimal(advc) * 100),
             pgserver.numeric_text(Decimal(base)), pgserver.numeric_text(Decimal(after)))
            for pid, (base, after, advc) in sorted(CASES.items()) if advc]
    check(events == want, "mining_events should be exactly %s: %s" % (want, events))

    held = eng.named("award_held")
    check(len(held) == len(held_ids) and all(e["why"] == "exact_range" for e in held),
          "one award_held per held player, why exact_range: %s" % [e["_raw"] for e in held])
    rows = gdb.sql("SELECT player_id, advc_amount::text, status, hold_reason"
                   " FROM m2p_held_awards ORDER BY player_id")
    check([r[0] for r in rows] == [str(p) for p in sorted(held_ids)]
          and all(r[2] == "held" and r[3].startswith("exact_range") for r in rows),
          "m2p_held_awards should hold players %s for exact_range: %s" % (sorted(held_ids), rows))
    check(rows[-1][1] == "10000000000000000000.00000000",
          "1e19 ADVC in one poll, held with its amount: %s" % (rows[-1],))
    check(not [e for e in eng.named("mining_reward_detected") if e["player_id"] in held_ids],
          "a held award was logged as paid")


harness.main(globals())
