//! Documentation generated from the code stays current.

use std::process::Command;

#[test]
fn exception_code_reference_matches_the_catalogue() {
    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .args(["explain", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/exception-codes.md"
    ))
    .unwrap();
    assert!(
        doc.ends_with(&table),
        "docs/exception-codes.md is out of date: regenerate its table with `timepost explain --all`"
    );
}
