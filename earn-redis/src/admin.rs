//! Operator access: dead letters, requeue, purge, lag, trim.

use std::time::{Duration, UNIX_EPOCH};

use earn_core::{
    DeadLetter, DeadLetterFilter, DeadLetterFuture, DeadLetters, Error, Event, PageRequest,
};
use redis::Value;

use crate::entry::{self, Content};
use crate::streams::{RedisStreams, transport};

/// An entry of the dead-letter stream `{stream}:dead` as stored, with
/// what only Redis records: the group, the handlers that gave up and those
/// that had finished, the original entry. For inspection and tests;
/// operators use [`RedisStreams::dead_letter_source`], whose records are
/// those of every other source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisDeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The event, if the entry held a valid one.
    pub event: Option<Event>,
    /// The original entry's fields, as stored (`v`, `name`, `event` for an
    /// entry earn published).
    pub raw: Vec<(String, Vec<u8>)>,
    /// Why it was dead-lettered: the handler failures, or why the entry is
    /// not a valid event.
    pub reason: String,
    /// How many times the group had delivered it.
    pub deliveries: u32,
    /// The consumer group that gave up on it.
    pub group: String,
    /// The handlers of that group that gave up on it (none when no
    /// handler ran: not an event, or found past `max_deliveries`).
    pub gave_up: Vec<String>,
    /// The handlers of that group that had finished with it: a requeue
    /// skips them.
    pub finished: Vec<String>,
    /// The entry's id in the stream when it was dead-lettered.
    pub entry: String,
}

/// How far behind a consumer group is ([`RedisStreams::lag`]).
///
/// ```no_run
/// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
/// let lag = streams.lag().await?;
/// println!("{} pending, {:?} not yet read, {} in the stream, {} delayed",
///          lag.pending, lag.lag, lag.length, lag.delayed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StreamLag {
    /// Entries read by the group's consumers and not yet acknowledged.
    pub pending: u64,
    /// Entries the group has not read yet; `None` when Redis cannot tell
    /// (entries were deleted with `XDEL` after the group's position).
    pub lag: Option<u64>,
    /// Entries in the stream (acknowledged ones included, until trimmed).
    pub length: u64,
    /// Events waiting in `{stream}:delayed` for their time.
    pub delayed: u64,
}

/// One consumer group of a stream, as `XINFO GROUPS` and `XINFO
/// CONSUMERS` report it ([`RedisStreams::groups`]).
///
/// ```no_run
/// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
/// for group in streams.groups().await? {
///     println!("{}: {} pending, {:?} unread", group.name, group.pending, group.lag);
///     for consumer in &group.consumers {
///         println!("  {}: {} pending, idle {:?}", consumer.name, consumer.pending, consumer.idle);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// Entries its consumers read and have not acknowledged.
    pub pending: u64,
    /// Entries it has not read yet; `None` when Redis cannot tell
    /// (entries were deleted with `XDEL` after its position).
    pub lag: Option<u64>,
    /// The id of the last entry delivered to one of its consumers.
    pub last_delivered: String,
    /// Its consumers, as Redis lists them.
    pub consumers: Vec<ConsumerInfo>,
}

/// One consumer of a group ([`GroupInfo::consumers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// The consumer's name ([`RedisSettings::consumer`](crate::RedisSettings::consumer)).
    pub name: String,
    /// Entries it read and has not acknowledged.
    pub pending: u64,
    /// Since it last read or claimed an entry.
    pub idle: Duration,
}

