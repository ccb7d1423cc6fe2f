//! The traits between the logic and the world. Two families implement them:
//! `local` (SQLite file, local directory, secrets file) and `aws` (DynamoDB,
//! SQS, S3, Secrets Manager, behind the `aws` feature). The engine and the
//! HTTP handlers only ever see these traits.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::mapping::{MappingChange, MappingTable, Mappings};
use crate::model::{ApprovalStatus, EntryKey, NormalisedEntry, Source};
use crate::state::{EntryState, Status};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the record since it was read.
    #[error("conflict: {0} was changed concurrently")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

// The worker-week is the model's; named here too, where the stores take it.
pub use crate::model::WorkerWeek;

/// One version of an entry as timepost received it (normalised), and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedVersion {
    pub received_at: DateTime<Utc>,
    pub entry: NormalisedEntry,
}

/// Entry state keyed by identity.
#[async_trait]
pub trait EntryStore: Send + Sync {
    async fn get(&self, key: &EntryKey) -> StoreResult<Option<EntryState>>;
    /// Write `state` if the stored revision is still `state.revision`
    /// (0 = must not exist yet); the stored revision becomes
    /// `state.revision + 1`, which is returned.
    async fn put(&self, state: &EntryState) -> StoreResult<u64>;
    /// Every entry of one worker-week (current versions).
    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>>;
    /// Entries in a status, oldest first, at most `limit`.
    async fn by_status(&self, status: Status, limit: usize) -> StoreResult<Vec<EntryState>>;
    /// One page of a status's entries, oldest first: those after `after`
    /// (the last entry of the previous page, [`StatusCursor::of`]; from the
    /// oldest when None), at most `limit`. What the exceptions and
    /// approvals pages list, a page at a time. This default reads the whole
    /// status; both real stores read the page over their status index.
    async fn by_status_after(
        &self,
        status: Status,
        after: Option<&StatusCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        Ok(self
            .by_status(status, usize::MAX)
            .await?
            .into_iter()
            .filter(|s| after.is_none_or(|a| StatusCursor::of(s) > *a))
            .take(limit)
            .collect())
    }
    /// Every entry (for reports and exports), in key order.
    async fn all(&self) -> StoreResult<Vec<EntryState>>;
    /// The aggregate rows (`crate::aggregates`) of one grain whose period
    /// starts in `from..=to`. A store that maintains them with every write
    /// (SQLite) reads its rows; this default folds every state.
    async fn aggregates(
        &self,
        grain: crate::aggregates::Grain,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<(crate::aggregates::AggKey, crate::aggregates::AggVals)>> {
        let all = self.all().await?;
        Ok(crate::aggregates::select(
            &crate::aggregates::fold(&all),
            grain,
            from,
            to,
        ))
    }
    /// Entries in key order after `after` (from the first when None), at
    /// most `limit`: one page of a listing, the last key the next page's
    /// cursor. This default reads every state; SQLite reads the page.
    async fn page(&self, after: Option<&EntryKey>, limit: usize) -> StoreResult<Vec<EntryState>> {
        let after = after.map(|k| k.to_string());
        Ok(self
            .all()
            .await?
            .into_iter()
            .filter(|s| after.as_ref().is_none_or(|a| s.entry.key.to_string() > *a))
            .take(limit)
            .collect())
    }
    /// The newest work date of any entry (None: no entries); this default
    /// reads every state.
    async fn newest_work_date(&self) -> StoreResult<Option<NaiveDate>> {
        Ok(self.all().await?.iter().map(|s| s.entry.work_date).max())
    }
    /// The KPI samples of the entries worked in `from..=to`; this default
    /// reads every state.
    async fn kpi_samples(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<crate::aggregates::Sample>> {
        let f = crate::kpis::Filter {
            from,
            to,
            ..Default::default()
        };
        Ok(self
            .all()
            .await?
            .iter()
            .filter(|s| f.in_period(s.entry.work_date))
            .filter_map(crate::aggregates::sample)
            .collect())
    }
    /// Recompute maintained aggregates from every state and say how many
    /// rows were wrong. A store that computes them on read (this default)
    /// has nothing to rebuild.
    async fn rebuild_aggregates(&self) -> StoreResult<crate::aggregates::Rebuild> {
        let all = self.all().await?;
        Ok(crate::aggregates::Rebuild {
            entries: all.len(),
            rows: crate::aggregates::fold(&all).len(),
            differed: 0,
            samples_differed: 0,
        })
    }
    /// Entries whose mapped keys (`crate::mapping::keys_of`) include one
    /// of `keys`, in key order after `after` (from the first when None),
    /// at most `limit`: what a changed mapping row can touch, or one page
    /// of a listing by worker or project. Both real stores read an index
    /// kept with every state write; this default reads every state.
    async fn by_mapped_keys(
        &self,
        keys: &[crate::mapping::MappedKey],
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        let after = after.map(|k| k.to_string());
        Ok(self
            .all()
            .await?
            .into_iter()
            .filter(|s| after.as_ref().is_none_or(|a| s.entry.key.to_string() > *a))
            .filter(|s| {
                crate::mapping::keys_of(&s.entry)
                    .iter()
                    .any(|k| keys.contains(k))
            })
            .take(limit)
            .collect())
    }
    /// Entries indexed under one of `keys` (as [`EntryStore::by_mapped_keys`])
    /// whose work date is in `from..=to`, in key order after `after`, at
    /// most `limit`: the part of a mapping change's reach one period of its
    /// preview lists. SQLite reads a range of its index by date;
    /// this default filters [`EntryStore::by_mapped_keys`] page by page (it
    /// reads what the keys index, whatever the dates).
    async fn by_mapped_keys_dated(
        &self,
        keys: &[crate::mapping::MappedKey],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        const PAGE: usize = 1_000;
        let mut out = Vec::new();
        let mut cursor = after.cloned();
        while out.len() < limit {
            let page = self.by_mapped_keys(keys, cursor.as_ref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            cursor = Some(last.entry.key.clone());
            let full = page.len() >= PAGE;
            out.extend(
                page.into_iter()
                    .filter(|s| s.entry.work_date >= from && s.entry.work_date <= to),
            );
            if !full {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }
    /// How many entries [`EntryStore::by_mapped_keys`] would list without
    /// a limit (counted over the index; this default reads every state).
    async fn count_by_mapped_keys(&self, keys: &[crate::mapping::MappedKey]) -> StoreResult<usize> {
        Ok(self.by_mapped_keys(keys, None, usize::MAX).await?.len())
    }
    /// Rewrite the mapped-key index from every state and say how many
    /// entries' index rows were missing or wrong. A store without one (this
    /// default) has nothing to rebuild.
    async fn rebuild_key_index(&self) -> StoreResult<crate::mapping::keys::IndexRebuild> {
        Ok(crate::mapping::keys::IndexRebuild::default())
    }
    /// Entries of one tracker workspace whose (current) work date is in
    /// `from..=to`, in key order, deleted ones included. What a poller
    /// compares a re-listed period with to find deletions (Harvest).
    async fn by_source_dates(
        &self,
        source: Source,
        workspace: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>>;
    /// One page of the entries a period touches: first those worked in
    /// `from..=to` (work date in it), in (work date, key) order; then those
    /// worked outside it whose posted lines are dated in it (an entry
    /// re-dated after posting, its new version not in the books yet), in
    /// key order. After `after` (the last entry of the previous page, see
    /// [`PeriodCursor::after`]; from the first when None), at most `limit`.
    /// What reconciliation, the period export, the accrual and a
    /// one-period archive snapshot read (see
    /// [`period_states`]). This default reads every state; SQLite reads the
    /// page over its work-date index.
    async fn by_work_dates(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: Option<&PeriodCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        let mut all: Vec<EntryState> = self
            .all()
            .await?
            .into_iter()
            .filter(|s| PeriodCursor::touches(s, from, to))
            .collect();
        all.sort_by_cached_key(|s| PeriodCursor::of(s, from, to).order());
        Ok(all
            .into_iter()
            .filter(|s| after.is_none_or(|a| PeriodCursor::of(s, from, to).order() > a.order()))
            .take(limit)
            .collect())
    }
    /// How many states [`each_period_page`] asks [`EntryStore::by_work_dates`]
    /// for at a time: unbounded by default (the default period read reads
    /// every state per call, so one call for the whole period is the
    /// cheapest); a store that reads a page over an index says
    /// [`PERIOD_PAGE`].
    fn period_page(&self) -> usize {
        usize::MAX
    }
    /// Claim an entry for processing (the idempotency-record design): true
    /// when this owner holds the claim until `ttl` passes or it is released.
    async fn claim(&self, key: &EntryKey, owner: &str, ttl: Duration) -> StoreResult<bool>;
    async fn release(&self, key: &EntryKey, owner: &str) -> StoreResult<()>;
    /// Keep one version of an entry as received (normalised), once per
    /// (`updated_at`, content hash): a redelivery of a kept version changes
    /// nothing. The entry state holds only the newest version; these are
    /// the history a snapshot carries.
    async fn record_version(
        &self,
        entry: &NormalisedEntry,
        received_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The versions of an entry kept by [`EntryStore::record_version`],
    /// oldest `updated_at` first.
    async fn versions(&self, key: &EntryKey) -> StoreResult<Vec<ReceivedVersion>>;
}

/// Where a listing by status ([`EntryStore::by_status_after`]) goes on:
/// the last entry a page returned, by when it last changed and its key
/// (the status index's order). Its text form, `<updated_at>|<key>`, is what
/// a page's "next" link carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatusCursor {
    pub updated_at: DateTime<Utc>,
    /// The entry's key (`EntryKey`'s text form).
    pub key: String,
}

impl StatusCursor {
    pub fn of(s: &EntryState) -> Self {
        Self {
            updated_at: s.updated_at,
            key: s.entry.key.to_string(),
        }
    }

    /// The cursor after the last entry of `page` (None when it is empty).
    pub fn after(page: &[EntryState]) -> Option<Self> {
        page.last().map(Self::of)
    }
}

impl std::fmt::Display for StatusCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}|{}",
            self.updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            self.key
        )
    }
}

impl std::str::FromStr for StatusCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a listing position (<time>|<entry key>)");
        let (at, key) = s.split_once('|').ok_or_else(bad)?;
        let updated_at = DateTime::parse_from_rfc3339(at)
            .map_err(|_| bad())?
            .with_timezone(&Utc);
        key.parse::<EntryKey>()?;
        Ok(Self {
            updated_at,
            key: key.to_string(),
        })
    }
}

