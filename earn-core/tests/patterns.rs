//! What patterns match, and what users are told when a name or pattern is
//! malformed.

use earn_core::{EventName, Pattern};

#[test]
fn matching_table() {
    // (pattern, name, matches)
    let table = [
        ("user.*", "user.created", true),
        ("user.*", "user.profile.updated", false),
        ("user.*", "user", false),
        ("user.**", "user.created", true),
        ("user.**", "user.profile.updated", true),
        ("user.**", "user", true),
        ("user.**", "users.created", false),
        ("*.error", "payment.error", true),
        ("*.error", "a.b.error", false),
        ("*.error", "error", false),
        ("**.error", "error", true),
        ("**.error", "a.error", true),
        ("**.error", "a.b.error", true),
        ("**.error", "error.a", false),
        ("*", "a", true),
        ("*", "a.b.c", true),
        ("**", "a", true),
        ("**", "a.b.c", true),
        ("user.created", "user.created", true),
        ("user.created", "user.create", false),
        ("user.created", "user.created.x", false),
        ("user.created", "user", false),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.c", false),
        ("a.**.c", "a.c", true),
        ("a.**.c", "a.b.b.c", true),
        ("a.**.c", "a.b.b.c.d", false),
        ("*.*", "a", false),
        ("*.*", "a.b", true),
        ("*.**", "a", true),
        ("**.a.**", "b.a.b", true),
        ("**.a.**", "b.b", false),
    ];
    for (pattern, name, expected) in table {
        let p = Pattern::new(pattern).unwrap();
        let n = EventName::new(name).unwrap();
        assert_eq!(p.matches(&n), expected, "`{pattern}` against `{name}`");
        assert_eq!(
            p.matches_str(name),
            expected,
            "`{pattern}` against `{name}`"
        );
        assert_eq!(p.is_exact(), !pattern.contains('*'), "`{pattern}`");
    }
}

const NAME_RULE: &str = "segments use lowercase letters, digits, `_` and `-`";

#[test]
fn invalid_names_say_what_and_where() {
    let table = [
        (
            "User.created",
            format!(
                "invalid event name `User.created`: segment 1 (`User`) contains `U`; {NAME_RULE}"
            ),
        ),
        (
            "",
            "invalid event name: it is empty; write dot-separated segments such as `user.created`"
                .to_owned(),
        ),
        (
            ".user",
            "invalid event name `.user`: starts with `.`; segments are joined by single dots, \
             with none at the start or end"
                .to_owned(),
        ),
        (
            "user.",
            "invalid event name `user.`: ends with `.`; segments are joined by single dots, \
             with none at the start or end"
                .to_owned(),
        ),
        (
            "user..created",
            "invalid event name `user..created`: segment 2 is empty (two dots in a row)".to_owned(),
        ),
        (
            "user.profile updated",
            format!(
                "invalid event name `user.profile updated`: segment 2 (`profile updated`) \
                 contains ` `; {NAME_RULE}"
            ),
        ),
        (
            "user.*",
            format!(
                "invalid event name `user.*`: segment 2 (`*`) contains `*`; {NAME_RULE} \
                 (wildcards belong in patterns, not event names)"
            ),
        ),
        (
            "café.ouvert",
            format!(
                "invalid event name `café.ouvert`: segment 1 (`café`) contains `é`; {NAME_RULE}"
            ),
        ),
    ];
    for (input, message) in table {
        let err = EventName::new(input).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(err.input(), input);
        assert_eq!(EventName::validate(input).unwrap_err(), err);
        assert!(!EventName::is_valid(input));
        assert_eq!(input.parse::<EventName>().unwrap_err(), err);
    }
}

#[test]
fn invalid_patterns_say_what_and_where() {
    let wildcard =
        "a wildcard segment is exactly `*` (one segment) or `**` (any number of segments)";
    let table = [
        (
            "us*r.created",
            format!(
                "invalid pattern `us*r.created`: segment 1 (`us*r`) is not a valid wildcard; {wildcard}"
            ),
        ),
        (
            "user.***",
            format!(
                "invalid pattern `user.***`: segment 2 (`***`) is not a valid wildcard; {wildcard}"
            ),
        ),
        (
            "user.*x",
            format!(
                "invalid pattern `user.*x`: segment 2 (`*x`) is not a valid wildcard; {wildcard}"
            ),
        ),
        (
            "User.*",
            format!(
                "invalid pattern `User.*`: segment 1 (`User`) contains `U`; {NAME_RULE}, \
                 or are exactly `*` or `**`"
            ),
        ),
        (
            "",
            "invalid pattern: it is empty; write dot-separated segments such as `user.*`"
                .to_owned(),
        ),
        (
            ".*",
            "invalid pattern `.*`: starts with `.`; segments are joined by single dots, \
             with none at the start or end"
                .to_owned(),
        ),
        (
            "user.**.",
            "invalid pattern `user.**.`: ends with `.`; segments are joined by single dots, \
             with none at the start or end"
                .to_owned(),
        ),
        (
            "*..*",
            "invalid pattern `*..*`: segment 2 is empty (two dots in a row)".to_owned(),
        ),
    ];
    for (input, message) in table {
        let err = Pattern::new(input).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(err.input(), input);
        assert_eq!(input.parse::<Pattern>().unwrap_err(), err);
    }
}

#[test]
fn names_and_patterns_round_trip_through_display() {
    for text in ["user.created", "a-b_c.0"] {
        let name: EventName = text.parse().unwrap();
        assert_eq!(name.to_string(), text);
        assert_eq!(name.as_ref(), text);
        assert_eq!(Pattern::from(name.clone()).as_str(), text);
    }
    for text in ["user.*", "**.error", "*", "a.b"] {
        let pattern: Pattern = text.parse().unwrap();
        assert_eq!(pattern.to_string(), text);
        assert_eq!(pattern, Pattern::new(text).unwrap());
    }
}
