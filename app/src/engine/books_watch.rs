//! The scheduled pass over changes made in the books outside timepost.
//!
//! A bookkeeper may edit or delete, in the accounting system, a time record
//! timepost posted. The engine would only notice at its next write to that
//! record (a stale sync token, then a retarget); until then the books and
//! what the worker-week should hold differ. The pass finds such changes
//! and hands the weeks to the existing convergence:
//!
//! 1. Read what changed since the last pass (the watermark
//!    `books:<ledger>` in the `Watermarks` port): the ledger's change feed
//!    ([`Ledger::book_changes`]) when it has one (the sandbox), else the
//!    books by date ([`Ledger::read_books`], one paged read over the work
//!    dates of the entries timepost posted or changed in the last
//!    [`READ_BACK_DAYS`] days): QuickBooks, whose change data capture does
//!    not cover time activities, and Xero, whose Projects API has none.
//! 2. Keep only records the entry states (the posting journal's outcome)
//!    say are ours, deleted or at another sync token than the state knows.
//!    Every other record is someone else's and is left alone.
//! 3. Per worker-week, under its claim: settle the entries' open intents
//!    (a write of ours still in flight is not a change by someone else;
//!    when the books hold neither the record such a write aimed at nor
//!    one it wrote, the record was deleted meanwhile: the entry stays
//!    posted, the settle audits it and marks the week dirty),
//!    read the entry's records again where they are, and make the state
//!    say what the books hold — a deleted record is no longer the entry's;
//!    a changed one keeps its id at its new sync token, and the line it
//!    holds now differs from what the week should hold, so the next
//!    convergence rewrites it (a billed record is never rewritten). Record
//!    an audit line in a bookkeeper's words and mark the week dirty.
//! 4. The sweep's dirty-week convergence (the same code every message
//!    runs) then posts what the week should hold: a deleted record is
//!    created again, a changed one updated back.
//!    An entry whose current version is not posted (it awaits approval,
//!    is held, refused or ignored) still holds what was last posted for it,
//!    and convergence leaves it alone; for such an entry the pass writes
//!    that back itself, through a write-ahead intent like any write
//!    (`keep_last_posted`): a deleted record is created again, a changed
//!    one set back, a billed one left as it is. A settle after a crash
//!    keeps the line of a record the books lack, so the next pass still
//!    sees it missing; a refusal leaves the watermark for the next pass.
//! 5. Only when every week of the pass was handled does the watermark move
//!    (to when the pass started); a week held by a live worker, or a
//!    failed read, leaves it for the next pass. Seeing a change twice is
//!    harmless: after step 3 the state holds the record's new sync token.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::{bump, Engine, EngineError};
use crate::intent::scope;
use crate::intent::IntentOutcome;
use crate::model::EntryKey;
use crate::ports::{AuditLog, AuditRecord, WatermarkStore, WorkerWeek};
use crate::state::{EntryState, Status};
use timepost_core::ledger::books::{
    differences, hours, BookChanges, BookQuery, BookRecord, Closeness,
};
use timepost_core::ledger::{Ledger, LedgerError, LedgerOp, PostingLine, RecordRef};

/// How often the sweep looks at the books (at most).
pub const BOOKS_EVERY: Duration = Duration::from_secs(15 * 60);

/// A change feed is read from this long before the watermark, so a clock
/// that differs between timepost and the ledger loses nothing.
pub const FEED_OVERLAP: Duration = Duration::from_secs(5 * 60);

/// Without a change feed, the pass compares the records of entries
/// timepost posted or changed in this many days: the period bookkeepers
/// still edit.
pub const READ_BACK_DAYS: i64 = 35;

/// At most this many posted entries are compared with the books per pass.
pub const MAX_ENTRIES: usize = 100_000;

/// The ports the pass keeps its watermark and audit lines in.
#[derive(Clone)]
pub struct BooksWatch {
    pub watermarks: Arc<dyn WatermarkStore>,
    pub audit: Arc<dyn AuditLog>,
}

