//! The outbox statements, one set per dialect.

use crate::backend::Dialect;
use crate::connection::{Conn, with_backend};
use crate::sql::in_list;

/// How handled rows are deleted.
#[derive(Clone, Copy)]
pub(super) enum Delete {
    /// PostgreSQL: the rows whose ids are in one array parameter.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Array(&'static str),
    /// The start of a `DELETE` completed with an `IN` list.
    InList(&'static str),
}

/// How a relay claims rows.
#[derive(Clone, Copy)]
pub(super) enum Claim {
    /// Claim and read in one `UPDATE … RETURNING`, ordered by the caller.
    Returning(&'static str),
    /// MySQL: lock claimable rows, skipping locked ones, then lease them
    /// with an `UPDATE` completed with an `IN` list.
    LockThenLease {
        lock: &'static str,
        extend_in: &'static str,
    },
}

/// The statements, by dialect.
pub(super) struct Sql {
    /// Creates `earn_outbox` and `earn_outbox_dead` (several statements).
    pub(super) migration: &'static str,
    pub(super) insert: &'static str,
    /// PostgreSQL: `insert` that also wakes the relays listening on
    /// channel `earn_outbox` (`wake.rs`) once the transaction commits.
    pub(super) insert_notify: Option<&'static str>,
    pub(super) delete: Delete,
    pub(super) claim: Claim,
    pub(super) count: &'static str,
    /// Copies a claimed row into `earn_outbox_dead`, replacing a dead
    /// letter of the same id, if the row is still under this claim.
    pub(super) bury: &'static str,
    /// Deletes a row if it is still under this claim.
    pub(super) delete_claimed: &'static str,
    /// Copies a dead letter back into the outbox, claimable at once (and
    /// on PostgreSQL wakes the relays once committed).
    pub(super) requeue: &'static str,
    /// Deletes a dead letter.
    pub(super) dead_delete: &'static str,
}

const SQL: [Sql; 3] = [
    Sql {
        migration: include_str!("../../migrations/outbox_sqlite.sql"),
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        insert_notify: None,
        delete: Delete::InList("DELETE FROM earn_outbox WHERE id IN "),
        claim: Claim::Returning(
            "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM earn_outbox WHERE claimed_until < ? ORDER BY claimed_until, created_at, id LIMIT ?) \
             RETURNING id, event, attempts, created_at",
        ),
        count: "SELECT COUNT(*) FROM earn_outbox",
        bury: "INSERT OR REPLACE INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
               SELECT id, name, event, ?, attempts, ? FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        delete_claimed: "DELETE FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        requeue: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until, attempts) \
                  SELECT id, name, event, ?, 0, 0 FROM earn_outbox_dead WHERE id = ?",
        dead_delete: "DELETE FROM earn_outbox_dead WHERE id = ?",
    },
    Sql {
        migration: include_str!("../../migrations/outbox_postgres.sql"),
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES ($1, $2, $3, $4, $5)",
        insert_notify: Some(
            "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) \
             SELECT $1, $2, $3, $4, $5 FROM (SELECT pg_notify('earn_outbox', '')) AS wake",
        ),
        delete: Delete::Array("DELETE FROM earn_outbox WHERE id = ANY($1)"),
        // One statement, no transaction of its own: the rows are locked,
        // skipping those another relay is claiming, and leased at once.
        claim: Claim::Returning(
            "UPDATE earn_outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM earn_outbox WHERE claimed_until < $2 ORDER BY claimed_until, created_at, id LIMIT $3 \
             FOR UPDATE SKIP LOCKED) \
             RETURNING id, event, attempts, created_at",
        ),
        count: "SELECT COUNT(*) FROM earn_outbox",
        bury: "INSERT INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
               SELECT id, name, event, $1, attempts, $2 FROM earn_outbox WHERE id = $3 AND claimed_until = $4 \
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, event = EXCLUDED.event, \
               reason = EXCLUDED.reason, attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at",
        delete_claimed: "DELETE FROM earn_outbox WHERE id = $1 AND claimed_until = $2",
        requeue: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until, attempts) \
                  SELECT id, name, event, $1, 0, 0 FROM earn_outbox_dead, \
                  (SELECT pg_notify('earn_outbox', '')) AS wake WHERE id = $2",
        dead_delete: "DELETE FROM earn_outbox_dead WHERE id = $1",
    },
    Sql {
        migration: include_str!("../../migrations/outbox_mysql.sql"),
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        insert_notify: None,
        delete: Delete::InList("DELETE FROM earn_outbox WHERE id IN "),
        claim: Claim::LockThenLease {
            lock: "SELECT id, event, attempts, created_at FROM earn_outbox WHERE claimed_until < ? \
                   ORDER BY claimed_until, created_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
            extend_in: "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN ",
        },
        count: "SELECT COUNT(*) FROM earn_outbox",
        bury: "REPLACE INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
               SELECT id, name, event, ?, attempts, ? FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        delete_claimed: "DELETE FROM earn_outbox WHERE id = ? AND claimed_until = ?",
        requeue: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until, attempts) \
                  SELECT id, name, event, ?, 0, 0 FROM earn_outbox_dead WHERE id = ?",
        dead_delete: "DELETE FROM earn_outbox_dead WHERE id = ?",
    },
];

pub(super) fn sql(dialect: Dialect) -> &'static Sql {
    &SQL[dialect as usize]
}

/// The longest `IN` list sent: well under SQLite's and MySQL's limits on
/// bound parameters.
const MAX_IN: usize = 1_000;

/// Runs `head` completed with an `IN` list of `ids` (in chunks of at most
/// [`MAX_IN`]), binding `first` before the ids; returns the rows affected.
pub(super) async fn run_in(
    conn: &mut Conn,
    head: &'static str,
    first: Option<i64>,
    ids: &[String],
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for chunk in ids.chunks(MAX_IN) {
        let offset = usize::from(first.is_some());
        let statement = format!("{head}{}", in_list(conn.dialect(), offset, chunk.len()));
        affected += with_backend!(&mut *conn, |c, DB| {
            // Only placeholders vary: the values are bound. Not kept
            // prepared, as each length is a statement of its own.
            let mut query = sqlx::query::<DB>(sqlx::AssertSqlSafe(statement)).persistent(false);
            if let Some(first) = first {
                query = query.bind(first);
            }
            for id in chunk {
                query = query.bind(id);
            }
            query
                .execute(&mut *c)
                .await
                .map(|done| done.rows_affected())
        })?;
    }
    Ok(affected)
}
