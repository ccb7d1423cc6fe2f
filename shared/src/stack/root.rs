//! [`Stack`]: the one composition root every entry point takes — the ports
//! of one running stack by name, its ledger, its engine and its config,
//! whichever adapters back them. [`Stack::local`] opens it from a config
//! (one SQLite file), `Stack::aws_from_env` from a deployed stack's
//! environment (DynamoDB, SQS, S3, Secrets Manager); a caller that needs
//! the local runtime's own parts too ([`LocalStack`]: the SQLite store, the
//! sandbox books) or the AWS one's (`AwsStack`) takes its view with
//! `Stack::from`. The router's
//! state (`timepost_web::AppState::of`), the CLI's `Ops`, the pollers'
//! ports ([`Stack::poll_ports`]) and the mapping review
//! ([`Stack::mapping_review`]) are views of it, so a new port is added
//! here and in the two builders, nowhere else.

use std::sync::Arc;

use crate::app::recheck::RecheckMode;
use crate::archive::retention::PurgeStore;
use crate::config::Config;
use crate::engine::Engine;
#[cfg(feature = "clients")]
use crate::poll::PollPorts;
use crate::ports::{
    Archive, AuditLog, EntryStore, Journal, MappingStore, PendingChanges, Queue, Secrets,
    SessionStore, WatermarkStore,
};
use crate::reconcile::ReconcileStore;
use crate::review::MappingReview;
use timepost_core::ledger::Ledger;

#[cfg(feature = "stack")]
use super::{LocalStack, StackError};

/// Which adapters back a [`Stack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    /// One SQLite file, a directory of archives, a secrets file; the
    /// engine runs in this process (`timepost serve`, the CLI, the tests).
    Local,
    /// A deployed stack: only its sync function writes the books.
    Aws,
}

/// The ports, ledger, engine and config of one stack.
#[derive(Clone)]
pub struct Stack {
    pub kind: StackKind,
    pub config: Config,
    pub entries: Arc<dyn EntryStore>,
    pub mappings: Arc<dyn MappingStore>,
    pub journal: Arc<dyn Journal>,
    pub queue: Arc<dyn Queue>,
    pub watermarks: Arc<dyn WatermarkStore>,
    /// Where mapping changes wait for a second admin (with their previews).
    pub pending: Arc<dyn PendingChanges>,
    pub audit: Arc<dyn AuditLog>,
    /// Reconciliation runs and the resolutions of their breaks.
    pub reconcile: Arc<dyn ReconcileStore>,
    /// Where `archive purge` removes archived entries.
    pub purge: Arc<dyn PurgeStore>,
    pub secrets: Arc<dyn Secrets>,
    /// Where period snapshots are: the archive directory locally,
    /// `archive/` in the archive bucket on AWS.
    pub snapshots: Arc<dyn Archive>,
    /// Console sessions every instance shares (the table on AWS); `None`:
    /// kept in the process's memory.
    pub sessions: Option<Arc<dyn SessionStore>>,
    pub ledger: Arc<dyn Ledger>,
    pub engine: Arc<Engine>,
}

impl Stack {
    /// Open the local stack `config` names: every store and the queue in
    /// its SQLite file, its secrets file and archive directory, its ledger
    /// and engine.
    #[cfg(feature = "stack")]
    pub fn local(config: Config) -> Result<Self, StackError> {
        Ok(Self::from(&LocalStack::open(config)?))
    }

    /// Connect to the deployed stack the `TIMEPOST_*` environment names,
    /// on the rules config in its bucket.
    #[cfg(all(feature = "aws", feature = "stack"))]
    pub async fn aws_from_env() -> Result<Self, crate::aws::stack::AwsStackError> {
        Ok(Self::from(&crate::aws::AwsStack::from_env().await?))
    }
}

#[cfg(feature = "stack")]
impl From<&LocalStack> for Stack {
    /// The local stack's ports: every store and the queue in its SQLite
    /// file.
    fn from(stack: &LocalStack) -> Self {
        let store = Arc::new(stack.store.clone());
        Self {
            kind: StackKind::Local,
            config: stack.config.clone(),
            entries: store.clone(),
            mappings: store.clone(),
            journal: store.clone(),
            queue: store.clone(),
            watermarks: store.clone(),
            pending: store.clone(),
            audit: store.clone(),
            reconcile: store.clone(),
            purge: store,
            secrets: stack.secrets.clone(),
            snapshots: stack.archive.clone(),
            sessions: None,
            ledger: stack.ledger.clone(),
            engine: stack.engine.clone(),
        }
    }
}

#[cfg(all(feature = "aws", feature = "stack"))]
impl From<&crate::aws::AwsStack> for Stack {
    /// A deployed stack's ports: every store on its table, the SQS queue,
    /// Secrets Manager, snapshots under `archive/` in the archive bucket.
    fn from(stack: &crate::aws::AwsStack) -> Self {
        let store = stack.store.clone();
        Self {
            kind: StackKind::Aws,
            config: stack.config.clone(),
            entries: store.clone(),
            mappings: store.clone(),
            journal: store.clone(),
            queue: stack.queue.clone(),
            watermarks: store.clone(),
            pending: store.clone(),
            audit: store.clone(),
            reconcile: store.clone(),
            purge: store.clone(),
            secrets: stack.secrets.clone(),
            snapshots: Arc::new(stack.snapshots()),
            sessions: Some(store),
            ledger: stack.ledger.clone(),
            engine: stack.engine.clone(),
        }
    }
}

impl Stack {
    /// True when a deployed sync function, not this process, works through
    /// the queue and writes the books.
    pub fn deployed(&self) -> bool {
        self.kind == StackKind::Aws
    }

    /// Where the held entries a mapping change releases are re-checked:
    /// here locally, queued for the sync function on a deployed stack.
    pub fn recheck_mode(&self) -> RecheckMode {
        match self.kind {
            StackKind::Local => RecheckMode::InProcess,
            StackKind::Aws => RecheckMode::Queue,
        }
    }

    /// What the trackers' pollers read and write: their watermarks, the
    /// entries and mappings, the queue and their secrets.
    #[cfg(feature = "clients")]
    pub fn poll_ports(&self) -> PollPorts {
        PollPorts {
            watermarks: self.watermarks.clone(),
            entries: self.entries.clone(),
            queue: self.queue.clone(),
            mappings: self.mappings.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// The mapping change review on this stack, with the config's
    /// `mapping_approval_threshold`.
    pub fn mapping_review(&self) -> MappingReview<'_> {
        MappingReview {
            entries: self.entries.as_ref(),
            mappings: self.mappings.as_ref(),
            audit: self.audit.as_ref(),
            pending: Some(self.pending.as_ref()),
            engine: self.engine.as_ref(),
            threshold: self.config.console.mapping_approval_threshold,
        }
    }
}
