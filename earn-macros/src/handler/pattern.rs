//! The pattern syntax, checked at compile time (the same rules as
//! `earn_core::Pattern`, which checks again at run time).

/// `Err(message)` if `pattern` is not a valid event pattern.
pub(crate) fn check(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an event pattern cannot be empty; use `*` to match every event".into());
    }
    for (i, segment) in pattern.split('.').enumerate() {
        if segment.is_empty() {
            return Err(format!(
                "invalid event pattern `{pattern}`: segment {} is empty (a leading, trailing or doubled `.`)",
                i + 1
            ));
        }
        if segment == "*" || segment == "**" {
            continue;
        }
        if segment.contains('*') {
            return Err(format!(
                "invalid event pattern `{pattern}`: `{segment}` mixes `*` with other characters; \
                 `*` matches one whole segment and `**` any number of segments"
            ));
        }
        if let Some(bad) = segment
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
        {
            return Err(format!(
                "invalid event pattern `{pattern}`: `{segment}` contains `{bad}`; segments use \
                 lowercase letters, digits, `_` and `-`, or are `*` / `**`"
            ));
        }
    }
    Ok(())
}

/// `Err(message)` if `name` is not a valid event name (or name prefix):
/// a pattern without wildcards.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.contains('*') {
        return Err(format!(
            "invalid event name `{name}`: names have no wildcards; use lowercase segments like `user` or `shop.order`"
        ));
    }
    check(name).map_err(|message| message.replace("event pattern", "event name"))
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
}