impl RedisStreams {
    /// The stream's dead letters, `{stream}:dead`, as a
    /// [`DeadLetters`] source, all groups together: list, count, requeue,
    /// delete, purge.
    ///
    /// A requeue puts the dead letter back into the stream as a new entry
    /// and removes it from the dead letters, in one atomic step. The entry
    /// is marked for the group that gave up on it: that group handles it
    /// again (delivery count 1), the other groups of the stream, which
    /// handled it already, acknowledge it unread. In that group only the
    /// handlers that had not finished with it run (those that gave up).
    ///
    /// Counting or listing with a filter reads the whole dead-letter stream
    /// (Redis cannot filter it); without one, a count is `XLEN` and a page
    /// reads only up to its end.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// use earn::{DeadLetterFilter, DeadLetters, PageRequest};
    ///
    /// let dead = streams.dead_letter_source();
    /// for letter in dead.list(&DeadLetterFilter::default(), PageRequest::first(100)).await? {
    ///     println!("{letter}");
    ///     dead.requeue(&letter.id).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn dead_letter_source(&self) -> RedisDeadLetters {
        RedisDeadLetters {
            streams: self.clone(),
        }
    }

    /// Up to `count` dead letters after the id `after` (exclusive; from
    /// the start with `None`).
    async fn dead_range(&self, after: Option<&str>, count: usize) -> Result<Vec<Value>, Error> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let reply: Value = redis::cmd("XRANGE")
            .arg(&*self.inner.dead)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn())
            .await
            .map_err(transport("dead_letters"))?;
        let Value::Array(entries) = reply else {
            return Ok(Vec::new());
        };
        Ok(entries)
    }

    /// The dead letters `filter` matches, oldest first, from the
    /// `offset`th, at most `limit`: read in batches, up to the last one
    /// needed.
    async fn dead_matching(
        &self,
        filter: &DeadLetterFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<DeadLetter>, Error> {
        const BATCH: usize = 1000;
        let source = self.dead_source();
        let mut skipped = 0;
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        while (found.len() as u64) < limit {
            let batch = self.dead_range(after.as_deref(), BATCH).await?;
            let Some(last) = batch.last().and_then(entry_id) else {
                break;
            };
            after = Some(last.to_owned());
            let full = batch.len() == BATCH;
            for entry in batch {
                // Decided on the id, `name` and `dead:gave_up` alone where
                // the entry has them: only a match on the page is decoded,
                // event and all.
                let quick = quick_match(filter, &entry);
                if quick == Some(false) {
                    continue;
                }
                if quick == Some(true) && skipped < offset {
                    skipped += 1;
                    continue;
                }
                let Some(letter) = dead_letter(entry) else {
                    continue;
                };
                let letter = letter.into_dead_letter(&source);
                if quick.is_none() && !filter.matches(&letter) {
                    continue;
                }
                if skipped < offset {
                    skipped += 1;
                } else if (found.len() as u64) < limit {
                    found.push(letter);
                }
            }
            if !full {
                break;
            }
        }
        Ok(found)
    }

    /// How many dead letters `filter` matches: the whole dead-letter stream
    /// read in batches, an entry decoded only when its fields cannot tell.
    async fn dead_count_matching(&self, filter: &DeadLetterFilter) -> Result<u64, Error> {
        const BATCH: usize = 1000;
        let source = self.dead_source();
        let mut count = 0;
        let mut after: Option<String> = None;
        loop {
            let batch = self.dead_range(after.as_deref(), BATCH).await?;
            let Some(last) = batch.last().and_then(entry_id) else {
                break;
            };
            after = Some(last.to_owned());
            let full = batch.len() == BATCH;
            for entry in batch {
                let matched = match quick_match(filter, &entry) {
                    Some(matched) => matched,
                    None => dead_letter(entry)
                        .is_some_and(|letter| filter.matches(&letter.into_dead_letter(&source))),
                };
                count += u64::from(matched);
            }
            if !full {
                break;
            }
        }
        Ok(count)
    }

    /// The oldest `limit` entries of the dead-letter stream as stored, all
    /// groups together (see [`RedisDeadLetter`]).
    pub async fn dead_letter_entries(&self, limit: usize) -> Result<Vec<RedisDeadLetter>, Error> {
        let entries = self.dead_range(None, limit).await?;
        Ok(entries.into_iter().filter_map(dead_letter).collect())
    }

    fn dead_source(&self) -> String {
        format!("redis:{}", self.inner.settings.get_stream())
    }

    fn no_dead_letter(&self, id: &str) -> Error {
        Error::NoDeadLetter {
            store: self.inner.dead.to_string().into(),
            id: id.to_owned(),
        }
    }

    /// This group's backlog: entries pending, entries not yet read, the
    /// stream's length and the delayed events. Zeros if the stream does not
    /// exist yet.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// let lag = streams.lag().await?;
    /// if lag.pending + lag.lag.unwrap_or(0) > 10_000 {
    ///     println!("consumers are falling behind");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lag(&self) -> Result<StreamLag, Error> {
        let (length, delayed, exists): (u64, u64, bool) = redis::pipe()
            .cmd("XLEN")
            .arg(&**self.stream_key())
            .cmd("ZCARD")
            .arg(&*self.inner.delayed)
            .cmd("EXISTS")
            .arg(&**self.stream_key())
            .query_async(&mut self.conn())
            .await
            .map_err(transport("lag"))?;
        let mut lag = StreamLag {
            length,
            delayed,
            ..StreamLag::default()
        };
        if !exists {
            lag.lag = Some(0);
            return Ok(lag);
        }
        let ours = self
            .group_infos()
            .await?
            .into_iter()
            .find(|group| group.name == *self.inner.settings.group);
        if let Some(group) = ours {
            lag.pending = group.pending;
            lag.lag = group.lag;
        }
        Ok(lag)
    }

    /// Every consumer group of the stream, with its consumers, each sorted
    /// by name: pending entries, lag and idle times, for spotting a stuck
    /// or dead consumer. Empty if the stream does not exist yet.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// use std::time::Duration;
    /// for group in streams.groups().await? {
    ///     for consumer in group.consumers.iter().filter(|c| c.pending > 0) {
    ///         if consumer.idle > Duration::from_secs(600) {
    ///             println!("{} of {} holds {} entries and is idle", consumer.name, group.name, consumer.pending);
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn groups(&self) -> Result<Vec<GroupInfo>, Error> {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&**self.stream_key())
            .query_async(&mut self.conn())
            .await
            .map_err(transport("groups"))?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut groups = self.group_infos().await?;
        for group in &mut groups {
            let reply: Value = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&**self.stream_key())
                .arg(&group.name)
                .query_async(&mut self.conn())
                .await
                .map_err(transport("groups"))?;
            if let Value::Array(consumers) = reply {
                group.consumers = consumers.into_iter().map(consumer_info).collect();
                group.consumers.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// `XINFO GROUPS`, without the consumers.
    async fn group_infos(&self) -> Result<Vec<GroupInfo>, Error> {
        let reply: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&**self.stream_key())
            .query_async(&mut self.conn())
            .await
            .map_err(transport("groups"))?;
        let Value::Array(groups) = reply else {
            return Ok(Vec::new());
        };
        Ok(groups.into_iter().map(group_info).collect())
    }

    /// Trims the stream now, as consumers do every two seconds: towards
    /// [`max_len`](crate::RedisSettings::max_len) entries, never past an
    /// entry that a group of the stream has pending or has not read yet.
    /// Returns how many entries were deleted.
    ///
    /// Each call also records where the stream ends (in
    /// `{stream}:marks`); a trim cuts at the newest such mark that is at
    /// least `max_len` entries from the end, so the first calls on a stream
    /// may delete nothing.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// let deleted = streams.trim().await?;
    /// println!("trimmed {deleted} entries");
    /// # Ok(()) }
    /// ```
    pub async fn trim(&self) -> Result<u64, Error> {
        self.inner
            .scripts
            .trim
            .key(&**self.stream_key())
            .key(&*self.inner.marks)
            .arg(self.inner.settings.max_len)
            .invoke_async(&mut self.conn())
            .await
            .map_err(transport("trim"))
    }
}

