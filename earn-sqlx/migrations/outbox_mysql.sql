CREATE TABLE IF NOT EXISTS earn_outbox (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    event LONGTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    INDEX earn_outbox_claimable (claimed_until, created_at, id)
);
CREATE TABLE IF NOT EXISTS earn_outbox_dead (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    event LONGTEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INT NOT NULL,
    failed_at BIGINT NOT NULL,
    INDEX earn_outbox_dead_failed (failed_at)
);
