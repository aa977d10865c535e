//! Publishing in pipelines: concurrent `publish` calls queue their entry
//! for one task, which sends everything queued as one pipeline of `XADD`s
//! and answers each caller. Under load one round trip carries hundreds of
//! events; alone, an event goes out at once.

use std::sync::Arc;

use earn_core::EventName;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use redis::Value;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use crate::entry::{self, FIELD_EVENT, FIELD_NAME, FIELD_VERSION, VERSION};

/// Most entries in one pipeline.
const PIPELINE: usize = 512;
/// Publishes waiting for the task before `publish` waits for room.
const QUEUE: usize = 8192;

/// One `XADD` to send; `reply` gets the entry id.
pub(crate) struct Request {
    pub(crate) name: EventName,
    pub(crate) json: Vec<u8>,
    pub(crate) reply: oneshot::Sender<Result<String, redis::RedisError>>,
}

/// Starts the publishing task; it ends when every sender is dropped.
pub(crate) fn spawn(conn: ConnectionManager, stream: Arc<str>) -> mpsc::Sender<Request> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(run(conn, stream, receiver));
    sender
}

/// Pipelines sent at once: while Redis works through one, the next is
/// being built and sent, so neither side waits for the other.
const IN_FLIGHT: usize = 4;

async fn run(conn: ConnectionManager, stream: Arc<str>, mut queue: mpsc::Receiver<Request>) {
    let mut sending = FuturesUnordered::new();
    let mut open = true;
    while open || !sending.is_empty() {
        tokio::select! {
            // Ends first, so a full window makes room before taking more.
            Some(()) = sending.next(), if !sending.is_empty() => {}
            taken = take(&mut queue), if open && sending.len() < IN_FLIGHT => match taken {
                // Pushed in queue order, so the XADDs leave in that order.
                Some(batch) => sending.push(send(conn.clone(), stream.clone(), batch)),
                None => open = false,
            },
        }
    }
}

/// The next queued requests, at most a pipeline's worth; `None` once every
/// sender is gone.
async fn take(queue: &mut mpsc::Receiver<Request>) -> Option<Vec<Request>> {
    let mut batch = Vec::with_capacity(PIPELINE);
    (queue.recv_many(&mut batch, PIPELINE).await > 0).then_some(batch)
}

/// Sends one pipeline of `XADD`s and answers each caller.
async fn send(mut conn: ConnectionManager, stream: Arc<str>, batch: Vec<Request>) {
    let mut pipe = redis::Pipeline::with_capacity(batch.len());
    // One failed XADD (a wrong key type, out of memory) fails only its caller.
    pipe.ignore_errors();
    for request in &batch {
        pipe.cmd("XADD")
            .arg(&*stream)
            .arg("*")
            .arg(FIELD_VERSION)
            .arg(VERSION)
            .arg(FIELD_NAME)
            .arg(request.name.as_str())
            .arg(FIELD_EVENT)
            .arg(&request.json);
    }
    let mut stored = 0;
    match pipe.query_async::<Vec<Value>>(&mut conn).await {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            for request in batch {
                let reply = match replies.next() {
                    Some(Value::ServerError(error)) => Err(error.into()),
                    Some(id) => entry::string(id).ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::UnexpectedReturnType,
                            "XADD did not return an entry id",
                        ))
                    }),
                    None => Err(redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "fewer replies than commands in the pipeline",
                    ))),
                };
                stored += usize::from(reply.is_ok());
                // The caller may have given up waiting: nothing to tell.
                let _ = request.reply.send(reply);
            }
        }
        Err(error) => {
            for request in batch {
                let _ = request.reply.send(Err(error.clone()));
            }
        }
    }
    if stored > 0 {
        metrics::counter!("earn_redis_published_total", "stream" => stream)
            .increment(stored as u64);
    }
}
