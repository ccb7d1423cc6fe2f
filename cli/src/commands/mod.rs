//! One module per subcommand. Each only parses arguments, opens the stack
//! (`backend::open` for the commands that also operate a deployed stack),
//! calls into `timepost` (the shared crate) and prints.

pub mod accrue;
pub mod alerts;
pub mod archive;
pub mod backend;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod explain;
pub mod ingest;
pub mod mappings;
pub mod migrate_keys;
pub mod poll;
pub mod reconcile;
pub mod redrive;
pub mod rollback;
pub mod serve;
pub mod status;
pub mod store;
pub mod sync;
pub mod token;

use std::path::Path;

use anyhow::Context;
use timepost::config::Config;
use timepost::stack::LocalStack;

use crate::Failure;

/// Load the config: a mistake in it is bad input (exit 2).
pub fn load_config(config: &Path) -> Result<Config, Failure> {
    Config::load(config).map_err(|e| {
        Failure::Input(anyhow::anyhow!(e).context(
            "cannot load the configuration (pass --config FILE, or run `timepost demo` to try the bundled sandbox)",
        ))
    })
}

/// Load the config and open the local runtime, for the commands that use
/// its own parts (the SQLite store, the sandbox books) beside the
/// [`timepost::stack::Stack`].
pub fn open(config: &Path) -> Result<LocalStack, Failure> {
    let stack = LocalStack::open(load_config(config)?).context("cannot open the local store")?;
    Ok(stack)
}

/// Work through the queue (waiting out retry delays, up to two minutes) and
/// count the outcomes of the entries it carried: by status, plus
/// `duplicate`, `stale` and the dead-letter total.
pub async fn process_queue(
    ops: &backend::Ops,
) -> Result<std::collections::BTreeMap<String, usize>, Failure> {
    let outcomes = timepost::worker::drain_all(
        &ops.engine,
        ops.queue.as_ref(),
        std::time::Duration::from_secs(120),
    )
    .await?;
    let mut counts = std::collections::BTreeMap::new();
    for o in outcomes.iter().filter(|o| !o.sibling) {
        let k = match o.ignored {
            Some(_) if o.is_duplicate() => "duplicate".to_string(),
            Some(_) if o.is_stale() => "stale".to_string(),
            _ => o.status.to_string(),
        };
        *counts.entry(k).or_default() += 1;
    }
    counts.insert(
        "dead_letters".into(),
        ops.queue.dead_letters(100_000).await?.len(),
    );
    Ok(counts)
}
