//! The event store's statements, one set per dialect.

use crate::backend::Dialect;

/// The statements, by dialect.
pub(super) struct Sql {
    /// Creates the store's tables (several statements).
    pub(super) migration: &'static str,
    /// Moves a stream from an exact version by `n`: PostgreSQL appends
    /// the events in the same statement; the others only bump the stream.
    pub(super) append_exact: &'static str,
    /// Creates a stream at version `n` if there is none.
    pub(super) append_no_stream: &'static str,
    /// Moves a stream by `n`, creating it if needed.
    pub(super) append_any: &'static str,
    /// One event appended in one statement, by expected version (exact,
    /// no stream, any): with scalar parameters on PostgreSQL; on SQLite a
    /// trigger moves the stream. Parameters: stream, expected version (0
    /// for no stream and any), id, name, schema version, event, time.
    pub(super) append_one: Option<[&'static str; 3]>,
    /// MySQL: takes `n` global positions from the sequencer row, holding
    /// its lock until the transaction ends.
    pub(super) take_positions: Option<&'static str>,
    /// Inserts one event (SQLite, MySQL).
    pub(super) insert_one: &'static str,
    /// The head of a multi-row insert, completed with `(…), (…)`.
    pub(super) insert_head: &'static str,
    /// Placeholders of one inserted row, without the parentheses.
    pub(super) insert_row: &'static str,
    /// Stored events among some ids: completed with an `IN` list, or one
    /// array parameter on PostgreSQL. Only read after an append wrote
    /// nothing, to say why.
    pub(super) stored_ids: &'static str,
    /// Whether one event id is stored (`Any` appends on SQLite and MySQL
    /// check their first event before writing).
    pub(super) stored_id: &'static str,
    pub(super) stream_version: &'static str,
    pub(super) read_all: &'static str,
    pub(super) read_stream: &'static str,
    /// The highest position stored.
    pub(super) head: &'static str,
    /// Reads a checkpoint, locking its row for the transaction.
    pub(super) checkpoint_lock: &'static str,
    /// Creates a checkpoint at 0 if there is none.
    pub(super) checkpoint_init: &'static str,
    pub(super) checkpoint_save: &'static str,
    pub(super) checkpoint_delete: &'static str,
    pub(super) checkpoints: &'static str,
    pub(super) snapshot_save: &'static str,
    pub(super) snapshot_load: &'static str,
    /// Deletes events created before a time, at or below a position.
    pub(super) prune: &'static str,
}

macro_rules! read_sql {
    ($where:literal) => {
        concat!(
            "SELECT position, stream, version, schema_version, event FROM earn_events ",
            $where
        )
    };
}

/// Statements alike on every database.
const HEAD: &str = "SELECT COALESCE(MAX(position), 0) FROM earn_events";
const CHECKPOINTS: &str = "SELECT name, position, updated_at FROM earn_checkpoints ORDER BY name";

/// Statements alike on SQLite and MySQL (`?` placeholders).
const STORED_IDS: &str = "SELECT id, stream, version, position FROM earn_events WHERE id IN ";
const STORED_ID: &str = "SELECT COUNT(*) FROM earn_events WHERE id = ?";
const STREAM_VERSION: &str = "SELECT version FROM earn_streams WHERE stream = ?";
const READ_ALL: &str = read_sql!("WHERE position > ? AND position <= ? ORDER BY position LIMIT ?");
const READ_STREAM: &str = read_sql!("WHERE stream = ? AND version >= ? ORDER BY version LIMIT ?");
const CHECKPOINT_SAVE: &str =
    "UPDATE earn_checkpoints SET position = ?, updated_at = ? WHERE name = ?";
const CHECKPOINT_DELETE: &str = "DELETE FROM earn_checkpoints WHERE name = ?";
const SNAPSHOT_LOAD: &str = "SELECT version, state FROM earn_snapshots WHERE stream = ?";
const PRUNE: &str = "DELETE FROM earn_events WHERE position <= ? AND created_at < ?";

const SQL: [Sql; 3] = [
    Sql {
        migration: include_str!("../../migrations/store_sqlite.sql"),
        append_exact: "UPDATE earn_streams SET version = version + ? WHERE stream = ? AND version = ? RETURNING version",
        append_no_stream: "INSERT INTO earn_streams (stream, version) VALUES (?, ?) ON CONFLICT (stream) DO NOTHING RETURNING version",
        append_any: "INSERT INTO earn_streams (stream, version) VALUES (?, ?) \
                     ON CONFLICT (stream) DO UPDATE SET version = version + excluded.version RETURNING version",
        append_one: Some([
            "INSERT INTO earn_events (stream, version, id, name, schema_version, event, created_at) \
             SELECT ?1, version + 1, ?3, ?4, ?5, ?6, ?7 FROM earn_streams WHERE stream = ?1 AND version = ?2 \
             RETURNING position, version",
            "INSERT INTO earn_events (stream, version, id, name, schema_version, event, created_at) \
             SELECT ?1, ?2 + 1, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (SELECT 1 FROM earn_streams WHERE stream = ?1) \
             RETURNING position, version",
            "INSERT INTO earn_events (stream, version, id, name, schema_version, event, created_at) \
             SELECT ?1, COALESCE((SELECT version FROM earn_streams WHERE stream = ?1), ?2) + 1, ?3, ?4, ?5, ?6, ?7 \
             WHERE NOT EXISTS (SELECT 1 FROM earn_events WHERE id = ?3) RETURNING position, version",
        ]),
        take_positions: None,
        insert_one: "INSERT INTO earn_events (stream, version, id, name, schema_version, event, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING position, version",
        insert_head: "INSERT INTO earn_events (stream, version, id, name, schema_version, event, created_at) VALUES ",
        insert_row: "?, ?, ?, ?, ?, ?, ?",
        stored_ids: STORED_IDS,
        stored_id: STORED_ID,
        stream_version: STREAM_VERSION,
        read_all: READ_ALL,
        read_stream: READ_STREAM,
        head: HEAD,
        // A write, so the transaction takes the write lock now and waits
        // for it (`busy_timeout`) instead of failing to upgrade later.
        checkpoint_lock: "UPDATE earn_checkpoints SET updated_at = updated_at WHERE name = ? RETURNING position",
        checkpoint_init: "INSERT OR IGNORE INTO earn_checkpoints (name, position, updated_at) VALUES (?, 0, ?)",
        checkpoint_save: CHECKPOINT_SAVE,
        checkpoint_delete: CHECKPOINT_DELETE,
        checkpoints: CHECKPOINTS,
        snapshot_save: "INSERT INTO earn_snapshots (stream, version, state, saved_at) VALUES (?, ?, ?, ?) \
                        ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state, \
                        saved_at = excluded.saved_at WHERE excluded.version >= earn_snapshots.version",
        snapshot_load: SNAPSHOT_LOAD,
        prune: PRUNE,
    },
    Sql {
        migration: include_str!("../../migrations/store_postgres.sql"),
        // One statement: the stream moves (or not: then nothing is
        // inserted) and the events go in, with their positions taken after
        // the stream's row lock, so a stream's versions and positions rise
        // together. A retry is recognized by its first event's id (one
        // index lookup, whatever the planner thinks of an array); a later
        // id stored already breaks the unique index.
        append_exact: "WITH s AS (UPDATE earn_streams SET version = version + $2 WHERE stream = $1 AND version = $3 \
                       AND NOT EXISTS (SELECT 1 FROM earn_events WHERE id = ($4::text[])[1]) RETURNING version) \
                       INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) \
                       SELECT nextval('earn_events_position'), $1, s.version - $2 + e.n, e.id, e.name, e.schema_version, e.event, e.created_at \
                       FROM s, unnest($4::text[], $5::text[], $6::int4[], $7::text[], $8::int8[]) \
                       WITH ORDINALITY AS e(id, name, schema_version, event, created_at, n) ORDER BY e.n \
                       RETURNING position, version",
        append_no_stream: "WITH s AS (INSERT INTO earn_streams (stream, version) SELECT $1, $2 \
                           WHERE NOT EXISTS (SELECT 1 FROM earn_events WHERE id = ($3::text[])[1]) \
                           ON CONFLICT (stream) DO NOTHING RETURNING version) \
                           INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) \
                           SELECT nextval('earn_events_position'), $1, s.version - $2 + e.n, e.id, e.name, e.schema_version, e.event, e.created_at \
                           FROM s, unnest($3::text[], $4::text[], $5::int4[], $6::text[], $7::int8[]) \
                           WITH ORDINALITY AS e(id, name, schema_version, event, created_at, n) ORDER BY e.n \
                           RETURNING position, version",
        append_any: "WITH s AS (INSERT INTO earn_streams (stream, version) SELECT $1, $2 \
                     WHERE NOT EXISTS (SELECT 1 FROM earn_events WHERE id = ($3::text[])[1]) \
                     ON CONFLICT (stream) DO UPDATE SET version = earn_streams.version + EXCLUDED.version RETURNING version) \
                     INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) \
                     SELECT nextval('earn_events_position'), $1, s.version - $2 + e.n, e.id, e.name, e.schema_version, e.event, e.created_at \
                     FROM s, unnest($3::text[], $4::text[], $5::int4[], $6::text[], $7::int8[]) \
                     WITH ORDINALITY AS e(id, name, schema_version, event, created_at, n) ORDER BY e.n \
                     RETURNING position, version",
        append_one: Some([
            "WITH s AS (UPDATE earn_streams SET version = version + 1 WHERE stream = $1 AND version = $2 \
             AND NOT EXISTS (SELECT 1 FROM earn_events WHERE id = $3) RETURNING version) \
             INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) \
             SELECT nextval('earn_events_position'), $1, s.version, $3, $4, $5, $6, $7 FROM s \
             RETURNING position, version",
            "WITH s AS (INSERT INTO earn_streams (stream, version) SELECT $1, $2 + 1 \
             WHERE NOT EXISTS (SELECT 1 FROM earn_events WHERE id = $3) \
             ON CONFLICT (stream) DO NOTHING RETURNING version) \
             INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) \
             SELECT nextval('earn_events_position'), $1, s.version, $3, $4, $5, $6, $7 FROM s \
             RETURNING position, version",
            "WITH s AS (INSERT INTO earn_streams (stream, version) SELECT $1, $2 + 1 \
             WHERE NOT EXISTS (SELECT 1 FROM earn_events WHERE id = $3) \
             ON CONFLICT (stream) DO UPDATE SET version = earn_streams.version + 1 RETURNING version) \
             INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) \
             SELECT nextval('earn_events_position'), $1, s.version, $3, $4, $5, $6, $7 FROM s \
             RETURNING position, version",
        ]),
        take_positions: None,
        insert_one: "",
        insert_head: "",
        insert_row: "",
        stored_ids: "SELECT id, stream, version, position FROM earn_events WHERE id = ANY($1)",
        stored_id: "SELECT COUNT(*) FROM earn_events WHERE id = $1",
        stream_version: "SELECT version FROM earn_streams WHERE stream = $1",
        read_all: read_sql!("WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"),
        read_stream: read_sql!("WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"),
        head: HEAD,
        checkpoint_lock: "SELECT position FROM earn_checkpoints WHERE name = $1 FOR UPDATE",
        checkpoint_init: "INSERT INTO earn_checkpoints (name, position, updated_at) VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING",
        checkpoint_save: "UPDATE earn_checkpoints SET position = $1, updated_at = $2 WHERE name = $3",
        checkpoint_delete: "DELETE FROM earn_checkpoints WHERE name = $1",
        checkpoints: CHECKPOINTS,
        snapshot_save: "INSERT INTO earn_snapshots (stream, version, state, saved_at) VALUES ($1, $2, $3, $4) \
                        ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state, \
                        saved_at = EXCLUDED.saved_at WHERE EXCLUDED.version >= earn_snapshots.version",
        snapshot_load: "SELECT version, state FROM earn_snapshots WHERE stream = $1",
        prune: "DELETE FROM earn_events WHERE position <= $1 AND created_at < $2",
    },
    Sql {
        migration: include_str!("../../migrations/store_mysql.sql"),
        append_exact: "UPDATE earn_streams SET version = version + ? WHERE stream = ? AND version = ?",
        append_no_stream: "INSERT IGNORE INTO earn_streams (stream, version) VALUES (?, ?)",
        // `LAST_INSERT_ID(expr)` hands the new version back in the reply.
        append_any: "INSERT INTO earn_streams (stream, version) VALUES (?, LAST_INSERT_ID(?)) \
                     ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + VALUES(version))",
        append_one: None,
        take_positions: Some(
            "UPDATE earn_event_position SET position = LAST_INSERT_ID(position + ?) WHERE id = 1",
        ),
        insert_one: "INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        insert_head: "INSERT INTO earn_events (position, stream, version, id, name, schema_version, event, created_at) VALUES ",
        insert_row: "?, ?, ?, ?, ?, ?, ?, ?",
        stored_ids: STORED_IDS,
        stored_id: STORED_ID,
        stream_version: STREAM_VERSION,
        read_all: READ_ALL,
        read_stream: READ_STREAM,
        head: HEAD,
        checkpoint_lock: "SELECT position FROM earn_checkpoints WHERE name = ? FOR UPDATE",
        checkpoint_init: "INSERT IGNORE INTO earn_checkpoints (name, position, updated_at) VALUES (?, 0, ?)",
        checkpoint_save: CHECKPOINT_SAVE,
        checkpoint_delete: CHECKPOINT_DELETE,
        checkpoints: CHECKPOINTS,
        snapshot_save: "INSERT INTO earn_snapshots (stream, version, state, saved_at) VALUES (?, ?, ?, ?) \
                        ON DUPLICATE KEY UPDATE state = IF(VALUES(version) >= version, VALUES(state), state), \
                        saved_at = IF(VALUES(version) >= version, VALUES(saved_at), saved_at), \
                        version = GREATEST(version, VALUES(version))",
        snapshot_load: SNAPSHOT_LOAD,
        prune: PRUNE,
    },
];

pub(super) fn sql(dialect: Dialect) -> &'static Sql {
    &SQL[dialect as usize]
}
