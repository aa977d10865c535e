//! DDL: `CREATE TABLE` of one model, or of every model linked into the
//! program, parents before the children that refer to them.

use earn_core::Error;

use crate::backend::Dialect;
use crate::model::{ColumnType, Model, ModelInfo};

/// A model, registered by `#[derive(Model)]` for [`create_tables_sql`].
#[doc(hidden)]
#[derive(Debug)]
pub struct ModelRegistration {
    /// The model's table and columns.
    pub info: &'static ModelInfo,
    /// Its `CREATE TABLE` in a dialect.
    pub create_table_sql: fn(Dialect) -> Result<String, Error>,
}

earn_core::__private::inventory::collect!(ModelRegistration);

/// `CREATE TABLE IF NOT EXISTS` of `M` in `dialect`, as
/// [`Db::create_table`](crate::Db::create_table) runs it.
pub(crate) fn model_sql<M: Model>(dialect: Dialect) -> Result<String, Error> {
    let types = match dialect {
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => <M as crate::Row<sqlx::Sqlite>>::column_types(),
        #[cfg(feature = "postgres")]
        Dialect::Postgres => <M as crate::Row<sqlx::Postgres>>::column_types(),
        #[cfg(feature = "mysql")]
        Dialect::MySql => <M as crate::Row<sqlx::MySql>>::column_types(),
        #[allow(unreachable_patterns)]
        _ => {
            return Err(Error::InvalidQuery {
                model: M::INFO.name,
                reason: format!(
                    "this build of earn has no {} support: enable its feature",
                    dialect.name()
                )
                .into(),
            });
        }
    };
    Ok(create_table_sql(M::INFO, dialect, &types))
}

/// The `CREATE TABLE IF NOT EXISTS` statements of every model linked into
/// the program, each ending with `;`, a parent's table before the tables
/// whose foreign keys refer to it: the first migration of an application,
/// or a check of what one should contain.
///
/// sqlx's migrations are the recommended way to change a schema: write the
/// output to `migrations/<timestamp>_init.sql` and run them with
/// `sqlx migrate run` or `sqlx::migrate!()`.
///
/// ```
/// # use earn::prelude::*;
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "authors")]
/// struct Author {
///     #[model(primary_key, auto)]
///     id: Option<i64>,
///     name: String,
/// }
///
/// let ddl = earn::create_tables_sql(earn::Dialect::Postgres)?;
/// assert!(ddl.contains(r#"CREATE TABLE IF NOT EXISTS "authors""#));
/// # Ok::<(), earn::Error>(())
/// ```
pub fn create_tables_sql(dialect: Dialect) -> Result<String, Error> {
    let mut models: Vec<&ModelRegistration> =
        earn_core::__private::inventory::iter::<ModelRegistration>().collect();
    // Link order is not stable between builds: sort by table first.
    models.sort_by_key(|m| m.info.table);
    let mut ordered: Vec<&ModelRegistration> = Vec::with_capacity(models.len());
    while !models.is_empty() {
        // A model whose parents are all placed (or not registered, or
        // itself) goes next; a cycle of foreign keys takes the first left.
        let ready = models
            .iter()
            .position(|m| {
                m.info.foreign_keys.iter().all(|fk| {
                    let parent = (fk.references)().table;
                    parent == m.info.table
                        || ordered.iter().any(|o| o.info.table == parent)
                        || !models.iter().any(|o| o.info.table == parent)
                })
            })
            .unwrap_or(0);
        ordered.push(models.remove(ready));
    }
    let mut sql = String::new();
    for model in ordered {
        sql.push_str(&(model.create_table_sql)(dialect)?);
        sql.push_str(";\n");
    }
    Ok(sql)
}

pub(crate) fn create_table_sql(
    info: &crate::model::ModelInfo,
    dialect: Dialect,
    types: &[ColumnType],
) -> String {
    let d = dialect as usize;
    let columns: Vec<String> = info
        .columns
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (column, ty))| {
            let name = column.quoted[d];
            if i != info.key_index {
                let null = if ty.nullable { "" } else { " NOT NULL" };
                // MySQL keys no TEXT / BLOB column without a prefix length:
                // an indexed column takes the key type (`VARCHAR(255)`).
                let keyed = column.unique
                    || column.index
                    || info.foreign_keys.iter().any(|fk| fk.column == i);
                let sql_type = if keyed { ty.key_sql_type } else { ty.sql_type };
                let default = column
                    .default
                    .map(|sql| format!(" DEFAULT {sql}"))
                    .unwrap_or_default();
                let unique = if column.unique { " UNIQUE" } else { "" };
                return format!("{name} {sql_type}{null}{default}{unique}");
            }
            match (info.auto_key, dialect) {
                // Only `INTEGER PRIMARY KEY` aliases SQLite's rowid.
                (true, Dialect::Sqlite) => format!("{name} INTEGER PRIMARY KEY"),
                (true, Dialect::Postgres) => {
                    format!(
                        "{name} {} GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                        ty.key_sql_type
                    )
                }
                (true, Dialect::MySql) => {
                    format!(
                        "{name} {} NOT NULL AUTO_INCREMENT PRIMARY KEY",
                        ty.key_sql_type
                    )
                }
                (false, _) => format!("{name} {} NOT NULL PRIMARY KEY", ty.key_sql_type),
            }
        })
        .collect();
    // `belongs_to` fields refer to their parent's key. earn runs the
    // relation's `on_delete` itself, through hooks: the constraint only
    // guards against rows written around earn.
    let foreign_keys = info.foreign_keys.iter().map(|fk| {
        let parent = (fk.references)();
        format!(
            "FOREIGN KEY ({}) REFERENCES {} ({})",
            info.columns[fk.column].quoted[d],
            parent.quoted_table[d],
            parent.columns[parent.key_index].quoted[d]
        )
    });
    let indexed = info.columns.iter().filter(|c| c.index);
    let index_name = |column: &crate::model::Column| {
        dialect.quote(&format!(
            "{}_{}_idx",
            info.table.replace('.', "_"),
            column.name
        ))
    };
    // MySQL declares indexes inside the table (it has no `CREATE INDEX IF
    // NOT EXISTS`); the others after it.
    let inline = indexed
        .clone()
        .filter(|_| dialect == Dialect::MySql)
        .map(|column| format!("INDEX {} ({})", index_name(column), column.quoted[d]));
    let columns: Vec<String> = columns
        .into_iter()
        .chain(foreign_keys)
        .chain(inline)
        .collect();
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        info.quoted_table[d],
        columns.join(", ")
    );
    if dialect != Dialect::MySql {
        for column in indexed {
            sql.push_str(&format!(
                ";\nCREATE INDEX IF NOT EXISTS {} ON {} ({})",
                index_name(column),
                info.quoted_table[d],
                column.quoted[d]
            ));
        }
    }
    sql
}
