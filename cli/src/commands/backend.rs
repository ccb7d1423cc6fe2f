//! Which stack a command operates: the local one (a SQLite file, the
//! config file given with `--config`) or a deployed AWS stack (DynamoDB,
//! SQS, S3, Secrets Manager; resource names from `TIMEPOST_*`, the rules
//! config from the bucket). Commands work on [`Ops`], the ports of either,
//! so `mappings`, `ingest`, `sync --dry-run`, `rollback`, `status` and
//! `redrive` run the same code on both.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use timepost::app::recheck;
pub use timepost::app::recheck::Recheck;
use timepost::config::Config;
use timepost::stack::{Stack, StackKind};

use crate::Failure;

/// `--backend`: where the stack the command operates lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The local stack: the store named in `--config`.
    Local,
    /// A deployed stack: resources from `TIMEPOST_TABLE`,
    /// `TIMEPOST_QUEUE_URL`, `TIMEPOST_DLQ_URL`, `TIMEPOST_BUCKET`, ... and
    /// the standard AWS credentials and region.
    Aws,
}

/// The options every command sees.
pub struct Global {
    pub config: PathBuf,
    pub backend: BackendKind,
}

/// What a command operates on: the [`Stack`] of the local stack or of a
/// deployed one (its ports by name, its engine, ledger and rules config,
/// reached through `Deref`: `ops.entries`, `ops.engine`, ...), with the
/// CLI's own helpers.
pub struct Ops {
    pub stack: Stack,
}

impl std::ops::Deref for Ops {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl Ops {
    pub fn of(stack: Stack) -> Self {
        Self { stack }
    }

    /// Where messages go and who processes them, for the output.
    pub fn queue_name(&self) -> &'static str {
        match self.kind {
            StackKind::Local => "the local queue",
            StackKind::Aws => "the SQS ingest queue",
        }
    }

    /// Re-evaluate the held entries `changes` (applied) can release
    /// (`timepost::app::recheck::held_for`).
    pub async fn recheck_held_for(
        &self,
        by: &str,
        changes: &[timepost::mapping::MappingChange],
    ) -> Result<Recheck, Failure> {
        let mode = self.recheck_mode();
        Ok(recheck::held_for(&self.engine, self.queue.as_ref(), mode, by, changes).await?)
    }

    /// Re-evaluate every held entry (after a mapping change).
    pub async fn recheck_held(&self, by: &str) -> Result<Recheck, Failure> {
        let mode = self.recheck_mode();
        Ok(recheck::all_held(&self.engine, self.queue.as_ref(), mode, by).await?)
    }
}

/// Open the stack `--backend` names.
pub async fn open(g: &Global) -> Result<Ops, Failure> {
    match g.backend {
        BackendKind::Local => {
            let stack = Stack::local(super::load_config(&g.config)?)
                .context("cannot open the local store")?;
            Ok(Ops::of(stack))
        }
        BackendKind::Aws => open_aws().await,
    }
}

/// Refuse `--backend aws` for a command that only runs locally.
pub fn local_only(g: &Global, command: &str, instead: &str) -> Result<(), Failure> {
    match g.backend {
        BackendKind::Local => Ok(()),
        BackendKind::Aws => Err(Failure::Input(anyhow!(
            "`timepost {command}` operates the local stack only; {instead}"
        ))),
    }
}

/// Why `--backend aws` cannot run in this build.
#[cfg(not(feature = "aws"))]
pub fn without_aws() -> Failure {
    Failure::Input(anyhow!(
        "this timepost was built without AWS support: cargo install --path cli --features aws"
    ))
}

#[cfg(not(feature = "aws"))]
async fn open_aws() -> Result<Ops, Failure> {
    Err(without_aws())
}

#[cfg(feature = "aws")]
async fn open_aws() -> Result<Ops, Failure> {
    use timepost::aws::stack::AwsStackError;
    let stack =
        Stack::aws_from_env().await.map_err(|e| match e {
            AwsStackError::MissingConfig { .. } => Failure::Input(anyhow!(e).context(
                "no rules config in the bucket (run `timepost --backend aws config push`)",
            )),
            AwsStackError::Setting(_)
            | AwsStackError::Config(_)
            | AwsStackError::ConfigEncoding { .. }
            | AwsStackError::LedgerKind(_) => Failure::Input(anyhow!(e)),
            AwsStackError::Store(_) | AwsStackError::Ledger(_) => Failure::Runtime(anyhow!(e)),
        })?;
    Ok(Ops::of(stack))
}

/// The deployed stack's settings and bucket, without its rules config
/// (what `config push` and `config pull` need, before any config exists).
#[cfg(feature = "aws")]
pub mod aws {
    use anyhow::anyhow;
    use timepost::aws::{AwsSettings, S3Archive};

    use crate::Failure;

    /// Resource names from `TIMEPOST_*`; a missing one is bad usage.
    pub fn settings() -> Result<AwsSettings, Failure> {
        AwsSettings::from_env().map_err(|e| Failure::Input(anyhow!(e)))
    }

    /// The settings and the stack's bucket.
    pub async fn bucket() -> Result<(AwsSettings, S3Archive), Failure> {
        let settings = settings()?;
        let sdk = timepost::aws::sdk_config().await;
        let archive = S3Archive::new(
            S3Archive::client(&sdk, settings.s3_path_style),
            &settings.bucket,
        );
        Ok((settings, archive))
    }
}

/// The local config file, validated (a mistake in it is bad input).
pub fn load_local_config(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::Input(anyhow!(e)))
}
