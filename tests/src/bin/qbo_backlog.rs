//! Benchmark: post a backlog of entries to the fake QBO, which enforces
//! QBO's published limits with time compressed (`--scale 120`: a "minute"
//! lasts half a second), through the real adapter and `post_backlog`.
//!
//! `cargo run --release -p timepost-tests --bin qbo-backlog -- [--entries N]
//! [--batch B] [--scale S]`
//!
//! Prints entries per API call, sustained entries per (compressed) minute
//! as a share of the ceiling (the lesser of the items per minute and batch
//! calls per minute × batch size: each batch item counts as a request), the
//! 429s and the duplicates. Exits 1 if anything was posted twice or not at
//! all.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timepost::config::WorkerConfig;
use timepost::engine::backlog::post_backlog;
use timepost::ledger::cloud::Connect;
use timepost::ledger::cloud::QboLimits;
use timepost::ledger::{Ledger, LedgerOp, Party};
use timepost_tests::qbo_fake::{QboFakeLimits, QboServer};
use timepost_tests::{line, oauth_secrets, qbo_config, request, sandbox_chart};

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| {
        Ok::<_, String>((
            arg(&args, "--entries", 20_000)?,
            arg(&args, "--batch", 10)?,
            arg(&args, "--scale", 120)?,
        ))
    })();
    let (entries, batch, scale) = match parsed {
        Ok(v) if v.1 >= 1 && v.1 <= 30 && v.2 >= 1 => v,
        Ok(_) => {
            eprintln!("--batch must be 1..=30 and --scale at least 1");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let minute = Duration::from_secs(60) / scale as u32;
    let published = QboLimits::default();
    let server = QboServer::start(
        "9130",
        sandbox_chart(),
        QboFakeLimits {
            per_minute: published.requests_per_minute,
            batches_per_minute: published.batches_per_minute,
            concurrent: published.concurrent,
            minute,
            max_batch: 30,
        },
        "rt-initial",
    )
    .await;
    let limits = QboLimits {
        minute_ms: minute.as_millis() as u64,
        ..published.clone()
    };
    let secrets = Arc::new(oauth_secrets("qbo", "rt-initial"));
    let ledger: Arc<dyn Ledger> =
        match qbo_config(&server, batch as usize, limits.clone()).connect(secrets) {
            Ok(l) => Arc::new(l),
            Err(e) => {
                eprintln!("cannot connect: {e}");
                return ExitCode::from(1);
            }
        };
    let reqs: Vec<_> = (0..entries)
        .map(|n| {
            let l = line(
                Party::Employee {
                    id: format!("E-10{}", n % 8),
                },
                15 + (n % 480) as i64,
                &format!("backlog entry #{n}"),
            );
            request(&format!("bl-{n}"), 1, LedgerOp::Create { lines: vec![l] })
        })
        .collect();
    let worker = WorkerConfig {
        ledger_attempts: 8,
        backoff_base_ms: 50,
        backoff_cap_ms: 5_000,
        ..Default::default()
    };
    println!(
        "posting {entries} entries to the fake QBO: batch {batch}, limits {} items/min, {} batch calls/min, {} in flight; 1 min = {:?}",
        limits.requests_per_minute, limits.batches_per_minute, limits.concurrent, minute
    );
    let t0 = Instant::now();
    let results = post_backlog(
        ledger,
        reqs,
        batch as usize,
        limits.concurrent as usize,
        &worker,
    )
    .await;
    let elapsed = t0.elapsed();
    let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
    let failed = entries - ok;
    let c = server.counters();
    let held = server.active("TimeActivity").len() as u64;
    let minutes = elapsed.as_secs_f64() / minute.as_secs_f64();
    let per_minute = ok as f64 / minutes;
    // Each batch item counts as a request: at most `requests_per_minute`
    // items, and at most `batches_per_minute` batches of `batch` items.
    let ceiling = f64::from(limits.requests_per_minute)
        .min(f64::from(limits.batches_per_minute) * batch as f64);
    let ratio = per_minute / ceiling;
    println!(
        "elapsed                  {:.2} s ({minutes:.2} compressed minutes)",
        elapsed.as_secs_f64()
    );
    println!("entries posted           {ok} ({failed} failed), records in QBO {held}");
    println!(
        "API calls (batch)        {} accepted, {} answered 429",
        c.batch_calls, c.throttled
    );
    println!(
        "entries per API call     {:.2}",
        ok as f64 / c.batch_calls.max(1) as f64
    );
    println!(
        "sustained entries/min    {per_minute:.1} (ceiling {ceiling:.0} = min({} items/min, {} batches/min × {batch}))",
        limits.requests_per_minute, limits.batches_per_minute
    );
    println!("ratio of ceiling         {ratio:.3}");
    println!("429 responses            {}", c.throttled);
    println!("duplicates               {}", c.duplicates);
    let pass = c.duplicates == 0 && failed == 0 && held == entries;
    println!(
        "{}",
        if pass && ratio >= 0.95 {
            "target met (≥ 0.95 of ceiling, 0 duplicates)"
        } else {
            "TARGET NOT MET"
        }
    );
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
