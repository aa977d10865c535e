//! Poison rows: outbox rows the relay gave up on move to
//! `earn_outbox_dead`, where an operator lists, requeues or purges them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use earn_core::{
    DeadLetter, DeadLetterFilter, DeadLetterFuture, DeadLetters, Error, Event, EventMatch,
    PageRequest,
};
use sqlx::Row as _;

use super::now_ms;
use super::sql::sql;
use crate::backend::Dialect;
use crate::connection::{Pool, with_backend};

/// The dead-letter table of the outbox.
pub const OUTBOX_DEAD_TABLE: &str = "earn_outbox_dead";

fn dead_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    super::table_error(OUTBOX_DEAD_TABLE, operation)
}

/// The outbox's dead letters, `earn_outbox_dead`: the rows an
/// [`OutboxRelay`](crate::OutboxRelay) gave up on, because their `event`
/// column is not a valid event or they were claimed more than
/// [`max_attempts`](crate::OutboxRelay::max_attempts) times without being
/// fully handled. A [`DeadLetters`] source, from
/// [`Db::outbox_dead_letters`](crate::Db::outbox_dead_letters): a requeue
/// moves the row back into the outbox, claimable at once.
///
/// The relay gives up on a row as a whole, so these dead letters name no
/// handler, and their first failure is the time they were dead-lettered.
///
/// ```no_run
/// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
/// use earn::{DeadLetterFilter, DeadLetters, PageRequest};
///
/// let dead = db.outbox_dead_letters();
/// let payments = DeadLetterFilter::default().event("payment.**");
/// for letter in dead.list(&payments, PageRequest::first(50)).await? {
///     match &letter.event {
///         Some(event) => println!("{} ({}): {}", event.name(), letter.id, letter.reason),
///         None => println!("unreadable row {}: {}", letter.id, letter.reason),
///     }
///     dead.requeue(&letter.id).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxDeadLetters {
    pub(crate) pool: Pool,
}

/// The source name of the outbox's dead letters.
const SOURCE: &str = "outbox";

/// A bound value of a dead-letter statement.
enum Param {
    Text(String),
    Int(i64),
}

/// `$query` with every value of `$params` bound, in order. The statements
/// are built from constant identifiers; every value is bound.
macro_rules! bound {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Text(text) => query.bind(text),
                Param::Int(int) => query.bind(int),
            };
        }
        query
    }};
}

