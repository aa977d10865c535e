//! The grammar of event names (`user.created`) and patterns (`user.*`):
//! dot-separated segments of `[a-z0-9_-]`, where a pattern's segment may
//! also be exactly `*` (one segment) or `**` (any number of segments).

use std::fmt;

/// Which grammar a text is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grammar {
    /// An event name: no wildcards.
    Name,
    /// A handler pattern: `*` and `**` segments allowed.
    Pattern,
}

/// Where a string first breaks the rules; found without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The text is empty.
    Empty,
    /// It starts with `.`.
    LeadingDot,
    /// It ends with `.`.
    TrailingDot,
    /// Two dots in a row. `segment` counts from 1.
    EmptySegment {
        /// The segment, counting from 1.
        segment: usize,
    },
    /// The character at byte `at` is not allowed; its segment starts at byte
    /// `start`.
    BadChar {
        /// The segment, counting from 1.
        segment: usize,
        /// Where the segment starts.
        start: usize,
        /// Where the character is.
        at: usize,
    },
    /// A segment holding `*` that is neither `*` nor `**`.
    BadWildcard {
        /// The segment, counting from 1.
        segment: usize,
        /// Where the segment starts.
        start: usize,
    },
}

const fn is_segment_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
}

/// Checks `s` against `grammar` and reports the first fault from the left,
/// without allocating; usable in `const` contexts.
///
/// ```
/// use earn_vocab::{Grammar, scan};
/// assert_eq!(scan(b"user.*", Grammar::Pattern), None);
/// assert!(scan(b"user.*", Grammar::Name).is_some());
/// ```
pub const fn scan(s: &[u8], grammar: Grammar) -> Option<Fault> {
    let wildcards = matches!(grammar, Grammar::Pattern);
    if s.is_empty() {
        return Some(Fault::Empty);
    }
    if s[0] == b'.' {
        return Some(Fault::LeadingDot);
    }
    let mut segment = 1;
    let mut start = 0;
    let mut stars = 0;
    let mut i = 0;
    while i <= s.len() {
        if i == s.len() || s[i] == b'.' {
            if i == start {
                return Some(if i == s.len() {
                    Fault::TrailingDot
                } else {
                    Fault::EmptySegment { segment }
                });
            }
            if stars > 0 && (stars != i - start || stars > 2) {
                return Some(Fault::BadWildcard { segment, start });
            }
            segment += 1;
            start = i + 1;
            stars = 0;
        } else if wildcards && s[i] == b'*' {
            stars += 1;
        } else if !is_segment_byte(s[i]) {
            return Some(Fault::BadChar {
                segment,
                start,
                at: i,
            });
        }
        i += 1;
    }
    None
}

/// A text that breaks a grammar, displayed as the message that says where
/// and why: ``invalid pattern `user.***`: segment 2 (`***`) is not a valid
/// wildcard; …``. The input is quoted with control characters escaped and
/// cut short, so a huge input does not flood a log.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    /// The grammar broken.
    pub grammar: Grammar,
    /// The text.
    pub input: &'a str,
    /// What [`scan`] found.
    pub fault: Fault,
}

impl fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(f, self.grammar, self.input, self.fault)
    }
}

fn describe(
    f: &mut fmt::Formatter<'_>,
    grammar: Grammar,
    input: &str,
    fault: Fault,
) -> fmt::Result {
    let wildcards = grammar == Grammar::Pattern;
    let what = if wildcards { "pattern" } else { "event name" };
    if fault == Fault::Empty {
        let example = if wildcards { "user.*" } else { "user.created" };
        return write!(
            f,
            "invalid {what}: it is empty; write dot-separated segments such as `{example}`"
        );
    }
    write!(f, "invalid {what} `{}`: ", Shown(input))?;
    match fault {
        Fault::Empty => Ok(()),
        Fault::LeadingDot | Fault::TrailingDot => {
            let place = if fault == Fault::LeadingDot {
                "starts"
            } else {
                "ends"
            };
            write!(
                f,
                "{place} with `.`; segments are joined by single dots, \
                 with none at the start or end"
            )
        }
        Fault::EmptySegment { segment } => {
            write!(f, "segment {segment} is empty (two dots in a row)")
        }
        Fault::BadChar { segment, start, at } => {
            let text = segment_at(input, start);
            // `at` is a char boundary: every byte before it in the segment is ASCII.
            let ch = input[at..].chars().next().unwrap_or('?');
            write!(
                f,
                "segment {segment} (`{}`) contains `{}`; segments use lowercase \
                 letters, digits, `_` and `-`",
                Shown(text),
                ch.escape_debug()
            )?;
            if wildcards {
                f.write_str(", or are exactly `*` or `**`")
            } else if ch == '*' {
                f.write_str(" (wildcards belong in patterns, not event names)")
            } else {
                Ok(())
            }
        }
        Fault::BadWildcard { segment, start } => write!(
            f,
            "segment {segment} (`{}`) is not a valid wildcard; a wildcard segment \
             is exactly `*` (one segment) or `**` (any number of segments)",
            Shown(segment_at(input, start))
        ),
    }
}

fn segment_at(input: &str, start: usize) -> &str {
    let rest = &input[start..];
    rest.split('.').next().unwrap_or(rest)
}

/// Quotes user input in a message: control characters escaped, and cut
/// short so a huge input does not flood the log.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LIMIT: usize = 80;
        for (n, c) in self.0.chars().enumerate() {
            if n == LIMIT {
                return write!(f, "… ({} bytes)", self.0.len());
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(grammar: Grammar, input: &str) -> String {
        let fault = scan(input.as_bytes(), grammar).expect("invalid");
        Problem {
            grammar,
            input,
            fault,
        }
        .to_string()
    }

    #[test]
    fn faults_are_located_and_explained() {
        assert_eq!(scan(b"user.**.error", Grammar::Pattern), None);
        assert_eq!(
            message(Grammar::Pattern, "user.***"),
            "invalid pattern `user.***`: segment 2 (`***`) is not a valid wildcard; a wildcard \
             segment is exactly `*` (one segment) or `**` (any number of segments)"
        );
        assert_eq!(
            message(Grammar::Name, "a.*"),
            "invalid event name `a.*`: segment 2 (`*`) contains `*`; segments use lowercase \
             letters, digits, `_` and `-` (wildcards belong in patterns, not event names)"
        );
        assert_eq!(
            message(Grammar::Name, ""),
            "invalid event name: it is empty; write dot-separated segments such as `user.created`"
        );
    }
}