/// What one pass over the books found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct BooksReport {
    /// The first pass: the watermark was set, nothing read.
    pub started: bool,
    /// How the changes were read: `feed` or `read_books` (with why).
    pub how: String,
    /// Reads of the books the pass made.
    pub reads: u64,
    /// Our records found deleted outside timepost.
    pub deleted: usize,
    /// Our records found changed outside timepost.
    pub changed: usize,
    /// Worker-weeks marked dirty for convergence.
    pub weeks: usize,
    /// Weeks held by a live worker: left, with the watermark, for the next
    /// pass.
    pub busy: usize,
    /// Entries whose last posted time the ledger refused to take back:
    /// left, with the watermark, for the next pass.
    pub refused: usize,
    /// The audit lines written, in words.
    pub lines: Vec<String>,
    /// Whether the watermark moved.
    pub moved: bool,
}

/// The watermark of the pass over `ledger`'s books.
pub fn watermark_name(ledger: &str) -> String {
    format!("books:{ledger}")
}

impl Engine {
    /// Watch the books: the sweep then reads what changed in them outside
    /// timepost (watermark in `watermarks`, what it found in `audit`).
    /// Set once; later calls keep the first ports.
    pub fn watch_books(&self, watermarks: Arc<dyn WatermarkStore>, audit: Arc<dyn AuditLog>) {
        let _ = self.books_watch.set(BooksWatch { watermarks, audit });
    }

    /// One pass over the changes made in the books (see the module), when
    /// the engine watches them and the last pass is at least `every` old.
    /// `None` when it did not run.
    pub async fn watch_books_pass(
        &self,
        every: Duration,
    ) -> Result<Option<BooksReport>, EngineError> {
        let Some(watch) = self.books_watch.get() else {
            return Ok(None);
        };
        let started_at = Utc::now();
        let name = watermark_name(self.ledger.name());
        let Some(last) = watch.watermarks.get_watermark(&name).await? else {
            // Nothing to compare with yet: changes are followed from now.
            watch.watermarks.set_watermark(&name, started_at).await?;
            return Ok(Some(BooksReport {
                started: true,
                moved: true,
                ..BooksReport::default()
            }));
        };
        let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::zero());
        if started_at - last < every {
            return Ok(None);
        }
        let mut report = BooksReport::default();
        let posted = self.watched().await?;
        let overlap = chrono::Duration::from_std(FEED_OVERLAP).unwrap_or(chrono::Duration::zero());
        bump(&self.counters.ledger_reads);
        report.reads += 1;
        let suspects = match self
            .ledger
            .book_changes(last - overlap)
            .await
            .map_err(EngineError::Books)?
        {
            BookChanges::Changes { changed, deleted } => {
                report.how = "feed".into();
                suspects_from_feed(&posted, &changed, &deleted)
            }
            BookChanges::ReadBooks { why } => {
                report.how = format!("read_books ({why})");
                let since = started_at - chrono::Duration::days(READ_BACK_DAYS);
                let recent: Vec<&EntryState> =
                    posted.iter().filter(|s| s.updated_at >= since).collect();
                match scope(recent.iter().flat_map(|s| s.posted_lines.iter())) {
                    None => BTreeMap::new(),
                    Some(q) => {
                        // Every party and customer: one paged read.
                        let query = BookQuery {
                            parties: Vec::new(),
                            customers: Vec::new(),
                            ..q
                        };
                        bump(&self.counters.ledger_reads);
                        report.reads += 1;
                        let books = self
                            .ledger
                            .read_books(&query)
                            .await
                            .map_err(EngineError::Books)?
                            .unwrap_or_default();
                        suspects_from_books(&recent, &query, &books)
                    }
                }
            }
        };
        let mut complete = true;
        for (week, keys) in suspects {
            let outcome = self
                .with_weeks(BTreeSet::from([week.clone()]), |_held| {
                    let (week, keys) = (week.clone(), keys.clone());
                    let watch = watch.clone();
                    async move { self.adopt_books(&week, &keys, &watch).await }
                })
                .await;
            match outcome {
                Ok((found, reads, refused)) => {
                    report.reads += reads;
                    if refused > 0 {
                        report.refused += refused;
                        complete = false;
                    }
                    for f in &found {
                        match f.kind {
                            DELETED => report.deleted += 1,
                            _ => report.changed += 1,
                        }
                        report.lines.push(f.said.clone());
                    }
                    if !found.is_empty() {
                        report.weeks += 1;
                    }
                }
                Err(EngineError::Busy(_)) => {
                    report.busy += 1;
                    complete = false;
                }
                Err(e) => return Err(e),
            }
        }
        if complete {
            watch.watermarks.set_watermark(&name, started_at).await?;
            report.moved = true;
        }
        tracing::info!(how = %report.how, deleted = report.deleted, changed = report.changed, weeks = report.weeks, busy = report.busy, "books watched");
        Ok(Some(report))
    }
}

