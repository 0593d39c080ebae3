-- The game's tables, compatible with the Python service this engine replaces.
-- On a fresh database they are created; on a database the old service created they are
-- adapted in place (its amounts were floats and its defaults lived in Python): no row is lost.

CREATE TABLE IF NOT EXISTS players (
    id SERIAL PRIMARY KEY,
    username VARCHAR(50) NOT NULL UNIQUE,
    email VARCHAR(255),
    wallet_address VARCHAR(255),
    total_ap NUMERIC(30, 8),
    total_advc_mined NUMERIC(30, 8),
    level INTEGER,
    verified BOOLEAN,
    active BOOLEAN,
    created_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    last_mining_event TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS pool_snapshots (
    id SERIAL PRIMARY KEY,
    player_id INTEGER NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    pool_name VARCHAR(50) NOT NULL,
    paid NUMERIC(30, 8),
    balance NUMERIC(30, 8),
    immature NUMERIC(30, 8),
    total_hash DOUBLE PRECISION,
    total_shares BIGINT,
    raw_response TEXT,
    snapshot_time TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS mining_events (
    id SERIAL PRIMARY KEY,
    player_id INTEGER NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    pool_name VARCHAR(50) NOT NULL,
    advc_amount NUMERIC(30, 8),
    ap_awarded NUMERIC(30, 8),
    previous_paid NUMERIC(30, 8),
    current_paid NUMERIC(30, 8),
    event_time TIMESTAMPTZ,
    processed BOOLEAN,
    notified BOOLEAN
);

-- Columns an older version of the old schema may lack.
ALTER TABLE players ADD COLUMN IF NOT EXISTS email VARCHAR(255);
ALTER TABLE players ADD COLUMN IF NOT EXISTS wallet_address VARCHAR(255);
ALTER TABLE players ADD COLUMN IF NOT EXISTS total_ap NUMERIC(30, 8);
ALTER TABLE players ADD COLUMN IF NOT EXISTS total_advc_mined NUMERIC(30, 8);
ALTER TABLE players ADD COLUMN IF NOT EXISTS level INTEGER;
ALTER TABLE players ADD COLUMN IF NOT EXISTS verified BOOLEAN;
ALTER TABLE players ADD COLUMN IF NOT EXISTS active BOOLEAN;
ALTER TABLE players ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ;
ALTER TABLE players ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ;
ALTER TABLE players ADD COLUMN IF NOT EXISTS last_mining_event TIMESTAMPTZ;
ALTER TABLE pool_snapshots ADD COLUMN IF NOT EXISTS raw_response TEXT;
ALTER TABLE mining_events ADD COLUMN IF NOT EXISTS previous_paid NUMERIC(30, 8);
ALTER TABLE mining_events ADD COLUMN IF NOT EXISTS current_paid NUMERIC(30, 8);
ALTER TABLE mining_events ADD COLUMN IF NOT EXISTS processed BOOLEAN;
ALTER TABLE mining_events ADD COLUMN IF NOT EXISTS notified BOOLEAN;

-- Exact amounts: floats (the old service's Float columns) become NUMERIC, rounded to 8 places.
ALTER TABLE players
    ALTER COLUMN total_ap TYPE NUMERIC(30, 8) USING round(total_ap::numeric, 8),
    ALTER COLUMN total_advc_mined TYPE NUMERIC(30, 8) USING round(total_advc_mined::numeric, 8);
ALTER TABLE pool_snapshots
    ALTER COLUMN paid TYPE NUMERIC(30, 8) USING round(paid::numeric, 8),
    ALTER COLUMN balance TYPE NUMERIC(30, 8) USING round(balance::numeric, 8),
    ALTER COLUMN immature TYPE NUMERIC(30, 8) USING round(immature::numeric, 8);
-- Share counts pass 2^31 on busy wallets: the old Integer column becomes BIGINT.
ALTER TABLE pool_snapshots ALTER COLUMN total_shares TYPE BIGINT;
ALTER TABLE mining_events
    ALTER COLUMN advc_amount TYPE NUMERIC(30, 8) USING round(advc_amount::numeric, 8),
    ALTER COLUMN ap_awarded TYPE NUMERIC(30, 8) USING round(ap_awarded::numeric, 8),
    ALTER COLUMN previous_paid TYPE NUMERIC(30, 8) USING round(previous_paid::numeric, 8),
    ALTER COLUMN current_paid TYPE NUMERIC(30, 8) USING round(current_paid::numeric, 8);

-- Database-level defaults, so a game can insert a player with just username, email,
-- wallet_address, verified and active.
UPDATE players SET total_ap = 0 WHERE total_ap IS NULL;
UPDATE players SET total_advc_mined = 0 WHERE total_advc_mined IS NULL;
UPDATE players SET level = 1 WHERE level IS NULL;
UPDATE players SET verified = false WHERE verified IS NULL;
UPDATE players SET active = true WHERE active IS NULL;
UPDATE players SET created_at = now() WHERE created_at IS NULL;
UPDATE players SET updated_at = created_at WHERE updated_at IS NULL;
ALTER TABLE players
    ALTER COLUMN total_ap SET DEFAULT 0, ALTER COLUMN total_ap SET NOT NULL,
    ALTER COLUMN total_advc_mined SET DEFAULT 0, ALTER COLUMN total_advc_mined SET NOT NULL,
    ALTER COLUMN level SET DEFAULT 1, ALTER COLUMN level SET NOT NULL,
    ALTER COLUMN verified SET DEFAULT false, ALTER COLUMN verified SET NOT NULL,
    ALTER COLUMN active SET DEFAULT true, ALTER COLUMN active SET NOT NULL,
    ALTER COLUMN created_at SET DEFAULT now(), ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN updated_at SET DEFAULT now(), ALTER COLUMN updated_at SET NOT NULL;
ALTER TABLE pool_snapshots ALTER COLUMN snapshot_time SET DEFAULT now();
ALTER TABLE mining_events
    ALTER COLUMN event_time SET DEFAULT now(),
    ALTER COLUMN processed SET DEFAULT false,
    ALTER COLUMN notified SET DEFAULT false;

CREATE INDEX IF NOT EXISTS pool_snapshots_player_pool_time
    ON pool_snapshots (player_id, pool_name, snapshot_time);
CREATE INDEX IF NOT EXISTS pool_snapshots_time ON pool_snapshots (snapshot_time);
CREATE INDEX IF NOT EXISTS mining_events_player_time ON mining_events (player_id, event_time);
