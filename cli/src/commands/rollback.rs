//! `timepost rollback --batch ID`: undo one import batch in the books.

use anyhow::anyhow;
use timepost::rollback::{rollback, RollbackError, RollbackOptions};

use super::backend::Global;
use crate::{CliResult, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The import batch to undo (as printed by `timepost sync`, or in an
    /// entry's `batch_id`).
    #[arg(long)]
    batch: String,
    /// Roll back even if some of its entries were changed afterwards.
    #[arg(long)]
    force: bool,
    /// Put the entries in `held` instead of "not posted".
    #[arg(long)]
    hold: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Who (kept in the entries' notes and the log).
    #[arg(long, env = "USER", default_value = "cli")]
    by: String,
}

pub async fn run(g: &Global, args: Args) -> CliResult {
    let ops = super::backend::open(g).await?;
    let opts = RollbackOptions {
        batch_id: args.batch.clone(),
        force: args.force,
        hold: args.hold,
        by: args.by.clone(),
    };
    let report = rollback(
        ops.entries.as_ref(),
        ops.journal.as_ref(),
        ops.ledger.clone(),
        &ops.config.worker,
        &opts,
    )
    .await
    .map_err(|e| match e {
        RollbackError::UnknownBatch(_) | RollbackError::EditedAfterwards { .. } => {
            Failure::Input(anyhow!(e))
        }
        other => Failure::Runtime(anyhow!(other)),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "batch {}: {} entr(y/ies) rolled back in {} (journaled as {})",
        report.batch_id,
        report.entries.len(),
        ops.ledger.name(),
        report.journal_batch
    );
    if report.already_done > 0 {
        println!(
            "  {} entr(y/ies) were already rolled back by an earlier run",
            report.already_done
        );
    }
    for e in &report.entries {
        println!(
            "  {}  {} ({} record(s) removed) → {}",
            e.key, e.action, e.records_removed, e.status
        );
    }
    Ok(())
}
