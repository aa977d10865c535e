//! The outbox as a transaction's publisher: events become rows written in
//! the transaction, at the savepoint level that raised them, and after
//! the commit the committer hands them over (or leaves them to a relay).

use std::sync::Arc;

use earn_core::{Error, Event, EventBus, EventError, EventSink};

use super::sql::sql;
use super::{Deleter, Outbox, OutboxMode, hand_over, lease_ms, now_ms, outbox_error};
use crate::connection::{Conn, Pool, with_backend};
use crate::deferred::BoxFuture;
use crate::publish::{Publisher, Raised};

/// Where committed outbox events are handed over.
pub(crate) enum Destination {
    /// A sink set with [`Db::with_outbox_sink`](crate::Db::with_outbox_sink).
    Sink(Arc<dyn EventSink>),
    /// The database's bus, or the process-wide one.
    Bus(Option<EventBus>),
}

/// Publishes through the outbox of one database.
pub(crate) struct ToOutbox {
    settings: Outbox,
    destination: Destination,
    /// Deletes the rows of handled events.
    deleter: Deleter,
}

impl ToOutbox {
    pub(crate) fn shared(
        settings: Outbox,
        destination: Destination,
        pool: Pool,
    ) -> Arc<dyn Publisher> {
        Arc::new(ToOutbox {
            settings,
            destination,
            deleter: Deleter::new(pool),
        })
    }
}

impl Publisher for ToOutbox {
    fn accept(&self, event: Event) -> Result<Raised, Error> {
        // Sealed before it is stored: the row, a relay and a dead letter
        // hold what the destination would have sent.
        let envelope = match &self.destination {
            Destination::Sink(sink) => sink.envelope(),
            Destination::Bus(bus) => bus.as_ref().and_then(EventSink::envelope),
        };
        let event = match envelope {
            Some(envelope) => envelope.seal(event)?,
            None => event,
        };
        let row = serialized(&event)?;
        // Refused before the commit: a row the sink will never take would
        // be retried by every relay and end as a dead letter.
        let max = match &self.destination {
            Destination::Sink(sink) => sink.max_payload(),
            Destination::Bus(_) => None,
        };
        if let Some(max) = max.filter(|&max| row.len() > max) {
            return Err(Error::PayloadTooLarge {
                event: event.name().to_string(),
                id: event.id(),
                size: row.len(),
                max,
            });
        }
        Ok(Raised {
            event,
            row: Some(row),
        })
    }

    fn stages(&self) -> bool {
        true
    }

    fn stage<'c>(
        &'c self,
        conn: &'c mut Conn,
        events: Vec<&'c Raised>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'c>> {
        // The committer claims its own rows for one lease; relay-only rows
        // are claimable at once.
        let claimed_until = match self.settings.mode {
            OutboxMode::Inline => now_ms().saturating_add(lease_ms(self.settings.lease)),
            OutboxMode::Relay => 0,
        };
        Box::pin(insert(conn, events, claimed_until))
    }

    fn publish(&self, events: Vec<Event>) -> BoxFuture<'_> {
        Box::pin(async move {
            if self.settings.mode == OutboxMode::Relay {
                return;
            }
            for event in events {
                let id = event.id().to_string();
                let deleter = self.deleter.clone();
                let accepted = Box::new(move || deleter.delete(id));
                match &self.destination {
                    Destination::Sink(sink) => hand_over(&**sink, event, accepted).await,
                    Destination::Bus(Some(bus)) => hand_over(bus, event, accepted).await,
                    Destination::Bus(None) => hand_over(EventBus::global(), event, accepted).await,
                }
            }
        })
    }
}

/// Writes `events` as outbox rows on `conn` (inside the caller's
/// transaction), claimed until `claimed_until` (0: claimable at once).
/// One event is one prepared `INSERT`; several are multi-row inserts of
/// up to [`MAX_ROWS`] rows each.
///
/// Rows a relay may take at once are announced on PostgreSQL with
/// `pg_notify`, which the server delivers only if the transaction commits.
/// Rows the committer holds a lease on are not: a relay woken for them
/// would find nothing to claim.
async fn insert(conn: &mut Conn, events: Vec<&Raised>, claimed_until: i64) -> Result<(), Error> {
    let statements = sql(conn.dialect());
    let rows = events
        .into_iter()
        .map(|raised| {
            let event = &raised.event;
            // `accept` serialized it already.
            let json = match &raised.row {
                Some(row) => std::borrow::Cow::Borrowed(row.as_str()),
                None => std::borrow::Cow::Owned(serialized(event)?),
            };
            let created = i64::try_from(event.data().timestamp_ms).unwrap_or(i64::MAX);
            Ok((event.id().to_string(), event.name().as_str(), json, created))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    // Folded into the last insert: a statement of its own would cost a
    // round trip, a fifth of a one-row commit.
    let notify = claimed_until == 0 && statements.insert_notify.is_some();
    let chunks = rows.chunks(MAX_ROWS).count();
    for (index, chunk) in rows.chunks(MAX_ROWS).enumerate() {
        let wake = notify && index + 1 == chunks;
        let statement = match (chunk.len(), wake) {
            (1, false) => std::borrow::Cow::Borrowed(statements.insert),
            (1, true) => {
                std::borrow::Cow::Borrowed(statements.insert_notify.unwrap_or(statements.insert))
            }
            (n, wake) => std::borrow::Cow::Owned(insert_rows(conn.dialect(), n, wake)),
        };
        let persistent = chunk.len() == 1;
        with_backend!(&mut *conn, |c, DB| {
            let mut query = sqlx::query::<DB>(sqlx::AssertSqlSafe(statement.into_owned()))
                .persistent(persistent);
            for (id, name, json, created) in chunk {
                query = query
                    .bind(id.as_str())
                    .bind(*name)
                    .bind(&**json)
                    .bind(*created)
                    .bind(claimed_until);
            }
            query.execute(&mut *c).await.map(|_| ())
        })
        .map_err(outbox_error("insert"))?;
    }
    Ok(())
}

/// The most rows in one insert: five values each, well under SQLite's
/// limit on bound parameters.
const MAX_ROWS: usize = 1_000;

/// An insert of `n` outbox rows; on PostgreSQL with `wake`, one that also
/// wakes the relays once the transaction commits.
fn insert_rows(dialect: crate::backend::Dialect, n: usize, wake: bool) -> String {
    use std::fmt::Write as _;
    let mut values = String::with_capacity(n * 24);
    for row in 0..n {
        values.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..5 {
            if column > 0 {
                values.push_str(", ");
            }
            match dialect {
                crate::backend::Dialect::Postgres => {
                    let _ = write!(values, "${}", row * 5 + column + 1);
                }
                _ => values.push('?'),
            }
        }
        values.push(')');
    }
    const COLUMNS: &str = "earn_outbox (id, name, event, created_at, claimed_until)";
    if wake {
        format!(
            "INSERT INTO {COLUMNS} SELECT v.* FROM (VALUES {values}) AS v(id, name, event, created_at, claimed_until), \
             (SELECT pg_notify('earn_outbox', '')) AS wake"
        )
    } else {
        format!("INSERT INTO {COLUMNS} VALUES {values}")
    }
}

/// The event as stored in its outbox row.
fn serialized(event: &Event) -> Result<String, Error> {
    serde_json::to_string(event).map_err(|source| {
        Error::Event(EventError::Payload {
            name: event.name().to_string(),
            source,
        })
    })
}
