-- Wallet ownership is checked again when a poll is stored, and a claim survives its owner
-- retyping the wallet in another letter case.
--
-- 1. m2p_commit_poll refuses (returns -1, writes nothing) when the player no longer holds the
--    claim on the wallet it polled. Claims are taken when an account is loaded; an engine that
--    loaded the account earlier and was not told of a row change in time (a slow engine, a
--    LISTEN outage) would otherwise keep paying the old owner while the new one is paid too.
-- 2. m2p_claim_wallet compares the owner's row with the claim without letter case: an owner who
--    retypes its bech32 address in upper case keeps it (base58 addresses that differ only in
--    case are different addresses, but two such strings cannot both carry a valid checksum).
--    The function keeps its signature; only the two comparisons change.

CREATE OR REPLACE FUNCTION m2p_commit_poll(
    p_player INTEGER, p_pool VARCHAR, p_wallet VARCHAR, p_version BIGINT, p_state JSONB,
    p_observation_hash TEXT, p_snapshot JSONB, p_awards JSONB, p_generation VARCHAR)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    new_version BIGINT;
    award JSONB;
    event_id INTEGER;
    sum_advc NUMERIC := 0;
    sum_ap NUMERIC := 0;
    paid_count INTEGER := 0;
    paid_largest NUMERIC := 0;
    player_name VARCHAR;
BEGIN
    -- The wallet must still be this player's (m2p_wallet_claims): another engine may have
    -- taken the claim over since this engine loaded the account (the owner's row named another
    -- wallet for a while). Then nothing is written and -1 tells the engine to load the account
    -- again, where the claim is decided and the account refused.
    IF NOT EXISTS (SELECT 1 FROM m2p_wallet_claims c
                    WHERE c.player_id = p_player AND c.pool_name = p_pool
                      AND lower(c.wallet_as_given) = lower(p_wallet)) THEN
        RETURN -1;
    END IF;
    IF p_version = 0 THEN
        INSERT INTO m2p_accounts (player_id, pool_name, wallet, state, observation_hash,
                                  version, last_success, last_attempt)
        VALUES (p_player, p_pool, p_wallet, p_state, p_observation_hash, 1, now(), now())
        ON CONFLICT DO NOTHING
        RETURNING version INTO new_version;
    ELSE
        UPDATE m2p_accounts
           SET wallet = p_wallet, state = p_state, observation_hash = p_observation_hash,
               version = version + 1, last_success = now(), last_attempt = now(), failures = 0
         WHERE player_id = p_player AND pool_name = p_pool AND version = p_version
        RETURNING version INTO new_version;
    END IF;
    IF new_version IS NULL THEN
        RETURN NULL;
    END IF;
    -- From here the account's row is locked by this transaction: m2p_release_held and every
    -- other commit of this account wait, so "is the key free?" cannot change under us.

    SELECT username INTO player_name FROM players WHERE id = p_player;
    FOR award IN SELECT * FROM jsonb_array_elements(p_awards) LOOP
        event_id := NULL;
        IF award ? 'held' THEN
            INSERT INTO m2p_held_awards (player_id, pool_name, idempotency_key, advc_amount,
                                         ap_awarded, previous_paid, current_paid, reason,
                                         rules_generation, hold_reason)
            SELECT p_player, p_pool, award->>'key', (award->>'advc')::numeric,
                   (award->>'ap')::numeric, (award->>'previous_paid')::numeric,
                   (award->>'current_paid')::numeric, award->>'reason', p_generation,
                   award->>'held'
             WHERE NOT EXISTS (SELECT 1 FROM mining_events m
                                WHERE m.player_id = p_player AND m.pool_name = p_pool
                                  AND m.idempotency_key = award->>'key')
            ON CONFLICT (player_id, pool_name, idempotency_key) DO NOTHING;
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM m2p_held_awards h
                    WHERE h.player_id = p_player AND h.pool_name = p_pool
                      AND h.idempotency_key = award->>'key') THEN
            CONTINUE; -- the key is a held (or settled) award already
        END IF;
        INSERT INTO mining_events (player_id, pool_name, advc_amount, ap_awarded, previous_paid,
                                   current_paid, event_time, processed, notified,
                                   idempotency_key, reason, rules_generation)
        VALUES (p_player, p_pool, (award->>'advc')::numeric, (award->>'ap')::numeric,
                (award->>'previous_paid')::numeric, (award->>'current_paid')::numeric, now(),
                true, false, award->>'key', award->>'reason', p_generation)
        ON CONFLICT (player_id, pool_name, idempotency_key) DO NOTHING
        RETURNING id INTO event_id;
        IF event_id IS NOT NULL THEN
            sum_advc := sum_advc + (award->>'advc')::numeric;
            sum_ap := sum_ap + (award->>'ap')::numeric;
            paid_count := paid_count + 1;
            paid_largest := greatest(paid_largest, (award->>'advc')::numeric);
            INSERT INTO m2p_outbox (mining_event_id, event, payload)
            VALUES (event_id, 'mining_reward', jsonb_build_object(
                'player_id', p_player, 'username', player_name, 'pool', p_pool,
                'advc_amount', (award->>'advc')::numeric, 'ap_awarded', (award->>'ap')::numeric,
                'event_id', event_id, 'timestamp', now()));
        END IF;
    END LOOP;
    IF sum_advc > 0 OR sum_ap > 0 THEN
        UPDATE players
           SET total_ap = total_ap + sum_ap, total_advc_mined = total_advc_mined + sum_advc,
               last_mining_event = now(), updated_at = now()
         WHERE id = p_player;
    END IF;
    IF paid_count > 0 THEN
        UPDATE m2p_accounts
           SET award_count = award_count + paid_count,
               largest_award = greatest(largest_award, paid_largest)
         WHERE player_id = p_player AND pool_name = p_pool;
    END IF;

    IF p_snapshot IS NOT NULL THEN
        INSERT INTO pool_snapshots (player_id, pool_name, paid, balance, immature, total_hash,
                                    total_shares, raw_response, snapshot_time)
        VALUES (p_player, p_pool, (p_snapshot->>'paid')::numeric,
                (p_snapshot->>'balance')::numeric, (p_snapshot->>'immature')::numeric,
                (p_snapshot->>'hashrate')::double precision,
                (p_snapshot->>'shares')::numeric::bigint, p_snapshot->>'raw_response', now());
    END IF;
    RETURN new_version;
END $$;

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
       AND lower(m2p_player_wallet(current_owner, p_pool)) IS NOT DISTINCT FROM lower(current_given) THEN
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
     WHERE lower(m2p_player_wallet(c.player_id, c.pool_name))
           IS DISTINCT FROM lower(c.wallet_as_given)
    RETURNING player_id INTO new_owner;
    IF new_owner IS NULL THEN -- another engine claimed it first, just now
        SELECT player_id INTO new_owner
          FROM m2p_wallet_claims WHERE pool_name = p_pool AND wallet = p_wallet;
    END IF;
    RETURN new_owner;
END $$;
