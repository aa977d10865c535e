//! Secure connections: events over TLS as an ACL user, against a private
//! `redis-server` (TLS only, `default` user off) with certificates made by
//! the test; wrong credentials, a plain connection to the TLS port, an
//! untrusted server and a missing client certificate each fail; and no
//! error, log line or dead letter shows a password or a key.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use earn::redis::{RedisConnection, RedisSettings, RedisStreams};
use earn::{Event, HandlerError};
use earn_test_servers::{RedisServer, RedisTlsOptions};

const USER: &str = "billing";
/// Distinctive, so that any appearance in a message is found.
const PASSWORD: &str = "pw-correct-5e1a9c";
const WRONG: &str = "pw-wrong-77d0b3";

fn server(options: RedisTlsOptions) -> Option<RedisServer> {
    RedisServer::start(options.user(USER, PASSWORD))
}

fn settings() -> RedisSettings {
    common::settings(&common::unique_stream())
}

/// The server's URL and CA, credentials in the URL.
fn trusted(server: &RedisServer, password: &str) -> RedisConnection {
    RedisConnection::new(server.url(USER, password)).ca_certificate(server.certs().ca_pem())
}

/// Asserts that `text` shows no secret of these tests: a password or a
/// private key.
#[track_caller]
fn assert_no_secret(text: &str) {
    for secret in [PASSWORD, WRONG, "PRIVATE KEY"] {
        assert!(!text.contains(secret), "`{secret}` shown in:\n{text}");
    }
}

/// The error of a connection that must fail, shown both ways, checked for
/// secrets. Fails the test if connecting succeeds or takes over 10 s.
async fn refused(connection: RedisConnection) -> String {
    let start = Instant::now();
    let result = RedisStreams::connect(connection, settings()).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "failed, but slowly"
    );
    let error = result.expect_err("connecting must fail");
    let shown = format!("{error}\n{error:?}");
    assert_no_secret(&shown);
    shown
}