/// Where a period read ([`EntryStore::by_work_dates`]) goes on: the last
/// entry a page returned, and which part of the period it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodCursor {
    /// The entry was worked outside the period (its posted lines are dated
    /// in it): the second part, in key order.
    pub booked_only: bool,
    pub work_date: NaiveDate,
    /// The entry's key (`EntryKey`'s text form).
    pub key: String,
}

impl PeriodCursor {
    /// The cursor after `s`, read for the period `from..=to`.
    pub fn of(s: &EntryState, from: NaiveDate, to: NaiveDate) -> Self {
        let d = s.entry.work_date;
        Self {
            booked_only: d < from || d > to,
            work_date: d,
            key: s.entry.key.to_string(),
        }
    }

    /// The cursor after the last entry of `page` (None when it is empty).
    pub fn after(page: &[EntryState], from: NaiveDate, to: NaiveDate) -> Option<Self> {
        page.last().map(|s| Self::of(s, from, to))
    }

    /// Whether `s` belongs to the period `from..=to`: worked in it, or a
    /// posted line of it dated in it.
    pub fn touches(s: &EntryState, from: NaiveDate, to: NaiveDate) -> bool {
        let within = |d: NaiveDate| d >= from && d <= to;
        within(s.entry.work_date) || s.posted_lines.iter().any(|l| within(l.txn_date))
    }

