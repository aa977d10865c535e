//! Request/reply: the pieces the bus and the transports share. A request
//! is an event carrying where to send its reply ([`REPLY_TO`]); a reply is
//! an event carrying the request's id ([`IN_REPLY_TO`]), named after the
//! request with `.reply` appended, in the request's correlation.
//!
//! [`EventBus::request`](crate::EventBus::request) asks and [`send`]
//! answers, from any handler (an `#[event_handler]` function needs no bus
//! to reply). Redis Streams and NATS add `request` of their own, and
//! their consumers register a [`ReplyRoute`], so a handler's reply finds
//! its way back to the process that asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::event::Event;
use crate::sink::SinkFuture;

/// The metadata key of a request: where its reply goes, `scheme:address`
/// (`bus` for the same process, `redis:<list key>`, `nats:<subject>`).
pub const REPLY_TO: &str = "earn-reply-to";
/// The metadata key of a request that came through a transport: the
/// stream it was published to, which picks the route its reply takes.
pub const REPLY_VIA: &str = "earn-reply-via";
/// The metadata key of a reply: the id of the request it answers.
pub const IN_REPLY_TO: &str = "earn-in-reply-to";

/// Sends replies to the requests that came through one transport: what
/// `redis:` and `nats:` addresses resolve to. A transport's consumer
/// registers its own with [`route`].
pub trait ReplyRoute: Send + Sync + 'static {
    /// Sends `reply` to `address` (the part of [`REPLY_TO`] after the
    /// scheme).
    fn send<'a>(&'a self, address: &'a str, reply: Event) -> SinkFuture<'a>;
}

/// The requests of one process waiting for their replies, by request id.
/// Cheap to clone; clones share the waiters.
#[derive(Clone, Default)]
pub struct ReplyWaiters {
    waiting: Arc<Mutex<HashMap<Uuid, tokio::sync::oneshot::Sender<Event>>>>,
}

impl std::fmt::Debug for ReplyWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyWaiters")
            .field("waiting", &self.lock().len())
            .finish()
    }
}

impl ReplyWaiters {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Uuid, tokio::sync::oneshot::Sender<Event>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts waiting for the reply to the request `id`. Call it before
    /// the request is sent, so a fast reply is not missed; dropping the
    /// [`Waiting`] stops waiting.
    pub fn wait(&self, id: Uuid) -> Waiting {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.lock().insert(id, sender);
        Waiting {
            waiters: self.clone(),
            id,
            receiver,
        }
    }

    /// Hands `reply` to the request it answers; `false` if nothing waits
    /// for it (never asked here, already answered, or given up).
    pub fn deliver(&self, reply: Event) -> bool {
        let Some(id) = reply
            .meta(IN_REPLY_TO)
            .and_then(|id| id.parse::<Uuid>().ok())
        else {
            return false;
        };
        let Some(waiting) = self.lock().remove(&id) else {
            tracing::debug!(request_id = %id, "a reply arrived for a request nobody waits for (it timed out, or was answered already)");
            return false;
        };
        waiting.send(reply).is_ok()
    }

    /// How many requests wait for their reply.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One request waiting for its reply; dropped, it stops waiting.
#[derive(Debug)]
pub struct Waiting {
    waiters: ReplyWaiters,
    id: Uuid,
    receiver: tokio::sync::oneshot::Receiver<Event>,
}

impl Waiting {
    /// The reply, or `None` once `timeout` has passed.
    pub async fn reply(mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, &mut self.receiver)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.id);
    }
}

/// Where the replies to one transport handle's requests come back: its
/// address (`redis:<list>`, `nats:<inbox>`), what waits on it, and the
/// task reading it, stopped when this is dropped. What the `request` of
/// Redis Streams and NATS share.
#[derive(Debug)]
pub struct ReplyInbox {
    address: String,
    waiters: ReplyWaiters,
    reader: tokio::task::JoinHandle<()>,
}

impl ReplyInbox {
    /// The inbox at `address` (`scheme:where`), whose `reader` task hands
    /// what arrives to `waiters`.
    pub fn new(
        address: String,
        waiters: ReplyWaiters,
        reader: tokio::task::JoinHandle<()>,
    ) -> ReplyInbox {
        ReplyInbox {
            address,
            waiters,
            reader,
        }
    }

