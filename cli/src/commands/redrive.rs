use std::time::Duration;

use anyhow::anyhow;
use timepost::app::entries::{self, EntryActionError};
use timepost::model::EntryKey;
use timepost::review::Actor;

use super::backend::{Global, Recheck};
use crate::{CliResult, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// One entry, by key (`source:workspace:id`; a `:` inside the
    /// workspace or id is written `%3A`, a `%` `%25`).
    #[arg(long)]
    entry: Option<String>,
    /// One dead-lettered message, by id.
    #[arg(long)]
    dead_letter: Option<String>,
    /// Every dead-lettered message.
    #[arg(long)]
    all_dead_letters: bool,
    /// Every held entry.
    #[arg(long)]
    held: bool,
    /// Who (kept in the log).
    #[arg(long, env = "USER", default_value = "cli")]
    by: String,
}

pub async fn run(g: &Global, args: Args) -> CliResult {
    let ops = super::backend::open(g).await?;
    let mut n = 0;
    // The console's actions, audited under the name given (`--by`).
    let who = Actor::person(args.by.as_str(), "cli");
    let (queue, audit) = (ops.queue.as_ref(), ops.audit.as_ref());
    if let Some(k) = &args.entry {
        let key: EntryKey = k.parse().map_err(|e: String| Failure::Input(anyhow!(e)))?;
        entries::redrive_entry(ops.entries.as_ref(), queue, audit, &who, &key, "cli")
            .await
            .map_err(|e| match e {
                EntryActionError::Store(e) => Failure::from(e),
                other => Failure::Input(anyhow!(other)),
            })?;
        n += 1;
    }
    if let Some(id) = &args.dead_letter {
        entries::redrive_dead_letter(queue, audit, &who, id)
            .await
            .map_err(|e| Failure::Input(anyhow!(e)))?;
        n += 1;
    }
    if args.all_dead_letters {
        for d in ops.queue.dead_letters(100_000).await? {
            entries::redrive_dead_letter(queue, audit, &who, &d.id).await?;
            n += 1;
        }
    }
    let mut queued_held = 0;
    if args.held {
        match ops.recheck_held(&args.by).await? {
            Recheck::Done(out) => println!("{} held entr(y/ies) re-checked", out.len()),
            Recheck::Queued(k) => queued_held = k,
        }
    }
    if n == 0 && !args.held {
        return Err(Failure::Input(anyhow!(
            "say what to redrive: --entry KEY, --dead-letter ID, --all-dead-letters or --held"
        )));
    }
    if ops.deployed() {
        println!(
            "{} message(s) put on {}; the deployed sync function processes them \
             (follow with `timepost --backend aws status`)",
            n + queued_held,
            ops.queue_name()
        );
        return Ok(());
    }
    let outcomes =
        timepost::worker::drain_all(&ops.engine, ops.queue.as_ref(), Duration::from_secs(120))
            .await?;
    for o in outcomes {
        println!("{}  {}", o.key, o.status);
        if let Some(r) = o.reason {
            println!("    {}: {}", r.code, r.message);
        }
    }
    Ok(())
}
