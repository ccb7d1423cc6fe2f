//! An in-memory adapter: every store port the contract suite
//! ([`crate::contracts`]) covers, and the ingest queue, held in maps behind
//! one mutex.
//!
//! What it is for: the contract suite's third adapter (beside SQLite and
//! DynamoDB/SQS on moto, `tests/tests/it/memory_contracts.rs`), and fast
//! in-process tests that need no store file. It follows the ports' docs
//! and, where a doc is silent, what the SQLite adapter
//! (`timepost::local::SqliteStore`) does.
//!
//! It is **not** a production adapter: nothing is durable (a process that
//! ends takes every entry, intent and queued message with it), and every
//! query is a linear scan.
//!
//! The entry store keeps the trait's default for every method that has
//! one (status pages, aggregates, key pages, mapped-key reads, period
//! reads, KPI samples, rebuilds): each folds or filters [`EntryStore::all`].
//! Queue visibility deadlines are [`Instant`]s compared at each call;
//! nothing sleeps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use timepost::intent::Intent;
use timepost::mapping::{MappingChange, MappingRow, MappingTable, Mappings};
use timepost::model::{EntryKey, NormalisedEntry, Source};
use timepost::ports::{
    AlertState, AlertStore, AuditLog, AuditRecord, DeadLetter, EntryStore, Journal, JournalRecord,
    MappingStore, PendingChanges, ProposalStatus, ProposedChange, Queue, QueueMessage, Received,
    ReceivedVersion, SessionStore, StoreError, StoreResult, StoredSession, WatermarkStore,
    WorkerWeek,
};
use timepost::reconcile::{Break, ReconcileStore, Resolution, RunSummary};
use timepost::state::{EntryState, Status};

/// Every port's state in memory. Cheap to clone; all clones share the
/// same state.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<State>>,
}

/// Everything the store holds.
#[derive(Default)]
struct State {
    /// Entry states by key text (`EntryKey`'s `Display`), so the map's
    /// order is the key order SQLite lists in.
    entries: BTreeMap<String, EntryState>,
    /// Versions as received, per key text.
    versions: BTreeMap<String, Vec<ReceivedVersion>>,
    /// Claims per key text: owner and when the claim lapses.
    claims: BTreeMap<String, (String, Instant)>,
    /// Current mapping rows by (table, key).
    mappings: BTreeMap<(MappingTable, String), MappingRow>,
    /// The mapping change log; change `n` (1-based) has `seq` n.
    mapping_log: Vec<MappingChange>,
    /// The posting journal; record `n` (1-based) has `seq` n.
    journal: Vec<JournalRecord>,
    /// Write-ahead intents by id, with whether each is still open.
    intents: BTreeMap<String, (bool, Intent)>,
    /// Dirty weeks, with the order they were first marked in and why.
    dirty: BTreeMap<WorkerWeek, (u64, String)>,
    dirty_seq: u64,
    /// The ingest queue by send order.
    queue: BTreeMap<u64, Queued>,
    queue_seq: u64,
    /// Parked messages in the order they were parked.
    dead: Vec<DeadLetter>,
    watermarks: BTreeMap<String, DateTime<Utc>>,
    /// The audit log; record `n` (1-based) has `seq` n.
    audit: Vec<AuditRecord>,
    /// Mapping change proposals by id; ids are never reused.
    proposals: BTreeMap<u64, ProposedChange>,
    proposal_seq: u64,
    sessions: BTreeMap<String, StoredSession>,
    alerts: BTreeMap<String, AlertState>,
    /// Reconciliation runs (run `n`, 1-based, has `seq` n) with their
    /// breaks, and the resolutions in the order they were added.
    runs: Vec<(RunSummary, Vec<Break>)>,
    resolutions: Vec<Resolution>,
}

/// One message on the ingest queue.
struct Queued {
    id: String,
    message: QueueMessage,
    /// Received (and hidden) until then, or waiting for a retry delay.
    visible_at: Instant,
    receive_count: u32,
    /// The receipt of the newest receive (None: never received).
    receipt: Option<String>,
}