/// A field of an `XINFO` reply, by name.
fn field<'a>(info: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    info.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A non-negative count field of an `XINFO` reply (0 if absent).
fn count_field(info: &[(String, Value)], name: &str) -> u64 {
    field(info, name)
        .and_then(entry::integer)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// A text field of an `XINFO` reply (empty if absent).
fn text_field(info: &[(String, Value)], name: &str) -> String {
    field(info, name)
        .and_then(entry::bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// Parses one group of `XINFO GROUPS`.
fn group_info(value: Value) -> GroupInfo {
    let info = entry::pairs(value);
    GroupInfo {
        name: text_field(&info, "name"),
        pending: count_field(&info, "pending"),
        lag: field(&info, "lag")
            .and_then(entry::integer)
            .and_then(|n| u64::try_from(n).ok()),
        last_delivered: text_field(&info, "last-delivered-id"),
        consumers: Vec::new(),
    }
}

/// Parses one consumer of `XINFO CONSUMERS`.
fn consumer_info(value: Value) -> ConsumerInfo {
    let info = entry::pairs(value);
    ConsumerInfo {
        name: text_field(&info, "name"),
        pending: count_field(&info, "pending"),
        idle: Duration::from_millis(count_field(&info, "idle")),
    }
}

/// The id of an entry of an `XRANGE` reply.
fn entry_id(entry: &Value) -> Option<&str> {
    let Value::Array(parts) = entry else {
        return None;
    };
    parts
        .first()
        .and_then(entry::bytes)
        .and_then(|id| std::str::from_utf8(id).ok())
}

/// Whether an entry of the dead-letter stream matches `filter`, read from
/// its id, `name` and `dead:gave_up` fields without decoding it; `None`
/// when it lacks a `name` (not an entry earn published: decode it).
fn quick_match(filter: &DeadLetterFilter, entry: &Value) -> Option<bool> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let millis: u64 = entry_id(entry)?.split('-').next()?.parse().ok()?;
    let Some(Value::Array(fields)) = parts.get(1) else {
        return None;
    };
    let field = |wanted: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| entry::bytes(&pair[0]) == Some(wanted.as_bytes()))
            .and_then(|pair| entry::bytes(&pair[1]))
            .and_then(|value| std::str::from_utf8(value).ok())
    };
    let name = field(entry::FIELD_NAME)?;
    let handlers = field("dead:gave_up")
        .filter(|names| !names.is_empty())
        .map(|names| names.lines().filter(|name| !name.is_empty()));
    Some(filter.matches_parts(name, handlers, UNIX_EPOCH + Duration::from_millis(millis)))
}

