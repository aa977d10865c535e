//! Where the bus keeps the events whose handler gave up, and the bus as a
//! [`DeadLetters`] source.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dead_letter::{
    DeadLetter, DeadLetterFilter, DeadLetterFuture, DeadLetters, PageRequest,
};
use crate::error::Error;

use super::EventBus;

/// Where the bus keeps dead letters. The default keeps them in memory; a
/// durable store (a table, a file) implements this trait and is given to
/// [`EventBusBuilder::dead_letters`](super::EventBusBuilder::dead_letters).
/// Operators reach them through [`EventBus::dead_letter_source`].
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Stores one.
    fn push(&self, letter: DeadLetter);
    /// Every stored dead letter, oldest first.
    fn list(&self) -> Vec<DeadLetter>;
    /// Removes and returns one.
    fn take(&self, id: &str) -> Option<DeadLetter>;
}

/// Dead letters in memory (lost with the process).
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
}

fn lock(letters: &Mutex<Vec<DeadLetter>>) -> std::sync::MutexGuard<'_, Vec<DeadLetter>> {
    letters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DeadLetterStore for MemoryDeadLetters {
    fn push(&self, letter: DeadLetter) {
        lock(&self.letters).push(letter);
    }

    fn list(&self) -> Vec<DeadLetter> {
        lock(&self.letters).clone()
    }

    fn take(&self, id: &str) -> Option<DeadLetter> {
        let mut letters = lock(&self.letters);
        let at = letters.iter().position(|l| l.id == id)?;
        Some(letters.remove(at))
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> String {
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The source name of the bus's dead letters.
pub(crate) const SOURCE: &str = "bus";

/// The bus's dead letters as a [`DeadLetters`] source: from
/// [`EventBus::dead_letter_source`]. A requeue publishes the event again
/// to the handler that gave up only, from attempt 1.
#[derive(Debug, Clone)]
pub struct BusDeadLetters {
    pub(super) bus: EventBus,
}

impl BusDeadLetters {
    fn matching(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, Error> {
        filter.validate()?;
        let mut letters = self.bus.dead_letter_store().list();
        letters.retain(|letter| filter.matches(letter));
        Ok(letters)
    }
}

fn missing(id: &str) -> Error {
    Error::NoDeadLetter {
        store: SOURCE.into(),
        id: id.to_owned(),
    }
}

impl DeadLetters for BusDeadLetters {
    fn source(&self) -> String {
        SOURCE.to_owned()
    }

    fn list<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        page: PageRequest,
    ) -> DeadLetterFuture<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
            let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
            Ok(self
                .matching(filter)?
                .into_iter()
                .skip(offset)
                .take(limit)
                .collect())
        })
    }

    fn count<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move { Ok(self.matching(filter)?.len() as u64) })
    }

    fn get<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, Option<DeadLetter>> {
        Box::pin(async move {
            Ok(self
                .bus
                .dead_letter_store()
                .list()
                .into_iter()
                .find(|letter| letter.id == id))
        })
    }

    fn requeue<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(async move {
            match self.bus.requeue(id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(missing(id)),
                Err(error) => Err(error.into()),
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> DeadLetterFuture<'a, ()> {
        Box::pin(async move {
            self.bus
                .dead_letter_store()
                .take(id)
                .map(drop)
                .ok_or_else(|| missing(id))
        })
    }

    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> DeadLetterFuture<'a, u64> {
        Box::pin(async move {
            let store = self.bus.dead_letter_store();
            let mut purged = 0;
            for letter in self.matching(filter)? {
                if store.take(&letter.id).is_some() {
                    purged += 1;
                }
            }
            Ok(purged)
        })
    }
}
