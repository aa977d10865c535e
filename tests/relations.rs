//! Relations: `belongs_to`, `has_many`, `has_one`; loading without N+1;
//! deletes that cascade through the children's hooks, restrict with a
//! clear error, or nullify through the children's update hooks; foreign
//! keys in `create_table`.

mod common;

use common::{capture, each_backend, log, take_log};
use earn::prelude::*;
use earn::testing::Recorder;
use earn::{Error, OnDelete};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_customers", has_many(Order, foreign_key = "customer_id"))]
struct Customer {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(
    table = "rel_orders",
    has_many(OrderLine, name = "lines", on_delete = "cascade"),
    has_one(Invoice, on_delete = "nullify")
)]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(belongs_to = Customer)]
    customer_id: i64,
    reference: String,
}

#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "rel_order_lines", events = "line")]
struct OrderLine {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(belongs_to = Order)]
    order_id: i64,
    product: String,
}

#[hooks]
impl OrderLine {
    #[before_delete]
    fn before_delete(&self, ctx: &mut HookContext<'_>) {
        log(format!(
            "line.before_delete:{}:{}",
            self.product,
            ctx.is_bulk()
        ));
    }
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_invoices")]
struct Invoice {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(belongs_to = Order)]
    order_id: Option<i64>,
    number: String,
}

#[hooks]
impl Invoice {
    #[before_update]
    fn before_update(&self, ctx: &mut HookContext<'_>) {
        log(format!(
            "invoice.before_update:{}:{:?}",
            self.number,
            ctx.changed()
        ));
    }
}

async fn schema(db: &Db) {
    // Children first: their foreign keys refer to the parents.
    db.drop_table::<Invoice>().await.unwrap();
    db.drop_table::<OrderLine>().await.unwrap();
    db.drop_table::<Order>().await.unwrap();
    db.drop_table::<Customer>().await.unwrap();
    db.create_table::<Customer>().await.unwrap();
    db.create_table::<Order>().await.unwrap();
    db.create_table::<OrderLine>().await.unwrap();
    db.create_table::<Invoice>().await.unwrap();
}

struct Shop {
    ada: Customer,
    bob: Customer,
    orders: Vec<Order>,
}

async fn shop(db: &Db) -> Shop {
    schema(db).await;
    let mut customers = vec![
        Customer {
            id: None,
            name: "ada".into(),
        },
        Customer {
            id: None,
            name: "bob".into(),
        },
    ];
    Customer::insert_many(db, &mut customers).await.unwrap();
    let (ada, bob) = (customers[0].clone(), customers[1].clone());
    let mut orders = vec![
        Order {
            id: None,
            customer_id: ada.id.unwrap(),
            reference: "A1".into(),
        },
        Order {
            id: None,
            customer_id: ada.id.unwrap(),
            reference: "A2".into(),
        },
        Order {
            id: None,
            customer_id: bob.id.unwrap(),
            reference: "B1".into(),
        },
    ];
    Order::insert_many(db, &mut orders).await.unwrap();
    let mut lines = Vec::new();
    for (order, products) in orders.iter().zip([&["tea", "cake"][..], &["toast"], &[]]) {
        for product in products {
            lines.push(OrderLine {
                id: None,
                order_id: order.id.unwrap(),
                product: (*product).into(),
            });
        }
    }
    OrderLine::insert_many(db, &mut lines).await.unwrap();
    let mut invoices = vec![Invoice {
        id: None,
        order_id: orders[0].id,
        number: "INV-1".into(),
    }];
    Invoice::insert_many(db, &mut invoices).await.unwrap();
    take_log();
    Shop { ada, bob, orders }
}

fn products(lines: &[OrderLine]) -> Vec<&str> {
    lines.iter().map(|l| l.product.as_str()).collect()
}

