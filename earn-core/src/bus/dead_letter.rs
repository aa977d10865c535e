//! Events whose handler gave up, kept for inspection and requeue.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::event::Event;
use crate::handler::Failure;

/// An event one handler could not process after its last attempt.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Identifies the dead letter for [`requeue`](super::EventBus::requeue).
    pub id: u64,
    /// The event, as last delivered.
    pub event: Event,
    /// The handler that failed.
    pub handler: String,
    /// Why it failed the last time.
    pub reason: Failure,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub at: SystemTime,
}

/// Where dead letters go. The default keeps them in memory; a durable
/// store (a table, a stream) implements this trait.
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Stores one.
    fn push(&self, letter: DeadLetter);
    /// Every stored dead letter, oldest first.
    fn list(&self) -> Vec<DeadLetter>;
    /// Removes and returns one.
    fn take(&self, id: u64) -> Option<DeadLetter>;
    /// Removes all; returns how many there were.
    fn purge(&self) -> usize;
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

    fn take(&self, id: u64) -> Option<DeadLetter> {
        let mut letters = lock(&self.letters);
        let at = letters.iter().position(|l| l.id == id)?;
        Some(letters.remove(at))
    }

    fn purge(&self) -> usize {
        std::mem::take(&mut *lock(&self.letters)).len()
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}