/// How a record is compared with the line timepost last posted to it:
/// the work itself (hours, date, worker, customer, billable), not the
/// wording of its description.
const SAME_WORK: Closeness = Closeness {
    tolerance_minutes: 0,
    description: false,
    service_item: false,
};

const DELETED: &str = "deleted in the books";
const CHANGED: &str = "changed in the books";

/// One of our records found deleted or changed, with the audit line.
struct Found {
    kind: &'static str,
    said: String,
}

/// Weeks (and their entries) naming a record the feed lists as deleted, or
/// as changed to a sync token the state does not know (or, for an entry
/// whose current version is not posted, to other work than it should
/// hold), and entries missing a record they should have.
fn suspects_from_feed(
    posted: &[EntryState],
    changed: &[BookRecord],
    deleted: &[String],
) -> BTreeMap<WorkerWeek, BTreeSet<EntryKey>> {
    let deleted: BTreeSet<&str> = deleted.iter().map(String::as_str).collect();
    let changed: BTreeMap<&str, &BookRecord> = changed.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut out: BTreeMap<WorkerWeek, BTreeSet<EntryKey>> = BTreeMap::new();
    for s in posted {
        let touched = s.records.iter().any(|r| {
            deleted.contains(r.id.as_str())
                || changed
                    .get(r.id.as_str())
                    .is_some_and(|b| b.sync_token != r.sync_token || holds_other_work(s, r, b))
        }) || lacks_a_record(s);
        if touched {
            out.entry(WorkerWeek::of(&s.entry))
                .or_default()
                .insert(s.entry.key.clone());
        }
    }
    out
}

/// Weeks (and their entries) naming a record in `query`'s range that the
/// books no longer hold, or hold at another sync token.
fn suspects_from_books(
    posted: &[&EntryState],
    query: &BookQuery,
    books: &[BookRecord],
) -> BTreeMap<WorkerWeek, BTreeSet<EntryKey>> {
    let held: BTreeMap<&str, &BookRecord> = books.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut out: BTreeMap<WorkerWeek, BTreeSet<EntryKey>> = BTreeMap::new();
    for s in posted {
        let touched = s.records.iter().any(|r| {
            let Some(line) = s.posted_lines.iter().find(|l| l.tier == r.tier) else {
                return false;
            };
            query.covers(line.txn_date, None, None)
                && match held.get(r.id.as_str()) {
                    None => true,
                    Some(b) => b.sync_token != r.sync_token || holds_other_work(s, r, b),
                }
        }) || lacks_a_record(s);
        if touched {
            out.entry(WorkerWeek::of(&s.entry))
                .or_default()
                .insert(s.entry.key.clone());
        }
    }
    out
}

/// Whether `book`, the record `r` of an entry whose current version is not
/// posted, holds other work than was last posted to it (after a write back
/// cut short, the state may know its sync token and still expect other
/// hours). Posted entries are compared by sync token alone: their state
/// takes what the books hold.
fn holds_other_work(s: &EntryState, r: &RecordRef, book: &BookRecord) -> bool {
    s.status() != Status::Posted
        && !book.locked
        && s.posted_lines
            .iter()
            .find(|l| l.tier == r.tier)
            .is_some_and(|l| !differences(l, book, SAME_WORK).is_empty())
}

/// Whether an entry whose current version is not posted expects a record
/// for a line that has none (its write back was cut short).
fn lacks_a_record(s: &EntryState) -> bool {
    s.status() != Status::Posted
        && s.posted_lines
            .iter()
            .any(|l| !s.records.iter().any(|r| r.tier == l.tier))
}

