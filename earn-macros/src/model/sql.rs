//! The statements of a model, written once per dialect at compile time.

/// SQLite, PostgreSQL, MySQL: the order of `earn::Dialect`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

pub(crate) const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql];

impl Dialect {
    /// Quotes an identifier; `schema.table` quotes each part.
    ///
    /// SQLite takes backticks too, and unlike a double-quoted name, an
    /// unknown backticked column is an error: SQLite reads `"nickname"`
    /// as the string `'nickname'` when the table has no such column.
    pub(crate) fn quote(self, name: &str) -> String {
        let q = if self == Dialect::Postgres { '"' } else { '`' };
        name.split('.')
            .map(|part| format!("{q}{}{q}", part.replace(q, &format!("{q}{q}"))))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn placeholders(self) -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            if self == Dialect::Postgres {
                format!("${n}")
            } else {
                "?".to_owned()
            }
        }
    }
}

pub(crate) struct Table<'a> {
    pub(crate) name: &'a str,
    /// Column names in declaration order.
    pub(crate) columns: Vec<String>,
    pub(crate) key_index: usize,
    pub(crate) auto_key: bool,
    /// The `#[model(version)]` column.
    pub(crate) version_index: Option<usize>,
}

pub(crate) struct Statements {
    pub(crate) insert: String,
    pub(crate) update: String,
    pub(crate) delete: String,
    pub(crate) find: String,
    pub(crate) find_for_update: String,
    pub(crate) all: String,
}

impl Table<'_> {
    pub(crate) fn statements(&self, d: Dialect) -> Statements {
        let table = d.quote(self.name);
        let quoted: Vec<String> = self.columns.iter().map(|c| d.quote(c)).collect();
        let key = &quoted[self.key_index];
        let non_key: Vec<&String> = quoted
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.key_index)
            .map(|(_, c)| c)
            .collect();

        let mut next = d.placeholders();
        let inserted: Vec<&String> = if self.auto_key {
            non_key.clone()
        } else {
            quoted.iter().collect()
        };
        let mut insert = if inserted.is_empty() {
            match d {
                Dialect::MySql => format!("INSERT INTO {table} () VALUES ()"),
                _ => format!("INSERT INTO {table} DEFAULT VALUES"),
            }
        } else {
            let names = join(inserted.iter().map(|c| c.to_string()));
            let values = join(inserted.iter().map(|_| next()));
            format!("INSERT INTO {table} ({names}) VALUES ({values})")
        };
        if self.auto_key && d != Dialect::MySql {
            insert.push_str(&format!(" RETURNING {key}"));
        }

        // With a version: `version` is set to the next value like any
        // column, and the row must still hold the version read.
        let version = self.version_index.map(|i| &quoted[i]);
        let mut next = d.placeholders();
        let sets = if non_key.is_empty() {
            format!("{key} = {key}")
        } else {
            join(non_key.iter().map(|c| format!("{c} = {}", next())))
        };
        let mut update = format!("UPDATE {table} SET {sets} WHERE {key} = {}", next());
        if let Some(version) = version {
            update.push_str(&format!(" AND {version} = {}", next()));
        }

        let mut next = d.placeholders();
        let mut delete = format!("DELETE FROM {table} WHERE {key} = {}", next());
        if let Some(version) = version {
            delete.push_str(&format!(" AND {version} = {}", next()));
        }

        let select = join(quoted.iter().cloned());
        let mut next = d.placeholders();
        let find = format!("SELECT {select} FROM {table} WHERE {key} = {}", next());
        let find_for_update = match d {
            // SQLite locks the whole database for a write transaction.
            Dialect::Sqlite => find.clone(),
            _ => format!("{find} FOR UPDATE"),
        };
        let all = format!("SELECT {select} FROM {table} ORDER BY {key}");
        Statements {
            insert,
            update,
            delete,
            find,
            find_for_update,
            all,
        }
    }
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Table<'static> {
        Table {
            name: "order",
            columns: vec!["id".into(), "select".into(), "we\"ird`".into()],
            key_index: 0,
            auto_key: true,
            version_index: None,
        }
    }

    #[test]
    fn statements_quote_every_identifier_and_bind_every_value() {
        let s = users().statements(Dialect::Postgres);
        assert_eq!(
            s.insert,
            r#"INSERT INTO "order" ("select", "we""ird`") VALUES ($1, $2) RETURNING "id""#
        );
        assert_eq!(
            s.update,
            r#"UPDATE "order" SET "select" = $1, "we""ird`" = $2 WHERE "id" = $3"#
        );
        assert_eq!(
            s.find_for_update,
            r#"SELECT "id", "select", "we""ird`" FROM "order" WHERE "id" = $1 FOR UPDATE"#
        );
        let m = users().statements(Dialect::MySql);
        assert_eq!(
            m.insert,
            "INSERT INTO `order` (`select`, `we\"ird```) VALUES (?, ?)"
        );
        assert_eq!(
            m.all,
            "SELECT `id`, `select`, `we\"ird``` FROM `order` ORDER BY `id`"
        );
        let l = users().statements(Dialect::Sqlite);
        assert_eq!(l.delete, "DELETE FROM `order` WHERE `id` = ?");
    }

    #[test]
    fn a_version_is_checked_by_update_and_delete() {
        let table = Table {
            version_index: Some(1),
            ..users()
        };
        let s = table.statements(Dialect::Postgres);
        assert_eq!(
            s.update,
            r#"UPDATE "order" SET "select" = $1, "we""ird`" = $2 WHERE "id" = $3 AND "select" = $4"#
        );
        assert_eq!(
            s.delete,
            r#"DELETE FROM "order" WHERE "id" = $1 AND "select" = $2"#
        );
    }

    #[test]
    fn schema_qualified_tables_quote_each_part() {
        assert_eq!(
            Dialect::Postgres.quote("audit.events"),
            r#""audit"."events""#
        );
        assert_eq!(Dialect::Sqlite.quote("audit.events"), "`audit`.`events`");
    }
}
