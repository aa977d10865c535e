#![doc = include_str!("../docs/crate.md")]
// On docs.rs: "Available on crate feature `tls` only" on gated items.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod connection;
mod consumer;
mod delayed;
mod entry;
mod publisher;
mod reply;
mod scripts;
mod settings;
mod streams;

/// The waits after a Redis error: 50 ms doubling up to 5 s.
pub(crate) const BACKOFF: earn_core::Backoff = earn_core::Backoff::new(
    std::time::Duration::from_millis(50),
    std::time::Duration::from_secs(5),
);

pub use admin::{ConsumerInfo, GroupInfo, RedisDeadLetter, RedisDeadLetters, StreamLag};
pub use connection::RedisConnection;
pub use consumer::Consumer;
pub use delayed::DelayedEvent;
pub use settings::{RedisSettings, StartFrom};
pub use streams::RedisStreams;
