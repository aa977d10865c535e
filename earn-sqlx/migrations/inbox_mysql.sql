CREATE TABLE IF NOT EXISTS earn_inbox (
    handler VARCHAR(255) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (handler, event_id)
);
