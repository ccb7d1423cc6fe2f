use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use timepost::intake::Intake;
use timepost::model::Source;
use timepost::sources::{self, csv_import, Event};

use super::backend::Global;
use crate::{CliResult, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// Which tracker the file comes from.
    #[arg(long, value_parser = ["clockify", "toggl", "harvest", "csv"])]
    source: String,
    /// A saved payload (one event or a JSON array) or a CSV export.
    file: PathBuf,
    /// Clockify only: the event type the body is (Clockify sends it in the
    /// `Clockify-Webhook-Event-Type` header, not in the body), e.g.
    /// TIME_ENTRY_UPDATED or TIME_ENTRY_DELETED. Required for time entries:
    /// without it a deletion would read as an edit.
    #[arg(long)]
    event: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Only enqueue; leave processing to a running `timepost serve`. (With
    /// `--backend aws` this is always so: the deployed sync function
    /// processes the queue.)
    #[arg(long)]
    no_process: bool,
}

pub async fn run(g: &Global, args: Args) -> CliResult {
    let ops = super::backend::open(g).await?;
    let source: Source = args
        .source
        .parse()
        .map_err(|e: String| Failure::Input(anyhow!(e)))?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(Failure::Input)?;
    let mappings = ops.mappings.snapshot().await?;
    let mut ctx = timepost::intake::parse_context(&ops.config.intake, &mappings);
    ctx.received_at = Some(chrono::Utc::now());
    let bad = |e: sources::ParseError| Failure::Input(anyhow!("{}: {e}", args.file.display()));

    // Parse the whole file first: a bad payload enqueues nothing.
    let mut messages = Vec::new();
    let mut ignored = 0usize;
    let events: Vec<Event> = match source {
        Source::Csv => {
            let rows = bytes.iter().filter(|b| **b == b'\n').count() as u64;
            let bar = progress(rows);
            let mut entries = Vec::new();
            for e in csv_import::reader(bytes.as_slice(), &ops.config.intake.csv_columns, &ctx)
                .map_err(bad)?
            {
                entries.push(e.map_err(bad)?);
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            vec![Event::Entries { entries }]
        }
        Source::Clockify
            if args.event.is_none() && sources::clockify::kind_is_ambiguous(&bytes) =>
        {
            return Err(Failure::Input(anyhow!(
                "{}: a Clockify time entry does not say whether it was created, updated or deleted \
                 (Clockify sends that in the Clockify-Webhook-Event-Type header); \
                 say which with --event, e.g. --event TIME_ENTRY_UPDATED or --event TIME_ENTRY_DELETED",
                args.file.display()
            )))
        }
        Source::Clockify => sources::clockify::parse_many(&bytes, args.event.as_deref(), &ctx)
            .map_err(bad)?
            .into_iter()
            .map(|p| p.event)
            .collect(),
        Source::Toggl => sources::toggl::parse_many(&bytes, &ctx)
            .map_err(bad)?
            .into_iter()
            .map(|p| p.event)
            .collect(),
        Source::Harvest => vec![Event::Entries {
            entries: sources::harvest::parse_many(&bytes, &ctx).map_err(bad)?,
        }],
    };
    for ev in events {
        match timepost::intake::intake(ev, "timepost ingest") {
            Intake::Enqueue(m) => messages.extend(m),
            Intake::Ping(_) | Intake::Ignored(_) => ignored += 1,
        }
    }
    let enqueued = messages.len();
    timepost::intake::send_all(ops.queue.as_ref(), &timepost::intake::batches(messages)).await?;
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    summary.insert("messages_enqueued".into(), enqueued);
    summary.insert("events_ignored".into(), ignored);
    if !args.no_process && !ops.deployed() {
        summary.extend(super::process_queue(&ops).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{}: {enqueued} message(s) enqueued on {}",
            args.file.display(),
            ops.queue_name()
        );
        if ops.deployed() {
            println!("  the deployed sync function processes them; follow with `timepost --backend aws status`");
        }
        for (k, v) in &summary {
            if k != "messages_enqueued" {
                println!("  {k:<20} {v}");
            }
        }
    }
    Ok(())
}

fn progress(rows: u64) -> Option<indicatif::ProgressBar> {
    if rows < 5_000 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(rows);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows · {per_sec} · ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}
