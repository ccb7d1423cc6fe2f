//! The engine: carries one queue message through claim → decide → post →
//! record, through the ports only. The same engine runs in `timepost serve`,
//! `timepost demo` and the `sync` Lambda function.
//!
//! Order of effects for one entry, chosen so a crash at any point is safe:
//! 1. claim the worker-week(s) the entry is and was in, in a fixed order,
//!    then the entry (conditional writes; all expire by themselves), so
//!    only one worker plans a given worker-week at a time;
//! 2. decide (pure);
//! 3. call the ledger with an idempotency key derived from identity +
//!    version + operation: a retry after a crash gets the original answer;
//! 4. append the posting journal, then write the entry state (optimistic
//!    revision check);
//! 5. re-split the worker-week and post the difference for siblings whose
//!    overtime share changed;
//! 6. release the claims.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::WorkerConfig;
use crate::exceptions::Exception;
use crate::ledger::{Ledger, LedgerError, LedgerOp, LedgerRequest, PostingLine};
use crate::mapping::Mappings;
use crate::model::{idempotency_key, ApprovalStatus, EntryKey, NormalisedEntry};
use crate::pipeline::{self, Decision, IgnoreReason, NoTrace, WeekPlan};
use crate::ports::{
    EntryStore, Journal, JournalRecord, MappingStore, QueueMessage, StoreError, WorkerWeek,
};
use crate::rules::Rules;
use crate::state::{EntryState, Status};
use crate::week_claim::{week_claim_key, HeldWeeks};

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
            ("postings", g(&self.posted)),
            ("exceptions_raised", g(&self.exceptions)),
            ("holds", g(&self.held)),
        ])
    }
}

fn bump(a: &AtomicU64) {
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
}

