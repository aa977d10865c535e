//! Compile-fail tests: every misuse of `derive(Model)`, `#[hooks]`, the
//! phase attributes, `#[event_handler]` and `#[service]`, with the error the
//! user sees (`tests/ui/*.stderr`).
//!
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p earn-macros --test ui`, then read it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
