//! The engine: carries one queue message through claim → decide → post →
//! record, through the ports only. The same engine runs in `timepost serve`,
//! `timepost demo` and the `sync` Lambda function.
//!
//! Order of effects for one entry, chosen so a crash at any point is safe:
//! 1. claim the worker-week(s) the entry is and was in, in a fixed order,
//!    then the entry (conditional writes under a lease renewed while the
//!    work goes on; a dead worker's claims lapse or are taken over), so
//!    only one worker plans a given worker-week at a time;
//! 2. settle the entry's open intents (left by a crash or an uncertain
//!    outcome): the journal's answer, else the books' (`crate::intent`);
//! 3. decide (pure);
//! 4. record a write-ahead intent, call the ledger with the intent's
//!    idempotency key and fingerprints; an uncertain outcome is settled by
//!    reading the books before anything is sent again;
//! 5. append the posting journal, write the entry state (optimistic
//!    revision check), close the intent;
//! 6. converge the worker-week: every posted entry whose share of the
//!    week's split changed is updated — on every message for the week,
//!    duplicates included, so a week whose convergence was cut short is
//!    finished by the retry; a week that still could not converge is
//!    marked dirty and converged again by [`Engine::sweep`];
//! 7. release the claims.

pub mod backlog;
pub mod books_watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::WorkerConfig;
use crate::exceptions::Exception;
use crate::exceptions::ExceptionCode;
use crate::intent::{Actual, Intent, IntentOutcome, Resolution};
use crate::mapping::Mappings;
use crate::model::{ApprovalStatus, EntryKey, NormalisedEntry};
use crate::pipeline::{self, Decision, IgnoreReason, NoTrace, WeekPlan};
use crate::ports::{
    EntryStore, Journal, JournalRecord, MappingStore, QueueMessage, StoreError, WorkerWeek,
};
use crate::rules::Rules;
use crate::state::{EntryState, Status};
use crate::week_claim::{week_claim_key, HeldWeeks};
use timepost_core::ledger::{Ledger, LedgerError, LedgerOp, LedgerRequest, PostingLine, RecordRef};

/// A new import-batch id: one per received batch, recorded in the journal
/// (what `timepost rollback --batch` undoes).
pub fn new_batch_id() -> String {
    format!(
        "b-{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another worker holds the entry or its worker-week; try the message
    /// again later.
    #[error("{} is being processed by another worker", crate::week_claim::describe_claim(.0))]
    Busy(EntryKey),
    /// The ledger kept failing transiently; try the message again later.
    #[error("ledger unavailable for {key}: {error}")]
    LedgerUnavailable { key: EntryKey, error: LedgerError },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The books could not be read for the scheduled pass over them
    /// (`crate::engine::books_watch`); the pass is tried again next time.
    #[error("could not read the books: {0}")]
    Books(LedgerError),
}

impl EngineError {
    /// Suggested delay before the message is tried again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EngineError::LedgerUnavailable {
                error: LedgerError::RateLimited(d),
                ..
            } => *d,
            _ => None,
        }
    }
}

/// What happened to one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub key: EntryKey,
    pub status: Status,
    /// What the ledger was asked to do, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_op: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Exception>,
    /// True for an entry re-posted because a sibling changed its week.
    pub sibling: bool,
}

impl Outcome {
    pub fn is_duplicate(&self) -> bool {
        self.ignored == Some(IgnoreReason::Duplicate.describe())
    }
    pub fn is_stale(&self) -> bool {
        self.ignored == Some(IgnoreReason::Stale.describe())
    }
}

/// Running counts for the KPIs (exported as metrics).
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    pub stale: AtomicU64,
    pub ledger_calls: AtomicU64,
    pub ledger_retries: AtomicU64,
    /// Reads of the books (to settle an uncertain outcome or a sweep).
    pub ledger_reads: AtomicU64,
    /// Intents settled from the journal or the books after a crash or an
    /// uncertain outcome.
    pub intents_resolved: AtomicU64,
    /// Records found twice with one fingerprint (a vendor that ignored
    /// the idempotency key): left for reconciliation, logged.
    pub stray_records: AtomicU64,
    pub posted: AtomicU64,
    pub exceptions: AtomicU64,
    pub held: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BTreeMap::from([
            ("messages_received", g(&self.received)),
            ("duplicates_ignored", g(&self.duplicates)),
            ("stale_versions_ignored", g(&self.stale)),
            ("ledger_calls", g(&self.ledger_calls)),
            ("ledger_retries", g(&self.ledger_retries)),
            ("ledger_reads", g(&self.ledger_reads)),
            ("intents_resolved", g(&self.intents_resolved)),
            ("stray_records", g(&self.stray_records)),
            ("postings", g(&self.posted)),
            ("exceptions_raised", g(&self.exceptions)),
            ("holds", g(&self.held)),
        ])
    }
}

pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

pub struct Engine {
    pub entries: Arc<dyn EntryStore>,
    pub mappings: Arc<dyn MappingStore>,
    pub journal: Arc<dyn Journal>,
    pub ledger: Arc<dyn Ledger>,
    pub rules: Arc<Rules>,
    pub settings: WorkerConfig,
    pub counters: Arc<Counters>,
    /// Identifies this worker in claims.
    pub owner: String,
    /// The mappings, re-read only when the change log moves.
    cached_mappings: tokio::sync::Mutex<Option<Arc<Mappings>>>,
    /// Where the pass over changes made in the books keeps its watermark
    /// and audit lines ([`Engine::watch_books`]); without it the sweep
    /// does not look at the books.
    pub(crate) books_watch: std::sync::OnceLock<crate::engine::books_watch::BooksWatch>,
}

/// Claims expire by themselves so a crashed worker never blocks an entry
/// for long; a live worker renews its claims every third of this while it
/// works (see [`Lease`]).
/// Entries [`Engine::recheck_held_for`] reads a page at a time.
const RECHECK_PAGE: usize = 1_000;