#[tokio::test]
async fn relations_load_one_way_and_the_other() {
    each_backend(|db| async move {
        let Shop { ada, orders, .. } = shop(&db).await;
        let a1 = &orders[0];
        assert_eq!(products(&a1.lines(&db).await.unwrap()), ["tea", "cake"]);
        assert_eq!(a1.invoice(&db).await.unwrap().unwrap().number, "INV-1");
        assert!(orders[1].invoice(&db).await.unwrap().is_none());
        let tea = &a1.lines(&db).await.unwrap()[0];
        assert_eq!(tea.order(&db).await.unwrap().as_ref(), Some(a1));
        assert_eq!(a1.customer(&db).await.unwrap().as_ref(), Some(&ada));
        assert_eq!(ada.orders(&db).await.unwrap().len(), 2);
        // The relation as a query to refine.
        let cake = Order::LINES
            .query(a1)
            .filter(OrderLine::PRODUCT.like("c%"))
            .one(&db)
            .await
            .unwrap();
        assert_eq!(cake.product, "cake");
        let mut tx = db.begin().await.unwrap();
        assert_eq!(a1.lines_in(&mut tx).await.unwrap().len(), 2);
        tx.commit().await.unwrap();
        assert_eq!(Order::LINES.on_delete_action(), OnDelete::Cascade);
    })
    .await;
}

#[tokio::test]
async fn eager_loading_reads_every_relation_in_one_query() {
    each_backend(|db| async move {
        let Shop { orders, .. } = shop(&db).await;
        let captured = capture();
        let lines = Order::LINES.load(&db, &orders).await.unwrap();
        let invoices = Order::INVOICE.load(&db, &orders).await.unwrap();
        let sql = captured.text();
        let selects = sql
            .lines()
            .filter(|l| l.contains("summary=\"SELECT"))
            .count();
        assert_eq!(selects, 2, "one query per relation, not per order: {sql}");
        let by_order: Vec<Vec<&str>> = lines.iter().map(|l| products(l)).collect();
        assert_eq!(by_order, [vec!["tea", "cake"], vec!["toast"], vec![]]);
        let numbers: Vec<Option<&str>> = invoices
            .iter()
            .map(|i| i.as_ref().map(|i| i.number.as_str()))
            .collect();
        assert_eq!(numbers, [Some("INV-1"), None, None]);

        let all_lines = OrderLine::query()
            .order_by(OrderLine::ID.asc())
            .all(&db)
            .await
            .unwrap();
        let captured = capture();
        let parents = OrderLine::ORDER.load(&db, &all_lines).await.unwrap();
        let sql = captured.text();
        assert_eq!(
            sql.lines()
                .filter(|l| l.contains("summary=\"SELECT"))
                .count(),
            1,
            "{sql}"
        );
        let references: Vec<&str> = parents
            .iter()
            .map(|o| o.as_ref().unwrap().reference.as_str())
            .collect();
        assert_eq!(references, ["A1", "A1", "A2"]);
    })
    .await;
}

