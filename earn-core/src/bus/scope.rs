//! Subscriptions that end with a scope: a guard that unsubscribes when it
//! is dropped, and services held weakly, whose handlers end when the
//! service is dropped (Nexios's request-scoped listeners and weak
//! references).

use std::sync::{Arc, OnceLock, Weak};

use super::subscriptions::{CallFn, SubscriptionId};
use super::{EventBus, Shared, write};
use crate::handler::{HandlerStep, IntoHandlerResult, Propagation};
use crate::service::{Attachment, Service};
use crate::{BusError, Event};

/// Subscriptions that last as long as this guard: dropping it
/// unsubscribes them. It holds the bus weakly, so it never keeps a bus
/// alive. Get one with [`EventBus::subscribe_scoped`] or
/// [`EventBus::scope`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = earn::EventBus::builder().without_registered_handlers().build()?;
/// {
///     let _request = bus.subscribe_scoped("audit.*", 0, |event: earn::Event| async move {
///         println!("seen during this request: {}", event.name());
///     })?;
///     let report = bus.emit(earn::Event::new("audit.read", &1)?).await;
///     assert_eq!(report.ran(), 1);
/// } // the request ends: its listener goes
/// let report = bus.emit(earn::Event::new("audit.read", &2)?).await;
/// assert_eq!(report.ran(), 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard unsubscribes at once"]
pub struct SubscriptionGuard {
    bus: Weak<Shared>,
    ids: Vec<SubscriptionId>,
}

impl SubscriptionGuard {
    /// The subscriptions it holds.
    pub fn ids(&self) -> &[SubscriptionId] {
        &self.ids
    }

    /// Keeps the subscriptions for the bus's lifetime (they can still be
    /// removed with [`EventBus::unsubscribe`]).
    pub fn forget(mut self) -> Vec<SubscriptionId> {
        std::mem::take(&mut self.ids)
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        if let Some(shared) = self.bus.upgrade() {
            let mut registry = write(&shared.registry);
            for id in self.ids.drain(..) {
                registry.remove(id);
            }
        }
    }
}

impl EventBus {
    /// [`subscribe`](EventBus::subscribe) for a scope: the subscription
    /// ends when the returned guard is dropped.
    pub fn subscribe_scoped<F, Fut, R>(
        &self,
        pattern: &str,
        priority: i32,
        handler: F,
    ) -> Result<SubscriptionGuard, BusError>
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = R> + Send + 'static,
        R: IntoHandlerResult,
    {
        let id = self.subscribe(pattern, priority, handler)?;
        Ok(self.scope(vec![id]))
    }

    /// A guard over subscriptions made already (ids from
    /// [`subscribe`](EventBus::subscribe), or an [`Attachment`] turned
    /// into its ids with [`scope_attachment`](EventBus::scope_attachment)):
    /// they end when it is dropped.
    pub fn scope(&self, ids: Vec<SubscriptionId>) -> SubscriptionGuard {
        SubscriptionGuard {
            bus: Arc::downgrade(self.shared()),
            ids,
        }
    }

    /// The service's handlers end when the returned guard is dropped.
    pub fn scope_attachment(&self, attachment: Attachment) -> SubscriptionGuard {
        self.scope(attachment.ids)
    }

    /// [`attach`](EventBus::attach) holding the service weakly: the bus
    /// does not keep it alive, and once its last `Arc` is dropped its
    /// handlers no longer run: the first event they would have handled
    /// finds the service gone (the call does nothing and counts as a
    /// success) and removes them (logged at debug level).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use earn::prelude::*;
    ///
    /// #[derive(Default)]
    /// struct Session { seen: AtomicUsize }
    ///
    /// #[service]
    /// impl Session {
    ///     #[event_handler("session.ping")]
    ///     async fn ping(&self, _event: &Event) {
    ///         self.seen.fetch_add(1, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// let session = Arc::new(Session::default());
    /// let _attached = bus.attach_weak(&session)?;
    /// bus.emit(Event::new("session.ping", &())?).await;
    /// assert_eq!(session.seen.load(Ordering::SeqCst), 1);
    /// drop(session); // the session ends: so do its handlers
    /// bus.emit(Event::new("session.ping", &())?).await; // finds it gone, removes them
    /// assert_eq!(bus.emit(Event::new("session.ping", &())?).await.ran(), 0);
    /// # Ok(()) }
    /// ```
    pub fn attach_weak<S: Service>(&self, service: &Arc<S>) -> Result<Attachment, BusError> {
        // Filled once every handler is subscribed: a handler that finds
        // its service gone removes them all.
        let own: Arc<OnceLock<Vec<SubscriptionId>>> = Arc::default();
        let attachment = self.attach_calls::<S>(|handler| {
            let call = handler.call;
            let name = handler.name;
            let service = Arc::downgrade(service);
            let bus = Arc::downgrade(self.shared());
            let own = own.clone();
            let call: CallFn = Arc::new(move |event: &Event| match service.upgrade() {
                Some(service) => call(&service, event),
                None => {
                    if let (Some(shared), Some(ids)) = (bus.upgrade(), own.get()) {
                        let mut registry = write(&shared.registry);
                        let removed = ids.iter().filter(|id| registry.remove(**id)).count();
                        if removed > 0 {
                            tracing::debug!(
                                handler = name,
                                removed,
                                "a weakly attached service was dropped: its handlers are removed"
                            );
                        }
                    }
                    HandlerStep::Ready(Ok(Propagation::Continue))
                }
            });
            call
        });
        let attachment = attachment?;
        let _ = own.set(attachment.ids.clone());
        Ok(attachment)
    }
}
