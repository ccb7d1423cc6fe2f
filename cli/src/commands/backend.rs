//! Which stack a command operates: the local one (a SQLite file, the
//! config file given with `--config`) or a deployed AWS stack (DynamoDB,
//! SQS, S3, Secrets Manager; resource names from `TIMEPOST_*`, the rules
//! config from the bucket). Commands work on [`Ops`], the ports of either,
//! so `mappings`, `ingest`, `sync --dry-run`, `rollback`, `status` and
//! `redrive` run the same code on both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
pub use timepost::app::recheck::Recheck;
use timepost::app::recheck::{self, RecheckMode};
use timepost::config::Config;
use timepost::engine::Engine;
use timepost::ledger::Ledger;
use timepost::ports::{AuditLog, EntryStore, Journal, MappingStore, PendingChanges, Queue};
use timepost::stack::LocalStack;

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

/// What a command operates on: the ports of one stack, its engine, its
/// ledger and its rules config.
pub struct Ops {
    pub kind: BackendKind,
    pub config: Config,
    pub entries: Arc<dyn EntryStore>,
    pub mappings: Arc<dyn MappingStore>,
    pub journal: Arc<dyn Journal>,
    pub queue: Arc<dyn Queue>,
    /// Where mapping changes wait for a second admin (with their previews).
    pub pending: Arc<dyn PendingChanges>,
    pub audit: Arc<dyn AuditLog>,
    /// Reconciliation runs and the resolutions of their breaks.
    pub reconcile: Arc<dyn timepost::reconcile::ReconcileStore>,
    pub engine: Arc<Engine>,
    pub ledger: Arc<dyn Ledger>,
    /// What the trackers' pollers read (their secrets, the mappings):
    /// `reconcile` lists a period through them.
    pub poll: timepost::poll::PollPorts,
    /// Where `archive purge` removes archived entries.
    pub purge: Arc<dyn timepost::archive::retention::PurgeStore>,
}

impl Ops {
    pub fn local(stack: LocalStack) -> Self {
        let store = Arc::new(stack.store.clone());
        let poll = stack.poll_ports();
        Self {
            poll,
            kind: BackendKind::Local,
            entries: store.clone(),
            mappings: store.clone(),
            journal: store.clone(),
            queue: store.clone(),
            pending: store.clone(),
            reconcile: store.clone(),
            purge: store.clone(),
            audit: store,
            engine: stack.engine,
            ledger: stack.ledger,
            config: stack.config,
        }
    }

    #[cfg(feature = "aws")]
    pub fn aws(stack: timepost::aws::AwsStack) -> Self {
        Self {
            poll: stack.poll_ports(),
            kind: BackendKind::Aws,
            entries: stack.store.clone(),
            mappings: stack.store.clone(),
            journal: stack.store.clone(),
            pending: stack.store.clone(),
            audit: stack.store.clone(),
            reconcile: stack.store.clone(),
            purge: stack.store.clone(),
            queue: stack.ports.queue,
            engine: stack.engine,
            ledger: stack.ledger,
            config: stack.ports.config,
        }
    }

    /// The mapping change review on this stack (the same workflow as the
    /// console's, with the config's `mapping_approval_threshold`).
    pub fn mapping_review(&self) -> timepost::review::MappingReview<'_> {
        timepost::review::MappingReview {
            entries: self.entries.as_ref(),
            mappings: self.mappings.as_ref(),
            audit: self.audit.as_ref(),
            pending: Some(self.pending.as_ref()),
            engine: self.engine.as_ref(),
            threshold: self.config.console.mapping_approval_threshold,
        }
    }

    /// True when the deployed sync function, not this process, works
    /// through the queue.
    pub fn deployed(&self) -> bool {
        self.kind == BackendKind::Aws
    }

    /// Where messages go and who processes them, for the output.
    pub fn queue_name(&self) -> &'static str {
        match self.kind {
            BackendKind::Local => "the local queue",
            BackendKind::Aws => "the SQS ingest queue",
        }
    }
}

impl Ops {
    /// Where a re-check of held entries runs on this stack: here locally,
    /// queued for the deployed sync function on AWS.
    pub fn recheck_mode(&self) -> RecheckMode {
        if self.deployed() {
            RecheckMode::Queue
        } else {
            RecheckMode::InProcess
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
        BackendKind::Local => Ok(Ops::local(super::open(&g.config)?)),
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
    let settings = aws::settings()?;
    let sdk = timepost::aws::sdk_config().await;
    let stack = timepost::aws::AwsStack::connect(&sdk, settings, None)
        .await
        .map_err(|e| match e {
            AwsStackError::MissingConfig { .. } => Failure::Input(anyhow!(e).context(
                "no rules config in the bucket (run `timepost --backend aws config push`)",
            )),
            AwsStackError::Setting(_)
            | AwsStackError::Config(_)
            | AwsStackError::ConfigEncoding { .. }
            | AwsStackError::LedgerKind(_) => Failure::Input(anyhow!(e)),
            AwsStackError::Store(_) | AwsStackError::Ledger(_) => Failure::Runtime(anyhow!(e)),
        })?;
    Ok(Ops::aws(stack))
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
