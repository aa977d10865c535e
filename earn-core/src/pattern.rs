//! Subscription patterns (`user.*`, `**.error`) and matching them against
//! event names.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use earn_vocab::{Fault, Grammar, Problem, scan};

use crate::name::EventName;

/// Which events a handler wants: an event name whose segments may also be
/// `*` (exactly one segment) or `**` (zero or more segments). The bare
/// pattern `*` matches every event.
///
/// | pattern      | matches                                  | does not match           |
/// |--------------|------------------------------------------|--------------------------|
/// | `user.*`     | `user.created`                           | `user`, `user.a.b`       |
/// | `user.**`    | `user`, `user.created`, `user.a.b`       | `users.created`          |
/// | `*.error`    | `payment.error`                          | `error`, `a.b.error`     |
/// | `**.error`   | `error`, `a.error`, `a.b.error`          | `error.a`                |
/// | `*`          | every event                              |                          |
///
/// Matching allocates nothing and takes at most time proportional to the
/// pattern's length times the name's, however many `**` the pattern has.
///
/// ```
/// use earn::{EventName, Pattern};
///
/// let pattern = Pattern::new("user.**")?;
/// assert!(pattern.matches(&EventName::new("user.profile.updated")?));
/// assert!(!pattern.matches(&EventName::new("order.created")?));
///
/// let err = Pattern::new("us*r.created").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid pattern `us*r.created`: segment 1 (`us*r`) is not a valid wildcard; \
///      a wildcard segment is exactly `*` (one segment) or `**` (any number of segments)",
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pattern(Arc<Inner>);

struct Inner {
    source: Box<str>,
    segments: Box<[Seg]>,
    exact: bool,
}

/// A parsed segment; a literal is a byte range of the source.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seg {
    Literal(usize, usize),
    One,
    Any,
}

/// A segment of a pattern, as the index walks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    Literal(&'a str),
    /// `*`: exactly one segment.
    One,
    /// `**`: zero or more segments.
    Any,
}

impl Pattern {
    /// Validates `pattern` and parses it.
    pub fn new(pattern: impl AsRef<str>) -> Result<Self, PatternError> {
        let source = pattern.as_ref();
        if let Some(fault) = scan(source.as_bytes(), Grammar::Pattern) {
            return Err(PatternError {
                input: source.into(),
                fault,
            });
        }
        Ok(Pattern::parse(source))
    }

    /// Parses a string that passed [`scan`].
    fn parse(source: &str) -> Self {
        let mut start = 0;
        let segments: Box<[Seg]> = source
            .split('.')
            .map(|text| {
                let seg = match text {
                    "*" => Seg::One,
                    "**" => Seg::Any,
                    _ => Seg::Literal(start, start + text.len()),
                };
                start += text.len() + 1;
                seg
            })
            .collect();
        let exact = segments.iter().all(|s| matches!(s, Seg::Literal(..)));
        Pattern(Arc::new(Inner {
            source: source.into(),
            segments,
            exact,
        }))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    /// Whether the pattern has no wildcard, so it matches one name only.
    pub fn is_exact(&self) -> bool {
        self.0.exact
    }

    /// Whether the pattern is the bare `*`, which matches every event.
    pub(crate) fn is_catch_all(&self) -> bool {
        &*self.0.source == "*"
    }

    /// The segments, in order.
    pub(crate) fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        self.0.segments.iter().map(|seg| self.segment(*seg))
    }

