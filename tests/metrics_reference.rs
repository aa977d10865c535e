//! `docs/metrics.md` lists every metric earn records, no more and no less:
//! checked against the `counter!`, `gauge!` and `histogram!` calls in the
//! crates' sources, and against what a recorder sees while a save, an emit,
//! a retried publish and dead letters run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use earn::prelude::*;
use earn::{Outbox, OutboxRelay, RetryPolicy};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

const REFERENCE: &str = include_str!("../docs/metrics.md");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Counter, Kind::Gauge, Kind::Histogram];

    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A label of a row: its values when the page enumerates them, `None` when
/// it describes them in words (the stream's key).
type Labels = BTreeMap<String, Option<BTreeSet<String>>>;

/// One row of the page's table.
#[derive(Debug)]
struct Row {
    kind: Kind,
    labels: Labels,
}

/// The table of `docs/metrics.md`, by metric name.
fn reference() -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for line in REFERENCE.lines().filter(|l| l.starts_with("| `earn_")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 5, "five columns: {line}");
        let name = cells[0].trim_matches('`').to_owned();
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == cells[1])
            .unwrap_or_else(|| panic!("{name}: unknown kind {:?}", cells[1]));
        assert!(!cells[2].is_empty(), "{name}: no unit");
        assert!(!cells[4].is_empty(), "{name}: no description");
        let labels = if cells[3] == "none" {
            Labels::new()
        } else {
            cells[3].split(';').map(label).collect()
        };
        let row = Row { kind, labels };
        assert!(rows.insert(name.clone(), row).is_none(), "{name} twice");
    }
    assert!(!rows.is_empty(), "no row found in docs/metrics.md");
    rows
}

/// "`outcome`: `ok`, `error`" or "`stream`: the stream's key, …".
fn label(cell: &str) -> (String, Option<BTreeSet<String>>) {
    let (key, values) = cell
        .split_once(':')
        .unwrap_or_else(|| panic!("`key`: values, in {cell:?}"));
    let values: Vec<&str> = values.split(',').map(str::trim).collect();
    let enumerated = values
        .iter()
        .all(|v| v.len() > 2 && v.starts_with('`') && v.ends_with('`'));
    let values = enumerated.then(|| {
        values
            .iter()
            .map(|v| v.trim_matches('`').to_owned())
            .collect()
    });
    (key.trim().trim_matches('`').to_owned(), values)
}

/// A `counter!` / `gauge!` / `histogram!` call in a source file.
#[derive(Debug)]
struct CallSite {
    kind: Kind,
    /// `None`: not a string literal.
    name: Option<String>,
    /// Label keys (`None`: not a literal) and literal values.
    labels: Vec<(Option<String>, Option<String>)>,
    place: String,
}

/// The `.rs` files under `src/` of the facade and of every crate beside it.
fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src")];
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            dirs.push(dir.join("src"));
        }
    }
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("earn-core/src/bus/dispatch.rs")),
        "the crates' sources were not found under {}",
        root.display()
    );
    files
}

fn call_sites() -> Vec<CallSite> {
    let mut sites = Vec::new();
    for file in sources() {
        let text = std::fs::read_to_string(&file).unwrap();
        for kind in Kind::ALL {
            let needle = format!("{}!", kind.as_str());
            for (at, _) in text.match_indices(&needle) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // describe_counter!, …
                }
                let line = text[..at].lines().count();
                let place = format!("{}:{line}", file.display());
                if let Some(site) = call_site(kind, &text[at + needle.len()..], place) {
                    sites.push(site);
                }
            }
        }
    }
    sites
}

/// Reads the arguments of one macro call: `("name", "key" => "value", …)`.
fn call_site(kind: Kind, rest: &str, place: String) -> Option<CallSite> {
    let args = rest.trim_start().strip_prefix('(')?;
    let mut depth = 1;
    let mut in_string = false;
    let end = args.char_indices().find_map(|(i, c)| {
        match c {
            '"' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => depth -= 1,
            _ => {}
        }
        (depth == 0).then_some(i)
    })?;
    let args = &args[..end];
    let name = string_at(args.trim_start());
    let mut labels = Vec::new();
    let mut parts = args.split("=>");
    let mut key_side = parts.next().unwrap_or_default();
    for value_side in parts {
        let key = key_side.trim_end();
        let key = key
            .strip_suffix('"')
            .and_then(|k| k.rfind('"').map(|q| k[q + 1..].to_owned()));
        labels.push((key, string_at(value_side.trim_start())));
        key_side = value_side;
    }
    Some(CallSite {
        kind,
        name,
        labels,
        place,
    })
}

