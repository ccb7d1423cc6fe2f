//! `timepost store …`: maintenance of the local store file.
//!
//! `rebuild-aggregates` recomputes the aggregates the dashboard reads
//! (`timepost::aggregates`; kept in the same transaction as every entry
//! write) from every entry state, in one transaction, and says how many
//! stored rows differed — 0 on a healthy store. A store written before the
//! aggregates existed gets them built when it is first opened.

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
    super::backend::local_only(
        g,
        "store",
        "the DynamoDB adapter computes the aggregates on read",
    )?;
    match cmd {
        Cmd::RebuildAggregates { json } => {
            let stack = super::open(&g.config)?;
            let r = stack.store.rebuild_aggregates_now()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}: {} entries → {} aggregate rows; {} row(s) and {} KPI sample(s) differed before the rebuild{}",
                    stack.config.store.path.display(),
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
