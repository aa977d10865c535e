CREATE SEQUENCE IF NOT EXISTS earn_events_position;
CREATE TABLE IF NOT EXISTS earn_events (
    position BIGINT NOT NULL PRIMARY KEY DEFAULT nextval('earn_events_position'),
    stream VARCHAR(255) NOT NULL,
    version BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    event TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (stream, version)
);
ALTER SEQUENCE earn_events_position OWNED BY earn_events.position;
CREATE TABLE IF NOT EXISTS earn_streams (
    stream VARCHAR(255) NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS earn_checkpoints (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS earn_snapshots (
    stream VARCHAR(255) NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    saved_at BIGINT NOT NULL
);
