//! The position below which a PostgreSQL reader may read: no transaction
//! still open can commit an event there.
//!
//! Positions come from a sequence, taken when a row is inserted, so a
//! transaction that took position 10 may commit after one that took 11.
//! A reader that read 11 and moved on would never see 10 (Watermill #311,
//! Marten #3321). Instead, the reader notes the sequence's last value `L`,
//! then the transactions holding a write lock on `earn_events` (every
//! appender takes it before its first position and keeps it to its end).
//! Once those have all ended, every position up to `L` is final: it holds
//! a committed event or never will. Only appenders are waited for, not
//! every transaction of the server, and nothing ever waits: a reader reads
//! up to the last final position and comes back.
//!
//! SQLite (one writer at a time) and MySQL (appends take their positions
//! from a row locked until they commit) commit in position order: every
//! visible position is final.

use earn_core::Error;

use crate::connection::Conn;

#[derive(Default)]
pub(super) struct Watermark {
    #[cfg(feature = "postgres")]
    state: tokio::sync::Mutex<State>,
}

#[cfg(feature = "postgres")]
#[derive(Default)]
struct State {
    /// Every position up to here is final.
    safe: u64,
    /// A candidate: the sequence's value, final once these transactions
    /// (virtual ids) have ended.
    pending: Option<(u64, Vec<String>)>,
}

#[cfg(feature = "postgres")]
const LAST_POSITION: &str =
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM earn_events_position";

/// The transactions that wrote to `earn_events` and are still open.
#[cfg(feature = "postgres")]
const APPENDERS: &str = "SELECT virtualtransaction FROM pg_locks \
     WHERE locktype = 'relation' AND relation = 'earn_events'::regclass \
     AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()";

/// How many of some transactions still hold their write lock.
#[cfg(feature = "postgres")]
const STILL_OPEN: &str = "SELECT COUNT(*) FROM pg_locks \
     WHERE locktype = 'relation' AND relation = 'earn_events'::regclass \
     AND mode = 'RowExclusiveLock' AND virtualtransaction = ANY($1)";

impl Watermark {
    /// The highest position a reader on `conn` may read up to: on
    /// PostgreSQL the watermark, elsewhere every visible position.
    pub(super) async fn safe(&self, conn: &mut Conn) -> Result<u64, Error> {
        #[allow(irrefutable_let_patterns, reason = "the only backend of some builds")]
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(c) = conn {
            return self.postgres(c).await;
        }
        let _ = conn;
        Ok(u64::MAX)
    }

    #[cfg(feature = "postgres")]
    async fn postgres(&self, c: &mut sqlx::PgConnection) -> Result<u64, Error> {
        use super::{store_error, to_u64};
        let error = || store_error(super::EVENTS_TABLE, "read the watermark");
        let mut state = self.state.lock().await;
        if let Some((last, open)) = &state.pending {
            let still: i64 = sqlx::query_scalar(STILL_OPEN)
                .bind(open)
                .fetch_one(&mut *c)
                .await
                .map_err(error())?;
            if still == 0 {
                state.safe = state.safe.max(*last);
                state.pending = None;
            }
        }
        if state.pending.is_none() {
            // The sequence first, then the lock holders: whoever took a
            // position up to `last` holds its lock by now, or ended.
            let last: i64 = sqlx::query_scalar(LAST_POSITION)
                .fetch_one(&mut *c)
                .await
                .map_err(error())?;
            let last = to_u64(last);
            if last > state.safe {
                let open: Vec<String> = sqlx::query_scalar(APPENDERS)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(error())?;
                if open.is_empty() {
                    state.safe = last;
                } else {
                    state.pending = Some((last, open));
                }
            }
        }
        Ok(state.safe)
    }
}
