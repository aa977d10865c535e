//! Snapshots: an aggregate's state saved at a version, so loading a long
//! stream replays only the events after it.

use earn_core::{Error, HandlerError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::projection::applying;
use super::read::stream_rows;
use super::sql::sql;
use super::{EventStore, Recorded, check_stream, store_error, to_i64, to_u64};
use crate::connection::with_backend;
use crate::outbox::now_ms;

/// State rebuilt from the events of one stream: an order from its
/// `order.*` events. Load it with [`EventStore::load`].
///
/// ```
/// use earn::store::{Aggregate, Recorded};
///
/// #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
/// struct Order {
///     lines: u32,
///     total: i64,
/// }
///
/// impl Aggregate for Order {
///     fn apply(&mut self, event: &Recorded) -> Result<(), earn::HandlerError> {
///         if event.event.name().as_str() == "order.line_added" {
///             self.lines += 1;
///             self.total += event.event.payload_json()["price"].as_i64().unwrap_or(0);
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync {
    /// Folds one event of the stream into the state.
    fn apply(&mut self, event: &Recorded) -> Result<(), HandlerError>;
}

/// A stored snapshot of a stream's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<T> {
    /// The version of the stream's last event folded into it.
    pub version: u64,
    /// The state.
    pub state: T,
}

/// An aggregate loaded by [`EventStore::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream's version it reflects: append the next events with
    /// `Expected::Exact(version)`.
    pub version: u64,
    /// The snapshot it started from, if one was used.
    pub snapshot: Option<u64>,
    /// Events replayed on top of the snapshot (or from the start).
    pub replayed: u64,
}

impl EventStore {
    /// Saves `state` as the snapshot of `stream` at `version`, replacing
    /// an older one (a snapshot older than the stored one is ignored).
    pub async fn save_snapshot<T: Serialize>(
        &self,
        stream: &str,
        version: u64,
        state: &T,
    ) -> Result<(), Error> {
        check_stream(stream)?;
        let json = serde_json::to_string(state).map_err(|e| Error::Database {
            table: "earn_snapshots".into(),
            operation: "serialize a snapshot",
            source: Box::new(e),
        })?;
        let mut conn = self.inner.db.acquire().await?;
        let statement = sql(conn.dialect()).snapshot_save;
        with_backend!(&mut conn, |c, DB| {
            sqlx::query::<DB>(statement)
                .bind(stream)
                .bind(to_i64(version))
                .bind(json.as_str())
                .bind(now_ms())
                .execute(&mut *c)
                .await
                .map(|_| ())
        })
        .map_err(store_error("earn_snapshots", "insert"))
    }

    /// The latest snapshot of `stream`. A snapshot that no longer
    /// deserializes into `T` (its shape changed) is reported and treated
    /// as missing: the state is rebuilt from the events.
    pub async fn snapshot<T: DeserializeOwned>(
        &self,
        stream: &str,
    ) -> Result<Option<Snapshot<T>>, Error> {
        check_stream(stream)?;
        let mut conn = self.inner.db.acquire().await?;
        let statement = sql(conn.dialect()).snapshot_load;
        let row: Option<(i64, String)> = with_backend!(&mut conn, |c, DB| {
            sqlx::query_as::<DB, (i64, String)>(statement)
                .bind(stream)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(store_error("earn_snapshots", "select"))?;
        let Some((version, json)) = row else {
            return Ok(None);
        };
        match serde_json::from_str(&json) {
            Ok(state) => Ok(Some(Snapshot {
                version: to_u64(version),
                state,
            })),
            Err(error) => {
                tracing::warn!(stream, %error, "a snapshot does not fit the state type any more: replaying the stream from its start");
                Ok(None)
            }
        }
    }

    /// Loads aggregate `A` of `stream`: its latest snapshot, then the
    /// events after it. A stream with no events gives `A::default()` at
    /// version 0.
    ///
    /// ```no_run
    /// # use earn::store::{Aggregate, EventStore, Expected, Recorded};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Order { total: i64 }
    /// # impl Aggregate for Order { fn apply(&mut self, _: &Recorded) -> Result<(), earn::HandlerError> { Ok(()) } }
    /// # async fn run(store: EventStore) -> Result<(), earn::Error> {
    /// let order = store.load::<Order>("order-7").await?;
    /// let line = earn::Event::new("order.line_added", &serde_json::json!({"price": 5}))?;
    /// store.append("order-7", Expected::Exact(order.version), vec![line]).await?;
    /// if order.replayed > 100 {
    ///     store.save_snapshot("order-7", order.version, &order.state).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn load<A: Aggregate>(&self, stream: &str) -> Result<Loaded<A>, Error> {
        let snapshot = self.snapshot::<A>(stream).await?;
        let (mut state, mut version, from) = match snapshot {
            Some(s) => (s.state, s.version, Some(s.version)),
            None => (A::default(), 0, None),
        };
        let mut replayed = 0;
        loop {
            let mut conn = self.inner.db.acquire().await?;
            let rows = stream_rows(&mut conn, stream, version + 1, 1_000).await?;
            drop(conn);
            let page = self.decode_rows(rows)?;
            let Some(last) = page.last().map(|e| e.version) else {
                break;
            };
            for event in &page {
                state.apply(event).map_err(|error| {
                    applying(
                        format!("aggregate of stream `{stream}`"),
                        event.position,
                        error,
                    )
                })?;
            }
            replayed += page.len() as u64;
            version = last;
        }
        Ok(Loaded {
            state,
            version,
            snapshot: from,
            replayed,
        })
    }
}
