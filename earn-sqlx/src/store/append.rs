//! Appending events to a stream: the expected-version check, the global
//! positions, idempotent retries, inline projections.

use earn_core::__private::uuid::Uuid;
use earn_core::{Error, Event, EventError, Expected};

use super::sql::{Sql, sql};
use super::{Appended, EventStore, Recorded, check_stream, store_error, to_i64, to_u64};
use crate::backend::Dialect;
use crate::connection::{Conn, with_backend};
use crate::sql::in_list;
use crate::tx::Tx;

/// One event ready for its row.
pub(super) struct Row {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) schema_version: i32,
    pub(super) json: String,
    pub(super) created_at: i64,
}

/// The rows handed to the database in one append.
struct Rows<'a> {
    stream: &'a str,
    rows: Vec<Row>,
}

/// Why an append's statements failed.
enum Failed {
    /// An event id is stored already (the unique index said so).
    Duplicate(sqlx::Error),
    Other(Error),
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed::Other(error)
    }
}

/// An insert into `earn_events` that failed: a duplicate event id, or
/// another error.
fn insert_failed(source: sqlx::Error) -> Failed {
    let duplicate_id = source.as_database_error().is_some_and(|e| {
        e.is_unique_violation()
            && (e.constraint() == Some("earn_events_id_key")
                || e.constraint() == Some("earn_events_id")
                || e.message().contains("earn_events.id")
                || e.message().contains("earn_events_id"))
    });
    if duplicate_id {
        Failed::Duplicate(source)
    } else {
        Failed::Other(store_error(super::EVENTS_TABLE, "append")(source))
    }
}

/// The most events in one multi-row insert (SQLite binds at most 32,766
/// values; eight per row).
const MAX_ROWS: usize = 1_000;

impl EventStore {
    /// Appends `events` to `stream` in a transaction of its own, if the
    /// stream is at `expected`; returns the stream's new version and the
    /// events' global positions.
    ///
    /// - The stream not at `expected`:
    ///   [`Error::WrongExpectedVersion`] with what was expected and what
    ///   the stream is at; nothing is written.
    /// - Every event's id already stored (a retry of an append that
    ///   committed): nothing is written and the result says where they
    ///   are, with `written: false`. Some stored, some not:
    ///   [`Error::DuplicateEvent`].
    ///
    /// Inline projections ([`EventStoreBuilder::inline`](super::EventStoreBuilder::inline))
    /// run in the same transaction. Subscriptions of this process are
    /// woken once it commits.
    pub async fn append(
        &self,
        stream: &str,
        expected: Expected,
        events: Vec<Event>,
    ) -> Result<Appended, Error> {
        let mut tx = self.inner.db.begin().await?;
        let appended = self.append_in(&mut tx, stream, expected, events).await?;
        tx.commit().await?;
        self.inner.appended.notify_waiters();
        Ok(appended)
    }

    /// [`append`](EventStore::append) inside the caller's transaction: the
    /// events are stored if, and only if, it commits, together with its
    /// other writes. A failure after something was written leaves the
    /// transaction unable to commit.
    ///
    /// The stream's row stays locked until the transaction ends (a second
    /// writer to the same stream waits, then gets its answer); on MySQL
    /// the store's sequencer row too, so appends commit one at a time
    /// there (see the guide's "Global order").
    pub async fn append_in(
        &self,
        tx: &mut Tx,
        stream: &str,
        expected: Expected,
        events: Vec<Event>,
    ) -> Result<Appended, Error> {
        check_stream(stream)?;
        tx.ensure_usable()?;
        if events.is_empty() {
            let actual = stream_version(&mut tx.conn, stream).await?;
            if !expected.matches(actual) {
                return Err(Error::WrongExpectedVersion {
                    stream: stream.to_owned(),
                    expected,
                    actual,
                });
            }
            return Ok(Appended {
                version: actual.unwrap_or(0),
                positions: Vec::new(),
                written: false,
            });
        }
        let rows = Rows {
            stream,
            rows: events
                .iter()
                .map(|event| self.row(event))
                .collect::<Result<_, _>>()?,
        };
        let expected = match expected {
            Expected::Exact(0) => Expected::NoStream,
            other => other,
        };
        let statements = sql(tx.dialect());
        let written = match (tx.dialect(), statements.append_one, &rows.rows[..]) {
            (_, Some(one), [row]) => append_one(&mut tx.conn, one, stream, row, expected).await,
            (Dialect::Postgres, ..) => append_postgres(&mut tx.conn, &rows, expected).await,
            (Dialect::Sqlite | Dialect::MySql, ..) => {
                append_in_steps(&mut tx.conn, &rows, expected).await
            }
        };
        let positions = match written {
            Ok(Some(positions)) => positions,
            Ok(None) => return resolve(&mut tx.conn, &rows, expected).await,
            Err(error) => {
                let error = match error {
                    Failed::Duplicate(source) => self.duplicate(tx, &rows, source).await,
                    Failed::Other(error) => error,
                };
                tx.poison(&error);
                return Err(error);
            }
        };
        if !self.inner.inline.is_empty() {
            let schema = |e: &Event| self.inner.upcasters.current(e.name().as_str());
            for (event, &(position, version)) in events.into_iter().zip(&positions) {
                let recorded = Recorded {
                    position,
                    stream: stream.to_owned(),
                    version,
                    schema_version: schema(&event),
                    event,
                };
                for projection in &self.inner.inline {
                    if let Err(error) = projection.apply_erased(tx, &recorded).await {
                        tx.poison(&error);
                        return Err(error);
                    }
                }
            }
        }
        Ok(Appended {
            version: positions.last().map_or(0, |&(_, version)| version),
            positions: positions
                .into_iter()
                .map(|(position, _)| position)
                .collect(),
            written: true,
        })
    }