/// Every log line of this test binary, at DEBUG and above.
fn logs() -> &'static common::Captured {
    static LOGS: OnceLock<common::Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = common::Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        captured
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_over_tls_as_an_acl_user() {
    let Some(server) = server(RedisTlsOptions::default()) else {
        return;
    };
    // The credentials in the URL, or given apart from it.
    let in_url = trusted(&server, PASSWORD);
    let apart = RedisConnection::new(server.url_without_credentials())
        .username(USER)
        .password(PASSWORD)
        .ca_certificate(server.certs().ca_pem());
    for connection in [in_url, apart] {
        let streams = RedisStreams::connect(connection, settings()).await.unwrap();
        assert_no_secret(&format!("{streams:?}"));
        let (bus, seen) = common::recording_bus("order.*");
        let consumer = streams.consume(bus).await.unwrap();
        let event = Event::new("order.paid", &7).unwrap();
        streams.publish(&event).await.unwrap();
        common::wait_until("the event handled", Duration::from_secs(10), || {
            seen.ids() == [event.id()]
        })
        .await;
        assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_without_showing_it() {
    let Some(server) = server(RedisTlsOptions::default()) else {
        return;
    };
    let shown = refused(trusted(&server, WRONG)).await;
    assert!(shown.contains("Password authentication failed"), "{shown}");
    assert!(
        shown.contains(&format!("rediss://{USER}:***@127.0.0.1")),
        "names the server: {shown}"
    );
    let shown = refused(
        RedisConnection::new(server.url_without_credentials())
            .username(USER)
            .password(WRONG)
            .ca_certificate(server.certs().ca_pem()),
    )
    .await;
    assert!(shown.contains("Password authentication failed"), "{shown}");
    // No credentials: the `default` user is off.
    let shown = refused(
        RedisConnection::new(server.url_without_credentials())
            .ca_certificate(server.certs().ca_pem()),
    )
    .await;
    assert!(shown.contains("NOAUTH"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_redis_to_the_tls_port_fails() {
    let Some(server) = server(RedisTlsOptions::default()) else {
        return;
    };
    let plain = server
        .url(USER, PASSWORD)
        .replacen("rediss://", "redis://", 1);
    let shown = refused(RedisConnection::new(plain)).await;
    assert!(
        shown.contains(&format!("connect to redis://{USER}:***@127.0.0.1"))
            && shown.contains("if it accepts only TLS, connect with a `rediss://` URL"),
        "{shown}"
    );
    // A CA makes sense only with TLS.
    let shown = refused(
        RedisConnection::new(
            server
                .url(USER, PASSWORD)
                .replacen("rediss://", "redis://", 1),
        )
        .ca_certificate(server.certs().ca_pem()),
    )
    .await;
    assert!(shown.contains("rediss://"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_an_unknown_ca_fails() {
    let Some(server) = server(RedisTlsOptions::default()) else {
        return;
    };
    // The system's roots do not include the test CA.
    let shown = refused(RedisConnection::new(server.url(USER, PASSWORD))).await;
    assert!(shown.to_lowercase().contains("certificate"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let Some(server) = server(RedisTlsOptions::default().require_client_certificates()) else {
        return;
    };
    let shown = refused(trusted(&server, PASSWORD)).await;
    assert!(shown.to_lowercase().contains("certificate"), "{shown}");

    let certs = server.certs();
    let with_certificate = trusted(&server, PASSWORD)
        .client_certificate(certs.client_cert_pem(), certs.client_key_pem());
    assert_no_secret(&format!("{with_certificate:?} {with_certificate}"));
    let streams = RedisStreams::connect(with_certificate, settings())
        .await
        .unwrap();
    let (bus, seen) = common::recording_bus("order.*");
    let consumer = streams.consume(bus).await.unwrap();
    let event = Event::new("order.paid", &8).unwrap();
    streams.publish(&event).await.unwrap();
    common::wait_until("the event handled", Duration::from_secs(10), || {
        seen.ids() == [event.id()]
    })
    .await;
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}

/// A consumer whose credentials stop working logs its failures, and a
/// handler that fails with a connection error is dead-lettered with it:
/// neither shows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_consumer_logs_and_dead_letters_no_password() {
    let logs = logs();
    let Some(server) = server(RedisTlsOptions::default()) else {
        return;
    };
    let streams = RedisStreams::connect(trusted(&server, PASSWORD), settings())
        .await
        .unwrap();
    let bus = common::bus();
    let wrong = trusted(&server, WRONG);
    bus.subscribe("report.*", 0, move |_: Event| {
        let wrong = wrong.clone();
        async move {
            match RedisStreams::connect(wrong, RedisSettings::new("reports", "g")).await {
                Ok(_) => Ok(()),
                Err(error) => Err(HandlerError::permanent(error)),
            }
        }
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    streams
        .publish(&Event::new("report.daily", &1).unwrap())
        .await
        .unwrap();
    common::wait_until_async("a dead letter", Duration::from_secs(10), || async {
        !streams.dead_letter_entries(10).await.unwrap().is_empty()
    })
    .await;
    let letter = &streams.dead_letter_entries(10).await.unwrap()[0];
    assert!(
        letter.reason.contains("Password authentication failed"),
        "{}",
        letter.reason
    );
    assert_no_secret(&format!("{letter:?}"));

    // The password changes under the running consumer, and its connections
    // are dropped: every reconnection is refused.
    let admin = redis::Client::build_with_tls(
        server.url(USER, PASSWORD),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(server.certs().ca_pem()),
        },
    )
    .unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ACL")
        .arg(&["SETUSER", USER, "resetpass", ">pw-changed-0b9d"])
        .exec_async(&mut admin)
        .await
        .unwrap();
    let _ = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", USER])
        .exec_async(&mut admin)
        .await;
    let mut text = String::new();
    let start = Instant::now();
    while !text.contains("Password authentication failed") {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no failed authentication logged:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        text.push_str(&logs.text());
    }
    assert!(
        text.contains(&format!("server=rediss://{USER}:***@127.0.0.1")),
        "the consumer's start names the server: {text}"
    );
    assert_no_secret(&text);
    consumer.shutdown(Duration::from_secs(2)).await;
}
