//! Operator access: dead letters, requeue, purge, lag, trim.

use earn_core::{Error, Event};
use redis::Value;

use crate::entry::{self, Content};
use crate::streams::{RedisStreams, transport};

/// An entry that was moved to the dead-letter stream `{stream}:dead`,
/// acknowledged in its group at the same time.
///
/// ```no_run
/// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
/// for letter in streams.dead_letters(100).await? {
///     println!("{} ({} deliveries in {}): {}", letter.id, letter.deliveries, letter.group, letter.reason);
///     if let Some(event) = &letter.event {
///         println!("  event {} {}", event.name(), event.id());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisDeadLetter {
    /// Its id in the dead-letter stream (for [`RedisStreams::requeue`]).
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
    /// The handlers of that group that had finished with it: a
    /// [`requeue`](RedisStreams::requeue) skips them.
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

impl RedisStreams {
    /// The oldest `limit` dead letters of the stream, all groups together.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// let letters = streams.dead_letters(10).await?;
    /// println!("{} dead letters", letters.len());
    /// # Ok(()) }
    /// ```
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<RedisDeadLetter>, Error> {
        let reply: Value = redis::cmd("XRANGE")
            .arg(&*self.inner.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await
            .map_err(transport("dead_letters"))?;
        let Value::Array(entries) = reply else {
            return Ok(Vec::new());
        };
        Ok(entries.into_iter().filter_map(dead_letter).collect())
    }

    /// Puts a dead letter back into the stream as a new entry and removes
    /// it from the dead letters, in one atomic step. The entry is marked for
    /// the group that gave up on it: that group handles it again (delivery
    /// count 1), the other groups of the stream, which handled it already,
    /// acknowledge it unread. In that group only the handlers that had not
    /// finished with it run (those that gave up); the
    /// [`finished`](RedisDeadLetter::finished) ones are skipped.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// for letter in streams.dead_letters(100).await? {
    ///     streams.requeue(&letter.id).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn requeue(&self, dead_letter_id: &str) -> Result<(), Error> {
        let id: Option<String> = self
            .inner
            .scripts
            .requeue
            .key(&*self.inner.dead)
            .key(&**self.stream_key())
            .arg(dead_letter_id)
            .invoke_async(&mut self.conn())
            .await
            .map_err(transport("requeue"))?;
        match id {
            Some(entry) => {
                tracing::info!(dead_letter = dead_letter_id, entry, "dead letter requeued");
                Ok(())
            }
            None => Err(Error::NoDeadLetter {
                store: self.inner.dead.to_string().into(),
                id: dead_letter_id.to_owned(),
            }),
        }
    }

    /// Deletes every dead letter of the stream; returns how many there were.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// let purged = streams.purge_dead_letters().await?;
    /// println!("purged {purged} dead letters");
    /// # Ok(()) }
    /// ```
    pub async fn purge_dead_letters(&self) -> Result<u64, Error> {
        self.inner
            .scripts
            .purge
            .key(&*self.inner.dead)
            .invoke_async(&mut self.conn())
            .await
            .map_err(transport("purge_dead_letters"))
    }

    /// How many dead letters the stream has (`XLEN {stream}:dead`).
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// println!("{} dead letters", streams.dead_letter_count().await?);
    /// # Ok(()) }
    /// ```
    pub async fn dead_letter_count(&self) -> Result<u64, Error> {
        redis::cmd("XLEN")
            .arg(&*self.inner.dead)
            .query_async(&mut self.conn())
            .await
            .map_err(transport("dead_letter_count"))
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
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&**self.stream_key())
            .query_async(&mut self.conn())
            .await
            .map_err(transport("lag"))?;
        let Value::Array(groups) = groups else {
            return Ok(lag);
        };
        for group in groups {
            let info = entry::pairs(group);
            let field = |name: &str| info.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            let is_ours = field("name")
                .and_then(entry::bytes)
                .is_some_and(|name| name == self.inner.settings.group.as_bytes());
            if is_ours {
                lag.pending = field("pending")
                    .and_then(entry::integer)
                    .map_or(0, |n| u64::try_from(n).unwrap_or(0));
                lag.lag = field("lag")
                    .and_then(entry::integer)
                    .and_then(|n| u64::try_from(n).ok());
            }
        }
        Ok(lag)
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