    /// The error of an append that broke the unique index on event ids:
    /// which event, stored where. The transaction's connection is asked on
    /// SQLite and MySQL; on PostgreSQL, where the failed statement aborted
    /// the transaction, another connection is.
    async fn duplicate(&self, tx: &mut Tx, rows: &Rows<'_>, source: sqlx::Error) -> Error {
        let ids: Vec<&str> = rows.rows.iter().map(|r| r.id.as_str()).collect();
        let found = match tx.dialect() {
            Dialect::Postgres => match self.inner.db.acquire().await {
                Ok(mut conn) => stored(&mut conn, &ids).await,
                Err(error) => Err(error),
            },
            Dialect::Sqlite | Dialect::MySql => stored(&mut tx.conn, &ids).await,
        };
        let first = found.ok().and_then(|found| {
            rows.rows.iter().find_map(|row| {
                found
                    .get(&row.id)
                    .map(|(stream, _, _)| (row.id.clone(), stream.clone()))
            })
        });
        match first {
            Some((id, stored_in)) => Error::DuplicateEvent {
                stream: rows.stream.to_owned(),
                id: Uuid::parse_str(&id).unwrap_or_default(),
                stored_in,
            },
            // Stored by a transaction not yet committed.
            None => store_error(super::EVENTS_TABLE, "append")(source),
        }
    }

    fn row(&self, event: &Event) -> Result<Row, Error> {
        let json = serde_json::to_string(event).map_err(|source| {
            Error::Event(EventError::Payload {
                name: event.name().to_string(),
                source,
            })
        })?;
        let schema = self.inner.upcasters.current(event.name().as_str());
        Ok(Row {
            id: event.id().to_string(),
            name: event.name().to_string(),
            schema_version: i32::try_from(schema).unwrap_or(i32::MAX),
            json,
            created_at: i64::try_from(event.data().timestamp_ms).unwrap_or(i64::MAX),
        })
    }
}

