"""Issue 4: changes to the players table take effect in a running engine, without restart.

The engine follows the table through NOTIFY (its periodic full refresh is every 300 s here,
so anything picked up within the test's 30 s deadlines came through NOTIFY). With the
simulator on its manual clock, one engine, 1 s interval:

- INSERT of a verified, active player: polled within seconds; its wallets' history (paid
  before its first poll) is its baseline, not an award. A player inserted unverified is
  not polled until UPDATE verified = true.
- UPDATE active = false: no longer polled (every other account is polled several times
  after its last poll) and nothing more is awarded to it; active = true brings it back.
- UPDATE players.wallet_address (and the zpool wallet in m2p_player_wallets): the accounts
  re-baseline on the new wallets: nothing is awarded for the new wallets' history, only
  for what they are paid afterwards (plus what the old wallets earned before).

In the end every player's totals equal exactly what the ledgers say they earned while they
were followed.
"""

import time

import harness
import pgserver
from harness import check

INITIAL = 6
_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def polled_by(eng, player_id, since=0):
    return [e for e in eng.named("pool_poll_success", since) if e.get("player_id") == player_id]


def test_player_changes_take_effect_live(ctx):
    gdb = pgserver.GameDb.create(pg(), "live")
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "13")
    players = harness.make_players(INITIAL)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    base = pgserver.ledgers(sim, players)
    eng = ctx.start_engine([], pgserver.engine_settings(sim, gdb, ENGINE_ID="live"))
    pgserver.wait_polls([eng], None, pgserver.accounts_of(players), 2, "the baselines")
    sim.advance(15)
    pgserver.wait_polls([eng], pgserver.marks([eng]), pgserver.accounts_of(players), 2,
                        "two polls after the first clock step")

    # ---- INSERT: polled at once; its history is a baseline
    p7, p8 = harness.make_players(2, first_id=INITIAL + 1)
    ledger7 = pgserver.ledgers(sim, [p7])
    check(all(int(l["count"]) > 0 for l in ledger7.values()),
          "the new player's wallets should have a history: %s" % ledger7)
    mark = pgserver.marks([eng])
    inserted = time.time()
    gdb.add_players([p7])
    gdb.add_players([p8], verified=False)
    pgserver.wait_polls([eng], mark, pgserver.accounts_of([p7]), 2,
                        "the inserted player's first polls", timeout=30)
    first = min(e["_ts"] for e in polled_by(eng, p7["player_id"], mark[0]))
    harness.note("inserted player first polled %.2f s after the INSERT" % (first - inserted))
    check(gdb.totals()[p7["player_id"]] == ("0.00000000", "0.00000000"),
          "the inserted player was awarded its wallets' history: %s"
          % (gdb.totals()[p7["player_id"]],))
    # the unverified one is not polled (the verified one was, twice, in the same time)
    check(not polled_by(eng, p8["player_id"]), "an unverified player was polled")
    check(not [a for a in gdb.accounts() if a[0] == p8["player_id"]],
          "an unverified player has accounts")
    ledger8 = pgserver.ledgers(sim, [p8])
    mark = pgserver.marks([eng])
    gdb.sql("UPDATE players SET verified = true WHERE id = %d" % p8["player_id"])
    pgserver.wait_polls([eng], mark, pgserver.accounts_of([p8]), 2,
                        "the polls of a player once verified", timeout=30)

    # ---- wallet change: a new baseline on the new wallets
    p2 = players[1]
    new2 = dict(p2, wallet=harness.advc_wallet(900 + p2["player_id"]),
                wallets={"zpool": harness.btc_wallet(900 + p2["player_id"])})
    old2 = pgserver.ledgers(sim, [p2])
    new2_base = pgserver.ledgers(sim, [new2])
    check(all(int(l["count"]) > 0 for l in new2_base.values()),
          "the new wallets should have a history: %s" % new2_base)
    mark = pgserver.marks([eng])
    gdb.script("BEGIN;\n"
               "UPDATE players SET wallet_address = %s WHERE id = %d;\n"
               "UPDATE m2p_player_wallets SET wallet = %s WHERE player_id = %d"
               " AND pool_name = 'zpool';\nCOMMIT;\n"
               % (pgserver.lit(new2["wallet"]), p2["player_id"],
                  pgserver.lit(new2["wallets"]["zpool"]), p2["player_id"]))

    def on_new_wallets():
        acc = gdb.accounts()
        return all(acc.get((p2["player_id"], pool), ("",))[0] == pgserver.wallet_of(new2, pool)
                   for pool in pgserver.POOLS)
    harness.wait_until(on_new_wallets, 30, "the accounts of player 2 to move to the new wallets")
    pgserver.wait_polls([eng], mark, pgserver.accounts_of([p2]), 2,
                        "two polls of the new wallets")
    rebaselined = {e.get("pool") for e in eng.named("account_rebaselined", mark[0])
                   if e.get("player_id") == p2["player_id"]}
    check(rebaselined == set(pgserver.POOLS),
          "account_rebaselined should be logged for each of player 2's pools, got %s"
          % sorted(rebaselined))
    check(pgserver.ledgers(sim, [new2]) == new2_base, "the clock moved")

    # ---- deactivation: no longer polled
    p3 = players[2]
    ledger3 = pgserver.ledgers(sim, [p3])
    gdb.sql("UPDATE players SET active = false WHERE id = %d" % p3["player_id"])
    others = pgserver.accounts_of([p for p in players if p is not p3] + [p7, p8])

    def quiet_since_last_poll():
        polls = polled_by(eng, p3["player_id"])
        last = max(eng.snapshot().index(e) for e in polls) if polls else 0
        counts = pgserver.polls_since([eng], [last + 1])
        return all(counts.get(a, 0) >= 3 for a in others)
    harness.wait_until(quiet_since_last_poll, 30, "every other account to be polled three "
                       "times after the deactivated player's last poll")
    quiet_from = pgserver.marks([eng])

    # payouts continue; everyone active earns, the deactivated player does not
    mark = pgserver.marks([eng])
    sim.advance(20)
    pgserver.wait_polls([eng], mark, others, 2, "two polls after the last clock step")
    check(not polled_by(eng, p3["player_id"], quiet_from[0]),
          "the deactivated player was polled again")
    end = pgserver.ledgers(sim, players + [p7, p8])
    end_new2 = pgserver.ledgers(sim, [new2])

    per_account = {}
    for a in pgserver.accounts_of(players):
        if a[0] == p2["player_id"]:
            per_account[a] = (pgserver.ledger_advc(old2[a]) - pgserver.ledger_advc(base[a])
                              + pgserver.ledger_advc(end_new2[a])
                              - pgserver.ledger_advc(new2_base[a]))
        elif a[0] == p3["player_id"]:
            per_account[a] = pgserver.ledger_advc(ledger3[a]) - pgserver.ledger_advc(base[a])
        else:
            per_account[a] = pgserver.ledger_advc(end[a]) - pgserver.ledger_advc(base[a])
    for a in pgserver.accounts_of([p7]):
        per_account[a] = pgserver.ledger_advc(end[a]) - pgserver.ledger_advc(ledger7[a])
    for a in pgserver.accounts_of([p8]):
        per_account[a] = pgserver.ledger_advc(end[a]) - pgserver.ledger_advc(ledger8[a])
    expected = pgserver.expected_player_totals(per_account)
    pgserver.wait_totals(gdb, expected, "the totals to match the ledgers", engines=[eng])
    pgserver.check_accounts_exact(gdb, per_account)
    problems = gdb.integrity_problems()
    check(not problems, "; ".join(problems))

    # ---- re-activation: polled again
    mark = pgserver.marks([eng])
    gdb.sql("UPDATE players SET active = true WHERE id = %d" % p3["player_id"])
    pgserver.wait_polls([eng], mark, pgserver.accounts_of([p3]), 1,
                        "the polls of a re-activated player", timeout=30)
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