    /// The read order: worked in the period by (work date, key), then the
    /// rest by key.
    pub fn order(&self) -> (bool, Option<NaiveDate>, String) {
        (
            self.booked_only,
            (!self.booked_only).then_some(self.work_date),
            self.key.clone(),
        )
    }
}

/// Every entry of `status`, oldest first, read a page at a time over
/// [`EntryStore::by_status_after`] (what a bulk action over a status acts
/// on; memory: the entries returned).
pub async fn status_states(store: &dyn EntryStore, status: Status) -> StoreResult<Vec<EntryState>> {
    const STEP: usize = 1_000;
    let mut out = Vec::new();
    let mut after: Option<StatusCursor> = None;
    loop {
        let page = store.by_status_after(status, after.as_ref(), STEP).await?;
        let full = page.len() >= STEP;
        after = StatusCursor::after(&page);
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// How many states one page of a period read holds.
pub const PERIOD_PAGE: usize = 500;

/// Every entry the period `from..=to` touches ([`PeriodCursor::touches`]),
/// read page by page ([`EntryStore::period_page`] states a page); `each`
/// gets each page in turn (memory: one page).
pub async fn each_period_page<F, E>(
    store: &dyn EntryStore,
    from: NaiveDate,
    to: NaiveDate,
    mut each: F,
) -> Result<(), E>
where
    F: FnMut(Vec<EntryState>) -> Result<(), E> + Send,
    E: From<StoreError>,
{
    let mut after: Option<PeriodCursor> = None;
    let size = store.period_page().max(1);
    loop {
        let page = store.by_work_dates(from, to, after.as_ref(), size).await?;
        let full = page.len() >= size;
        let next = PeriodCursor::after(&page, from, to);
        if !page.is_empty() {
            each(page)?;
        }
        match next {
            Some(c) if full => after = Some(c),
            _ => return Ok(()),
        }
    }
}

/// Every entry the period `from..=to` touches, in the read's order (for a
/// caller that needs them all at once: the period, not the store).
pub async fn period_states(
    store: &dyn EntryStore,
    from: NaiveDate,
    to: NaiveDate,
) -> StoreResult<Vec<EntryState>> {
    let mut out = Vec::new();
    each_period_page(store, from, to, |page| {
        out.extend(page);
        Ok::<(), StoreError>(())
    })
    .await?;
    Ok(out)
}

/// Mapping tables and their change log.
#[async_trait]
pub trait MappingStore: Send + Sync {
    async fn snapshot(&self) -> StoreResult<Mappings>;
    /// The change-log sequence number of the newest change (0 when none):
    /// cheap, so readers can cache a snapshot until it moves.
    async fn version(&self) -> StoreResult<u64>;
    /// Apply all changes in one transaction; returns them with their
    /// sequence numbers.
    async fn apply(&self, changes: Vec<MappingChange>) -> StoreResult<Vec<MappingChange>>;
    async fn history(
        &self,
        table: Option<MappingTable>,
        key: Option<&str>,
    ) -> StoreResult<Vec<MappingChange>>;
}

/// One posting operation, as recorded for reconciliation and rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub seq: u64,
    pub batch_id: String,
    pub key: EntryKey,
    pub version: crate::model::Version,
    pub operation: String,
    pub request_id: String,
    pub records: Vec<crate::ledger::RecordRef>,
    pub lines: Vec<crate::ledger::PostingLine>,
    pub ledger: String,
    pub at: DateTime<Utc>,
    /// The write-ahead intent this operation carried out ("" before
    /// intents existed, and for rollbacks).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub intent: String,
}

/// The posting journal (what was done), the write-ahead intents (what is
/// about to be done) and the worker-weeks whose convergence did not finish.
#[async_trait]
pub trait Journal: Send + Sync {
    async fn append(&self, record: JournalRecord) -> StoreResult<u64>;
    async fn by_batch(&self, batch_id: &str) -> StoreResult<Vec<JournalRecord>>;
    async fn by_entry(&self, key: &EntryKey) -> StoreResult<Vec<JournalRecord>>;
    /// Record an intent before its ledger call (durably: this is what a
    /// crash after the call is resolved from).
    async fn open_intent(&self, intent: &crate::intent::Intent) -> StoreResult<()>;
    /// Record the intent's outcome (not `Open`); it is no longer open.
    async fn close_intent(&self, intent: &crate::intent::Intent) -> StoreResult<()>;
    /// The entry's open intents, oldest first.
    async fn open_intents(&self, key: &EntryKey) -> StoreResult<Vec<crate::intent::Intent>>;
    /// Open intents of any entry opened before `before`, oldest first, at
    /// most `limit` (what the sweep resolves).
    async fn stale_intents(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<crate::intent::Intent>>;
    /// Remember that `week` must be converged again (a settle of it did
    /// not finish).
    async fn mark_dirty(&self, week: &WorkerWeek, why: &str) -> StoreResult<()>;
    /// Weeks marked dirty, oldest first, at most `limit`.
    async fn dirty_weeks(&self, limit: usize) -> StoreResult<Vec<WorkerWeek>>;
    /// `week` converged: forget the mark.
    async fn clear_dirty(&self, week: &WorkerWeek) -> StoreResult<()>;
}

/// What travels on the ingest queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueMessage {
    /// A version of an entry, as received.
    Entry {
        entry: Box<NormalisedEntry>,
        received_at: DateTime<Utc>,
    },
    /// A manager's decision on a user's time in a date range.
    Approval {
        source: Source,
        workspace: String,
        user_id: String,
        from: NaiveDate,
        to: NaiveDate,
        status: ApprovalStatus,
        by: String,
    },
    /// Re-evaluate one entry's current version (after a fix).
    Redrive { key: EntryKey, by: String },
}

impl QueueMessage {
    /// Messages for the same entry share a group, so a FIFO queue keeps
    /// their order and a standard one can at least batch by it. Parts are
    /// escaped as in an entry key, so no two users' approvals (nor an
    /// approval and an entry) share a group by accident.
    pub fn group(&self) -> String {
        match self {
            QueueMessage::Entry { entry, .. } => entry.key.to_string(),
            QueueMessage::Redrive { key, .. } => key.to_string(),
            QueueMessage::Approval {
                source,
                workspace,
                user_id,
                ..
            } => format!(
                "{source}:{}:user:{}",
                crate::model::escape_key_part(workspace),
                crate::model::escape_key_part(user_id)
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub message: QueueMessage,
    pub receive_count: u32,
}

/// A message parked in the dead-letter queue, with why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub message: QueueMessage,
    pub reason: String,
    pub code: Option<String>,
    pub receive_count: u32,
    pub parked_at: DateTime<Utc>,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Durably enqueue; returns only once every message is stored.
    async fn send_batch(&self, messages: &[QueueMessage]) -> StoreResult<Vec<String>>;
    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>>;
    async fn delete(&self, receipt: &str) -> StoreResult<()>;
    /// Make a received message visible again after `delay` (a retry).
    async fn retry_later(&self, receipt: &str, delay: Duration) -> StoreResult<()>;
    /// As [`Queue::retry_later`], without counting this receive toward the
    /// message's retry budget: for a message that waited on another
    /// worker (`Busy`) and never failed. Queues that cannot un-count a
    /// receive put a copy back and delete the received one.
    async fn retry_uncounted(&self, receipt: &str, delay: Duration) -> StoreResult<()>;
    /// Move a received message to the dead-letter queue with a reason.
    async fn dead_letter(&self, receipt: &str, reason: &str, code: Option<&str>)
        -> StoreResult<()>;
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>>;
    /// Put one dead letter back on the ingest queue.
    async fn redrive(&self, id: &str) -> StoreResult<()>;
    /// Messages waiting (visible or in flight) on the ingest queue.
    async fn depth(&self) -> StoreResult<usize>;
    /// How many messages are parked in the dead-letter queue, for the
    /// dashboard and the report (SQS: the queue's approximate count). The
    /// default reads them all; the adapters count without reading.
    async fn dead_letter_count(&self) -> StoreResult<usize> {
        Ok(self.dead_letters(usize::MAX).await?.len())
    }
}

/// Poller watermarks per source (and the other named instants timepost
/// keeps: the books watch, alert digests). An instant reads back exactly as
/// written, to the nanosecond: a watermark is a cursor.
#[async_trait]
pub trait WatermarkStore: Send + Sync {
    async fn get_watermark(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>>;
    async fn set_watermark(&self, name: &str, at: DateTime<Utc>) -> StoreResult<()>;
}

/// Object storage for archives, reports and exports.
#[async_trait]
pub trait Archive: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()>;
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>>;
    /// The storage class `key` is kept in (S3: `STANDARD`, `GLACIER_IR`,
    /// ...); None where storage has no classes (a local directory) or the
    /// key is absent.
    async fn storage_class(&self, _key: &str) -> StoreResult<Option<String>> {
        Ok(None)
    }
}

/// Secrets (webhook secrets, OAuth tokens). Values never reach a log line.
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn get(&self, name: &str) -> StoreResult<Option<String>>;
    async fn put(&self, name: &str, value: &str) -> StoreResult<()>;
    /// Drop any cached copy of `name`, so the next `get` reads the store
    /// itself: a value refused by its server may have been rotated by
    /// another instance. Stores without a cache have nothing to do.
    async fn refresh(&self, _name: &str) -> StoreResult<()> {
        Ok(())
    }
}

/// One console or admin-API action, as audited: who, when, what, on which
/// entry, and the details (a discard's reason, a redrive's scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Assigned by the log (0 before it is recorded).
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub who: String,
    pub role: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    pub detail: String,
}

/// The append-only log of what people did through the console and API.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Append one record; returns its sequence number: 1 for the first
    /// record, one more for each after it.
    async fn record(&self, record: AuditRecord) -> StoreResult<u64>;
    /// The newest records first, at most `limit`.
    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditRecord>>;
}

