-- 008: indexes for looking one player up (--explain, GET /accounts): the player's recent
-- awards, and each award's outbox row with its deliveries. Without them, explaining one
-- player reads the whole of mining_events and m2p_outbox.
-- Building them takes a lock that blocks writes to these tables for as long as the build
-- runs (seconds per million rows): upgrade in a quiet minute (docs/operations.md).
CREATE INDEX IF NOT EXISTS mining_events_player ON mining_events (player_id, id);
CREATE INDEX IF NOT EXISTS m2p_outbox_event ON m2p_outbox (mining_event_id);
