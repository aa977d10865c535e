//! Secure connections: events over TLS (with a client certificate) as a
//! user with a password and as an nkey user, against a private
//! `nats-server` with certificates made by the test; wrong credentials, an
//! unknown nkey, an untrusted server and a missing client certificate each
//! fail, and no error shows the password or the seed.

mod common;

use std::time::{Duration, Instant};

use earn::Event;
use earn::nats::{ConnectOptions, NatsStreams};
use earn_test_servers::{NatsServer, NatsTlsOptions};

const USER: &str = "billing";
/// Distinctive, so that any appearance in a message is found.
const PASSWORD: &str = "pw-correct-3f8e21";
const WRONG: &str = "pw-wrong-c04a7d";

/// A server requiring client certificates, with the password user and the
/// nkey user `nkey` (a public key).
fn server(nkey: &str) -> Option<NatsServer> {
    NatsServer::start(
        NatsTlsOptions::default()
            .user(USER, PASSWORD)
            .nkey(nkey)
            .require_client_certificates(),
    )
}

/// Options trusting the test CA and presenting the client certificate.
fn tls(server: &NatsServer) -> ConnectOptions {
    let certs = server.certs();
    ConnectOptions::new()
        .add_root_certificates(certs.ca_file())
        .add_client_certificate(certs.client_cert_file(), certs.client_key_file())
}

/// Publishes an event and waits until a consumer of `streams` handled it.
async fn round_trip(streams: &NatsStreams) {
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

/// The error of a connection that must fail, shown both ways, checked for
/// `secrets`. Fails the test if connecting succeeds or takes over 10 s.
async fn refused(url: &str, options: ConnectOptions, secrets: &[&str]) -> String {
    let start = Instant::now();
    let settings = common::settings(&common::unique_stream());
    let result = NatsStreams::connect_with(url, options, settings).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "failed, but slowly"
    );
    let error = result.expect_err("connecting must fail");
    let shown = format!("{error}\n{error:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "`{secret}` shown in:\n{shown}");
    }
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_over_mutual_tls_as_a_user_and_as_an_nkey() {
    let nkey = nkeys::KeyPair::new_user();
    let Some(server) = server(&nkey.public_key()) else {
        return;
    };
    let with_password = tls(&server).user_and_password(USER.into(), PASSWORD.into());
    let with_nkey = tls(&server).nkey(nkey.seed().unwrap());
    for options in [with_password, with_nkey] {
        let settings = common::settings(&common::unique_stream());
        let streams = NatsStreams::connect_with(&server.url(), options, settings)
            .await
            .unwrap();
        let shown = format!("{streams:?}");
        assert!(!shown.contains(PASSWORD) && !shown.contains(&nkey.seed().unwrap()));
        round_trip(&streams).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_without_showing_them() {
    let nkey = nkeys::KeyPair::new_user();
    let Some(server) = server(&nkey.public_key()) else {
        return;
    };
    let url = server.url();
    let shown = refused(
        &url,
        tls(&server).user_and_password(USER.into(), WRONG.into()),
        &[WRONG, PASSWORD],
    )
    .await;
    assert!(shown.contains("authorization violation"), "{shown}");

    // The password in the URL.
    let in_url = url.replacen("tls://", &format!("tls://{USER}:{WRONG}@"), 1);
    let shown = refused(&in_url, tls(&server), &[WRONG, PASSWORD]).await;
    assert!(shown.contains("authorization violation"), "{shown}");
    assert!(
        shown.contains(&format!("connect to tls://{USER}:***@127.0.0.1")),
        "names the server: {shown}"
    );

    // A well-formed seed the server does not know.
    let stranger = nkeys::KeyPair::new_user();
    let seed = stranger.seed().unwrap();
    let shown = refused(&url, tls(&server).nkey(seed.clone()), &[&seed]).await;
    assert!(shown.contains("authorization violation"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate_and_the_ca() {
    let nkey = nkeys::KeyPair::new_user();
    let Some(server) = server(&nkey.public_key()) else {
        return;
    };
    let url = server.url();
    let no_certificate = ConnectOptions::new()
        .add_root_certificates(server.certs().ca_file())
        .user_and_password(USER.into(), PASSWORD.into());
    let shown = refused(&url, no_certificate, &[PASSWORD]).await;
    assert!(shown.to_lowercase().contains("certificate"), "{shown}");

    // The system's roots do not include the test CA.
    let untrusted = ConnectOptions::new()
        .add_client_certificate(
            server.certs().client_cert_file(),
            server.certs().client_key_file(),
        )
        .user_and_password(USER.into(), PASSWORD.into());
    let shown = refused(&url, untrusted, &[PASSWORD]).await;
    assert!(shown.to_lowercase().contains("certificate"), "{shown}");
}
