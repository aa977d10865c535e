//! Dead letters: the stream `{stream}_dead`, one message per event given
//! up on, under `{prefix}_dead.{group}`, with the reason and the handlers
//! in headers; listed, requeued and purged through earn's one
//! [`DeadLetters`] API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use bytes::Bytes;
use earn_core::{
    DeadLetter, DeadLetterFilter, DeadLetterFuture, DeadLetters, Error, Event, PageRequest,
};
use futures_util::StreamExt as _;

use crate::consumer::Handled;
use crate::streams::{NatsStreams, transport};
use crate::wire::{self, Content};

/// Longest reason stored, in bytes: a handler's error can be long.
const MAX_REASON: usize = 4096;

/// Why a message is given up on, and who had finished with it.
#[derive(Debug)]
pub(crate) struct Burial {
    pub(crate) reason: String,
    pub(crate) gave_up: Vec<String>,
    pub(crate) finished: Vec<String>,
}

/// Stores `one` in the dead-letter stream, as it was delivered, with the
/// burial's headers. Deduplicated by group and sequence: a retry after a
/// lost acknowledgement stores it once.
pub(crate) async fn bury(
    streams: &NatsStreams,
    one: &Handled,
    burial: &Burial,
) -> Result<(), Error> {
    let settings = streams.settings();
    let mut headers = copy_headers(one.message.headers.as_ref(), |name| {
        ![wire::HEADER_MSG_ID, wire::HEADER_FOR, wire::HEADER_FINISHED].contains(&name)
    });
    let name = wire::name_from_subject(&one.message.subject, &settings.prefix);
    let mut reason = wire::one_line(&burial.reason).into_owned();
    if reason.len() > MAX_REASON {
        let cut = (0..=MAX_REASON)
            .rev()
            .find(|&i| reason.is_char_boundary(i))
            .unwrap_or(0);
        reason.truncate(cut);
        reason.push('…');
    }
    headers.insert(
        wire::HEADER_MSG_ID,
        format!("dead-{}-{}", settings.group, one.sequence).as_str(),
    );
    headers.insert(wire::HEADER_NAME, name);
    headers.insert(wire::HEADER_REASON, reason.as_str());
    headers.insert(wire::HEADER_GROUP, &*settings.group);
    headers.insert(wire::HEADER_GAVE_UP, burial.gave_up.join(",").as_str());
    headers.insert(wire::HEADER_FINISHED, burial.finished.join(",").as_str());
    headers.insert(wire::HEADER_DELIVERIES, one.deliveries.to_string().as_str());
    headers.insert(
        wire::HEADER_FAILED_AT,
        crate::delayed::now_ms().to_string().as_str(),
    );
    streams
        .send(
            settings.dead_subject(&settings.group),
            headers,
            one.message.payload.clone(),
            "dead-letter",
        )
        .await?;
    Ok(())
}

/// The headers of `from` whose names `keep` accepts.
fn copy_headers(from: Option<&HeaderMap>, keep: impl Fn(&str) -> bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, values) in from.into_iter().flat_map(HeaderMap::iter) {
        let name: &str = name.as_ref();
        if keep(name) {
            for value in values {
                headers.append(name, value.as_str());
            }
        }
    }
    headers
}

/// The dead letters of a [`NatsStreams`] stream, every group's, as a
/// [`DeadLetters`] source named `nats:{stream}`: what `earn::admin`, the
/// `earn` command and the console list, requeue and purge. A dead letter's
/// id is its sequence in the stream `{stream}_dead`.
///
/// ```no_run
/// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), earn::Error> {
/// use earn::{DeadLetterFilter, DeadLetters, PageRequest};
/// let dead = streams.dead_letter_source();
/// for letter in dead.list(&DeadLetterFilter::default(), PageRequest::first(20)).await? {
///     println!("{} {}: {}", letter.id, letter.name, letter.reason);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NatsDeadLetters {
    streams: NatsStreams,
}

impl NatsStreams {
    /// This stream's dead letters as a [`DeadLetters`] source.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), earn::Error> {
    /// use earn::{DeadLetterFilter, DeadLetters};
    /// let waiting = streams.dead_letter_source().count(&DeadLetterFilter::default()).await?;
    /// println!("{waiting} dead letters");
    /// # Ok(()) }
    /// ```
    pub fn dead_letter_source(&self) -> NatsDeadLetters {
        NatsDeadLetters {
            streams: self.clone(),
        }
    }
}

