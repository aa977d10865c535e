//! The re-entrancy guard: a hook that writes the model it is running for
//! gets an error instead of recursing forever.

use std::any::TypeId;
use std::cell::RefCell;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use earn_core::{Error, Operation};

use crate::model::Entity;

/// How many writes of new (keyless) models of one type may nest before the
/// guard assumes a loop: a new model has no identity to compare.
const NEW_MODEL_NESTING: usize = 8;

tokio::task_local! {
    /// Writes in progress in this task: model type, hashed key, model name.
    static ACTIVE: RefCell<Vec<(TypeId, Option<u64>, &'static str)>>;
}

fn key_hash<K: Hash>(key: &K) -> u64 {
    // A fixed hasher: equal keys must hash equally across calls.
    std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(key)
}

/// Pops this write's entry even if its future is dropped half way.
struct Entry;

impl Drop for Entry {
    fn drop(&mut self) {
        let _ = ACTIVE.try_with(|active| active.borrow_mut().pop());
    }
}

/// Runs `write` for `model`, failing with [`Error::Reentrant`] if the same
/// model (type and key) is already being written in this task.
pub(crate) async fn guarded<M: Entity, F, T>(
    key: Option<&M::Key>,
    operation: Operation,
    write: F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let entry = (TypeId::of::<M>(), key.map(key_hash), M::INFO.name);
    let reentrant = |active: &[(TypeId, Option<u64>, &'static str)]| match entry.1 {
        Some(_) => active.contains(&entry),
        None => active.iter().filter(|e| **e == entry).count() >= NEW_MODEL_NESTING,
    };
    let nested = ACTIVE.try_with(|active| {
        let mut active = active.borrow_mut();
        if reentrant(&active) {
            return Err(());
        }
        active.push(entry);
        Ok(())
    });
    match nested {
        Ok(Ok(())) => {
            let _entry = Entry;
            write.await
        }
        Ok(Err(())) => Err(Error::Reentrant {
            model: M::INFO.name,
            operation,
            key: key.map(|k| format!(" with key {k:?}")).unwrap_or_default(),
        }),
        Err(_outside_any_write) => ACTIVE.scope(RefCell::new(vec![entry]), write).await,
    }
}

/// Runs a bulk write of `M`, so that its hooks are known to run inside a
/// write ([`refuse_inside_a_write`]). Never [`Error::Reentrant`]: a bulk
/// write has no one row's identity, and cascades through a tree of rows of
/// one model nest bulk writes of that model as deep as the tree.
pub(crate) async fn guarded_bulk<M: Entity, F, T>(write: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Unique, so no other entry ever equals it.
    let entry = (
        TypeId::of::<M>(),
        Some(NEXT.fetch_add(1, Ordering::Relaxed) | 1 << 63),
        M::INFO.name,
    );
    let nested = ACTIVE.try_with(|active| active.borrow_mut().push(entry));
    match nested {
        Ok(()) => {
            let _entry = Entry;
            write.await
        }
        Err(_outside_any_write) => ACTIVE.scope(RefCell::new(vec![entry]), write).await,
    }
}

/// Refuses a write of `M` in a transaction of its own (`save(&db)`) while
/// a write is in progress in this task, that is, from one of its hooks:
/// the second transaction would wait for the first one's locks (a
/// deadlock on SQLite, or a pool timeout) or commit on its own whatever
/// becomes of the first.
pub(crate) fn refuse_inside_a_write<M: Entity>(operation: Operation) -> Result<(), Error> {
    let running = ACTIVE
        .try_with(|active| active.borrow().last().map(|entry| entry.2))
        .ok()
        .flatten();
    match running {
        Some(running) => Err(Error::WriteInsideHook {
            model: M::INFO.name,
            operation,
            running,
        }),
        None => Ok(()),
    }
}
