//! Deterministic simulation of the posting engine under crashes and ledger
//! faults (in the spirit of FoundationDB's and TigerBeetle's simulators).
//!
//! One seed chooses everything: a workload of entry versions for a few
//! workers over two weeks (creates, edits, re-dates across weeks, deletes,
//! approvals, duplicate and late deliveries), how the simulated ledger
//! treats idempotency keys (honoured; ignored, so a blind re-send
//! duplicates; honoured with faults replayed), which of its calls fail
//! (before the work: 5xx, 429; after it: a lost response), which
//! reads fail, which postings it refuses until "finance fixes" the cause,
//! and at which effects the worker crashes — before or after any entry
//! state write, intent, journal append, ledger call or queue delete. After
//! the messages, a bookkeeper may delete or edit records in the books
//! outside timepost (up to three); the books watch and the sweep then run,
//! under the same faults and crashes, until the books are back.
//!
//! The real engine and worker run on a real (in-memory) SQLite store,
//! through port wrappers that count every effect and, at a chosen one,
//! stop the worker for good (its future is dropped mid-flight, exactly as a
//! killed process stops). A new worker with a new claim owner then takes
//! over (a local store releases a dead process's claims at start).
//!
//! The same messages, in the same order, also go through a clean engine
//! (no faults, no crashes): its books are what the books should hold.
//! After each run the invariants are checked:
//! 1. the books hold, per entry and tier, exactly what the clean run's do;
//! 2. no two records carry one fingerprint;
//! 3. every record belongs to the entry whose state names it, and every
//!    record a state names is in the books;
//! 4. every entry ends in the clean run's visible state;
//! 5. no intent is left open and no week dirty.
//!
//! A failure names its seed; `cargo run -p timepost-tests --bin sim --
//! --seed N` replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use timepost::config::{Config, WorkerConfig};
use timepost::engine::Engine;
use timepost::exceptions::{Exception, ExceptionCode};
use timepost::intent::Intent;
use timepost::ledger::books::{BookQuery, BookRecord};
use timepost::ledger::{Ledger, LedgerError, LedgerOp, LedgerRequest, PostingLine, RecordRef};
use timepost::local::SqliteStore;
use timepost::mapping::{csv_io, diff, MappingChange, MappingTable, Mappings};
use timepost::model::{ApprovalStatus, EntryKey, NormalisedEntry, Source};
use timepost::ports::*;
use timepost::state::{EntryState, Status};
use timepost::worker::{new_batch_id, settle};

use crate::kit::E;

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    // A generator that never ends, not an `Iterator`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------- workload

/// The messages of one run, in delivery order.
pub fn workload(rng: &mut Rng) -> Vec<QueueMessage> {
    let users = ["u-ann", "u-bob"];
    let day = |n: u64| {
        NaiveDate::from_ymd_opt(2026, 3, 2).expect("date") + chrono::Duration::days(n as i64)
    };
    let mut versions: Vec<NormalisedEntry> = Vec::new();
    let entries = 4 + rng.below(9);
    for i in 0..entries {
        let user = *rng.pick(&users);
        let id = format!("e{i}");
        let mut date = day(rng.below(14));
        let mut start = 6 + rng.below(6);
        let mut hours = 1 + rng.below(7);
        let mut approval = if rng.chance(75) {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Pending
        };
        let edits = rng.below(4);
        for v in 0..=edits {
            if v > 0 {
                match rng.below(5) {
                    0 | 1 => hours = 1 + rng.below(8),
                    2 => date = day(rng.below(14)),
                    3 => start = 6 + rng.below(6),
                    _ => approval = ApprovalStatus::Approved,
                }
            }
            let deleted = v == edits && v > 0 && rng.chance(15);
            let mut e = E::new(
                &id,
                user,
                &date.to_string(),
                &format!("{start:02}:00"),
                &format!("{:02}:{:02}", start + hours, rng.below(4) * 15),
            )
            .updated(&format!("2026-03-20T{:02}:{:02}:00Z", v, i))
            .approval(approval)
            .notes(&format!("work {id} v{v}"));
            if deleted {
                e = e.deleted();
            }
            versions.push(e.build());
        }
    }
    let mut messages: Vec<QueueMessage> = versions
        .iter()
        .map(|e| QueueMessage::Entry {
            entry: Box::new(e.clone()),
            received_at: "2026-03-20T00:00:00Z".parse().expect("instant"),
        })
        .collect();
    // Reordering: late deliveries of older versions.
    for _ in 0..messages.len() / 3 {
        let a = rng.below(messages.len() as u64) as usize;
        let b = rng.below(messages.len() as u64) as usize;
        messages.swap(a, b);
    }
    // Duplicate deliveries.
    for _ in 0..messages.len() / 4 {
        let m = messages[rng.below(messages.len() as u64) as usize].clone();
        let at = rng.below(messages.len() as u64 + 1) as usize;
        messages.insert(at, m);
    }
    // Managers' approvals of a user's week, somewhere in the stream.
    for user in users {
        for week in [0u64, 7] {
            if rng.chance(60) {
                let at = rng.below(messages.len() as u64 + 1) as usize;
                messages.insert(
                    at,
                    QueueMessage::Approval {
                        source: Source::Csv,
                        workspace: "ws".into(),
                        user_id: user.into(),
                        from: day(week),
                        to: day(week + 6),
                        status: ApprovalStatus::Approved,
                        by: "manager".into(),
                    },
                );
            }
        }
    }
    messages
}