    /// Sends `event` as a request through `send` (marked with this
    /// inbox's address and the stream `via` it goes through) and waits
    /// for its reply, opened with `envelope`. No reply within `timeout`
    /// is [`BusError::NoReply`](crate::BusError::NoReply).
    pub async fn request<F, Fut>(
        &self,
        event: &Event,
        via: &str,
        timeout: Duration,
        envelope: &crate::Envelope,
        send: F,
    ) -> Result<Event, crate::Error>
    where
        F: FnOnce(Event) -> Fut,
        Fut: std::future::Future<Output = Result<(), crate::Error>>,
    {
        let event = event
            .clone()
            .with_meta(REPLY_TO, self.address.as_str())
            .with_meta(REPLY_VIA, via);
        let (name, id) = (event.name().to_string(), event.id());
        let waiting = self.waiters.wait(id);
        send(event).await?;
        let reply = waiting
            .reply(timeout)
            .await
            .ok_or(crate::BusError::NoReply {
                event: name,
                id,
                timeout,
            })?;
        Ok(envelope.open(&reply)?)
    }
}

impl Drop for ReplyInbox {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The reply to `request` carrying `payload`: named `<request>.reply`,
/// in the request's correlation, with [`IN_REPLY_TO`] set.
pub fn reply_to<T: serde::Serialize + ?Sized>(
    request: &Event,
    payload: &T,
) -> Result<Event, crate::EventError> {
    Ok(Event::new(format!("{}.reply", request.name()), payload)?
        .caused_by(request)
        .with_meta(IN_REPLY_TO, request.id().to_string()))
}

/// The requests of this process waiting for a reply through the bus.
pub(crate) fn waiters() -> &'static ReplyWaiters {
    static WAITERS: std::sync::OnceLock<ReplyWaiters> = std::sync::OnceLock::new();
    WAITERS.get_or_init(ReplyWaiters::default)
}

type Routes = HashMap<(String, String), Arc<dyn ReplyRoute>>;

fn routes() -> &'static std::sync::RwLock<Routes> {
    static ROUTES: std::sync::OnceLock<std::sync::RwLock<Routes>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(Default::default)
}

/// Sends the replies to requests that came through `scheme` (`redis`,
/// `nats`) on the stream `via` with `route`, in this whole process: what
/// a transport's consumer does when it starts. A later route for the same
/// pair replaces the earlier.
pub fn route(scheme: &str, via: &str, route: Arc<dyn ReplyRoute>) {
    routes()
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert((scheme.to_owned(), via.to_owned()), route);
}

/// Answers `request` with `payload`: the reply (named `<request>.reply`,
/// see [`reply_to`]) goes where the request asked, to a waiting
/// [`EventBus::request`](crate::EventBus::request) of this process or,
/// through the transport it came by, to the process that sent it. Call it
/// from the handler of the request.
///
/// An event that is not a request is
/// [`BusError::NotARequest`](crate::BusError::NotARequest); a reply that
/// arrives after the requester gave up is dropped.
///
/// ```
/// use std::time::Duration;
/// use earn::{Event, EventBus, HandlerError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::builder().without_registered_handlers().build()?;
/// bus.subscribe("price.quote", 0, |request: Event| async move {
///     let sku: String = request.payload()?;
///     earn::reply::send(&request, &format!("{sku}: 12.50")).await?;
///     Ok::<_, HandlerError>(())
/// })?;
/// let reply = bus
///     .request(Event::new("price.quote", "BOOK-1")?, Duration::from_secs(1))
///     .await?;
/// assert_eq!(reply.payload::<String>()?, "BOOK-1: 12.50");
/// assert_eq!(reply.name().as_str(), "price.quote.reply");
/// # Ok(()) }
/// ```
pub async fn send<T: serde::Serialize + ?Sized>(
    request: &Event,
    payload: &T,
) -> Result<(), crate::Error> {
    let Some(address) = request.meta(REPLY_TO) else {
        return Err(crate::BusError::NotARequest {
            event: request.name().to_string(),
            id: request.id(),
        }
        .into());
    };
    let reply = reply_to(request, payload)?;
    let (scheme, address) = address.split_once(':').unwrap_or((address, ""));
    if scheme == "bus" {
        waiters().deliver(reply);
        return Ok(());
    }
    let via = request.meta(REPLY_VIA).unwrap_or("");
    let route = {
        let routes = routes()
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        routes
            .get(&(scheme.to_owned(), via.to_owned()))
            .cloned()
            .or_else(|| {
                // Another stream's consumer of the same transport reaches
                // the requester too when it is the only one.
                let mut same = routes.iter().filter(|((s, _), _)| s == scheme);
                match (same.next(), same.next()) {
                    (Some((_, route)), None) => Some(route.clone()),
                    _ => None,
                }
            })
    };
    let Some(route) = route else {
        return Err(crate::BusError::NoReplyRoute {
            scheme: scheme.to_owned(),
            event: request.name().to_string(),
        }
        .into());
    };
    route
        .send(address, reply)
        .await
        .map_err(|source| crate::Error::Transport {
            transport: "reply",
            operation: format!("reply through {scheme}").into(),
            source,
        })
}
