//! The crash and fault simulation (`timepost_tests::sim`) over a bounded
//! number of seeds; `cargo run -p timepost-tests --bin sim -- --seeds N`
//! runs more, `--seed N` replays one.

use std::collections::BTreeMap;

/// Seeds the test command runs (the tool runs thousands).
const SEEDS: u64 = 300;

#[tokio::test(flavor = "current_thread")]
async fn the_books_converge_under_crashes_and_ledger_faults() {
    let mut points: BTreeMap<String, u64> = BTreeMap::new();
    let mut crashes = 0;
    let mut failures = Vec::new();
    for seed in 1..=SEEDS {
        let r = timepost_tests::sim::run(seed).await;
        crashes += r.crashes;
        for (p, n) in r.crash_points {
            *points.entry(p).or_default() += n;
        }
        if !r.violations.is_empty() {
            failures.push(format!(
                "seed {seed} ({}):\n  {}",
                r.faults,
                r.violations.join("\n  ")
            ));
        }
    }
    println!("{SEEDS} seeds, {crashes} crashes; crash points hit: {points:#?}");
    assert!(
        failures.is_empty(),
        "{} seed(s) failed; replay with `cargo run -p timepost-tests --bin sim -- --seed N`:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The simulation must really crash at the boundaries that matter.
    for point in [
        "after ledger create",
        "before entry-state write",
        "after journal append",
    ] {
        assert!(
            points.contains_key(point),
            "no crash {point} in {SEEDS} seeds: {points:?}"
        );
    }
}
