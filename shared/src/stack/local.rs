//! [`LocalStack`]: the local runtime assembled from a config — one SQLite
//! file for every store and the queue, the sandbox (or a cloud) ledger,
//! the engine.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, LedgerKind};
use crate::engine::Engine;
use crate::ledger::sandbox::SandboxLedger;
use crate::local::{DirArchive, SecretsFile, SqliteStore};
use crate::poll::PollPorts;
use crate::ports::StoreError;
use timepost_core::ledger::Ledger;

use super::Stack;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] crate::local::secrets::SecretsFileError),
    #[error("cannot set up the ledger: {0}")]
    Ledger(String),
}

pub struct LocalStack {
    pub config: Config,
    pub store: SqliteStore,
    pub sandbox: Arc<SandboxLedger>,
    pub ledger: Arc<dyn Ledger>,
    pub engine: Arc<Engine>,
    pub archive: Arc<DirArchive>,
    pub secrets: Arc<SecretsFile>,
}

impl LocalStack {
    /// Open the stack on the store file named in `config`.
    pub fn open(config: Config) -> Result<Self, StackError> {
        let store = SqliteStore::open(&config.store.path)?;
        Self::with_store(config, store)
    }

    /// Open the stack on a given store (tests use a temporary file).
    pub fn with_store(config: Config, store: SqliteStore) -> Result<Self, StackError> {
        let secrets = Arc::new(SecretsFile::open(&config.store.secrets_file)?);
        let sandbox = Arc::new(SandboxLedger::new(
            store.clone(),
            config.ledger.sandbox.clone(),
        ));
        let ledger: Arc<dyn Ledger> = match config.ledger.kind {
            LedgerKind::Sandbox => sandbox.clone(),
            kind => crate::ledger::cloud::connect(
                kind.as_str(),
                config.ledger.qbo.as_ref(),
                config.ledger.xero.as_ref(),
                secrets.clone(),
            )
            .map_err(|e| StackError::Ledger(e.to_string()))?,
        };
        // Intents must reach the disk before a call to a ledger outside
        // this file; a dead process's claims are taken over at once.
        store.set_durable_intents(config.ledger.kind != LedgerKind::Sandbox);
        match store.release_dead_claims() {
            Ok(0) => {}
            Ok(n) => tracing::info!(claims = n, "took over the claims of a stopped process"),
            Err(e) => tracing::warn!(error = %e, "could not check for a stopped process's claims"),
        }
        let shared = Arc::new(store.clone());
        let engine = Arc::new(Engine::new(
            shared.clone(),
            shared.clone(),
            shared.clone(),
            ledger.clone(),
            config.rules.clone(),
            config.worker.clone(),
        ));
        // The sweep reads what changed in the books outside timepost.
        engine.watch_books(shared.clone(), shared);
        Ok(Self {
            archive: Arc::new(DirArchive::new(&config.store.archive_dir)),
            config,
            store,
            sandbox,
            ledger,
            engine,
            secrets,
        })
    }

    pub fn store_path(&self) -> &Path {
        &self.config.store.path
    }

    /// The pollers' ports: the stack's stores (one SQLite file) and its
    /// secrets file.
    pub fn poll_ports(&self) -> PollPorts {
        Stack::from(self).poll_ports()
    }
}
