//! `timepost reconcile`: compare the tracker, timepost and the books for a
//! period and store the run; `history` lists the stored runs; `resolve`
//! acts on one break (audited).

use std::sync::Arc;

use anyhow::anyhow;
use timepost::poll::{list_trackers, PollError};
use timepost::reconcile::gather::{ReconcileError, Reconciler, Run};
use timepost::reconcile::resolve::{resolve, Resolver};
use timepost::reconcile::{Action, Period};

use super::backend::{Global, Ops};
use crate::{CliResult, Failure};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// `week` (the last complete Monday–Sunday week), `month` (the last
    /// complete month) or `FROM..TO` (dates, inclusive).
    #[arg(long, default_value = "week")]
    period: String,
    /// Print the run as JSON.
    #[arg(long)]
    json: bool,
    /// Leave the tracker's fresh listing out (compare what timepost
    /// received only).
    #[arg(long)]
    no_listing: bool,
    /// Who (kept with the run).
    #[arg(long, env = "USER", default_value = "cli")]
    by: String,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// The stored runs, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Act on one break: re-post timepost's version, accept the books'
    /// version, or dismiss it with a reason (audited).
    Resolve {
        /// The break's id (`b-…`), as a run printed it.
        id: String,
        #[arg(long, group = "action")]
        repost: bool,
        #[arg(long, group = "action")]
        accept_books: bool,
        /// Dismiss, with the reason.
        #[arg(long, group = "action", value_name = "REASON")]
        dismiss: Option<String>,
        /// Who (kept in the audit log).
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
}

fn reconciler(ops: &Ops) -> Reconciler {
    Reconciler {
        entries: ops.entries.clone(),
        ledger: ops.ledger.clone(),
        store: ops.reconcile.clone(),
        config: ops.config.reconcile.clone(),
    }
}

fn failure(e: ReconcileError) -> Failure {
    match e {
        ReconcileError::UnknownBreak(_)
        | ReconcileError::Refused(_)
        | ReconcileError::NoReadBack(_) => Failure::Input(anyhow!(e)),
        e => Failure::Runtime(anyhow!(e)),
    }
}

fn listing_failure(p: PollError) -> Failure {
    if p.is_config() {
        Failure::Input(anyhow!(p))
    } else {
        Failure::Runtime(anyhow!(ReconcileError::Tracker(p.to_string())))
    }
}

pub async fn run(g: &Global, args: Args) -> CliResult {
    match args.cmd {
        None => reconcile(g, &args.period, args.json, args.no_listing, &args.by).await,
        Some(Cmd::History { limit, json }) => history(g, limit, json).await,
        Some(Cmd::Resolve {
            id,
            repost,
            accept_books,
            dismiss,
            by,
        }) => {
            let (action, reason) = match (repost, accept_books, dismiss) {
                (true, _, _) => (Action::Repost, String::new()),
                (_, true, _) => (Action::AcceptBooks, String::new()),
                (_, _, Some(r)) => (Action::Dismiss, r),
                _ => {
                    return Err(Failure::Input(anyhow!(
                        "say what to do: --repost, --accept-books or --dismiss \"reason\""
                    )))
                }
            };
            resolve_one(g, &id, action, &reason, &by).await
        }
    }
}

async fn reconcile(g: &Global, period: &str, json: bool, no_listing: bool, by: &str) -> CliResult {
    let period = Period::parse(period, chrono::Utc::now().date_naive())
        .map_err(|e| Failure::Input(anyhow!(e)))?;
    // The pollers' settings and secrets (the local secrets file, or
    // Secrets Manager on `--backend aws`) list the tracker's period.
    let ops = super::backend::open(g).await?;
    let listing = if no_listing {
        None
    } else {
        list_trackers(&ops.config.intake, &ops.poll_ports(), &period)
            .await
            .map_err(listing_failure)?
    };
    let run = reconciler(&ops)
        .run(&period, listing.as_ref(), by)
        .await
        .map_err(failure)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{}", render(&run));
    }
    Ok(())
}

