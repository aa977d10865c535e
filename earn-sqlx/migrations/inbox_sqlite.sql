CREATE TABLE IF NOT EXISTS earn_inbox (
    handler TEXT NOT NULL,
    event_id TEXT NOT NULL,
    handled_at INTEGER NOT NULL,
    PRIMARY KEY (handler, event_id)
);