/// Where a proposed mapping change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Waiting for a second admin; the mappings do not have it yet.
    Pending,
    /// In the mappings (at once, below the threshold, or once approved).
    Applied,
    /// Refused by a second admin; never applied.
    Rejected,
}

impl ProposalStatus {
    pub const ALL: &'static [ProposalStatus] = &[
        ProposalStatus::Pending,
        ProposalStatus::Applied,
        ProposalStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Applied => "applied",
            ProposalStatus::Rejected => "rejected",
        }
    }
}

/// A mapping change (console, inline fix or CLI import) with the impact
/// preview it was saved with. Kept for every reviewed change (applied at
/// once or after approval, or rejected), so the history shows what the
/// change was expected to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedChange {
    /// Assigned by the store (0 before it is stored).
    pub id: u64,
    /// The change as proposed (`seq` 0; `changed_by` is the proposer,
    /// `changed_at` when it was proposed).
    pub change: MappingChange,
    /// Further changes proposed together with `change` (a CSV import),
    /// applied with it in one transaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub further: Vec<MappingChange>,
    pub preview: crate::impact::ImpactPreview,
    pub status: ProposalStatus,
    /// Whether the threshold asked for a second admin.
    pub needs_approval: bool,
    /// Who approved or rejected it, when, and (rejection) why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// The change-log sequence number once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_seq: Option<u64>,
}

