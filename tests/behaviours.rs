//! Reusable behaviours: hooks written once on a `#[behaviour]` trait and
//! applied to many models with `#[model(behaviours(…))]`, generic over the
//! models that meet the trait's requirements, run in one order with the
//! model's own hooks, and listed in the registry; on every database.

mod common;

use common::{each_backend, fresh, log, take_log};
use earn::prelude::*;

// --- the behaviours, written once --------------------------------------

/// The audit trail: one row per write, in the write's transaction.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "behaviour_audit")]
struct AuditRow {
    #[model(primary_key, auto)]
    id: Option<i64>,
    model: String,
    key: String,
    operation: String,
}

/// Writes an audit row for every insert, update and delete, in the same
/// transaction: it commits or rolls back with the write.
#[behaviour]
trait Audited: Model {
    #[after_save(priority = -10)]
    async fn audit_save(&self, ctx: &mut HookContext<'_>) -> Result<(), earn::Error> {
        log(format!("{}: Audited::audit_save", Self::INFO.name));
        audit(self, ctx).await
    }

    #[after_delete]
    async fn audit_delete(&self, ctx: &mut HookContext<'_>) -> Result<(), earn::Error> {
        audit(self, ctx).await
    }

    // One method, one phase, twice: each attribute is a hook of its own.
    #[after_commit(on = "create")]
    #[after_commit(on = "delete")]
    fn committed(&self) {}
}

async fn audit<M: Model>(model: &M, ctx: &mut HookContext<'_>) -> Result<(), earn::Error> {
    let mut row = AuditRow {
        id: None,
        model: M::INFO.name.to_owned(),
        key: format!("{:?}", model.key().expect("written rows have keys")),
        operation: ctx.operation().to_string(),
    };
    row.insert_in(ctx.tx()).await
}

/// What `TenantScoped` needs of a model: its tenant.
trait HasTenant {
    fn tenant_id(&self) -> i64;
}

tokio::task_local! {
    /// The tenant of the request being served.
    static TENANT: i64;
}

/// Refuses a write of a row of another tenant than the request's.
#[behaviour]
trait TenantScoped: Model + HasTenant {
    #[before_save(priority = 100)]
    #[before_delete(priority = 100)]
    fn same_tenant(&self) -> Result<(), HookError> {
        log(format!("{}: TenantScoped::same_tenant", Self::INFO.name));
        match TENANT.try_with(|tenant| *tenant) {
            Ok(tenant) if tenant == self.tenant_id() => Ok(()),
            Ok(tenant) => Err(HookError::abort(format!(
                "row of tenant {} written by tenant {tenant}",
                self.tenant_id()
            ))),
            Err(_) => Err(HookError::abort("no tenant in this context")),
        }
    }
}

// --- two models apply them ----------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "behaviour_invoices", behaviours(TenantScoped, Audited))]
struct Invoice {
    #[model(primary_key, auto)]
    id: Option<i64>,
    tenant_id: i64,
    cents: i64,
}

impl HasTenant for Invoice {
    fn tenant_id(&self) -> i64 {
        self.tenant_id
    }
}

#[hooks]
impl Invoice {
    #[before_save]
    fn own_before_save(&self) {
        log("Invoice: own_before_save");
    }

    #[after_save]
    fn own_after_save(&self) {
        log("Invoice: own_after_save");
    }

    // Priority -10 too: on a tie the behaviour's hook runs first.
    #[after_save(priority = -10)]
    fn own_last(&self) {
        log("Invoice: own_last");
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "behaviour_notes", behaviours(Audited))]
struct Note {
    #[model(primary_key)]
    slug: String,
    text: String,
}

