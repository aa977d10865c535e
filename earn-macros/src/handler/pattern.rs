//! Event names and patterns, checked at compile time with the grammar the
//! runtime checks with (`earn-vocab`). The message adds what to write
//! instead when it can be guessed.

use earn_vocab::{Grammar, Problem, scan};

/// `Err(message)` if `pattern` is not a valid event pattern.
pub(crate) fn check(pattern: &str) -> Result<(), String> {
    check_text(pattern, Grammar::Pattern)
}

/// `Err(message)` if `name` is not a valid event name (or name prefix):
/// a pattern without wildcards.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    check_text(name, Grammar::Name)
}

fn check_text(text: &str, grammar: Grammar) -> Result<(), String> {
    let Some(fault) = scan(text.as_bytes(), grammar) else {
        return Ok(());
    };
    let problem = Problem {
        grammar,
        input: text,
        fault,
    };
    Err(match suggestion(text, grammar) {
        Some(fix) => format!("{problem}; write `\"{fix}\"`"),
        None => problem.to_string(),
    })
}

/// The text with empty segments dropped, wildcards made whole (or dropped
/// from a name) and letters lowercased, if that is valid.
fn suggestion(text: &str, grammar: Grammar) -> Option<String> {
    let wildcards = grammar == Grammar::Pattern;
    let fixed: Vec<String> = text
        .split('.')
        .filter(|segment| !segment.is_empty())
        .filter(|segment| wildcards || !segment.contains('*'))
        .map(|segment| {
            if !segment.contains('*') {
                segment.to_lowercase()
            } else if segment.chars().all(|c| c == '*') {
                "**".to_owned()
            } else {
                "*".to_owned()
            }
        })
        .collect();
    let fixed = fixed.join(".");
    scan(fixed.as_bytes(), grammar).is_none().then_some(fixed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn accepts_names_and_wildcards_and_rejects_the_rest() {
        for ok in [
            "user.created",
            "user.*",
            "user.**",
            "*",
            "**.error",
            "a-b.c_d.9",
        ] {
            assert_eq!(super::check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "User.created",
            "user..created",
            "user.",
            "us*r",
            "***",
            "user created",
        ] {
            assert!(super::check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_have_no_wildcards() {
        assert_eq!(super::check_name("shop.order"), Ok(()));
        for bad in ["", "user.*", "*", "User", "user."] {
            assert!(super::check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_end_with_what_to_write() {
        let fix = |text: &str, wildcards: bool| {
            let grammar = if wildcards {
                super::Grammar::Pattern
            } else {
                super::Grammar::Name
            };
            let message = super::check_text(text, grammar).unwrap_err();
            message
                .rsplit_once("write `\"")
                .map(|(_, fix)| fix.trim_end_matches("\"`").to_owned())
        };
        assert_eq!(fix("User.Created", true).as_deref(), Some("user.created"));
        assert_eq!(fix("user..created", true).as_deref(), Some("user.created"));
        assert_eq!(fix(".user.", true).as_deref(), Some("user"));
        assert_eq!(fix("us*r.created", true).as_deref(), Some("*.created"));
        assert_eq!(fix("user.***", true).as_deref(), Some("user.**"));
        assert_eq!(fix("user.*", false).as_deref(), Some("user"));
        assert_eq!(fix("user created", true), None);
        assert_eq!(fix("*", false), None);
    }
}
