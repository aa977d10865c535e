//! Typed queries: filters, order, limit and offset, `first` / `one` /
//! `count` / `exists` / `paginate` / `stream`, their `_in` forms, and SQL
//! written by hand, the same on every database, `after_load` on every row.
//! A property test checks random filters against filtering `all()` in
//! memory with SQL's three-valued logic.

mod common;

use std::sync::Arc;

use common::{each_backend, fresh};
use earn::prelude::*;
use earn::{Error, Filter};
use futures_util::TryStreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "q_people")]
struct Person {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    age: i64,
    nick: Option<String>,
    #[model(skip)]
    loaded: bool,
}

#[hooks]
impl Person {
    #[after_load]
    fn mark_loaded(&mut self) {
        self.loaded = true;
    }
}

fn person(name: &str, age: i64, nick: Option<&str>) -> Person {
    Person {
        id: None,
        name: name.into(),
        age,
        nick: nick.map(Into::into),
        loaded: false,
    }
}

async fn people(db: &Db) -> Vec<Person> {
    fresh::<Person>(db).await;
    let mut rows = vec![
        person("ada", 36, Some("countess")),
        person("bob", 17, None),
        person("cy", 52, Some("cy")),
        person("dee", 17, Some("d")),
        person("eve", 29, None),
    ];
    Person::insert_many(db, &mut rows).await.unwrap();
    rows
}

fn names(rows: &[Person]) -> Vec<&str> {
    rows.iter().map(|p| p.name.as_str()).collect()
}

