use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use timepost::model::EntryKey;
use timepost::ports::{Queue, QueueMessage};

use crate::{CliResult, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// One entry, by key (`source:workspace:id`).
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

pub async fn run(config: &Path, args: Args) -> CliResult {
    let stack = super::open(config)?;
    let mut n = 0;
    if let Some(k) = &args.entry {
        let key: EntryKey = k.parse().map_err(|e: String| Failure::Input(anyhow!(e)))?;
        stack
            .store
            .send_batch(&[QueueMessage::Redrive {
                key,
                by: args.by.clone(),
            }])
            .await?;
        n += 1;
    }
    if let Some(id) = &args.dead_letter {
        stack
            .store
            .redrive(id)
            .await
            .map_err(|e| Failure::Input(anyhow!(e)))?;
        n += 1;
    }
    if args.all_dead_letters {
        for d in stack.store.dead_letters(100_000).await? {
            stack.store.redrive(&d.id).await?;
            n += 1;
        }
    }
    if args.held {
        let out = stack
            .engine
            .recheck_held(&timepost::worker::new_batch_id())
            .await?;
        println!("{} held entr(y/ies) re-checked", out.len());
    }
    if n == 0 && !args.held {
        return Err(Failure::Input(anyhow!(
            "say what to redrive: --entry KEY, --dead-letter ID, --all-dead-letters or --held"
        )));
    }
    let outcomes =
        timepost::worker::drain_all(&stack.engine, &stack.store, Duration::from_secs(120)).await?;
    for o in outcomes {
        println!("{}  {}", o.key, o.status);
        if let Some(r) = o.reason {
            println!("    {}: {}", r.code, r.message);
        }
    }
    Ok(())
}
