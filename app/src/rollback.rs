//! Rolling back one import batch: put the books back as they were before
//! the batch, using only what the posting journal attributes to it.
//!
//! For every entry the batch touched:
//! - first posted by the batch → its records are deleted in the ledger;
//! - already in the books before the batch (the batch updated or voided
//!   it) → the lines it had before are restored in the ledger.
//!
//! Either way the entry's current version is then "not posted": status
//! `ignored` with a note (a redrive or a newer version posts it again), or
//! `held` with `--hold` (the scheduled held re-check posts it again).
//!
//! A batch whose entries were changed afterwards (a later posting in the
//! journal, or the entry's records differ from what the batch left) is
//! refused unless forced; forced, the newest known records (and sync
//! tokens) are the ones removed. Every step is journaled under batch
//! `rollback-<batch>`, with idempotency keys, so a rollback interrupted by a
//! crash can simply be run again.

// `LedgerError` is the port's error type and carries the exception inline.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::config::WorkerConfig;
use crate::engine::backoff;
use crate::exceptions::Exception;
use crate::model::{idempotency_key, EntryKey};
use crate::ports::{EntryStore, Journal, JournalRecord, StoreError};
use crate::state::Status;
use timepost_core::ledger::{Ledger, LedgerError, LedgerOp, LedgerRequest, RecordRef};

#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub batch_id: String,
    /// Roll back even if entries were changed after the batch.
    pub force: bool,
    /// Put first-posted entries in `held` instead of "not posted".
    pub hold: bool,
    /// Who asked (kept in the entry's note and the log).
    pub by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub key: String,
    /// `removed` (records deleted) or `restored` (lines before the batch).
    pub action: &'static str,
    pub records_removed: usize,
    pub status: Status,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub batch_id: String,
    pub journal_batch: String,
    pub entries: Vec<RolledBack>,
    /// Entries a previous run of this rollback already handled.
    pub already_done: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("the posting journal has nothing for batch `{0}`")]
    UnknownBatch(String),
    #[error("batch `{batch}` was partly changed after it was posted, so rolling it back would also undo later work:\n{}\nPass --force to roll it back anyway (the newest records of these entries are removed).", details.join("\n"))]
    EditedAfterwards { batch: String, details: Vec<String> },
    #[error("the accounting system refused to roll back {key}: {error}")]
    Ledger { key: EntryKey, error: LedgerError },
    #[error("entry {0} is being processed right now; try again in a minute")]
    Busy(EntryKey),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The journal batch a rollback of `batch` is recorded under.
pub fn journal_batch_of(batch: &str) -> String {
    format!("rollback-{batch}")
}

struct Plan {
    key: EntryKey,
    /// What the ledger held before the batch (the last journal record
    /// before the batch's first one for this entry).
    before: Option<JournalRecord>,
}

pub async fn rollback(
    entries: &dyn EntryStore,
    journal: &dyn Journal,
    ledger: Arc<dyn Ledger>,
    worker: &WorkerConfig,
    opts: &RollbackOptions,
) -> Result<RollbackReport, RollbackError> {
    let batch = &opts.batch_id;
    let records = journal.by_batch(batch).await?;
    if records.is_empty() {
        return Err(RollbackError::UnknownBatch(batch.clone()));
    }
    let jb = journal_batch_of(batch);
    let done: HashSet<EntryKey> = journal
        .by_batch(&jb)
        .await?
        .into_iter()
        .map(|r| r.key)
        .collect();
    let mut keys: Vec<EntryKey> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &records {
        if seen.insert(r.key.clone()) {
            keys.push(r.key.clone());
        }
    }

    // Plan, and find what was changed afterwards.
    let mut plans = Vec::new();
    let mut edited = Vec::new();
    for key in keys.iter().filter(|k| !done.contains(*k)) {
        let mine: Vec<&JournalRecord> = records.iter().filter(|r| &r.key == key).collect();
        let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
            continue;
        };
        let all = journal.by_entry(key).await?;
        let before = all.iter().rfind(|r| r.seq < first.seq).cloned();
        let later: Vec<&JournalRecord> = all
            .iter()
            .filter(|r| r.seq > last.seq && r.batch_id != jb)
            .collect();
        let state = entries.get(key).await?;
        if let Some(l) = later.last() {
            edited.push(format!(
                "  {key}: posted again by batch {} at {} ({})",
                l.batch_id,
                l.at.format("%Y-%m-%d %H:%M:%S UTC"),
                l.operation
            ));
        } else if state.as_ref().is_some_and(|s| s.records != last.records) {
            edited.push(format!(
                "  {key}: what timepost holds for it changed after the batch"
            ));
        }
        plans.push(Plan {
            key: key.clone(),
            before,
        });
    }
    if !edited.is_empty() && !opts.force {
        return Err(RollbackError::EditedAfterwards {
            batch: batch.clone(),
            details: edited,
        });
    }

    let owner = format!("rollback-{}", uuid::Uuid::new_v4());
    let mut report = RollbackReport {
        batch_id: batch.clone(),
        journal_batch: jb.clone(),
        entries: Vec::new(),
        already_done: done.len(),
    };
    for p in plans {
        if !entries
            .claim(&p.key, &owner, Duration::from_secs(120))
            .await?
        {
            return Err(RollbackError::Busy(p.key));
        }
        let result = undo_one(entries, journal, ledger.as_ref(), worker, opts, &jb, &p).await;
        if let Err(e) = entries.release(&p.key, &owner).await {
            tracing::warn!(entry = %p.key, error = %e, "could not release claim");
        }
        report.entries.push(result?);
    }
    Ok(report)
}

