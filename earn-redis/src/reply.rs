//! Request/reply over Redis: a requester waits on a list of its own
//! (`{stream}:replies:{uuid}`), read by one task with `BLPOP` on a
//! connection of its own; a responder's bus pushes the reply there
//! (`LPUSH`, and the list expires if nobody reads it).

use std::sync::Arc;
use std::time::Duration;

use earn_core::reply::{ReplyInbox, ReplyRoute, ReplyWaiters};
use earn_core::{BoxError, Event, EventData, SinkFuture};
use redis::aio::ConnectionManager;

use crate::streams::{RESPONSE_TIMEOUT, RedisStreams, connection_config};

/// How long an unread reply list is kept.
const REPLY_TTL_SECONDS: i64 = 300;

/// The reply inbox of one `RedisStreams`: a list of its own, read by a
/// task that stops with it.
pub(crate) fn start(streams: &RedisStreams) -> ReplyInbox {
    let key: Arc<str> = format!(
        "{}:replies:{}",
        streams.settings().get_stream(),
        uuid::Uuid::now_v7().simple()
    )
    .into();
    let waiters = ReplyWaiters::default();
    let reader = tokio::spawn(listen(
        streams.inner.client.clone(),
        key.clone(),
        waiters.clone(),
    ));
    ReplyInbox::new(format!("redis:{key}"), waiters, reader)
}

/// Reads the reply list for ever (until aborted), reconnecting after an
/// error; each reply goes to the request waiting for it.
async fn listen(client: redis::Client, key: Arc<str>, waiters: ReplyWaiters) {
    loop {
        // The block (1 s) stays well inside the response timeout.
        let connected =
            ConnectionManager::new_with_config(client.clone(), connection_config(RESPONSE_TIMEOUT))
                .await;
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, list = &*key, "cannot connect to read replies; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let popped: Result<Option<(String, Vec<u8>)>, _> = redis::cmd("BLPOP")
                .arg(&*key)
                .arg(1)
                .query_async(&mut conn)
                .await;
            match popped {
                Ok(Some((_, json))) => match serde_json::from_slice::<EventData>(&json) {
                    Ok(data) => {
                        waiters.deliver(Event::from_data(data));
                    }
                    Err(error) => {
                        tracing::warn!(%error, list = &*key, "a reply is not an event; dropped");
                    }
                },
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, list = &*key, "reading replies failed; reconnecting in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// Where a responder's bus sends replies to requests that came through
/// Redis: `LPUSH` to the requester's list, sealed by the settings'
/// envelope.
pub(crate) struct RedisReplies(pub(crate) RedisStreams);

impl ReplyRoute for RedisReplies {
    fn send<'a>(&'a self, address: &'a str, reply: Event) -> SinkFuture<'a> {
        Box::pin(async move {
            let reply = self.0.settings().get_envelope().seal(reply)?;
            let json = serde_json::to_vec(reply.data()).map_err(BoxError::from)?;
            redis::pipe()
                .atomic()
                .cmd("LPUSH")
                .arg(address)
                .arg(json)
                .ignore()
                .cmd("EXPIRE")
                .arg(address)
                .arg(REPLY_TTL_SECONDS)
                .ignore()
                .query_async::<()>(&mut self.0.conn())
                .await
                .map_err(BoxError::from)
        })
    }
}
