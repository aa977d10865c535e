//! What a transaction holds until it ends: the outcome hooks of its writes
//! and the events raised in it, in one ordered list with a mark per open
//! savepoint. Rolling a savepoint back truncates the list to its mark;
//! releasing it leaves its part where it is, now the parent's.

use std::future::Future;
use std::pin::Pin;

use earn_core::Event;

use crate::hook::Changes;
use crate::publish::Raised;

pub(crate) type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The `after_commit` / `after_rollback` hooks of one write.
pub(crate) trait Outcome: Send {
    /// Adds what the write changed to the transaction's changes (called
    /// for every committed write, in order, before any hook runs).
    fn collect(&self, changes: &mut Changes) {
        let _ = changes;
    }

    /// Runs `after_commit` hooks if `committed`, `after_rollback` hooks
    /// otherwise.
    fn run(self: Box<Self>, committed: bool, changes: &Changes) -> BoxFuture<'static>;
}

/// How a write ended, as far as the transaction knows yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Written: `after_commit` if the transaction commits.
    Yes,
    /// The write failed, or the savepoint holding it was dropped:
    /// `after_rollback` however the transaction ends.
    Undone,
}

enum Entry {
    Outcome(Box<dyn Outcome>, Written),
    Event(Raised),
}

/// The deferred work of a transaction.
#[derive(Default)]
pub(crate) struct Deferred {
    entries: Vec<Entry>,
    /// The length of `entries` when each open savepoint began.
    marks: Vec<usize>,
    /// Events before this index are staged (their outbox rows written).
    staged: usize,
}

/// The outcome hooks and events of a finished transaction or savepoint, in
/// the order they must run: hooks first, then events.
pub(crate) struct Finished {
    pub(crate) outcomes: Vec<(Box<dyn Outcome>, bool)>,
    pub(crate) events: Vec<Event>,
}

impl Finished {
    fn of(entries: Vec<Entry>, committed: bool) -> Finished {
        let mut finished = Finished {
            outcomes: Vec::new(),
            events: Vec::new(),
        };
        for entry in entries {
            match entry {
                Entry::Outcome(hooks, written) => {
                    finished
                        .outcomes
                        .push((hooks, committed && written == Written::Yes));
                }
                Entry::Event(raised) if committed => finished.events.push(raised.event),
                Entry::Event(_) => {}
            }
        }
        finished
    }

    /// Runs the outcome hooks, each even if another fails or panics; the
    /// `after_commit` hooks with what the whole transaction changed.
    pub(crate) async fn run_outcomes(&mut self) {
        let mut changes = Changes::default();
        for (hooks, committed) in &self.outcomes {
            if *committed {
                hooks.collect(&mut changes);
            }
        }
        for (hooks, committed) in self.outcomes.drain(..) {
            hooks.run(committed, &changes).await;
        }
    }
}

