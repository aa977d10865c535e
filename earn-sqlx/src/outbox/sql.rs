//! The outbox statements, one set per dialect.

use crate::backend::Dialect;

/// The statements, by dialect.
pub(super) struct Sql {
    /// Creates `earn_outbox` and `earn_outbox_dead` (several statements).
    pub(super) migration: &'static str,
    pub(super) insert: &'static str,
    /// PostgreSQL: `insert` that also wakes the relays listening on
    /// channel `earn_outbox` (`wake.rs`) once the transaction commits.
    pub(super) insert_notify: &'static str,
    /// PostgreSQL: deletes the rows whose ids are in an array.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) delete_any: &'static str,
    /// Elsewhere: the start of a `DELETE` completed with an `IN` list.
    pub(super) delete_in: &'static str,
    /// SQLite and PostgreSQL: claim and read in one `UPDATE … RETURNING`,
    /// ordered by the caller.
    pub(super) claim: &'static str,
    /// MySQL: lock claimable rows, skipping locked ones …
    pub(super) lock: &'static str,
    /// … then lease them, completed with an `IN` list.
    pub(super) extend_in: &'static str,
    pub(super) count: &'static str,
    /// Copies a claimed row into `earn_outbox_dead`, replacing a dead
    /// letter of the same id, if the row is still under this claim.
    pub(super) bury: &'static str,
    /// Deletes a row if it is still under this claim.
    pub(super) delete_claimed: &'static str,
    /// Dead letters, oldest first, at most a bound number.
    pub(super) dead_list: &'static str,
    /// Copies a dead letter back into the outbox, claimable at once (and
    /// on PostgreSQL wakes the relays once committed).
    pub(super) requeue: &'static str,
    pub(super) dead_delete: &'static str,
    pub(super) dead_purge: &'static str,
}

const SQL: [Sql; 3] = [
    Sql {
        migration: include_str!("../../migrations/outbox_sqlite.sql"),
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        insert_notify: "",
        delete_any: "",
        delete_in: "DELETE FROM earn_outbox WHERE id IN ",
        claim: "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN \
                (SELECT id FROM earn_outbox WHERE claimed_until < ? ORDER BY claimed_until, created_at LIMIT ?) \
                RETURNING id, event, attempts, created_at",
        lock: "",
        extend_in: "",
        count: "SELECT COUNT(*) FROM earn_outbox",
        bury: "INSERT OR REPLACE INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
               SELECT id, name, event, ?, attempts, ? FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        delete_claimed: "DELETE FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        dead_list: "SELECT id, name, event, reason, attempts, failed_at FROM earn_outbox_dead \
                    ORDER BY failed_at, id LIMIT ?",
        requeue: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until, attempts) \
                  SELECT id, name, event, ?, 0, 0 FROM earn_outbox_dead WHERE id = ?",
        dead_delete: "DELETE FROM earn_outbox_dead WHERE id = ?",
        dead_purge: "DELETE FROM earn_outbox_dead",
    },
    Sql {
        migration: include_str!("../../migrations/outbox_postgres.sql"),
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES ($1, $2, $3, $4, $5)",
        insert_notify: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) \
                        SELECT $1, $2, $3, $4, $5 FROM (SELECT pg_notify('earn_outbox', '')) AS wake",
        delete_any: "DELETE FROM earn_outbox WHERE id = ANY($1)",
        delete_in: "",
        // One statement, no transaction of its own: the rows are locked,
        // skipping those another relay is claiming, and leased at once.
        claim: "UPDATE earn_outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN \
                (SELECT id FROM earn_outbox WHERE claimed_until < $2 ORDER BY claimed_until, created_at LIMIT $3 \
                FOR UPDATE SKIP LOCKED) \
                RETURNING id, event, attempts, created_at",
        lock: "",
        extend_in: "",
        count: "SELECT COUNT(*) FROM earn_outbox",
        bury: "INSERT INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
               SELECT id, name, event, $1, attempts, $2 FROM earn_outbox WHERE id = $3 AND claimed_until = $4 \
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, event = EXCLUDED.event, \
               reason = EXCLUDED.reason, attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at",
        delete_claimed: "DELETE FROM earn_outbox WHERE id = $1 AND claimed_until = $2",
        dead_list: "SELECT id, name, event, reason, attempts, failed_at FROM earn_outbox_dead \
                    ORDER BY failed_at, id LIMIT $1",
        requeue: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until, attempts) \
                  SELECT id, name, event, $1, 0, 0 FROM earn_outbox_dead, \
                  (SELECT pg_notify('earn_outbox', '')) AS wake WHERE id = $2",
        dead_delete: "DELETE FROM earn_outbox_dead WHERE id = $1",
        dead_purge: "DELETE FROM earn_outbox_dead",
    },
    Sql {
        migration: include_str!("../../migrations/outbox_mysql.sql"),
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        insert_notify: "",
        delete_any: "",
        delete_in: "DELETE FROM earn_outbox WHERE id IN ",
        claim: "",
        lock: "SELECT id, event, attempts, created_at FROM earn_outbox WHERE claimed_until < ? \
               ORDER BY claimed_until, created_at LIMIT ? FOR UPDATE SKIP LOCKED",
        extend_in: "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN ",
        count: "SELECT COUNT(*) FROM earn_outbox",
        bury: "REPLACE INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
               SELECT id, name, event, ?, attempts, ? FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        delete_claimed: "DELETE FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        dead_list: "SELECT id, name, event, reason, attempts, failed_at FROM earn_outbox_dead \
                    ORDER BY failed_at, id LIMIT ?",
        requeue: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until, attempts) \
                  SELECT id, name, event, ?, 0, 0 FROM earn_outbox_dead WHERE id = ?",
        dead_delete: "DELETE FROM earn_outbox_dead WHERE id = ?",
        dead_purge: "DELETE FROM earn_outbox_dead",
    },
];

pub(super) fn sql(dialect: Dialect) -> &'static Sql {
    &SQL[dialect as usize]
}

/// `(?, ?, …)` (`($2, $3, …)` on PostgreSQL after `offset` parameters)
/// with `n` placeholders, to complete the `…_in` statements.
pub(super) fn in_list(dialect: Dialect, offset: usize, n: usize) -> String {
    use std::fmt::Write as _;
    let mut list = String::with_capacity(2 + 5 * n);
    list.push('(');
    for i in 0..n {
        if i > 0 {
            list.push_str(", ");
        }
        match dialect {
            Dialect::Postgres => {
                let _ = write!(list, "${}", offset + i + 1);
            }
            Dialect::Sqlite | Dialect::MySql => list.push('?'),
        }
    }
    list.push(')');
    list
}

/// The longest `IN` list sent: well under SQLite's and MySQL's limits on
/// bound parameters.
pub(super) const MAX_IN: usize = 1_000;
