//! Property tests: matching agrees with a naive reference, the index finds
//! exactly the matching entries, and parsing accepts exactly the documented
//! rules without ever panicking.

use std::collections::BTreeSet;

use earn_core::{EventName, IndexKey, Pattern, PatternIndex};
use proptest::prelude::*;

/// The specification, written as directly as possible: exponential, but
/// the generated inputs are small.
fn reference(pattern: &[&str], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((&"**", rest)) => (0..=name.len()).any(|k| reference(rest, &name[k..])),
        Some((&"*", rest)) => !name.is_empty() && reference(rest, &name[1..]),
        Some((literal, rest)) => name.first() == Some(literal) && reference(rest, &name[1..]),
    }
}

fn reference_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let name: Vec<&str> = name.split('.').collect();
    reference(&pattern, &name)
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=6)
        .prop_map(|segments| segments.join("."))
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "*", "**"]), 1..=6)
        .prop_map(|segments| segments.join("."))
}

fn segment_ok(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_valid_name(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(segment_ok)
}

fn is_valid_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|segment| segment == "*" || segment == "**" || segment_ok(segment))
}

/// Every key the index reports for `name`, checking none comes twice.
fn index_hits(index: &PatternIndex<String>, name: &str) -> BTreeSet<IndexKey> {
    let mut hits = BTreeSet::new();
    index.for_each_match(name, |key, _| {
        assert!(hits.insert(key), "{key:?} reported twice for `{name}`");
    });
    hits
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_agrees_with_reference(pattern in pattern_strategy(), name in name_strategy()) {
        let p = Pattern::new(&pattern).unwrap();
        let n = EventName::new(&name).unwrap();
        let expected = reference_matches(&pattern, &name);
        prop_assert_eq!(p.matches(&n), expected, "`{}` against `{}`", pattern, name);
        prop_assert_eq!(p.matches_str(&name), expected);
    }

    #[test]
    fn exact_patterns_match_equal_names_only(a in name_strategy(), b in name_strategy()) {
        let p = Pattern::new(&a).unwrap();
        prop_assert!(p.is_exact());
        prop_assert_eq!(p.matches_str(&b), a == b);
    }

    #[test]
    fn index_finds_exactly_the_matching_entries(
        first in prop::collection::vec(pattern_strategy(), 0..16),
        removed in prop::collection::vec(any::<bool>(), 16),
        second in prop::collection::vec(prop_oneof![pattern_strategy(), name_strategy()], 0..8),
        names in prop::collection::vec(name_strategy(), 1..8),
    ) {
        let mut index = PatternIndex::new();
        let mut live = Vec::new();
        for pattern in &first {
            let key = index.insert(&Pattern::new(pattern).unwrap(), pattern.clone());
            live.push((key, pattern.clone()));
        }
        let mut kept = Vec::new();
        for (i, (key, pattern)) in live.into_iter().enumerate() {
            if removed[i] {
                prop_assert_eq!(index.remove(key), Some(pattern));
                prop_assert_eq!(index.remove(key), None);
            } else {
                kept.push((key, pattern));
            }
        }
        for pattern in &second {
            let key = index.insert(&Pattern::new(pattern).unwrap(), pattern.clone());
            prop_assert!(kept.iter().all(|(k, _)| *k < key));
            kept.push((key, pattern.clone()));
        }
        prop_assert_eq!(index.len(), kept.len());
        prop_assert_eq!(index.is_empty(), kept.is_empty());
        for name in &names {
            let expected: BTreeSet<IndexKey> = kept
                .iter()
                .filter(|(_, pattern)| reference_matches(pattern, name))
                .map(|(key, _)| *key)
                .collect();
            prop_assert_eq!(index_hits(&index, name), expected, "name `{}`", name);
        }
    }

    #[test]
    fn parsing_arbitrary_strings_follows_the_rules(s in any::<String>()) {
        check_parsing(&s)?;
    }

    #[test]
    fn parsing_near_valid_strings_follows_the_rules(s in "[a-cA_\\-0.* é\n]{0,12}") {
        check_parsing(&s)?;
    }
}

fn check_parsing(s: &str) -> Result<(), TestCaseError> {
    let name = EventName::new(s);
    prop_assert_eq!(name.is_ok(), is_valid_name(s), "name {:?}", s);
    prop_assert_eq!(EventName::is_valid(s), is_valid_name(s));
    match name {
        Ok(name) => prop_assert_eq!(name.as_str(), s),
        Err(err) => {
            prop_assert_eq!(err.input(), s);
            prop_assert!(err.to_string().starts_with("invalid event name"));
        }
    }
    let pattern = Pattern::new(s);
    prop_assert_eq!(pattern.is_ok(), is_valid_pattern(s), "pattern {:?}", s);
    match pattern {
        Ok(pattern) => {
            prop_assert_eq!(pattern.as_str(), s);
            prop_assert_eq!(pattern.is_exact(), is_valid_name(s));
            // Must not panic, whatever the string.
            let _ = pattern.matches_str(s);
        }
        Err(err) => {
            prop_assert_eq!(err.input(), s);
            prop_assert!(err.to_string().starts_with("invalid pattern"));
        }
    }
    Ok(())
}
