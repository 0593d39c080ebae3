-- What the engine adds: per-account state, per-pool wallets, award idempotency, the
-- notification outbox, engine membership for scale-out, and change notifications for players.

-- Optional per-pool wallets (zpool pays to a BTC address); default is players.wallet_address.
CREATE TABLE IF NOT EXISTS m2p_player_wallets (
    player_id INTEGER NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    pool_name VARCHAR(50) NOT NULL,
    wallet VARCHAR(255) NOT NULL,
    PRIMARY KEY (player_id, pool_name)
);

-- One row per account (player x pool). `state` is what the rules keep between polls, for the
-- wallet in `wallet`; `version` is the compare-and-set guard of every award.
CREATE TABLE IF NOT EXISTS m2p_accounts (
    player_id INTEGER NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    pool_name VARCHAR(50) NOT NULL,
    wallet VARCHAR(255) NOT NULL,
    state JSONB NOT NULL,
    observation_hash TEXT,
    version BIGINT NOT NULL,
    last_success TIMESTAMPTZ,
    last_attempt TIMESTAMPTZ,
    failures INTEGER NOT NULL DEFAULT 0,
    next_poll TIMESTAMPTZ,
    PRIMARY KEY (player_id, pool_name)
);

ALTER TABLE mining_events ADD COLUMN IF NOT EXISTS idempotency_key VARCHAR(200);
ALTER TABLE mining_events ADD COLUMN IF NOT EXISTS reason TEXT;
ALTER TABLE mining_events ADD COLUMN IF NOT EXISTS rules_generation VARCHAR(64);
CREATE UNIQUE INDEX IF NOT EXISTS mining_events_idempotency
    ON mining_events (player_id, pool_name, idempotency_key);

-- Notifications to deliver (Socket.IO, webhooks, NOTIFY), written in the award's transaction.
CREATE TABLE IF NOT EXISTS m2p_outbox (
    id BIGSERIAL PRIMARY KEY,
    mining_event_id INTEGER REFERENCES mining_events (id) ON DELETE CASCADE,
    event VARCHAR(64) NOT NULL,
    payload JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS m2p_outbox_pending ON m2p_outbox (id) WHERE delivered_at IS NULL;

-- Engine processes sharing this database: each heartbeats; accounts are split among the live.
CREATE TABLE IF NOT EXISTS m2p_engines (
    id VARCHAR(100) PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Player changes reach running engines at once (the engine also refreshes periodically).
CREATE OR REPLACE FUNCTION m2p_notify_player() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('m2p_players',
        CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END::text);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION m2p_notify_player_wallet() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('m2p_players',
        CASE WHEN TG_OP = 'DELETE' THEN OLD.player_id ELSE NEW.player_id END::text);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS m2p_players_changed ON players;
CREATE TRIGGER m2p_players_changed
    AFTER INSERT OR DELETE OR UPDATE OF wallet_address, verified, active, username ON players
    FOR EACH ROW EXECUTE FUNCTION m2p_notify_player();

DROP TRIGGER IF EXISTS m2p_player_wallets_changed ON m2p_player_wallets;
CREATE TRIGGER m2p_player_wallets_changed
    AFTER INSERT OR UPDATE OR DELETE ON m2p_player_wallets
    FOR EACH ROW EXECUTE FUNCTION m2p_notify_player_wallet();

-- One successful poll, atomically. Returns the account's new version, or NULL when the
-- account moved on since `p_version` (another engine or a retry got there first): then
-- nothing at all was written. Awards are a JSON list of
-- {"key", "advc", "ap", "reason", "previous_paid", "current_paid"} with amounts as decimal
-- strings; an award whose key is already stored for the account is skipped (never twice).
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

    SELECT username INTO player_name FROM players WHERE id = p_player;
    FOR award IN SELECT * FROM jsonb_array_elements(p_awards) LOOP
        event_id := NULL;
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
