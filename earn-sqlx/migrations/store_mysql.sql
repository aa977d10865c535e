CREATE TABLE IF NOT EXISTS earn_events (
    position BIGINT NOT NULL PRIMARY KEY,
    stream VARCHAR(255) NOT NULL,
    version BIGINT NOT NULL,
    id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    schema_version INT NOT NULL,
    event LONGTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE KEY earn_events_id (id),
    UNIQUE KEY earn_events_stream (stream, version)
);
CREATE TABLE IF NOT EXISTS earn_event_position (
    id INT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT IGNORE INTO earn_event_position (id, position) VALUES (1, 0);
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
    state LONGTEXT NOT NULL,
    saved_at BIGINT NOT NULL
);
