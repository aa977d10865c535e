//! A precompiled index from patterns to values, so that finding the
//! subscribers of an event costs in proportion to those that match, not to
//! all that are registered.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::pattern::{Pattern, Segment};

/// Identifies one entry of a [`PatternIndex`]; keys increase in insertion
/// order and are never reused by the same index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexKey(u64);

/// Values filed under patterns, looked up by event name.
///
/// Exact patterns sit in a hash map keyed by name, the bare `*` in a list
/// that every lookup returns, and the other wildcard patterns in a trie of
/// segments walked once, segment by segment, for every path still alive. A
/// lookup therefore touches the entries that match and the trie paths the
/// name follows, never the whole index.
///
/// The event bus's lookup structure, public for earn's own crates and its
/// fuzz target; the `earn` facade does not re-export it.
///
/// ```
/// use earn_core::{Pattern, PatternIndex};
///
/// let mut index = PatternIndex::new();
/// let audit = index.insert(&Pattern::new("*")?, "audit");
/// let users = index.insert(&Pattern::new("user.**")?, "users");
/// index.insert(&Pattern::new("order.paid")?, "billing");
///
/// let mut hits = Vec::new();
/// index.for_each_match("user.profile.updated", |key, value| hits.push((key, *value)));
/// hits.sort();
/// assert_eq!(hits, [(audit, "audit"), (users, "users")]);
///
/// assert_eq!(index.remove(users), Some("users"));
/// assert_eq!(index.len(), 2);
/// # Ok::<(), earn_core::PatternError>(())
/// ```
pub struct PatternIndex<T> {
    exact: HashMap<Box<str>, Vec<(IndexKey, T)>>,
    catch_all: Vec<(IndexKey, T)>,
    trie: Trie<T>,
    patterns: HashMap<IndexKey, Pattern>,
    next_key: u64,
}

impl<T> PatternIndex<T> {
    /// An empty index.
    pub fn new() -> Self {
        PatternIndex {
            exact: HashMap::new(),
            catch_all: Vec::new(),
            trie: Trie::new(),
            patterns: HashMap::new(),
            next_key: 0,
        }
    }

    /// Files `value` under `pattern` and returns the key that removes it.
    pub fn insert(&mut self, pattern: &Pattern, value: T) -> IndexKey {
        let key = IndexKey(self.next_key);
        self.next_key += 1;
        if pattern.is_exact() {
            self.exact
                .entry(pattern.as_str().into())
                .or_default()
                .push((key, value));
        } else if pattern.is_catch_all() {
            self.catch_all.push((key, value));
        } else {
            self.trie.insert(pattern, key, value);
        }
        self.patterns.insert(key, pattern.clone());
        key
    }

    /// Takes out the entry `key`, or returns `None` if it is not (or no
    /// longer) in this index.
    pub fn remove(&mut self, key: IndexKey) -> Option<T> {
        let pattern = self.patterns.remove(&key)?;
        if pattern.is_exact() {
            let values = self.exact.get_mut(pattern.as_str())?;
            let value = take(values, key);
            if values.is_empty() {
                self.exact.remove(pattern.as_str());
            }
            value
        } else if pattern.is_catch_all() {
            take(&mut self.catch_all, key)
        } else {
            self.trie.remove(&pattern, key)
        }
    }

    /// Calls `f` once for every entry whose pattern matches the event name
    /// `name`, in no particular order. `name` should be a valid
    /// [`EventName`](crate::EventName); for any other string the entries
    /// visited are unspecified, but nothing panics.
    pub fn for_each_match(&self, name: &str, mut f: impl FnMut(IndexKey, &T)) {
        if let Some(values) = self.exact.get(name) {
            values.iter().for_each(|(key, value)| f(*key, value));
        }
        self.catch_all
            .iter()
            .for_each(|(key, value)| f(*key, value));
        self.trie.for_each_match(name, &mut f);
    }

    /// How many entries the index holds.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl<T> Default for PatternIndex<T> {
    fn default() -> Self {
        PatternIndex::new()
    }
}

impl<T> fmt::Debug for PatternIndex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sorted: BTreeMap<_, _> = self.patterns.iter().collect();
        f.debug_map().entries(sorted).finish()
    }
}

/// Removes the entry `key` from `values`, keeping the others in order.
fn take<T>(values: &mut Vec<(IndexKey, T)>, key: IndexKey) -> Option<T> {
    let at = values.iter().position(|(k, _)| *k == key)?;
    Some(values.remove(at).1)
}

type NodeId = usize;

const ROOT: NodeId = 0;

