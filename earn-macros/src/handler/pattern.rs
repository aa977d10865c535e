//! The pattern syntax, checked at compile time (the same rules as
//! `earn_core::Pattern`, which checks again at run time). Unlike the run-time
//! error, the message ends with the string to write instead when one can be
//! guessed.

/// `Err(message)` if `pattern` is not a valid event pattern.
pub(crate) fn check(pattern: &str) -> Result<(), String> {
    check_text(pattern, true)
}

/// `Err(message)` if `name` is not a valid event name (or name prefix):
/// a pattern without wildcards.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    check_text(name, false)
}

fn check_text(text: &str, wildcards: bool) -> Result<(), String> {
    let (what, examples) = if wildcards {
        (
            "event pattern",
            "`\"user.created\"`, `\"user.*\"` or `\"*\"` (every event)",
        )
    } else {
        ("event name", "`\"user\"` or `\"shop.order\"`")
    };
    if text.is_empty() {
        return Err(format!(
            "an {what} cannot be empty: write one such as {examples}"
        ));
    }
    let segments: Vec<&str> = text.split('.').collect();
    let Some(fault) = segments
        .iter()
        .enumerate()
        .find_map(|(i, segment)| fault(&segments, i, segment, wildcards))
    else {
        return Ok(());
    };
    let fix = suggestion(&segments, wildcards);
    Err(match fix {
        Some(fix) => format!("invalid {what} `{text}`: {fault}; write `\"{fix}\"`"),
        None => format!("invalid {what} `{text}`: {fault}; write one such as {examples}"),
    })
}

/// What is wrong with segment `i`, if anything.
fn fault(segments: &[&str], i: usize, segment: &str, wildcards: bool) -> Option<String> {
    if segment.is_empty() {
        return Some(if i == 0 {
            "it starts with `.`".into()
        } else if i == segments.len() - 1 {
            "it ends with `.`".into()
        } else {
            "it has two dots in a row".into()
        });
    }
    if segment.contains('*') {
        if !wildcards {
            return Some("names have no wildcards (`*` belongs in handler patterns)".into());
        }
        if segment == "*" || segment == "**" {
            return None;
        }
        return Some(format!(
            "`{segment}` mixes `*` with other characters, but a wildcard is a whole \
             segment: `*` matches one segment and `**` any number of segments"
        ));
    }
    let bad = segment.chars().find(|c| !is_segment_char(*c))?;
    let also = if wildcards { ", or are `*` / `**`" } else { "" };
    Some(format!(
        "`{segment}` contains `{}`; segments use lowercase letters, digits, `_` and `-`{also}",
        bad.escape_debug()
    ))
}

/// The text with empty segments dropped, wildcards made whole (or dropped
/// from a name) and letters lowercased, if that is valid.
fn suggestion(segments: &[&str], wildcards: bool) -> Option<String> {
    let fixed: Vec<String> = segments
        .iter()
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
    let valid = !fixed.is_empty()
        && fixed.iter().all(|segment| {
            segment == "*" || segment == "**" || segment.chars().all(is_segment_char)
        });
    valid.then(|| fixed.join("."))
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
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
            let message = super::check_text(text, wildcards).unwrap_err();
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
