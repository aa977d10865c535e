//! Projections: stored events folded into a read model, inline (in the
//! append's transaction) or as a catch-up subscription, and rebuilt by
//! replaying from the start.

use std::future::Future;
use std::pin::Pin;

use earn_core::{Error, EventBus, HandlerError};

use super::Recorded;
use crate::tx::Tx;

/// Folds stored events into a read model, in the transaction it is given.
///
/// Run it [inline](super::EventStoreBuilder::inline) (in each append's
/// transaction), as a [subscription](super::EventStore::subscription)
/// (its checkpoint saved in the same transaction as its writes), or
/// [rebuild](super::EventStore::rebuild) it from position 0.
///
/// ```no_run
/// use earn::prelude::*;
/// use earn::store::{Projection, Recorded};
///
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "order_totals")]
/// struct OrderTotal {
///     #[model(primary_key)]
///     order: String,
///     total: i64,
/// }
///
/// struct OrderTotals;
///
/// impl Projection for OrderTotals {
///     async fn apply(&self, tx: &mut Tx, event: &Recorded) -> Result<(), HandlerError> {
///         if event.event.name().as_str() == "order.line_added" {
///             let price: i64 = event.event.payload_json()["price"].as_i64().unwrap_or(0);
///             let mut row = OrderTotal::find_in(tx, event.stream.clone())
///                 .await?
///                 .unwrap_or(OrderTotal { order: event.stream.clone(), total: 0 });
///             row.total += price;
///             row.save_in(tx).await?;
///         }
///         Ok(())
///     }
///
///     async fn reset(&self, tx: &mut Tx) -> Result<(), HandlerError> {
///         OrderTotal::query().delete_all_in(tx).await?;
///         Ok(())
///     }
/// }
/// ```
pub trait Projection: Send + Sync + 'static {
    /// Applies one event, in `tx`. An error rolls the transaction back: the
    /// event is applied again (a subscription retries it, an inline
    /// projection fails the append).
    fn apply(
        &self,
        tx: &mut Tx,
        event: &Recorded,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Empties the read model before a [rebuild](super::EventStore::rebuild).
    /// Does nothing by default.
    fn reset(&self, tx: &mut Tx) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = tx;
        async { Ok(()) }
    }
}

/// A subscription can feed the event bus: each stored event is published
/// to it, in order (at least once: the checkpoint moves after the bus took
/// the events).
impl Projection for EventBus {
    async fn apply(&self, _tx: &mut Tx, event: &Recorded) -> Result<(), HandlerError> {
        self.publish(event.event.clone()).await?;
        Ok(())
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Projection`] behind a pointer, for the store's inline projections.
pub(crate) trait ErasedProjection: Send + Sync {
    fn apply_erased<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Recorded,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

impl<P: Projection> ErasedProjection for P {
    fn apply_erased<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Recorded,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.apply(tx, event).await.map_err(|error| {
                applying(
                    format!("inline projection `{}`", std::any::type_name::<P>()),
                    event.position,
                    error,
                )
            })
        })
    }
}

/// The error of a projection or aggregate that failed on an event.
pub(super) fn applying(target: String, position: u64, error: HandlerError) -> Error {
    Error::Apply {
        target,
        position,
        source: error.to_string().into(),
    }
}

/// Where a subscription or a rebuild stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The subscription's name.
    pub name: String,
    /// The position of the last event applied (its checkpoint).
    pub position: u64,
    /// The highest position stored when last looked at.
    pub head: u64,
    /// Events applied since it started.
    pub applied: u64,
    /// Events applied per second since it started.
    pub rate: f64,
    /// Whether it has read everything there was (and now follows new
    /// appends).
    pub live: bool,
    /// The last failure, while it retries an event.
    pub last_error: Option<String>,
}
