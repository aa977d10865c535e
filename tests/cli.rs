//! The `earn` binary, run as an operator runs it, against outboxes on
//! SQLite (a file), PostgreSQL and MariaDB and against Redis, seeded with
//! dead letters and delayed events: tables and `--json`, filters and
//! pages, requeue, delete and purge, refusals without `--yes`, exit codes.

mod common;
#[path = "support/store.rs"]
mod store_support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use earn::redis::{RedisSettings, RedisStreams};
use earn::{Db, Event};
use redis::AsyncCommands as _;
use serde_json::Value;

/// Runs `earn` with `args`, standard input not a terminal, no store
/// from the environment.
fn earn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_earn"))
        .args(args)
        .env_remove("EARN_DATABASE_URL")
        .env_remove("EARN_REDIS_URL")
        .env_remove("EARN_REDIS_GROUP")
        .env_remove("EARN_NATS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("the earn binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `earn` and expects exit code `code`; returns standard output.
#[track_caller]
fn expect(code: i32, args: &[&str]) -> String {
    let output = earn(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "earn {args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Runs `earn … --json`, expects success, parses the output.
#[track_caller]
fn json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let text = expect(0, &args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("earn {args:?}: {e}\n{text}"))
}

/// Runs `earn` expecting exit code 1; returns standard error.
#[track_caller]
fn fails(args: &[&str]) -> String {
    let output = earn(args);
    assert_eq!(output.status.code(), Some(1), "earn {args:?}: {output:?}");
    stderr(&output)
}

fn names(list: &Value) -> Vec<String> {
    list["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|letter| letter["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The databases, with SQLite as a file the binary can open too.
fn databases() -> Vec<(&'static str, String)> {
    common::backends()
        .into_iter()
        .map(|(name, url)| match name {
            "sqlite" => (name, common::sqlite_file("cli")),
            _ => (name, url),
        })
        .collect()
}

/// Three dead letters as the relay writes them, a second ago, the last
/// one not an event; empty queues.
async fn seed_outbox(db: &Db) {
    let rows = [
        (
            "dl-0",
            "shop.order.created",
            common::stored_event("shop.order.created", 0),
        ),
        (
            "dl-1",
            "shop.order.paid",
            common::stored_event("shop.order.paid", 1),
        ),
        ("dl-2", "shop.user.created", "not json".to_owned()),
    ];
    common::seed_outbox_dead_letters(db, &rows, Duration::from_secs(1), Duration::from_millis(1))
        .await;
}

#[tokio::test]
async fn the_outbox_dead_letters_are_listed_shown_requeued_deleted_and_purged() {
    let _serial = common::serial().await;
    for (backend, url) in databases() {
        eprintln!("--- on {backend}");
        let db = common::connect(backend, &url).await;
        seed_outbox(&db).await;
        let url = url.as_str();
        let with_db = |args: &[&'static str]| {
            let mut all = args.to_vec();
            all.extend(["--database", url]);
            all
        };

        // Status: a table, JSON, and exit code 3 on demand.
        let table = expect(0, &with_db(&["status"]));
        assert!(table.contains("outbox: 0 waiting"), "{table}");
        assert!(table.contains("SOURCE  DEAD LETTERS"), "{table}");
        assert!(table.contains("outbox  3"), "{table}");
        assert!(table.contains("total   3"), "{table}");
        let status = json(&with_db(&["status"]));
        assert_eq!(status["outbox"]["backlog"], 0, "{status}");
        assert_eq!(status["dead_letter_total"], 3);
        assert_eq!(status["dead_letters"][0]["source"], "outbox");
        let output = earn(&with_db(&["status", "--fail-on-dead-letters"]));
        assert_eq!(output.status.code(), Some(3), "{output:?}");
        assert!(stderr(&output).contains("3 dead letter(s)"));

        // Lists: oldest first, filtered, paged.
        let all = json(&with_db(&["dead-letters", "list"]));
        assert_eq!(all["total"], 3);
        assert_eq!(
            names(&all),
            ["shop.order.created", "shop.order.paid", "shop.user.created"]
        );
        assert_eq!(all["dead_letters"][0]["attempts"], 3);
        assert_eq!(
            all["dead_letters"][0]["event"]["name"],
            "shop.order.created"
        );
        assert_eq!(all["dead_letters"][2]["event"], Value::Null);
        assert_eq!(all["dead_letters"][2]["raw"], "not json");
        let orders = json(&with_db(&[
            "dead-letters",
            "list",
            "--event",
            "shop.order.**",
        ]));
        assert_eq!(names(&orders), ["shop.order.created", "shop.order.paid"]);
        let paid = json(&with_db(&[
            "dead-letters",
            "list",
            "--event",
            "shop.order.paid",
        ]));
        assert_eq!(paid["total"], 1);
        let page = json(&with_db(&[
            "dead-letters",
            "list",
            "--per-page",
            "2",
            "--page",
            "2",
        ]));
        assert_eq!(
            (page["total"].clone(), names(&page)),
            (3.into(), vec!["shop.user.created".to_owned()])
        );
        let old = json(&with_db(&["dead-letters", "list", "--older-than", "1h"]));
        assert_eq!(old["total"], 0);
        let recent = json(&with_db(&["dead-letters", "list", "--newer-than", "1h"]));
        assert_eq!(recent["total"], 3);
        let nobody = json(&with_db(&["dead-letters", "list", "--handler", "nobody"]));
        assert_eq!(nobody["total"], 0);
        let listed = expect(0, &with_db(&["dead-letters", "list", "--source", "outbox"]));
        assert!(listed.starts_with("SOURCE  ID    EVENT"), "{listed}");
        assert!(listed.contains("outbox  dl-1  shop.order.paid"), "{listed}");
        assert!(
            listed.contains("3 of 3 dead letter(s) matching, page 1 of 1"),
            "{listed}"
        );

        // Bad input: exit code 1 (or 2 for what the parser rejects), a message.
        let bad = fails(&with_db(&["dead-letters", "list", "--event", "*.paid"]));
        assert!(bad.contains("invalid dead-letter filter"), "{bad}");
        assert!(bad.contains("`payment.**`"), "{bad}");
        let unknown = fails(&with_db(&["dead-letters", "list", "--source", "kafka"]));
        assert!(
            unknown.contains("no dead-letter source `kafka`; the sources are: outbox"),
            "{unknown}"
        );
        let output = earn(&with_db(&["dead-letters", "list", "--older-than", "10"]));
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        assert!(
            stderr(&output).contains("`10` has no unit"),
            "{}",
            stderr(&output)
        );
        let mixed = fails(&with_db(&[
            "dead-letters",
            "requeue",
            "dl-1",
            "--event",
            "x",
        ]));
        assert!(mixed.contains("go with --all"), "{mixed}");

        // One in full.
        let shown = expect(0, &with_db(&["dead-letters", "show", "dl-1"]));
        assert!(shown.contains("event:        shop.order.paid"), "{shown}");
        assert!(
            shown.contains("reason:       gave up after 3 claims"),
            "{shown}"
        );
        assert!(shown.contains("\"payload\": 1"), "{shown}");
        let one = json(&with_db(&[
            "dead-letters",
            "show",
            "dl-1",
            "--source",
            "outbox",
        ]));
        assert_eq!(one["id"], "dl-1");
        let missing = fails(&with_db(&["dead-letters", "show", "nope"]));
        assert!(
            missing.contains("no dead letter with id `nope` in outbox"),
            "{missing}"
        );

        // Requeue one: back in the outbox.
        let requeued = expect(0, &with_db(&["dead-letters", "requeue", "dl-0"]));
        assert!(requeued.contains("requeued outbox dl-0"), "{requeued}");
        assert_eq!(db.outbox_backlog().await.unwrap(), 1);
        let outbox = json(&with_db(&["outbox"]));
        assert_eq!(outbox["backlog"], 1);
        assert!(outbox["oldest_age_secs"].as_f64().is_some(), "{outbox}");
        let outbox = expect(0, &with_db(&["outbox"]));
        assert!(
            outbox.starts_with("outbox: 1 waiting, oldest waiting "),
            "{outbox}"
        );

        // Destructive actions refuse without --yes when stdin is no terminal.
        let refused = fails(&with_db(&["dead-letters", "delete", "dl-2"]));
        assert!(
            refused.contains(
                "refusing to delete dead letter dl-2 of outbox without confirmation: \
                 standard input is not a terminal; pass --yes"
            ),
            "{refused}"
        );
        let refused = fails(&with_db(&["dead-letters", "requeue", "--all"]));
        assert!(
            refused.contains("refusing to requeue 2 dead letter(s) of outbox"),
            "{refused}"
        );
        let refused = fails(&with_db(&["dead-letters", "purge"]));
        assert!(
            refused.contains("refusing to delete 2 dead letter(s)"),
            "{refused}"
        );
        assert_eq!(json(&with_db(&["dead-letters", "list"]))["total"], 2);

        let deleted = json(&with_db(&["dead-letters", "delete", "dl-2", "--yes"]));
        assert_eq!(deleted["count"], 1);
        let again = fails(&with_db(&["dead-letters", "delete", "dl-2", "--yes"]));
        assert!(again.contains("no dead letter with id `dl-2`"), "{again}");
        let all = json(&with_db(&[
            "dead-letters",
            "requeue",
            "--all",
            "--event",
            "shop.order.**",
            "-y",
        ]));
        assert_eq!(all["count"], 1);
        assert_eq!(all["ids"][0]["id"], "dl-1");
        assert_eq!(db.outbox_backlog().await.unwrap(), 2);

        // Purge by filter, then everything.
        seed_outbox(&db).await;
        let purged = json(&with_db(&[
            "dead-letters",
            "purge",
            "--event",
            "shop.user.**",
            "--yes",
        ]));
        assert_eq!(purged["count"], 1);
        let purged = expect(0, &with_db(&["dead-letters", "delete", "--all", "--yes"]));
        assert!(purged.contains("deleted 2 dead letter(s)"), "{purged}");
        assert_eq!(json(&with_db(&["status"]))["dead_letter_total"], 0);
        expect(0, &with_db(&["status", "--fail-on-dead-letters"]));
        // Nothing matching: no question, nothing done.
        let none = expect(0, &with_db(&["dead-letters", "purge"]));
        assert!(none.contains("deleted 0 dead letter(s)"), "{none}");

        // A database and Redis together: every source in one status.
        if let Some(redis_url) = common::redis_url() {
            let stream = format!("earn:cli:{}", uuid::Uuid::new_v4());
            let both = json(&[
                "status",
                "--database",
                url,
                "--redis",
                &redis_url,
                "--stream",
                &stream,
                "--group",
                "ops",
            ]);
            let sources: Vec<&str> = both["dead_letters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["source"].as_str().unwrap())
                .collect();
            assert_eq!(sources, ["outbox".to_owned(), format!("redis:{stream}")]);
            assert_eq!(both["streams"][0]["group"], "ops");
        }
        db.execute_unprepared("DELETE FROM earn_outbox")
            .await
            .unwrap();
    }
}

#[test]
fn unreachable_stores_and_bad_usage_have_their_exit_codes() {
    let output = earn(&[
        "status",
        "--database",
        "postgres://earn:secret@127.0.0.1:1/none",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let message = stderr(&output);
    assert!(
        message.contains("cannot connect to the database postgres://earn:***@127.0.0.1:1/none"),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
    let output = earn(&["outbox", "--database", "mysql://root@127.0.0.1:1/none"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let output = earn(&["status", "--database", "oracle://db"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr(&output).contains("unknown scheme"), "{output:?}");

    let output = earn(&[
        "status",
        "--redis",
        "redis://127.0.0.1:1",
        "--stream",
        "s",
        "--group",
        "g",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stderr(&output).contains("cannot connect to Redis redis://127.0.0.1:1 for stream `s`"),
        "{output:?}"
    );

    for (args, message) in [
        (&["status"][..], "nothing to operate on"),
        (&["status", "--stream", "s"][..], "--stream needs --redis"),
        (&["frobnicate"][..], "unrecognized subcommand"),
        (
            &["dead-letters", "requeue", "--database", "sqlite::memory:"][..],
            "required",
        ),
        (
            &[
                "dead-letters",
                "list",
                "--page",
                "0",
                "--database",
                "sqlite::memory:",
            ][..],
            "0",
        ),
    ] {
        let output = earn(args);
        assert_eq!(output.status.code(), Some(2), "earn {args:?}: {output:?}");
        assert!(
            stderr(&output).contains(message),
            "earn {args:?}: {output:?}"
        );
    }
    // Only the database: Redis commands say what is missing.
    let missing = fails(&["streams", "--database", "sqlite::memory:"]);
    assert!(missing.contains("no Redis stream"), "{missing}");
    let missing = fails(&["delayed", "list", "--database", "sqlite::memory:"]);
    assert!(
        missing.contains("--redis URL --stream NAME --group NAME"),
        "{missing}"
    );
}

#[test]
fn the_standalone_registry_says_it_links_no_application_code() {
    let text = expect(0, &["registry"]);
    assert!(text.contains("nothing registered"), "{text}");
    assert!(
        text.contains("embedded in your application's own binary"),
        "{text}"
    );
    let listed = json(&["registry"]);
    assert_eq!(listed["handlers"], Value::Array(Vec::new()));
    assert_eq!(listed["hooks"], Value::Array(Vec::new()));
    let help = expect(0, &["registry", "--help"]);
    assert!(
        help.contains("standalone `earn` binary links no application code"),
        "{help}"
    );
}

#[tokio::test]
async fn redis_streams_dead_letters_and_delayed_events_from_the_command_line() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let stream = format!("earn:cli:{}", uuid::Uuid::new_v4());
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys = [
        stream.clone(),
        format!("{stream}:dead"),
        format!("{stream}:delayed"),
        format!("{stream}:marks"),
    ];
    // A group `ops` whose consumer c1 read one of two entries.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("ops")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut raw)
        .await
        .unwrap();
    for i in 0..2 {
        let _: String = raw.xadd(&stream, "*", &[("n", i)]).await.unwrap();
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("ops")
        .arg("c1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut raw)
        .await
        .unwrap();
    // Two dead letters, as consumers write them.
    for name in ["shop.order.paid", "shop.user.created"] {
        let event = serde_json::to_string(&Event::new(name, &1).unwrap()).unwrap();
        let fields = [
            ("v", "1".to_owned()),
            ("name", name.to_owned()),
            ("event", event),
            ("dead:reason", "handler billing gave up".to_owned()),
            ("dead:deliveries", "3".to_owned()),
            ("dead:group", "ops".to_owned()),
            ("dead:entry", "1-0".to_owned()),
            ("dead:gave_up", "billing".to_owned()),
            ("dead:finished", String::new()),
        ];
        let _: String = raw
            .xadd(format!("{stream}:dead"), "*", &fields)
            .await
            .unwrap();
    }
    let streams = RedisStreams::connect(&url, RedisSettings::new(stream.as_str(), "ops"))
        .await
        .unwrap();
    let soon = Event::new("cart.reminder", &1).unwrap();
    let later = Event::new("cart.expired", &2).unwrap();
    streams
        .publish_delayed(&soon, Duration::from_secs(3600))
        .await
        .unwrap();
    streams
        .publish_delayed(&later, Duration::from_secs(7200))
        .await
        .unwrap();
    let redis_args = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend([
            "--redis".to_owned(),
            url.clone(),
            "--stream".to_owned(),
            stream.clone(),
        ]);
        all.extend(["--group".to_owned(), "ops".to_owned()]);
        all
    };
    let run = |code: i32, args: &[&str]| {
        let args = redis_args(args);
        expect(code, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let run_json = |args: &[&str]| -> Value {
        let args = redis_args(args);
        json(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let length = async |raw: &mut redis::aio::MultiplexedConnection| -> u64 {
        raw.xlen(&stream).await.unwrap()
    };

    // Status with Redis only.
    let status = run_json(&["status"]);
    assert_eq!(status["outbox"], Value::Null);
    let lag = &status["streams"][0];
    assert_eq!(
        (lag["pending"].clone(), lag["lag"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(
        (lag["length"].clone(), lag["delayed"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(status["dead_letters"][0]["dead_letters"], 2);
    let table = run(0, &["status"]);
    assert!(table.contains("STREAM"), "{table}");
    assert!(
        table.contains(&format!("{stream}  ops    2       1        1       2")),
        "{table}"
    );

    // Lag per group and consumer.
    let shown = run_json(&["streams"]);
    let group = &shown[0]["groups"][0];
    assert_eq!(group["name"], "ops");
    assert_eq!(
        (group["pending"].clone(), group["lag"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(group["consumers"][0]["name"], "c1");
    assert_eq!(group["consumers"][0]["pending"], 1);
    assert!(group["consumers"][0]["idle_ms"].as_u64().is_some());
    let table = run(0, &["streams"]);
    assert!(
        table.contains(&format!("stream {stream}: 2 entries, 2 delayed")),
        "{table}"
    );
    assert!(
        table.contains("GROUP  CONSUMER  PENDING  UNREAD  IDLE"),
        "{table}"
    );
    assert!(table.contains("ops    c1        1        -"), "{table}");

    // Dead letters: listed, filtered, one requeued into the stream.
    let listed = run_json(&[
        "dead-letters",
        "list",
        "--source",
        &format!("redis:{stream}"),
    ]);
    assert_eq!(listed["total"], 2);
    assert_eq!(listed["dead_letters"][0]["handler"], "billing");
    let users = run_json(&["dead-letters", "list", "--event", "shop.user.**"]);
    assert_eq!(names(&users), ["shop.user.created"]);
    let id = listed["dead_letters"][0]["id"].as_str().unwrap().to_owned();
    run(0, &["dead-letters", "requeue", &id]);
    assert_eq!(length(&mut raw).await, 3);
    let refused = {
        let args = redis_args(&["dead-letters", "purge"]);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(refused.contains("pass --yes"), "{refused}");
    assert_eq!(run_json(&["dead-letters", "purge", "--yes"])["count"], 1);

    // Delayed events: listed soonest first, one run now, one deleted.
    let delayed = run_json(&["delayed", "list"]);
    assert_eq!(delayed["total"], 2);
    let ids: Vec<&str> = delayed["delayed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [soon.id().to_string(), later.id().to_string()]);
    assert_eq!(delayed["delayed"][0]["name"], "cart.reminder");
    assert!(
        delayed["delayed"][0]["due_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let page = run_json(&["delayed", "list", "--per-page", "1", "--page", "2"]);
    assert_eq!(page["delayed"][0]["id"], later.id().to_string());
    let table = run(0, &["delayed", "list"]);
    assert!(table.contains("DUE"), "{table}");
    assert!(
        table.contains(&format!("cart.reminder  {}", soon.id())),
        "{table}"
    );
    assert!(table.contains("2 of 2 delayed event(s)"), "{table}");

    let ran = run(0, &["delayed", "run", &soon.id().to_string()]);
    assert!(
        ran.contains(&format!("ran delayed event {} now: entry ", soon.id())),
        "{ran}"
    );
    assert_eq!(length(&mut raw).await, 4);
    let args = redis_args(&["delayed", "run", &soon.id().to_string()]);
    let again = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(again.contains("no delayed event with id"), "{again}");
    let args = redis_args(&["delayed", "run", "not-an-id"]);
    let bad = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        bad.contains("`not-an-id` is not a delayed event's id"),
        "{bad}"
    );
    let args = redis_args(&["delayed", "delete", &later.id().to_string()]);
    let refused = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        refused.contains("refusing to delete delayed event"),
        "{refused}"
    );
    run(0, &["delayed", "delete", &later.id().to_string(), "--yes"]);
    assert_eq!(run_json(&["delayed", "list"])["total"], 0);
    assert_eq!(length(&mut raw).await, 4);

    let _: () = raw.del(&keys).await.unwrap();
}

/// `earn console` serves the web console over the same stores: on
/// 127.0.0.1 by default, here on a free port, read-only on request.
#[tokio::test]
async fn earn_console_serves_the_web_console() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};

    let url = common::sqlite_file("cli-console");
    let db = Db::connect(&url).await.unwrap();
    seed_outbox(&db).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_earn"))
        .args([
            "console",
            "--listen",
            "127.0.0.1:0",
            "--read-only",
            "--database",
            &url,
        ])
        .env_remove("EARN_DATABASE_URL")
        .env_remove("EARN_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the earn binary runs");
    let mut banner = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(banner.contains("(read-only)"), "{banner}");
    let address = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_owned();
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let dashboard = get("/");
    assert!(dashboard.starts_with("HTTP/1.1 200"), "{dashboard}");
    assert!(dashboard.contains("Dashboard"), "{dashboard}");
    let list = get("/dead-letters?source=outbox");
    assert!(list.contains("shop.order.paid"), "{list}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn status_reports_a_nats_stream_and_its_dead_letters() {
    let Some(url) = common::nats_url() else {
        return;
    };
    let stream = format!("earn-cli-{}", uuid::Uuid::new_v4().simple());
    let status = json(&[
        "status",
        "--nats",
        &url,
        "--nats-stream",
        &stream,
        "--group",
        "ops",
    ]);
    assert_eq!(status["streams"][0]["broker"], "nats", "{status}");
    assert_eq!(status["streams"][0]["stream"], stream.as_str(), "{status}");
    assert_eq!(status["streams"][0]["group"], "ops", "{status}");
    assert_eq!(
        status["dead_letters"][0]["source"],
        format!("nats:{stream}"),
        "{status}"
    );
    let text = expect(
        0,
        &[
            "status",
            "--nats",
            &url,
            "--nats-stream",
            &stream,
            "--group",
            "ops",
        ],
    );
    assert!(text.contains("BROKER") && text.contains("nats"), "{text}");
    let usage = earn(&["status", "--nats-stream", &stream]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    assert!(
        stderr(&usage).contains("--nats-stream needs --nats URL"),
        "{usage:?}"
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(common::delete_nats_streams(&url, &stream));
}

#[tokio::test]
async fn subscriptions_and_their_lag_from_the_command_line() {
    let _serial = common::serial().await;
    for (name, url) in databases() {
        eprintln!("--- on {name}");
        let db = common::connect(name, &url).await;
        let store = store_support::fresh_store(&db).await;
        db.install_outbox().await.unwrap(); // `status` reports it too
        let (read, head) = store_support::lagging_subscription(&store, 3, 2).await;

        let with = |args: &[&str]| {
            let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            all.extend([
                "--database".to_owned(),
                url.clone(),
                "--event-store".to_owned(),
            ]);
            all
        };
        let args = with(&["subscriptions"]);
        let view = json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(view["head"], head);
        assert_eq!(view["subscriptions"][0]["name"], "totals");
        assert_eq!(view["subscriptions"][0]["position"], read);
        assert_eq!(view["subscriptions"][0]["behind"], head - read);
        let args = with(&["subscriptions"]);
        let text = expect(0, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            text.contains(&format!("event store: head at position {head}")),
            "{text}"
        );
        assert!(text.contains("SUBSCRIPTION  POSITION  BEHIND"), "{text}");
        assert!(text.contains(&format!("totals        {read}")), "{text}");
        let args = with(&["status"]);
        let status = expect(0, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(status.contains("event store: head at position"), "{status}");
        let args = with(&["status"]);
        let status = json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            status["event_store"]["subscriptions"][0]["behind"],
            head - read
        );

        // Without --event-store there is no store to report on.
        let missing = fails(&["subscriptions", "--database", &url]);
        assert!(
            missing.contains("subscriptions need an event store"),
            "{missing}"
        );
    }
    let output = earn(&["subscriptions", "--event-store"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        stderr(&output).contains("--event-store needs --database URL"),
        "{}",
        stderr(&output)
    );
}