/// Parses one entry of the dead-letter stream.
fn dead_letter(value: Value) -> Option<RedisDeadLetter> {
    let Value::Array(parts) = value else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = entry::string(parts.next()?)?;
    let fields = parts.next().unwrap_or(Value::Nil);
    let mut letter = RedisDeadLetter {
        id,
        event: None,
        raw: Vec::new(),
        reason: String::new(),
        deliveries: 0,
        group: String::new(),
        gave_up: Vec::new(),
        finished: Vec::new(),
        entry: String::new(),
    };
    for (key, value) in entry::pairs(fields) {
        let text = || entry::bytes(&value).map(|b| String::from_utf8_lossy(b).into_owned());
        match key.as_str() {
            "dead:reason" => letter.reason = text().unwrap_or_default(),
            "dead:group" => letter.group = text().unwrap_or_default(),
            "dead:entry" => letter.entry = text().unwrap_or_default(),
            "dead:gave_up" => letter.gave_up = entry::names(&text().unwrap_or_default()),
            "dead:finished" => letter.finished = entry::names(&text().unwrap_or_default()),
            "dead:deliveries" => {
                letter.deliveries = entry::integer(&value)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0);
            }
            _ => {
                let bytes = entry::bytes(&value).map(<[u8]>::to_vec).unwrap_or_default();
                letter.raw.push((key, bytes));
            }
        }
    }
    let original = letter
        .raw
        .iter()
        .flat_map(|(k, v)| {
            [
                Value::BulkString(k.as_bytes().to_vec()),
                Value::BulkString(v.clone()),
            ]
        })
        .collect();
    if let Content::Event(data) = entry::decode(Value::Array(original)) {
        letter.event = Some(Event::from_data(data));
    }
    Some(letter)
}

impl RedisDeadLetter {
    /// The record every dead-letter source shares. The time is the dead
    /// letter's id, in milliseconds, in the dead-letter stream.
    fn into_dead_letter(self, source: &str) -> DeadLetter {
        let millis = self
            .id
            .split('-')
            .next()
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(0);
        let at = UNIX_EPOCH + Duration::from_millis(millis);
        let stored_name = self
            .raw
            .iter()
            .find(|(key, _)| key == "name")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        let mut letter = DeadLetter::new(
            source,
            self.id,
            stored_name,
            self.reason,
            self.deliveries,
            at,
        );
        if !self.gave_up.is_empty() {
            letter = letter.with_handler(self.gave_up.join(", "));
        }
        match self.event {
            Some(event) => letter.with_event(event),
            None => {
                let raw = self
                    .raw
                    .iter()
                    .map(|(key, value)| format!("{key}={}", String::from_utf8_lossy(value)))
                    .collect::<Vec<_>>()
                    .join(" ");
                letter.with_raw(raw)
            }
        }
    }
}

