//! The bus's handlers, indexed by pattern, with a per-name cache of the
//! sorted handler list so an emit neither scans nor sorts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::event::Event;
use crate::handler::HandlerOptions;
use crate::handler::HandlerStep;
use crate::index::{IndexKey, PatternIndex};
use crate::pattern::{Pattern, PatternError};

/// Identifies a subscription; give it to [`EventBus::unsubscribe`](super::EventBus::unsubscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub(crate) type CallFn = Arc<dyn Fn(&Event) -> HandlerStep + Send + Sync>;
pub(crate) type FilterFn = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// One handler on one bus.
pub(crate) struct Subscription {
    pub(crate) id: SubscriptionId,
    pub(crate) name: Arc<str>,
    pub(crate) pattern: Pattern,
    pub(crate) priority: i32,
    pub(crate) filter: Option<FilterFn>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) call: CallFn,
    /// A batch handler: a worker hands it the event and goes on, and the
    /// event's outcome is settled when its batch ran.
    pub(crate) batched: bool,
}

/// The handlers of one event name, in run order, with their names apart so
/// a report can keep the names without keeping the handlers alive.
pub(crate) struct ResolvedList {
    pub(crate) subs: Vec<Arc<Subscription>>,
    pub(crate) names: Arc<[Arc<str>]>,
}

pub(crate) type Resolved = Arc<ResolvedList>;

impl Subscription {
    /// A subscription from the options of an `#[event_handler]` (a free
    /// function or a service method).
    pub(crate) fn from_options(
        name: &'static str,
        options: &HandlerOptions,
        call: CallFn,
    ) -> Result<Subscription, PatternError> {
        let (call, batched) = match options.batch {
            Some(batch) => (
                batched(
                    batch.size,
                    Duration::from_millis(batch.linger_ms),
                    Arc::new(batch.call),
                ),
                true,
            ),
            None => (call, false),
        };
        Ok(Subscription {
            id: Registry::next_id(),
            name: name.into(),
            pattern: Pattern::new(options.pattern)?,
            priority: options.priority,
            filter: filter_of(name, options),
            retries: options.retries,
            timeout: options.timeout_ms.map(Duration::from_millis),
            call,
            batched,
        })
    }
}

/// The per-event call of a batch handler: each event joins a batch of
/// this subscription's own.
pub(crate) fn batched(size: usize, linger: Duration, run: crate::batch::BatchFn) -> CallFn {
    let batcher = crate::batch::Batcher::new(size, linger, run);
    Arc::new(move |event: &Event| batcher.call(event))
}

/// The filter of a handler: its `filter = path`, after its `sources`
/// check, which reports what it keeps from the handler.
fn filter_of(handler: &'static str, options: &HandlerOptions) -> Option<FilterFn> {
    let filter = options.filter;
    let sources = options.sources;
    if sources.is_empty() {
        return filter.map(|f| Arc::new(f) as FilterFn);
    }
    Some(Arc::new(move |event: &Event| {
        let trusted = event
            .source()
            .is_some_and(|source| sources.contains(&source));
        if !trusted {
            tracing::warn!(
                handler,
                event = event.name().as_str(),
                event_id = %event.id(),
                source = event.source().unwrap_or("(none)"),
                accepted = ?sources,
                "an event from a source the handler does not accept was not handed to it"
            );
            return false;
        }
        filter.is_none_or(|f| f(event))
    }))
}

/// Above this many distinct names the cache starts over, so a stream of
/// unique names cannot grow it without bound.
const CACHE_LIMIT: usize = 4096;

#[derive(Default)]
pub(crate) struct Registry {
    index: PatternIndex<Arc<Subscription>>,
    keys: HashMap<SubscriptionId, (IndexKey, Arc<Subscription>)>,
    cache: HashMap<Box<str>, Resolved, foldhash::fast::RandomState>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Bumped by every subscription change on any bus, so a worker's cached
/// handler list knows when it is stale.
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

impl Registry {
    pub(crate) fn next_id() -> SubscriptionId {
        SubscriptionId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn insert(&mut self, subscription: Subscription) -> SubscriptionId {
        let id = subscription.id;
        let pattern = subscription.pattern.clone();
        let subscription = Arc::new(subscription);
        let key = self.index.insert(&pattern, subscription.clone());
        self.keys.insert(id, (key, subscription));
        self.cache.clear();
        GENERATION.fetch_add(1, Ordering::AcqRel);
        id
    }

    pub(crate) fn remove(&mut self, id: SubscriptionId) -> bool {
        let Some((key, _)) = self.keys.remove(&id) else {
            return false;
        };
        self.index.remove(key);
        self.cache.clear();
        GENERATION.fetch_add(1, Ordering::AcqRel);
        true
    }

    pub(crate) fn cached(&self, name: &str) -> Option<Resolved> {
        self.cache.get(name).cloned()
    }

    /// The handlers matching `name`, by priority (higher first) then
    /// registration order.
    pub(crate) fn resolve(&mut self, name: &str) -> Resolved {
        if let Some(found) = self.cache.get(name) {
            return found.clone();
        }
        let mut found: Vec<(IndexKey, Arc<Subscription>)> = Vec::new();
        self.index
            .for_each_match(name, |key, sub| found.push((key, sub.clone())));
        found.sort_by_key(|(key, sub)| (std::cmp::Reverse(sub.priority), *key));
        let subs: Vec<Arc<Subscription>> = found.into_iter().map(|(_, sub)| sub).collect();
        let names = subs.iter().map(|sub| sub.name.clone()).collect();
        let resolved: Resolved = Arc::new(ResolvedList { subs, names });
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(name.into(), resolved.clone());
        resolved
    }

    pub(crate) fn find_by_name(&self, name: &str) -> Option<Arc<Subscription>> {
        // Only requeue looks handlers up by name: a scan is fine.
        self.keys
            .values()
            .map(|(_, sub)| sub)
            .filter(|sub| &*sub.name == name)
            .min_by_key(|sub| sub.id)
            .cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}
