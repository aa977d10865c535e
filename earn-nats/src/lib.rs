#![doc = include_str!("../docs/crate.md")]

mod consumer;
mod dead_letter;
mod delayed;
mod done;
mod lag;
mod reply;
mod settings;
mod streams;
mod wire;

/// The waits after a NATS error: 50 ms doubling up to 5 s.
pub(crate) const BACKOFF: earn_core::Backoff = earn_core::Backoff::new(
    std::time::Duration::from_millis(50),
    std::time::Duration::from_secs(5),
);

/// The client's connection options (TLS, credentials, nkeys), for
/// [`NatsStreams::connect_with`].
pub use async_nats::ConnectOptions;
pub use consumer::Consumer;
pub use dead_letter::NatsDeadLetters;
/// The waits before redeliveries, for [`NatsSettings::retry_backoff`].
pub use earn_core::Backoff;
pub use lag::NatsLag;
pub use settings::{NatsSettings, StartFrom};
pub use streams::NatsStreams;
