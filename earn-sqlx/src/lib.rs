//! earn over sqlx: [`Db`], [`Tx`], and the [`Model`] persistence API that runs
//! lifecycle hooks around every write, on SQLite, PostgreSQL and
//! MySQL / MariaDB.
//!
//! Users depend on the `earn` facade, which re-exports this crate.

// On docs.rs: "Available on crate feature `postgres` only" on gated items.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("earn-sqlx needs at least one backend feature: `sqlite`, `postgres` or `mysql`");

mod backend;
mod bulk;
mod column;
mod connection;
mod db;
mod deferred;
mod field;
mod filter;
mod guard;
mod hook;
mod inbox;
mod model;
mod model_event;
mod outbox;
mod publish;
mod query;
mod raw;
mod read;
mod relation;
pub mod saga;
mod schema;
mod soft_delete;
mod sql;
mod statement;
pub mod store;
mod timestamp;
mod tx;
mod value;
mod write;

pub use backend::{Backend, Dialect, Done};
pub use column::{Col, Direction, IntoValue, Order, Set};
pub use db::Db;
pub use field::Field;
pub use filter::Filter;
pub use hook::{Hook, HookContext, HookFn, HookStep, Hooks, IntoHookResult, TransactionChanges};
pub use inbox::INBOX_TABLE;
pub use model::{
    Column, ColumnType, Entity, ForeignKeyColumn, Model, ModelInfo, OnMySql, OnPostgres, OnSqlite,
    Row, Statements,
};
pub use model_event::CHANGES_KEY;
pub use outbox::{
    OUTBOX_DEAD_TABLE, OUTBOX_TABLE, Outbox, OutboxDeadLetters, OutboxMode, OutboxRelay,
};
pub use query::{Page, Query, RowStream};
pub use raw::{IntoParam, RawQuery};
pub use relation::{BelongsTo, ForeignKey, HasMany, HasOne, Nullable, OnDelete};
pub use schema::{ModelRegistration, Models, create_tables_sql};
pub use soft_delete::SoftDeletes;
pub use timestamp::{SoftDelete, Timestamp};
pub use tx::{Savepoint, Tx};
pub use value::{FieldOnMySql, FieldOnPostgres, FieldOnSqlite, SqlValue, Storable};

#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
    pub use sqlx;
    pub use sqlx::error::BoxDynError;

    pub use crate::field::{unknown_discriminant, unknown_name};
    pub use crate::raw::column_positions;
    pub use crate::relation::{
        child, child_in, children, children_in, foreign_key, parent, parent_in, set_null,
    };
    pub use crate::value::storable;

    /// Runs the hooks of an in-transaction phase on `model` with a context
    /// on `tx`, as a write would. For benchmarks of hook dispatch.
    pub async fn run_phase<M: crate::Entity>(
        phase: earn_core::HookPhase,
        operation: earn_core::Operation,
        model: &mut M,
        tx: &mut crate::Tx,
    ) -> Result<(), earn_core::Error> {
        let mut ctx = crate::hook::HookContext::new(tx, operation, M::field_names(), None, false);
        crate::hook::run_in_tx(phase, model, &mut ctx).await
    }

    /// Whether the model has a stored field `name` (for `when_changed`,
    /// checked at compile time).
    pub const fn has_field(info: &crate::ModelInfo, name: &str) -> bool {
        let mut i = 0;
        while i < info.columns.len() {
            let field = info.columns[i].field.as_bytes();
            let name = name.as_bytes();
            if field.len() == name.len() {
                let mut j = 0;
                while j < field.len() && field[j] == name[j] {
                    j += 1;
                }
                if j == field.len() {
                    return true;
                }
            }
            i += 1;
        }
        false
    }

    /// Names the column in a decoding error (sqlx names its position).
    pub fn column_error(error: sqlx::Error, column: &'static str) -> sqlx::Error {
        match error {
            sqlx::Error::ColumnDecode { source, .. } => sqlx::Error::ColumnDecode {
                index: format!("`{column}`"),
                source,
            },
            other => other,
        }
    }

    /// Compares two values by their JSON form (for `#[model(json)]` fields,
    /// which need not implement `PartialEq`).
    pub fn json_eq<T: serde::Serialize>(a: &T, b: &T) -> bool {
        match (serde_json::to_value(a), serde_json::to_value(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}
