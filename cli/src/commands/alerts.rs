//! `timepost alerts check [--send] [--json] [--digest]`: evaluate the
//! `[alerts]` rules against the local store now; `--send` also updates
//! the alert state and sends what is due (once per condition). And
//! `timepost export period --period P --out DIR`: the finance export of
//! one period by hand.

use std::path::PathBuf;

use anyhow::anyhow;
use timepost::reconcile::Period;
use timepost::stack::alert_job::AlertJob;

use super::backend::{local_only, Global};
use crate::{CliResult, Failure};

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Evaluate the alert rules now and print the active conditions.
    Check {
        /// Also record the alert state and send the notices that are due
        /// (each condition once until it clears).
        #[arg(long)]
        send: bool,
        /// In digest mode, send the digest now whatever the hour.
        #[arg(long, requires = "send")]
        digest: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

async fn job(g: &Global) -> Result<AlertJob, Failure> {
    local_only(
        g,
        "alerts",
        "in AWS the alerts function runs the pass on its schedule",
    )?;
    let stack = super::open(&g.config)?;
    AlertJob::local(&stack)
        .await
        .map_err(|e| Failure::Input(anyhow!("[alerts]: {e}")))
}

pub async fn run(g: &Global, cmd: Cmd) -> CliResult {
    let Cmd::Check { send, digest, json } = cmd;
    let job = job(g).await?;
    let now = chrono::Utc::now();
    if !send {
        let conditions = job.check(now).await?;
        if json {
            println!(
                "{}",
                serde_json::json!({ "conditions": conditions, "sent": false })
            );
        } else if conditions.is_empty() {
            println!("no alert conditions");
        } else {
            let base = timepost::alerts::deliver::console_base(&job.config);
            for c in &conditions {
                println!("[{}] {}\n  {base}{}", c.rule.as_str(), c.said, c.link);
            }
        }
        return Ok(());
    }
    if job.notifiers.is_empty() {
        eprintln!("warning: no notifier configured ([alerts] webhook_url or [alerts.smtp]): the state is recorded, nothing is sent");
    }
    let report = job.run(now, digest).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} active condition(s): {} fired, {} cleared; {} notice(s) sent, covering {} alert(s)",
            report.conditions.len(),
            report.fired.len(),
            report.cleared.len(),
            report.notices,
            report.alerts_sent
        );
        for f in &report.failures {
            eprintln!("not delivered: {f}");
        }
    }
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow!(
            "{} notice(s) not delivered; they are retried on the next pass",
            report.failures.len()
        )))
    }
}

/// `timepost export period --period P --out DIR`.
#[derive(clap::Args)]
pub struct PeriodArgs {
    /// `week`, `month` (the last complete one) or `FROM..TO`.
    #[arg(long, default_value = "month")]
    pub period: String,
    /// Where to write (default `[exports] dir`); the files go under
    /// `FROM_TO/` in it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub async fn export_period(g: &Global, args: PeriodArgs) -> CliResult {
    let period = Period::parse(&args.period, chrono::Utc::now().date_naive())
        .map_err(|e| Failure::Input(anyhow!(e)))?;
    let job = job(g).await?;
    let w = job.export(&period, args.out.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string(&w)?);
    } else {
        println!(
            "exported {} to {} ({} entries in the period, {} exception(s) or held)",
            w.period,
            args.out
                .clone()
                .or_else(|| job.config.exports.clone().map(|x| x.dir))
                .unwrap_or_else(|| timepost::alerts::config::ExportsConfig::default().dir)
                .display(),
            w.entries,
            w.exceptions
        );
        for f in &w.files {
            println!("  {f}");
        }
    }
    Ok(())
}

/// `timepost export`: `--all DIR` (everything, in the archive format) or
/// `period` (the finance CSVs of one period).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ExportCmd {
    #[command(subcommand)]
    pub cmd: Option<ExportSub>,
    /// Everything the store holds, in the archive format.
    #[arg(long, required = true)]
    pub all: bool,
    /// A new or empty directory (with `--all`).
    #[arg(required = true)]
    pub dir: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum ExportSub {
    /// One period's hours by project and employee, exceptions and the
    /// newest reconciliation as CSV (what `[exports]` writes on a schedule).
    Period(PeriodArgs),
}

pub async fn export(g: &Global, cmd: ExportCmd) -> CliResult {
    match (cmd.cmd, cmd.dir) {
        (Some(ExportSub::Period(args)), _) => export_period(g, args).await,
        (None, Some(dir)) => {
            super::archive::export(g, super::archive::ExportArgs { all: cmd.all, dir }).await
        }
        (None, None) => Err(Failure::Input(anyhow!(
            "say what to export: `--all DIR` or `period --period P`"
        ))),
    }
}
