//! Statements built at run time from a model's quoted identifiers and
//! placeholders; every value is a bound parameter.

use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::error::BoxDynError;

use crate::backend::{Backend, Dialect};
use crate::model::ModelInfo;
use crate::value::SqlValue;

/// The most parameters one statement may bind: SQLite's default limit
/// (PostgreSQL and MySQL allow 65,535).
pub(crate) const MAX_PARAMS: usize = 32_766;

/// SQL text and the values of its placeholders, in order.
pub(crate) struct SqlBuilder {
    pub(crate) text: String,
    pub(crate) params: Vec<Arc<dyn SqlValue>>,
    /// Placeholders written, bound from `params` or by the caller.
    pub(crate) placeholders: usize,
    pub(crate) info: &'static ModelInfo,
    pub(crate) dialect: Dialect,
}

impl SqlBuilder {
    pub(crate) fn new(info: &'static ModelInfo, dialect: Dialect) -> Self {
        SqlBuilder {
            text: String::with_capacity(128),
            params: Vec::new(),
            placeholders: 0,
            info,
            dialect,
        }
    }

    pub(crate) fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// The quoted name of column `index` of the model.
    pub(crate) fn column(&mut self, index: usize) {
        self.text
            .push_str(self.info.columns[index].quoted[self.dialect as usize]);
    }

    pub(crate) fn table(&mut self) {
        self.text
            .push_str(self.info.quoted_table[self.dialect as usize]);
    }

    /// A placeholder for `value`.
    pub(crate) fn param(&mut self, value: Arc<dyn SqlValue>) {
        self.params.push(value);
        self.placeholder();
    }

    /// A placeholder whose value the caller binds after `params`.
    pub(crate) fn placeholder(&mut self) {
        self.placeholders += 1;
        match self.dialect {
            Dialect::Postgres => {
                let _ = write!(self.text, "${}", self.placeholders);
            }
            Dialect::Sqlite | Dialect::MySql => self.text.push('?'),
        }
    }

    /// `SELECT` every column `FROM` the table.
    pub(crate) fn select(&mut self) {
        self.push("SELECT ");
        self.columns();
        self.push(" FROM ");
        self.table();
    }

    /// Every column, comma-separated.
    pub(crate) fn columns(&mut self) {
        for index in 0..self.info.columns.len() {
            if index > 0 {
                self.push(", ");
            }
            self.column(index);
        }
    }

    /// The arguments of the placeholders for backend `DB`.
    pub(crate) fn arguments<DB: Backend>(&self) -> Result<DB::Arguments, sqlx::Error> {
        let mut args = DB::Arguments::default();
        let bound: Result<(), BoxDynError> = self
            .params
            .iter()
            .try_for_each(|value| DB::bind_value(value.as_ref(), &mut args));
        bound.map_err(sqlx::Error::Encode)?;
        Ok(args)
    }

    /// Runs the statement.
    pub(crate) async fn execute<DB: Backend>(
        self,
        c: &mut DB::Connection,
    ) -> Result<crate::backend::Done, sqlx::Error> {
        let args = self.arguments::<DB>()?;
        DB::run_built(c, self.text, args).await
    }

    /// Runs the query; the first row, if any.
    pub(crate) async fn fetch_optional<DB: Backend>(
        self,
        c: &mut DB::Connection,
    ) -> Result<Option<DB::Row>, sqlx::Error> {
        let args = self.arguments::<DB>()?;
        DB::fetch_optional_built(c, self.text, args).await
    }
}

/// `(?, ?, …)` (`($2, $3, …)` on PostgreSQL after `offset` parameters)
/// with `n` placeholders, to complete the `…_in` statements.
pub(crate) fn in_list(dialect: Dialect, offset: usize, n: usize) -> String {
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
