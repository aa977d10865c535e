CREATE TABLE IF NOT EXISTS earn_outbox (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    claimed_until INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS earn_outbox_claimable ON earn_outbox (claimed_until, created_at, id);
CREATE TABLE IF NOT EXISTS earn_outbox_dead (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS earn_outbox_dead_failed ON earn_outbox_dead (failed_at);
