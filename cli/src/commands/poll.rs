use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use timepost::poll::Poller;

use crate::{CliResult, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// Which tracker to poll (configured under `[intake.harvest]` or
    /// `[intake.toggl_poll]`).
    #[arg(long, value_parser = ["harvest", "toggl"])]
    source: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Only enqueue; leave processing to a running `timepost serve`.
    #[arg(long)]
    no_process: bool,
}

pub async fn run(config: &Path, args: Args) -> CliResult {
    let stack = super::open(config)?;
    let section = match args.source.as_str() {
        "harvest" => "[intake.harvest] (account_id = \"…\"; token in the secret `harvest_token`)",
        _ => "[intake.toggl_poll] (token in the secret `toggl_token`)",
    };
    let poller = Poller::for_source(&args.source, &stack.config.intake)
        .map_err(|e| Failure::Runtime(anyhow!(e)))?
        .ok_or_else(|| {
            Failure::Input(anyhow!(
                "the {} poller is not configured: add {section} to {}",
                args.source,
                config.display()
            ))
        })?;
    let report = poller.run(&stack.poll_ports()).await.map_err(|e| {
        let config_problem = e.is_config();
        let e = anyhow!(e).context(format!("{} poll failed (watermark unchanged)", args.source));
        if config_problem {
            Failure::Input(e)
        } else {
            Failure::Runtime(e)
        }
    })?;

    let processed = if args.no_process {
        BTreeMap::new()
    } else {
        super::process_queue(&super::backend::Ops::of(timepost::stack::Stack::from(
            &stack,
        )))
        .await?
    };
    if args.json {
        let out = serde_json::json!({ "poll": report, "processed": processed });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{}: {} change(s) listed on {} page(s), {} deletion(s) found, {} message(s) enqueued",
            report.source, report.fetched, report.pages, report.deleted, report.enqueued
        );
        println!(
            "  watermark {}: {} → {}",
            report.watermark_name,
            report
                .watermark_before
                .map_or("(none)".to_string(), |w| w.to_rfc3339()),
            report
                .watermark_after
                .map_or("(none)".to_string(), |w| w.to_rfc3339()),
        );
        println!(
            "  requests {} (retried {})",
            report.requests, report.retries
        );
        for (k, v) in &processed {
            println!("  {k:<20} {v}");
        }
    }
    Ok(())
}
