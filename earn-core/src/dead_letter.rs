//! One dead-letter API over every store: the bus's, the outbox's, a Redis
//! stream's, and any later transport's. Operators (the `earn` command, the
//! web console, your own code) see a list of [`DeadLetters`] sources and
//! one record type, [`DeadLetter`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::error::Error;
use crate::event::Event;

/// A boxed future of a [`DeadLetters`] method.
pub type DeadLetterFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// An event a store gave up delivering, from any source.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in its source: what [`DeadLetters::get`], `requeue` and
    /// `delete` take.
    pub id: String,
    /// The source that holds it: `bus`, `outbox`, `redis:{stream}`.
    pub source: String,
    /// The event's name, as stored (also when the stored form is not a
    /// valid event).
    pub name: String,
    /// The event, when the stored form is a valid one.
    pub event: Option<Event>,
    /// The stored form, when it is not a valid event.
    pub raw: Option<String>,
    /// The handler that gave up on it (several, comma-separated, where a
    /// transport records several); `None` when no handler ran: the
    /// relay gave up on a row, or the entry is not an event.
    pub handler: Option<String>,
    /// Why delivery gave up, the last time.
    pub reason: String,
    /// Attempts (bus), claims (outbox) or deliveries (Redis) made.
    pub attempts: u32,
    /// When delivery first failed, where the store knows it; else when it
    /// was dead-lettered.
    pub first_failed_at: SystemTime,
    /// When it was dead-lettered.
    pub last_failed_at: SystemTime,
}

impl DeadLetter {
    /// A dead letter of `source` with id `id`, about the event `name`,
    /// failed at `at` (first and last) after `attempts` for `reason`:
    /// what a store builds, before setting the event or the stored form
    /// and the handler.
    pub fn new(
        source: impl Into<String>,
        id: impl Into<String>,
        name: impl Into<String>,
        reason: impl Into<String>,
        attempts: u32,
        at: SystemTime,
    ) -> DeadLetter {
        DeadLetter {
            id: id.into(),
            source: source.into(),
            name: name.into(),
            event: None,
            raw: None,
            handler: None,
            reason: reason.into(),
            attempts,
            first_failed_at: at,
            last_failed_at: at,
        }
    }

    /// With the event (its name replaces the stored name).
    #[must_use]
    pub fn with_event(mut self, event: Event) -> DeadLetter {
        self.name = event.name().to_string();
        self.event = Some(event);
        self
    }

    /// With the stored form, when it is not a valid event.
    #[must_use]
    pub fn with_raw(mut self, raw: impl Into<String>) -> DeadLetter {
        self.raw = Some(raw.into());
        self
    }

    /// With the handler that gave up.
    #[must_use]
    pub fn with_handler(mut self, handler: impl Into<String>) -> DeadLetter {
        self.handler = Some(handler.into());
        self
    }

    /// With the time delivery first failed.
    #[must_use]
    pub fn first_failed(mut self, at: SystemTime) -> DeadLetter {
        self.first_failed_at = at;
        self
    }
}

impl fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.source, self.id, self.name)?;
        if let Some(handler) = &self.handler {
            write!(f, " handler {handler}")?;
        }
        write!(f, " after {} attempt(s): {}", self.attempts, self.reason)
    }
}

/// Which dead letters to list, count or purge. Every condition set must
/// hold; the default matches every dead letter.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use earn::DeadLetterFilter;
///
/// let stale_payments = DeadLetterFilter::default()
///     .event("payment.**")
///     .failed_before(SystemTime::now() - Duration::from_secs(3600));
/// assert!(stale_payments.validate().is_ok());
/// assert!(DeadLetterFilter::default().event("*.failed").validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterFilter {
    /// An event name (`payment.failed`), or a prefix pattern
    /// (`payment.**`: every name under `payment.`).
    pub event: Option<String>,
    /// The handler that gave up (an exact name).
    pub handler: Option<String>,
    /// Dead-lettered before this instant (older than).
    pub failed_before: Option<SystemTime>,
    /// Dead-lettered at or after this instant.
    pub failed_after: Option<SystemTime>,
}

impl DeadLetterFilter {
    /// Only the event `name`, or the names under a prefix (`payment.**`).
    #[must_use]
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Only those the handler `name` gave up on.
    #[must_use]
    pub fn handler(mut self, name: impl Into<String>) -> Self {
        self.handler = Some(name.into());
        self
    }

    /// Only those dead-lettered before `at`.
    #[must_use]
    pub fn failed_before(mut self, at: SystemTime) -> Self {
        self.failed_before = Some(at);
        self
    }

