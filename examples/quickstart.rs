//! The first page of earn, on embedded SQLite: `cargo run --example quickstart`.

use earn::prelude::*;

/// A user of the quickstart.
#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "users", events = "user")] // emits user.created / user.updated / user.deleted
pub struct User {
    /// Assigned by the database on the first save.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// Display name.
    pub name: String,
    /// Normalised to lower case before every save.
    pub email: String,
}

#[hooks]
impl User {
    #[before_save]
    fn normalize(&mut self) {
        self.email = self.email.trim().to_lowercase();
        println!("before_save  normalize  -> email = {:?}", self.email);
    }

    #[before_save(priority = 10)]
    async fn validate(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        println!(
            "before_save  validate   ({}, priority 10 runs first)",
            ctx.operation()
        );
        if !self.email.contains('@') {
            return Err(HookError::invalid("email", "must contain '@'"));
        }
        Ok(())
    }

    #[after_create]
    fn created(&self) {
        println!("after_create created    -> id = {:?}", self.id);
    }

    #[after_update(when_changed = "name")]
    fn renamed(&self, ctx: &mut HookContext<'_>) {
        let before = ctx
            .previous::<User>()
            .map(|u| u.name.clone())
            .unwrap_or_default();
        println!(
            "after_update renamed    -> {before:?} became {:?}",
            self.name
        );
    }

    #[after_delete]
    fn deleted(&self) {
        println!("after_delete deleted    -> id = {:?}", self.id);
    }

    #[after_commit]
    async fn announce(&self) {
        println!("after_commit announce   -> committed user {:?}", self.id);
    }
}

#[event_handler("user.created", priority = 10)]
async fn send_welcome(event: &Event) -> Result<(), HandlerError> {
    let user: User = event.payload()?;
    println!(
        "handler      send_welcome -> welcome, {} (after the commit)",
        user.name
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), earn::Error> {
    let db = Db::connect("sqlite::memory:").await?;
    db.create_table::<User>().await?;

    println!("-- insert");
    let mut ada = User {
        id: None,
        name: "Ada".into(),
        email: " ADA@Example.com ".into(),
    };
    ada.save(&db).await?; // INSERT, id assigned

    println!("-- update");
    ada.name = "Ada Lovelace".into();
    ada.save(&db).await?; // UPDATE

    println!("-- a hook vetoes the write");
    let mut nobody = User {
        id: None,
        name: "Nobody".into(),
        email: "nowhere".into(),
    };
    let error = nobody.save(&db).await.expect_err("validation fails");
    println!("error: {error}");
    assert_eq!(nobody.id, None, "nothing was written, no id assigned");

    println!("-- delete");
    let again = User::find(&db, ada.id.expect("saved")).await?.expect("row");
    again.delete(&db).await?;
    assert!(User::all(&db).await?.is_empty());

    // Events are published to the bus's workers after each commit; let them
    // finish before the program exits.
    db.bus().shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}