/// A run in words: the summary, each break, the days that differ.
pub fn render(run: &Run) -> String {
    use std::fmt::Write as _;
    let s = &run.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "reconciliation #{} of {} against {} (tracker: {}): {}",
        s.seq,
        s.period,
        s.ledger,
        s.tracker,
        if s.agrees() {
            "agrees".to_string()
        } else {
            format!("{} break(s)", s.breaks)
        }
    );
    for (code, n) in &s.counts {
        let _ = writeln!(out, "  {code}: {n}");
    }
    for b in run.breaks.iter().filter(|b| !b.info) {
        let _ = writeln!(
            out,
            "\n{} {}{}\n  {}\n  fix: {}",
            b.id,
            b.code,
            b.dismissed
                .as_ref()
                .map(|r| format!(" (dismissed: {r})"))
                .unwrap_or_default(),
            b.said,
            b.fix_hint
        );
    }
    let info: Vec<_> = run.breaks.iter().filter(|b| b.info).collect();
    if !info.is_empty() {
        let _ = writeln!(
            out,
            "\n{} record(s) in the books not written by timepost (information):",
            info.len()
        );
        for b in info {
            let _ = writeln!(out, "  {}", b.said);
        }
    }
    let differ: Vec<_> = run
        .rows
        .iter()
        .filter(|r| {
            r.timepost_minutes != r.books_minutes
                || r.listed_minutes.is_some_and(|l| l != r.tracker_minutes)
        })
        .collect();
    if !differ.is_empty() {
        let _ = writeln!(
            out,
            "\ndays that differ (minutes: tracker / listed / timepost / books / not timepost's):"
        );
        for r in differ {
            let _ = writeln!(
                out,
                "  {} {} {}: {} / {} / {} / {} / {}",
                r.day,
                r.party,
                if r.customer.is_empty() {
                    "-"
                } else {
                    &r.customer
                },
                r.tracker_minutes,
                r.listed_minutes.map_or("-".to_string(), |m| m.to_string()),
                r.timepost_minutes,
                r.books_minutes,
                r.foreign_minutes
            );
        }
    }
    out
}

async fn history(g: &Global, limit: usize, json: bool) -> CliResult {
    let ops = super::backend::open(g).await?;
    let runs = ops.reconcile.runs(limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("no reconciliation run stored yet (run `timepost reconcile`)");
    }
    for r in runs {
        println!(
            "#{} {} {} at {} ({} ms, by {}): {}{}{}",
            r.seq,
            r.period,
            r.ledger,
            r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.duration_ms,
            r.by,
            if r.agrees() {
                "agrees".to_string()
            } else {
                format!("{} break(s)", r.breaks)
            },
            if r.counts.is_empty() {
                String::new()
            } else {
                format!(
                    " [{}]",
                    r.counts
                        .iter()
                        .map(|(c, n)| format!("{c} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            if r.dismissed > 0 {
                format!(", {} dismissed", r.dismissed)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

async fn resolve_one(g: &Global, id: &str, action: Action, reason: &str, by: &str) -> CliResult {
    let ops = super::backend::open(g).await?;
    let rec = reconciler(&ops);
    let who = Resolver {
        who: by.to_string(),
        role: "cli".into(),
    };
    let engine: Arc<timepost::engine::Engine> = ops.engine.clone();
    let done = resolve(&rec, &engine, ops.audit.as_ref(), id, action, reason, &who)
        .await
        .map_err(failure)?;
    println!("{}", done.said);
    if action == Action::Repost {
        if ops.deployed() {
            println!("the deployed sync function's sweep converges the week");
        } else {
            let swept = ops
                .engine
                .sweep_older_than(
                    &timepost::worker::new_batch_id(),
                    timepost::engine::STALE_INTENT,
                )
                .await?;
            println!("{} worker-week(s) converged", swept.weeks);
        }
    }
    Ok(())
}
