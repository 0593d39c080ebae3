-- Notifications are delivered: the event carries the player's totals and an id, each sink's
-- delivery is recorded, and PostgreSQL NOTIFY is sent inside the award's transaction.
--
-- 1. m2p_outbox rows get the player (per-player order) and the full mining_reward event:
--    event_id as text, the amounts rounded to 8 places, the player's totals AFTER the award
--    (taken in the award's own transaction), an ISO-8601 UTC timestamp, the room.
--    Rows written before this migration get event_id as text and the room; they have no
--    totals (null): those were never recorded.
-- 2. m2p_deliveries: one row per (outbox row, sink) once a sink's worker has seen it:
--    attempts, last attempt and error, the lease of the engine delivering it, delivered_at or
--    expired_at. The m2p_outbox row is settled (delivered_at) when every configured sink is
--    done with it; mining_events.notified becomes true when every one delivered it.
-- 3. m2p_commit_poll and m2p_release_held take the NOTIFY channel ('' or NULL = off) and
--    send pg_notify(channel, event) for each award; 'm2p_outbox' is notified too, which wakes
--    the delivery workers of every engine.

ALTER TABLE m2p_outbox ADD COLUMN IF NOT EXISTS player_id INTEGER;
-- Every row gets its player (per-player order) and the fields of this version, whoever
-- writes it: an engine of the previous version whose m2p_commit_poll was already running
-- (blocked on this migration's lock on m2p_outbox) inserts an old-style row once this
-- migration commits; without a player_id it would be delivered beside that player's other
-- events instead of in order.
CREATE OR REPLACE FUNCTION m2p_outbox_fill() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.player_id IS NULL THEN
        NEW.player_id := (NEW.payload->>'player_id')::int;
    END IF;
    IF NOT NEW.payload ? 'room' THEN
        NEW.payload := NEW.payload || jsonb_build_object(
            'event_id', NEW.payload->>'event_id', 'room', 'player_' || (NEW.payload->>'player_id'));
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS m2p_outbox_fill ON m2p_outbox;
CREATE TRIGGER m2p_outbox_fill BEFORE INSERT ON m2p_outbox
    FOR EACH ROW EXECUTE FUNCTION m2p_outbox_fill();
UPDATE m2p_outbox SET player_id = (payload->>'player_id')::int WHERE player_id IS NULL;
UPDATE m2p_outbox
   SET payload = payload || jsonb_build_object('event_id', payload->>'event_id',
                                               'room', 'player_' || (payload->>'player_id'))
 WHERE delivered_at IS NULL AND NOT payload ? 'room';
-- Nothing delivered the outbox before this version: its rows are every award since migration
-- 2. The last day's are delivered (without totals, which were not recorded); older ones are
-- settled here, in one step, rather than each expiring with its own error line at the first
-- start. Their awards stay in mining_events (notified = false).
DO $$
DECLARE
    n BIGINT;
BEGIN
    UPDATE m2p_outbox SET delivered_at = now()
     WHERE delivered_at IS NULL AND created_at < now() - interval '24 hours';
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        RAISE NOTICE 'm2p: % outbox rows older than 24 hours were never delivered and are settled without delivery', n;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS m2p_deliveries (
    outbox_id BIGINT NOT NULL REFERENCES m2p_outbox (id) ON DELETE CASCADE,
    sink VARCHAR(320) NOT NULL,
    player_id INTEGER,
    created_at TIMESTAMPTZ NOT NULL,        -- the award's commit (the outbox row's created_at)
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt TIMESTAMPTZ,
    last_error TEXT,
    next_attempt TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner VARCHAR(100),
    lease_until TIMESTAMPTZ,
    delivered_at TIMESTAMPTZ,
    expired_at TIMESTAMPTZ,
    PRIMARY KEY (outbox_id, sink)
);
CREATE INDEX IF NOT EXISTS m2p_deliveries_pending ON m2p_deliveries (sink, player_id, outbox_id)
    WHERE delivered_at IS NULL AND expired_at IS NULL;
CREATE INDEX IF NOT EXISTS m2p_deliveries_seen ON m2p_deliveries (sink, outbox_id);

-- The sinks the running engines deliver to, with when an engine last said so (every minute).
-- An event is settled only when every sink of a live engine is done with it, so an engine
-- that gains a webhook in a rolling restart cannot have its events settled under it by an
-- engine still running the old configuration.
CREATE TABLE IF NOT EXISTS m2p_sinks (
    name VARCHAR(320) PRIMARY KEY,
    last_seen TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Both tables see an insert and an update or two per award and are read through partial
-- indexes of their few pending rows: vacuum them every few thousand changes, not at 20 % of
-- a table that only grows (dead entries in the pending indexes slow every claim down).
ALTER TABLE m2p_outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                            autovacuum_analyze_scale_factor = 0,
                            autovacuum_analyze_threshold = 2000);
ALTER TABLE m2p_deliveries SET (autovacuum_vacuum_scale_factor = 0,
                                autovacuum_vacuum_threshold = 2000,
                                autovacuum_analyze_scale_factor = 0,
                                autovacuum_analyze_threshold = 2000);

-- An amount as the event carries it: rounded to 8 places, without trailing zeros.
CREATE OR REPLACE FUNCTION m2p_amount8(p NUMERIC) RETURNS NUMERIC
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(round(p, 8)::text, '\.?0+$', '')::numeric
$$;

-- Writes one award's mining_reward event (the outbox row) and its NOTIFYs. Runs inside the
-- award's transaction: a NOTIFY is delivered only when that transaction commits.
CREATE OR REPLACE FUNCTION m2p_emit_reward(p_event_id INTEGER, p_player INTEGER,
    p_username VARCHAR, p_pool VARCHAR, p_advc NUMERIC, p_ap NUMERIC, p_total_ap NUMERIC,
    p_total_advc NUMERIC, p_channel TEXT)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    event JSONB;
    text_event TEXT;
BEGIN
    event := jsonb_build_object(
        'event_id', p_event_id::text, 'player_id', p_player, 'username', p_username,
        'pool', p_pool, 'advc_amount', m2p_amount8(p_advc), 'ap_awarded', m2p_amount8(p_ap),
        'total_ap', m2p_amount8(p_total_ap), 'total_advc_mined', m2p_amount8(p_total_advc),
        'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'room', 'player_' || p_player);
    INSERT INTO m2p_outbox (mining_event_id, event, payload, player_id)
    VALUES (p_event_id, 'mining_reward', event, p_player);
    IF coalesce(p_channel, '') <> '' THEN
        text_event := event::text;
        -- NOTIFY payloads must stay under 8000 bytes: a longer event sends only its id.
        IF octet_length(text_event) >= 8000 THEN
            text_event := jsonb_build_object('event_id', p_event_id::text)::text;
        END IF;
        PERFORM pg_notify(p_channel, text_event);
    END IF;
    PERFORM pg_notify('m2p_outbox', '');
END $$;


CREATE OR REPLACE FUNCTION m2p_commit_poll(
    p_player INTEGER, p_pool VARCHAR, p_wallet VARCHAR, p_version BIGINT, p_state JSONB,
    p_observation_hash TEXT, p_snapshot JSONB, p_awards JSONB, p_generation VARCHAR,
    p_notify_channel TEXT)
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
    run_ap NUMERIC;   -- the player's totals after each award so far
    run_advc NUMERIC;
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

    -- With awards, the player's row is locked now, not at the totals' UPDATE below: each event
    -- carries the totals after itself, so two commits for one player (two pools) must not
    -- interleave, and its outbox ids are drawn under the lock (in commit order per player).
    IF jsonb_array_length(p_awards) > 0 THEN
        SELECT p.username, coalesce(p.total_ap, 0), coalesce(p.total_advc_mined, 0)
          INTO player_name, run_ap, run_advc
          FROM players p WHERE p.id = p_player FOR NO KEY UPDATE;
    END IF;
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
            run_ap := run_ap + (award->>'ap')::numeric;
            run_advc := run_advc + (award->>'advc')::numeric;
            PERFORM m2p_emit_reward(event_id, p_player, player_name, p_pool,
                                    (award->>'advc')::numeric, (award->>'ap')::numeric,
                                    run_ap, run_advc, p_notify_channel);
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

-- The previous signature, for engines of the previous version during a rolling upgrade: their
-- awards are delivered like any other, without a NOTIFY.
CREATE OR REPLACE FUNCTION m2p_commit_poll(
    p_player INTEGER, p_pool VARCHAR, p_wallet VARCHAR, p_version BIGINT, p_state JSONB,
    p_observation_hash TEXT, p_snapshot JSONB, p_awards JSONB, p_generation VARCHAR)
RETURNS BIGINT
LANGUAGE sql AS $$
    SELECT m2p_commit_poll(p_player, p_pool, p_wallet, p_version, p_state, p_observation_hash,
                           p_snapshot, p_awards, p_generation, NULL)
$$;

DROP FUNCTION IF EXISTS m2p_release_held(BIGINT);

CREATE OR REPLACE FUNCTION m2p_release_held(p_id BIGINT, p_notify_channel TEXT,
    OUT o_outcome TEXT, OUT o_player INTEGER, OUT o_pool VARCHAR, OUT o_key VARCHAR,
    OUT o_advc NUMERIC, OUT o_ap NUMERIC, OUT o_event_id INTEGER, OUT o_settled_at TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    h m2p_held_awards%ROWTYPE;
    player_name VARCHAR;
    new_ap NUMERIC;
    new_advc NUMERIC;
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
    -- The player's row is locked before the mining_events id is drawn (as in m2p_commit_poll):
    -- otherwise a commit of another pool waiting for the same lock draws a higher id and is
    -- delivered first, and the player's event ids no longer follow their delivery order.
    PERFORM 1 FROM players WHERE id = h.player_id FOR NO KEY UPDATE;
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
    UPDATE players
       SET total_ap = total_ap + h.ap_awarded,
           total_advc_mined = total_advc_mined + h.advc_amount,
           last_mining_event = now(), updated_at = now()
     WHERE id = h.player_id
    RETURNING username, total_ap, total_advc_mined INTO player_name, new_ap, new_advc;
    PERFORM m2p_emit_reward(o_event_id, h.player_id, player_name, h.pool_name, h.advc_amount,
                            h.ap_awarded, coalesce(new_ap, h.ap_awarded),
                            coalesce(new_advc, h.advc_amount), p_notify_channel);
    UPDATE m2p_held_awards SET status = 'released', settled_at = now(), mining_event_id = o_event_id
     WHERE id = p_id
    RETURNING settled_at INTO o_settled_at;
    o_outcome := 'released';
END $$;

-- Delivery. Each engine runs one worker per configured sink; every engine sharing the
-- database must configure the same sinks (a sink nobody serves keeps its rows pending until
-- they expire). A worker claims rows, carries them, and reports each outcome.

-- Gives p_sink a delivery row for every unsettled outbox row it has not seen: new awards, and
-- everything pending when the sink was added (10000 at a time). Only ids above the sink's
-- newest row minus 10000 are looked at, so a large backlog is not scanned on every claim:
-- an outbox row commits moments after its id is drawn (every writer holds the player's row
-- lock first), so none can appear 10000 ids behind the newest one seen.
CREATE OR REPLACE FUNCTION m2p_see_outbox(p_sink VARCHAR)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO m2p_deliveries (outbox_id, sink, player_id, created_at)
    SELECT o.id, p_sink, o.player_id, o.created_at
      FROM m2p_outbox o
     WHERE o.delivered_at IS NULL
       AND o.id > coalesce((SELECT max(d.outbox_id) FROM m2p_deliveries d
                             WHERE d.sink = p_sink), 0) - 10000
       AND NOT EXISTS (SELECT 1 FROM m2p_deliveries d WHERE d.outbox_id = o.id AND d.sink = p_sink)
     ORDER BY o.id
     LIMIT 10000
    ON CONFLICT DO NOTHING
$$;

-- Claims up to p_limit events for p_sink, leased to p_owner for p_lease seconds (a killed
-- engine's rows are taken over when the lease runs out). Events older than p_max_age seconds
-- are left to m2p_expire_deliveries. Only a player's OLDEST undelivered event is claimable: events reach a sink
-- in award order per player, and a player whose event keeps failing holds back no one else.
CREATE OR REPLACE FUNCTION m2p_claim_deliveries(p_sink VARCHAR, p_owner VARCHAR,
                                                p_lease DOUBLE PRECISION, p_limit INTEGER,
                                                p_max_age DOUBLE PRECISION)
RETURNS TABLE (outbox_id BIGINT, event_id INTEGER, player_id INTEGER, payload TEXT,
               attempts INTEGER, has_next BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM m2p_see_outbox(p_sink);
    RETURN QUERY
    WITH claimable AS (
        SELECT d.outbox_id AS id
          FROM m2p_deliveries d
         WHERE d.sink = p_sink AND d.delivered_at IS NULL AND d.expired_at IS NULL
           AND d.next_attempt <= now()
           AND (d.lease_until IS NULL OR d.lease_until < now())
           AND d.created_at >= now() - make_interval(secs => p_max_age)
           AND NOT EXISTS (SELECT 1 FROM m2p_deliveries e
                            WHERE e.sink = p_sink AND e.player_id = d.player_id
                              AND e.outbox_id < d.outbox_id
                              AND e.delivered_at IS NULL AND e.expired_at IS NULL)
         ORDER BY d.outbox_id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED)
    UPDATE m2p_deliveries d
       SET lease_owner = p_owner, lease_until = now() + make_interval(secs => p_lease),
           attempts = d.attempts + 1, last_attempt = now()
      FROM claimable c, m2p_outbox o
     WHERE d.outbox_id = c.id AND d.sink = p_sink AND o.id = d.outbox_id
    RETURNING d.outbox_id, o.mining_event_id, d.player_id, o.payload::text, d.attempts,
              -- the player has a later event waiting behind this one: claim again once this
              -- one is delivered (otherwise the engine waits for a NOTIFY or its timer)
              EXISTS (SELECT 1 FROM m2p_deliveries n
                       WHERE n.sink = p_sink AND n.player_id = d.player_id
                         AND n.outbox_id > d.outbox_id
                         AND n.delivered_at IS NULL AND n.expired_at IS NULL);
END $$;

-- Settles an outbox row when every live sink (m2p_live_sinks) is done with it: delivered or
-- expired. The outbox row is locked
-- first, so two sinks finishing the same event at once are serialised and the second one
-- sees the first one's outcome.
-- The sinks an event must reach: the caller's, and those of every engine seen in the last
-- 10 minutes (a sink nobody delivers to any more stops holding events back after that).
CREATE OR REPLACE FUNCTION m2p_live_sinks(p_sinks JSONB)
RETURNS SETOF TEXT
LANGUAGE sql STABLE AS $$
    SELECT jsonb_array_elements_text(p_sinks)
    UNION
    SELECT name FROM m2p_sinks WHERE last_seen > now() - interval '10 minutes'
$$;

-- Called by every engine at start and every minute with the sinks it delivers to.
CREATE OR REPLACE FUNCTION m2p_register_sinks(p_sinks JSONB)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO m2p_sinks (name, last_seen)
    SELECT jsonb_array_elements_text(p_sinks), now()
    ON CONFLICT (name) DO UPDATE SET last_seen = now()
$$;

CREATE OR REPLACE FUNCTION m2p_settle_outbox(p_outbox BIGINT, p_sinks JSONB)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ev INTEGER;
BEGIN
    SELECT mining_event_id INTO ev FROM m2p_outbox WHERE id = p_outbox FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM m2p_live_sinks(p_sinks) s(name)
                WHERE NOT EXISTS (SELECT 1 FROM m2p_deliveries d
                                   WHERE d.outbox_id = p_outbox AND d.sink = s.name
                                     AND (d.delivered_at IS NOT NULL OR d.expired_at IS NOT NULL)))
    THEN
        RETURN;
    END IF;
    UPDATE m2p_outbox
       SET delivered_at = now(),
           attempts = (SELECT coalesce(sum(d.attempts), 0) FROM m2p_deliveries d
                        WHERE d.outbox_id = p_outbox)
     WHERE id = p_outbox AND delivered_at IS NULL;
    -- The old column keeps its meaning: every configured receiver has the event.
    IF NOT EXISTS (SELECT 1 FROM m2p_live_sinks(p_sinks) s(name)
                    WHERE NOT EXISTS (SELECT 1 FROM m2p_deliveries d
                                       WHERE d.outbox_id = p_outbox AND d.sink = s.name
                                         AND d.delivered_at IS NOT NULL)) THEN
        UPDATE mining_events SET notified = true WHERE id = ev;
    END IF;
END $$;

-- p_sink has the event. Returns false when the row was not this engine's to settle (already
-- delivered or expired): nothing changes then.
CREATE OR REPLACE FUNCTION m2p_delivery_done(p_sink VARCHAR, p_outbox BIGINT, p_sinks JSONB)
RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM m2p_outbox WHERE id = p_outbox FOR UPDATE;
    UPDATE m2p_deliveries
       SET delivered_at = now(), lease_owner = NULL, lease_until = NULL, last_error = NULL
     WHERE outbox_id = p_outbox AND sink = p_sink AND delivered_at IS NULL AND expired_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM m2p_settle_outbox(p_outbox, p_sinks);
    RETURN true;
END $$;

-- p_sink did not take the event: it is retried after p_retry seconds. Only the claim's
-- holder records it: an engine whose lease ran out while it carried the event must not
-- clear the lease of the engine that took the event over (a third engine would then carry
-- it at the same time, and the retry time would be the stale engine's).
CREATE OR REPLACE FUNCTION m2p_delivery_failed(p_sink VARCHAR, p_outbox BIGINT, p_error TEXT,
                                               p_retry DOUBLE PRECISION, p_owner VARCHAR)
RETURNS void
LANGUAGE sql AS $$
    UPDATE m2p_deliveries
       SET lease_owner = NULL, lease_until = NULL, last_error = left(p_error, 500),
           next_attempt = now() + make_interval(secs => p_retry)
     WHERE outbox_id = p_outbox AND sink = p_sink AND delivered_at IS NULL AND expired_at IS NULL
       AND lease_owner = p_owner
$$;

-- Gives up p_sink's events older than p_max_age seconds that are not being delivered right
-- now. Returns them, so that the engine logs each one (notification_expired).
CREATE OR REPLACE FUNCTION m2p_expire_deliveries(p_sink VARCHAR, p_max_age DOUBLE PRECISION,
                                                 p_sinks JSONB)
RETURNS TABLE (outbox_id BIGINT, event_id INTEGER, player_id INTEGER, attempts INTEGER,
               last_error TEXT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r RECORD;
    ids BIGINT[];
BEGIN
    PERFORM m2p_see_outbox(p_sink);
    -- Lock order as in m2p_delivery_done: the outbox rows (in id order), then the delivery
    -- rows. Updating the delivery rows first deadlocks with a delivery_done of an event whose
    -- lease ran out (it holds the outbox row and waits for the delivery row), and two sinks'
    -- sweeps taking the outbox rows in different orders deadlock with each other.
    SELECT array_agg(s.id) INTO ids FROM (
        SELECT o.id FROM m2p_outbox o
         WHERE o.id IN (SELECT d.outbox_id FROM m2p_deliveries d
                         WHERE d.sink = p_sink AND d.delivered_at IS NULL
                           AND d.expired_at IS NULL
                           AND d.created_at < now() - make_interval(secs => p_max_age)
                           AND (d.lease_until IS NULL OR d.lease_until < now()))
         ORDER BY o.id
           FOR UPDATE) s;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    FOR r IN
        UPDATE m2p_deliveries d
           SET expired_at = now(), lease_owner = NULL, lease_until = NULL
         WHERE d.sink = p_sink AND d.outbox_id = ANY (ids)
           AND d.delivered_at IS NULL AND d.expired_at IS NULL
           AND d.created_at < now() - make_interval(secs => p_max_age)
           AND (d.lease_until IS NULL OR d.lease_until < now())
        RETURNING d.outbox_id, d.player_id, d.attempts, d.last_error
    LOOP
        PERFORM m2p_settle_outbox(r.outbox_id, p_sinks);
        outbox_id := r.outbox_id;
        player_id := r.player_id;
        attempts := r.attempts;
        last_error := r.last_error;
        SELECT o.mining_event_id INTO event_id FROM m2p_outbox o WHERE o.id = r.outbox_id;
        RETURN NEXT;
    END LOOP;
END $$;

-- An engine that stops hands its unfinished claims back at once instead of at lease end.
CREATE OR REPLACE FUNCTION m2p_release_deliveries(p_owner VARCHAR)
RETURNS void
LANGUAGE sql AS $$
    UPDATE m2p_deliveries SET lease_owner = NULL, lease_until = NULL
     WHERE lease_owner = p_owner AND delivered_at IS NULL
$$;

-- The previous signature, for the --release-held of an engine of the previous version.
CREATE OR REPLACE FUNCTION m2p_release_held(p_id BIGINT,
    OUT o_outcome TEXT, OUT o_player INTEGER, OUT o_pool VARCHAR, OUT o_key VARCHAR,
    OUT o_advc NUMERIC, OUT o_ap NUMERIC, OUT o_event_id INTEGER, OUT o_settled_at TIMESTAMPTZ)
LANGUAGE sql AS $$
    SELECT * FROM m2p_release_held(p_id, NULL)
$$;
