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

/// An order of a user; deleting it deletes its lines through their hooks.
#[derive(Debug, Clone, Model)]
#[model(
    table = "orders",
    has_many(OrderLine, name = "lines", on_delete = "cascade")
)]
pub struct Order {
    /// Assigned by the database.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// The user who ordered: `order.user(&db)`.
    #[model(belongs_to = User)]
    pub user_id: i64,
}

/// A line of an order: `line.order(&db)`.
#[derive(Debug, Clone, Model)]
#[model(table = "order_lines")]
pub struct OrderLine {
    /// Assigned by the database.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// The order it belongs to.
    #[model(belongs_to = Order)]
    pub order_id: i64,
    /// What was ordered.
    pub product: String,
    /// Price in cents.
    pub cents: i64,
}

#[hooks]
impl OrderLine {
    #[before_create]
    fn priced(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        println!(
            "before_create priced   -> {} at {} cents (bulk: {})",
            self.product,
            self.cents,
            ctx.is_bulk()
        );
        if self.cents <= 0 {
            return Err(HookError::invalid("cents", "must be positive"));
        }
        Ok(())
    }

    #[after_delete]
    fn removed(&self) {
        println!("after_delete removed   -> line {}", self.product);
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

    println!("-- a query");
    let found = User::query()
        .filter(User::EMAIL.like("%@example.com"))
        .order_by(User::NAME.asc())
        .all(&db)
        .await?;
    println!("found {} user(s) at example.com", found.len());

    println!("-- a relation and a bulk write");
    db.create_table::<Order>().await?;
    db.create_table::<OrderLine>().await?; // after its parent: it refers to it
    let mut order = Order {
        id: None,
        user_id: ada.id.expect("saved"),
    };
    order.save(&db).await?;
    let mut lines: Vec<OrderLine> = [("tea", 450), ("cake", 300)]
        .map(|(product, cents)| OrderLine {
            id: None,
            order_id: order.id.expect("saved"),
            product: product.into(),
            cents,
        })
        .into();
    OrderLine::insert_many(&db, &mut lines).await?; // one INSERT, every row's hooks
    let total: i64 = order.lines(&db).await?.iter().map(|l| l.cents).sum();
    let buyer = order.user(&db).await?.expect("user");
    println!(
        "{} ordered {} lines, {total} cents",
        buyer.name,
        lines.len()
    );

    println!("-- delete");
    order.delete(&db).await?; // its lines first, through their hooks
    let again = User::find(&db, ada.id.expect("saved")).await?.expect("row");
    again.delete(&db).await?;
    assert!(User::all(&db).await?.is_empty());

    // Events are published to the bus's workers after each commit; let them
    // finish before the program exits.
    db.bus().shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}