#[tokio::test]
async fn a_behaviour_writes_in_the_same_transaction_for_every_model_that_applies_it() {
    each_backend(|db| async move {
        fresh::<AuditRow>(&db).await;
        fresh::<Invoice>(&db).await;
        fresh::<Note>(&db).await;
        TENANT
            .scope(7, async {
                let mut invoice = Invoice {
                    id: None,
                    tenant_id: 7,
                    cents: 100,
                };
                invoice.save(&db).await.expect("insert");
                invoice.cents = 200;
                invoice.save(&db).await.expect("update");
                invoice.delete(&db).await.expect("delete");
            })
            .await;
        let mut note = Note {
            slug: "hello".into(),
            text: "hi".into(),
        };
        note.save(&db).await.expect("a note has no tenant to check");

        let trail: Vec<(String, String)> = AuditRow::query()
            .order_by(AuditRow::ID.asc())
            .all(&db)
            .await
            .expect("audit rows")
            .into_iter()
            .map(|row| (row.model, row.operation))
            .collect();
        let expected = [
            ("Invoice", "create"),
            ("Invoice", "update"),
            ("Invoice", "delete"),
            ("Note", "create"),
        ];
        assert_eq!(trail, expected.map(|(m, o)| (m.to_owned(), o.to_owned())));
        assert_eq!(
            AuditRow::query()
                .filter(AuditRow::MODEL.eq("Note"))
                .one(&db)
                .await
                .expect("one")
                .key,
            "\"hello\""
        );
    })
    .await;
}

#[tokio::test]
async fn behaviour_hooks_run_in_one_order_with_the_models_own() {
    each_backend(|db| async move {
        fresh::<AuditRow>(&db).await;
        fresh::<Invoice>(&db).await;
        TENANT
            .scope(7, async {
                Invoice {
                    id: None,
                    tenant_id: 7,
                    cents: 1,
                }
                .save(&db)
                .await
                .expect("insert");
            })
            .await;
        assert_eq!(
            take_log(),
            [
                // priority 100
                "Invoice: TenantScoped::same_tenant",
                // priority 0
                "Invoice: own_before_save",
                "Invoice: own_after_save",
                // priority -10: the behaviour's first, then the model's own
                "Invoice: Audited::audit_save",
                "Invoice: own_last",
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_refusing_behaviour_stops_the_write_and_its_audit() {
    each_backend(|db| async move {
        fresh::<AuditRow>(&db).await;
        fresh::<Invoice>(&db).await;
        let mut other = Invoice {
            id: None,
            tenant_id: 8,
            cents: 1,
        };
        let error = TENANT
            .scope(7, other.save(&db))
            .await
            .expect_err("another tenant's row");
        assert!(error.is_abort());
        let failure = error.as_hook_failure().expect("a hook");
        assert_eq!(failure.hook, "TenantScoped::same_tenant");
        assert!(
            error
                .to_string()
                .contains("row of tenant 8 written by tenant 7"),
            "{error}"
        );
        assert_eq!(other.id, None);
        assert_eq!(Invoice::query().count(&db).await.expect("count"), 0);
        assert_eq!(AuditRow::query().count(&db).await.expect("count"), 0);

        // An audit failure rolls the write back with it.
        db.drop_table::<AuditRow>()
            .await
            .expect("drop the audit table");
        let mut mine = Invoice {
            id: None,
            tenant_id: 7,
            cents: 1,
        };
        let error = TENANT
            .scope(7, mine.save(&db))
            .await
            .expect_err("no audit table");
        assert_eq!(
            error.as_hook_failure().expect("a hook").hook,
            "Audited::audit_save"
        );
        assert_eq!(Invoice::query().count(&db).await.expect("count"), 0);
        db.create_table::<AuditRow>()
            .await
            .expect("create it again");
    })
    .await;
}

#[test]
fn the_registry_lists_the_hooks_each_model_runs_through_behaviours() {
    let registry = earn::registry();
    let applied: Vec<String> = registry
        .behaviour_hooks
        .iter()
        .filter(|hook| hook.model == "Invoice" || hook.model == "Note")
        .map(|hook| {
            format!(
                "{} {} {} {}",
                hook.model, hook.function, hook.phase, hook.priority
            )
        })
        .collect();
    assert_eq!(
        applied,
        [
            "Invoice TenantScoped::same_tenant before_save 100",
            "Invoice TenantScoped::same_tenant before_delete 100",
            "Invoice Audited::audit_delete after_delete 0",
            "Invoice Audited::audit_save after_save -10",
            "Invoice Audited::committed after_commit 0",
            "Invoice Audited::committed after_commit 0",
            "Note Audited::audit_delete after_delete 0",
            "Note Audited::audit_save after_save -10",
            "Note Audited::committed after_commit 0",
            "Note Audited::committed after_commit 0",
        ]
    );
    let listing = registry.to_string();
    assert!(
        listing.contains(
            "Invoice uses Audited::audit_save (after_save, priority -10) at tests/behaviours.rs:"
        ),
        "{listing}"
    );
}
