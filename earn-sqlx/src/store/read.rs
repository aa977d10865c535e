//! Reading events back: one stream by version, or every stream in the
//! global order, as streams of [`Recorded`] events, in pages.

use earn_core::{Error, Event, EventData};
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use super::sql::sql;
use super::{EventStore, Recorded, check_stream, store_error, to_i64, to_u64};
use crate::connection::{Conn, with_backend};

/// Events read from the store, in order; see
/// [`EventStore::read_all`] and [`EventStore::read_stream`].
pub type EventStream = BoxStream<'static, Result<Recorded, Error>>;

/// Events fetched per query.
const PAGE: usize = 2_000;

/// A stored row: position, stream, version, schema version, event JSON.
type StoredRow = (i64, String, i64, i32, String);

impl EventStore {
    /// The events of `stream` from version `from` (1, or 0, for all), in
    /// version order.
    ///
    /// Read in pages; each page is one query on a connection of its own,
    /// so a slow consumer holds no connection.
    pub fn read_stream(&self, stream: &str, from: u64) -> EventStream {
        if let Err(error) = check_stream(stream) {
            return futures_util::stream::once(async { Err(error) }).boxed();
        }
        let store = self.clone();
        let stream = stream.to_owned();
        paged(from.max(1), usize::MAX, move |next, limit| {
            let store = store.clone();
            let stream = stream.clone();
            async move {
                let page = store.stream_page(&stream, next, limit).await?;
                let next = page.last().map(|e| e.version + 1);
                Ok((page, next))
            }
        })
    }

    /// Up to `limit` events of every stream after global position
    /// `after` (0 for the beginning), in the global order.
    ///
    /// The order is one readers can trust: an event never shows up behind
    /// a position already read, whatever order transactions commit in
    /// (see the guide's "Global order"). On PostgreSQL an event becomes
    /// readable once every append that took a lower position has ended.
    pub fn read_all(&self, after: u64, limit: usize) -> EventStream {
        let store = self.clone();
        paged(after, limit, move |after, limit| {
            let store = store.clone();
            async move {
                let page = store.page(after, limit).await?;
                let next = page.last().map(|e| e.position);
                Ok((page, next))
            }
        })
    }

    /// The highest position stored (0 for an empty store).
    pub async fn head(&self) -> Result<u64, Error> {
        let mut conn = self.inner.db.acquire().await?;
        let statement = sql(conn.dialect()).head;
        let head: i64 = with_backend!(&mut conn, |c, DB| {
            sqlx::query_scalar::<DB, i64>(statement)
                .fetch_one(&mut *c)
                .await
        })
        .map_err(store_error(super::EVENTS_TABLE, "select"))?;
        Ok(to_u64(head))
    }

    /// Up to `limit` readable events after `after`, in the global order.
    pub(super) async fn page(&self, after: u64, limit: usize) -> Result<Vec<Recorded>, Error> {
        let mut conn = self.inner.db.acquire().await?;
        let safe = self.inner.watermark.safe(&mut conn).await?;
        if safe <= after {
            return Ok(Vec::new());
        }
        let statement = sql(conn.dialect()).read_all;
        let rows: Vec<StoredRow> = with_backend!(&mut conn, |c, DB| {
            sqlx::query_as::<DB, StoredRow>(statement)
                .bind(to_i64(after))
                .bind(to_i64(safe))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *c)
                .await
        })
        .map_err(store_error(super::EVENTS_TABLE, "select"))?;
        drop(conn);
        self.decode_rows(rows)
    }

    async fn stream_page(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Recorded>, Error> {
        let mut conn = self.inner.db.acquire().await?;
        let rows = stream_rows(&mut conn, stream, from, limit).await?;
        drop(conn);
        self.decode_rows(rows)
    }

    /// Decodes rows read by [`stream_rows`] or a page.
    pub(super) fn decode_rows(&self, rows: Vec<StoredRow>) -> Result<Vec<Recorded>, Error> {
        rows.into_iter().map(|row| self.decode(row)).collect()
    }

    /// A stored row as an event in the current shape of its payload.
    fn decode(
        &self,
        (position, stream, version, schema, json): StoredRow,
    ) -> Result<Recorded, Error> {
        let position = to_u64(position);
        let version = to_u64(version);
        let schema_version = u32::try_from(schema).unwrap_or(0);
        let unreadable = |reason: String| Error::StoredEvent {
            position,
            stream: stream.clone(),
            version,
            reason,
        };
        let mut data: EventData =
            serde_json::from_str(&json).map_err(|e| unreadable(format!("malformed JSON: {e}")))?;
        let upcasters = &self.inner.upcasters;
        if schema_version < upcasters.current(data.name.as_str()) {
            let payload = std::mem::take(&mut data.payload);
            data.payload = upcasters
                .upcast(data.name.as_str(), schema_version, payload)
                .map_err(unreadable)?;
        }
        Ok(Recorded {
            position,
            stream,
            version,
            schema_version,
            event: Event::from_data(data),
        })
    }
}

/// Rows of `stream` from version `from`, on `conn` (a transaction's, for
/// an aggregate loaded where it is changed).
pub(super) async fn stream_rows(
    conn: &mut Conn,
    stream: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<StoredRow>, Error> {
    let statement = sql(conn.dialect()).read_stream;
    with_backend!(conn, |c, DB| {
        sqlx::query_as::<DB, StoredRow>(statement)
            .bind(stream)
            .bind(to_i64(from))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *c)
            .await
    })
    .map_err(store_error(super::EVENTS_TABLE, "select"))
}

/// A stream of at most `limit` events, fetched a page at a time by
/// `fetch(cursor, page size)`, which returns the page and the cursor after
/// it.
fn paged<F, Fut>(start: u64, limit: usize, fetch: F) -> EventStream
where
    F: Fn(u64, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Vec<Recorded>, Option<u64>), Error>> + Send,
{
    let fetch = std::sync::Arc::new(fetch);
    let state = (Some(start), limit);
    futures_util::stream::try_unfold(state, move |(cursor, left)| {
        let fetch = fetch.clone();
        async move {
            let Some(cursor) = cursor.filter(|_| left > 0) else {
                return Ok::<_, Error>(None);
            };
            let want = left.min(PAGE);
            let (page, next) = fetch(cursor, want).await?;
            let full = page.len() == want;
            let left = left - page.len();
            let next = if full { next } else { None };
            Ok(Some((
                futures_util::stream::iter(page.into_iter().map(Ok)),
                (next, left),
            )))
        }
    })
    .try_flatten()
    .boxed()
}