/// Claims expire by themselves so a crashed worker never blocks an entry.
const CLAIM_TTL: Duration = Duration::from_secs(120);

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
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            cached_mappings: tokio::sync::Mutex::new(None),
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
            QueueMessage::Entry { entry, .. } => {
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
                let mut week = chrono::NaiveDate::min(*from, *to);
                let end = chrono::NaiveDate::max(*from, *to);
                while crate::model::week_start(week) <= end {
                    let ww = WorkerWeek {
                        source: *source,
                        workspace: workspace.clone(),
                        user_id: user_id.clone(),
                        week_start: crate::model::week_start(week),
                    };
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
                    week += chrono::Duration::days(7);
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
    async fn with_weeks<F, Fut>(
        &self,
        weeks: BTreeSet<WorkerWeek>,
        f: F,
    ) -> Result<Vec<Outcome>, EngineError>
    where
        F: FnOnce(HeldWeeks) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Outcome>, EngineError>>,
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
            None => f(held).await,
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
        let result = f().await;
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
        let prior = self.entries.get(&entry.key).await?;
        if let Some(p) = &prior {
            // A redriven or repeated version of an entry that is still
            // waiting for a fix is evaluated again rather than ignored.
            let retryable = matches!(p.status, Status::Exception | Status::Held);
            if entry.version < p.entry.version || (entry.version == p.entry.version && !retryable) {
                let reason = if entry.version == p.entry.version {
                    bump(&self.counters.duplicates);
                    IgnoreReason::Duplicate
                } else {
                    bump(&self.counters.stale);
                    IgnoreReason::Stale
                };
                tracing::debug!(entry = %entry.key, version = %entry.version, reason = reason.describe(), "ignored");
                return Ok(vec![Outcome {
                    key: entry.key.clone(),
                    status: p.status,
                    ledger_op: None,
                    ignored: Some(reason.describe()),
                    reason: p.reason.clone(),
                    sibling: false,
                }]);
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
        let state = self
            .entries
            .get(key)
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
        let Some(mut state) = self.entries.get(key).await? else {
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

    /// Re-evaluate every held entry (after a mapping change, or on schedule).
    pub async fn recheck_held(&self, batch_id: &str) -> Result<Vec<Outcome>, EngineError> {
        let mappings = self.mappings_now().await?;
        let mappings = mappings.as_ref();
        let mut out = Vec::new();
        for st in self.entries.by_status(Status::Held, 10_000).await? {
            let key = st.entry.key.clone();
            let weeks = BTreeSet::from([WorkerWeek::of(&st.entry)]);
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

    /// Decide and apply `state` (the entry's new current version, with what
    /// the ledger holds for it and its approval), then
    /// post the difference for siblings whose share of the week changed.
    async fn settle_week(
        &self,
        state: EntryState,
        old_week: Option<WorkerWeek>,
        mappings: &Mappings,
        batch_id: &str,
        held: &HeldWeeks,
    ) -> Result<Vec<Outcome>, EngineError> {
        let key = state.entry.key.clone();
        let week = WorkerWeek::of(&state.entry);
        // Plan only weeks this worker holds: the entry may have moved week
        // between the read that chose the claims and the claims.
        for w in std::iter::once(&week).chain(old_week.as_ref()) {
            if !held.contains(w) {
                return Err(EngineError::Busy(week_claim_key(w)));
            }
        }
        let mut siblings: Vec<EntryState> = self
            .entries
            .week(&week)
            .await?
            .into_iter()
            .filter(|s| s.entry.key != key)
            .collect();
        let plan = self.plan(&state.entry, &siblings, mappings);
        // `state` carries what the ledger holds and the latest approval,
        // with the new version in place: it is the context to decide in.
        let decision = pipeline::reevaluate(
            &state.entry,
            plan.get(&key),
            mappings,
            &self.rules,
            Some(&state),
            &mut NoTrace,
        );
        let decision = self.holding_override(&state, plan.get(&key), mappings, decision);
        let mut outcomes = vec![self.apply(state, decision, batch_id, false).await?];

        // The week's split changed for the others only through this entry;
        // re-decide the ones in the books and post any difference.
        for sib in siblings.drain(..) {
            if let Some(o) = self.resettle(sib, &plan, mappings, batch_id).await? {
                outcomes.push(o);
            }
        }
        if let Some(old) = old_week {
            // The entry moved to another week: the old week lost its time.
            let others = self.entries.week(&old).await?;
            let refs: Vec<&NormalisedEntry> = others.iter().map(|s| &s.entry).collect();
            let old_plan = pipeline::plan_week(&refs, mappings, &self.rules);
            for sib in others.into_iter().filter(|s| s.entry.key != key) {
                if let Some(o) = self.resettle(sib, &old_plan, mappings, batch_id).await? {
                    outcomes.push(o);
                }
            }
        }
        Ok(outcomes)
    }

    /// An entry routed to the holding account posts there instead of
    /// wherever (or whether) its mappings would post it; waiting for
    /// approval, deletions and ignored versions are not overridden.
    pub fn holding_override(
        &self,
        state: &EntryState,
        plan: Option<&pipeline::EntryPlan>,
        mappings: &Mappings,
        decision: Decision,
    ) -> Decision {
        if state.holding.is_none() {
            return decision;
        }
        match decision {
            Decision::Post(_)
            | Decision::Update(_)
            | Decision::Unchanged
            | Decision::Hold(_)
            | Decision::Exception(_) => pipeline::holding_decision(
                &state.entry,
                plan,
                mappings,
                &self.rules,
                Some(state),
                &mut NoTrace,
            ),
            other => other,
        }
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
        if sib.status != Status::Posted {
            return Ok(None);
        }
        let d = pipeline::reevaluate(
            &sib.entry,
            plan.get(&sib.entry.key),
            mappings,
            &self.rules,
            Some(&sib),
            &mut NoTrace,
        );
        let d = self.holding_override(&sib, plan.get(&sib.entry.key), mappings, d);
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
        let before = state.status;
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
        match decision {
            Decision::Post(_) | Decision::Update(_) | Decision::Void => {
                let op = op.unwrap_or(LedgerOp::Delete {
                    records: Vec::new(),
                });
                ledger_op = Some(op.name());
                match self.post(&state, op, batch_id, now).await {
                    Ok(last) => {
                        state.records = last.records;
                        state.posted_lines = last.lines;
                        state.posted_version = Some(last.version);
                        state.batch_id = Some(last.batch_id);
                        state.status = if state.records.is_empty() {
                            Status::Voided
                        } else {
                            bump(&self.counters.posted);
                            Status::Posted
                        };
                    }
                    Err(LedgerError::Rejected(e)) => {
                        bump(&self.counters.exceptions);
                        state.status = Status::Exception;
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
            Decision::Unchanged => state.status = Status::Posted,
            Decision::AwaitApproval(why) => {
                state.status = Status::AwaitingApproval;
                state.note = Some(why);
            }
            Decision::Hold(e) => {
                bump(&self.counters.held);
                state.status = Status::Held;
                state.reason = Some(e);
            }
            Decision::Exception(e) => {
                bump(&self.counters.exceptions);
                state.status = Status::Exception;
                state.reason = Some(e);
            }
            Decision::Ignore(r) => {
                // A deletion ends in the same state whether or not the
                // entry ever reached the books: the order of arrival must
                // not change what a bookkeeper sees.
                state.status = if r == IgnoreReason::DeletedBeforePosting {
                    Status::Voided
                } else {
                    Status::Ignored
                };
                state.note = Some(r.describe().to_string());
                ignored = Some(r.describe());
            }
        }
        state.updated_at = now;
        state.note_transition(before, now);
        self.entries.put(&state).await?;
        tracing::info!(entry = %state.entry.key, status = %state.status, op = ledger_op, sibling, "settled");
        Ok(Outcome {
            key: state.entry.key.clone(),
            status: state.status,
            ledger_op,
            ignored,
            reason: state.reason.clone(),
            sibling,
        })
    }

    /// Call the ledger with retries (full-jitter exponential backoff, honouring
    /// `Retry-After`), then journal what it holds now.
    async fn post(
        &self,
        state: &EntryState,
        op: LedgerOp,
        batch_id: &str,
        now: DateTime<Utc>,
    ) -> Result<JournalRecord, LedgerError> {
        let entry = &state.entry;
        // The idempotency key covers what is being replaced, so posting the
        // same version again after a sibling changed is a new request.
        let salt = match &op {
            LedgerOp::Create { lines } | LedgerOp::Update { lines, .. } => {
                format!("{}:{}", op.name(), lines_digest(lines))
            }
            LedgerOp::Delete { .. } => "delete".to_string(),
        };
        let request = LedgerRequest {
            key: entry.key.clone(),
            version: entry.version.clone(),
            idempotency_key: idempotency_key(&entry.key, &entry.version, &salt),
            intent: String::new(),
            op,
        };
        let mut attempt = 0;
        let records = loop {
            bump(&self.counters.ledger_calls);
            match self.ledger.apply(&request).await {
                Ok(r) => break r,
                Err(e) if e.is_retryable() && attempt + 1 < self.settings.ledger_attempts => {
                    attempt += 1;
                    bump(&self.counters.ledger_retries);
                    let wait = backoff(&self.settings, attempt, &e);
                    tracing::warn!(entry = %entry.key, attempt, error = %e, wait_ms = wait.as_millis() as u64, "ledger retry");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        };
        let lines = match &request.op {
            LedgerOp::Create { lines } | LedgerOp::Update { lines, .. } => lines.clone(),
            LedgerOp::Delete { .. } => Vec::new(),
        };
        let mut record = JournalRecord {
            seq: 0,
            batch_id: batch_id.to_string(),
            key: entry.key.clone(),
            version: entry.version.clone(),
            operation: request.op.name().to_string(),
            request_id: request.idempotency_key.clone(),
            records,
            lines,
            ledger: self.ledger.name().to_string(),
            at: now,
        };
        record.seq = self
            .journal
            .append(record.clone())
            .await
            .map_err(|e| LedgerError::Transient(e.to_string()))?;
        Ok(record)
    }
}

fn lines_digest(lines: &[PostingLine]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(lines).unwrap_or_default());
    hex::encode(&h.finalize()[..8])
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
