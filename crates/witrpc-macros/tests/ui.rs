//! Compile-time behaviour of `#[service]`: what must build, and the errors for what must not.
//!
//! Refresh the expected errors with `TRYBUILD=overwrite cargo test -p witrpc-macros --test ui`,
//! then read the diff: each message must say what is wrong and point at the offending tokens.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