#[tokio::test]
async fn filters_compare_columns_with_bound_values() {
    each_backend(|db| async move {
        people(&db).await;
        let by = async |filter: Filter<Person>| {
            let rows = Person::query()
                .filter(filter)
                .order_by(Person::ID.asc())
                .all(&db)
                .await
                .unwrap();
            assert!(rows.iter().all(|p| p.loaded), "after_load ran on every row");
            rows.iter().map(|p| p.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(by(Person::AGE.eq(17)).await, ["bob", "dee"]);
        assert_eq!(by(Person::AGE.ne(17)).await, ["ada", "cy", "eve"]);
        assert_eq!(by(Person::AGE.lt(29)).await, ["bob", "dee"]);
        assert_eq!(by(Person::AGE.le(29)).await, ["bob", "dee", "eve"]);
        assert_eq!(by(Person::AGE.gt(36)).await, ["cy"]);
        assert_eq!(by(Person::AGE.ge(36)).await, ["ada", "cy"]);
        assert_eq!(by(Person::AGE.between(18, 40)).await, ["ada", "eve"]);
        assert_eq!(
            by(Person::NAME.is_in(["eve", "ada", "zed"])).await,
            ["ada", "eve"]
        );
        assert!(
            by(Person::NAME.is_in(Vec::<String>::new()))
                .await
                .is_empty()
        );
        assert_eq!(by(Person::NAME.like("%e%")).await, ["dee", "eve"]);
        assert_eq!(by(Person::NICK.is_null()).await, ["bob", "eve"]);
        assert_eq!(by(Person::NICK.is_not_null()).await, ["ada", "cy", "dee"]);
        // `Option<String>` columns compare with plain strings.
        assert_eq!(by(Person::NICK.eq("cy")).await, ["cy"]);
        assert_eq!(
            by(Person::AGE.eq(17).and(Person::NICK.is_null())).await,
            ["bob"]
        );
        assert_eq!(
            by(Person::AGE.gt(50) | Person::NAME.eq("ada")).await,
            ["ada", "cy"]
        );
        assert_eq!(by(!Person::AGE.eq(17)).await, ["ada", "cy", "eve"]);
        // SQL's NOT: a comparison with NULL matches neither way.
        assert_eq!(by(!Person::NICK.eq("d")).await, ["ada", "cy"]);
        assert_eq!(by(Filter::any([])).await, Vec::<String>::new());
        assert_eq!(by(Filter::all([])).await.len(), 5);
        // A value with quotes and SQL in it is bound, never spliced.
        assert!(by(Person::NAME.eq("x' OR '1'='1")).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn order_limit_and_offset() {
    each_backend(|db| async move {
        people(&db).await;
        let rows = Person::query()
            .order_by(Person::AGE.desc())
            .order_by(Person::NAME.asc())
            .all(&db)
            .await
            .unwrap();
        assert_eq!(names(&rows), ["cy", "ada", "eve", "bob", "dee"]);
        let rows = Person::query()
            .order_by(Person::AGE.asc())
            .order_by(Person::NAME.desc())
            .limit(2)
            .offset(1)
            .all(&db)
            .await
            .unwrap();
        assert_eq!(names(&rows), ["bob", "eve"]);
        // An offset without a limit.
        let rows = Person::query()
            .order_by(Person::ID.asc())
            .offset(3)
            .all(&db)
            .await
            .unwrap();
        assert_eq!(names(&rows), ["dee", "eve"]);
    })
    .await;
}

#[tokio::test]
async fn first_one_count_exists_and_paginate() {
    each_backend(|db| async move {
        people(&db).await;
        let teen = Person::query().filter(Person::AGE.eq(17));
        let first = teen.first(&db).await.unwrap().unwrap();
        assert_eq!(first.name, "bob", "first orders by key without an order");
        assert!(first.loaded);
        assert!(
            Person::query()
                .filter(Person::AGE.gt(99))
                .first(&db)
                .await
                .unwrap()
                .is_none()
        );

        let cy = Person::query()
            .filter(Person::NAME.eq("cy"))
            .one(&db)
            .await
            .unwrap();
        assert!(cy.loaded && cy.age == 52);
        let none = Person::query()
            .filter(Person::NAME.eq("zed"))
            .one(&db)
            .await
            .unwrap_err();
        assert!(
            matches!(
                none,
                Error::NoRow {
                    model: "Person",
                    ..
                }
            ),
            "{none}"
        );
        assert!(none.to_string().contains("found none"), "{none}");
        let many = teen.one(&db).await.unwrap_err();
        assert!(
            matches!(
                many,
                Error::TooManyRows {
                    model: "Person",
                    ..
                }
            ),
            "{many}"
        );
        assert!(
            many.to_string().contains("`age` = ?"),
            "the message names the filter: {many}"
        );

        assert_eq!(teen.count(&db).await.unwrap(), 2);
        assert_eq!(Person::query().count(&db).await.unwrap(), 5);
        assert_eq!(Person::query().limit(3).count(&db).await.unwrap(), 3);
        assert!(teen.exists(&db).await.unwrap());
        assert!(
            !Person::query()
                .filter(Person::AGE.lt(0))
                .exists(&db)
                .await
                .unwrap()
        );

        let ordered = Person::query().order_by(Person::NAME.asc());
        let page = ordered.paginate(&db, 2, 2).await.unwrap();
        assert_eq!(names(&page.items), ["cy", "dee"]);
        assert_eq!(
            (page.total, page.page, page.per_page, page.pages()),
            (5, 2, 2, 3)
        );
        let last = ordered.paginate(&db, 3, 2).await.unwrap();
        assert_eq!(names(&last.items), ["eve"]);
        assert!(ordered.paginate(&db, 4, 2).await.unwrap().items.is_empty());
        let zero = ordered.paginate(&db, 0, 2).await.unwrap_err();
        assert!(matches!(zero, Error::InvalidQuery { .. }), "{zero}");
    })
    .await;
}

#[tokio::test]
async fn the_in_forms_see_the_transactions_own_writes() {
    each_backend(|db| async move {
        people(&db).await;
        let mut tx = db.begin().await.unwrap();
        person("fay", 17, None).save_in(&mut tx).await.unwrap();
        let teen = Person::query()
            .filter(Person::AGE.eq(17))
            .order_by(Person::ID.asc());
        assert_eq!(
            names(&teen.all_in(&mut tx).await.unwrap()),
            ["bob", "dee", "fay"]
        );
        assert_eq!(teen.count_in(&mut tx).await.unwrap(), 3);
        assert!(teen.exists_in(&mut tx).await.unwrap());
        assert_eq!(teen.first_in(&mut tx).await.unwrap().unwrap().name, "bob");
        let fay = Person::query()
            .filter(Person::NAME.eq("fay"))
            .one_in(&mut tx)
            .await
            .unwrap();
        assert!(fay.loaded);
        let page = teen.paginate_in(&mut tx, 2, 2).await.unwrap();
        assert_eq!((names(&page.items), page.total), (vec!["fay"], 3));
        let streamed: Vec<Person> = teen.stream_in(&mut tx).try_collect().await.unwrap();
        assert_eq!(names(&streamed), ["bob", "dee", "fay"]);
        tx.rollback().await.unwrap();
        assert_eq!(teen.count(&db).await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_stream_reads_rows_as_they_come_and_stops_when_dropped() {
    each_backend(|db| async move {
        fresh::<Person>(&db).await;
        let mut rows: Vec<Person> = (0..500)
            .map(|i| person(&format!("p{i}"), i, None))
            .collect();
        Person::insert_many(&db, &mut rows).await.unwrap();
        let query = Person::query().order_by(Person::AGE.asc());
        let mut stream = query.stream(&db);
        let mut seen = 0;
        while let Some(row) = stream.try_next().await.unwrap() {
            assert_eq!(row.age, seen);
            assert!(row.loaded);
            seen += 1;
        }
        assert_eq!(seen, 500);
        // Dropped after one row: the connection goes back to the pool (an
        // in-memory SQLite pool has exactly one).
        let mut partial = query.stream(&db);
        assert!(partial.try_next().await.unwrap().is_some());
        drop(partial);
        assert_eq!(query.count(&db).await.unwrap(), 500);
    })
    .await;
}

#[tokio::test]
async fn sql_written_by_hand_decodes_by_name_and_runs_after_load() {
    each_backend(|db| async move {
        people(&db).await;
        let placeholder = if db.dialect() == earn::Dialect::Postgres { "$1" } else { "?" };
        // Columns in another order than the model's, and an extra one.
        let sql = format!(
            "SELECT nick, age, 1 AS extra, name, id FROM q_people WHERE age > {placeholder} ORDER BY id"
        );
        let rows = Person::raw(sql.clone()).bind(30_i64).all(&db).await.unwrap();
        assert_eq!(names(&rows), ["ada", "cy"]);
        assert!(rows.iter().all(|p| p.loaded));
        let first = Person::raw(sql).bind(40_i64).first(&db).await.unwrap().unwrap();
        assert_eq!((first.name.as_str(), first.loaded), ("cy", true));

        let missing = Person::raw("SELECT id, name FROM q_people").all(&db).await.unwrap_err();
        assert!(missing.to_string().contains("age"), "names the missing column: {missing}");

        // The models are `sqlx::FromRow` for sqlx's own queries.
        if let Some(pool) = db.as_sqlite() {
            let row: Person = earn::sqlx::query_as("SELECT * FROM q_people WHERE name = 'bob'")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!((row.age, row.loaded), (17, false));
        }
    })
    .await;
}

// ---- property: random filters agree with filtering `all()` in memory ----

#[derive(Debug, Clone)]
enum Cond {
    Age(&'static str, i64),
    AgeBetween(i64, i64),
    AgeIn(Vec<i64>),
    Name(&'static str, String),
    NameLike(&'static str),
    NickNull(bool),
    NickEq(String),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

fn cond() -> impl Strategy<Value = Cond> {
    let words = prop::sample::select(vec!["a", "b", "ab", "ba", "abc", "c"]);
    let leaf = prop_oneof![
        (
            prop::sample::select(vec!["eq", "ne", "lt", "le", "gt", "ge"]),
            0..6_i64
        )
            .prop_map(|(op, v)| Cond::Age(op, v)),
        (0..6_i64, 0..6_i64).prop_map(|(a, b)| Cond::AgeBetween(a, b)),
        prop::collection::vec(0..6_i64, 0..4).prop_map(Cond::AgeIn),
        (
            prop::sample::select(vec!["eq", "ne", "lt", "gt"]),
            words.clone()
        )
            .prop_map(|(op, w)| Cond::Name(op, w.to_owned())),
        prop::sample::select(vec!["a%", "%b", "_b", "%", "a_c", "%a%"]).prop_map(Cond::NameLike),
        any::<bool>().prop_map(Cond::NickNull),
        words.prop_map(|w| Cond::NickEq(w.to_owned())),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Cond::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Cond::Or),
            inner.prop_map(|c| Cond::Not(Box::new(c))),
        ]
    })
}

fn filter(cond: &Cond) -> Filter<Person> {
    match cond {
        Cond::Age(op, v) => match *op {
            "eq" => Person::AGE.eq(*v),
            "ne" => Person::AGE.ne(*v),
            "lt" => Person::AGE.lt(*v),
            "le" => Person::AGE.le(*v),
            "gt" => Person::AGE.gt(*v),
            _ => Person::AGE.ge(*v),
        },
        Cond::AgeBetween(a, b) => Person::AGE.between(*a, *b),
        Cond::AgeIn(values) => Person::AGE.is_in(values.clone()),
        Cond::Name(op, w) => match *op {
            "eq" => Person::NAME.eq(w.as_str()),
            "ne" => Person::NAME.ne(w.as_str()),
            "lt" => Person::NAME.lt(w.as_str()),
            _ => Person::NAME.gt(w.as_str()),
        },
        Cond::NameLike(pattern) => Person::NAME.like(*pattern),
        Cond::NickNull(true) => Person::NICK.is_null(),
        Cond::NickNull(false) => Person::NICK.is_not_null(),
        Cond::NickEq(w) => Person::NICK.eq(w.as_str()),
        Cond::And(parts) => Filter::all(parts.iter().map(filter)),
        Cond::Or(parts) => Filter::any(parts.iter().map(filter)),
        Cond::Not(inner) => !filter(inner),
    }
}

fn like(text: &str, pattern: &str) -> bool {
    match (pattern.chars().next(), text.chars().next()) {
        (None, _) => text.is_empty(),
        (Some('%'), _) => (0..=text.len()).any(|i| like(&text[i..], &pattern[1..])),
        (Some('_'), Some(c)) => like(&text[c.len_utf8()..], &pattern[1..]),
        (Some(p), Some(c)) if p == c => like(&text[c.len_utf8()..], &pattern[1..]),
        _ => false,
    }
}

/// SQL's three-valued logic: `None` is unknown (a comparison with NULL).
fn eval(cond: &Cond, p: &Person) -> Option<bool> {
    Some(match cond {
        Cond::Age(op, v) => match *op {
            "eq" => p.age == *v,
            "ne" => p.age != *v,
            "lt" => p.age < *v,
            "le" => p.age <= *v,
            "gt" => p.age > *v,
            _ => p.age >= *v,
        },
        Cond::AgeBetween(a, b) => *a <= p.age && p.age <= *b,
        Cond::AgeIn(values) => values.contains(&p.age),
        Cond::Name(op, w) => match *op {
            "eq" => p.name == *w,
            "ne" => p.name != *w,
            "lt" => p.name < *w,
            _ => p.name > *w,
        },
        Cond::NameLike(pattern) => like(&p.name, pattern),
        Cond::NickNull(null) => p.nick.is_none() == *null,
        Cond::NickEq(w) => p.nick.as_ref()? == w,
        Cond::And(parts) => {
            let values: Vec<_> = parts.iter().map(|c| eval(c, p)).collect();
            if values.contains(&Some(false)) {
                false
            } else if values.contains(&None) {
                return None;
            } else {
                true
            }
        }
        Cond::Or(parts) => {
            let values: Vec<_> = parts.iter().map(|c| eval(c, p)).collect();
            if values.contains(&Some(true)) {
                true
            } else if values.contains(&None) {
                return None;
            } else {
                false
            }
        }
        Cond::Not(inner) => !eval(inner, p)?,
    })
}

fn cases() -> u32 {
    std::env::var("EARN_QUERY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(96)
}

#[test]
fn random_filters_return_the_rows_filtering_all_in_memory_returns() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _serial = runtime.block_on(common::serial());
    for (name, url) in common::backends() {
        eprintln!("--- on {name}");
        let (db, all) = runtime.block_on(async {
            let db = common::connect(name, &url).await;
            fresh::<Person>(&db).await;
            let words = ["a", "b", "ab", "ba", "abc", "c"];
            let mut rows: Vec<Person> = (0..48)
                .map(|i: usize| {
                    let nick = (!i.is_multiple_of(3)).then(|| words[(i * 7) % words.len()]);
                    person(words[i % words.len()], (i % 6) as i64, nick)
                })
                .collect();
            Person::insert_many(&db, &mut rows).await.unwrap();
            let all = Person::all(&db).await.unwrap();
            (db, all)
        });
        let db = Arc::new(db);
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let window = (
            proptest::option::of(0..10_u64),
            proptest::option::of(0..10_u64),
            any::<bool>(),
        );
        let result = runner.run(&(cond(), window), |(cond, (limit, offset, descending))| {
            let mut expected: Vec<&Person> = all
                .iter()
                .filter(|p| eval(&cond, p) == Some(true))
                .collect();
            expected.sort_by_key(|p| (p.age, p.id));
            if descending {
                expected.sort_by_key(|p| (std::cmp::Reverse(p.age), p.id));
            }
            let expected: Vec<i64> = expected
                .into_iter()
                .skip(offset.unwrap_or(0) as usize)
                .take(limit.map_or(usize::MAX, |l| l as usize))
                .filter_map(|p| p.id)
                .collect();
            let mut query = Person::query()
                .filter(filter(&cond))
                .order_by(if descending {
                    Person::AGE.desc()
                } else {
                    Person::AGE.asc()
                })
                .order_by(Person::ID.asc());
            if let Some(limit) = limit {
                query = query.limit(limit);
            }
            if let Some(offset) = offset {
                query = query.offset(offset);
            }
            let (found, count) = runtime.block_on(async {
                let rows = query.all(&db).await.unwrap();
                (rows, query.count(&db).await.unwrap())
            });
            let found: Vec<i64> = found.iter().filter_map(|p| p.id).collect();
            prop_assert_eq!(&found, &expected, "rows of {:?}", cond);
            prop_assert_eq!(count, expected.len() as u64);
            Ok(())
        });
        if let Err(failure) = result {
            panic!("on {name}: {failure}");
        }
    }
}
