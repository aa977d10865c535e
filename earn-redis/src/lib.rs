#![doc = include_str!("../docs/crate.md")]

mod admin;
mod backoff;
mod consumer;
mod entry;
mod publisher;
mod scripts;
mod settings;
mod streams;

pub use admin::{RedisDeadLetter, StreamLag};
pub use consumer::Consumer;
pub use settings::{RedisSettings, StartFrom};
pub use streams::RedisStreams;