    /// Only those dead-lettered at or after `at`.
    #[must_use]
    pub fn failed_after(mut self, at: SystemTime) -> Self {
        self.failed_after = Some(at);
        self
    }

    /// The event condition as a name or a prefix: `Err` for a pattern a
    /// store could not match without reading every dead letter.
    pub fn validate(&self) -> Result<(), Error> {
        self.event_match().map(|_| ())
    }

    /// The event condition: `None` (any), an exact name, or a prefix
    /// (`payment.` for `payment.**`; empty for `**`).
    pub fn event_match(&self) -> Result<Option<EventMatch<'_>>, Error> {
        let Some(event) = self.event.as_deref() else {
            return Ok(None);
        };
        if let Some(prefix) = event.strip_suffix("**") {
            if prefix.is_empty() || prefix.ends_with('.') && !prefix.contains('*') {
                return Ok(Some(EventMatch::Prefix(prefix)));
            }
        } else if !event.contains('*') {
            return Ok(Some(EventMatch::Name(event)));
        }
        Err(Error::InvalidFilter {
            reason: format!(
                "dead letters are filtered by an event name (`payment.failed`) or a prefix \
                 (`payment.**`), not by `{event}`"
            )
            .into(),
        })
    }

    /// Whether `letter` meets every condition (for stores that filter in
    /// memory).
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.matches_parts(
            &letter.name,
            letter
                .handler
                .as_deref()
                .map(|handlers| handlers.split(", ")),
            letter.last_failed_at,
        )
    }

    /// [`matches`](Self::matches) on the parts a condition reads: the event
    /// name, the handlers that gave up, the time it was dead-lettered. For
    /// stores that can read these without decoding the whole record.
    pub fn matches_parts<'h>(
        &self,
        name: &str,
        handlers: Option<impl IntoIterator<Item = &'h str>>,
        failed_at: SystemTime,
    ) -> bool {
        let event = match self.event_match() {
            Ok(None) => true,
            Ok(Some(EventMatch::Name(wanted))) => name == wanted,
            Ok(Some(EventMatch::Prefix(prefix))) => name.starts_with(prefix),
            Err(_) => false,
        };
        let handler = match (self.handler.as_deref(), handlers) {
            (None, _) => true,
            (Some(wanted), Some(handlers)) => handlers.into_iter().any(|h| h == wanted),
            (Some(_), None) => false,
        };
        event
            && handler
            && self.failed_before.is_none_or(|at| failed_at < at)
            && self.failed_after.is_none_or(|at| failed_at >= at)
    }
}

/// The event condition of a [`DeadLetterFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventMatch<'a> {
    /// Exactly this name.
    Name(&'a str),
    /// Every name starting with this (which ends with `.`, or is empty).
    Prefix(&'a str),
}

/// A page of a list: skip `offset`, then at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Dead letters to skip.
    pub offset: u64,
    /// At most this many.
    pub limit: u64,
}

impl PageRequest {
    /// Page `page` (from 1) of `per_page`.
    pub fn page(page: u64, per_page: u64) -> PageRequest {
        PageRequest {
            offset: page.saturating_sub(1).saturating_mul(per_page),
            limit: per_page,
        }
    }

    /// The first `limit`.
    pub fn first(limit: u64) -> PageRequest {
        PageRequest { offset: 0, limit }
    }
}

/// A store of dead letters, as operators see it: list, count, inspect,
/// requeue, delete, purge. Implemented by the bus
/// ([`EventBus::dead_letter_source`](crate::EventBus::dead_letter_source)),
/// the outbox (`Db::outbox_dead_letters`) and Redis Streams
/// (`RedisStreams::dead_letter_source`), and by any later transport; one
/// conformance test runs against each.
///
/// Lists are oldest first (by the time they were dead-lettered, then id).
/// Methods return boxed futures so that sources can be held as
/// `Arc<dyn DeadLetters>`.
pub trait DeadLetters: Send + Sync + fmt::Debug {
    /// The source's name, as in [`DeadLetter::source`].
    fn source(&self) -> String;

    /// The page `page` of the dead letters `filter` matches, oldest first.
    fn list<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        page: PageRequest,
    ) -> DeadLetterFuture<'a, Vec<DeadLetter>>;

    /// How many dead letters `filter` matches.
    fn count<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64>;

    /// The dead letter `id`, or `None`.
    fn get<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, Option<DeadLetter>>;

    /// Sends the dead letter `id` back for delivery and removes it;
    /// [`Error::NoDeadLetter`] if it is not there.
    fn requeue<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()>;

    /// Deletes the dead letter `id`; [`Error::NoDeadLetter`] if it is not
    /// there.
    fn delete<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()>;

    /// Deletes every dead letter `filter` matches; returns how many.
    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64>;
}
