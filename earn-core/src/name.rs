//! Event names (`user.created`), validated once, and the naming rules shared
//! with patterns.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use earn_vocab::{Fault, Grammar, Problem, scan};

/// The name of an event: dot-separated segments of `[a-z0-9_-]`, such as
/// `user.created` or `payment.refund-failed`.
///
/// Valid by construction, cheap to clone (one reference count), and usable as
/// a map key looked up by `&str`.
///
/// ```
/// use std::collections::HashMap;
/// use earn::EventName;
///
/// let name = EventName::new("user.profile.updated")?;
/// assert_eq!(name.segments().collect::<Vec<_>>(), ["user", "profile", "updated"]);
///
/// let err = EventName::new("User.created").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid event name `User.created`: segment 1 (`User`) contains `U`; \
///      segments use lowercase letters, digits, `_` and `-`",
/// );
///
/// let mut counts = HashMap::new();
/// counts.insert(name, 1);
/// assert_eq!(counts.get("user.profile.updated"), Some(&1));
/// # Ok::<(), earn::NameError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventName(Arc<str>);

impl EventName {
    /// Validates `name` and wraps it.
    pub fn new(name: impl AsRef<str>) -> Result<Self, NameError> {
        let name = name.as_ref();
        Self::validate(name)?;
        Ok(EventName(Arc::from(name)))
    }

    /// Checks `name` against the naming rules without allocating unless it is
    /// invalid (the error carries a copy of the input).
    pub fn validate(name: &str) -> Result<(), NameError> {
        match scan(name.as_bytes(), Grammar::Name) {
            None => Ok(()),
            Some(fault) => Err(NameError {
                input: name.into(),
                fault,
            }),
        }
    }

    /// Whether `name` follows the naming rules; usable in `const` contexts,
    /// so code generators can check a literal at compile time.
    ///
    /// ```
    /// const OK: bool = earn::EventName::is_valid("order.paid");
    /// assert!(OK);
    /// assert!(!earn::EventName::is_valid("order..paid"));
    /// ```
    pub const fn is_valid(name: &str) -> bool {
        scan(name.as_bytes(), Grammar::Name).is_none()
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated segments, in order; never empty.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventName").field(&self.as_str()).finish()
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Hashes exactly as `str` does, which `Borrow<str>` requires.
impl Hash for EventName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for EventName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EventName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for EventName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl FromStr for EventName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventName::new(s)
    }
}

impl TryFrom<&str> for EventName {
    type Error = NameError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        EventName::new(s)
    }
}

impl serde::Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = EventName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event name such as `user.created`")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<EventName, E> {
                EventName::new(s).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Why a string is not a valid [`EventName`].
///
/// Its message quotes the input and says which segment and character are at
/// fault, for example ``invalid event name `user..created`: segment 2 is empty
/// (two dots in a row)``.
#[derive(Clone, PartialEq, Eq)]
pub struct NameError {
    input: Box<str>,
    fault: Fault,
}

impl NameError {
    /// The rejected input.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Problem {
            grammar: Grammar::Name,
            input: &self.input,
            fault: self.fault,
        }
        .fmt(f)
    }
}

impl fmt::Debug for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NameError").field(&self.to_string()).finish()
    }
}

impl std::error::Error for NameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in ["a", "user.created", "a-b_c.0.x9", "-._", "a.b.c.d.e.f"] {
            assert!(EventName::is_valid(ok), "{ok}");
            assert_eq!(EventName::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", ".", "..", "a.", ".a", "a..b", "A", "a b", "é", "a.*", "a/b",
        ] {
            assert!(!EventName::is_valid(bad), "{bad:?}");
            assert_eq!(EventName::new(bad).unwrap_err().input(), bad);
        }
    }

    #[test]
    fn messages_escape_and_truncate() {
        let err = EventName::new("a.b\nc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid event name `a.b\\nc`: segment 2 (`b\\nc`) contains `\\n`; \
             segments use lowercase letters, digits, `_` and `-`"
        );
        let huge = format!("{}X", "a".repeat(100_000));
        let msg = EventName::new(&huge).unwrap_err().to_string();
        assert!(msg.len() < 400, "{msg}");
        assert!(msg.contains("(100001 bytes)"), "{msg}");
        assert!(msg.ends_with("contains `X`; segments use lowercase letters, digits, `_` and `-`"));
    }

    #[test]
    fn non_ascii_is_reported_whole() {
        let err = EventName::new("caf\u{e9}.x").unwrap_err();
        assert!(
            err.to_string().contains("segment 1 (`café`) contains `é`"),
            "{err}"
        );
    }

    #[test]
    fn deserialize_validates() {
        use serde::Deserialize;
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer};

        let de: StrDeserializer<'_, Error> = "order.paid".into_deserializer();
        assert_eq!(EventName::deserialize(de).unwrap(), "order.paid");
        let de: StrDeserializer<'_, Error> = "Order".into_deserializer();
        let err = EventName::deserialize(de).unwrap_err();
        assert!(
            err.to_string().contains("segment 1 (`Order`) contains `O`"),
            "{err}"
        );
    }
}
