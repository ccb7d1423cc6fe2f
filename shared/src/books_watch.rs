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
//!    (a write of ours still in flight is not a change by someone else),
//!    read the entry's records again where they are, and make the state
//!    say what the books hold — a deleted record is no longer the entry's;
//!    a changed one keeps its id at its new sync token, and the line it
//!    holds now differs from what the week should hold, so the next
//!    convergence rewrites it (a billed record is never rewritten). Record
//!    an audit line in a bookkeeper's words and mark the week dirty.
//! 4. The sweep's dirty-week convergence (the same code every message
//!    runs) then posts what the week should hold: a deleted record is
//!    created again, a changed one updated back.
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
use crate::ledger::books::{differences, hours, BookChanges, BookQuery, BookRecord, Closeness};
use crate::ledger::{Ledger, PostingLine, RecordRef};
use crate::model::EntryKey;
use crate::ports::{AuditLog, AuditRecord, WatermarkStore, WorkerWeek};
use crate::state::{EntryState, Status};

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
        let posted = self.entries.by_status(Status::Posted, MAX_ENTRIES).await?;
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
                Ok((found, reads)) => {
                    report.reads += reads;
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

const DELETED: &str = "deleted in the books";
const CHANGED: &str = "changed in the books";

/// One of our records found deleted or changed, with the audit line.
struct Found {
    kind: &'static str,
    said: String,
}

/// Weeks (and their entries) naming a record the feed lists as deleted, or
/// as changed to a sync token the state does not know.
fn suspects_from_feed(
    posted: &[EntryState],
    changed: &[BookRecord],
    deleted: &[String],
) -> BTreeMap<WorkerWeek, BTreeSet<EntryKey>> {
    let deleted: BTreeSet<&str> = deleted.iter().map(String::as_str).collect();
    let changed: BTreeMap<&str, &str> = changed
        .iter()
        .map(|b| (b.id.as_str(), b.sync_token.as_str()))
        .collect();
    let mut out: BTreeMap<WorkerWeek, BTreeSet<EntryKey>> = BTreeMap::new();
    for s in posted {
        let touched = s.records.iter().any(|r| {
            deleted.contains(r.id.as_str())
                || changed
                    .get(r.id.as_str())
                    .is_some_and(|t| *t != r.sync_token)
        });
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
    let held: BTreeMap<&str, &str> = books
        .iter()
        .map(|b| (b.id.as_str(), b.sync_token.as_str()))
        .collect();
    let mut out: BTreeMap<WorkerWeek, BTreeSet<EntryKey>> = BTreeMap::new();
    for s in posted {
        let touched = s.records.iter().any(|r| {
            let Some(line) = s.posted_lines.iter().find(|l| l.tier == r.tier) else {
                return false;
            };
            query.covers(line.txn_date, None, None)
                && held.get(r.id.as_str()) != Some(&r.sync_token.as_str())
        });
        if touched {
            out.entry(WorkerWeek::of(&s.entry))
                .or_default()
                .insert(s.entry.key.clone());
        }
    }
    out
}

impl Engine {
    /// Under `week`'s claim: make the states of `keys` say what the books
    /// hold for their records, audit each change, mark the week dirty.
    async fn adopt_books(
        &self,
        week: &WorkerWeek,
        keys: &BTreeSet<EntryKey>,
        watch: &BooksWatch,
    ) -> Result<(Vec<Found>, u64), EngineError> {
        let mut found = Vec::new();
        let mut reads = 0;
        for key in keys {
            let st = self.entries.get(key).await?;
            // A write of ours still open is settled first: it is not a
            // change by someone else.
            let Some(mut st) = self.settle_intents(key, st, None).await? else {
                continue;
            };
            if st.status != Status::Posted || WorkerWeek::of(&st.entry) != *week {
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
                        said.push(format!(
                            "Time record {} ({} for {} on {}) was deleted in {} outside timepost; timepost posts the time again as the worker's week should hold it.",
                            r.id,
                            hours(line.minutes),
                            line.party.id(),
                            line.txn_date,
                            ledger_words(self.ledger.as_ref()),
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
        if !found.is_empty() {
            self.journal
                .mark_dirty(week, "time records changed in the books outside timepost")
                .await?;
        }
        Ok((found, reads))
    }
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
