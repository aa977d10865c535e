//! Operator access to delayed events: the sorted set `{stream}:delayed`
//! that [`RedisStreams::publish_delayed`] fills, listed by due time; one of
//! them run now or deleted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use earn_core::{Error, Event, EventData, PageRequest};
use redis::Value;
use uuid::Uuid;

use crate::entry;
use crate::streams::{RedisStreams, transport};

/// An event waiting in `{stream}:delayed` for its time
/// ([`RedisStreams::delayed`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DelayedEvent {
    /// The event's id: what [`RedisStreams::run_delayed`] and
    /// [`RedisStreams::delete_delayed`] take. `None` when the stored form
    /// is not a valid event (it is still moved to the stream when due).
    pub id: Option<Uuid>,
    /// The event's name, as stored.
    pub name: String,
    /// When it falls due, on the Redis server's clock.
    pub due: SystemTime,
    /// The event, when the stored form is a valid one.
    pub event: Option<Event>,
}

impl RedisStreams {
    /// A page of the delayed events, soonest due first.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), earn::Error> {
    /// use earn::PageRequest;
    /// for delayed in streams.delayed(PageRequest::first(20)).await? {
    ///     println!("{} {:?} due at {:?}", delayed.name, delayed.id, delayed.due);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn delayed(&self, page: PageRequest) -> Result<Vec<DelayedEvent>, Error> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let stop = page.offset.saturating_add(page.limit - 1);
        let reply: Value = redis::cmd("ZRANGE")
            .arg(&*self.inner.delayed)
            .arg(page.offset)
            .arg(stop.min(i64::MAX as u64))
            .arg("WITHSCORES")
            .query_async(&mut self.conn())
            .await
            .map_err(transport("delayed"))?;
        Ok(scored_members(reply)
            .into_iter()
            .map(|(member, score)| delayed_event(&member, score))
            .collect())
    }

    /// The delayed event `id`, or `None` if it is not waiting. Found with
    /// `ZSCAN … MATCH *{id}*` (the set is keyed by due time, not id), as
    /// are those `run_delayed` and `delete_delayed` act on: cheap for an
    /// operator's call, not for a hot path over a large set.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams, id: uuid::Uuid) -> Result<(), earn::Error> {
    /// if let Some(delayed) = streams.delayed_event(id).await? {
    ///     println!("{} due at {:?}", delayed.name, delayed.due);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn delayed_event(&self, id: Uuid) -> Result<Option<DelayedEvent>, Error> {
        Ok(self
            .find_delayed(id)
            .await?
            .map(|(member, score)| delayed_event(&member, score)))
    }

    /// Moves the delayed event `id` into the stream now, whatever its due
    /// time, in one atomic step (a consumer moving it at the same moment
    /// cannot append it twice). Returns the new entry's id;
    /// [`Error::NoDelayedEvent`] if it is not waiting.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams, id: uuid::Uuid) -> Result<(), earn::Error> {
    /// let entry = streams.run_delayed(id).await?;
    /// println!("appended as {entry}");
    /// # Ok(()) }
    /// ```
    pub async fn run_delayed(&self, id: Uuid) -> Result<String, Error> {
        let Some((member, _)) = self.find_delayed(id).await? else {
            return Err(self.no_delayed(id));
        };
        let entry: Option<String> = self
            .inner
            .scripts
            .run_delayed
            .key(&*self.inner.delayed)
            .key(&**self.stream_key())
            .arg(member)
            .invoke_async(&mut self.conn())
            .await
            .map_err(transport("run_delayed"))?;
        let entry = entry.ok_or_else(|| self.no_delayed(id))?;
        tracing::info!(event_id = %id, entry, "delayed event run now");
        Ok(entry)
    }

    /// Deletes the delayed event `id` without running it;
    /// [`Error::NoDelayedEvent`] if it is not waiting.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams, id: uuid::Uuid) -> Result<(), earn::Error> {
    /// streams.delete_delayed(id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_delayed(&self, id: Uuid) -> Result<(), Error> {
        let Some((member, _)) = self.find_delayed(id).await? else {
            return Err(self.no_delayed(id));
        };
        let removed: u64 = redis::cmd("ZREM")
            .arg(&*self.inner.delayed)
            .arg(member)
            .query_async(&mut self.conn())
            .await
            .map_err(transport("delete_delayed"))?;
        match removed {
            0 => Err(self.no_delayed(id)),
            _ => {
                tracing::info!(event_id = %id, "delayed event deleted");
                Ok(())
            }
        }
    }

    /// The member (and score) holding the event `id`: `ZSCAN` for members
    /// containing the id (a UUID holds no glob character), each checked by
    /// parsing it.
    async fn find_delayed(&self, id: Uuid) -> Result<Option<(Vec<u8>, f64)>, Error> {
        let pattern = format!("*{id}*");
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Value) = redis::cmd("ZSCAN")
                .arg(&*self.inner.delayed)
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn())
                .await
                .map_err(transport("find_delayed"))?;
            let hit = scored_members(found)
                .into_iter()
                .find(|(member, _)| parse_member(member).1.is_some_and(|e| e.id() == id));
            if hit.is_some() {
                return Ok(hit);
            }
            if next == 0 {
                return Ok(None);
            }
            cursor = next;
        }
    }

    fn no_delayed(&self, id: Uuid) -> Error {
        Error::NoDelayedEvent {
            store: self.inner.delayed.to_string(),
            id: id.to_string(),
        }
    }
}

/// The `(member, score)` pairs of a `ZRANGE … WITHSCORES` or `ZSCAN` reply
/// (a flat list in RESP2, pairs in RESP3).
fn scored_members(reply: Value) -> Vec<(Vec<u8>, f64)> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    let score = |value: &Value| match value {
        Value::Double(d) => Some(*d),
        other => std::str::from_utf8(entry::bytes(other)?).ok()?.parse().ok(),
    };
    let mut pairs = Vec::new();
    let mut items = items.into_iter();
    while let Some(item) = items.next() {
        let (member, value) = match item {
            Value::Array(pair) if pair.len() == 2 => {
                let mut pair = pair.into_iter();
                (pair.next(), pair.next())
            }
            member => (Some(member), items.next()),
        };
        let member = member.as_ref().and_then(entry::bytes).map(<[u8]>::to_vec);
        if let (Some(member), Some(score)) = (member, value.as_ref().and_then(score)) {
            pairs.push((member, score));
        }
    }
    pairs
}

/// The stored name and the event of a member (`name\njson`, or a bare
/// json).
fn parse_member(member: &[u8]) -> (String, Option<Event>) {
    let (name, json) = match member.iter().position(|&b| b == b'\n') {
        Some(cut) => (Some(&member[..cut]), &member[cut + 1..]),
        None => (None, member),
    };
    let event = serde_json::from_slice::<EventData>(json)
        .ok()
        .map(Event::from_data);
    let name = match (name, &event) {
        (Some(name), _) => String::from_utf8_lossy(name).into_owned(),
        (None, Some(event)) => event.name().to_string(),
        (None, None) => String::new(),
    };
    (name, event)
}

fn delayed_event(member: &[u8], score: f64) -> DelayedEvent {
    let (name, event) = parse_member(member);
    // Scores are whole milliseconds since the epoch.
    let due = UNIX_EPOCH + Duration::from_millis(score.max(0.0) as u64);
    DelayedEvent {
        id: event.as_ref().map(Event::id),
        name,
        due,
        event,
    }
}