/// The wildcard patterns, one node per pattern prefix. Nodes live in one
/// vector and refer to each other by position, so nothing here recurses,
/// however long a pattern is, and a set of nodes is a set of numbers.
struct Trie<T> {
    nodes: Vec<Node<T>>,
    /// Positions of removed nodes, reused before the vector grows.
    free: Vec<NodeId>,
}

struct Node<T> {
    literal: HashMap<Box<str>, NodeId>,
    one: Option<NodeId>,
    any: Option<NodeId>,
    /// Reached through `**`, so it may absorb further segments.
    absorbs: bool,
    /// Entries whose pattern ends here.
    values: Vec<(IndexKey, T)>,
}

impl<T> Node<T> {
    fn new(absorbs: bool) -> Self {
        Node {
            literal: HashMap::new(),
            one: None,
            any: None,
            absorbs,
            values: Vec::new(),
        }
    }

    fn is_unused(&self) -> bool {
        self.values.is_empty()
            && self.literal.is_empty()
            && self.one.is_none()
            && self.any.is_none()
    }
}

impl<T> Trie<T> {
    fn new() -> Self {
        Trie {
            nodes: vec![Node::new(false)],
            free: Vec::new(),
        }
    }

    fn child(&self, id: NodeId, segment: Segment<'_>) -> Option<NodeId> {
        let node = &self.nodes[id];
        match segment {
            Segment::Literal(text) => node.literal.get(text).copied(),
            Segment::One => node.one,
            Segment::Any => node.any,
        }
    }

    fn child_or_insert(&mut self, id: NodeId, segment: Segment<'_>) -> NodeId {
        if let Some(child) = self.child(id, segment) {
            return child;
        }
        let fresh = Node::new(segment == Segment::Any);
        let child = match self.free.pop() {
            Some(reused) => {
                self.nodes[reused] = fresh;
                reused
            }
            None => {
                self.nodes.push(fresh);
                self.nodes.len() - 1
            }
        };
        let node = &mut self.nodes[id];
        match segment {
            Segment::Literal(text) => {
                node.literal.insert(text.into(), child);
            }
            Segment::One => node.one = Some(child),
            Segment::Any => node.any = Some(child),
        }
        child
    }

    fn insert(&mut self, pattern: &Pattern, key: IndexKey, value: T) {
        let mut id = ROOT;
        for segment in pattern.segments() {
            id = self.child_or_insert(id, segment);
        }
        self.nodes[id].values.push((key, value));
    }

    fn remove(&mut self, pattern: &Pattern, key: IndexKey) -> Option<T> {
        let mut path = Vec::new();
        let mut id = ROOT;
        for segment in pattern.segments() {
            path.push((id, segment));
            id = self.child(id, segment)?;
        }
        let value = take(&mut self.nodes[id].values, key)?;
        // Prune the branch that only led to this entry, so that subscribing
        // and unsubscribing forever does not grow the trie.
        while self.nodes[id].is_unused() {
            let Some((parent, segment)) = path.pop() else {
                break;
            };
            let node = &mut self.nodes[parent];
            match segment {
                Segment::Literal(text) => {
                    node.literal.remove(text);
                }
                Segment::One => node.one = None,
                Segment::Any => node.any = None,
            }
            self.nodes[id] = Node::new(false);
            self.free.push(id);
            id = parent;
        }
        Some(value)
    }