/// A stored dead letter's parts, read from its headers.
struct Stored {
    message: StreamMessage,
}

impl Stored {
    fn header(&self, name: &str) -> Option<&str> {
        wire::header(Some(&self.message.headers), name)
    }

    fn name(&self) -> &str {
        self.header(wire::HEADER_NAME).unwrap_or("")
    }

    /// The handlers that gave up; `None` when none ran.
    fn gave_up(&self) -> Option<Vec<String>> {
        let list = wire::names(Some(&self.message.headers), wire::HEADER_GAVE_UP);
        (!list.is_empty()).then_some(list)
    }

    fn failed_at(&self) -> SystemTime {
        let ms = self
            .header(wire::HEADER_FAILED_AT)
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn matches(&self, filter: &DeadLetterFilter) -> bool {
        let gave_up = self.gave_up();
        let handlers = gave_up.as_ref().map(|list| list.iter().map(String::as_str));
        filter.matches_parts(self.name(), handlers, self.failed_at())
    }

    fn into_dead_letter(self, source: &str) -> DeadLetter {
        let at = self.failed_at();
        let attempts = self
            .header(wire::HEADER_DELIVERIES)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let letter = DeadLetter::new(
            source,
            self.message.sequence.to_string(),
            self.name(),
            self.header(wire::HEADER_REASON).unwrap_or(""),
            attempts,
            at,
        );
        let letter = match self.gave_up() {
            Some(handlers) => letter.with_handler(handlers.join(", ")),
            None => letter,
        };
        match wire::decode(Some(&self.message.headers), &self.message.payload) {
            Content::Event(data) => letter.with_event(Event::from_data(data)),
            Content::Invalid(_) => {
                letter.with_raw(String::from_utf8_lossy(&self.message.payload).into_owned())
            }
        }
    }
}

impl NatsDeadLetters {
    fn source_name(&self) -> String {
        format!("nats:{}", self.streams.settings().stream)
    }

    async fn stream(&self) -> Result<Stream, Error> {
        self.streams
            .js()
            .get_stream(self.streams.settings().dead_stream())
            .await
            .map_err(transport("open the dead letters"))
    }

    fn missing(&self, id: &str) -> Error {
        Error::NoDeadLetter {
            store: self.streams.settings().dead_stream().into(),
            id: id.to_owned(),
        }
    }

    /// The stream and the dead letter `id`, or [`Error::NoDeadLetter`].
    async fn found(&self, id: &str) -> Result<(Stream, Stored), Error> {
        let stream = self.stream().await?;
        let stored = self
            .exact(&stream, id)
            .await?
            .ok_or_else(|| self.missing(id))?;
        Ok((stream, stored))
    }

    /// The dead letter `id` exactly.
    async fn exact(&self, stream: &Stream, id: &str) -> Result<Option<Stored>, Error> {
        let Ok(sequence) = id.parse::<u64>() else {
            return Ok(None);
        };
        match stream.get_raw_message(sequence).await {
            Ok(message) => Ok(Some(Stored { message })),
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(transport("read a dead letter")(error)),
        }
    }