impl ProposedChange {
    /// Every change of the proposal, `change` first.
    pub fn changes(&self) -> Vec<MappingChange> {
        std::iter::once(self.change.clone())
            .chain(self.further.iter().cloned())
            .collect()
    }

    /// The proposal in words: the change, or how many with the first.
    pub fn describe(&self) -> String {
        match self.further.len() {
            0 => self.change.describe(),
            n => format!(
                "{} mapping changes ({}, and {n} more)",
                n + 1,
                self.change.describe()
            ),
        }
    }
}

/// A console sign-in session as a [`SessionStore`] keeps it. The role is
/// its name (`admin`, `finance`, …), read back through the console's role
/// list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    pub name: String,
    pub role: String,
    /// Signed in as a named person (not the shared admin token).
    pub named: bool,
    /// The session's CSRF token for console forms.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Console sessions kept where every instance of the admin function sees
/// them (DynamoDB), so a browser's requests may land on any instance.
/// Keyed by the SHA-256 of the session cookie, never the cookie itself: a
/// read of the table does not yield a live session. A store may keep an
/// expired session past its expiry (DynamoDB's TTL deletes lazily): the
/// caller checks `expires_at`.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn put_session(&self, key: &str, session: &StoredSession) -> StoreResult<()>;
    async fn session(&self, key: &str) -> StoreResult<Option<StoredSession>>;
    async fn delete_session(&self, key: &str) -> StoreResult<()>;
}

