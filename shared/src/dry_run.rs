//! `timepost sync --dry-run`: what would be sent for what is queued,
//! exactly, without sending anything and without changing the store.
//!
//! The store file is copied (`VACUUM INTO`, a consistent snapshot even
//! while another process writes) into a temporary directory; the engine
//! runs there against a [`RecordingLedger`] that renders each request with
//! the configured adapter's own request builder (the same code that builds
//! what the real adapter sends) and answers with made-up record ids. The
//! copy is thrown away afterwards.
//!
//! A deployed stack has no file to copy: [`dry_run_from`] peeks at the
//! queued messages (received, then made visible again at once) and seeds a
//! scratch SQLite store with only what the engine will read for them — the
//! mappings and the current state of every worker-week the messages touch
//! — through the port traits, so it works on DynamoDB and SQS as on any
//! other adapter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, LedgerKind};
use crate::engine::{Engine, Outcome};
use crate::ledger::cloud::{qbo_planner, xero_planner, Planner};
use crate::ledger::recording::{Recorded, RecordingLedger};
use crate::local::SqliteStore;
use crate::mapping::{MappingRow, Mappings};
use crate::model::EntryKey;
use crate::ports::{
    EntryStore, MappingStore, Queue, QueueMessage, StoreError, StoreResult, WorkerWeek,
};
use crate::state::EntryState;

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
    run_on(cfg, store).await
}

/// The stores of a stack a dry run reads (and never writes): the deployed
/// stack's adapters for `timepost --backend aws sync --dry-run`.
pub struct DryRunSource<'a> {
    pub entries: &'a dyn EntryStore,
    pub mappings: &'a dyn MappingStore,
    pub queue: &'a dyn Queue,
}

/// How long peeked messages stay hidden at most should restoring them fail
/// (a crash between receive and restore): the deployed worker sees them
/// again after this, as after any receive.
pub const PEEK_VISIBILITY: Duration = Duration::from_secs(30);

/// The most messages one dry run looks at.
pub const PEEK_LIMIT: usize = 10_000;

/// Read up to `limit` queued messages without consuming them: each is
/// received (hidden for [`PEEK_VISIBILITY`]) and made visible again at once.
/// Every receive counts towards the queue's redrive limit, as any receive
/// does, so a message peeked many times reaches the dead-letter queue
/// sooner. Messages another consumer holds are not seen.
pub async fn peek(queue: &dyn Queue, limit: usize) -> StoreResult<Vec<QueueMessage>> {
    let mut seen: BTreeMap<String, QueueMessage> = BTreeMap::new();
    let mut order = Vec::new();
    let mut receipts = Vec::new();
    let mut failure = None;
    while order.len() < limit {
        let batch = match queue.receive(10, PEEK_VISIBILITY).await {
            Ok(b) => b,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        if batch.is_empty() {
            break;
        }
        for r in batch {
            receipts.push(r.receipt);
            if let std::collections::btree_map::Entry::Vacant(slot) = seen.entry(r.id.clone()) {
                order.push(r.id);
                slot.insert(r.message);
            }
        }
    }
    // Restore every message, even after a failed receive, before reporting.
    for receipt in &receipts {
        if let Err(e) = queue.retry_later(receipt, Duration::ZERO).await {
            failure.get_or_insert(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(order
        .into_iter()
        .filter_map(|id| seen.remove(&id))
        .collect())
}

/// What the queued messages would do to the stack `source` names: peek the
/// messages, seed a scratch store under `scratch` with the mappings and the
/// worker-weeks they touch, and run the engine there against a recording
/// ledger. Nothing is consumed, sent or written in `source`.
pub async fn dry_run_from(
    cfg: &Config,
    source: DryRunSource<'_>,
    scratch: &Path,
) -> Result<DryRun, DryRunError> {
    let messages = peek(source.queue, PEEK_LIMIT).await?;
    let store = SqliteStore::open(&scratch.join("dry-run.sqlite"))?;
    seed(&source, &messages, &store).await?;
    for batch in crate::intake::batches(messages) {
        store.send_batch(&batch).await?;
    }
    run_on(cfg, store).await
}

/// Copy into `into` what the engine reads while handling `messages`: the
/// current mappings, and every entry of each worker-week a message touches
/// (an entry's new week and the week its stored version is in, a redriven
/// entry's week, each week of an approval's range).
async fn seed(
    source: &DryRunSource<'_>,
    messages: &[QueueMessage],
    into: &SqliteStore,
) -> Result<(), DryRunError> {
    let mappings = source.mappings.snapshot().await?;
    let changes = seed_mappings(&mappings);
    if !changes.is_empty() {
        into.apply(changes).await?;
    }
    let mut weeks = BTreeSet::new();
    for m in messages {
        match m {
            QueueMessage::Entry { entry, .. } => {
                weeks.insert(WorkerWeek::of(entry));
                if let Some(prior) = source.entries.get(&entry.key).await? {
                    weeks.insert(WorkerWeek::of(&prior.entry));
                }
            }
            QueueMessage::Redrive { key, .. } => {
                if let Some(prior) = source.entries.get(key).await? {
                    weeks.insert(WorkerWeek::of(&prior.entry));
                }
            }
            QueueMessage::Approval {
                source: src,
                workspace,
                user_id,
                from,
                to,
                ..
            } => {
                let end = (*from).max(*to);
                let mut day = crate::model::week_start((*from).min(*to));
                while day <= end {
                    weeks.insert(WorkerWeek {
                        source: *src,
                        workspace: workspace.clone(),
                        user_id: user_id.clone(),
                        week_start: day,
                    });
                    day += chrono::Duration::days(7);
                }
            }
        }
    }
    let mut states: BTreeMap<EntryKey, EntryState> = BTreeMap::new();
    for w in &weeks {
        for s in source.entries.week(w).await? {
            states.insert(s.entry.key.clone(), s);
        }
    }
    for (_, mut s) in states {
        // A fresh record in the scratch store: revision 0 = "must not exist".
        s.revision = 0;
        into.put(&s).await?;
    }
    Ok(())
}

/// The current mappings as one change set that recreates them.
fn seed_mappings(m: &Mappings) -> Vec<crate::mapping::MappingChange> {
    let rows: Vec<MappingRow> = m.rows().into_iter().cloned().collect();
    crate::mapping::diff(
        &Mappings::default(),
        &rows,
        false,
        "dry-run",
        chrono::Utc::now(),
        "copied from the stack for a dry run",
    )
}

/// Drain `store`'s queue through the engine against a recording ledger.
async fn run_on(cfg: &Config, store: SqliteStore) -> Result<DryRun, DryRunError> {
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
