CREATE TABLE IF NOT EXISTS earn_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    version BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    event TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS earn_streams (
    stream TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS earn_checkpoints (
    name TEXT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS earn_snapshots (
    stream TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    saved_at BIGINT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS earn_events_stream AFTER INSERT ON earn_events BEGIN
    INSERT INTO earn_streams (stream, version) VALUES (NEW.stream, NEW.version)
    ON CONFLICT (stream) DO UPDATE SET version = excluded.version;
END;
