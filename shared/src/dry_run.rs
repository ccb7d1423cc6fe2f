//! `timepost sync --dry-run`: what would be sent for what is queued,
//! exactly, without sending anything and without changing the store.
//!
//! The store file is copied (`VACUUM INTO`, a consistent snapshot even
//! while another process writes) into a temporary directory; the engine
//! runs there against a [`RecordingLedger`] that renders each request with
//! the configured adapter's own request builder (the same code that builds
//! what the real adapter sends) and answers with made-up record ids. The
//! copy is thrown away afterwards.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, LedgerKind};
use crate::engine::{Engine, Outcome};
use crate::ledger::cloud::{qbo_planner, xero_planner, Planner};
use crate::ledger::recording::{Recorded, RecordingLedger};
use crate::local::SqliteStore;
use crate::ports::StoreError;

#[derive(Debug, Serialize)]
pub struct DryRun {
    pub ledger: String,
    pub requests: Vec<Recorded>,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("there is no store at {0}: nothing has been ingested yet")]
    NoStore(String),
    #[error("cannot copy the store: {0}")]
    Copy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copy the SQLite store at `from` into the new file `to`.
pub fn copy_store(from: &Path, to: &Path) -> Result<(), DryRunError> {
    if !from.exists() {
        return Err(DryRunError::NoStore(from.display().to_string()));
    }
    let conn = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DryRunError::Copy(e.to_string()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| DryRunError::Copy(e.to_string()))?;
    conn.execute("VACUUM INTO ?1", [to.display().to_string()])
        .map_err(|e| DryRunError::Copy(e.to_string()))?;
    Ok(())
}

/// The planner of the configured ledger (`None` for the sandbox).
pub fn planner(cfg: &Config) -> Option<Planner> {
    match cfg.ledger.kind {
        LedgerKind::Sandbox => None,
        LedgerKind::Qbo => cfg.ledger.qbo.as_ref().map(qbo_planner),
        LedgerKind::Xero => cfg.ledger.xero.as_ref().map(xero_planner),
    }
}

/// Process what is queued in a copy of the store, recording requests.
pub async fn dry_run(cfg: &Config, scratch: &Path) -> Result<DryRun, DryRunError> {
    let copy = scratch.join("dry-run.sqlite");
    copy_store(&cfg.store.path, &copy)?;
    let store = SqliteStore::open(&copy)?;
    let ledger = Arc::new(RecordingLedger::new(cfg.ledger.kind.as_str(), planner(cfg)));
    let shared = Arc::new(store.clone());
    let mut worker = cfg.worker.clone();
    worker.ledger_attempts = 1;
    let engine = Engine::new(
        shared.clone(),
        shared.clone(),
        shared,
        ledger.clone(),
        cfg.rules.clone(),
        worker,
    );
    let outcomes =
        crate::worker::drain_all(&engine, &store, std::time::Duration::from_secs(30)).await?;
    Ok(DryRun {
        ledger: cfg.ledger.kind.as_str().to_string(),
        requests: ledger.recorded(),
        outcomes,
    })
}
