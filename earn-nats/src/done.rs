//! The handlers that finished with a message left for redelivery, kept in
//! the stream `{stream}_done` under `{prefix}_done.{group}.{sequence}`, so a
//! redelivery runs only the handlers that did not finish.
//!
//! Written only when a delivery partly failed, read only for a message
//! delivered before, deleted with the message's acknowledgement or dead
//! letter: a message handled at the first try never touches the stream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use bytes::Bytes;
use earn_core::Error;

use crate::streams::{NatsStreams, transport};

/// How long a record outlives its last update when the message vanished
/// while pending (the stream purged, the group deleted): it is deleted
/// with the message otherwise. Expiring early would only run finished
/// handlers again.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// The records of one group: a stream keeping the last message of each
/// subject `{prefix}_done.{group}.{sequence}` (a key-value bucket built on
/// the stream API alone, which every JetStream server version answers).
#[derive(Clone)]
pub(crate) struct DoneStore {
    streams: NatsStreams,
    stream: stream::Stream,
    prefix: Arc<str>,
}

impl DoneStore {
    /// Opens the stream `{stream}_done`, creating it where missing.
    pub(crate) async fn open(streams: &NatsStreams) -> Result<DoneStore, Error> {
        let settings = streams.settings();
        let stream = streams
            .js()
            .get_or_create_stream(stream::Config {
                name: settings.done_stream(),
                subjects: vec![format!("{}_done.>", settings.prefix)],
                max_messages_per_subject: 1,
                max_age: KEEP,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(transport("create the finished-handlers stream"))?;
        Ok(DoneStore {
            streams: streams.clone(),
            stream,
            prefix: Arc::from(format!("{}_done.{}", settings.prefix, settings.group)),
        })
    }

    fn subject(&self, sequence: u64) -> String {
        format!("{}.{sequence}", self.prefix)
    }

    /// The handlers recorded as finished with message `sequence`.
    pub(crate) async fn get(&self, sequence: u64) -> Result<Vec<String>, Error> {
        let found = self
            .stream
            .get_last_raw_message_by_subject(&self.subject(sequence))
            .await;
        let message = match found {
            Ok(message) => message,
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new());
            }
            Err(error) => return Err(transport("read the finished handlers")(error)),
        };
        Ok(String::from_utf8_lossy(&message.payload)
            .lines()
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Records `names` as finished with message `sequence`.
    pub(crate) async fn put(&self, sequence: u64, names: &[Arc<str>]) -> Result<(), Error> {
        let text = names.iter().map(|n| &**n).collect::<Vec<_>>().join("\n");
        self.streams
            .send(
                self.subject(sequence),
                HeaderMap::new(),
                Bytes::from(text),
                "record the finished handlers",
            )
            .await?;
        Ok(())
    }

    /// Forgets message `sequence`.
    pub(crate) async fn forget(&self, sequence: u64) -> Result<(), Error> {
        self.stream
            .purge()
            .filter(self.subject(sequence))
            .await
            .map_err(transport("forget the finished handlers"))?;
        Ok(())
    }
}
