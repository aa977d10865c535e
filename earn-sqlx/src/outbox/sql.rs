//! The outbox statements, one set per dialect.

use crate::backend::Dialect;

/// The statements, by dialect.
pub(super) struct Sql {
    pub(super) create: &'static [&'static str],
    pub(super) insert: &'static str,
    pub(super) delete: &'static str,
    /// SQLite: claim and read in one `UPDATE … RETURNING`.
    pub(super) claim: &'static str,
    /// PostgreSQL / MySQL: lock claimable rows, skipping locked ones.
    pub(super) lock: &'static str,
    pub(super) extend: &'static str,
    pub(super) count: &'static str,
    /// PostgreSQL: `insert` that also wakes the relays listening on
    /// channel `earn_outbox` (`wake.rs`) once the transaction commits.
    pub(super) insert_notify: &'static str,
}

const SQL: [Sql; 3] = [
    Sql {
        create: &[
            "CREATE TABLE IF NOT EXISTS earn_outbox (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, \
             event TEXT NOT NULL, created_at INTEGER NOT NULL, claimed_until INTEGER NOT NULL, \
             attempts INTEGER NOT NULL DEFAULT 0)",
            "CREATE INDEX IF NOT EXISTS earn_outbox_claimable ON earn_outbox (claimed_until, created_at)",
        ],
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        delete: "DELETE FROM earn_outbox WHERE id = ?",
        claim: "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN \
                (SELECT id FROM earn_outbox WHERE claimed_until < ? ORDER BY created_at, id LIMIT ?) \
                RETURNING id, event",
        lock: "",
        extend: "",
        count: "SELECT COUNT(*) FROM earn_outbox",
        insert_notify: "",
    },
    Sql {
        create: &[
            "CREATE TABLE IF NOT EXISTS earn_outbox (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, \
             event TEXT NOT NULL, created_at BIGINT NOT NULL, claimed_until BIGINT NOT NULL, \
             attempts INTEGER NOT NULL DEFAULT 0)",
            "CREATE INDEX IF NOT EXISTS earn_outbox_claimable ON earn_outbox (claimed_until, created_at)",
        ],
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES ($1, $2, $3, $4, $5)",
        delete: "DELETE FROM earn_outbox WHERE id = $1",
        claim: "",
        lock: "SELECT id, event FROM earn_outbox WHERE claimed_until < $1 ORDER BY created_at, id \
               LIMIT $2 FOR UPDATE SKIP LOCKED",
        extend: "UPDATE earn_outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id = $2",
        count: "SELECT COUNT(*) FROM earn_outbox",
        insert_notify: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) \
                        SELECT $1, $2, $3, $4, $5 FROM (SELECT pg_notify('earn_outbox', '')) AS wake",
    },
    Sql {
        create: &[
            "CREATE TABLE IF NOT EXISTS earn_outbox (id VARCHAR(36) NOT NULL PRIMARY KEY, \
             name VARCHAR(255) NOT NULL, event LONGTEXT NOT NULL, created_at BIGINT NOT NULL, \
             claimed_until BIGINT NOT NULL, attempts INT NOT NULL DEFAULT 0, \
             INDEX earn_outbox_claimable (claimed_until, created_at))",
        ],
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        delete: "DELETE FROM earn_outbox WHERE id = ?",
        claim: "",
        lock: "SELECT id, event FROM earn_outbox WHERE claimed_until < ? ORDER BY created_at, id \
               LIMIT ? FOR UPDATE SKIP LOCKED",
        extend: "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id = ?",
        count: "SELECT COUNT(*) FROM earn_outbox",
        insert_notify: "",
    },
];

pub(super) fn sql(dialect: Dialect) -> &'static Sql {
    &SQL[dialect as usize]
}
