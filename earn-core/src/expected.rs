//! `Expected`: the version a stream must be at for an append to go ahead
//! (optimistic concurrency on event streams).

use std::fmt;

/// The version a stream must be at for an append to it to go ahead.
///
/// A stream's version is the number of events ever appended to it: its
/// first event is version 1. Two writers that read the stream at the same
/// version and both append with `Exact(that version)`: exactly one wins,
/// the other gets [`Error::WrongExpectedVersion`](crate::Error::WrongExpectedVersion)
/// carrying what it expected and what the stream is at.
///
/// ```
/// use earn::store::Expected;
///
/// assert_eq!(Expected::Exact(3).to_string(), "version 3");
/// assert_eq!(Expected::NoStream.to_string(), "no stream");
/// assert!(Expected::Exact(0).matches(None));
/// assert!(!Expected::NoStream.matches(Some(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expected {
    /// Append whatever the stream's version (no concurrency check).
    Any,
    /// The stream must not exist yet (no event was ever appended to it).
    NoStream,
    /// The stream must be exactly at this version. `Exact(0)` means the
    /// same as [`NoStream`](Expected::NoStream).
    Exact(u64),
}

impl Expected {
    /// Whether a stream at `actual` (`None`: no such stream) satisfies this.
    pub fn matches(self, actual: Option<u64>) -> bool {
        match self {
            Expected::Any => true,
            Expected::NoStream | Expected::Exact(0) => actual.is_none_or(|v| v == 0),
            Expected::Exact(version) => actual == Some(version),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Any => f.write_str("any version"),
            Expected::NoStream => f.write_str("no stream"),
            Expected::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// The version of a stream in a message: `version 4`, or `no stream`.
pub(crate) struct Actual(pub(crate) Option<u64>);

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None | Some(0) => f.write_str("it does not exist"),
            Some(version) => write!(f, "it is at version {version}"),
        }
    }
}