    /// Runs the trie as an automaton over the name's segments, keeping the
    /// set of nodes reached so far. A node is in the set at most once, so
    /// each entry is reported once even when several paths reach it (as
    /// `**.a.**` does for `a.a.a`).
    fn for_each_match(&self, name: &str, f: &mut impl FnMut(IndexKey, &T)) {
        if self.nodes[ROOT].is_unused() {
            return;
        }
        let mut current = NodeSet::default();
        let mut next = NodeSet::default();
        self.enter(&mut current, ROOT);
        for segment in name.split('.') {
            for i in 0..current.len() {
                let id = current.get(i);
                let node = &self.nodes[id];
                if node.absorbs {
                    self.enter(&mut next, id);
                }
                if let Some(&child) = node.literal.get(segment) {
                    self.enter(&mut next, child);
                }
                if let Some(child) = node.one {
                    self.enter(&mut next, child);
                }
            }
            if next.is_empty() {
                return;
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        for i in 0..current.len() {
            for (key, value) in &self.nodes[current.get(i)].values {
                f(*key, value);
            }
        }
    }

    /// Adds `id` to `set` and, since `**` may match zero segments, the chain
    /// of `**` children below it.
    fn enter(&self, set: &mut NodeSet, mut id: NodeId) {
        while set.insert(id) {
            match self.nodes[id].any {
                Some(any) => id = any,
                None => break,
            }
        }
    }
}

const INLINE: usize = 16;

/// A set of nodes that stays on the stack while small, which it nearly
/// always is: it holds one node per trie path the name is still following.
struct NodeSet {
    inline: [NodeId; INLINE],
    len: usize,
    spill: Vec<NodeId>,
}

impl Default for NodeSet {
    fn default() -> Self {
        NodeSet {
            inline: [0; INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }
}

impl NodeSet {
    /// Adds `id`; `false` if it was already there.
    fn insert(&mut self, id: NodeId) -> bool {
        if self.inline[..self.len.min(INLINE)].contains(&id) || self.spill.contains(&id) {
            return false;
        }
        if self.len < INLINE {
            self.inline[self.len] = id;
        } else {
            self.spill.push(id);
        }
        self.len += 1;
        true
    }

    fn get(&self, i: usize) -> NodeId {
        if i < INLINE {
            self.inline[i]
        } else {
            self.spill[i - INLINE]
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(patterns: &[&str]) -> (PatternIndex<usize>, Vec<IndexKey>) {
        let mut index = PatternIndex::new();
        let keys = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| index.insert(&Pattern::new(p).unwrap(), i))
            .collect();
        (index, keys)
    }

    /// The values matching `name`, sorted, duplicates kept.
    fn hits(index: &PatternIndex<usize>, name: &str) -> Vec<usize> {
        let mut hits = Vec::new();
        index.for_each_match(name, |_, value| hits.push(*value));
        hits.sort();
        hits
    }

    #[test]
    fn finds_each_kind_of_pattern() {
        let (index, _) = index(&[
            "user.created", // 0
            "user.*",       // 1
            "user.**",      // 2
            "*.error",      // 3
            "**.error",     // 4
            "*",            // 5
            "**",           // 6
            "user.*.x",     // 7
        ]);
        assert_eq!(hits(&index, "user.created"), [0, 1, 2, 5, 6]);
        assert_eq!(hits(&index, "user"), [2, 5, 6]);
        assert_eq!(hits(&index, "user.profile.updated"), [2, 5, 6]);
        assert_eq!(hits(&index, "user.profile.x"), [2, 5, 6, 7]);
        assert_eq!(hits(&index, "payment.error"), [3, 4, 5, 6]);
        assert_eq!(hits(&index, "a.b.error"), [4, 5, 6]);
        assert_eq!(hits(&index, "error"), [4, 5, 6]);
        assert_eq!(hits(&index, "user.error"), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn reports_an_entry_once_whatever_the_paths() {
        let (index, _) = index(&["**.a.**", "**.**", "a.**.**.a", "**.*.**"]);
        assert_eq!(hits(&index, "a.a.a.a"), [0, 1, 2, 3]);
        assert_eq!(hits(&index, "b"), [1, 3]);
    }

    #[test]
    fn equal_patterns_keep_separate_entries() {
        let (mut index, keys) = index(&["a.*", "a.*", "a.b", "a.b"]);
        assert_eq!(hits(&index, "a.b"), [0, 1, 2, 3]);
        assert_eq!(index.remove(keys[1]), Some(1));
        assert_eq!(index.remove(keys[2]), Some(2));
        assert_eq!(hits(&index, "a.b"), [0, 3]);
    }

    #[test]
    fn keys_increase_and_are_removed_once() {
        let (mut index, keys) = index(&["a", "*", "a.**"]);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(index.remove(*key), Some(i));
            assert_eq!(index.remove(*key), None);
        }
        assert!(index.is_empty());
        assert_eq!(hits(&index, "a.b"), Vec::<usize>::new());
    }

    #[test]
    fn removal_prunes_the_trie() {
        let mut index = PatternIndex::new();
        let keep = index.insert(&Pattern::new("a.*").unwrap(), ());
        for _ in 0..100 {
            let key = index.insert(&Pattern::new("a.*.b.**.c").unwrap(), ());
            index.remove(key);
        }
        // root, `a`, `a.*`, and the three slots of `b.**.c`, reused each time.
        assert_eq!(index.trie.nodes.len(), 6);
        index.remove(keep);
        assert!(index.trie.nodes[ROOT].is_unused());
    }

    #[test]
    fn many_live_paths_spill_off_the_stack() {
        let patterns: Vec<String> = (0..40).map(|i| format!("**.{i}.**")).collect();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let (index, _) = index(&refs);
        let name = (0..40).map(|i| i.to_string()).collect::<Vec<_>>().join(".");
        assert_eq!(hits(&index, &name), (0..40).collect::<Vec<_>>());
        assert_eq!(hits(&index, "7.x"), [7]);
    }
}