    fn segment(&self, seg: Seg) -> Segment<'_> {
        match seg {
            Seg::Literal(start, end) => Segment::Literal(&self.0.source[start..end]),
            Seg::One => Segment::One,
            Seg::Any => Segment::Any,
        }
    }

    /// Whether the event `name` is one this pattern selects.
    pub fn matches(&self, name: &EventName) -> bool {
        self.matches_str(name.as_str())
    }

    /// [`matches`](Pattern::matches) for a name already known to be valid
    /// (for an invalid one the answer is unspecified, but it never panics).
    pub fn matches_str(&self, name: &str) -> bool {
        if self.0.exact {
            return *self.0.source == *name;
        }
        if self.is_catch_all() {
            return true;
        }
        // Glob matching over segments with `**` as the star: on a mismatch,
        // let the most recent `**` absorb one more segment and retry from
        // there. Earlier `**`s never need revisiting, since the latest one
        // can absorb anything they could, so this is O(pattern × name).
        let segments = &self.0.segments;
        let end = name.len() + 1;
        let (mut p, mut n) = (0, 0);
        let mut retry: Option<(usize, usize)> = None;
        while n < end {
            let (text, next) = next_segment(name, n);
            match segments.get(p) {
                Some(Seg::Any) => {
                    retry = Some((p + 1, n));
                    p += 1;
                    continue;
                }
                Some(Seg::One) => {}
                Some(&Seg::Literal(start, stop)) if self.0.source[start..stop] == *text => {}
                _ => match retry {
                    Some((after_any, from)) => {
                        let (_, resume) = next_segment(name, from);
                        retry = Some((after_any, resume));
                        p = after_any;
                        n = resume;
                        continue;
                    }
                    None => return false,
                },
            }
            p += 1;
            n = next;
        }
        segments[p..].iter().all(|s| *s == Seg::Any)
    }
}

/// The segment of `name` starting at byte `at`, and where the next one
/// starts (`name.len() + 1` past the last).
fn next_segment(name: &str, at: usize) -> (&str, usize) {
    let rest = &name[at..];
    match rest.find('.') {
        Some(dot) => (&rest[..dot], at + dot + 1),
        None => (rest, name.len() + 1),
    }
}

impl From<EventName> for Pattern {
    /// The exact pattern matching only `name`.
    fn from(name: EventName) -> Self {
        // Every valid name is a valid pattern.
        Pattern::parse(name.as_str())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::new(s)
    }
}

impl TryFrom<&str> for Pattern {
    type Error = PatternError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Pattern::new(s)
    }
}

/// Why a string is not a valid [`Pattern`].
///
/// Its message quotes the input and says which segment and character are at
/// fault, for example ``invalid pattern `user.***`: segment 2 (`***`) is not a
/// valid wildcard; …``.
#[derive(Clone, PartialEq, Eq)]
pub struct PatternError {
    input: Box<str>,
    fault: Fault,
}

impl PatternError {
    /// The rejected input.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Problem {
            grammar: Grammar::Pattern,
            input: &self.input,
            fault: self.fault,
        }
        .fmt(f)
    }
}

impl fmt::Debug for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PatternError")
            .field(&self.to_string())
            .finish()
    }
}

impl std::error::Error for PatternError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_exactness() {
        let p = Pattern::new("user.*.x.**").unwrap();
        assert!(!p.is_exact());
        assert_eq!(
            p.segments().collect::<Vec<_>>(),
            [
                Segment::Literal("user"),
                Segment::One,
                Segment::Literal("x"),
                Segment::Any
            ]
        );
        assert!(Pattern::new("user.created").unwrap().is_exact());
        let from_name = Pattern::from(EventName::new("a.b").unwrap());
        assert!(from_name.is_exact());
        assert_eq!(from_name, Pattern::new("a.b").unwrap());
        assert_eq!(
            from_name.segments().collect::<Vec<_>>(),
            [Segment::Literal("a"), Segment::Literal("b")]
        );
        assert!(from_name.matches_str("a.b"));
    }

    #[test]
    fn many_any_segments_stay_fast() {
        let pattern = Pattern::new(vec!["**"; 200].join(".") + ".b").unwrap();
        let name = vec!["a"; 2000].join(".");
        assert!(!pattern.matches_str(&name));
        assert!(pattern.matches_str(&(name + ".b")));
    }

    #[test]
    fn invalid_names_never_panic() {
        let p = Pattern::new("a.**.*").unwrap();
        for name in ["", ".", "..", "a..", ".a.b", "é.é"] {
            let _ = p.matches_str(name);
        }
    }
}