impl Engine {
    /// Under `week`'s claim: make the states of `keys` say what the books
    /// hold for their records, audit each change, mark the week dirty.
    async fn adopt_books(
        &self,
        week: &WorkerWeek,
        keys: &BTreeSet<EntryKey>,
        watch: &BooksWatch,
    ) -> Result<(Vec<Found>, u64, usize), EngineError> {
        let mut found = Vec::new();
        let mut reads = 0;
        let mut refused = 0;
        for key in keys {
            let st = self.entries.get(key).await?;
            // A write of ours still open is settled first: it is not a
            // change by someone else.
            let Some(mut st) = self.settle_intents(key, st, None).await? else {
                continue;
            };
            if WorkerWeek::of(&st.entry) != *week || (st.records.is_empty() && !lacks_a_record(&st))
            {
                continue;
            }
            let Some(query) = scope(st.posted_lines.iter()) else {
                continue;
            };
            bump(&self.counters.ledger_reads);
            reads += 1;
            let Some(books) = self
                .ledger
                .read_books(&query)
                .await
                .map_err(EngineError::Books)?
            else {
                continue;
            };
            if st.status() != Status::Posted {
                let (said, restored) = self.keep_last_posted(st, &books, watch).await?;
                found.extend(said);
                if !restored {
                    refused += 1;
                }
                continue;
            }
            let mut records: Vec<RecordRef> = Vec::new();
            let mut lines: Vec<PostingLine> = Vec::new();
            let mut said: Vec<String> = Vec::new();
            let mut kinds: Vec<&'static str> = Vec::new();
            for r in &st.records {
                let line = st.posted_lines.iter().find(|l| l.tier == r.tier).cloned();
                let book = books.iter().find(|b| b.id == r.id);
                match (book, line) {
                    (None, Some(line)) => {
                        kinds.push(DELETED);
                        said.push(deleted_words(
                            r,
                            &line,
                            ledger_words(self.ledger.as_ref()),
                            "",
                            "timepost posts the time again as the worker's week should hold it",
                        ));
                    }
                    (None, None) => {}
                    (Some(b), line) => {
                        let mut kept = r.clone();
                        kept.sync_token = b.sync_token.clone();
                        records.push(kept);
                        let Some(mut line) = line else { continue };
                        if b.sync_token == r.sync_token {
                            lines.push(line);
                            continue;
                        }
                        let diff = differences(
                            &line,
                            b,
                            Closeness {
                                tolerance_minutes: 0,
                                description: true,
                                service_item: false,
                            },
                        );
                        if b.locked {
                            said.push(format!(
                                "Time record {} was changed in {} outside timepost and is billed now, so timepost leaves it as it is{}.",
                                r.id,
                                ledger_words(self.ledger.as_ref()),
                                if diff.is_empty() { String::new() } else { format!(" ({})", diff.join(", ")) }
                            ));
                            kinds.push(CHANGED);
                        } else if !diff.is_empty() {
                            // The state says what the record holds now, so
                            // convergence sees it differ and rewrites it.
                            line.minutes = b.minutes;
                            line.txn_date = b.txn_date;
                            line.customer = b.customer.clone();
                            line.description = b.description.clone();
                            if let Some(p) = &b.party {
                                line.party = p.clone();
                            }
                            if let Some(billable) = b.billable {
                                line.billable = billable;
                            }
                            said.push(format!(
                                "Time record {} was changed in {} outside timepost ({}); timepost sets it back to what the worker's week should hold.",
                                r.id,
                                ledger_words(self.ledger.as_ref()),
                                diff.join(", ")
                            ));
                            kinds.push(CHANGED);
                        }
                        lines.push(line);
                    }
                }
            }
            if records == st.records && lines == st.posted_lines {
                continue;
            }
            if !said.is_empty() {
                // Before the state says what the books hold (after it, the
                // change no longer shows): a failure from here on leaves the
                // week for convergence.
                self.journal
                    .mark_dirty(week, "time records changed in the books outside timepost")
                    .await?;
            }
            let now = Utc::now();
            st.records = records;
            st.posted_lines = lines;
            st.updated_at = now;
            st.revision = self.entries.put(&st).await?;
            for (detail, kind) in said.iter().zip(&kinds) {
                audit(&watch.audit, key, detail, now).await?;
                found.push(Found {
                    kind,
                    said: detail.clone(),
                });
            }
            tracing::warn!(entry = %key, changes = ?said, "records changed in the books outside timepost");
        }
        Ok((found, reads, refused))
    }
}