/// PostgreSQL: one statement moves the stream and inserts the events;
/// `None` when the stream was not at `expected` or an id is stored.
async fn append_postgres(
    conn: &mut Conn,
    rows: &Rows<'_>,
    expected: Expected,
) -> Result<Option<Vec<(u64, u64)>>, Failed> {
    #[allow(irrefutable_let_patterns, reason = "the only backend of some builds")]
    #[cfg(feature = "postgres")]
    if let Conn::Postgres(c) = conn {
        let statements = sql(Dialect::Postgres);
        let n = i64::try_from(rows.rows.len()).unwrap_or(i64::MAX);
        let ids: Vec<&str> = rows.rows.iter().map(|r| r.id.as_str()).collect();
        let names: Vec<&str> = rows.rows.iter().map(|r| r.name.as_str()).collect();
        let schemas: Vec<i32> = rows.rows.iter().map(|r| r.schema_version).collect();
        let events: Vec<&str> = rows.rows.iter().map(|r| r.json.as_str()).collect();
        let created: Vec<i64> = rows.rows.iter().map(|r| r.created_at).collect();
        let query = match expected {
            Expected::Exact(version) => sqlx::query_as::<_, (i64, i64)>(statements.append_exact)
                .bind(rows.stream)
                .bind(n)
                .bind(to_i64(version)),
            Expected::NoStream | Expected::Any => {
                sqlx::query_as::<_, (i64, i64)>(if expected == Expected::Any {
                    statements.append_any
                } else {
                    statements.append_no_stream
                })
                .bind(rows.stream)
                .bind(n)
            }
        };
        let written = query
            .bind(ids)
            .bind(names)
            .bind(schemas)
            .bind(events)
            .bind(created)
            .fetch_all(&mut **c)
            .await
            .map_err(insert_failed)?;
        if written.is_empty() {
            return Ok(None);
        }
        return Ok(Some(
            written
                .into_iter()
                .map(|(position, version)| (to_u64(position), to_u64(version)))
                .collect(),
        ));
    }
    let _ = (conn, rows, expected);
    unreachable!("append_postgres is only called on a PostgreSQL connection")
}

/// SQLite and MySQL: the stream moves, then (MySQL) positions are taken
/// from the sequencer row, then the events are inserted. `None` when the
/// stream was not at `expected` or (`Any`) an id is stored.
async fn append_in_steps(
    conn: &mut Conn,
    rows: &Rows<'_>,
    expected: Expected,
) -> Result<Option<Vec<(u64, u64)>>, Failed> {
    let statements = sql(conn.dialect());
    // `Any` never conflicts on the version, so a retry is recognized by
    // its first event before anything is written (a later event stored
    // already breaks the unique index).
    if expected == Expected::Any && is_stored(conn, &rows.rows[0].id).await? {
        return Ok(None);
    }
    let n = rows.rows.len() as u64;
    let Some(version) = move_stream(conn, statements, rows.stream, expected, n).await? else {
        return Ok(None);
    };
    let first_position = take_positions(conn, statements, n).await?;
    let first_version = version - n + 1;
    let mut written = Vec::with_capacity(rows.rows.len());
    for (chunk_index, chunk) in rows.rows.chunks(MAX_ROWS).enumerate() {
        let offset = (chunk_index * MAX_ROWS) as u64;
        let positions = insert(
            conn,
            statements,
            rows.stream,
            chunk,
            first_version + offset,
            first_position.map(|p| p + offset),
        )
        .await?;
        written.extend(positions);
    }
    Ok(Some(written))
}

/// MySQL: `n` positions from the sequencer row, locked until the
/// transaction ends; the first of them. `None` elsewhere.
async fn take_positions(conn: &mut Conn, statements: &Sql, n: u64) -> Result<Option<u64>, Error> {
    let Some(take) = statements.take_positions else {
        return Ok(None);
    };
    let last = with_backend!(&mut *conn, |c, DB| {
        match args_of::<DB>(|a| sqlx::Arguments::add(a, to_i64(n))) {
            Ok(args) => <DB as crate::Backend>::run(c, take, args).await,
            Err(error) => Err(error),
        }
    })
    .map_err(store_error("earn_event_position", "update"))?;
    Ok(Some(last.last_insert_id.unwrap_or(0) - n + 1))
}

