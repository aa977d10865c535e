//! Parses arbitrary input as an event name and as a pattern: nothing may
//! panic, the two parsers must agree with each other, and an exact pattern
//! must match exactly the equal name.

#![no_main]

use earn_core::{EventName, Pattern, PatternIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Also try the input split in two, as a pattern and a name to match.
    let (left, right) = text.split_once('\n').unwrap_or((&text, &text));

    let name = EventName::new(right);
    let pattern = Pattern::new(left);
    let _ = name.as_ref().map_err(ToString::to_string);
    let _ = pattern.as_ref().map_err(ToString::to_string);
    assert_eq!(EventName::is_valid(right), name.is_ok());
    if EventName::new(left).is_ok() {
        // Every name is also an exact pattern.
        assert!(pattern.as_ref().is_ok_and(Pattern::is_exact));
    }

    if let (Ok(name), Ok(pattern)) = (name, pattern) {
        let matched = pattern.matches(&name);
        assert_eq!(matched, pattern.matches_str(name.as_str()));
        if pattern.is_exact() {
            assert_eq!(matched, pattern.as_str() == name.as_str());
        }

        let mut index = PatternIndex::new();
        let key = index.insert(&pattern, ());
        let mut hits = 0;
        index.for_each_match(name.as_str(), |found, _| {
            assert_eq!(found, key);
            hits += 1;
        });
        assert_eq!(hits, usize::from(matched), "index and `matches` disagree");
        assert_eq!(index.remove(key), Some(()));
    }
});
