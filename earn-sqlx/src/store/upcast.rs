//! Upcasters: old payload shapes turned into the current one on read.

use std::collections::HashMap;

/// Turns a payload of one schema version into the next.
pub(super) type Upcast =
    Box<dyn Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync>;

/// The upcasters of a store, by (event name, version they read).
#[derive(Default)]
pub(super) struct Upcasters {
    by_version: HashMap<(String, u32), Upcast>,
    /// The schema version events of a name are stored at now: one past
    /// the last upcaster.
    current: HashMap<String, u32>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.by_version.keys().collect();
        keys.sort();
        f.debug_list().entries(keys).finish()
    }
}

impl Upcasters {
    pub(super) fn register(&mut self, name: &str, from: u32, upcast: Upcast) {
        let current = self.current.entry(name.to_owned()).or_insert(1);
        *current = (*current).max(from.saturating_add(1));
        self.by_version.insert((name.to_owned(), from), upcast);
    }

    /// The schema version events named `name` are stored at.
    pub(super) fn current(&self, name: &str) -> u32 {
        self.current.get(name).copied().unwrap_or(1)
    }

    /// `payload`, stored at `version`, in the current shape.
    pub(super) fn upcast(
        &self,
        name: &str,
        mut version: u32,
        mut payload: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let current = self.current(name);
        while version < current {
            let Some(upcast) = self.by_version.get(&(name.to_owned(), version)) else {
                return Err(format!(
                    "no upcaster for `{name}` from schema version {version} (the current version is {current})"
                ));
            };
            payload = upcast(payload).map_err(|reason| {
                format!("the upcaster of `{name}` from schema version {version} failed: {reason}")
            })?;
            version += 1;
        }
        Ok(payload)
    }
}