// ------------------------------------------------------------ the ledger

/// How the simulated ledger treats an idempotency key it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// The original answer again (QBO documents this for `requestid`).
    Honoured,
    /// As if it had never been seen (developers report duplicates).
    Ignored,
    /// The original answer again, a refusal included (QBO: a replay
    /// returns the original response, faults included).
    ReplaysFaults,
}

#[derive(Debug, Clone)]
pub struct Faults {
    pub idempotency: Idempotency,
    /// Percent of calls failing before any work (5xx).
    pub before: u64,
    /// Percent of calls throttled (429) before any work.
    pub throttled: u64,
    /// Percent of calls whose work is done and whose answer is lost.
    pub lost: u64,
    /// Percent of reads of the books failing.
    pub read_fails: u64,
    /// Percent of creates refused until finance fixes the cause (a closed
    /// period reopened), then redriven.
    pub refused: u64,
}

impl Faults {
    pub fn none() -> Self {
        Self {
            idempotency: Idempotency::Honoured,
            before: 0,
            throttled: 0,
            lost: 0,
            read_fails: 0,
            refused: 0,
        }
    }
    pub fn draw(rng: &mut Rng) -> Self {
        Self {
            idempotency: *rng.pick(&[
                Idempotency::Honoured,
                Idempotency::Ignored,
                Idempotency::ReplaysFaults,
            ]),
            before: rng.below(15),
            throttled: rng.below(10),
            lost: rng.below(20),
            read_fails: rng.below(10),
            refused: rng.below(8),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimRecord {
    pub id: String,
    pub entry: EntryKey,
    pub token: u64,
    pub line: PostingLine,
    pub fingerprint: Option<String>,
}

#[derive(Default)]
struct Books {
    records: BTreeMap<u64, SimRecord>,
    next: u64,
    seen: BTreeMap<String, (String, Result<Vec<RecordRef>, Exception>)>,
    /// Entries whose postings are refused until fixed.
    blocked: BTreeSet<EntryKey>,
}

/// An accounting API kept in memory, with faults drawn from the seed.
pub struct SimLedger {
    books: Mutex<Books>,
    rng: Mutex<Rng>,
    faults: Faults,
    pub calls: AtomicU64,
    pub reads: AtomicU64,
}

impl SimLedger {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            books: Mutex::new(Books::default()),
            rng: Mutex::new(Rng::new(seed ^ 0x5eed)),
            faults,
            calls: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    pub fn records(&self) -> Vec<SimRecord> {
        self.lock().records.values().cloned().collect()
    }

    /// Entries refused so far that finance has now fixed (to redrive).
    pub fn fix_all(&self) -> Vec<EntryKey> {
        std::mem::take(&mut self.lock().blocked)
            .into_iter()
            .collect()
    }

    /// A bookkeeper changes up to `n` records in the books, outside
    /// timepost: deletes one, or edits its hours (the description, and so
    /// the fingerprint, stays, as an edit in QuickBooks or Xero leaves it).
    /// Returns what was done, in words.
    pub fn change_elsewhere(&self, rng: &mut Rng, n: u64) -> Vec<String> {
        let mut books = self.lock();
        let mut done = Vec::new();
        for _ in 0..n {
            let ids: Vec<u64> = books.records.keys().copied().collect();
            if ids.is_empty() {
                break;
            }
            let id = *rng.pick(&ids);
            if rng.chance(50) {
                books.records.remove(&id);
                done.push(format!("deleted record {id}"));
            } else if let Some(r) = books.records.get_mut(&id) {
                r.line.minutes += 30;
                r.token += 1;
                done.push(format!("added 30 minutes to record {id}"));
            }
        }
        done
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn roll(&self, pct: u64) -> bool {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .chance(pct)
    }

    fn execute(books: &mut Books, req: &LedgerRequest) -> Result<Vec<RecordRef>, Exception> {
        let stale = |books: &Books, r: &RecordRef| -> Result<(), Exception> {
            let id: u64 = r.id.parse().unwrap_or(u64::MAX);
            match books.records.get(&id) {
                None => Err(Exception::new(
                    ExceptionCode::LedgerUnknownReference,
                    format!("no record {}", r.id),
                )),
                Some(rec) if rec.token.to_string() != r.sync_token => Err(Exception::new(
                    ExceptionCode::LedgerStaleRecord,
                    format!("record {} changed since", r.id),
                )),
                Some(_) => Ok(()),
            }
        };
        let insert = |books: &mut Books, line: &PostingLine| {
            books.next += 1;
            let id = books.next;
            books.records.insert(
                id,
                SimRecord {
                    id: id.to_string(),
                    entry: req.key.clone(),
                    token: 0,
                    line: line.clone(),
                    fingerprint: req.fingerprint(&line.tier),
                },
            );
            RecordRef {
                id: id.to_string(),
                sync_token: "0".into(),
                tier: line.tier.clone(),
            }
        };
        match &req.op {
            LedgerOp::Create { lines } => Ok(lines.iter().map(|l| insert(books, l)).collect()),
            LedgerOp::Update { records, lines } => {
                for r in records {
                    stale(books, r)?;
                }
                let mut out = Vec::new();
                for l in lines {
                    match records.iter().find(|r| r.tier == l.tier) {
                        Some(r) => {
                            let id: u64 = r.id.parse().unwrap_or(u64::MAX);
                            let rec = books.records.get_mut(&id).expect("checked");
                            rec.token += 1;
                            rec.line = l.clone();
                            rec.fingerprint = req.fingerprint(&l.tier);
                            out.push(RecordRef {
                                id: r.id.clone(),
                                sync_token: rec.token.to_string(),
                                tier: l.tier.clone(),
                            });
                        }
                        None => out.push(insert(books, l)),
                    }
                }
                for r in records
                    .iter()
                    .filter(|r| !lines.iter().any(|l| l.tier == r.tier))
                {
                    books.records.remove(&r.id.parse().unwrap_or(u64::MAX));
                }
                Ok(out)
            }
            LedgerOp::Delete { records } => {
                for r in records {
                    stale(books, r)?;
                }
                for r in records {
                    books.records.remove(&r.id.parse().unwrap_or(u64::MAX));
                }
                Ok(Vec::new())
            }
        }
    }
}

#[async_trait]
impl Ledger for SimLedger {
    fn name(&self) -> &str {
        "sim"
    }

    async fn apply(&self, req: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.roll(self.faults.throttled) {
            return Err(LedgerError::RateLimited(Some(Duration::from_millis(1))));
        }
        if self.roll(self.faults.before) {
            return Err(LedgerError::Transient("503 before the work".into()));
        }
        let lose = self.roll(self.faults.lost);
        let refuse = matches!(req.op, LedgerOp::Create { .. }) && self.roll(self.faults.refused);
        let mut books = self.lock();
        let digest = serde_json::to_string(&req.op).unwrap_or_default();
        if self.faults.idempotency != Idempotency::Ignored {
            if let Some((d, answer)) = books.seen.get(&req.idempotency_key) {
                if *d != digest {
                    return Err(LedgerError::Rejected(Exception::new(
                        ExceptionCode::LedgerRejected,
                        "idempotency key reused for another request",
                    )));
                }
                return answer.clone().map_err(LedgerError::Rejected);
            }
        }
        let answer = if refuse || books.blocked.contains(&req.key) {
            books.blocked.insert(req.key.clone());
            Err(Exception::new(
                ExceptionCode::PeriodClosed,
                "the accounting period is closed",
            ))
        } else {
            Self::execute(&mut books, req)
        };
        let remember = match (&answer, self.faults.idempotency) {
            (Ok(_), Idempotency::Ignored) => false,
            (Ok(_), _) => true,
            (Err(_), Idempotency::ReplaysFaults) => true,
            (Err(_), _) => false,
        };
        if remember {
            books
                .seen
                .insert(req.idempotency_key.clone(), (digest, answer.clone()));
        }
        drop(books);
        match answer {
            Ok(_) if lose => Err(LedgerError::Transient(
                "the connection dropped after the work was done".into(),
            )),
            Ok(r) => Ok(r),
            Err(e) => Err(LedgerError::Rejected(e)),
        }
    }

    async fn read_books(&self, q: &BookQuery) -> Result<Option<Vec<BookRecord>>, LedgerError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if self.roll(self.faults.read_fails) {
            return Err(LedgerError::Transient("read timed out".into()));
        }
        Ok(Some(
            self.lock()
                .records
                .values()
                .filter(|r| {
                    q.covers(
                        r.line.txn_date,
                        Some(&r.line.party),
                        r.line.customer.as_deref(),
                    )
                })
                .map(|r| BookRecord {
                    id: r.id.clone(),
                    sync_token: r.token.to_string(),
                    fingerprint: r.fingerprint.clone(),
                    txn_date: r.line.txn_date,
                    party: Some(r.line.party.clone()),
                    minutes: r.line.minutes,
                    customer: r.line.customer.clone(),
                    billable: Some(r.line.billable),
                    service_item: r.line.service_item.clone(),
                    hourly_rate: r.line.hourly_rate.as_ref().map(|m| m.amount),
                    description: r.line.description.clone(),
                    locked: false,
                })
                .collect(),
        ))
    }
}

// ------------------------------------------------------------ crashes

/// Where in an effect the worker stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum When {
    Before,
    After,
}

/// Counts effects and stops the worker at the chosen ones.
pub struct Fuse {
    count: AtomicU64,
    plan: Mutex<BTreeMap<u64, When>>,
    tripped: AtomicBool,
    notify: tokio::sync::Notify,
    pub hits: Mutex<BTreeMap<String, u64>>,
}

impl Fuse {
    fn new(plan: BTreeMap<u64, When>) -> Self {
        Self {
            count: AtomicU64::new(0),
            plan: Mutex::new(plan),
            tripped: AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
            hits: Mutex::new(BTreeMap::new()),
        }
    }

    /// Around one effect: stops here for good if the plan says so.
    async fn around<T>(&self, what: &str, effect: impl std::future::Future<Output = T>) -> T {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        let when = self
            .plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&n);
        if when == Some(When::Before) {
            self.trip(format!("before {what}")).await;
        }
        let out = effect.await;
        if when == Some(When::After) {
            self.trip(format!("after {what}")).await;
        }
        out
    }

    async fn trip(&self, point: String) {
        *self
            .hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(point)
            .or_default() += 1;
        self.tripped.store(true, Ordering::SeqCst);
        self.notify.notify_one();
        std::future::pending::<()>().await;
    }
}

/// The store and the ledger as one crashing worker sees them.
pub struct Crashy {
    pub store: SqliteStore,
    pub ledger: Arc<dyn Ledger>,
    pub fuse: Arc<Fuse>,
}

#[async_trait]
impl EntryStore for Crashy {
    async fn get(&self, key: &EntryKey) -> StoreResult<Option<EntryState>> {
        self.store.get(key).await
    }
    async fn put(&self, state: &EntryState) -> StoreResult<u64> {
        self.fuse
            .around("entry-state write", self.store.put(state))
            .await
    }
    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        self.store.week(week).await
    }
    async fn by_status(&self, status: Status, limit: usize) -> StoreResult<Vec<EntryState>> {
        self.store.by_status(status, limit).await
    }
    async fn all(&self) -> StoreResult<Vec<EntryState>> {
        self.store.all().await
    }
    async fn by_source_dates(
        &self,
        source: Source,
        workspace: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>> {
        self.store
            .by_source_dates(source, workspace, from, to)
            .await
    }
    async fn claim(&self, key: &EntryKey, owner: &str, ttl: Duration) -> StoreResult<bool> {
        self.store.claim(key, owner, ttl).await
    }
    async fn release(&self, key: &EntryKey, owner: &str) -> StoreResult<()> {
        self.store.release(key, owner).await
    }
    async fn record_version(
        &self,
        entry: &timepost::model::NormalisedEntry,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.store.record_version(entry, received_at).await
    }
    async fn versions(&self, key: &EntryKey) -> StoreResult<Vec<timepost::ports::ReceivedVersion>> {
        self.store.versions(key).await
    }
}

#[async_trait]
impl MappingStore for Crashy {
    async fn snapshot(&self) -> StoreResult<Mappings> {
        self.store.snapshot().await
    }
    async fn version(&self) -> StoreResult<u64> {
        MappingStore::version(&self.store).await
    }
    async fn apply(&self, changes: Vec<MappingChange>) -> StoreResult<Vec<MappingChange>> {
        self.store.apply(changes).await
    }
    async fn history(
        &self,
        table: Option<MappingTable>,
        key: Option<&str>,
    ) -> StoreResult<Vec<MappingChange>> {
        self.store.history(table, key).await
    }
}

#[async_trait]
impl Journal for Crashy {
    async fn append(&self, record: JournalRecord) -> StoreResult<u64> {
        self.fuse
            .around("journal append", self.store.append(record))
            .await
    }
    async fn by_batch(&self, batch_id: &str) -> StoreResult<Vec<JournalRecord>> {
        self.store.by_batch(batch_id).await
    }
    async fn by_entry(&self, key: &EntryKey) -> StoreResult<Vec<JournalRecord>> {
        self.store.by_entry(key).await
    }
    async fn open_intent(&self, intent: &Intent) -> StoreResult<()> {
        self.fuse
            .around("intent write", self.store.open_intent(intent))
            .await
    }
    async fn close_intent(&self, intent: &Intent) -> StoreResult<()> {
        self.fuse
            .around("intent close", self.store.close_intent(intent))
            .await
    }
    async fn open_intents(&self, key: &EntryKey) -> StoreResult<Vec<Intent>> {
        self.store.open_intents(key).await
    }
    async fn stale_intents(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Intent>> {
        self.store.stale_intents(before, limit).await
    }
    async fn mark_dirty(&self, week: &WorkerWeek, why: &str) -> StoreResult<()> {
        self.fuse
            .around("dirty mark", self.store.mark_dirty(week, why))
            .await
    }
    async fn dirty_weeks(&self, limit: usize) -> StoreResult<Vec<WorkerWeek>> {
        self.store.dirty_weeks(limit).await
    }
    async fn clear_dirty(&self, week: &WorkerWeek) -> StoreResult<()> {
        self.fuse
            .around("dirty clear", self.store.clear_dirty(week))
            .await
    }
}

#[async_trait]
impl Queue for Crashy {
    async fn send_batch(&self, messages: &[QueueMessage]) -> StoreResult<Vec<String>> {
        self.store.send_batch(messages).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>> {
        self.store.receive(max, visibility).await
    }
    async fn delete(&self, receipt: &str) -> StoreResult<()> {
        self.fuse
            .around("queue delete", self.store.delete(receipt))
            .await
    }
    async fn retry_later(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        self.store.retry_later(receipt, delay).await
    }
    async fn retry_uncounted(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        self.store.retry_uncounted(receipt, delay).await
    }
    async fn dead_letter(
        &self,
        receipt: &str,
        reason: &str,
        code: Option<&str>,
    ) -> StoreResult<()> {
        self.fuse
            .around("dead-letter", self.store.dead_letter(receipt, reason, code))
            .await
    }
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        self.store.dead_letters(limit).await
    }
    async fn redrive(&self, id: &str) -> StoreResult<()> {
        self.store.redrive(id).await
    }
    async fn depth(&self) -> StoreResult<usize> {
        self.store.depth().await
    }
}

#[async_trait]
impl Ledger for Crashy {
    fn name(&self) -> &str {
        self.ledger.name()
    }
    async fn apply(&self, request: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError> {
        self.fuse
            .around(
                &format!("ledger {}", request.op.name()),
                self.ledger.apply(request),
            )
            .await
    }
    async fn read_books(&self, q: &BookQuery) -> Result<Option<Vec<BookRecord>>, LedgerError> {
        self.ledger.read_books(q).await
    }
}

// ------------------------------------------------------------ the run

/// What one seed did and found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seed: u64,
    pub messages: usize,
    pub crashes: u64,
    pub crash_points: BTreeMap<String, u64>,
    pub ledger_calls: u64,
    pub ledger_reads: u64,
    pub redriven: usize,
    pub violations: Vec<String>,
    pub faults: String,
    /// What a bookkeeper changed in the books outside timepost.
    pub changed_elsewhere: Vec<String>,
}

/// Per entry: the lines the books hold (tier, minutes, what they post to),
/// sorted.
pub type BookLines = BTreeMap<String, Vec<String>>;

fn describe(l: &PostingLine) -> String {
    format!(
        "{} {}min {} {} {:?} {:?} {:?} billable={} {}",
        l.tier,
        l.minutes,
        l.party.id(),
        l.txn_date,
        l.customer,
        l.service_item,
        l.payroll_item,
        l.billable,
        l.account
    )
}

fn book_lines(records: &[SimRecord]) -> BookLines {
    let mut out: BookLines = BTreeMap::new();
    for r in records {
        out.entry(r.entry.to_string())
            .or_default()
            .push(describe(&r.line));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn settings() -> (Config, WorkerConfig) {
    let config = Config::parse(timepost::demo::CONFIG, "sim config").expect("config");
    let mut w = config.worker.clone();
    w.backoff_base_ms = 0;
    w.backoff_cap_ms = 1;
    w.max_receives = 1_000;
    w.ledger_attempts = 3;
    (config, w)
}

async fn seeded_store() -> SqliteStore {
    let store = SqliteStore::in_memory().expect("store");
    let rows = csv_io::read(timepost::demo::MAPPINGS.as_bytes()).expect("mappings");
    let changes = diff(
        &store.snapshot().await.expect("snapshot"),
        &rows,
        false,
        "sim",
        Utc::now(),
        "sim",
    );
    store.apply(changes).await.expect("apply");
    store
}

struct World {
    store: SqliteStore,
    ledger: Arc<SimLedger>,
    config: Config,
    worker: WorkerConfig,
}

impl World {
    fn engine(&self, fuse: Arc<Fuse>) -> (Engine, Arc<Crashy>) {
        let crashy = Arc::new(Crashy {
            store: self.store.clone(),
            ledger: self.ledger.clone(),
            fuse,
        });
        let engine = Engine::new(
            crashy.clone(),
            crashy.clone(),
            crashy.clone(),
            crashy.clone(),
            self.config.rules.clone(),
            self.worker.clone(),
        );
        engine.watch_books(Arc::new(self.store.clone()), Arc::new(self.store.clone()));
        (engine, crashy)
    }
}

/// Deliver `messages` in order, each settled (through crashes and retries)
/// before the next; after each, redrive what finance fixed.
async fn deliver(
    world: &World,
    messages: &[QueueMessage],
    plan: BTreeMap<u64, When>,
    mut elsewhere: Option<(Rng, u64)>,
) -> Report {
    let fuse = Arc::new(Fuse::new(plan));
    let (mut engine, mut crashy) = world.engine(fuse.clone());
    let mut report = Report {
        messages: messages.len(),
        ..Report::default()
    };
    let mut pending: std::collections::VecDeque<QueueMessage> = messages.iter().cloned().collect();
    let mut rounds = 0u64;
    // After the messages: the books changed by someone else, then passes
    // over the books (with the sweep) until they are back.
    let mut watching = false;
    loop {
        rounds += 1;
        assert!(rounds < 1_000_000, "the simulation did not settle");
        let batch = world
            .store
            .receive(1, Duration::ZERO)
            .await
            .expect("receive");
        let Some(r) = batch.into_iter().next() else {
            if world.store.depth().await.expect("depth") > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            // Finance fixed what the books refused: redrive those entries.
            let fixed = world.ledger.fix_all();
            if !fixed.is_empty() {
                report.redriven += fixed.len();
                let redrives: Vec<QueueMessage> = fixed
                    .into_iter()
                    .map(|key| QueueMessage::Redrive {
                        key,
                        by: "finance".into(),
                    })
                    .collect();
                world.store.send_batch(&redrives).await.expect("send");
                continue;
            }
            if let Some(m) = pending.pop_front() {
                world.store.send_batch(&[m]).await.expect("send");
                continue;
            }
            if let Some((mut rng, n)) = elsewhere.take() {
                // The first pass only starts following the books.
                engine
                    .watch_books_pass(Duration::ZERO)
                    .await
                    .expect("start watching the books");
                report.changed_elsewhere = world.ledger.change_elsewhere(&mut rng, n);
                watching = true;
                continue;
            }
            if !watching {
                break;
            }
            let batch_id = new_batch_id();
            let sweep = engine.sweep_every(&batch_id, Duration::ZERO, Duration::ZERO);
            let crashed = tokio::select! {
                biased;
                _ = fuse.notify.notified() => true,
                res = sweep => {
                    if let Ok(r) = res {
                        let back = r.books.as_ref().is_some_and(|b| b.moved)
                            && r.books_error.is_none()
                            && r.busy == 0;
                        let dirty = world.store.dirty_weeks(1).await.expect("dirty");
                        if back && dirty.is_empty() {
                            watching = false;
                        }
                    }
                    false
                }
            };
            if fuse.tripped.swap(false, Ordering::SeqCst) || crashed {
                report.crashes += 1;
                world
                    .store
                    .release_owner(&engine.owner)
                    .expect("release claims");
                (engine, crashy) = world.engine(fuse.clone());
            }
            continue;
        };
        let batch_id = new_batch_id();
        let crashed = {
            let work = settle(&engine, crashy.as_ref(), &r, &batch_id);
            tokio::select! {
                biased;
                _ = fuse.notify.notified() => true,
                res = work => { res.expect("settle"); false }
            }
        };
        if fuse.tripped.swap(false, Ordering::SeqCst) || crashed {
            report.crashes += 1;
            // The worker is gone: its claims are released (a restarted
            // local process takes them over) and a new one starts.
            world
                .store
                .release_owner(&engine.owner)
                .expect("release claims");
            // Make the message it held visible again (its visibility
            // would run out).
            world
                .store
                .retry_later(&r.receipt, Duration::ZERO)
                .await
                .expect("make visible");
            (engine, crashy) = world.engine(fuse.clone());
        }
    }
    // No more crashes; what crashes left behind is finished by the sweep.
    fuse.plan.lock().unwrap_or_else(|p| p.into_inner()).clear();
    // Time passes: intents left open (a crash after the state was written)
    // are stale by now.
    engine
        .sweep_older_than(&new_batch_id(), Duration::ZERO)
        .await
        .expect("sweep");
    report.crash_points = fuse.hits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report
}

/// Run one seed: the clean run, the faulty run, the invariants.
pub async fn run(seed: u64) -> Report {
    let mut rng = Rng::new(seed);
    let messages = workload(&mut rng);
    let faults = Faults::draw(&mut rng);
    let (config, worker) = settings();

    let clean = World {
        store: seeded_store().await,
        ledger: Arc::new(SimLedger::new(Faults::none(), seed)),
        config: config.clone(),
        worker: worker.clone(),
    };
    deliver(&clean, &messages, BTreeMap::new(), None).await;

    // Crash points: a few effects of the run, before or after.
    let mut plan = BTreeMap::new();
    let crashes = rng.below(6);
    let span = (messages.len() as u64 * 6).max(10);
    for _ in 0..crashes {
        let at = rng.below(span);
        let when = if rng.chance(50) {
            When::Before
        } else {
            When::After
        };
        plan.insert(at, when);
    }
    let faulty = World {
        store: seeded_store().await,
        ledger: Arc::new(SimLedger::new(faults.clone(), seed)),
        config,
        worker,
    };
    // Someone changes records in the books outside timepost (a separate
    // generator, so the seeds' workloads and faults stay as they were),
    // and the worker may crash while the books are put back.
    let mut other = Rng::new(seed ^ 0x0b5e_55ed);
    let changes = other.below(4);
    if changes > 0 {
        for _ in 0..other.below(3) {
            let at = span + other.below(40);
            let when = if other.chance(50) {
                When::Before
            } else {
                When::After
            };
            plan.insert(at, when);
        }
    }
    let elsewhere = (changes > 0).then_some((other, changes));
    let mut report = deliver(&faulty, &messages, plan, elsewhere).await;
    report.seed = seed;
    report.faults = format!("{faults:?}");
    report.ledger_calls = faulty.ledger.calls.load(Ordering::Relaxed);
    report.ledger_reads = faulty.ledger.reads.load(Ordering::Relaxed);
    report.violations = check(&clean, &faulty).await;
    report
}

async fn check(clean: &World, faulty: &World) -> Vec<String> {
    let mut v = Vec::new();
    let records = faulty.ledger.records();
    let expected = book_lines(&clean.ledger.records());
    let actual = book_lines(&records);
    let keys: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    for k in keys {
        let (e, a) = (expected.get(k), actual.get(k));
        if e != a {
            v.push(format!(
                "books differ for {k}: should hold {e:?}, hold {a:?}"
            ));
        }
    }
    let mut fps: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        if let Some(fp) = &r.fingerprint {
            *fps.entry(fp).or_default() += 1;
        }
    }
    for (fp, n) in fps.iter().filter(|(_, n)| **n > 1) {
        v.push(format!("{n} records carry fingerprint {fp}"));
    }
    let states = faulty.store.all().await.expect("states");
    let clean_states: BTreeMap<String, Status> = clean
        .store
        .all()
        .await
        .expect("states")
        .into_iter()
        .map(|s| (s.entry.key.to_string(), s.status()))
        .collect();
    let mut named = BTreeSet::new();
    for s in &states {
        for r in &s.records {
            named.insert(r.id.clone());
            if !records
                .iter()
                .any(|b| b.id == r.id && b.entry == s.entry.key)
            {
                v.push(format!(
                    "{} names record {} that the books do not hold for it",
                    s.entry.key, r.id
                ));
            }
        }
        let want = clean_states.get(&s.entry.key.to_string());
        if want != Some(&s.status()) {
            v.push(format!(
                "{} ended {} (clean run: {want:?}; reason {:?})",
                s.entry.key,
                s.status(),
                s.reason
            ));
        }
    }
    for r in records.iter().filter(|r| !named.contains(&r.id)) {
        v.push(format!(
            "record {} of {} is in the books but no entry names it",
            r.id, r.entry
        ));
    }
    let open = faulty
        .store
        .stale_intents(Utc::now() + chrono::Duration::days(1), 100)
        .await
        .expect("intents");
    for i in open {
        v.push(format!("intent {} of {} left open", i.id, i.key));
    }
    let dirty = faulty.store.dirty_weeks(100).await.expect("dirty");
    for w in dirty {
        v.push(format!("week {w:?} left dirty"));
    }
    v
}
