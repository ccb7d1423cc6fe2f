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
}

pub async fn run(g: &Global, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::RebuildAggregates { json } => {
            let ops = super::backend::open(g).await?;
            let r = ops.entries.rebuild_aggregates().await?;
            let what = match ops.kind {
                super::backend::BackendKind::Local => ops.config.store.path.display().to_string(),
                super::backend::BackendKind::Aws => "the DynamoDB table".to_string(),
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
    }
}
