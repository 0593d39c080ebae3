-- Held awards: an award the engine's limits find suspicious (MAX_AWARD_ADVC, MAX_AWARD_FACTOR;
-- engine/award_limits.h) is stored here instead of in mining_events, so a pool's unit mistake
-- never becomes game currency. It is in no player's totals and has no outbox row until an
-- operator releases it (m2p_release_held: then it becomes a normal award, once); a rejected
-- one never does. Its idempotency key stays reserved either way: the same key never becomes
-- an award a second time, held or not.
--
-- Why a table of its own and not a status column on mining_events: games read every
-- mining_events row as an award (sum(advc_amount), "recent rewards"); a held row there would
-- look paid to every query that does not know the new column.

-- What the limits compare against, per account: how many awards it has been paid (normal and
-- released ones) and the largest. Kept by m2p_commit_poll and m2p_release_held, loaded with
-- the account's state, so the engine holds only these two numbers per account in memory.
ALTER TABLE m2p_accounts ADD COLUMN IF NOT EXISTS award_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE m2p_accounts ADD COLUMN IF NOT EXISTS largest_award NUMERIC(30, 8) NOT NULL DEFAULT 0;
UPDATE m2p_accounts a
   SET award_count = e.n, largest_award = e.largest
  FROM (SELECT player_id, pool_name, count(*)::integer AS n,
               coalesce(max(advc_amount), 0) AS largest
          FROM mining_events GROUP BY player_id, pool_name) e
 WHERE a.player_id = e.player_id AND a.pool_name = e.pool_name;

CREATE TABLE IF NOT EXISTS m2p_held_awards (
    id BIGSERIAL PRIMARY KEY,
    player_id INTEGER NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    pool_name VARCHAR(50) NOT NULL,
    idempotency_key VARCHAR(200) NOT NULL,
    advc_amount NUMERIC(30, 8) NOT NULL,
    ap_awarded NUMERIC(30, 8) NOT NULL,
    previous_paid NUMERIC(30, 8),
    current_paid NUMERIC(30, 8),
    reason TEXT,
    rules_generation VARCHAR(64),
    hold_reason TEXT NOT NULL,          -- which limit, with the numbers
    status VARCHAR(16) NOT NULL DEFAULT 'held'
        CHECK (status IN ('held', 'released', 'rejected')),
    held_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at TIMESTAMPTZ,             -- when it was released or rejected
    mining_event_id INTEGER REFERENCES mining_events (id) ON DELETE SET NULL,
    UNIQUE (player_id, pool_name, idempotency_key)
);
CREATE INDEX IF NOT EXISTS m2p_held_awards_pending ON m2p_held_awards (id)
    WHERE status = 'held';

-- One successful poll, atomically. Returns the account's new version, or NULL when the
-- account moved on since `p_version` (another engine or a retry got there first): then
-- nothing at all was written. Awards are a JSON list of
-- {"key", "advc", "ap", "reason", "previous_paid", "current_paid"[, "held"]} with amounts as
-- decimal strings. An award with "held" (why it is held) goes to m2p_held_awards: no totals,
-- no outbox row. An award whose key is already stored for the account, as an award or as a
-- held award, is skipped (never twice). The account's state advances in any case.
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

-- Settling a held award (m2p-engine --release-held ID / --reject-held ID), one transaction
-- each. o_outcome: 'released' / 'rejected' (done now), 'already released' /
-- 'already rejected' (nothing changed), 'unknown' (no such id; the other columns are NULL).
-- The held row is locked first, so two operators settling the same award at once are
-- serialised and the second one finds it settled.

