//! `timepost sync`: post what is queued to the configured ledger; with
//! `--dry-run`, print the exact HTTP requests instead (nothing is sent and
//! the store is left untouched: the engine runs on a copy of it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use timepost::config::Config;
use timepost::dry_run::DryRunError;
use timepost::ports::EntryStore;

use crate::{CliResult, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// Print the requests that would be sent (method, URL, headers without
    /// secrets, JSON body); send nothing, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Path, args: Args) -> CliResult {
    if args.dry_run {
        return dry_run(config, args.json).await;
    }
    let stack = super::open(config)?;
    let outcomes =
        timepost::worker::drain_all(&stack.engine, &stack.store, Duration::from_secs(600)).await?;
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    let mut batches = BTreeSet::new();
    for o in outcomes.iter().filter(|o| o.ignored.is_none()) {
        *summary.entry(o.status.to_string()).or_default() += 1;
        if let Some(b) = stack.store.get(&o.key).await?.and_then(|s| s.batch_id) {
            batches.insert(b);
        }
    }
    if args.json {
        let v = serde_json::json!({"ledger": stack.ledger.name(), "summary": summary, "batches": batches, "outcomes": outcomes});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} entr(y/ies) settled against {}",
        outcomes.len(),
        stack.ledger.name()
    );
    for (k, v) in &summary {
        println!("  {k:<20} {v}");
    }
    for o in outcomes.iter().filter(|o| o.reason.is_some()) {
        if let Some(r) = &o.reason {
            println!("  {}  {}: {}", o.key, r.code, r.message);
        }
    }
    if !batches.is_empty() {
        println!(
            "import batch(es): {} (undo one with `timepost rollback --batch ID`)",
            batches.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

async fn dry_run(config: &Path, json: bool) -> CliResult {
    let cfg = Config::load(config).map_err(|e| Failure::Input(anyhow!(e)))?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let run = timepost::dry_run::dry_run(&cfg, scratch.path())
        .await
        .map_err(|e| match e {
            DryRunError::NoStore(_) => Failure::Input(anyhow!(e)),
            other => Failure::Runtime(anyhow!(other)),
        })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
        return Ok(());
    }
    println!(
        "# dry run against {}: nothing was sent, the store is unchanged",
        run.ledger
    );
    for r in &run.requests {
        println!(
            "\n## {} — {} (idempotency key {})",
            r.entry, r.operation, r.idempotency_key
        );
        if let Some(why) = &r.refused {
            println!("would be refused before sending: {why}");
        }
        if r.calls.is_empty() && r.refused.is_none() {
            println!(
                "(the sandbox ledger is local; the operation:)\n{}",
                serde_json::to_string_pretty(&r.op)?
            );
        }
        for c in &r.calls {
            println!("{}", c.render());
        }
    }
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    for o in run.outcomes.iter().filter(|o| o.ignored.is_none()) {
        *summary.entry(o.status.to_string()).or_default() += 1;
    }
    println!(
        "\n# {} request(s); outcomes if sent as shown:",
        run.requests.len()
    );
    for (k, v) in &summary {
        println!("  {k:<20} {v}");
    }
    Ok(())
}