/// The string literal `text` starts with.
fn string_at(text: &str) -> Option<String> {
    let text = text.strip_prefix('"')?;
    Some(text[..text.find('"')?].to_owned())
}

#[test]
fn every_metric_in_the_code_is_in_the_reference_and_back() {
    let rows = reference();
    let sites = call_sites();
    let mut in_code: BTreeMap<String, Vec<&CallSite>> = BTreeMap::new();
    for site in &sites {
        let name = site.name.as_ref().unwrap_or_else(|| {
            panic!(
                "{}: a metric name that is not a literal cannot be listed",
                site.place
            )
        });
        assert!(name.starts_with("earn_"), "{}: {name}", site.place);
        in_code.entry(name.clone()).or_default().push(site);
    }

    let undocumented: Vec<&String> = in_code.keys().filter(|n| !rows.contains_key(*n)).collect();
    let unknown: Vec<&String> = rows.keys().filter(|n| !in_code.contains_key(*n)).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "recorded but not in docs/metrics.md: {undocumented:?}; \
         in docs/metrics.md but recorded nowhere: {unknown:?}"
    );

    for (name, sites) in &in_code {
        let row = &rows[name];
        let mut values: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for site in sites {
            assert_eq!(
                site.kind.as_str(),
                row.kind.as_str(),
                "{}: {name}",
                site.place
            );
            let keys: BTreeSet<&str> = site
                .labels
                .iter()
                .map(|(key, _)| {
                    key.as_deref().unwrap_or_else(|| {
                        panic!(
                            "{}: {name} has a label key that is not a literal",
                            site.place
                        )
                    })
                })
                .collect();
            let listed: BTreeSet<&str> = row.labels.keys().map(String::as_str).collect();
            assert_eq!(keys, listed, "{}: the labels of {name}", site.place);
            for (key, value) in &site.labels {
                let key = key.as_deref().unwrap_or_default();
                if row.labels[key].is_none() {
                    continue;
                }
                let value = value.clone().unwrap_or_else(|| {
                    panic!(
                        "{}: {name}{{{key}}} is listed with fixed values but set from an expression",
                        site.place
                    )
                });
                values.entry(key).or_default().insert(value);
            }
        }
        for (key, listed) in &row.labels {
            if let Some(listed) = listed {
                assert_eq!(
                    values.get(key.as_str()),
                    Some(listed),
                    "the values of {name}{{{key}}} in the code and in docs/metrics.md"
                );
            }
        }
    }
}

/// A metric as a recorder saw it registered.
type Sample = (Kind, String, Vec<(String, String)>);

static SEEN: Mutex<BTreeSet<Sample>> = Mutex::new(BTreeSet::new());

/// Notes every metric registered; records no values.
struct Seen;

impl Seen {
    fn note(kind: Kind, key: &Key) {
        let labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        SEEN.lock()
            .unwrap()
            .insert((kind, key.name().to_owned(), labels));
    }
}

