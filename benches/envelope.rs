//! What sealing costs an event of 1 KiB (feature `encryption`):
//!
//! - `envelope/plain`: what every transport does anyway: the event
//!   serialized to JSON and read back;
//! - `envelope/encrypted`: the same with the payload encrypted
//!   (AES-256-GCM) before and decrypted after;
//! - `envelope/encrypted_and_signed`: plus an HMAC-SHA256 signature made
//!   and verified.
//!
//! The cost of encryption is `encrypted` minus `plain` (target: at most
//! 2 µs); the three are measured in one run and printed side by side.
//!
//! `cargo bench --bench envelope --features encryption`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use earn::{Envelope, Event, EventData, KeyRing};

fn kib_event() -> Event {
    // About 1 KiB of JSON: an order with a few lines and an address.
    let lines: Vec<_> = (0..21)
        .map(|i| serde_json::json!({"sku": format!("SKU-{i:05}"), "qty": i, "cents": 1999 + i}))
        .collect();
    let payload = serde_json::json!({
        "order": 81723,
        "customer": "ada@example.com",
        "address": {"street": "12 Analytical Engine Lane", "city": "London", "zip": "N1 9GU"},
        "lines": lines,
    });
    let event = Event::new("order.placed", &payload).unwrap();
    let size = serde_json::to_vec(event.payload_json()).unwrap().len();
    assert!((900..1200).contains(&size), "payload is {size} bytes");
    event
}

/// Leaves the process and comes back, as on any transport.
fn round_trip(event: &Event) -> Event {
    let json = serde_json::to_vec(event.data()).unwrap();
    Event::from_data(serde_json::from_slice::<EventData>(&json).unwrap())
}

fn bench(c: &mut Criterion) {
    let keys = KeyRing::new("k1", &[7u8; 32]).unwrap();
    let encrypted = Envelope::new().encrypt("**", &keys).unwrap();
    let both = encrypted.clone().sign("**", &keys).unwrap();
    let event = kib_event();
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain", |b| b.iter(|| round_trip(&event)));
    group.bench_function("encrypted", |b| {
        b.iter(|| {
            let sealed = encrypted.seal(event.clone()).unwrap();
            encrypted.open(&round_trip(&sealed)).unwrap()
        })
    });
    group.bench_function("encrypted_and_signed", |b| {
        b.iter(|| {
            let sealed = both.seal(event.clone()).unwrap();
            both.open(&round_trip(&sealed)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
