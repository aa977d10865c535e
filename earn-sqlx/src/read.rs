//! The read path: rows decoded, then `after_load` on each.

use earn_core::{Error, HookPhase};

use crate::connection::with_backend;
use crate::db::Db;
use crate::hook::run_detached;
use crate::model::Model;
use crate::statement::{all_on, db_error, find_on, find_row};
use crate::tx::Tx;

/// `M::find`: reads outside any transaction, then `after_load`.
pub(crate) async fn find<M: Model>(db: &Db, key: M::Key) -> Result<Option<M>, Error> {
    let mut conn = db.acquire().await?;
    let found = with_backend!(&mut conn, |c, DB| find_on::<DB, M>(c, &key, false).await)
        .map_err(db_error::<M>("select"))?;
    drop(conn);
    loaded(found).await
}

/// `M::find_in`: reads in a transaction, then `after_load`.
pub(crate) async fn find_in<M: Model>(tx: &mut Tx, key: M::Key) -> Result<Option<M>, Error> {
    let found = find_row::<M>(tx, &key, false).await?;
    loaded(found).await
}

async fn loaded<M: Model>(found: Option<M>) -> Result<Option<M>, Error> {
    match found {
        // Soft-deleted: found only by a query that asks for it.
        Some(model) if model.is_deleted() => Ok(None),
        Some(mut model) => {
            run_detached(HookPhase::AfterLoad, &mut model).await?;
            Ok(Some(model))
        }
        None => Ok(None),
    }
}

/// `M::all`: every row ordered by key, then `after_load` on each.
pub(crate) async fn all<M: Model>(db: &Db) -> Result<Vec<M>, Error> {
    if M::INFO.soft_delete.is_some() {
        return crate::Query::<M>::new()
            .order_by(crate::column::Order::new(
                M::INFO.key_index,
                crate::Direction::Asc,
            ))
            .all(db)
            .await;
    }
    let mut conn = db.acquire().await?;
    let mut rows = with_backend!(&mut conn, |c, DB| all_on::<DB, M>(c).await)
        .map_err(db_error::<M>("select"))?;
    drop(conn);
    if M::hooks().has(HookPhase::AfterLoad) {
        for row in &mut rows {
            run_detached(HookPhase::AfterLoad, row).await?;
        }
    }
    Ok(rows)
}
