//! `earn::registry()` lists what was registered at link time: hooks and
//! event handlers, with where they are declared.

use earn::prelude::*;

#[event_handler("registry.*", priority = 7)]
async fn listed_handler(_event: &Event) {}

#[event_handler("registry.*")]
fn second_handler(_event: &Event) {}

#[test]
fn the_registry_lists_event_handlers_with_pattern_priority_and_source() {
    let registry = earn::registry();
    let ours: Vec<_> = registry
        .handlers
        .iter()
        .filter(|h| h.options.pattern == "registry.*")
        .collect();
    // In run order: priority first.
    let names: Vec<&str> = ours.iter().map(|h| h.name).collect();
    assert_eq!(
        names,
        ["registry::listed_handler", "registry::second_handler"]
    );
    let first = ours[0];
    assert_eq!(first.options.priority, 7);
    assert!(first.file.ends_with("registry.rs"), "{}", first.file);
    assert!(
        first
            .to_string()
            .starts_with("registry::listed_handler on `registry.*` (priority 7) at "),
        "{first}"
    );
    let printed = registry.to_string();
    assert!(printed.contains("event handlers (2):"), "{printed}");
    assert!(
        printed.contains("registry::second_handler on `registry.*` (priority 0)"),
        "{printed}"
    );
}