pub const CLAIM_TTL: Duration = Duration::from_secs(30);

/// How long an intent may stay open before the sweep takes it for the
/// leftover of a crash (its worker would have renewed its claims and
/// closed it by then).
pub const STALE_INTENT: Duration = Duration::from_secs(90);

/// The claim owner of a worker in this process: `pid:<pid>:<uuid>`, so a
/// local store can tell a dead process's claims from a live one's
/// (`crate::local::sqlite::owner_is_dead`).
pub fn new_owner() -> String {
    format!(
        "pid:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Claims held while a message is worked on, renewed in the background
/// every third of [`CLAIM_TTL`] until dropped. A crashed worker stops
/// renewing, so its claims lapse within one TTL.
struct Lease(tokio::task::JoinHandle<()>);

impl Lease {
    fn new(entries: Arc<dyn EntryStore>, owner: String, keys: Vec<EntryKey>) -> Self {
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(CLAIM_TTL / 3).await;
                for k in &keys {
                    if let Err(e) = entries.claim(k, &owner, CLAIM_TTL).await {
                        tracing::warn!(claim = %k, error = %e, "could not renew claim");
                    }
                }
            }
        }))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    pub fn new(
        entries: Arc<dyn EntryStore>,
        mappings: Arc<dyn MappingStore>,
        journal: Arc<dyn Journal>,
        ledger: Arc<dyn Ledger>,
        rules: Rules,
        settings: WorkerConfig,
    ) -> Self {
        Self {
            entries,
            mappings,
            journal,
            ledger,
            rules: Arc::new(rules),
            settings,
            counters: Arc::new(Counters::default()),
            owner: new_owner(),
            cached_mappings: tokio::sync::Mutex::new(None),
            books_watch: std::sync::OnceLock::new(),
        }
    }

    /// The current mappings: the cached snapshot while the change log has
    /// not moved, else a fresh read.
    pub async fn mappings_now(&self) -> Result<Arc<Mappings>, StoreError> {
        let version = self.mappings.version().await?;
        let mut slot = self.cached_mappings.lock().await;
        if let Some(m) = slot.as_ref().filter(|m| m.version == version) {
            return Ok(m.clone());
        }
        let fresh = Arc::new(self.mappings.snapshot().await?);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Handle one queue message within import batch `batch_id`.
    pub async fn handle(
        &self,
        message: &QueueMessage,
        batch_id: &str,
    ) -> Result<Vec<Outcome>, EngineError> {
        bump(&self.counters.received);
        let mappings = self.mappings_now().await?;
        let mappings = mappings.as_ref();
        match message {
            QueueMessage::Entry { entry, received_at } => {
                // Every version received is kept as received (the history
                // a period snapshot carries), whatever happens to it next.
                self.entries.record_version(entry, *received_at).await?;
                // This version's week and the stored version's (read before
                // the claims; `settle_week` checks it is still the one held).
                let mut weeks = BTreeSet::from([WorkerWeek::of(entry)]);
                if let Some(p) = self.entries.get(&entry.key).await? {
                    weeks.insert(WorkerWeek::of(&p.entry));
                }
                self.with_weeks(weeks, |held| {
                    self.with_claim(&entry.key, || self.entry(entry, mappings, batch_id, held))
                })
                .await
            }
            QueueMessage::Redrive { key, by } => {
                tracing::info!(entry = %key, by, "redrive");
                let weeks = self.weeks_of(key).await?;
                self.with_weeks(weeks, |held| {
                    self.with_claim(key, || self.redrive(key, mappings, batch_id, held))
                })
                .await
            }
            QueueMessage::Approval {
                source,
                workspace,
                user_id,
                from,
                to,
                status,
                by,
            } => {
                tracing::info!(%source, workspace, user_id, %from, %to, ?status, by, "approval");
                let mut out = Vec::new();
                for ww in WorkerWeek::spanning(*source, workspace, user_id, *from, *to) {
                    let status = *status;
                    // One claim on the week for all its entries.
                    let settled = self
                        .with_weeks(BTreeSet::from([ww.clone()]), |held| async move {
                            let mut out = Vec::new();
                            for st in self.entries.week(&ww).await? {
                                let d = st.entry.work_date;
                                if d < *from || d > *to {
                                    continue;
                                }
                                let key = st.entry.key.clone();
                                out.extend(
                                    self.with_claim(&key, || {
                                        self.approve(&key, status, mappings, batch_id, &held)
                                    })
                                    .await?,
                                );
                            }
                            Ok(out)
                        })
                        .await?;
                    out.extend(settled);
                }
                Ok(out)
            }
        }
    }

    /// The week the stored version of `key` is in (none when unknown).
    async fn weeks_of(&self, key: &EntryKey) -> Result<BTreeSet<WorkerWeek>, EngineError> {
        Ok(self
            .entries
            .get(key)
            .await?
            .map(|s| WorkerWeek::of(&s.entry))
            .into_iter()
            .collect())
    }

    /// Run `f` holding the claims of `weeks`, taken in their sorted order
    /// (so contenders for the same weeks collide on the first, never hold
    /// one each) and released afterwards. A week held elsewhere is
    /// `Busy`: the message is retried shortly, as for a busy entry.
    pub(crate) async fn with_weeks<T, F, Fut>(
        &self,
        weeks: BTreeSet<WorkerWeek>,
        f: F,
    ) -> Result<T, EngineError>
    where
        F: FnOnce(HeldWeeks) -> Fut,
        Fut: std::future::Future<Output = Result<T, EngineError>>,
    {
        let held = HeldWeeks::new(weeks);
        let mut taken = Vec::new();
        let mut refused = None;
        for week in held.iter() {
            let key = week_claim_key(week);
            match self.entries.claim(&key, &self.owner, CLAIM_TTL).await {
                Ok(true) => taken.push(key),
                Ok(false) => {
                    refused = Some(Err(EngineError::Busy(key)));
                    break;
                }
                Err(e) => {
                    refused = Some(Err(e.into()));
                    break;
                }
            }
        }
        let result = match refused {
            Some(busy) => busy,
            None => {
                let _lease = Lease::new(self.entries.clone(), self.owner.clone(), taken.clone());
                f(held).await
            }
        };
        for key in taken.iter().rev() {
            // A failed release only delays the next claim until the TTL passes.
            if let Err(e) = self.entries.release(key, &self.owner).await {
                tracing::warn!(week = %key, error = %e, "could not release week claim");
            }
        }
        result
    }

    async fn with_claim<F, Fut>(&self, key: &EntryKey, f: F) -> Result<Vec<Outcome>, EngineError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Outcome>, EngineError>>,
    {
        if !self.entries.claim(key, &self.owner, CLAIM_TTL).await? {
            return Err(EngineError::Busy(key.clone()));
        }
        let result = {
            let _lease = Lease::new(self.entries.clone(), self.owner.clone(), vec![key.clone()]);
            f().await
        };
        // A failed release only delays the next claim until the TTL passes.
        if let Err(e) = self.entries.release(key, &self.owner).await {
            tracing::warn!(entry = %key, error = %e, "could not release claim");
        }
        result
    }

    async fn entry(
        &self,
        entry: &NormalisedEntry,
        mappings: &Mappings,
        batch_id: &str,
        held: HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        let stored = self.entries.get(&entry.key).await?;
        // An entry whose first posting was cut short has a state only from
        // here on: it is settled in full, never taken for a duplicate.
        let first = stored.is_none();
        let prior = self.settle_intents(&entry.key, stored, Some(entry)).await?;
        if let Some(p) = prior.as_ref().filter(|_| !first) {
            // A redriven or repeated version of an entry that is still
            // waiting for a fix is evaluated again rather than ignored.
            if let Some(reason) = pipeline::version_gate(entry, p) {
                bump(if reason == IgnoreReason::Duplicate {
                    &self.counters.duplicates
                } else {
                    &self.counters.stale
                });
                tracing::debug!(entry = %entry.key, version = %entry.version, reason = reason.describe(), "ignored");
                let mut out = vec![Outcome {
                    key: entry.key.clone(),
                    status: p.status(),
                    ledger_op: None,
                    ignored: Some(reason.describe()),
                    reason: p.reason.clone(),
                    sibling: false,
                }];
                // Level-triggered: whatever this message's fate, the
                // stored version's week must hold what it should (a retry
                // after a settle cut short finishes it here).
                let week = WorkerWeek::of(&p.entry);
                out.extend(self.converge_week(&week, mappings, batch_id, &held).await?);
                return Ok(out);
            }
        }
        let now = Utc::now();
        let mut state = match prior.clone() {
            Some(mut s) => {
                s.entry = entry.clone();
                s
            }
            None => EntryState::new(entry.clone(), now),
        };
        if entry.approval == ApprovalStatus::Approved {
            state.approved_hash = Some(entry.version.content_hash.clone());
        }
        let old_week = prior
            .as_ref()
            .map(|p| WorkerWeek::of(&p.entry))
            .filter(|w| *w != WorkerWeek::of(entry));
        self.settle_week(state, old_week, mappings, batch_id, &held)
            .await
    }

    async fn redrive(
        &self,
        key: &EntryKey,
        mappings: &Mappings,
        batch_id: &str,
        held: HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        let state = self.entries.get(key).await?;
        let state = self
            .settle_intents(key, state, None)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("entry {key}")))?;
        self.settle_week(state, None, mappings, batch_id, &held)
            .await
    }

    async fn approve(
        &self,
        key: &EntryKey,
        status: ApprovalStatus,
        mappings: &Mappings,
        batch_id: &str,
        held: &HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        let state = self.entries.get(key).await?;
        let Some(mut state) = self.settle_intents(key, state, None).await? else {
            return Ok(Vec::new());
        };
        // The approval event is the tracker's word on the current version.
        state.approved_hash = match status {
            ApprovalStatus::Approved => Some(state.entry.version.content_hash.clone()),
            _ => None,
        };
        state.entry.approval = status;
        self.settle_week(state, None, mappings, batch_id, held)
            .await
    }

    /// Re-evaluate every held entry (on schedule; after a mapping change
    /// [`Engine::recheck_held_for`] takes only the entries it can release).
    pub async fn recheck_held(&self, batch_id: &str) -> Result<Vec<Outcome>, EngineError> {
        let held = self.entries.by_status(Status::Held, 10_000).await?;
        self.redrive_each(
            held.into_iter()
                .map(|st| (st.entry.key.clone(), WorkerWeek::of(&st.entry))),
            batch_id,
        )
        .await
    }

    /// Redrive each entry under its week's and its own claim, skipping one
    /// another worker holds (the next run takes it).
    async fn redrive_each(
        &self,
        keys: impl IntoIterator<Item = (EntryKey, WorkerWeek)>,
        batch_id: &str,
    ) -> Result<Vec<Outcome>, EngineError> {
        let mappings = self.mappings_now().await?;
        let mappings = mappings.as_ref();
        let mut out = Vec::new();
        for (key, week) in keys {
            let weeks = BTreeSet::from([week]);
            match self
                .with_weeks(weeks, |held| {
                    self.with_claim(&key, || self.redrive(&key, mappings, batch_id, held))
                })
                .await
            {
                Ok(o) => out.extend(o),
                Err(EngineError::Busy(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Re-evaluate the held entries `changes` (just applied) can release
    /// ([`held_released_by`]), not every held entry. The scheduled run
    /// keeps [`Engine::recheck_held`] (every held entry).
    pub async fn recheck_held_for(
        &self,
        changes: &[crate::mapping::MappingChange],
        batch_id: &str,
    ) -> Result<Vec<Outcome>, EngineError> {
        let keys = held_released_by(self.entries.as_ref(), changes).await?;
        self.redrive_each(keys, batch_id).await
    }

    /// Finish what crashes and cut-short settles left: settle intents that
    /// stayed open longer than [`STALE_INTENT`] (their worker died or gave
    /// up), then converge every worker-week marked dirty. Run on a
    /// schedule (locally beside the held re-check); a week or entry held by
    /// a live worker is left for the next run.
    ///
    /// When the engine watches the books ([`Engine::watch_books`]) and
    /// their last pass is [`crate::engine::books_watch::BOOKS_EVERY`] old, the
    /// sweep first reads what changed in the books outside timepost and
    /// marks the weeks of our records that changed dirty
    /// ([`Engine::watch_books_pass`]), so the same run converges them.
    pub async fn sweep(&self, batch_id: &str) -> Result<SweepReport, EngineError> {
        self.sweep_every(
            batch_id,
            STALE_INTENT,
            crate::engine::books_watch::BOOKS_EVERY,
        )
        .await
    }

    /// [`Engine::sweep`], taking intents open for longer than `age` (and
    /// not reading the books' changes).
    pub async fn sweep_older_than(
        &self,
        batch_id: &str,
        age: Duration,
    ) -> Result<SweepReport, EngineError> {
        self.sweep_inner(batch_id, age, None).await
    }

    /// [`Engine::sweep`], taking intents open for longer than `age` and
    /// reading the books' changes when their last pass is `books_every`
    /// old.
    pub async fn sweep_every(
        &self,
        batch_id: &str,
        age: Duration,
        books_every: Duration,
    ) -> Result<SweepReport, EngineError> {
        self.sweep_inner(batch_id, age, Some(books_every)).await
    }

    async fn sweep_inner(
        &self,
        batch_id: &str,
        age: Duration,
        books_every: Option<Duration>,
    ) -> Result<SweepReport, EngineError> {
        let mut report = SweepReport::default();
        if let Some(every) = books_every {
            // A pass that fails leaves its watermark; the rest of the
            // sweep still runs.
            match self.watch_books_pass(every).await {
                Ok(b) => report.books = b,
                Err(e) => {
                    tracing::warn!(error = %e, "the pass over changes in the books failed");
                    report.books_error = Some(e.to_string());
                }
            }
        }
        let mappings = self.mappings_now().await?;
        let mappings = mappings.as_ref();
        let cutoff =
            Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::zero());
        let stale = self.journal.stale_intents(cutoff, 500).await?;
        let keys: BTreeSet<EntryKey> = stale.into_iter().map(|i| i.key).collect();
        for key in &keys {
            let weeks = self.weeks_of(key).await?;
            let settled = self
                .with_weeks(weeks, |held| {
                    self.with_claim(key, || self.settle_leftovers(key, mappings, batch_id, held))
                })
                .await;
            match settled {
                Ok(o) => {
                    report.intents += 1;
                    report.outcomes.extend(o);
                }
                Err(EngineError::Busy(_)) => report.busy += 1,
                Err(e) => return Err(e),
            }
        }
        for week in self.journal.dirty_weeks(500).await? {
            let converged = self
                .with_weeks(BTreeSet::from([week.clone()]), |held| {
                    let week = week.clone();
                    async move { self.converge_week(&week, mappings, batch_id, &held).await }
                })
                .await;
            match converged {
                Ok(o) => {
                    self.journal.clear_dirty(&week).await?;
                    report.weeks += 1;
                    report.outcomes.extend(o);
                }
                Err(EngineError::Busy(_)) => report.busy += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Settle `key`'s open intents and converge the weeks held.
    async fn settle_leftovers(
        &self,
        key: &EntryKey,
        mappings: &Mappings,
        batch_id: &str,
        held: HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        let st = self.entries.get(key).await?;
        self.settle_intents(key, st, None).await?;
        let mut out = Vec::new();
        for w in held.iter() {
            out.extend(self.converge_week(w, mappings, batch_id, &held).await?);
        }
        Ok(out)
    }

    /// Decide and apply `state` (the entry's new current version, with what
    /// the ledger holds for it and its approval), then converge its
    /// worker-week (and the week it left). A settle cut short by an error
    /// marks its weeks dirty for [`Engine::sweep`].
    async fn settle_week(
        &self,
        state: EntryState,
        old_week: Option<WorkerWeek>,
        mappings: &Mappings,
        batch_id: &str,
        held: &HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        let week = WorkerWeek::of(&state.entry);
        // Plan only weeks this worker holds: the entry may have moved week
        // between the read that chose the claims and the claims.
        for w in std::iter::once(&week).chain(old_week.as_ref()) {
            if !held.contains(w) {
                return Err(EngineError::Busy(week_claim_key(w)));
            }
        }
        // An entry moving week leaves its old week to re-split. A retry of
        // this message converges only the week the entry is in now, so
        // the old one is marked before anything is done and cleared once
        // converged: a crash in between leaves it to the sweep.
        if let Some(old) = &old_week {
            self.journal
                .mark_dirty(old, "an entry moved out of this week")
                .await?;
        }
        let result = self
            .settle_week_inner(state, &week, old_week.as_ref(), mappings, batch_id, held)
            .await;
        if let (Ok(_), Some(old)) = (&result, &old_week) {
            self.journal.clear_dirty(old).await?;
        }
        if let Err(e) = &result {
            if !matches!(e, EngineError::Busy(_)) {
                for w in std::iter::once(&week).chain(old_week.as_ref()) {
                    if let Err(m) = self.journal.mark_dirty(w, &e.to_string()).await {
                        tracing::warn!(error = %m, "could not mark the week dirty");
                    }
                }
            }
        }
        result
    }

    async fn settle_week_inner(
        &self,
        state: EntryState,
        week: &WorkerWeek,
        old_week: Option<&WorkerWeek>,
        mappings: &Mappings,
        batch_id: &str,
        held: &HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        let key = state.entry.key.clone();
        let siblings: Vec<EntryState> = self
            .entries
            .week(week)
            .await?
            .into_iter()
            .filter(|s| s.entry.key != key)
            .collect();
        let plan = self.plan(&state.entry, &siblings, mappings);
        // `state` carries what the ledger holds and the latest approval,
        // with the new version in place: it is the context to decide in.
        let decision =
            pipeline::decide_current(&state, plan.get(&key), mappings, &self.rules, &mut NoTrace);
        let mut outcomes = vec![self.apply(state, decision, batch_id, false).await?];

        // The week's split changed for the others only through this entry;
        // re-decide the ones in the books and post any difference.
        for sib in siblings {
            if let Some(o) = self.resettle(sib, &plan, mappings, batch_id).await? {
                outcomes.push(o);
            }
        }
        if let Some(old) = old_week {
            // The entry moved to another week: the old week lost its time.
            outcomes.extend(self.converge_week(old, mappings, batch_id, held).await?);
        }
        Ok(outcomes)
    }

    /// Make the books hold what `week` should: plan it from its current
    /// entries and update every posted entry whose lines differ.
    async fn converge_week(
        &self,
        week: &WorkerWeek,
        mappings: &Mappings,
        batch_id: &str,
        held: &HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        if !held.contains(week) {
            return Err(EngineError::Busy(week_claim_key(week)));
        }
        let states = self.entries.week(week).await?;
        let refs: Vec<&NormalisedEntry> = states.iter().map(|s| &s.entry).collect();
        let plan = pipeline::plan_week(&refs, mappings, &self.rules);
        let mut out = Vec::new();
        for st in states {
            if let Some(o) = self.resettle(st, &plan, mappings, batch_id).await? {
                out.push(o);
            }
        }
        Ok(out)
    }

    fn plan(&self, entry: &NormalisedEntry, siblings: &[EntryState], m: &Mappings) -> WeekPlan {
        let mut refs: Vec<&NormalisedEntry> = siblings.iter().map(|s| &s.entry).collect();
        refs.push(entry);
        pipeline::plan_week(&refs, m, &self.rules)
    }

    async fn resettle(
        &self,
        sib: EntryState,
        plan: &WeekPlan,
        mappings: &Mappings,
        batch_id: &str,
    ) -> Result<Option<Outcome>, EngineError> {
        if sib.status() != Status::Posted {
            return Ok(None);
        }
        let key = sib.entry.key.clone();
        // What the books hold for it, with any crash's leftovers settled.
        let Some(sib) = self.settle_intents(&key, Some(sib), None).await? else {
            return Ok(None);
        };
        if sib.status() != Status::Posted {
            return Ok(None);
        }
        let d = pipeline::decide_current(
            &sib,
            plan.get(&sib.entry.key),
            mappings,
            &self.rules,
            &mut NoTrace,
        );
        if matches!(d, Decision::Unchanged) {
            return Ok(None);
        }
        Ok(Some(self.apply(sib, d, batch_id, true).await?))
    }

    async fn apply(
        &self,
        mut state: EntryState,
        decision: Decision,
        batch_id: &str,
        sibling: bool,
    ) -> Result<Outcome, EngineError> {
        let now = Utc::now();
        let mut ledger_op = None;
        let mut ignored = None;
        let op = match &decision {
            Decision::Post(lines) => Some(LedgerOp::Create {
                lines: lines.clone(),
            }),
            Decision::Update(lines) => Some(LedgerOp::Update {
                records: state.records.clone(),
                lines: lines.clone(),
            }),
            Decision::Void => Some(LedgerOp::Delete {
                records: state.records.clone(),
            }),
            _ => None,
        };
        state.reason = None;
        state.note = None;
        let mut done: Option<Intent> = None;
        match decision {
            Decision::Post(_) | Decision::Update(_) | Decision::Void => {
                let op = op.unwrap_or(LedgerOp::Delete {
                    records: Vec::new(),
                });
                ledger_op = Some(op.name());
                match self.execute(&state, op, batch_id, now).await {
                    Ok((intent, last)) => {
                        state.records = last.records;
                        state.posted_lines = last.lines;
                        state.posted_version = Some(last.version);
                        state.batch_id = Some(last.batch_id);
                        let posted = if state.records.is_empty() {
                            Status::Voided
                        } else {
                            bump(&self.counters.posted);
                            Status::Posted
                        };
                        state.set_status(posted, now);
                        done = Some(intent);
                    }
                    Err(LedgerError::Rejected(e)) => {
                        bump(&self.counters.exceptions);
                        state.set_status(Status::Exception, now);
                        state.reason = Some(e);
                    }
                    Err(error) => {
                        return Err(EngineError::LedgerUnavailable {
                            key: state.entry.key.clone(),
                            error,
                        })
                    }
                }
            }
            Decision::Unchanged => state.set_status(Status::Posted, now),
            Decision::AwaitApproval(why) => {
                state.set_status(Status::AwaitingApproval, now);
                state.note = Some(why);
            }
            Decision::Hold(e) => {
                bump(&self.counters.held);
                state.set_status(Status::Held, now);
                state.reason = Some(e);
            }
            Decision::Exception(e) => {
                bump(&self.counters.exceptions);
                state.set_status(Status::Exception, now);
                state.reason = Some(e);
            }
            Decision::Ignore(r) => {
                // A deletion ends in the same state whether or not the
                // entry ever reached the books: the order of arrival must
                // not change what a bookkeeper sees.
                let ended = if r == IgnoreReason::DeletedBeforePosting {
                    Status::Voided
                } else {
                    Status::Ignored
                };
                state.set_status(ended, now);
                state.note = Some(r.describe().to_string());
                ignored = Some(r.describe());
            }
        }
        self.entries.put(&state).await?;
        // The state holds the outcome: only now is the intent closed (a
        // crash before this is settled from the journal next time).
        if let Some(mut intent) = done {
            intent.outcome = IntentOutcome::Applied;
            self.close(&intent).await;
        }
        tracing::info!(entry = %state.entry.key, status = %state.status(), op = ledger_op, sibling, "settled");
        Ok(Outcome {
            key: state.entry.key.clone(),
            status: state.status(),
            ledger_op,
            ignored,
            reason: state.reason.clone(),
            sibling,
        })
    }

    /// Close `intent`; a failure only leaves it open for the next settle
    /// or the sweep, which find its answer in the journal.
    pub(crate) async fn close(&self, intent: &Intent) {
        if let Err(e) = self.journal.close_intent(intent).await {
            tracing::warn!(intent = %intent.id, error = %e, "could not close intent");
        }
    }

    /// The request that carries out `intent`.
    fn request_for(intent: &Intent) -> LedgerRequest {
        LedgerRequest {
            key: intent.key.clone(),
            version: intent.version.clone(),
            idempotency_key: intent.idempotency_key(),
            intent: intent.id.clone(),
            op: intent.op.clone(),
        }
    }

    /// Carry out `op` for `state`'s entry through a write-ahead intent:
    /// record the intent, call the ledger (retrying with full-jitter
    /// backoff, honouring `Retry-After`), and journal what it holds now.
    /// A failure that may have taken effect (timeout, lost response, 5xx)
    /// is settled by reading the books before the same request is sent
    /// again; a refusal closes the intent, so the next attempt is a new
    /// intent with a new idempotency key. An intent whose outcome is still
    /// uncertain when the attempts run out stays open for the next settle.
    pub(crate) async fn execute(
        &self,
        state: &EntryState,
        op: LedgerOp,
        batch_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Intent, JournalRecord), LedgerError> {
        let entry = &state.entry;
        let (mut op, mut before) = (op, state.posted_lines.clone());
        let mut retargeted = false;
        loop {
            let mut intent = Intent::new(
                entry.key.clone(),
                entry.version.clone(),
                batch_id,
                op,
                before,
                now,
            );
            self.journal
                .open_intent(&intent)
                .await
                .map_err(|e| LedgerError::Transient(format!("could not record the intent: {e}")))?;
            let records = match self.call(&mut intent).await {
                Ok(records) => records,
                Err(LedgerError::Rejected(e))
                    if !retargeted && !intent.targets().is_empty() && changed_elsewhere(&e) =>
                {
                    // Someone changed or deleted the entry's records in the
                    // books since timepost wrote them: aim at what the books
                    // hold now, once.
                    retargeted = true;
                    match self.read_resolution(&intent).await {
                        Ok(Some(r)) if r.actual.records != intent.targets() => {
                            tracing::warn!(entry = %entry.key, "records changed in the books; retargeting");
                            op = retarget(&intent.op, r.actual.records);
                            before = r.actual.lines;
                            continue;
                        }
                        _ => return Err(LedgerError::Rejected(e)),
                    }
                }
                Err(e) => return Err(e),
            };
            let mut record = JournalRecord {
                seq: 0,
                batch_id: batch_id.to_string(),
                key: entry.key.clone(),
                version: entry.version.clone(),
                operation: intent.op.name().to_string(),
                request_id: intent.idempotency_key(),
                records,
                lines: intent.lines().to_vec(),
                ledger: self.ledger.name().to_string(),
                at: now,
                intent: intent.id.clone(),
            };
            record.seq = self
                .journal
                .append(record.clone())
                .await
                .map_err(|e| LedgerError::Transient(e.to_string()))?;
            return Ok((intent, record));
        }
    }

    /// Send `intent`'s request (retrying with full-jitter backoff,
    /// honouring `Retry-After`). A failure that may have taken effect is
    /// settled by reading the books before the same request is sent again;
    /// a refusal closes the intent. Returns the records the ledger holds
    /// for the entry now.
    async fn call(&self, intent: &mut Intent) -> Result<Vec<RecordRef>, LedgerError> {
        if matches!(&intent.op, LedgerOp::Delete { records } if records.is_empty()) {
            // Nothing of it is left in the books: nothing to send.
            return Ok(Vec::new());
        }
        let request = Self::request_for(intent);
        let mut attempt = 0;
        'send: loop {
            bump(&self.counters.ledger_calls);
            let error = match self.ledger.apply(&request).await {
                Ok(r) => return Ok(r),
                Err(LedgerError::Rejected(e)) => {
                    intent.outcome = IntentOutcome::Failed {
                        reason: e.message.clone(),
                    };
                    self.close(intent).await;
                    return Err(LedgerError::Rejected(e));
                }
                Err(e) => e,
            };
            // Sends and reads share the attempts: an outcome still
            // uncertain when they run out leaves the intent open.
            loop {
                attempt += 1;
                if attempt >= self.settings.ledger_attempts {
                    return Err(error);
                }
                bump(&self.counters.ledger_retries);
                let wait = backoff(&self.settings, attempt, &error);
                tracing::warn!(entry = %intent.key, attempt, error = %error, wait_ms = wait.as_millis() as u64, "ledger retry");
                tokio::time::sleep(wait).await;
                if matches!(error, LedgerError::RateLimited(_)) {
                    // Refused before any work: send again as it is.
                    continue 'send;
                }
                // The call may have taken effect: the books decide.
                match self.read_resolution(intent).await {
                    Ok(Some(r)) if r.outcome == IntentOutcome::Applied => {
                        return Ok(r.actual.records)
                    }
                    Ok(Some(r)) if r.outcome == IntentOutcome::NotApplied => continue 'send,
                    // Cut short in the books: adopt what is there on the
                    // next settle and converge from it, never re-send over it.
                    Ok(Some(_)) => return Err(error),
                    // A ledger that cannot be read: its idempotency key is
                    // all there is, and the same request carries the same key.
                    Ok(None) => continue 'send,
                    // Not known yet: read again (never re-send blind).
                    Err(read) => {
                        tracing::warn!(entry = %intent.key, error = %read, "could not read the books");
                    }
                }
            }
        }
    }

    /// Read the books where `intent`'s records are and compare. `None`
    /// when the ledger cannot be read back.
    async fn read_resolution(&self, intent: &Intent) -> Result<Option<Resolution>, LedgerError> {
        let before = Actual {
            records: intent.targets().to_vec(),
            lines: intent.before.clone(),
        };
        let Some(query) = intent.book_query() else {
            // Nothing written and nothing replaced: nothing to look for.
            return Ok(Some(Resolution {
                outcome: IntentOutcome::Applied,
                actual: before,
                strays: Vec::new(),
            }));
        };
        bump(&self.counters.ledger_reads);
        let Some(books) = self.ledger.read_books(&query).await? else {
            return Ok(None);
        };
        let request = Self::request_for(intent);
        let resolution =
            crate::intent::resolve(intent, &before, &books, |tier| request.fingerprint(tier));
        if !resolution.strays.is_empty() {
            self.counters
                .stray_records
                .fetch_add(resolution.strays.len() as u64, Ordering::Relaxed);
            tracing::error!(entry = %intent.key, intent = %intent.id, strays = ?resolution.strays.iter().map(|r| &r.id).collect::<Vec<_>>(),
                "the books hold more than one record with one fingerprint; reconciliation lists them");
        }
        Ok(Some(resolution))
    }

    /// Settle the open intents of `key` (left by a crash, or by attempts
    /// that ran out with the outcome uncertain) so `state` says what the
    /// books hold before anything is decided: the journal's answer when the
    /// call returned, else the books'. A state is created for an entry
    /// whose first posting was cut short (from `incoming`). Returns the
    /// state as it now stands.
    pub(crate) async fn settle_intents(
        &self,
        key: &EntryKey,
        mut state: Option<EntryState>,
        incoming: Option<&NormalisedEntry>,
    ) -> Result<Option<EntryState>, EngineError> {
        let open = self.journal.open_intents(key).await?;
        for mut intent in open {
            let journaled = self
                .journal
                .by_entry(key)
                .await?
                .into_iter()
                .rev()
                .find(|r| r.intent == intent.id);
            let (outcome, actual) = match journaled {
                Some(r) => (
                    IntentOutcome::Applied,
                    Actual {
                        records: r.records,
                        lines: r.lines,
                    },
                ),
                None => match self.read_resolution(&intent).await {
                    Ok(Some(r)) => (r.outcome, r.actual),
                    Ok(None) => self.resend(&intent).await.map_err(|error| {
                        EngineError::LedgerUnavailable {
                            key: key.clone(),
                            error,
                        }
                    })?,
                    Err(error) => {
                        return Err(EngineError::LedgerUnavailable {
                            key: key.clone(),
                            error,
                        })
                    }
                },
            };
            bump(&self.counters.intents_resolved);
            tracing::info!(entry = %key, intent = %intent.id, ?outcome, "intent settled");
            let changed = state.as_ref().map_or(!actual.records.is_empty(), |s| {
                s.records != actual.records || s.posted_lines != actual.lines
            });
            if changed {
                let now = Utc::now();
                let mut s = match (state.take(), incoming) {
                    (Some(s), _) => s,
                    (None, Some(e)) => EntryState::new(e.clone(), now),
                    // Records of an entry with no state yet, met by a sweep
                    // or a redrive: left open for the entry's own message
                    // (still queued or parked), which adopts them.
                    (None, None) => continue,
                };
                // An entry whose current version is not posted keeps what
                // was last posted as what its records should hold: a line
                // the books lack stays, so the books watch writes it back
                // (see `books_watch`).
                let kept: Vec<PostingLine> = if s.revision != 0 && keeps_last_posted(s.status()) {
                    s.posted_lines
                        .iter()
                        .filter(|l| !actual.lines.iter().any(|a| a.tier == l.tier))
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                s.records = actual.records;
                s.posted_lines = actual.lines;
                s.posted_lines.extend(kept);
                if outcome == IntentOutcome::Applied {
                    s.posted_version = Some(intent.version.clone());
                    s.batch_id = Some(intent.batch_id.clone());
                }
                if !s.records.is_empty() && s.revision == 0 {
                    s.set_status(Status::Posted, now);
                } else if s.records.is_empty()
                    && s.status() == Status::Posted
                    && intent.lines().is_empty()
                {
                    // Our own void went through.
                    s.set_status(Status::Voided, now);
                } else if s.status() == Status::Posted && outcome == IntentOutcome::Partial {
                    // The books hold neither what the write found nor what
                    // it wrote: a record it aimed at was deleted or changed
                    // outside timepost meanwhile. The entry is still to be
                    // posted (only a void of ours voids it); its week is
                    // converged again, which posts what the books lack.
                    // Marked before the state stops naming the record.
                    tracing::warn!(entry = %key, intent = %intent.id,
                        "records of an interrupted write are missing from the books; the week is posted again");
                    self.journal
                        .mark_dirty(
                            &WorkerWeek::of(&s.entry),
                            "records an interrupted write aimed at are missing from the books",
                        )
                        .await?;
                    let gone: Vec<(&RecordRef, &PostingLine)> = intent
                        .targets()
                        .iter()
                        .filter(|r| !s.records.iter().any(|a| a.id == r.id))
                        .filter_map(|r| {
                            intent
                                .before
                                .iter()
                                .find(|l| l.tier == r.tier)
                                .map(|l| (r, l))
                        })
                        .collect();
                    self.audit_gone_after_settle(key, &gone, now).await?;
                }
                s.updated_at = now;
                s.revision = self.entries.put(&s).await?;
                state = Some(s);
            }
            intent.outcome = outcome;
            self.close(&intent).await;
        }
        Ok(state)
    }

    /// For a ledger that cannot be read back: send the intent's own request
    /// again (same idempotency key; the vendor's word is all there is).
    async fn resend(&self, intent: &Intent) -> Result<(IntentOutcome, Actual), LedgerError> {
        bump(&self.counters.ledger_calls);
        match self.ledger.apply(&Self::request_for(intent)).await {
            Ok(records) => Ok((
                IntentOutcome::Applied,
                Actual {
                    records,
                    lines: intent.lines().to_vec(),
                },
            )),
            Err(LedgerError::Rejected(e)) => Ok((
                IntentOutcome::Failed { reason: e.message },
                Actual {
                    records: intent.targets().to_vec(),
                    lines: intent.before.clone(),
                },
            )),
            Err(e) => Err(e),
        }
    }
}

/// A refusal that says the records timepost targeted changed or went
/// away in the books (a stale sync token, an unknown record).
/// Whether an entry in `status` may hold records for a version other than
/// its current one (what was last posted), which the books should keep.
pub(crate) fn keeps_last_posted(status: Status) -> bool {
    matches!(
        status,
        Status::AwaitingApproval | Status::Held | Status::Exception | Status::Ignored
    )
}

fn changed_elsewhere(e: &Exception) -> bool {
    matches!(
        e.code,
        ExceptionCode::LedgerStaleRecord | ExceptionCode::LedgerUnknownReference
    )
}

/// `op` aimed at `records` (what the books hold for the entry now).
fn retarget(op: &LedgerOp, records: Vec<RecordRef>) -> LedgerOp {
    match op {
        LedgerOp::Update { lines, .. } | LedgerOp::Create { lines } if records.is_empty() => {
            LedgerOp::Create {
                lines: lines.clone(),
            }
        }
        LedgerOp::Create { lines } | LedgerOp::Update { lines, .. } => LedgerOp::Update {
            records,
            lines: lines.clone(),
        },
        LedgerOp::Delete { .. } => LedgerOp::Delete { records },
    }
}

/// What one [`Engine::sweep`] did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// The pass over changes made in the books, when it ran.
    pub books: Option<crate::engine::books_watch::BooksReport>,
    /// Why that pass failed, when it did (its watermark stays).
    pub books_error: Option<String>,
    /// Entries whose stale intents were settled.
    pub intents: usize,
    /// Dirty worker-weeks converged.
    pub weeks: usize,
    /// Entries or weeks held by a live worker, left for the next run.
    pub busy: usize,
    pub outcomes: Vec<Outcome>,
}

/// Full-jitter exponential backoff, capped; `Retry-After` wins when given.
pub fn backoff(s: &WorkerConfig, attempt: u32, error: &LedgerError) -> Duration {
    if let LedgerError::RateLimited(Some(d)) = error {
        return (*d).min(Duration::from_millis(s.backoff_cap_ms));
    }
    let exp = s
        .backoff_base_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(s.backoff_cap_ms);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (exp + 1);
    Duration::from_millis(jitter)
}

/// The held entries `changes` can release, with their weeks: for each row
/// they add or change, the held entries indexed under its key
/// (`EntryStore::by_mapped_keys`) whose hold names that row's table (an
/// employee or vendor row releases entries missing an employee, a project
/// row those missing a project, a service item row those missing a
/// service item; one that records no missing row is taken too). A GL
/// account, payroll item or `*` service item row is looked up by every
/// entry: the held entries missing that table are read by status.
pub async fn held_released_by(
    entries: &dyn EntryStore,
    changes: &[crate::mapping::MappingChange],
) -> Result<BTreeMap<EntryKey, WorkerWeek>, crate::ports::StoreError> {
    use crate::mapping::keys::keys_of_row;
    use crate::mapping::MappingTable as T;
    /// The `missing_mapping.table` of a hold a row of `table` releases.
    fn hold_of(table: T) -> Option<&'static str> {
        match table {
            T::Employee | T::Vendor => Some("employee"),
            T::Project => Some("project"),
            T::ServiceItem => Some("service_item"),
            T::GlAccount => Some("gl_account"),
            T::PayrollItem => Some("payroll_item"),
            // Optional tables: nothing is held for them.
            T::Class | T::Department => None,
        }
    }
    // A held entry that records no missing row (written by an older
    // build, or by hand) may wait for any: it is re-checked too.
    let held_for = |st: &EntryState, hold: &str| {
        st.status() == Status::Held
            && st
                .reason
                .as_ref()
                .and_then(|r| r.missing_mapping.as_ref())
                .is_none_or(|m| m.table == hold)
    };
    let mut keys: BTreeMap<EntryKey, WorkerWeek> = BTreeMap::new();
    let mut by_status: BTreeSet<&'static str> = BTreeSet::new();
    for c in changes.iter().filter(|c| c.after.is_some()) {
        let Some(hold) = hold_of(c.table) else {
            continue;
        };
        let Some(k) = keys_of_row(c.table, &c.key) else {
            by_status.insert(hold);
            continue;
        };
        let mut after: Option<EntryKey> = None;
        loop {
            let page = entries
                .by_mapped_keys(std::slice::from_ref(&k), after.as_ref(), RECHECK_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.entry.key.clone());
            let n = page.len();
            keys.extend(
                page.into_iter()
                    .filter(|st| held_for(st, hold))
                    .map(|st| (st.entry.key.clone(), WorkerWeek::of(&st.entry))),
            );
            if n < RECHECK_PAGE {
                break;
            }
        }
    }
    if !by_status.is_empty() {
        for st in entries.by_status(Status::Held, 10_000).await? {
            if by_status.iter().any(|h| held_for(&st, h)) {
                keys.insert(st.entry.key.clone(), WorkerWeek::of(&st.entry));
            }
        }
    }
    Ok(keys)
}
