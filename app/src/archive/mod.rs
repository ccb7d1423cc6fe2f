//! Archival: period snapshots of everything timepost knows about a period
//! (entries, journal, approvals, audit, mappings as they stood, rules,
//! exceptions, the period's report), written through the [`Archive`] port
//! (a local directory, or the stack's bucket), checked, restored into a
//! fresh local store, and the retention rules that decide what may leave
//! the live store. The same format carries a full portable export.
//!
//! - [`format`](mod@format): periods, file kinds, the versioned manifest, encodings;
//! - [`snapshot`]: collect a period (or everything) and write revisions;
//! - [`verify`]: re-hash every file and the manifest chain;
//! - [`restore`]: a snapshot or a bundle into a fresh local store;
//! - [`retention`]: `[retention]`, expired snapshots, the purge plan;
//! - [`status`]: what the console's Archives page shows, and its audited
//!   verify action.
//!
//! [`Archive`]: crate::ports::Archive

pub mod format;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod status;
pub mod verify;

pub use format::{Manifest, Period, PeriodKind};
pub use retention::RetentionConfig;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    #[error(transparent)]
    Ledger(#[from] timepost_core::ledger::LedgerError),
    /// A request that cannot be carried out as asked (bad period, a
    /// period inside the grace window, a non-empty store).
    #[error("{0}")]
    Input(String),
    #[error("cannot encode the snapshot: {0}")]
    Encode(String),
    /// A file of a snapshot or bundle cannot be read as its kind.
    #[error("corrupt archive file {0}")]
    Corrupt(String),
    /// The snapshot failed verification; the problems name the files.
    #[error("snapshot {period} failed verification: {}", problems.join("; "))]
    Unverified {
        period: String,
        problems: Vec<String>,
    },
    #[error("cannot write {path}: {message}")]
    Io { path: String, message: String },
}

/// An archive seen under a key prefix (in a stack's bucket, snapshots live
/// under `archive/`, beside the config and the reports).
pub struct Prefixed<A> {
    pub inner: A,
    pub prefix: String,
}

#[async_trait::async_trait]
impl<A: crate::ports::Archive> crate::ports::Archive for Prefixed<A> {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> crate::ports::StoreResult<()> {
        self.inner
            .put(&format!("{}{key}", self.prefix), bytes)
            .await
    }
    async fn get(&self, key: &str) -> crate::ports::StoreResult<Option<Vec<u8>>> {
        self.inner.get(&format!("{}{key}", self.prefix)).await
    }
    async fn list(&self, prefix: &str) -> crate::ports::StoreResult<Vec<String>> {
        let mut out = self.inner.list(&format!("{}{prefix}", self.prefix)).await?;
        for k in &mut out {
            *k = k[self.prefix.len().min(k.len())..].to_string();
        }
        Ok(out)
    }
    async fn storage_class(&self, key: &str) -> crate::ports::StoreResult<Option<String>> {
        self.inner
            .storage_class(&format!("{}{key}", self.prefix))
            .await
    }
}
