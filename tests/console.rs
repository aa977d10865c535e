//! The web console, request by request: pages render under any prefix,
//! filters reach the stores, actions need the CSRF token and are refused
//! by a read-only console, retry and delete work, and user data is
//! escaped.

mod common;
#[path = "support/store.rs"]
mod store_support;

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use earn::admin::Admin;
use earn::console::{self, ConsoleOptions};
use earn::{Db, Event, EventBus};
use tower::ServiceExt as _;

/// A console over an SQLite outbox holding four dead letters (one not an
/// event, one with a hostile payload) and a bus, mounted under `/ops`.
async fn console(options: ConsoleOptions) -> (Router, Db) {
    let db = Db::connect(&common::sqlite_file("console")).await.unwrap();
    db.install_outbox().await.unwrap();
    let base = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 10_000;
    let rows = [
        (
            "conf-0",
            "conf.order.created",
            Some(serde_json::json!({"order": 1})),
        ),
        (
            "conf-1",
            "conf.order.paid",
            Some(serde_json::json!({"order": 2})),
        ),
        (
            "hostile",
            "conf.user.created",
            Some(serde_json::json!({"name": "<script>alert('pwned')</script>"})),
        ),
        ("broken", "<img src=x onerror=alert(1)>", None),
    ];
    for (i, (id, name, payload)) in rows.into_iter().enumerate() {
        let stored = match payload {
            Some(payload) => serde_json::to_string(&Event::new(name, &payload).unwrap()).unwrap(),
            None => "<b>not json</b>".to_owned(),
        };
        let quote = |text: &str| text.replace('\'', "''");
        db.execute_unprepared(&format!(
            "INSERT INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
             VALUES ('{id}', '{}', '{}', 'gave up after 3 claims', 3, {})",
            quote(name),
            quote(&stored),
            base + i as i64
        ))
        .await
        .unwrap();
    }
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    let admin = Admin::new().database(db.clone()).bus(bus);
    let app = Router::new().nest("/ops", console::router(admin, options));
    (app, db)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Posts a form; returns the status and the `Location` or the body.
async fn post(app: &Router, uri: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let response = app
        .clone()
        .oneshot(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body.join("&")))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    if let Some(location) = response.headers().get(header::LOCATION) {
        return (status, location.to_str().unwrap().to_owned());
    }
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token the page's forms carry.
fn token(html: &str) -> String {
    let start = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a token")
        + 19;
    html[start..start + 64].to_owned()
}

async fn dead_letters(db: &Db) -> u64 {
    earn::DeadLetters::count(
        &db.outbox_dead_letters(),
        &earn::DeadLetterFilter::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn every_page_renders_with_links_under_the_prefix() {
    let (app, _db) = console(ConsoleOptions::default()).await;
    for (uri, expect) in [
        ("/ops", "Dead letters per source"),
        ("/ops/live", "id=\"dead-letter-total\""),
        (
            "/ops/dead-letters",
            "4</strong> dead letter(s) in <code>outbox</code>",
        ),
        (
            "/ops/dead-letter?source=outbox&id=conf-1",
            "conf.order.paid",
        ),
        ("/ops/streams", "no Redis stream"),
        ("/ops/delayed", "Delayed events"),
        ("/ops/registry", "Event handlers"),
        (
            "/ops/dead-letters/confirm?action=delete&source=bus",
            "0</strong> dead letter(s) match",
        ),
    ] {
        let (status, html) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {html}");
        assert!(html.contains(expect), "{uri} lacks {expect}: {html}");
        assert!(
            !html.contains("href=\"/dead-letters"),
            "{uri}: a link outside /ops"
        );
    }
    let (_, dashboard) = get(&app, "/ops").await;
    assert!(
        dashboard.contains(r#"href="/ops/dead-letters?source=outbox""#),
        "{dashboard}"
    );
    assert!(
        dashboard.contains(r#"data-live="/ops/live""#),
        "{dashboard}"
    );
    assert!(dashboard.contains("<svg"), "the graph: {dashboard}");
    let (status, _) = get(&app, "/ops/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A proxy that strips the prefix: the links take the one configured.
    let admin = Admin::new();
    let app = console::router(admin, ConsoleOptions::default().base_path("/behind/proxy/"));
    let (_, html) = get(&app, "/").await;
    assert!(
        html.contains(r#"href="/behind/proxy/dead-letters""#),
        "{html}"
    );
}

#[tokio::test]
async fn filters_are_get_parameters_and_bad_ones_are_400() {
    let (app, _db) = console(ConsoleOptions::default()).await;
    let (status, html) = get(&app, "/ops/dead-letters?source=outbox&event=conf.order.**").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("conf.order.created") && html.contains("conf.order.paid"));
    assert!(!html.contains("conf.user.created"), "{html}");
    assert!(html.contains("2</strong> dead letter(s)"), "{html}");
    let (_, html) = get(&app, "/ops/dead-letters?source=outbox&older_than=1h").await;
    assert!(html.contains("0</strong> dead letter(s)"), "{html}");
    let (_, html) = get(&app, "/ops/dead-letters?source=outbox&older_than=1s").await;
    assert!(html.contains("4</strong> dead letter(s)"), "{html}");
    let (_, html) = get(&app, "/ops/dead-letters?source=outbox&handler=billing").await;
    assert!(html.contains("0</strong> dead letter(s)"), "{html}");
    let (_, html) = get(&app, "/ops/dead-letters?source=bus").await;
    assert!(
        html.contains("0</strong> dead letter(s) in <code>bus</code>"),
        "{html}"
    );

    let (_, paged) = get(&app, "/ops/dead-letters?source=outbox&event=conf.**&page=1").await;
    assert!(paged.contains("Page 1 of 1"), "{paged}");

    for (uri, says) in [
        ("/ops/dead-letters?event=*.paid", "prefix"),
        (
            "/ops/dead-letters?older_than=soon",
            "`older_than` takes an age",
        ),
        ("/ops/dead-letters?page=0", "`page` is a number from 1"),
        ("/ops/dead-letters?page=x", "`page` is a number from 1"),
        ("/ops/dead-letter?source=outbox", "`source` and `id`"),
        (
            "/ops/dead-letters/confirm?action=explode",
            "`retry` or `delete`",
        ),
    ] {
        let (status, html) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {html}");
        assert!(html.contains(says), "{uri}: {html}");
    }
    for uri in [
        "/ops/dead-letters?source=kafka",
        "/ops/dead-letter?source=outbox&id=nope",
    ] {
        let (status, html) = get(&app, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {html}");
    }
}

#[tokio::test]
async fn actions_need_the_consoles_csrf_token() {
    let (app, db) = console(ConsoleOptions::default()).await;
    let (_, html) = get(&app, "/ops/dead-letters").await;
    let good = token(&html);
    let form = |csrf: &'static str| vec![("csrf", csrf), ("source", "outbox"), ("id", "conf-0")];
    let (status, body) = post(&app, "/ops/dead-letter/delete", &form("")[1..]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("no CSRF token"), "{body}");
    let (status, body) = post(&app, "/ops/dead-letter/delete", &form("0123456789")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = post(
        &app,
        "/ops/dead-letters/delete",
        &[("csrf", "x"), ("confirm", "4")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another console's token is no good either.
    let (other, _) = console(ConsoleOptions::default()).await;
    let (_, other_html) = get(&other, "/ops/dead-letters").await;
    assert_ne!(token(&other_html), good);
    let form = [
        ("csrf", token(&other_html)),
        ("source", "outbox".into()),
        ("id", "conf-0".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = post(&app, "/ops/dead-letter/delete", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(dead_letters(&db).await, 4, "nothing was deleted");

    // A browser's cross-site request is refused even with the token.
    let response = app
        .clone()
        .oneshot(
            Request::post("/ops/dead-letter/delete")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("sec-fetch-site", "cross-site")
                .body(Body::from(format!("csrf={good}&source=outbox&id=conf-0")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(dead_letters(&db).await, 4);
}

#[tokio::test]
async fn retry_and_delete_one_then_all_matching_after_confirmation() {
    let (app, db) = console(ConsoleOptions::default()).await;
    let (_, html) = get(&app, "/ops/dead-letters").await;
    let csrf = token(&html);
    assert!(html.contains("Retry all matching"), "{html}");

    // Retry one: back in the outbox, gone from the dead letters.
    assert_eq!(db.outbox_backlog().await.unwrap(), 0);
    let (status, location) = post(
        &app,
        "/ops/dead-letter/retry",
        &[
            ("csrf", &csrf),
            ("source", "outbox"),
            ("id", "conf-0"),
            ("event", "conf.**"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(
        location,
        "/ops/dead-letters?source=outbox&event=conf.%2A%2A&done=retried&n=1"
    );
    assert_eq!(db.outbox_backlog().await.unwrap(), 1);
    assert_eq!(dead_letters(&db).await, 3);
    let (_, html) = get(&app, &location).await;
    assert!(
        html.contains("Sent back for delivery: 1 dead letter(s)."),
        "{html}"
    );
    assert!(!html.contains("conf.order.created"), "{html}");

    // Delete one.
    let (status, _) = post(
        &app,
        "/ops/dead-letter/delete",
        &[("csrf", &csrf), ("source", "outbox"), ("id", "broken")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(dead_letters(&db).await, 2);
    let (status, body) = post(
        &app,
        "/ops/dead-letter/delete",
        &[("csrf", &csrf), ("source", "outbox"), ("id", "broken")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Retry all matching: the confirmation page counts, a wrong count is
    // refused, the right one acts.
    let (status, html) = get(
        &app,
        "/ops/dead-letters/confirm?action=retry&source=outbox&event=conf.order.**",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("1</strong> dead letter(s) match"), "{html}");
    let bulk = |confirm: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("source", "outbox".to_owned()),
            ("event", "conf.order.**".to_owned()),
            ("confirm", confirm.to_owned()),
        ]
    };
    for wrong in ["", "2", "all"] {
        let form = bulk(wrong);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, html) = post(&app, "/ops/dead-letters/retry", &form).await;
        assert_eq!(status, StatusCode::CONFLICT, "{wrong}: {html}");
        assert!(html.contains("id=\"problem\""), "{html}");
    }
    assert_eq!(dead_letters(&db).await, 2);
    let form = bulk("1");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, location) = post(&app, "/ops/dead-letters/retry", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert!(location.ends_with("done=retried&n=1"), "{location}");
    assert_eq!(db.outbox_backlog().await.unwrap(), 2);
    assert_eq!(dead_letters(&db).await, 1);

    // Delete all (no filter): what is left.
    let (status, location) = post(
        &app,
        "/ops/dead-letters/delete",
        &[("csrf", &csrf), ("source", "outbox"), ("confirm", "1")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(dead_letters(&db).await, 0);
}

#[tokio::test]
async fn a_read_only_console_shows_no_buttons_and_refuses_actions() {
    let (app, db) = console(ConsoleOptions::default().read_only(true)).await;
    let (status, html) = get(&app, "/ops/dead-letters").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("read-only"));
    for button in [
        "<form method=\"post\"",
        "class=\"inline\"",
        "Retry all",
        "Delete all",
        "name=\"csrf\"",
    ] {
        assert!(!html.contains(button), "{button} in {html}");
    }
    let (_, detail) = get(&app, "/ops/dead-letter?source=outbox&id=conf-1").await;
    assert!(!detail.contains("method=\"post\""), "{detail}");
    // Even with a token of a console that may act, everything is refused.
    let (writable, _) = console(ConsoleOptions::default()).await;
    let (_, html) = get(&writable, "/ops/dead-letters").await;
    let csrf = token(&html);
    for (uri, form) in [
        (
            "/ops/dead-letter/retry",
            vec![
                ("csrf", csrf.as_str()),
                ("source", "outbox"),
                ("id", "conf-0"),
            ],
        ),
        (
            "/ops/dead-letter/delete",
            vec![
                ("csrf", csrf.as_str()),
                ("source", "outbox"),
                ("id", "conf-0"),
            ],
        ),
        (
            "/ops/dead-letters/retry",
            vec![
                ("csrf", csrf.as_str()),
                ("source", "outbox"),
                ("confirm", "4"),
            ],
        ),
        (
            "/ops/dead-letters/delete",
            vec![
                ("csrf", csrf.as_str()),
                ("source", "outbox"),
                ("confirm", "4"),
            ],
        ),
    ] {
        let (status, body) = post(&app, uri, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        assert!(body.contains("read-only"), "{body}");
    }
    let (status, _) = get(
        &app,
        "/ops/dead-letters/confirm?action=delete&source=outbox",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(dead_letters(&db).await, 4);
    assert_eq!(db.outbox_backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn user_data_is_escaped_everywhere() {
    let (app, _db) = console(ConsoleOptions::default()).await;
    for uri in [
        "/ops/dead-letters",
        "/ops/dead-letter?source=outbox&id=hostile",
        "/ops/dead-letter?source=outbox&id=broken",
        "/ops/dead-letters?source=outbox&handler=%3Cscript%3Ealert(2)%3C%2Fscript%3E",
    ] {
        let (status, html) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {html}");
        assert!(!html.contains("<script>alert"), "{uri}: {html}");
        assert!(!html.contains("<img src=x"), "{uri}: {html}");
        assert!(!html.contains("<b>not json"), "{uri}: {html}");
    }
    let (_, hostile) = get(&app, "/ops/dead-letter?source=outbox&id=hostile").await;
    assert!(
        hostile.contains("&lt;script&gt;alert('pwned')&lt;/script&gt;"),
        "{hostile}"
    );
    let (_, broken) = get(&app, "/ops/dead-letter?source=outbox&id=broken").await;
    assert!(
        broken.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{broken}"
    );
    assert!(
        broken.contains("&lt;b&gt;not json&lt;/b&gt;"),
        "the raw stored form: {broken}"
    );
    // An error page echoes bad input escaped too.
    let (status, html) = get(&app, "/ops/dead-letters?older_than=%3Cscript%3Ex").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!html.contains("<script>x"), "{html}");
}

#[tokio::test]
async fn the_graph_samples_the_status_over_time() {
    let (app, db) =
        console(ConsoleOptions::default().sample_every(Duration::from_millis(100))).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, html) = get(&app, "/ops/live").await;
    assert!(html.contains("data-series=\"dead letters\""), "{html}");
    let points = |html: &str| {
        let at = html.find("data-series=\"dead letters\" points=\"").unwrap() + 35;
        html[at..].split('"').next().unwrap().split(' ').count()
    };
    assert!(points(&html) >= 3, "{html}");
    assert!(html.contains("dead letters <strong>4</strong>"), "{html}");
    db.execute_unprepared("DELETE FROM earn_outbox_dead")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, html) = get(&app, "/ops/live").await;
    assert!(html.contains("dead letters <strong>0</strong>"), "{html}");
}

#[tokio::test]
async fn the_dashboard_draws_the_bus_handler_calls_per_minute() {
    let db = Db::connect(&common::sqlite_file("console-rates"))
        .await
        .unwrap();
    db.install_outbox().await.unwrap();
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    bus.subscribe_sync("job.ok", 0, |_: &Event| ()).unwrap();
    bus.subscribe_sync("job.bad", 0, |_: &Event| {
        Err::<(), _>(earn::HandlerError::msg("no"))
    })
    .unwrap();
    let admin = Admin::new().database(db).bus(bus.clone());
    let options = ConsoleOptions::default().sample_every(Duration::from_millis(100));
    let app = Router::new().nest("/ops", console::router(admin, options));
    // The first sample is the baseline; calls between samples are a rate.
    let (_, html) = get(&app, "/ops/live").await;
    assert!(html.contains("Events handled"), "{html}");
    for _ in 0..6 {
        bus.emit(Event::new("job.ok", &1).unwrap()).await;
    }
    bus.emit(Event::new("job.bad", &1).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, html) = get(&app, "/ops/live").await;
    assert!(html.contains("data-series=\"handled / min\""), "{html}");
    assert!(html.contains("data-series=\"failed / min\""), "{html}");
    let rate = |label: &str| -> u64 {
        let at = html.find(&format!("{label} <strong>")).unwrap() + label.len() + 9;
        html[at..].split('<').next().unwrap().parse().unwrap()
    };
    // Nothing ran in the last interval; some interval saw 6 calls and 1
    // failure: the highest value on the scale is their rate per minute.
    assert_eq!(
        (rate("handled / min"), rate("failed / min")),
        (0, 0),
        "{html}"
    );
    let stats = bus.handler_stats();
    assert_eq!((stats.succeeded, stats.failed), (6, 1));
}

/// A console over one fresh Redis stream, `earn:console:{uuid}` with the
/// group `ops`, and a raw connection to look behind it; `None` (the test
/// skips) without Redis.
struct RedisConsole {
    stream: String,
    streams: earn::redis::RedisStreams,
    raw: redis::aio::MultiplexedConnection,
}

impl RedisConsole {
    async fn new(
        before: impl AsyncFnOnce(&str, &mut redis::aio::MultiplexedConnection),
    ) -> Option<Self> {
        let url = common::redis_url()?;
        let stream = format!("earn:console:{}", uuid::Uuid::new_v4());
        let mut raw = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        before(&stream, &mut raw).await;
        let streams = earn::redis::RedisStreams::connect(
            &url,
            earn::redis::RedisSettings::new(stream.as_str(), "ops"),
        )
        .await
        .unwrap();
        Some(RedisConsole {
            stream,
            streams,
            raw,
        })
    }

    fn app(&self, options: ConsoleOptions) -> Router {
        let admin = Admin::new().stream(self.streams.clone());
        Router::new().nest("/ops", console::router(admin, options))
    }

    async fn length(&mut self) -> u64 {
        redis::AsyncCommands::xlen(&mut self.raw, &self.stream)
            .await
            .unwrap()
    }

    async fn delayed(&self) -> u64 {
        self.streams.lag().await.unwrap().delayed
    }

    async fn clean_up(mut self) {
        let s = &self.stream;
        let keys = [
            s.clone(),
            format!("{s}:dead"),
            format!("{s}:delayed"),
            format!("{s}:marks"),
        ];
        let _: () = redis::AsyncCommands::del(&mut self.raw, &keys[..])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_streams_page_lists_groups_and_their_consumers() {
    // The group `ops`, whose consumer `worker-1` read one of two entries
    // and `<b>x</b>` (a hostile name) the other.
    let Some(redis) = RedisConsole::new(async |stream, raw| {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg("ops")
            .arg("0")
            .arg("MKSTREAM")
            .query_async(raw)
            .await
            .unwrap();
        for i in 0..2 {
            let _: String = redis::AsyncCommands::xadd(&mut *raw, stream, "*", &[("n", i)])
                .await
                .unwrap();
        }
        for consumer in ["worker-1", "<b>x</b>"] {
            let _: redis::Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("ops")
                .arg(consumer)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(stream)
                .arg(">")
                .query_async(raw)
                .await
                .unwrap();
        }
    })
    .await
    else {
        return;
    };
    let app = redis.app(ConsoleOptions::default());
    let (status, html) = get(&app, "/ops/streams").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let stream = &redis.stream;
    assert!(
        html.contains(&format!(r#"data-stream="{stream}""#)),
        "{html}"
    );
    assert!(html.contains("2 entries"), "{html}");
    // The group: two pending, none unread, two consumers.
    let group = &html[html
        .find(r#"<tr class="group" data-group="ops">"#)
        .expect("the group's row")..];
    let group = &group[..group.find("</tr>").unwrap()];
    assert!(group.contains("2 consumer(s)"), "{group}");
    assert!(
        group.contains(r#"<td class="num">2</td><td class="num">0</td>"#),
        "{group}"
    );
    // Each consumer: one pending, idle for less than a minute.
    let row = |name: &str| {
        let start = html
            .find(&format!(r#"data-consumer="{name}""#))
            .unwrap_or_else(|| panic!("no row for {name}: {html}"));
        html[start..start + html[start..].find("</tr>").unwrap()].to_owned()
    };
    let worker = row("worker-1");
    assert!(worker.contains(r#"<td class="num">1</td>"#), "{worker}");
    assert!(
        worker.contains(" ms</td>") || worker.contains(" s</td>"),
        "idle: {worker}"
    );
    let hostile = row("&lt;b&gt;x&lt;/b&gt;");
    assert!(
        hostile.contains("<code>&lt;b&gt;x&lt;/b&gt;</code>"),
        "{hostile}"
    );
    assert!(!html.contains("<b>x</b>"), "{html}");
    // The delayed count links to the stream's delayed events.
    assert!(
        html.contains(&format!(
            r#"href="/ops/delayed?stream={}">0 delayed"#,
            stream.replace(':', "%3A")
        )),
        "{html}"
    );
    redis.clean_up().await;
}

#[tokio::test]
async fn delayed_events_are_listed_run_now_and_deleted() {
    let Some(mut redis) = RedisConsole::new(async |_, _| {}).await else {
        return;
    };
    let soon = Event::new("cart.reminder", &1).unwrap();
    let later = Event::new("cart.expired", &2).unwrap();
    redis
        .streams
        .publish_delayed(&soon, Duration::from_secs(3600))
        .await
        .unwrap();
    redis
        .streams
        .publish_delayed(&later, Duration::from_secs(7200))
        .await
        .unwrap();
    let app = redis.app(ConsoleOptions::default());
    let stream = redis.stream.clone();
    let page = format!("/ops/delayed?stream={}", stream.replace(':', "%3A"));
    let (status, html) = get(&app, &page).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("2</strong> delayed event(s)"), "{html}");
    for event in [&soon, &later] {
        assert!(html.contains(&event.id().to_string()), "{html}");
    }
    assert!(
        html.contains("cart.reminder") && html.contains("(in 59 min)"),
        "{html}"
    );
    assert!(
        html.find("cart.reminder").unwrap() < html.find(&later.id().to_string()).unwrap(),
        "soonest first: {html}"
    );
    assert!(
        html.contains("Run now") && html.contains("Page 1 of 1"),
        "{html}"
    );
    let csrf = token(&html);
    let soon_id = soon.id().to_string();
    let later_id = later.id().to_string();

    // Without the token, or with a wrong one: refused, nothing moved.
    for bad in ["", "0123456789"] {
        for uri in ["/ops/delayed/run", "/ops/delayed/delete"] {
            let (status, body) = post(
                &app,
                uri,
                &[("csrf", bad), ("stream", &stream), ("id", &soon_id)],
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{uri} {bad:?}: {body}");
        }
    }
    assert_eq!((redis.length().await, redis.delayed().await), (0, 2));

    // Run now: into the stream, out of the delayed set.
    let (status, location) = post(
        &app,
        "/ops/delayed/run",
        &[
            ("csrf", &csrf),
            ("stream", &stream),
            ("page", "1"),
            ("id", &soon_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert!(
        location.starts_with(&format!("{page}&page=1&done=ran&entry=")),
        "{location}"
    );
    assert_eq!((redis.length().await, redis.delayed().await), (1, 1));
    let (_, html) = get(&app, &location).await;
    assert!(html.contains("Moved into the stream as entry"), "{html}");
    assert!(!html.contains(&soon_id), "{html}");
    // Gone now: 404; not an id: 400.
    let (status, _) = post(
        &app,
        "/ops/delayed/run",
        &[("csrf", &csrf), ("stream", &stream), ("id", &soon_id)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &app,
        "/ops/delayed/run",
        &[("csrf", &csrf), ("stream", &stream), ("id", "nope")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&app, "/ops/delayed?stream=no-such-stream").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A read-only console shows the events, no button, and refuses both
    // actions even with a token that works elsewhere.
    let read_only = redis.app(ConsoleOptions::default().read_only(true));
    let (_, html) = get(&read_only, &page).await;
    assert!(html.contains(&later_id), "{html}");
    for button in ["method=\"post\"", "name=\"csrf\"", "Run now"] {
        assert!(!html.contains(button), "{button} in {html}");
    }
    for uri in ["/ops/delayed/run", "/ops/delayed/delete"] {
        let (status, body) = post(
            &read_only,
            uri,
            &[("csrf", &csrf), ("stream", &stream), ("id", &later_id)],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        assert!(body.contains("read-only"), "{body}");
    }
    assert_eq!((redis.length().await, redis.delayed().await), (1, 1));

    // Delete: gone without running.
    let (status, location) = post(
        &app,
        "/ops/delayed/delete",
        &[("csrf", &csrf), ("stream", &stream), ("id", &later_id)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!((redis.length().await, redis.delayed().await), (1, 0));
    let (_, html) = get(&app, &location).await;
    assert!(
        html.contains("Deleted the delayed event") && html.contains("None."),
        "{html}"
    );
    redis.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_nats_groups_lag_and_its_dead_letters() {
    let Some(url) = common::nats_url() else {
        return;
    };
    let stream = format!("earn-console-{}", uuid::Uuid::new_v4().simple());
    let streams = earn::nats::NatsStreams::connect(
        &url,
        earn::nats::NatsSettings::new(stream.as_str(), "ops"),
    )
    .await
    .unwrap();
    for n in 0..3 {
        streams
            .publish(&Event::new("order.paid", &n).unwrap())
            .await
            .unwrap();
    }
    let admin = Admin::new().nats(streams);
    let app = Router::new().nest("/ops", console::router(admin, ConsoleOptions::default()));
    let (status, html) = get(&app, "/ops").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!(
            r#"<td>nats</td><td>{stream}</td><td>ops</td><td class="num">3</td><td class="num">0</td>"#
        )),
        "{html}"
    );
    let (status, html) = get(&app, &format!("/ops/dead-letters?source=nats:{stream}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    common::delete_nats_streams(&url, &stream).await;
}

#[tokio::test]
async fn the_dashboard_shows_the_event_stores_subscriptions_and_their_lag() {
    let db = Db::connect(&common::sqlite_file("console-store"))
        .await
        .unwrap();
    let store = store_support::fresh_store(&db).await;
    let (read, head) = store_support::lagging_subscription(&store, 2, 3).await;
    assert_eq!((read, head), (2, 5));
    let admin = Admin::new().store(store);
    let app = Router::new().nest("/ops", console::router(admin, ConsoleOptions::default()));
    let (status, html) = get(&app, "/ops").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Head at position 5."), "{html}");
    assert!(
        html.contains(r#"<tr data-subscription="totals"><td>totals</td><td class="num">2</td><td class="num">3</td>"#),
        "{html}"
    );
}