async fn undo_one(
    entries: &dyn EntryStore,
    journal: &dyn Journal,
    ledger: &dyn Ledger,
    worker: &WorkerConfig,
    opts: &RollbackOptions,
    jb: &str,
    p: &Plan,
) -> Result<RolledBack, RollbackError> {
    let Some(mut state) = entries.get(&p.key).await? else {
        return Err(StoreError::NotFound(format!("entry {}", p.key)).into());
    };
    let current = state.records.clone();
    let restore = p.before.as_ref().filter(|b| !b.records.is_empty());
    let op = match restore {
        None => LedgerOp::Delete {
            records: current.clone(),
        },
        Some(b) if current.is_empty() => LedgerOp::Create {
            lines: b.lines.clone(),
        },
        Some(b) => LedgerOp::Update {
            records: current.clone(),
            lines: b.lines.clone(),
        },
    };
    let nothing_to_do = matches!(&op, LedgerOp::Delete { records } if records.is_empty());
    let salt = format!("rollback:{}:{}", opts.batch_id, op.name());
    let request = LedgerRequest {
        key: p.key.clone(),
        version: state.entry.version.clone(),
        idempotency_key: idempotency_key(&p.key, &state.entry.version, &salt),
        // The records get back the fingerprints they had before the batch,
        // so they read as the intent that wrote them then.
        intent: restore.map(|b| b.intent.clone()).unwrap_or_default(),
        op,
    };
    let held: Vec<RecordRef> = if nothing_to_do {
        Vec::new()
    } else {
        apply_with_retries(ledger, worker, &request)
            .await
            .map_err(|error| RollbackError::Ledger {
                key: p.key.clone(),
                error,
            })?
    };
    let lines = restore.map(|b| b.lines.clone()).unwrap_or_default();
    let now = Utc::now();
    journal
        .append(JournalRecord {
            seq: 0,
            batch_id: jb.to_string(),
            key: p.key.clone(),
            version: state.entry.version.clone(),
            operation: format!("rollback_{}", request.op.name()),
            request_id: request.idempotency_key.clone(),
            records: held.clone(),
            lines: lines.clone(),
            ledger: ledger.name().to_string(),
            at: now,
            intent: String::new(),
        })
        .await?;
    let removed = current
        .iter()
        .filter(|r| !held.iter().any(|h| h.id == r.id))
        .count();
    state.records = held;
    state.posted_lines = lines;
    state.reason = None;
    state.updated_at = now;
    state.posted_version = restore.map(|b| b.version.clone());
    state.batch_id = restore.map(|b| b.batch_id.clone());
    let action = if restore.is_some() {
        "restored"
    } else {
        "removed"
    };
    let what = match restore {
        Some(_) => {
            "its newer version is not posted (the books hold what they held before the batch)"
        }
        None => "not posted",
    };
    // Not `posted`: the entry's current version is not what the books
    // hold, and a posted entry would be re-posted by the next change in
    // its week.
    if opts.hold {
        state.set_status(Status::Held, now);
        state.note = None;
        state.reason = Some(Exception::rolled_back(&opts.batch_id, &opts.by, what));
    } else {
        state.set_status(Status::Ignored, now);
        state.note = Some(format!(
            "{what}: rolled back with batch {} by {}; redrive to post it again",
            opts.batch_id, opts.by
        ));
    }
    entries.put(&state).await?;
    tracing::info!(entry = %p.key, action, batch = %opts.batch_id, "rolled back");
    Ok(RolledBack {
        key: p.key.to_string(),
        action,
        records_removed: removed,
        status: state.status(),
    })
}

/// The engine's retry policy, for calls made outside the engine.
pub async fn apply_with_retries(
    ledger: &dyn Ledger,
    worker: &WorkerConfig,
    request: &LedgerRequest,
) -> Result<Vec<RecordRef>, LedgerError> {
    let mut attempt = 0;
    loop {
        match ledger.apply(request).await {
            Ok(r) => return Ok(r),
            Err(e) if e.is_retryable() && attempt + 1 < worker.ledger_attempts.max(1) => {
                attempt += 1;
                tokio::time::sleep(backoff(worker, attempt, &e)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
