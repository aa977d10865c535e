//! A natural key inserts the first time and updates after; quiet writes
//! skip hooks.

mod common;

use common::{count, each_backend, fresh, log, take_log};
use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "natural_countries")]
struct Country {
    #[model(primary_key)]
    code: String,
    name: String,
    population: u32,
}

#[hooks]
impl Country {
    #[before_save(on = "create")]
    fn on_create(&self) {
        log(format!("create {}", self.code));
    }
    #[before_save(on = "update")]
    fn on_update(&self) {
        log(format!("update {}", self.code));
    }
    #[before_delete]
    fn deleting(&self) {
        log(format!("delete {}", self.code));
    }
    #[after_commit]
    fn committed(&self) {
        log("commit");
    }
}

fn country(code: &str, name: &str) -> Country {
    Country {
        code: code.into(),
        name: name.into(),
        population: 1,
    }
}

#[tokio::test]
async fn a_natural_key_inserts_first_then_updates() {
    each_backend(|db| async move {
        fresh::<Country>(&db).await;
        let mut fr = country("FR", "France");
        fr.save(&db).await.unwrap();
        assert_eq!(take_log(), ["create FR", "commit"]);
        fr.population = 68_000_000;
        fr.save(&db).await.unwrap();
        assert_eq!(take_log(), ["update FR", "commit"]);
        assert_eq!(
            Country::find(&db, "FR".into()).await.unwrap(),
            Some(fr.clone())
        );
        assert_eq!(count::<Country>(&db).await, 1);

        // `insert` of an existing key is a unique violation.
        let error = country("FR", "again").insert(&db).await.unwrap_err();
        assert!(
            matches!(
                error,
                earn::Error::UniqueViolation {
                    table: "natural_countries",
                    operation: "insert",
                    ..
                }
            ),
            "{error}"
        );
        // `update` of a missing key says so.
        let error = country("XX", "nowhere").update(&db).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "update of Country: no row with key \"XX\" in table `natural_countries`"
        );
        assert!(matches!(error, earn::Error::NotFound { .. }));
        let error = country("XX", "nowhere").delete(&db).await.unwrap_err();
        assert!(matches!(error, earn::Error::NotFound { .. }), "{error}");
        take_log();
    })
    .await;
}

#[tokio::test]
async fn quiet_writes_skip_hooks_and_still_write() {
    each_backend(|db| async move {
        fresh::<Country>(&db).await;
        let mut de = country("DE", "Germany");
        de.save_quietly(&db).await.unwrap();
        de.name = "Deutschland".into();
        de.save_quietly(&db).await.unwrap();
        assert_eq!(
            Country::find(&db, "DE".into()).await.unwrap().unwrap().name,
            "Deutschland"
        );
        de.delete_quietly(&db).await.unwrap();
        assert_eq!(count::<Country>(&db).await, 0);
        assert!(take_log().is_empty(), "no hook ran");
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "natural_plain")]
struct Plain {
    #[model(primary_key, auto)]
    id: Option<i32>,
    label: Option<String>,
}

#[tokio::test]
async fn a_model_without_hooks_round_trips_and_reports_missing_rows() {
    each_backend(|db| async move {
        fresh::<Plain>(&db).await;
        let mut p = Plain {
            id: None,
            label: None,
        };
        p.save(&db).await.unwrap();
        assert_eq!(p.id, Some(1));
        p.label = Some("x".into());
        p.save(&db).await.unwrap();
        assert_eq!(Plain::find(&db, 1).await.unwrap(), Some(p.clone()));
        let error = p.insert(&db).await.unwrap_err();
        assert!(error.to_string().contains("already has key 1"), "{error}");
        p.delete(&db).await.unwrap();
        let error = p.update(&db).await.unwrap_err();
        assert!(matches!(error, earn::Error::NotFound { .. }), "{error}");
        let error = Plain {
            id: None,
            label: None,
        }
        .delete(&db)
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "delete of Plain: the model has no primary key value; save it first"
        );
    })
    .await;
}
