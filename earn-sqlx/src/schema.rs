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

/// The column types of `M` on `dialect`; an error for a database this
/// build has no support for.
fn column_types<M: Model>(dialect: Dialect) -> Result<Vec<crate::ColumnType>, Error> {
    Ok(match dialect {
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
    })
}

/// `CREATE TABLE IF NOT EXISTS` of `M` in `dialect`, as
/// [`Db::create_table`](crate::Db::create_table) runs it.
pub(crate) fn model_sql<M: Model>(dialect: Dialect) -> Result<String, Error> {
    let types = column_types::<M>(dialect)?;
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

/// A column as the database describes it.
struct Found {
    name: String,
    sql_type: String,
    nullable: bool,
}

/// A list of models whose tables [`Db::check_schemas`](crate::Db::check_schemas)
/// checks: a tuple of models, `(User,)` or `(User, Order, OrderLine)` (up
/// to 16).
pub trait Models {
    /// The drift of each table that does not match its model.
    fn drifts(
        db: &crate::Db,
    ) -> impl std::future::Future<Output = Result<Vec<Error>, Error>> + Send;
}

macro_rules! models_tuple {
    ($($model:ident),+) => {
        impl<$($model: Model),+> Models for ($($model,)+) {
            async fn drifts(db: &crate::Db) -> Result<Vec<Error>, Error> {
                let mut drifts = Vec::new();
                $(
                    match check::<$model>(db).await {
                        Ok(()) => {}
                        Err(drift @ Error::SchemaDrift { .. }) => drifts.push(drift),
                        // Not drift: the database could not be asked.
                        Err(error) => return Err(error),
                    }
                )+
                Ok(drifts)
            }
        }
    };
}

models_tuple!(A);
models_tuple!(A, B);
models_tuple!(A, B, C);
models_tuple!(A, B, C, D);
models_tuple!(A, B, C, D, E);
models_tuple!(A, B, C, D, E, F);
models_tuple!(A, B, C, D, E, F, G);
models_tuple!(A, B, C, D, E, F, G, H);
models_tuple!(A, B, C, D, E, F, G, H, I);
models_tuple!(A, B, C, D, E, F, G, H, I, J);
models_tuple!(A, B, C, D, E, F, G, H, I, J, K);
models_tuple!(A, B, C, D, E, F, G, H, I, J, K, L);
models_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M);
models_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M, N);
models_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);
models_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P);

/// The differences between `M`'s columns and its table: see
/// [`Db::check_schema`](crate::Db::check_schema).
pub(crate) async fn check<M: Model>(db: &crate::Db) -> Result<(), Error> {
    let dialect = db.dialect();
    let types = column_types::<M>(dialect)?;
    let found = columns_of(db, M::INFO.table).await?;
    let info = M::INFO;
    let mut problems = Vec::new();
    if found.is_empty() {
        problems.push("the table does not exist".to_owned());
    }
    for (i, (column, ty)) in info.columns.iter().zip(&types).enumerate() {
        let Some(have) = found.iter().find(|f| f.name == column.name) else {
            if !found.is_empty() {
                problems.push(format!("column `{}` is missing", column.name));
            }
            continue;
        };
        let key = i == info.key_index;
        let keyed = key
            || column.unique
            || column.index
            || info.foreign_keys.iter().any(|fk| fk.column == i);
        let expected = if keyed { ty.key_sql_type } else { ty.sql_type };
        let alternatives: &[&str] = if key && dialect == Dialect::Sqlite && info.auto_key {
            &["INTEGER"]
        } else {
            &[]
        };
        if !same_type(dialect, expected, &have.sql_type)
            && !same_type(dialect, ty.sql_type, &have.sql_type)
            && !alternatives
                .iter()
                .any(|a| same_type(dialect, a, &have.sql_type))
        {
            problems.push(format!(
                "column `{}` is {} where {} needs {expected}",
                column.name, have.sql_type, column.field
            ));
        }
        // SQLite reports an `INTEGER PRIMARY KEY` as nullable.
        if !key && ty.nullable != have.nullable {
            problems.push(if ty.nullable {
                format!(
                    "column `{}` is NOT NULL but `{}` is an Option",
                    column.name, column.field
                )
            } else {
                format!(
                    "column `{}` accepts NULL but `{}` is not an Option",
                    column.name, column.field
                )
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::SchemaDrift {
            model: info.name,
            table: info.table,
            problems,
        })
    }
}

/// Whether a column the database describes as `found` has the type earn
/// declares as `expected`, after each database's renamings.
fn same_type(dialect: Dialect, expected: &str, found: &str) -> bool {
    let expected = expected.to_ascii_lowercase();
    let found = found.to_ascii_lowercase();
    let canonical = |t: &str| -> String {
        match (dialect, t) {
            (Dialect::Postgres, "timestamptz") => "timestamp with time zone".to_owned(),
            (Dialect::Postgres, "timestamp") => "timestamp without time zone".to_owned(),
            (Dialect::MySql, "boolean" | "tinyint(1)") => "bool".to_owned(),
            // MariaDB stores JSON as LONGTEXT with a check.
            (Dialect::MySql, "json" | "longtext") => "json".to_owned(),
            // A migration may choose a narrower DECIMAL than the one earn
            // declares (every `Decimal`, DECIMAL(65,28)), as PostgreSQL's
            // NUMERIC(p, s) is reported as `numeric`: values still read.
            (Dialect::MySql, t) if t.starts_with("decimal") || t.starts_with("numeric") => {
                "decimal".to_owned()
            }
            (Dialect::MySql, t) => {
                // Display widths of integers (`bigint(20)`) mean nothing.
                let mut out = String::new();
                let mut rest = t;
                while let Some(open) = rest.find('(') {
                    let close = rest[open..].find(')').map_or(rest.len(), |c| open + c + 1);
                    let head = &rest[..open];
                    let keep = !head.ends_with("int");
                    out.push_str(head);
                    if keep {
                        out.push_str(&rest[open..close]);
                    }
                    rest = &rest[close..];
                }
                out.push_str(rest);
                out
            }
            _ => t.to_owned(),
        }
    };
    canonical(&expected) == canonical(&found)
}

/// The columns of `table`: name, declared type, and whether it accepts
/// NULL (`YES` / `NO`), asked the same way of each database.
async fn columns_of(db: &crate::Db, table: &str) -> Result<Vec<Found>, Error> {
    use sqlx::Row as _;
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT name, type, CASE WHEN \"notnull\" = 0 THEN 'YES' ELSE 'NO' END \
             FROM pragma_table_info(?)"
        }
        Dialect::Postgres => {
            "SELECT column_name::text, data_type::text, is_nullable::text \
             FROM information_schema.columns WHERE table_name = $1 AND table_schema = current_schema()"
        }
        Dialect::MySql => {
            "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR), CAST(is_nullable AS CHAR) \
             FROM information_schema.columns WHERE table_name = ? AND table_schema = DATABASE()"
        }
    };
    let mut conn = db.acquire().await?;
    let found = crate::connection::with_backend!(&mut conn, |c, DB| {
        sqlx::query(sql)
            .bind(table)
            .fetch_all(&mut *c)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(Found {
                            name: r.try_get(0)?,
                            sql_type: r.try_get(1)?,
                            nullable: r.try_get::<String, _>(2)? == "YES",
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
            })
    });
    found.map_err(|source| Error::Database {
        table: table.to_owned().into(),
        operation: "check schema",
        source: Box::new(source),
    })
}
