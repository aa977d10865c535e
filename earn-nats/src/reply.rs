//! Request/reply over NATS: a requester subscribes to an inbox of its own
//! (core NATS, not JetStream: a reply is for one process, now), read by
//! one task; a responder's bus publishes the reply to that subject.

use earn_core::reply::{ReplyInbox, ReplyRoute, ReplyWaiters};
use earn_core::{BoxError, Error, Event, EventData, SinkFuture};
use futures_util::StreamExt;

use crate::streams::{NatsStreams, transport};

/// The reply inbox of one `NatsStreams`: a subject of its own, read by a
/// task that stops with it.
pub(crate) async fn start(streams: &NatsStreams) -> Result<ReplyInbox, Error> {
    let client = streams.client();
    let inbox = client.new_inbox();
    let mut subscriber = client
        .subscribe(inbox.clone())
        .await
        .map_err(transport("subscribe to replies"))?;
    let waiters = ReplyWaiters::default();
    let handed = waiters.clone();
    let reader = tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            match serde_json::from_slice::<EventData>(&message.payload) {
                Ok(data) => {
                    handed.deliver(Event::from_data(data));
                }
                Err(error) => {
                    tracing::warn!(%error, subject = %message.subject, "a reply is not an event; dropped");
                }
            }
        }
    });
    Ok(ReplyInbox::new(format!("nats:{inbox}"), waiters, reader))
}

/// Where a responder's bus sends replies to requests that came through
/// NATS: a core NATS publish to the requester's inbox, sealed by the
/// settings' envelope.
pub(crate) struct NatsReplies(pub(crate) NatsStreams);

impl ReplyRoute for NatsReplies {
    fn send<'a>(&'a self, address: &'a str, reply: Event) -> SinkFuture<'a> {
        Box::pin(async move {
            let reply = self.0.settings().get_envelope().seal(reply)?;
            let json = serde_json::to_vec(reply.data()).map_err(BoxError::from)?;
            self.0
                .client()
                .publish(address.to_owned(), json.into())
                .await
                .map_err(BoxError::from)
        })
    }
}
