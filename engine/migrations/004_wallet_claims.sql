-- A wallet belongs to one player per pool. Two players naming the same wallet (or one bech32
-- address in two letter cases) would otherwise both be paid for the same payouts. The first
-- player to claim a wallet keeps it; the claim lives here, so "first" means the same thing
-- after a restart and to every engine sharing this database, whichever engine polls whom.

CREATE TABLE IF NOT EXISTS m2p_wallet_claims (
    pool_name VARCHAR(50) NOT NULL,
    wallet TEXT NOT NULL,          -- canonical form (the pool script's wallet check)
    player_id INTEGER NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    wallet_as_given TEXT NOT NULL, -- as the owner's row names it: what releases the claim
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pool_name, wallet)
);
CREATE INDEX IF NOT EXISTS m2p_wallet_claims_player ON m2p_wallet_claims (player_id);
-- Finding the other players who name a wallet (m2p_claim_wallet), without a scan.
CREATE INDEX IF NOT EXISTS m2p_players_wallet_address ON players (wallet_address);
CREATE INDEX IF NOT EXISTS m2p_player_wallets_wallet ON m2p_player_wallets (pool_name, wallet);

-- The wallet a player's row names for a pool: its per-pool wallet if it has one, else
-- players.wallet_address (the engine's player_wallet_for). NULL: none, or no such player.
CREATE OR REPLACE FUNCTION m2p_player_wallet(p_player INTEGER, p_pool VARCHAR)
RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT w.wallet FROM m2p_player_wallets w
                      WHERE w.player_id = p_player AND w.pool_name = p_pool),
                    (SELECT p.wallet_address FROM players p WHERE p.id = p_player))
$$;

-- Claims (pool, canonical wallet) for a player as its account is loaded, and returns the
-- owner: p_player when the wallet is (or already was) its, else the player who has it.
-- - A claim holds while its owner's row names the wallet as it did; a player who moves to
--   another wallet frees the old one, and the next claimer takes it over.
-- - A wallet nobody holds goes to the lowest id among the verified, active players whose row
--   names it exactly as given or in its canonical form, so engines loading those players in
--   any order agree on one owner.
-- NULL: the claim vanished meanwhile (its owner was deleted); the caller tries again later.
CREATE OR REPLACE FUNCTION m2p_claim_wallet(p_player INTEGER, p_pool VARCHAR, p_wallet TEXT,
                                            p_given TEXT)
RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    current_owner INTEGER;
    current_given TEXT;
    contender INTEGER;
    new_owner INTEGER;
BEGIN
    SELECT player_id, wallet_as_given INTO current_owner, current_given
      FROM m2p_wallet_claims WHERE pool_name = p_pool AND wallet = p_wallet;
    IF current_owner = p_player THEN
        IF current_given IS DISTINCT FROM p_given THEN -- the owner's row changed the case
            UPDATE m2p_wallet_claims SET wallet_as_given = p_given
             WHERE pool_name = p_pool AND wallet = p_wallet AND player_id = p_player;
        END IF;
        RETURN p_player; -- every load after the first: usually nothing to write
    END IF;
    IF current_owner IS NOT NULL
       AND m2p_player_wallet(current_owner, p_pool) IS NOT DISTINCT FROM current_given THEN
        RETURN current_owner;
    END IF;

    SELECT min(n.id) INTO contender FROM (
        SELECT p.id FROM players p
         WHERE p.wallet_address IN (p_wallet, p_given) AND p.verified AND p.active
           AND NOT EXISTS (SELECT 1 FROM m2p_player_wallets w
                            WHERE w.player_id = p.id AND w.pool_name = p_pool)
        UNION ALL
        SELECT w.player_id FROM m2p_player_wallets w JOIN players p ON p.id = w.player_id
         WHERE w.pool_name = p_pool AND w.wallet IN (p_wallet, p_given)
           AND p.verified AND p.active) n;
    contender := coalesce(contender, p_player);

    INSERT INTO m2p_wallet_claims AS c (pool_name, wallet, player_id, wallet_as_given)
    VALUES (p_pool, p_wallet, contender,
            CASE WHEN contender = p_player THEN p_given
                 ELSE m2p_player_wallet(contender, p_pool) END)
    ON CONFLICT (pool_name, wallet) DO UPDATE
       SET player_id = EXCLUDED.player_id, wallet_as_given = EXCLUDED.wallet_as_given,
           claimed_at = now()
     WHERE m2p_player_wallet(c.player_id, c.pool_name) IS DISTINCT FROM c.wallet_as_given
    RETURNING player_id INTO new_owner;
    IF new_owner IS NULL THEN -- another engine claimed it first, just now
        SELECT player_id INTO new_owner
          FROM m2p_wallet_claims WHERE pool_name = p_pool AND wallet = p_wallet;
    END IF;
    RETURN new_owner;
END $$;
