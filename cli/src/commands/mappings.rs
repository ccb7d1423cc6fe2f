use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Subcommand;
use timepost::impact::ImpactPreview;
use timepost::mapping::{csv_io, diff, MappingTable};
use timepost::review::{Actor, ReviewError, Saved};

use super::backend::{Global, Ops, Recheck};
use crate::{CliResult, Failure};

/// How many affected entries an import lists (the proposal keeps them all).
const LISTED: usize = 20;

#[derive(Subcommand)]
pub enum Cmd {
    /// Import a mapping CSV (`table,key,target,attrs`). All or nothing.
    /// Reviewed like a console change: previewed against every stored
    /// entry; when more than `[console] mapping_approval_threshold` would
    /// post differently, it is stored as a proposal for a second admin
    /// (exit 0) unless `--approve-as` names one.
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
        /// A second admin, other than `--by`, who reviewed the import and
        /// approves it: it then applies even above the review threshold,
        /// both names audited.
        #[arg(long, value_name = "NAME")]
        approve_as: Option<String>,
        /// Show the changes and their impact without applying them.
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
            approve_as,
            dry_run,
        } => import(&ops, file, replace, &reason, &by, approve_as, dry_run).await?,
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

/// A review refusal is the user's to fix (exit 2); a store failure is not.
fn review_failure(e: ReviewError) -> Failure {
    match e {
        ReviewError::Store(e) => Failure::Runtime(anyhow!(e)),
        ReviewError::Unavailable(m) => Failure::Runtime(anyhow!(m)),
        ReviewError::Invalid { message, .. } => Failure::Input(anyhow!(message)),
        ReviewError::Forbidden(m) | ReviewError::NotFound(m) | ReviewError::Conflict(m) => {
            Failure::Input(anyhow!(m))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

/// The stored entries the import would make post differently, in words.
fn print_impact(p: &ImpactPreview, threshold: u64) {
    let n = p.in_reach();
    println!(
        "impact: the change can affect up to {n} stored entr{} (review threshold: {threshold}); {} of the {} replayed (the entries the changed rows touch, with their worker-weeks) would post differently",
        plural(n),
        p.entries_affected,
        p.entries_replayed.max(p.entries_checked),
    );
    for c in p.changed.iter().take(LISTED) {
        println!(
            "  {} {} ({}): {} → {} [{}]",
            c.work_date,
            c.key,
            c.worker,
            c.before.state(),
            c.after.state(),
            c.differs.join(", ")
        );
    }
    if p.changed.len() > LISTED {
        println!("  … and {} more", p.changed.len() - LISTED);
    }
}

/// `mappings import`: diff the file against the mappings, preview the
/// changes against every stored entry, then apply them (under the review
/// threshold, or approved on the spot by `--approve-as`) or store them as a
/// proposal for a second admin.
async fn import(
    ops: &Ops,
    file: PathBuf,
    replace: bool,
    reason: &str,
    by: &str,
    approve_as: Option<String>,
    dry_run: bool,
) -> CliResult {
    let who = Actor::person(by, "cli");
    let approver = approve_as.map(|n| Actor::person(n.trim(), "cli"));
    if let Some(a) = &approver {
        if !a.is_named() {
            return Err(Failure::Input(anyhow!(
                "--approve-as must name the second admin who approves this import; nothing was changed"
            )));
        }
        if a.is(by) {
            return Err(Failure::Input(anyhow!(
                "--approve-as {} names the importer (--by {by}): a second admin, another person, must approve; nothing was changed",
                a.name
            )));
        }
    }
    let f = std::fs::File::open(&file)
        .with_context(|| format!("cannot open {}", file.display()))
        .map_err(Failure::Input)?;
    let rows = csv_io::read(f).map_err(|e| Failure::Input(anyhow!("{}: {e}", file.display())))?;
    let current = ops.mappings.snapshot().await?;
    let changes = diff(&current, &rows, replace, by, chrono::Utc::now(), reason);
    for c in &changes {
        println!("{}", c.describe());
    }
    let review = ops.mapping_review();
    if dry_run {
        if !changes.is_empty() {
            let p = review
                .preview(&current, &changes, None)
                .await
                .map_err(review_failure)?;
            print_impact(&p, review.threshold);
            if review.needs_review(&p) {
                println!("it would wait for a second admin's approval (or --approve-as NAME)");
            }
        }
        println!("{} change(s) would be made (dry run)", changes.len());
        return Ok(());
    }
    let n = changes.len();
    let saved = review
        .save(
            &who,
            approver.as_ref(),
            &current,
            changes,
            "mapping_import",
            None,
        )
        .await
        .map_err(review_failure)?;
    match &saved {
        Saved::Unchanged => {}
        Saved::Pending(p) => {
            print_impact(&p.preview, review.threshold);
            println!(
                "proposal #{id}: {n} change(s) that can affect up to {m} stored entr{pl} wait for a second admin's approval; nothing was changed yet. \
                 Another admin approves it in the console (/console/mappings/pending/{id}, POST /api/mappings/pending/{id}/approve), \
                 or the import is run again with --approve-as NAME naming that admin.",
                id = p.id,
                m = p.preview.in_reach(),
                pl = plural(p.preview.in_reach()),
            );
            return Ok(());
        }
        Saved::Applied { proposal, .. } => {
            if let Some(p) = proposal {
                print_impact(&p.preview, review.threshold);
                if let Some(a) = &p.decided_by {
                    println!("approved by {a} as second admin (proposal #{})", p.id);
                }
            }
        }
    }
    let applied = match &saved {
        Saved::Applied { changes, .. } => changes.clone(),
        _ => Vec::new(),
    };
    match ops.recheck_held_for(by, &applied).await? {
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
    Ok(())
}
