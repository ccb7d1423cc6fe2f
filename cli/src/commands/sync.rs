//! `timepost sync`: post what is queued to the configured ledger; with
//! `--dry-run`, print the exact HTTP requests instead (nothing is sent and
//! the store is left untouched: the engine runs on a copy of it — locally a
//! copy of the SQLite file, on a deployed stack a scratch store seeded with
//! what the queued messages touch, the messages only peeked at).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, Context};
use timepost::dry_run::{DryRun, DryRunError, DryRunSource};

use super::backend::{BackendKind, Global};
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

pub async fn run(g: &Global, args: Args) -> CliResult {
    if args.dry_run {
        let run = match g.backend {
            BackendKind::Local => dry_run_local(g).await?,
            BackendKind::Aws => dry_run_deployed(g).await?,
        };
        return print_dry_run(&run, g.backend, args.json);
    }
    let ops = super::backend::open(g).await?;
    if ops.deployed() {
        return Err(Failure::Input(anyhow!(
            "on a deployed stack the sync function posts what is queued, as it arrives; \
             `timepost --backend aws sync --dry-run` shows what it would send"
        )));
    }
    let outcomes =
        timepost::worker::drain_all(&ops.engine, ops.queue.as_ref(), Duration::from_secs(600))
            .await?;
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    let mut batches = BTreeSet::new();
    for o in outcomes.iter().filter(|o| o.ignored.is_none()) {
        *summary.entry(o.status.to_string()).or_default() += 1;
        if let Some(b) = ops.entries.get(&o.key).await?.and_then(|s| s.batch_id) {
            batches.insert(b);
        }
    }
    if args.json {
        let v = serde_json::json!({"ledger": ops.ledger.name(), "summary": summary, "batches": batches, "outcomes": outcomes});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} entr(y/ies) settled against {}",
        outcomes.len(),
        ops.ledger.name()
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

fn dry_run_failure(e: DryRunError) -> Failure {
    match e {
        DryRunError::NoStore(_) => Failure::Input(anyhow!(e)),
        other => Failure::Runtime(anyhow!(other)),
    }
}

async fn dry_run_local(g: &Global) -> Result<DryRun, Failure> {
    let cfg = super::backend::load_local_config(&g.config)?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    timepost::dry_run::dry_run(&cfg, scratch.path())
        .await
        .map_err(dry_run_failure)
}

/// Peek the SQS queue and run the engine on a scratch copy of what the
/// messages touch in DynamoDB, against the recording ledger.
async fn dry_run_deployed(g: &Global) -> Result<DryRun, Failure> {
    let ops = super::backend::open(g).await?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let source = DryRunSource {
        entries: ops.entries.as_ref(),
        mappings: ops.mappings.as_ref(),
        queue: ops.queue.as_ref(),
    };
    timepost::dry_run::dry_run_from(&ops.config, source, scratch.path())
        .await
        .map_err(dry_run_failure)
}

fn print_dry_run(run: &DryRun, backend: BackendKind, json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
        return Ok(());
    }
    match backend {
        BackendKind::Local => println!(
            "# dry run against {}: nothing was sent, the store is unchanged",
            run.ledger
        ),
        BackendKind::Aws => println!(
            "# dry run against {} of the deployed stack: the queued messages were only \
             peeked at (still queued), nothing was sent, the table is unchanged",
            run.ledger
        ),
    }
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