impl State {
    /// The send-order number of the queued message a receipt names (its
    /// newest receive's), if it is still on the queue.
    fn by_receipt(&self, receipt: &str) -> Option<u64> {
        self.queue
            .iter()
            .find(|(_, q)| q.receipt.as_deref() == Some(receipt))
            .map(|(seq, _)| *seq)
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The state. A poisoned lock means a panic while it was held; every
    /// method changes the state only once it has checked all it needs, so
    /// what is left is consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl EntryStore for MemoryStore {
    async fn get(&self, key: &EntryKey) -> StoreResult<Option<EntryState>> {
        Ok(self.lock().entries.get(&key.to_string()).cloned())
    }

    async fn put(&self, state: &EntryState) -> StoreResult<u64> {
        let mut s = self.lock();
        let key = state.entry.key.to_string();
        let current = s.entries.get(&key).map_or(0, |c| c.revision);
        if current != state.revision {
            return Err(StoreError::Conflict(key));
        }
        let mut stored = state.clone();
        stored.revision = state.revision + 1;
        let revision = stored.revision;
        s.entries.insert(key, stored);
        Ok(revision)
    }

    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        Ok(self
            .lock()
            .entries
            .values()
            .filter(|st| {
                let e = &st.entry;
                e.key.source == week.source
                    && e.key.workspace == week.workspace
                    && e.worker.tracker_user_id == week.user_id
                    && e.week_start() == week.week_start
            })
            .cloned()
            .collect())
    }

    async fn by_status(&self, status: Status, limit: usize) -> StoreResult<Vec<EntryState>> {
        // Oldest first: by (updated_at, key), the status index's order.
        let mut out: Vec<EntryState> = self
            .lock()
            .entries
            .values()
            .filter(|st| st.status() == status)
            .cloned()
            .collect();
        out.sort_by_cached_key(|st| (st.updated_at, st.entry.key.to_string()));
        out.truncate(limit);
        Ok(out)
    }

    async fn all(&self) -> StoreResult<Vec<EntryState>> {
        Ok(self.lock().entries.values().cloned().collect())
    }

    async fn by_source_dates(
        &self,
        source: Source,
        workspace: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>> {
        Ok(self
            .lock()
            .entries
            .values()
            .filter(|st| {
                let e = &st.entry;
                e.key.source == source
                    && e.key.workspace == workspace
                    && e.work_date >= from
                    && e.work_date <= to
            })
            .cloned()
            .collect())
    }

    async fn claim(&self, key: &EntryKey, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Instant::now();
        let mut s = self.lock();
        let key = key.to_string();
        // Take the claim if free, lapsed, or already this owner's.
        let free = s
            .claims
            .get(&key)
            .is_none_or(|(held_by, until)| *until <= now || held_by == owner);
        if free {
            s.claims
                .insert(key, (owner.to_string(), deadline(now, ttl)));
        }
        Ok(free)
    }

    async fn release(&self, key: &EntryKey, owner: &str) -> StoreResult<()> {
        let mut s = self.lock();
        let key = key.to_string();
        if s.claims
            .get(&key)
            .is_some_and(|(held_by, _)| held_by == owner)
        {
            s.claims.remove(&key);
        }
        Ok(())
    }

    async fn record_version(
        &self,
        entry: &NormalisedEntry,
        received_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        let kept = s.versions.entry(entry.key.to_string()).or_default();
        // Once per (updated_at, content hash): a redelivery changes nothing.
        let seen = kept.iter().any(|v| {
            v.entry.version.updated_at == entry.version.updated_at
                && v.entry.version.content_hash == entry.version.content_hash
        });
        if !seen {
            kept.push(ReceivedVersion {
                received_at,
                entry: entry.clone(),
            });
        }
        Ok(())
    }

    async fn versions(&self, key: &EntryKey) -> StoreResult<Vec<ReceivedVersion>> {
        let mut out = self
            .lock()
            .versions
            .get(&key.to_string())
            .cloned()
            .unwrap_or_default();
        out.sort_by(|a, b| {
            (
                a.entry.version.updated_at,
                a.received_at,
                &a.entry.version.content_hash,
            )
                .cmp(&(
                    b.entry.version.updated_at,
                    b.received_at,
                    &b.entry.version.content_hash,
                ))
        });
        Ok(out)
    }
}

#[async_trait]
impl MappingStore for MemoryStore {
    async fn snapshot(&self) -> StoreResult<Mappings> {
        let s = self.lock();
        Ok(Mappings::from_rows(
            s.mappings.values().cloned(),
            s.mapping_log.len() as u64,
        ))
    }

