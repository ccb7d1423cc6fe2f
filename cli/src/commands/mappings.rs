use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use timepost::mapping::{csv_io, diff, MappingTable};

use super::backend::{Global, Recheck};
use crate::{CliResult, Failure};

#[derive(Subcommand)]
pub enum Cmd {
    /// Import a mapping CSV (`table,key,target,attrs`). All or nothing.
    Import {
        file: PathBuf,
        /// Also remove rows of the touched tables that the file lacks.
        #[arg(long)]
        replace: bool,
        /// Why (kept in the change log).
        #[arg(long, default_value = "imported from CSV")]
        reason: String,
        /// Who (kept in the change log).
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
        /// Show the changes without applying them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export mappings as CSV.
    Export {
        #[arg(long)]
        table: Option<MappingTable>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List mappings.
    List {
        #[arg(long)]
        table: Option<MappingTable>,
    },
    /// The change log: who changed what, when, and why.
    History {
        #[arg(long)]
        table: Option<MappingTable>,
        #[arg(long)]
        key: Option<String>,
    },
}

pub async fn run(g: &Global, cmd: Cmd) -> CliResult {
    let ops = super::backend::open(g).await?;
    match cmd {
        Cmd::Import {
            file,
            replace,
            reason,
            by,
            dry_run,
        } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))
                .map_err(Failure::Input)?;
            let rows = csv_io::read(f)
                .map_err(|e| Failure::Input(anyhow::anyhow!("{}: {e}", file.display())))?;
            let current = ops.mappings.snapshot().await?;
            let changes = diff(&current, &rows, replace, &by, chrono::Utc::now(), &reason);
            for c in &changes {
                println!("{}", c.describe());
            }
            if dry_run {
                println!("{} change(s) would be made (dry run)", changes.len());
                return Ok(());
            }
            let n = changes.len();
            ops.mappings.apply(changes).await?;
            match ops.recheck_held(&by).await? {
                Recheck::Done(released) => {
                    let posted = released
                        .iter()
                        .filter(|o| o.status == timepost::state::Status::Posted)
                        .count();
                    println!("{n} change(s) applied; {posted} held entr(y/ies) now posted");
                }
                Recheck::Queued(held) => println!(
                    "{n} change(s) applied; {held} held entr(y/ies) queued for a re-check by the deployed sync function"
                ),
            }
        }
        Cmd::Export { table, out } => {
            let m = ops.mappings.snapshot().await?;
            match out {
                Some(path) => {
                    let f = std::fs::File::create(&path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    let n = csv_io::write(&m, table, f)?;
                    eprintln!("{n} mapping(s) written to {}", path.display());
                }
                None => {
                    csv_io::write(&m, table, std::io::stdout())?;
                }
            }
        }
        Cmd::List { table } => {
            let m = ops.mappings.snapshot().await?;
            for row in m.rows() {
                if table.is_some_and(|t| t != row.table) {
                    continue;
                }
                let attrs: Vec<String> =
                    row.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{:<13} {:<28} → {:<16} {}",
                    row.table.as_str(),
                    row.key,
                    row.target,
                    attrs.join(" ")
                );
            }
        }
        Cmd::History { table, key } => {
            for c in ops.mappings.history(table, key.as_deref()).await? {
                println!(
                    "#{:<5} {} {:<10} {}  ({})",
                    c.seq,
                    c.changed_at.format("%Y-%m-%d %H:%M"),
                    c.changed_by,
                    c.describe(),
                    c.reason
                );
            }
        }
    }
    Ok(())
}