impl Engine {
    /// The states the pass compares with the books: every entry that holds
    /// records in them. Besides posted entries, an entry awaiting approval,
    /// held, refused or ignored may still hold what was last posted for it.
    async fn watched(&self) -> Result<Vec<EntryState>, EngineError> {
        let mut out = Vec::new();
        for status in [
            Status::Posted,
            Status::AwaitingApproval,
            Status::Held,
            Status::Exception,
            Status::Ignored,
        ] {
            out.extend(
                self.entries
                    .by_status(status, MAX_ENTRIES)
                    .await?
                    .into_iter()
                    .filter(|s| !s.records.is_empty() || lacks_a_record(s)),
            );
        }
        Ok(out)
    }

    /// For an entry whose current version is not posted (it awaits
    /// approval, is held, refused or ignored) but that still holds records:
    /// the books should keep what was last posted for it (its state's
    /// lines), whatever someone did to them. A record deleted or changed
    /// there is written back (a billed one is left as it is, and the state
    /// takes what it holds); each first sighting is audited. Returns the
    /// audit lines and whether the books now hold what they should (`false`
    /// when the ledger refused the write back: the state still says what
    /// was last posted, so the next pass tries again).
    ///
    /// Crash safety: the write back goes through a write-ahead intent like
    /// any write, aimed at the records the books hold now. A crash before
    /// the call leaves the state as it was (the change shows again); a
    /// crash after it is settled from the books, and the settle keeps, for
    /// such an entry, the last posted line of any tier the books lack
    /// ([`Engine::settle_intents`]), so the next pass still sees a record
    /// missing or holding other hours than it should.
    async fn keep_last_posted(
        &self,
        mut st: EntryState,
        books: &[BookRecord],
        watch: &BooksWatch,
    ) -> Result<(Vec<Found>, bool), EngineError> {
        let key = st.entry.key.clone();
        let words = ledger_words(self.ledger.as_ref());
        let mut found = Vec::new();
        let mut held: Vec<RecordRef> = Vec::new();
        let mut rewrite = false;
        for r in &st.records {
            let line = st.posted_lines.iter().find(|l| l.tier == r.tier);
            let Some(b) = books.iter().find(|b| b.id == r.id) else {
                if let Some(line) = line {
                    rewrite = true;
                    found.push(Found {
                        kind: DELETED,
                        said: deleted_words(
                            r,
                            line,
                            words,
                            "",
                            "its newer version is not posted yet, so timepost posts the time again as it was last posted",
                        ),
                    });
                }
                continue;
            };
            held.push(RecordRef {
                id: r.id.clone(),
                sync_token: b.sync_token.clone(),
                tier: r.tier.clone(),
            });
            let Some(line) = line else { continue };
            let diff = differences(line, b, SAME_WORK);
            if diff.is_empty() {
                continue;
            }
            let first = b.sync_token != r.sync_token;
            if b.locked {
                // Billed: never rewritten; the state takes what it holds.
                if first {
                    found.push(Found {
                        kind: CHANGED,
                        said: format!(
                            "Time record {} was changed in {words} outside timepost and is billed now, so timepost leaves it as it is ({}).",
                            r.id,
                            diff.join(", ")
                        ),
                    });
                }
                if let Some(l) = st.posted_lines.iter_mut().find(|l| l.tier == r.tier) {
                    l.minutes = b.minutes;
                    l.txn_date = b.txn_date;
                    l.customer = b.customer.clone();
                    if let Some(billable) = b.billable {
                        l.billable = billable;
                    }
                }
                continue;
            }
            rewrite = true;
            if first {
                found.push(Found {
                    kind: CHANGED,
                    said: format!(
                        "Time record {} was changed in {words} outside timepost ({}); its newer version is not posted yet, so timepost sets it back to what was last posted.",
                        r.id,
                        diff.join(", ")
                    ),
                });
            }
        }
        // A tier whose record a settle found missing (see above).
        if st
            .posted_lines
            .iter()
            .any(|l| !st.records.iter().any(|r| r.tier == l.tier))
        {
            rewrite = true;
        }
        let now = Utc::now();
        for f in &found {
            audit(&watch.audit, &key, &f.said, now).await?;
        }
        if !rewrite {
            if held != st.records {
                st.records = held;
                st.updated_at = now;
                st.revision = self.entries.put(&st).await?;
            }
            return Ok((found, true));
        }
        // The request carries the version the books hold, not the newer one
        // that is not posted: a settle after a crash records that one.
        let mut as_posted = st.clone();
        as_posted.records = held.clone();
        if let Some(v) = &st.posted_version {
            as_posted.entry.version = v.clone();
        }
        let op = LedgerOp::Update {
            records: held,
            lines: st.posted_lines.clone(),
        };
        let batch_id = crate::engine::new_batch_id();
        match self.execute(&as_posted, op, &batch_id, now).await {
            Ok((mut intent, last)) => {
                st.records = last.records;
                st.posted_lines = last.lines;
                st.updated_at = now;
                st.revision = self.entries.put(&st).await?;
                intent.outcome = IntentOutcome::Applied;
                self.close(&intent).await;
                tracing::warn!(entry = %key, "wrote back what was last posted after a change in the books");
                Ok((found, true))
            }
            Err(LedgerError::Rejected(e)) => {
                audit(
                    &watch.audit,
                    &key,
                    &format!(
                        "{words} refused to take back the time last posted for this entry ({}); timepost tries again at its next look at the books.",
                        e.message
                    ),
                    now,
                )
                .await?;
                tracing::warn!(entry = %key, reason = %e.message, "could not write back what was last posted");
                Ok((found, false))
            }
            Err(error) => Err(EngineError::LedgerUnavailable { key, error }),
        }
    }
}

