//! The demo's outcome is checked against a golden file, so any change in
//! behaviour shows up in review. `UPDATE_GOLDEN=1 cargo test -p
//! timepost-tests --test demo_golden` rewrites it after a deliberate change.

use std::path::PathBuf;

#[tokio::test]
async fn demo_outcome_matches_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let report = timepost::demo::run(dir.path()).await.expect("demo runs");
    let actual = serde_json::to_string_pretty(&report).unwrap() + "\n";
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/demo.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file exists (UPDATE_GOLDEN=1 creates it)");
    assert!(
        actual == expected,
        "the demo outcome changed; review `git diff` after UPDATE_GOLDEN=1.\n{}",
        first_difference(&expected, &actual)
    );
    assert!(
        report.reconciliation.agrees,
        "tracker and ledger must agree"
    );
}

#[tokio::test]
async fn demo_covers_every_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let r = timepost::demo::run(dir.path()).await.unwrap();
    assert!(r.posted.entries >= 20);
    assert!(!r.held.is_empty() && !r.awaiting_approval.is_empty() && !r.exceptions.is_empty());
    assert!(
        !r.voided.is_empty(),
        "an entry deleted after posting is voided"
    );
    assert!(!r.ignored.is_empty(), "the running timer is not posted");
    assert_eq!(r.duplicates_ignored.len(), 2);
    assert_eq!(r.stale_versions_ignored.len(), 1, "the late offline edit");
    assert!(r.posted.by_tier.iter().any(|g| g.name == "double_time"));
    assert!(r
        .reconciliation
        .billable_by_currency
        .iter()
        .any(|c| c.currency == "EUR"));
    // Every exception explains itself.
    for i in r.exceptions.iter().chain(&r.held) {
        let e = i.reason.as_ref().unwrap();
        assert!(!e.message.is_empty() && !e.fix_hint.is_empty());
    }
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: expected `{x}`, got `{y}`", i + 1);
        }
    }
    format!(
        "lengths differ: {} vs {} lines",
        a.lines().count(),
        b.lines().count()
    )
}