/// Whether `id` can be a stream entry id (`1700000000000-0`): Redis
/// refuses a command naming any other, where a dead letter that is not
/// there is what the caller needs to hear.
fn is_entry_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let digits = |part: Option<&str>| {
        part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    digits(parts.next()) && parts.next().is_none_or(|seq| digits(Some(seq)))
}

/// A Redis stream's dead letters as a [`DeadLetters`] source: from
/// [`RedisStreams::dead_letter_source`].
#[derive(Debug, Clone)]
pub struct RedisDeadLetters {
    streams: RedisStreams,
}

impl DeadLetters for RedisDeadLetters {
    fn source(&self) -> String {
        self.streams.dead_source()
    }

    fn list<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        page: PageRequest,
    ) -> DeadLetterFuture<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            filter.validate()?;
            self.streams
                .dead_matching(filter, page.offset, page.limit)
                .await
        })
    }

    fn count<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move {
            filter.validate()?;
            if *filter == DeadLetterFilter::default() {
                return redis::cmd("XLEN")
                    .arg(&*self.streams.inner.dead)
                    .query_async(&mut self.streams.conn())
                    .await
                    .map_err(transport("dead_letter_count"));
            }
            self.streams.dead_count_matching(filter).await
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, Option<DeadLetter>> {
        Box::pin(async move {
            if !is_entry_id(id) {
                return Ok(None);
            }
            let reply: Value = redis::cmd("XRANGE")
                .arg(&*self.streams.inner.dead)
                .arg(id)
                .arg(id)
                .query_async(&mut self.streams.conn())
                .await
                .map_err(transport("dead_letter"))?;
            let Value::Array(entries) = reply else {
                return Ok(None);
            };
            let source = self.streams.dead_source();
            Ok(entries
                .into_iter()
                .find_map(dead_letter)
                .map(|letter| letter.into_dead_letter(&source)))
        })
    }

    fn requeue<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(async move {
            let streams = &self.streams;
            if !is_entry_id(id) {
                return Err(streams.no_dead_letter(id));
            }
            let entry: Option<String> = streams
                .inner
                .scripts
                .requeue
                .key(&*streams.inner.dead)
                .key(&**streams.stream_key())
                .arg(id)
                .invoke_async(&mut streams.conn())
                .await
                .map_err(transport("requeue"))?;
            match entry {
                Some(entry) => {
                    tracing::info!(dead_letter = id, entry, "dead letter requeued");
                    Ok(())
                }
                None => Err(streams.no_dead_letter(id)),
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(async move {
            if !is_entry_id(id) {
                return Err(self.streams.no_dead_letter(id));
            }
            let deleted: u64 = redis::cmd("XDEL")
                .arg(&*self.streams.inner.dead)
                .arg(id)
                .query_async(&mut self.streams.conn())
                .await
                .map_err(transport("delete_dead_letter"))?;
            match deleted {
                0 => Err(self.streams.no_dead_letter(id)),
                _ => Ok(()),
            }
        })
    }

    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move {
            filter.validate()?;
            let streams = &self.streams;
            if *filter == DeadLetterFilter::default() {
                return streams
                    .inner
                    .scripts
                    .purge
                    .key(&*streams.inner.dead)
                    .invoke_async(&mut streams.conn())
                    .await
                    .map_err(transport("purge_dead_letters"));
            }
            let ids: Vec<String> = streams
                .dead_matching(filter, 0, u64::MAX)
                .await?
                .into_iter()
                .map(|letter| letter.id)
                .collect();
            let mut purged = 0;
            for chunk in ids.chunks(1000) {
                let deleted: u64 = redis::cmd("XDEL")
                    .arg(&*streams.inner.dead)
                    .arg(chunk)
                    .query_async(&mut streams.conn())
                    .await
                    .map_err(transport("purge_dead_letters"))?;
                purged += deleted;
            }
            Ok(purged)
        })
    }
}