/// One event in one statement that checks the version (PostgreSQL, and
/// SQLite where a trigger moves the stream); `None` when it did not match
/// or the id is stored.
async fn append_one(
    conn: &mut Conn,
    statements: [&'static str; 3],
    stream: &str,
    row: &Row,
    expected: Expected,
) -> Result<Option<Vec<(u64, u64)>>, Failed> {
    let (statement, version) = match expected {
        Expected::Exact(version) => (statements[0], version),
        Expected::NoStream => (statements[1], 0),
        Expected::Any => (statements[2], 0),
    };
    let written: Option<(i64, i64)> = with_backend!(conn, |c, DB| {
        sqlx::query_as::<DB, (i64, i64)>(statement)
            .bind(stream)
            .bind(to_i64(version))
            .bind(row.id.as_str())
            .bind(row.name.as_str())
            .bind(row.schema_version)
            .bind(row.json.as_str())
            .bind(row.created_at)
            .fetch_optional(&mut *c)
            .await
    })
    .map_err(insert_failed)?;
    Ok(written.map(|(position, version)| vec![(to_u64(position), to_u64(version))]))
}

/// Builds the arguments of a statement.
fn args_of<DB: sqlx::Database>(
    fill: impl FnOnce(&mut DB::Arguments) -> Result<(), sqlx::error::BoxDynError>,
) -> Result<DB::Arguments, sqlx::Error> {
    let mut args = DB::Arguments::default();
    fill(&mut args).map_err(sqlx::Error::Encode)?;
    Ok(args)
}

/// Moves the stream by `n` if it is at `expected`; its new version, or
/// `None`.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "mysql")),
    allow(unused_variables, reason = "only SQLite and MySQL move streams apart")
)]
async fn move_stream(
    conn: &mut Conn,
    statements: &Sql,
    stream: &str,
    expected: Expected,
    n: u64,
) -> Result<Option<u64>, Error> {
    let error = store_error("earn_streams", "append");
    match conn {
        #[cfg(feature = "sqlite")]
        Conn::Sqlite(c) => {
            let query = match expected {
                Expected::Exact(version) => sqlx::query_scalar::<_, i64>(statements.append_exact)
                    .bind(to_i64(n))
                    .bind(stream)
                    .bind(to_i64(version)),
                Expected::NoStream => sqlx::query_scalar(statements.append_no_stream)
                    .bind(stream)
                    .bind(to_i64(n)),
                Expected::Any => sqlx::query_scalar(statements.append_any)
                    .bind(stream)
                    .bind(to_i64(n)),
            };
            let version = query.fetch_optional(&mut **c).await.map_err(error)?;
            Ok(version.map(to_u64))
        }
        #[cfg(feature = "mysql")]
        Conn::MySql(c) => {
            let done = match expected {
                Expected::Exact(version) => sqlx::query(statements.append_exact)
                    .bind(to_i64(n))
                    .bind(stream)
                    .bind(to_i64(version)),
                Expected::NoStream => sqlx::query(statements.append_no_stream)
                    .bind(stream)
                    .bind(to_i64(n)),
                Expected::Any => sqlx::query(statements.append_any)
                    .bind(stream)
                    .bind(to_i64(n)),
            }
            .execute(&mut **c)
            .await
            .map_err(error)?;
            Ok(match expected {
                _ if done.rows_affected() == 0 => None,
                Expected::Exact(version) => Some(version + n),
                Expected::NoStream => Some(n),
                Expected::Any => Some(done.last_insert_id()),
            })
        }
        #[allow(unreachable_patterns)]
        _ => unreachable!("move_stream is only called on SQLite and MySQL"),
    }
}

/// Inserts `rows` at versions from `first_version` (and on MySQL at
/// positions from `first_position`); their (position, version).
async fn insert(
    conn: &mut Conn,
    statements: &Sql,
    stream: &str,
    rows: &[Row],
    first_version: u64,
    first_position: Option<u64>,
) -> Result<Vec<(u64, u64)>, Failed> {
    let statement = if rows.len() == 1 {
        std::borrow::Cow::Borrowed(statements.insert_one)
    } else {
        let mut text = String::from(statements.insert_head);
        for i in 0..rows.len() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push('(');
            text.push_str(statements.insert_row);
            text.push(')');
        }
        if first_position.is_none() {
            text.push_str(" RETURNING position, version");
        }
        std::borrow::Cow::Owned(text)
    };
    let persistent = rows.len() == 1;
    with_backend!(&mut *conn, |c, DB| {
        let mut query =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(statement.into_owned())).persistent(persistent);
        for (i, row) in rows.iter().enumerate() {
            if let Some(first) = first_position {
                query = query.bind(to_i64(first + i as u64));
            }
            query = query
                .bind(stream)
                .bind(to_i64(first_version + i as u64))
                .bind(row.id.as_str())
                .bind(row.name.as_str())
                .bind(row.schema_version)
                .bind(row.json.as_str())
                .bind(row.created_at);
        }
        match first_position {
            Some(first) => {
                query.execute(&mut *c).await.map_err(insert_failed)?;
                Ok((0..rows.len() as u64)
                    .map(|i| (first + i, first_version + i))
                    .collect())
            }
            None => {
                let returned = query.fetch_all(&mut *c).await.map_err(insert_failed)?;
                let mut written = returned
                    .iter()
                    .map(|row| {
                        let position: i64 = sqlx::Row::try_get(row, 0)?;
                        let version: i64 = sqlx::Row::try_get(row, 1)?;
                        Ok((to_u64(position), to_u64(version)))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(store_error(super::EVENTS_TABLE, "append"))?;
                written.sort_by_key(|&(_, version)| version);
                Ok(written)
            }
        }
    })
}

