//! `NatsLag`: how far a group is behind, for operators.

use earn_core::Error;

use crate::streams::{NatsStreams, transport};

/// How far this settings' group is behind on its stream
/// ([`NatsStreams::lag`]).
///
/// ```no_run
/// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), earn::Error> {
/// let lag = streams.lag().await?;
/// println!("{} unacknowledged, {:?} not delivered yet", lag.pending, lag.unread);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsLag {
    /// Messages delivered to the group's processes and not yet
    /// acknowledged.
    pub pending: u64,
    /// Messages the group has not been delivered yet; `None` when the
    /// group does not exist yet (no process consumed).
    pub unread: Option<u64>,
    /// Messages in the stream (handled ones included, within its limits).
    pub length: u64,
    /// Events waiting in `{stream}_delayed` for their time.
    pub delayed: u64,
}

impl NatsStreams {
    /// The group's lag: pending and unread messages (from the durable
    /// consumer's info), the stream's length and the delayed events.
    /// Three JetStream API requests.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), earn::Error> {
    /// let lag = streams.lag().await?;
    /// assert!(lag.pending <= lag.length);
    /// # Ok(()) }
    /// ```
    pub async fn lag(&self) -> Result<NatsLag, Error> {
        let settings = self.settings();
        let events = self
            .js()
            .get_stream(&*settings.stream)
            .await
            .map_err(transport("read the stream's lag"))?;
        let delayed = self
            .js()
            .get_stream(settings.delayed_stream())
            .await
            .map_err(transport("read the stream's lag"))?;
        let (pending, unread) = match events.consumer_info(&*settings.group).await {
            Ok(info) => (info.num_ack_pending as u64, Some(info.num_pending)),
            Err(error)
                if matches!(
                    error.kind(),
                    async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound
                ) =>
            {
                (0, None)
            }
            Err(error) => return Err(transport("read the group's lag")(error)),
        };
        Ok(NatsLag {
            pending,
            unread,
            length: events.cached_info().state.messages,
            delayed: delayed.cached_info().state.messages,
        })
    }
}
