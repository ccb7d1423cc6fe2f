//! Long runs of the crash and fault simulation (`timepost_tests::sim`).
//!
//! ```text
//! cargo run --release -p timepost-tests --bin sim -- --seeds 5000
//! cargo run -p timepost-tests --bin sim -- --seed 4242      # replay one
//! ```
//!
//! Prints the seeds run, the crash points hit, the ledger calls and reads,
//! and every violation with its seed; exits 1 when any seed fails.

use std::collections::BTreeMap;

fn arg(args: &[String], name: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    let (from, count) = match arg(&args, "--seed") {
        Some(s) => (s, 1),
        None => (
            arg(&args, "--from").unwrap_or(1),
            arg(&args, "--seeds").unwrap_or(1000),
        ),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = std::time::Instant::now();
    let mut points: BTreeMap<String, u64> = BTreeMap::new();
    let (mut crashes, mut messages, mut calls, mut reads, mut redriven) = (0, 0, 0, 0, 0);
    let (mut changed_seeds, mut changes) = (0, 0);
    let mut failed = Vec::new();
    for seed in from..from + count {
        let r = rt.block_on(timepost_tests::sim::run(seed));
        crashes += r.crashes;
        messages += r.messages;
        calls += r.ledger_calls;
        reads += r.ledger_reads;
        redriven += r.redriven;
        if !r.changed_elsewhere.is_empty() {
            changed_seeds += 1;
            changes += r.changed_elsewhere.len();
        }
        for (p, n) in &r.crash_points {
            *points.entry(p.clone()).or_default() += n;
        }
        if !r.violations.is_empty() {
            eprintln!(
                "seed {seed} FAILED ({}; changed in the books: {:?})",
                r.faults, r.changed_elsewhere
            );
            for v in &r.violations {
                eprintln!("  {v}");
            }
            failed.push(seed);
        }
    }
    println!(
        "seeds {from}..{}: {count} run in {:.1} s, {messages} messages, {crashes} crashes, {redriven} redrives after a fix",
        from + count - 1,
        started.elapsed().as_secs_f64()
    );
    println!("ledger: {calls} write calls, {reads} reads of the books");
    println!("books changed outside timepost in {changed_seeds} seeds ({changes} records deleted or edited)");
    println!("crash points hit:");
    for (p, n) in &points {
        println!("  {n:>6}  {p}");
    }
    println!("violations: {} seed(s) {:?}", failed.len(), failed);
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