/// The stored events among the append's, by id: (stream, version,
/// position).
async fn stored(
    conn: &mut Conn,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, (String, u64, u64)>, Error> {
    let statements = sql(conn.dialect());
    let mut found = std::collections::HashMap::new();
    let error = || store_error(super::EVENTS_TABLE, "select");
    for chunk in ids.chunks(MAX_ROWS) {
        let rows: Vec<(String, String, i64, i64)> = match &mut *conn {
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => sqlx::query_as(statements.stored_ids)
                .bind(chunk)
                .fetch_all(&mut **c)
                .await
                .map_err(error())?,
            #[allow(unreachable_patterns)]
            other => {
                let text = format!(
                    "{}{}",
                    statements.stored_ids,
                    in_list(other.dialect(), 0, chunk.len())
                );
                with_backend!(other, |c, DB| {
                    let mut query =
                        sqlx::query_as::<DB, _>(sqlx::AssertSqlSafe(text)).persistent(false);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    query.fetch_all(&mut *c).await
                })
                .map_err(error())?
            }
        };
        for (id, stream, version, position) in rows {
            found.insert(id, (stream, to_u64(version), to_u64(position)));
        }
    }
    Ok(found)
}

/// Whether event `id` is stored.
async fn is_stored(conn: &mut Conn, id: &str) -> Result<bool, Error> {
    let statement = sql(conn.dialect()).stored_id;
    let count: i64 = with_backend!(conn, |c, DB| {
        sqlx::query_scalar::<DB, i64>(statement)
            .bind(id)
            .fetch_one(&mut *c)
            .await
    })
    .map_err(store_error(super::EVENTS_TABLE, "select"))?;
    Ok(count > 0)
}

/// The stream's version; `None` if it does not exist.
pub(super) async fn stream_version(conn: &mut Conn, stream: &str) -> Result<Option<u64>, Error> {
    let statement = sql(conn.dialect()).stream_version;
    let version: Option<i64> = with_backend!(conn, |c, DB| {
        sqlx::query_scalar::<DB, i64>(statement)
            .bind(stream)
            .fetch_optional(&mut *c)
            .await
    })
    .map_err(store_error("earn_streams", "select"))?;
    Ok(version.map(to_u64))
}

/// Why nothing was written: a retry of a stored append (a success), one
/// with events stored elsewhere or partly, or a stream not at the
/// expected version.
async fn resolve(conn: &mut Conn, rows: &Rows<'_>, expected: Expected) -> Result<Appended, Error> {
    let ids: Vec<&str> = rows.rows.iter().map(|r| r.id.as_str()).collect();
    let found = stored(conn, &ids).await?;
    if !found.is_empty() {
        // A retry: every event stored, in this stream.
        let retry = found.len() == rows.rows.len()
            && found.values().all(|(stream, _, _)| stream == rows.stream);
        if retry {
            let mut at: Vec<(u64, u64)> = rows
                .rows
                .iter()
                .filter_map(|row| {
                    found
                        .get(&row.id)
                        .map(|&(_, version, position)| (position, version))
                })
                .collect();
            at.sort_unstable();
            tracing::debug!(
                stream = rows.stream,
                events = at.len(),
                "append already stored: nothing written"
            );
            return Ok(Appended {
                version: at.iter().map(|&(_, version)| version).max().unwrap_or(0),
                positions: at.into_iter().map(|(position, _)| position).collect(),
                written: false,
            });
        }
        let (id, (stored_in, _, _)) = rows
            .rows
            .iter()
            .find_map(|row| found.get(&row.id).map(|s| (row.id.as_str(), s)))
            .unwrap_or_else(|| unreachable!("found is not empty"));
        return Err(Error::DuplicateEvent {
            stream: rows.stream.to_owned(),
            id: Uuid::parse_str(id).unwrap_or_default(),
            stored_in: stored_in.clone(),
        });
    }
    let actual = stream_version(conn, rows.stream).await?;
    Err(Error::WrongExpectedVersion {
        stream: rows.stream.to_owned(),
        expected,
        actual,
    })
}
