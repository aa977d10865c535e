//! Timestamps, soft delete, an audit behaviour, validation that collects
//! and an `after_commit` that sees the whole transaction, on embedded
//! SQLite: `cargo run --example behaviours`.

use chrono::{DateTime, Utc};
use earn::TransactionChanges;
use earn::prelude::*;

/// One row per write of an audited model, written in the write's
/// transaction: no audit row without the write, no write without its row.
#[derive(Debug, Clone, Model)]
#[model(table = "audit_log")]
pub struct AuditRow {
    /// Assigned by the database.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// The model's type name.
    pub model: String,
    /// The row's key.
    pub key: String,
    /// `create`, `update`, `delete` or `restore`.
    pub operation: String,
    /// The fields the write changed.
    pub fields: String,
}

/// Hooks written once, for every model that lists `behaviours(Audited)`.
#[behaviour]
pub trait Audited: Model {
    /// Records the write.
    #[after_save]
    #[after_delete]
    #[after_restore]
    async fn audit(&self, ctx: &mut HookContext<'_>) -> Result<(), earn::Error> {
        let mut row = AuditRow {
            id: None,
            model: Self::INFO.name.to_owned(),
            key: self.key().map(|key| format!("{key:?}")).unwrap_or_default(),
            operation: ctx.operation().to_string(),
            fields: ctx.changed().join(","),
        };
        row.insert_in(ctx.tx()).await
    }
}

/// A document with its timestamps, a trash, and an audit trail.
#[derive(Debug, Clone, Model)]
#[model(table = "documents", behaviours(Audited))]
pub struct Document {
    /// Assigned by the database.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// Required.
    pub title: String,
    /// Who may edit it.
    pub owner: String,
    /// Set on insert.
    #[model(created_at)]
    pub created_at: Option<DateTime<Utc>>,
    /// Set by every write that changes the row.
    #[model(updated_at)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Set by `delete`; cleared by `restore`.
    #[model(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

#[hooks]
impl Document {
    /// Every problem at once, not the first.
    #[before_save]
    fn validate(&self, ctx: &mut HookContext<'_>) {
        if self.title.trim().is_empty() {
            ctx.invalid("title", "must not be empty");
        }
        if !self.owner.contains('@') {
            ctx.invalid("owner", "must be an e-mail address");
        }
    }

    /// After the commit, what the whole transaction changed.
    #[after_commit(on = "update")]
    fn tell(&self, changes: &TransactionChanges<Document>) {
        if let (Some(before), true) = (changes.before(), changes.is_changed("title")) {
            println!(
                "after_commit: title {:?} -> {:?} in one transaction",
                before.title,
                changes.after().title
            );
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::connect("sqlite::memory:").await?;
    db.create_table::<AuditRow>().await?;
    db.create_table::<Document>().await?;

    // Validation: both fields at once, nothing written.
    let mut bad = Document {
        id: None,
        title: " ".into(),
        owner: "nobody".into(),
        created_at: None,
        updated_at: None,
        deleted_at: None,
    };
    let error = bad.save(&db).await.expect_err("invalid");
    println!(
        "422 {}",
        serde_json::to_string(error.field_errors().expect("invalid"))?
    );

    // Timestamps: one instant for both on insert.
    let mut doc = Document {
        title: "Draft".into(),
        owner: "ada@example.com".into(),
        ..bad
    };
    doc.save(&db).await?;
    assert_eq!(doc.created_at, doc.updated_at);
    println!("created  {:?} at {:?}", doc.title, doc.created_at);

    // Two saves in one transaction: one change, first title to last.
    let mut tx = db.begin().await?;
    doc.title = "Second draft".into();
    doc.save_in(&mut tx).await?;
    doc.title = "Final".into();
    doc.save_in(&mut tx).await?;
    tx.commit().await?;

    // Soft delete: the row stays, reads leave it out, restore brings it back.
    let id = doc.id.expect("saved");
    doc.delete(&db).await?;
    assert!(Document::find(&db, id).await?.is_none());
    let mut trashed = Document::query().only_deleted().one(&db).await?;
    println!("trashed  {:?} at {:?}", trashed.title, trashed.deleted_at);
    trashed.restore(&db).await?;
    println!("restored {:?}", trashed.title);
    trashed.force_delete(&db).await?;
    assert_eq!(Document::query().with_deleted().count(&db).await?, 0);

    println!("audit trail:");
    for row in AuditRow::query()
        .order_by(AuditRow::ID.asc())
        .all(&db)
        .await?
    {
        println!(
            "  {} {} {:<7} [{}]",
            row.model, row.key, row.operation, row.fields
        );
    }
    Ok(())
}