-- Release: the award goes the normal way, once: a mining_events row, the player's totals,
-- an outbox row; the account's award history counts it. The account's version moves on, so
-- a running engine re-reads the account (and its new award history) before its next commit
-- instead of holding the next award of the same size again.
CREATE OR REPLACE FUNCTION m2p_release_held(p_id BIGINT,
    OUT o_outcome TEXT, OUT o_player INTEGER, OUT o_pool VARCHAR, OUT o_key VARCHAR,
    OUT o_advc NUMERIC, OUT o_ap NUMERIC, OUT o_event_id INTEGER, OUT o_settled_at TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    h m2p_held_awards%ROWTYPE;
    player_name VARCHAR;
BEGIN
    SELECT * INTO h FROM m2p_held_awards WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'unknown';
        RETURN;
    END IF;
    o_player := h.player_id; o_pool := h.pool_name; o_key := h.idempotency_key;
    o_advc := h.advc_amount; o_ap := h.ap_awarded; o_event_id := h.mining_event_id;
    o_settled_at := h.settled_at;
    IF h.status <> 'held' THEN
        o_outcome := 'already ' || h.status;
        RETURN;
    END IF;

    UPDATE m2p_accounts
       SET version = version + 1, award_count = award_count + 1,
           largest_award = greatest(largest_award, h.advc_amount)
     WHERE player_id = h.player_id AND pool_name = h.pool_name;
    INSERT INTO mining_events (player_id, pool_name, advc_amount, ap_awarded, previous_paid,
                               current_paid, event_time, processed, notified,
                               idempotency_key, reason, rules_generation)
    VALUES (h.player_id, h.pool_name, h.advc_amount, h.ap_awarded, h.previous_paid,
            h.current_paid, now(), true, false, h.idempotency_key, h.reason, h.rules_generation)
    ON CONFLICT (player_id, pool_name, idempotency_key) DO NOTHING
    RETURNING id INTO o_event_id;
    IF o_event_id IS NULL THEN
        -- Cannot happen through the engine (the key is reserved): someone wrote the row by hand.
        RAISE EXCEPTION 'held award %: its key % is already a mining event of player % on %',
            p_id, h.idempotency_key, h.player_id, h.pool_name;
    END IF;
    SELECT username INTO player_name FROM players WHERE id = h.player_id;
    INSERT INTO m2p_outbox (mining_event_id, event, payload)
    VALUES (o_event_id, 'mining_reward', jsonb_build_object(
        'player_id', h.player_id, 'username', player_name, 'pool', h.pool_name,
        'advc_amount', h.advc_amount, 'ap_awarded', h.ap_awarded,
        'event_id', o_event_id, 'timestamp', now()));
    UPDATE players
       SET total_ap = total_ap + h.ap_awarded,
           total_advc_mined = total_advc_mined + h.advc_amount,
           last_mining_event = now(), updated_at = now()
     WHERE id = h.player_id;
    UPDATE m2p_held_awards SET status = 'released', settled_at = now(), mining_event_id = o_event_id
     WHERE id = p_id
    RETURNING settled_at INTO o_settled_at;
    o_outcome := 'released';
END $$;

-- Reject: the award is never paid; its key stays reserved.
CREATE OR REPLACE FUNCTION m2p_reject_held(p_id BIGINT,
    OUT o_outcome TEXT, OUT o_player INTEGER, OUT o_pool VARCHAR, OUT o_key VARCHAR,
    OUT o_advc NUMERIC, OUT o_ap NUMERIC, OUT o_event_id INTEGER, OUT o_settled_at TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    h m2p_held_awards%ROWTYPE;
BEGIN
    SELECT * INTO h FROM m2p_held_awards WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'unknown';
        RETURN;
    END IF;
    o_player := h.player_id; o_pool := h.pool_name; o_key := h.idempotency_key;
    o_advc := h.advc_amount; o_ap := h.ap_awarded; o_event_id := h.mining_event_id;
    o_settled_at := h.settled_at;
    IF h.status <> 'held' THEN
        o_outcome := 'already ' || h.status;
        RETURN;
    END IF;
    UPDATE m2p_held_awards SET status = 'rejected', settled_at = now() WHERE id = p_id
    RETURNING settled_at INTO o_settled_at;
    o_outcome := 'rejected';
END $$;