impl Recorder for Seen {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Seen::note(Kind::Counter, key);
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Seen::note(Kind::Gauge, key);
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Seen::note(Kind::Histogram, key);
        Histogram::noop()
    }
}

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "metered_items", events = "item")]
struct Item {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[hooks]
impl Item {
    #[before_save]
    fn trimmed(&mut self) {
        self.name = self.name.trim().to_owned();
    }
}

fn panics(_: &Event) {
    panic!("a handler that panics, on purpose");
}

/// Every metric of the bus and of the database layer is recorded; the Redis
/// transport's need a server (`earn-redis/tests/metrics.rs`).
#[tokio::test]
async fn what_a_save_an_emit_a_retry_and_dead_letters_record_is_in_the_reference() {
    metrics::set_global_recorder(Seen).expect("the only recorder of this test binary");
    let bus = EventBus::builder()
        .without_registered_handlers()
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            jitter: 0.0,
        })
        .handler_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    bus.subscribe("item.*", 0, |_: Event| async {}).unwrap();
    bus.subscribe_sync("probe.panic", 0, panics).unwrap();
    bus.subscribe("probe.slow", 0, |_: Event| {
        tokio::time::sleep(Duration::from_secs(5))
    })
    .unwrap();
    bus.subscribe_sync("probe.failing", 0, |_: &Event| {
        Err::<(), _>(HandlerError::msg("always"))
    })
    .unwrap();

    // A save with hooks publishes item.created after the commit.
    let db = Db::connect("sqlite::memory:")
        .await
        .unwrap()
        .with_bus(bus.clone());
    db.create_table::<Item>().await.unwrap();
    let mut item = Item {
        id: None,
        name: " tea ".into(),
    };
    item.save(&db).await.unwrap();
    assert_eq!(item.name, "tea", "the hook ran");

    bus.emit(Event::new("probe.panic", &1).unwrap()).await;
    bus.emit(Event::new("probe.slow", &1).unwrap()).await;
    // Retried once, then dead-lettered.
    bus.publish(Event::new("probe.failing", &1).unwrap())
        .await
        .unwrap();
    bus.wait_idle().await;
    assert_eq!(
        earn::DeadLetters::count(
            &bus.dead_letter_source(),
            &earn::DeadLetterFilter::default()
        )
        .await
        .unwrap(),
        1
    );

    // A row the relay cannot read moves to earn_outbox_dead.
    let outbox = Db::connect("sqlite::memory:")
        .await
        .unwrap()
        .with_outbox(Outbox::default());
    outbox.install_outbox().await.unwrap();
    outbox
        .execute_unprepared(
            "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) \
             VALUES ('not-json', 'item.created', '{oops', 0, 0)",
        )
        .await
        .unwrap();
    OutboxRelay::new(outbox.clone(), bus.clone())
        .run_once()
        .await
        .unwrap();
    assert_eq!(
        earn::DeadLetters::count(
            &outbox.outbox_dead_letters(),
            &earn::DeadLetterFilter::default()
        )
        .await
        .unwrap(),
        1
    );

    // A committed event that a shut-down bus refuses is lost, and counted.
    let closed = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    closed.shutdown(Duration::from_secs(1)).await;
    let lost = Db::connect("sqlite::memory:")
        .await
        .unwrap()
        .with_bus(closed);
    lost.create_table::<Item>().await.unwrap();
    Item {
        id: None,
        name: "lost".into(),
    }
    .save(&lost)
    .await
    .unwrap();
    bus.shutdown(Duration::from_secs(1)).await;

    let rows = reference();
    let seen = SEEN.lock().unwrap().clone();
    let mut values: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for (kind, name, labels) in &seen {
        let row = rows
            .get(name)
            .unwrap_or_else(|| panic!("{name} was recorded but is not in docs/metrics.md"));
        assert_eq!(kind, &row.kind, "{name}");
        let keys: BTreeSet<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        let listed: BTreeSet<&str> = row.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, listed, "the labels of {name}");
        for (key, value) in labels {
            if let Some(listed) = &row.labels[key] {
                assert!(listed.contains(value), "{name}{{{key}={value}}}");
            }
            values.entry((name, key)).or_default().insert(value);
        }
    }
    // The brokers' counters need a server: earn-redis/tests/metrics.rs and
    // earn-nats/tests/metrics.rs check that they are recorded.
    let in_process =
        |name: &str| !name.starts_with("earn_redis_") && !name.starts_with("earn_nats_");
    for (name, row) in rows.iter().filter(|(n, _)| in_process(n)) {
        assert!(
            seen.iter().any(|(_, seen, _)| seen == name),
            "{name} was not recorded; seen: {seen:?}"
        );
        for (key, listed) in &row.labels {
            if let Some(listed) = listed {
                let seen: BTreeSet<&str> = values
                    .get(&(name.as_str(), key.as_str()))
                    .cloned()
                    .unwrap_or_default();
                let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
                assert_eq!(seen, listed, "the values of {name}{{{key}}} recorded");
            }
        }
    }
}
