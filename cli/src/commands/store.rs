//! `timepost store …`: maintenance of the entry store.
//!
//! `rebuild-aggregates` recomputes the aggregates the dashboard reads
//! (`timepost::aggregates`; kept in the same transaction as every entry
//! write) from every entry state and says how many stored rows differed —
//! 0 on a healthy store. Locally it runs in one transaction, and a store
//! written before the aggregates existed gets them built when it is first
//! opened. With `--backend aws` it rewrites the rows on the DynamoDB table
//! (run it once after upgrading a table written before they existed, with
//! the sync function paused: writes made while it runs may be overwritten).
//!
//! `rebuild-key-index` does the same for the mapped-key index
//! (`timepost::mapping::keys`): locally in one transaction (a store written
//! before the index existed gets it when first opened), on DynamoDB
//! (`--backend aws`) by giving each state item written before the index
//! its index items — and its work-date items, after which the table's
//! period reads (reconciliation, the period export, the accrual) are
//! allowed (they refuse on a table with states from before that index).

use super::backend::Global;
use crate::CliResult;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Recompute the dashboard's aggregates from every entry and verify the
    /// maintained ones (prints how many rows differed).
    RebuildAggregates {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the mapped-key index (user, project, task) the impact
    /// preview, the held re-check and the listings by worker or project
    /// read, and verify the maintained one (prints how many entries'
    /// index rows differed). Local store or `--backend aws` (there it also
    /// builds the work-date index period reads need).
    RebuildKeyIndex {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(g: &Global, cmd: Cmd) -> CliResult {
    if let Cmd::RebuildKeyIndex { json } = cmd {
        let ops = super::backend::open(g).await?;
        let r = ops.entries.rebuild_key_index().await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!(
                "{} entries → {} index keys; {} entr(y/ies) had missing or wrong index rows{}",
                r.entries,
                r.keys,
                r.differed,
                if r.differed == 0 {
                    " (the maintained index was right)"
                } else {
                    " (now rewritten)"
                }
            );
        }
        return Ok(());
    }
    match cmd {
        Cmd::RebuildAggregates { json } => {
            let ops = super::backend::open(g).await?;
            let r = ops.entries.rebuild_aggregates().await?;
            let what = match ops.kind {
                timepost::stack::StackKind::Local => ops.config.store.path.display().to_string(),
                timepost::stack::StackKind::Aws => "the DynamoDB table".to_string(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{what}: {} entries → {} aggregate rows; {} row(s) and {} KPI sample(s) differed before the rebuild{}",
                    r.entries,
                    r.rows,
                    r.differed,
                    r.samples_differed,
                    if r.differed == 0 && r.samples_differed == 0 {
                        " (the maintained aggregates were right)"
                    } else {
                        " (now recomputed)"
                    }
                );
            }
            Ok(())
        }
        Cmd::RebuildKeyIndex { .. } => Ok(()),
    }
}
