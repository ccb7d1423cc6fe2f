//! One module per subcommand. Each only parses arguments, opens the stack,
//! calls into `timepost` (the shared crate) and prints.

pub mod accrue;
pub mod demo;
pub mod explain;
pub mod ingest;
pub mod mappings;
pub mod poll;
pub mod redrive;
pub mod rollback;
pub mod serve;
pub mod status;
pub mod sync;

use std::path::Path;

use anyhow::Context;
use timepost::config::Config;
use timepost::local::stack::LocalStack;

use crate::Failure;

/// Load the config (a mistake in it is bad input: exit 2) and open the stack.
pub fn open(config: &Path) -> Result<LocalStack, Failure> {
    let cfg = Config::load(config).map_err(|e| {
        Failure::Input(anyhow::anyhow!(e).context(
            "cannot load the configuration (pass --config FILE, or run `timepost demo` to try the bundled sandbox)",
        ))
    })?;
    let stack = LocalStack::open(cfg).context("cannot open the local store")?;
    Ok(stack)
}