impl Deferred {
    /// How many savepoints are open.
    pub(crate) fn depth(&self) -> usize {
        self.marks.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues the outcome hooks of a write; `written: false` for one that
    /// failed.
    pub(crate) fn push_outcome(&mut self, hooks: Box<dyn Outcome>, written: bool) {
        let written = if written {
            Written::Yes
        } else {
            Written::Undone
        };
        self.entries.push(Entry::Outcome(hooks, written));
    }

    pub(crate) fn push_event(&mut self, raised: Raised) {
        self.entries.push(Entry::Event(raised));
    }

    /// Events raised since the last staging, all at the current level.
    pub(crate) fn unstaged(&self) -> impl Iterator<Item = &Raised> {
        self.entries[self.staged..]
            .iter()
            .filter_map(|entry| match entry {
                Entry::Event(raised) => Some(raised),
                Entry::Outcome(..) => None,
            })
    }

    /// Whether `unstaged` would yield anything.
    pub(crate) fn has_unstaged(&self) -> bool {
        self.unstaged().next().is_some()
    }

    /// Everything queued so far is staged.
    pub(crate) fn mark_staged(&mut self) {
        self.staged = self.entries.len();
    }

    pub(crate) fn open_savepoint(&mut self) {
        self.marks.push(self.entries.len());
    }

    /// The innermost savepoint was released: its part now belongs to the
    /// enclosing level.
    pub(crate) fn release_savepoint(&mut self) {
        self.marks.pop();
    }

    /// The innermost savepoint was rolled back: its events go, and its
    /// outcome hooks are returned to run `after_rollback` now.
    pub(crate) fn roll_back_savepoint(&mut self) -> Finished {
        let undone = self.truncate_to_savepoint();
        Finished::of(undone, false)
    }

    /// The innermost savepoint was dropped (rolled back without a chance
    /// to await): its events go, its outcome hooks stay queued, marked to
    /// run `after_rollback` when the transaction ends.
    pub(crate) fn drop_savepoint(&mut self) {
        let undone = self.truncate_to_savepoint();
        for entry in undone {
            if let Entry::Outcome(hooks, _) = entry {
                self.entries.push(Entry::Outcome(hooks, Written::Undone));
            }
        }
    }

    fn truncate_to_savepoint(&mut self) -> Vec<Entry> {
        let mark = self.marks.pop().unwrap_or(0).min(self.entries.len());
        self.staged = self.staged.min(mark);
        self.entries.split_off(mark)
    }

    /// Where a write starts, to drop its events if it fails.
    pub(crate) fn mark(&self) -> usize {
        self.entries.len()
    }

    /// Drops the events raised since `mark` by a write that failed. Returns
    /// `true` if one of them was staged already: its row is in the
    /// transaction, which must then not commit.
    pub(crate) fn drop_events_since(&mut self, mark: usize) -> bool {
        let mut index = 0;
        let mut staged_dropped = 0;
        let staged = self.staged;
        self.entries.retain(|entry| {
            let keep = index < mark || !matches!(entry, Entry::Event(_));
            if !keep && index < staged {
                staged_dropped += 1;
            }
            index += 1;
            keep
        });
        self.staged -= staged_dropped;
        staged_dropped > 0
    }

    /// Ends the transaction: everything queued, committed or not.
    pub(crate) fn finish(&mut self, committed: bool) -> Finished {
        self.marks.clear();
        self.staged = 0;
        Finished::of(std::mem::take(&mut self.entries), committed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Logged(&'static str, Arc<Mutex<Vec<String>>>);

    impl Outcome for Logged {
        fn run(self: Box<Self>, committed: bool, _: &Changes) -> BoxFuture<'static> {
            let phase = if committed { "commit" } else { "rollback" };
            self.1.lock().unwrap().push(format!("{phase}:{}", self.0));
            Box::pin(async {})
        }
    }

    fn raised(name: &str) -> Raised {
        Raised {
            event: Event::new(name, &()).unwrap(),
            row: None,
        }
    }

    fn names(finished: &Finished) -> Vec<String> {
        finished
            .events
            .iter()
            .map(|e| e.name().to_string())
            .collect()
    }

    async fn outcomes(finished: &mut Finished, log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        finished.run_outcomes().await;
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[tokio::test]
    async fn savepoints_truncate_release_and_stage_at_their_level() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut deferred = Deferred::default();
        deferred.push_outcome(Box::new(Logged("a", log.clone())), true);
        deferred.push_event(raised("outer.kept"));
        // A savepoint stages what its parent raised before it begins.
        assert_eq!(deferred.unstaged().count(), 1);
        deferred.mark_staged();
        deferred.open_savepoint();
        deferred.push_outcome(Box::new(Logged("b", log.clone())), true);
        deferred.push_event(raised("inner.dropped"));
        assert_eq!(deferred.unstaged().count(), 1);
        let mut undone = deferred.roll_back_savepoint();
        assert!(undone.events.is_empty());
        assert_eq!(outcomes(&mut undone, &log).await, ["rollback:b"]);
        assert!(!deferred.has_unstaged());

        deferred.open_savepoint();
        deferred.push_outcome(Box::new(Logged("c", log.clone())), true);
        deferred.push_event(raised("inner.kept"));
        deferred.release_savepoint();
        deferred.open_savepoint();
        deferred.push_outcome(Box::new(Logged("d", log.clone())), true);
        deferred.drop_savepoint();

        let mut finished = deferred.finish(true);
        assert_eq!(names(&finished), ["outer.kept", "inner.kept"]);
        assert_eq!(
            outcomes(&mut finished, &log).await,
            ["commit:a", "commit:c", "rollback:d"]
        );
    }

    #[test]
    fn dropping_a_staged_event_is_reported() {
        let mut deferred = Deferred::default();
        deferred.push_event(raised("a.b"));
        let mark = deferred.mark();
        deferred.push_event(raised("c.d"));
        assert!(!deferred.drop_events_since(mark));
        deferred.push_event(raised("e.f"));
        deferred.mark_staged();
        assert!(deferred.drop_events_since(mark));
        assert_eq!(deferred.unstaged().count(), 0);
        assert_eq!(names(&deferred.finish(true)), ["a.b"]);
    }
}