impl Engine {
    /// Audit lines for records an interrupted write of ours aimed at and
    /// the books no longer hold (deleted outside timepost while the write
    /// was open), found when the write is settled; the week is converged
    /// again, which posts the time anew. Nothing when the books are not
    /// watched.
    pub(crate) async fn audit_gone_after_settle(
        &self,
        key: &EntryKey,
        gone: &[(&RecordRef, &PostingLine)],
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let Some(watch) = self.books_watch.get() else {
            return Ok(());
        };
        for (r, line) in gone {
            let detail = deleted_words(
                r,
                line,
                ledger_words(self.ledger.as_ref()),
                " while timepost was changing it",
                "timepost posts the time again as the worker's week should hold it",
            );
            audit(&watch.audit, key, &detail, now).await?;
        }
        Ok(())
    }
}

/// "Time record R (h for worker on date) was deleted in <ledger> outside
/// timepost<when>; <then>." — the audit line of one of our records gone.
fn deleted_words(
    r: &RecordRef,
    line: &PostingLine,
    ledger: &str,
    when: &str,
    then: &str,
) -> String {
    format!(
        "Time record {} ({} for {} on {}) was deleted in {ledger} outside timepost{when}; {then}.",
        r.id,
        hours(line.minutes),
        line.party.id(),
        line.txn_date,
    )
}

/// The accounting system, as a bookkeeper names it.
fn ledger_words(ledger: &dyn Ledger) -> &'static str {
    match ledger.name() {
        "qbo" => "QuickBooks",
        "xero" => "Xero",
        _ => "the books",
    }
}

async fn audit(
    log: &Arc<dyn AuditLog>,
    key: &EntryKey,
    detail: &str,
    at: DateTime<Utc>,
) -> Result<(), EngineError> {
    log.record(AuditRecord {
        seq: 0,
        at,
        who: "timepost".into(),
        role: "system".into(),
        action: "changed_in_books".into(),
        entry: Some(key.to_string()),
        detail: detail.to_string(),
    })
    .await?;
    Ok(())
}