#[tokio::test]
async fn deleting_a_parent_cascades_nullifies_and_restricts() {
    each_backend(|db| async move {
        let bus = EventBus::builder()
            .without_registered_handlers()
            .build()
            .unwrap();
        let recorder = Recorder::attach(&bus, "line.deleted").unwrap();
        let db = db.with_bus(bus.clone());
        let Shop { ada, bob, orders } = shop(&db).await;

        // Restrict (the default): a customer with orders is kept, and the
        // error names what refers to it.
        let error = ada.delete(&db).await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::Restricted {
                    dependent: "Order",
                    count: 2,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error.to_string().contains("2 Order row(s) refer to it"),
            "{error}"
        );
        assert_eq!(Customer::query().count(&db).await.unwrap(), 2);

        // Cascade through the lines' hooks and events; nullify through the
        // invoice's update hooks; all in the order's transaction.
        orders[0].delete(&db).await.unwrap();
        let mut log = take_log();
        log.sort();
        assert_eq!(
            log,
            [
                "invoice.before_update:INV-1:[\"order_id\"]",
                "line.before_delete:cake:true",
                "line.before_delete:tea:true",
            ]
        );
        bus.wait_idle().await;
        assert_eq!(recorder.names(), ["line.deleted"; 2]);
        assert_eq!(OrderLine::query().count(&db).await.unwrap(), 1);
        let invoice = Invoice::query().one(&db).await.unwrap();
        assert_eq!(invoice.order_id, None);

        // A bulk delete of parents runs the relations for every row.
        Order::query()
            .filter(Order::CUSTOMER_ID.eq(ada.id.unwrap()))
            .delete_all(&db)
            .await
            .unwrap();
        assert_eq!(OrderLine::query().count(&db).await.unwrap(), 0);
        ada.delete(&db).await.unwrap();

        // A failing cascade rolls the parent's delete back too.
        let mut tx = db.begin().await.unwrap();
        let b1 = Order::query()
            .filter(Order::REFERENCE.eq("B1"))
            .one_in(&mut tx)
            .await
            .unwrap();
        OrderLine {
            id: None,
            order_id: b1.id.unwrap(),
            product: "jam".into(),
        }
        .save_in(&mut tx)
        .await
        .unwrap();
        b1.delete_in(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(Order::query().count(&db).await.unwrap(), 1);
        assert!(bob.delete(&db).await.is_err(), "bob still has B1");
        take_log();
    })
    .await;
}

#[tokio::test]
async fn create_table_adds_the_foreign_keys() {
    each_backend(|db| async move {
        shop(&db).await;
        // A row that refers to no order is refused by the database.
        let mut orphan = OrderLine {
            id: None,
            order_id: 987_654,
            product: "ghost".into(),
        };
        let error = orphan.save(&db).await.unwrap_err();
        let Error::ForeignKeyViolation {
            model, constraint, ..
        } = &error
        else {
            panic!("expected a foreign-key violation, got {error:?}");
        };
        assert_eq!(*model, "OrderLine");
        assert!(!constraint.is_empty(), "{error}");
        assert!(orphan.id.is_none());
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(
    table = "rel_categories",
    has_many(
        Category,
        foreign_key = "parent_id",
        name = "children",
        on_delete = "cascade"
    )
)]
struct Category {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(belongs_to = Category)]
    parent_id: Option<i64>,
    depth: i64,
}

#[hooks]
impl Category {
    #[after_delete]
    fn gone(&self) {
        log(format!("category.deleted:{}", self.depth));
    }
}

#[tokio::test]
async fn a_cascade_runs_down_a_tree_of_one_model_as_deep_as_it_goes() {
    each_backend(|db| async move {
        db.drop_table::<Category>().await.unwrap();
        db.create_table::<Category>().await.unwrap();
        let mut parent: Option<i64> = None;
        let mut root = None;
        for depth in 0..20 {
            let mut category = Category {
                id: None,
                parent_id: parent,
                depth,
            };
            category.save(&db).await.unwrap();
            parent = category.id;
            root.get_or_insert(category);
        }
        let root = root.unwrap();
        let leaf = Category::query()
            .filter(Category::DEPTH.eq(19))
            .one(&db)
            .await
            .unwrap();
        assert_eq!(leaf.parent(&db).await.unwrap().unwrap().depth, 18);
        assert_eq!(root.children(&db).await.unwrap().len(), 1);
        take_log();
        root.delete(&db).await.unwrap();
        assert_eq!(Category::query().count(&db).await.unwrap(), 0);
        let log = take_log();
        assert_eq!(log.len(), 20, "every level's hooks ran: {log:?}");
        assert_eq!(
            log.first().map(String::as_str),
            Some("category.deleted:19"),
            "leaves first"
        );
    })
    .await;
}

#[tokio::test]
async fn the_ddl_of_every_model_puts_parents_first_and_runs() {
    each_backend(|db| async move {
        let ddl = earn::create_tables_sql(db.dialect()).unwrap();
        let at = |table: &str| {
            ddl.find(&format!(
                "CREATE TABLE IF NOT EXISTS {}",
                quoted(&db, table)
            ))
            .unwrap_or_else(|| panic!("{table} missing from:\n{ddl}"))
        };
        assert!(at("rel_customers") < at("rel_orders"), "{ddl}");
        assert!(at("rel_orders") < at("rel_order_lines"), "{ddl}");
        assert!(at("rel_orders") < at("rel_invoices"), "{ddl}");
        assert_eq!(
            Order::create_table_sql(db.dialect()).unwrap(),
            ddl[at("rel_orders")..].split(";\n").next().unwrap()
        );
        // Dropped children first, then the whole DDL run as one script.
        for drop in [
            "rel_invoices",
            "rel_order_lines",
            "rel_orders",
            "rel_customers",
            "rel_categories",
        ] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {}", quoted(&db, drop)))
                .await
                .unwrap();
        }
        db.execute_unprepared(&ddl).await.unwrap();
        let Shop { orders, .. } = shop(&db).await;
        assert_eq!(orders[0].lines(&db).await.unwrap().len(), 2);
    })
    .await;
}

fn quoted(db: &Db, name: &str) -> String {
    match db.dialect() {
        earn::Dialect::Postgres => format!("\"{name}\""),
        _ => format!("`{name}`"),
    }
}