    async fn version(&self) -> StoreResult<u64> {
        Ok(self.lock().mapping_log.len() as u64)
    }

    async fn apply(&self, mut changes: Vec<MappingChange>) -> StoreResult<Vec<MappingChange>> {
        let mut s = self.lock();
        for c in &mut changes {
            c.seq = s.mapping_log.len() as u64 + 1;
            s.mapping_log.push(c.clone());
            let at = (c.table, c.key.clone());
            match &c.after {
                Some(row) => {
                    s.mappings.insert(at, row.clone());
                }
                None => {
                    s.mappings.remove(&at);
                }
            }
        }
        Ok(changes)
    }

    async fn history(
        &self,
        table: Option<MappingTable>,
        key: Option<&str>,
    ) -> StoreResult<Vec<MappingChange>> {
        Ok(self
            .lock()
            .mapping_log
            .iter()
            .filter(|c| table.is_none_or(|t| c.table == t))
            .filter(|c| key.is_none_or(|k| c.key == k))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Journal for MemoryStore {
    async fn append(&self, mut record: JournalRecord) -> StoreResult<u64> {
        let mut s = self.lock();
        record.seq = s.journal.len() as u64 + 1;
        let seq = record.seq;
        s.journal.push(record);
        Ok(seq)
    }

    async fn by_batch(&self, batch_id: &str) -> StoreResult<Vec<JournalRecord>> {
        Ok(self
            .lock()
            .journal
            .iter()
            .filter(|r| r.batch_id == batch_id)
            .cloned()
            .collect())
    }

    async fn by_entry(&self, key: &EntryKey) -> StoreResult<Vec<JournalRecord>> {
        Ok(self
            .lock()
            .journal
            .iter()
            .filter(|r| r.key == *key)
            .cloned()
            .collect())
    }

    async fn open_intent(&self, intent: &Intent) -> StoreResult<()> {
        let mut s = self.lock();
        // As SQLite's primary key: an intent id is written once.
        if s.intents.contains_key(&intent.id) {
            return Err(StoreError::Backend(format!(
                "intent {} is recorded already",
                intent.id
            )));
        }
        s.intents.insert(intent.id.clone(), (true, intent.clone()));
        Ok(())
    }

    async fn close_intent(&self, intent: &Intent) -> StoreResult<()> {
        // An unknown intent is nothing to close (as SQLite's UPDATE).
        if let Some(slot) = self.lock().intents.get_mut(&intent.id) {
            *slot = (false, intent.clone());
        }
        Ok(())
    }

    async fn open_intents(&self, key: &EntryKey) -> StoreResult<Vec<Intent>> {
        let mut out: Vec<Intent> = self
            .lock()
            .intents
            .values()
            .filter(|(open, i)| *open && i.key == *key)
            .map(|(_, i)| i.clone())
            .collect();
        out.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        Ok(out)
    }

    async fn stale_intents(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Intent>> {
        let mut out: Vec<Intent> = self
            .lock()
            .intents
            .values()
            .filter(|(open, i)| *open && i.opened_at < before)
            .map(|(_, i)| i.clone())
            .collect();
        out.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn mark_dirty(&self, week: &WorkerWeek, why: &str) -> StoreResult<()> {
        let mut s = self.lock();
        // Marked again: the reason changes, its place in the order stays.
        if let Some(mark) = s.dirty.get_mut(week) {
            mark.1 = why.to_string();
        } else {
            s.dirty_seq += 1;
            let n = s.dirty_seq;
            s.dirty.insert(week.clone(), (n, why.to_string()));
        }
        Ok(())
    }

    async fn dirty_weeks(&self, limit: usize) -> StoreResult<Vec<WorkerWeek>> {
        let s = self.lock();
        let mut weeks: Vec<(&u64, &WorkerWeek)> =
            s.dirty.iter().map(|(w, (n, _))| (n, w)).collect();
        weeks.sort();
        Ok(weeks
            .into_iter()
            .take(limit)
            .map(|(_, w)| w.clone())
            .collect())
    }

    async fn clear_dirty(&self, week: &WorkerWeek) -> StoreResult<()> {
        self.lock().dirty.remove(week);
        Ok(())
    }
}

#[async_trait]
impl Queue for MemoryStore {
    async fn send_batch(&self, messages: &[QueueMessage]) -> StoreResult<Vec<String>> {
        let now = Instant::now();
        let mut s = self.lock();
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            let id = new_id();
            s.queue_seq += 1;
            let seq = s.queue_seq;
            s.queue.insert(
                seq,
                Queued {
                    id: id.clone(),
                    message: m.clone(),
                    visible_at: now,
                    receive_count: 0,
                    receipt: None,
                },
            );
            ids.push(id);
        }
        Ok(ids)
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>> {
        let now = Instant::now();
        let until = deadline(now, visibility);
        let mut s = self.lock();
        // In send order, the visible ones; each hidden until `until` under
        // a new receipt (an older receipt no longer names it).
        Ok(s.queue
            .values_mut()
            .filter(|q| q.visible_at <= now)
            .take(max)
            .map(|q| {
                let receipt = new_id();
                q.visible_at = until;
                q.receive_count += 1;
                q.receipt = Some(receipt.clone());
                Received {
                    id: q.id.clone(),
                    receipt,
                    message: q.message.clone(),
                    receive_count: q.receive_count,
                }
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> StoreResult<()> {
        // A receipt that names nothing (settled already) deletes nothing,
        // as SQLite's DELETE and SQS's DeleteMessage.
        self.lock()
            .queue
            .retain(|_, q| q.receipt.as_deref() != Some(receipt));
        Ok(())
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let now = Instant::now();
        let mut s = self.lock();
        // A receipt that names nothing is nothing to retry (as SQLite).
        if let Some(q) = s.by_receipt(receipt).and_then(|n| s.queue.get_mut(&n)) {
            q.visible_at = deadline(now, delay);
        }
        Ok(())
    }

    async fn retry_uncounted(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let now = Instant::now();
        let mut s = self.lock();
        if let Some(q) = s.by_receipt(receipt).and_then(|n| s.queue.get_mut(&n)) {
            q.visible_at = deadline(now, delay);
            // This receive is not charged to the retry budget.
            q.receive_count = q.receive_count.saturating_sub(1);
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        receipt: &str,
        reason: &str,
        code: Option<&str>,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        // A settled message (or an outdated receipt) cannot be parked.
        let Some(q) = s.by_receipt(receipt).and_then(|n| s.queue.remove(&n)) else {
            return Err(StoreError::NotFound(format!(
                "message with receipt {receipt}"
            )));
        };
        // Parked again under the same id: the newer parking replaces it.
        s.dead.retain(|d| d.id != q.id);
        s.dead.push(DeadLetter {
            id: q.id,
            message: q.message,
            reason: reason.to_string(),
            code: code.map(str::to_string),
            receive_count: q.receive_count,
            parked_at: Utc::now(),
        });
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        Ok(self.lock().dead.iter().take(limit).cloned().collect())
    }

    async fn redrive(&self, id: &str) -> StoreResult<()> {
        let now = Instant::now();
        let mut s = self.lock();
        let Some(at) = s.dead.iter().position(|d| d.id == id) else {
            return Err(StoreError::NotFound(format!("dead letter {id}")));
        };
        let d = s.dead.remove(at);
        s.queue_seq += 1;
        let seq = s.queue_seq;
        // Back on the queue under its id, visible now, its receives not
        // carried over (as SQLite).
        s.queue.insert(
            seq,
            Queued {
                id: d.id,
                message: d.message,
                visible_at: now,
                receive_count: 0,
                receipt: None,
            },
        );
        Ok(())
    }

    async fn depth(&self) -> StoreResult<usize> {
        Ok(self.lock().queue.len())
    }
}

#[async_trait]
impl WatermarkStore for MemoryStore {
    async fn get_watermark(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.lock().watermarks.get(name).copied())
    }

    async fn set_watermark(&self, name: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.lock().watermarks.insert(name.to_string(), at);
        Ok(())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record(&self, mut record: AuditRecord) -> StoreResult<u64> {
        let mut s = self.lock();
        record.seq = s.audit.len() as u64 + 1;
        let seq = record.seq;
        s.audit.push(record);
        Ok(seq)
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        Ok(self
            .lock()
            .audit
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl PendingChanges for MemoryStore {
    async fn propose(&self, mut proposal: ProposedChange) -> StoreResult<ProposedChange> {
        let mut s = self.lock();
        s.proposal_seq += 1;
        proposal.id = s.proposal_seq;
        s.proposals.insert(proposal.id, proposal.clone());
        Ok(proposal)
    }

    async fn proposal(&self, id: u64) -> StoreResult<Option<ProposedChange>> {
        Ok(self.lock().proposals.get(&id).cloned())
    }

    async fn proposals(&self, status: Option<ProposalStatus>) -> StoreResult<Vec<ProposedChange>> {
        Ok(self
            .lock()
            .proposals
            .values()
            .rev()
            .filter(|p| status.is_none_or(|st| p.status == st))
            .cloned()
            .collect())
    }

    async fn settle(&self, proposal: &ProposedChange, expected: ProposalStatus) -> StoreResult<()> {
        let mut s = self.lock();
        let what = format!("mapping change proposal #{}", proposal.id);
        match s.proposals.get_mut(&proposal.id) {
            None => Err(StoreError::NotFound(what)),
            Some(stored) if stored.status != expected => Err(StoreError::Conflict(what)),
            Some(stored) => {
                *stored = proposal.clone();
                Ok(())
            }
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put_session(&self, key: &str, session: &StoredSession) -> StoreResult<()> {
        self.lock()
            .sessions
            .insert(key.to_string(), session.clone());
        Ok(())
    }

    /// An expired session is returned as kept (the caller checks
    /// `expires_at`), as DynamoDB's lazy TTL may.
    async fn session(&self, key: &str) -> StoreResult<Option<StoredSession>> {
        Ok(self.lock().sessions.get(key).cloned())
    }

    async fn delete_session(&self, key: &str) -> StoreResult<()> {
        self.lock().sessions.remove(key);
        Ok(())
    }
}

#[async_trait]
impl AlertStore for MemoryStore {
    async fn active_alerts(&self) -> StoreResult<Vec<AlertState>> {
        Ok(self
            .lock()
            .alerts
            .values()
            .filter(|a| a.cleared.is_none())
            .cloned()
            .collect())
    }

    async fn put_alert(&self, state: &AlertState) -> StoreResult<()> {
        let mut s = self.lock();
        s.alerts.insert(state.key.clone(), state.clone());
        // As SQLite: states cleared longer ago than the history keeps
        // (before this pass's `last_seen`) are dropped on write.
        let horizon = state.last_seen - chrono::TimeDelta::days(timepost::ports::KEEP_CLEARED_DAYS);
        s.alerts
            .retain(|_, a| a.cleared.is_none_or(|c| c >= horizon));
        Ok(())
    }

    async fn alert_history(&self, limit: usize) -> StoreResult<Vec<AlertState>> {
        let mut out: Vec<AlertState> = self.lock().alerts.values().cloned().collect();
        // Newest `last_seen` first; the key orders a tie.
        out.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.key.cmp(&b.key))
        });
        out.truncate(limit);
        Ok(out)
    }
}

#[async_trait]
impl ReconcileStore for MemoryStore {
    async fn save_run(&self, run: &RunSummary, breaks: &[Break]) -> StoreResult<u64> {
        let mut s = self.lock();
        let seq = s.runs.len() as u64 + 1;
        let mut stored = run.clone();
        stored.seq = seq;
        s.runs.push((stored, breaks.to_vec()));
        Ok(seq)
    }

    async fn runs(&self, limit: usize) -> StoreResult<Vec<RunSummary>> {
        Ok(self
            .lock()
            .runs
            .iter()
            .rev()
            .take(limit)
            .map(|(run, _)| run.clone())
            .collect())
    }

    async fn run_breaks(&self, seq: u64) -> StoreResult<Vec<Break>> {
        // An unknown run has no breaks (as SQLite).
        Ok(self
            .lock()
            .runs
            .iter()
            .find(|(run, _)| run.seq == seq)
            .map(|(_, breaks)| breaks.clone())
            .unwrap_or_default())
    }

    async fn add_resolution(&self, resolution: &Resolution) -> StoreResult<()> {
        self.lock().resolutions.push(resolution.clone());
        Ok(())
    }

    async fn resolutions(&self, break_id: Option<&str>) -> StoreResult<Vec<Resolution>> {
        Ok(self
            .lock()
            .resolutions
            .iter()
            .filter(|r| break_id.is_none_or(|id| r.break_id == id))
            .cloned()
            .collect())
    }
}