/// ` WHERE …` of `filter`, with its values.
fn conditions(dialect: Dialect, filter: &DeadLetterFilter) -> Result<(String, Vec<Param>), Error> {
    let mut sql = String::new();
    let mut params = Vec::new();
    let and = |sql: &mut String, condition: &str| {
        sql.push_str(if sql.is_empty() { " WHERE " } else { " AND " });
        sql.push_str(condition);
    };
    let placeholder = |params: &Vec<Param>| match dialect {
        Dialect::Postgres => format!("${}", params.len() + 1),
        Dialect::Sqlite | Dialect::MySql => "?".to_owned(),
    };
    match filter.event_match()? {
        None | Some(EventMatch::Prefix("")) => {}
        Some(EventMatch::Name(name)) => {
            and(&mut sql, &format!("name = {}", placeholder(&params)));
            params.push(Param::Text(name.to_owned()));
        }
        Some(EventMatch::Prefix(prefix)) => {
            // Not LIKE: `_` and `%` are common in names, and each database
            // escapes them differently.
            let length = prefix.chars().count();
            and(
                &mut sql,
                &format!("substr(name, 1, {length}) = {}", placeholder(&params)),
            );
            params.push(Param::Text(prefix.to_owned()));
        }
    }
    if filter.handler.is_some() {
        // The relay gives up on rows, not on handlers.
        and(&mut sql, "1 = 0");
    }
    if let Some(before) = filter.failed_before {
        and(&mut sql, &format!("failed_at < {}", placeholder(&params)));
        params.push(Param::Int(millis(before)));
    }
    if let Some(after) = filter.failed_after {
        and(&mut sql, &format!("failed_at >= {}", placeholder(&params)));
        params.push(Param::Int(millis(after)));
    }
    Ok((sql, params))
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

const COLUMNS: &str = "id, name, event, reason, attempts, failed_at";

impl OutboxDeadLetters {
    async fn rows(&self, sql: String, params: Vec<Param>) -> Result<Vec<DeadLetter>, Error> {
        let mut conn = self.pool.acquire().await?;
        with_backend!(&mut conn, |c, DB| {
            async {
                let query = bound!(sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)), params);
                let rows = query.fetch_all(&mut *c).await?;
                rows.iter()
                    .map(|row| {
                        let raw: String = row.try_get(2)?;
                        let attempts: i32 = row.try_get(4)?;
                        let failed_at: i64 = row.try_get(5)?;
                        let at = UNIX_EPOCH
                            + Duration::from_millis(u64::try_from(failed_at).unwrap_or(0));
                        let id: String = row.try_get(0)?;
                        let name: String = row.try_get(1)?;
                        let reason: String = row.try_get(3)?;
                        let letter = DeadLetter::new(
                            SOURCE,
                            id,
                            name,
                            reason,
                            u32::try_from(attempts).unwrap_or(0),
                            at,
                        );
                        Ok(match serde_json::from_str::<Event>(&raw) {
                            Ok(event) => letter.with_event(event),
                            Err(_) => letter.with_raw(raw),
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
            }
            .await
        })
        .map_err(dead_error("select"))
    }

    async fn execute(
        &self,
        sql: String,
        params: Vec<Param>,
        operation: &'static str,
    ) -> Result<u64, Error> {
        let mut conn = self.pool.acquire().await?;
        with_backend!(&mut conn, |c, DB| {
            async {
                let query = bound!(sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)), params);
                Ok::<_, sqlx::Error>(query.execute(&mut *c).await?.rows_affected())
            }
            .await
        })
        .map_err(dead_error(operation))
    }

    fn missing(id: &str) -> Error {
        Error::NoDeadLetter {
            store: OUTBOX_DEAD_TABLE.into(),
            id: id.to_owned(),
        }
    }
}

impl DeadLetters for OutboxDeadLetters {
    fn source(&self) -> String {
        SOURCE.to_owned()
    }

    fn list<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        page: PageRequest,
    ) -> DeadLetterFuture<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            let dialect = self.pool.dialect();
            let (conditions, mut params) = conditions(dialect, filter)?;
            let (limit, offset) = match dialect {
                Dialect::Postgres => (
                    format!("${}", params.len() + 1),
                    format!("${}", params.len() + 2),
                ),
                Dialect::Sqlite | Dialect::MySql => ("?".to_owned(), "?".to_owned()),
            };
            params.push(Param::Int(i64::try_from(page.limit).unwrap_or(i64::MAX)));
            params.push(Param::Int(i64::try_from(page.offset).unwrap_or(i64::MAX)));
            let sql = format!(
                "SELECT {COLUMNS} FROM {OUTBOX_DEAD_TABLE}{conditions} ORDER BY failed_at, id LIMIT {limit} OFFSET {offset}"
            );
            self.rows(sql, params).await
        })
    }

    fn count<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move {
            let (conditions, params) = conditions(self.pool.dialect(), filter)?;
            let sql = format!("SELECT COUNT(*) FROM {OUTBOX_DEAD_TABLE}{conditions}");
            let mut conn = self.pool.acquire().await?;
            let count: i64 = with_backend!(&mut conn, |c, DB| {
                async {
                    bound!(
                        sqlx::query_scalar::<DB, i64>(sqlx::AssertSqlSafe(sql)),
                        params
                    )
                    .fetch_one(&mut *c)
                    .await
                }
                .await
            })
            .map_err(dead_error("count"))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, Option<DeadLetter>> {
        Box::pin(async move {
            let placeholder = match self.pool.dialect() {
                Dialect::Postgres => "$1",
                Dialect::Sqlite | Dialect::MySql => "?",
            };
            let sql = format!("SELECT {COLUMNS} FROM {OUTBOX_DEAD_TABLE} WHERE id = {placeholder}");
            Ok(self
                .rows(sql, vec![Param::Text(id.to_owned())])
                .await?
                .pop())
        })
    }

    fn requeue<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(requeue_dead_letter(&self.pool, id))
    }

    fn delete<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(async move {
            let statement = sql(self.pool.dialect()).dead_delete;
            match self
                .execute(
                    statement.to_owned(),
                    vec![Param::Text(id.to_owned())],
                    "delete",
                )
                .await?
            {
                0 => Err(Self::missing(id)),
                _ => Ok(()),
            }
        })
    }

    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move {
            let (conditions, params) = conditions(self.pool.dialect(), filter)?;
            let sql = format!("DELETE FROM {OUTBOX_DEAD_TABLE}{conditions}");
            self.execute(sql, params, "purge").await
        })
    }
}

/// Moves the row `id`, claimed by this relay until `until`, to the
/// dead-letter table with `reason`, in one transaction. `false` if the row
/// had been taken over by another relay meanwhile (it stays theirs).
pub(super) async fn bury(pool: &Pool, id: &str, until: i64, reason: &str) -> Result<bool, Error> {
    let statements = sql(pool.dialect());
    let failed_at = now_ms();
    let mut tx = pool.begin().await?;
    let moved = with_backend!(&mut tx.conn, |c, DB| {
        async {
            let copied = sqlx::query::<DB>(statements.bury)
                .bind(reason)
                .bind(failed_at)
                .bind(id)
                .bind(until)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if copied == 0 {
                return Ok(false);
            }
            sqlx::query::<DB>(statements.delete_claimed)
                .bind(id)
                .bind(until)
                .execute(&mut *c)
                .await?;
            Ok::<_, sqlx::Error>(true)
        }
        .await
    })
    .map_err(dead_error("insert"))?;
    if moved {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(moved)
}

pub(crate) async fn requeue_dead_letter(pool: &Pool, id: &str) -> Result<(), Error> {
    let statements = sql(pool.dialect());
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let copied = with_backend!(&mut tx.conn, |c, DB| {
        async {
            let copied = sqlx::query::<DB>(statements.requeue)
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?
                .rows_affected();
            sqlx::query::<DB>(statements.dead_delete)
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok::<_, sqlx::Error>(copied)
        }
        .await
    })
    .map_err(dead_error("requeue"))?;
    if copied == 0 {
        tx.rollback().await?;
        return Err(OutboxDeadLetters::missing(id));
    }
    tx.commit().await?;
    tracing::info!(outbox_id = id, "outbox dead letter requeued");
    Ok(())
}
