//! `timepost config push|pull`: the deployed stack reads its rules from
//! `s3://<bucket>/config/timepost.toml` (`TIMEPOST_CONFIG_KEY`). `push`
//! validates the local file first, so a typo never reaches the functions;
//! `pull` fetches what they run on. AWS backend only: locally the file
//! given with `--config` is the config.

use std::path::PathBuf;

use clap::Subcommand;

use super::backend::{BackendKind, Global};
use crate::{CliResult, Failure};

#[derive(Subcommand)]
pub enum Cmd {
    /// Validate the local config file (`--config`) and upload it to the
    /// stack's bucket.
    Push,
    /// Download the stack's config.
    Pull {
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn run(g: &Global, cmd: Cmd) -> CliResult {
    if g.backend == BackendKind::Local {
        return Err(Failure::Input(anyhow::anyhow!(
            "`timepost config push|pull` operate a deployed stack: add --backend aws \
             (locally, {} is the config)",
            g.config.display()
        )));
    }
    deployed(g, cmd).await
}

#[cfg(not(feature = "aws"))]
async fn deployed(_g: &Global, _cmd: Cmd) -> CliResult {
    Err(super::backend::without_aws())
}

#[cfg(feature = "aws")]
async fn deployed(g: &Global, cmd: Cmd) -> CliResult {
    use anyhow::{anyhow, Context};
    use timepost::ports::Archive;

    let (settings, bucket) = super::backend::aws::bucket().await?;
    let location = format!("s3://{}/{}", settings.bucket, settings.config_key);
    match cmd {
        Cmd::Push => {
            super::backend::load_local_config(&g.config)?;
            let bytes = std::fs::read(&g.config)
                .with_context(|| format!("cannot read {}", g.config.display()))
                .map_err(Failure::Input)?;
            bucket
                .put(&settings.config_key, bytes)
                .await
                .with_context(|| format!("cannot upload to {location}"))?;
            println!(
                "{} is valid and uploaded to {location}; the functions read it at their next cold start",
                g.config.display()
            );
        }
        Cmd::Pull { out } => {
            let bytes = bucket
                .get(&settings.config_key)
                .await
                .with_context(|| format!("cannot download {location}"))?
                .ok_or_else(|| {
                    Failure::Input(anyhow!(
                        "there is no config at {location}: upload one with `timepost --backend aws config push`"
                    ))
                })?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &bytes)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("{location} written to {}", path.display());
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
        }
    }
    Ok(())
}