/// Mapping changes with their previews, and the ones waiting for a second
/// admin.
#[async_trait]
pub trait PendingChanges: Send + Sync {
    /// Store a new proposal; returns it with its id.
    async fn propose(&self, proposal: ProposedChange) -> StoreResult<ProposedChange>;
    async fn proposal(&self, id: u64) -> StoreResult<Option<ProposedChange>>;
    /// Proposals in `status` (every one when None), newest first.
    async fn proposals(&self, status: Option<ProposalStatus>) -> StoreResult<Vec<ProposedChange>>;
    /// Replace proposal `proposal.id` if its stored status is still
    /// `expected` (else `Conflict`: someone decided it meanwhile); what
    /// makes two approvals of one change apply it once. A proposal that
    /// does not exist is an error, and nothing is created.
    async fn settle(&self, proposal: &ProposedChange, expected: ProposalStatus) -> StoreResult<()>;
}

/// One notice to people: an alert, a digest of alerts, an export done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub subject: String,
    /// Plain text, links written out.
    pub text: String,
    /// Who should get it besides the configured recipients (a project
    /// owner's e-mail); channels without addresses mention them instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_to: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{channel}: {message}")]
pub struct NotifyError {
    pub channel: &'static str,
    pub message: String,
}

/// Where notices go: a chat webhook, e-mail over SMTP, an SNS topic.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// A short name for logs (`webhook`, `smtp`, `sns`).
    fn channel(&self) -> &'static str;
    /// Deliver one notice; `Ok` once the receiver accepted it.
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError>;
}

/// What timepost remembers about one alert condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    pub key: String,
    pub rule: String,
    pub said: String,
    pub link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When the condition (last) started.
    pub first_fired: DateTime<Utc>,
    /// The newest pass that still found it.
    pub last_seen: DateTime<Utc>,
    /// When a notice about it went out (`None`: pending, e.g. for the
    /// digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<DateTime<Utc>>,
    /// When a pass no longer found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared: Option<DateTime<Utc>>,
}

/// How long a cleared alert stays in an [`AlertStore`]'s history: every
/// adapter drops cleared states older than this on write.
pub const KEEP_CLEARED_DAYS: i64 = 30;

/// Alert state, condition key → state. A cleared state stays for a while
/// (history), then the store may drop it.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Every condition not cleared.
    async fn active_alerts(&self) -> StoreResult<Vec<AlertState>>;
    /// Write (replace) the state of `state.key`.
    async fn put_alert(&self, state: &AlertState) -> StoreResult<()>;
    /// Recent states, cleared ones included, newest `last_seen` first.
    async fn alert_history(&self, limit: usize) -> StoreResult<Vec<AlertState>>;
}