    /// Calls `each` on every dead letter `filter` matches, oldest first,
    /// until it returns `false`: one ordered consumer reads the stream
    /// from its first message to the last one there was at the start.
    async fn scan(
        &self,
        filter: &DeadLetterFilter,
        mut each: impl FnMut(Stored) -> bool,
    ) -> Result<(), Error> {
        filter.validate()?;
        let stream = self.stream().await?;
        let state = &stream.cached_info().state;
        if state.messages == 0 {
            return Ok(());
        }
        let last = state.last_sequence;
        let reader = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(transport("read the dead letters"))?;
        let mut messages = reader
            .messages()
            .await
            .map_err(transport("read the dead letters"))?;
        loop {
            let next = tokio::time::timeout(SCAN_IDLE, messages.next()).await;
            let message = match next {
                // Nothing more within the wait: the last ones were deleted.
                Err(_) | Ok(None) => break,
                Ok(Some(message)) => message.map_err(transport("read the dead letters"))?,
            };
            let info = message
                .info()
                .map_err(|error| transport_box("read the dead letters", error))?;
            let sequence = info.stream_sequence;
            let stored = Stored {
                message: StreamMessage {
                    subject: message.subject.clone(),
                    sequence,
                    headers: message.headers.clone().unwrap_or_default(),
                    payload: message.payload.clone(),
                    time: info.published,
                },
            };
            // Nothing left for this reader, or past the end there was.
            let done = info.pending == 0 || sequence >= last;
            if (stored.matches(filter) && !each(stored)) || done {
                break;
            }
        }
        Ok(())
    }
}

/// How long a scan waits for the next dead letter before it takes the
/// ones it was waiting for as deleted.
const SCAN_IDLE: Duration = Duration::from_secs(2);

/// A boxed client error as a transport error.
fn transport_box(operation: &'static str, source: async_nats::Error) -> Error {
    Error::Transport {
        transport: "nats",
        operation: operation.into(),
        source,
    }
}

impl DeadLetters for NatsDeadLetters {
    fn source(&self) -> String {
        self.source_name()
    }

    fn list<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        page: PageRequest,
    ) -> DeadLetterFuture<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            let source = self.source_name();
            let mut skip = page.offset;
            let mut out = Vec::new();
            if page.limit == 0 {
                filter.validate()?;
                return Ok(out);
            }
            self.scan(filter, |stored| {
                if skip > 0 {
                    skip -= 1;
                    return true;
                }
                out.push(stored.into_dead_letter(&source));
                (out.len() as u64) < page.limit
            })
            .await?;
            Ok(out)
        })
    }

    fn count<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move {
            filter.validate()?;
            if *filter == DeadLetterFilter::default() {
                let mut stream = self.stream().await?;
                let info = stream
                    .info()
                    .await
                    .map_err(transport("count the dead letters"))?;
                return Ok(info.state.messages);
            }
            let mut count = 0;
            self.scan(filter, |_| {
                count += 1;
                true
            })
            .await?;
            Ok(count)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, Option<DeadLetter>> {
        Box::pin(async move {
            let stream = self.stream().await?;
            let source = self.source_name();
            Ok(self
                .exact(&stream, id)
                .await?
                .map(|stored| stored.into_dead_letter(&source)))
        })
    }

    fn requeue<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(async move {
            let (stream, stored) = self.found(id).await?;
            let settings = self.streams.settings();
            let mut headers = copy_headers(Some(&stored.message.headers), |name| {
                !name.starts_with("Earn-") && name != wire::HEADER_MSG_ID
            });
            for keep in [wire::HEADER_VERSION, wire::HEADER_FINISHED] {
                if let Some(value) = stored.header(keep) {
                    headers.insert(keep, value);
                }
            }
            if let Some(group) = stored.header(wire::HEADER_GROUP) {
                headers.insert(wire::HEADER_FOR, group);
            }
            // A new id: the event's own may still be in the duplicate window.
            headers.insert(
                wire::HEADER_MSG_ID,
                format!("requeued-{}-{}", settings.stream, stored.message.sequence).as_str(),
            );
            let payload: Bytes = stored.message.payload.clone();
            self.streams
                .send(settings.subject(stored.name()), headers, payload, "requeue")
                .await?;
            stream
                .delete_message(stored.message.sequence)
                .await
                .map_err(transport("delete a requeued dead letter"))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(async move {
            let (stream, stored) = self.found(id).await?;
            stream
                .delete_message(stored.message.sequence)
                .await
                .map_err(transport("delete a dead letter"))?;
            Ok(())
        })
    }

    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move {
            filter.validate()?;
            let stream = self.stream().await?;
            if *filter == DeadLetterFilter::default() {
                let purged = stream
                    .purge()
                    .await
                    .map_err(transport("purge the dead letters"))?;
                return Ok(purged.purged);
            }
            let mut doomed = Vec::new();
            self.scan(filter, |stored| {
                doomed.push(stored.message.sequence);
                true
            })
            .await?;
            for sequence in &doomed {
                stream
                    .delete_message(*sequence)
                    .await
                    .map_err(transport("purge the dead letters"))?;
            }
            Ok(doomed.len() as u64)
        })
    }
}
