//! Three-way reconciliation: the tracker, timepost and the books, per
//! period, per employee / vendor, per project / customer and per day.
//!
//! - this module: the sides as plain data, the classified [`Break`]s, and
//!   [`compare`], a pure function from the three sides to the breaks and
//!   the per-day figures;
//! - [`gather`]: the I/O that fills the sides (entry states from the
//!   `EntryStore`, a fresh tracker listing through the Harvest or Toggl
//!   poller when configured, the books through [`timepost_core::ledger::Ledger::read_books`])
//!   and stores the run (the [`ReconcileStore`] port);
//! - [`resolve`]: what finance does about one break (re-post, accept the
//!   books' version, dismiss with a reason), audited.
//!
//! A break's id is derived from what it is about (class, entry, record),
//! so the same break found again by the next run keeps its id; a dismissed
//! break is shown as dismissed, not counted.

pub mod gather;
pub mod kpi;
pub mod resolve;
pub mod scheduled;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::exceptions::ExceptionCode;
use crate::ports::StoreResult;
use timepost_core::ledger::books::{differences, hours, BookRecord, Closeness};
use timepost_core::ledger::{PostingLine, RecordRef};

pub use crate::config::reconcile::ReconcileConfig;

/// The dates a run covers, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// `week` (the last complete Monday–Sunday week before `today`),
    /// `month` (the last complete calendar month) or `FROM..TO`
    /// (`YYYY-MM-DD..YYYY-MM-DD`).
    pub fn parse(text: &str, today: NaiveDate) -> Result<Self, String> {
        match text {
            "week" => {
                let this = crate::model::week_start(today);
                let from = this - chrono::Duration::days(7);
                Ok(Self {
                    from,
                    to: this - chrono::Duration::days(1),
                })
            }
            "month" => {
                let first = today.with_day(1).unwrap_or(today);
                let to = first - chrono::Duration::days(1);
                Ok(Self {
                    from: to.with_day(1).unwrap_or(to),
                    to,
                })
            }
            range => {
                let bad = || {
                    format!("`{range}` is not a period: week, month or FROM..TO (dates YYYY-MM-DD)")
                };
                let (a, b) = range.split_once("..").ok_or_else(bad)?;
                let from: NaiveDate = a.trim().parse().map_err(|_| bad())?;
                let to: NaiveDate = b.trim().parse().map_err(|_| bad())?;
                if to < from {
                    return Err(format!("the period ends ({to}) before it starts ({from})"));
                }
                Ok(Self { from, to })
            }
        }
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        d >= self.from && d <= self.to
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.from, self.to)
    }
}

/// One entry as the tracker has it: received by timepost, or listed by the
/// tracker's API just now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerEntry {
    /// The entry key's text form.
    pub key: String,
    /// The tracker user.
    pub worker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub date: NaiveDate,
    /// Worked minutes (rounded to the nearest minute).
    pub minutes: i64,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub deleted: bool,
}

impl TrackerEntry {
    pub fn of(e: &crate::model::NormalisedEntry) -> Self {
        Self {
            key: e.key.to_string(),
            worker: e.worker.tracker_user_id.clone(),
            project: e.project.as_ref().map(|p| p.id.clone()),
            date: e.work_date,
            minutes: (e.duration_secs + 30).div_euclid(60),
            updated_at: e.version.updated_at,
            deleted: e.deleted,
        }
    }
}

/// The tracker side: what timepost received, and (when the tracker's API
/// can list a period and it is configured) what the tracker lists now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerSide {
    pub received: Vec<TrackerEntry>,
    /// `None`: no listing (the source cannot list, or no poller is set up).
    pub listed: Option<Vec<TrackerEntry>>,
    /// Which tracker the listing came from (`harvest`, `toggl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_from: Option<String>,
}

/// What timepost says one entry should have in the books: its records and
/// the lines they were posted with (the entry state's outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The entry key's text form.
    pub key: String,
    pub worker: String,
    /// Whether the entry is meant to be in the books (status `posted`).
    pub posted: bool,
    /// A newer version of the entry waits to reach the books.
    pub newer_version: bool,
    pub lines: Vec<PostingLine>,
    pub records: Vec<RecordRef>,
}

impl Expected {
    pub fn of(s: &crate::state::EntryState) -> Self {
        Self {
            key: s.entry.key.to_string(),
            worker: s.entry.worker.tracker_user_id.clone(),
            posted: s.status() == crate::state::Status::Posted,
            newer_version: s
                .posted_version
                .as_ref()
                .is_some_and(|v| *v != s.entry.version),
            lines: s.posted_lines.clone(),
            records: s.records.clone(),
        }
    }
}

/// The three sides of one period, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sides {
    pub tracker: TrackerSide,
    pub timepost: Vec<Expected>,
    /// Every time record the books hold in the period, whoever wrote it.
    pub books: Vec<BookRecord>,
}

/// One disagreement, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Break {
    /// Stable across runs for the same class, entry and record.
    pub id: String,
    pub code: ExceptionCode,
    /// The specific sentence for this break (names the record, the hours).
    pub said: String,
    pub fix_hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The record in the books it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
    /// What timepost expects / what the books hold, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub books_minutes: Option<i64>,
    /// Information only (not counted as a break).
    #[serde(default)]
    pub info: bool,
    /// Set when someone dismissed it (the reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dismissed: Option<String>,
}

impl Break {
    fn new(code: ExceptionCode, entry: Option<&str>, record: Option<&str>, said: String) -> Self {
        Self {
            id: break_id(code, entry, record),
            code,
            said,
            fix_hint: code.fix_hint().to_string(),
            entry: entry.map(str::to_string),
            record: record.map(str::to_string),
            party: None,
            customer: None,
            day: None,
            expected_minutes: None,
            books_minutes: None,
            info: false,
            dismissed: None,
        }
    }

    fn at(mut self, party: Option<&str>, customer: Option<&str>, day: NaiveDate) -> Self {
        self.party = party.map(str::to_string);
        self.customer = customer.map(str::to_string);
        self.day = Some(day);
        self
    }

    fn minutes(mut self, expected: Option<i64>, books: Option<i64>) -> Self {
        self.expected_minutes = expected;
        self.books_minutes = books;
        self
    }

    /// Counted as a break (not information, not dismissed).
    pub fn counts(&self) -> bool {
        !self.info && self.dismissed.is_none()
    }
}

/// `b-` and 12 hex digits of SHA-256(code, entry, record).
pub fn break_id(code: ExceptionCode, entry: Option<&str>, record: Option<&str>) -> String {
    let mut h = Sha256::new();
    for part in [code.as_str(), entry.unwrap_or(""), record.unwrap_or("")] {
        h.update(part.as_bytes());
        h.update(b"\x1f");
    }
    format!("b-{}", &hex::encode(h.finalize())[..12])
}

/// One day × person × customer: minutes on each side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub day: NaiveDate,
    /// The ledger party id (or `tracker:<user>` for time not posted).
    pub party: String,
    /// The customer / project in the books (or the tracker project).
    pub customer: String,
    /// Worked minutes timepost received.
    pub tracker_minutes: i64,
    /// Minutes the tracker lists now (when listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_minutes: Option<i64>,
    /// Minutes timepost's records should hold.
    pub timepost_minutes: i64,
    /// Minutes the books hold in records timepost wrote.
    pub books_minutes: i64,
    /// Minutes the books hold in records timepost did not write.
    pub foreign_minutes: i64,
}

/// What one comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    pub breaks: Vec<Break>,
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Breaks per code (counted ones only).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        counts(&self.breaks)
    }
}

/// Counted breaks per code.
pub fn counts(breaks: &[Break]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for b in breaks.iter().filter(|b| b.counts()) {
        *out.entry(b.code.as_str().to_string()).or_default() += 1;
    }
    out
}

/// The billable amount of `minutes` at `rate`, to the cent.
fn amount(minutes: i64, rate: Decimal) -> Option<Decimal> {
    crate::rules::hours(minutes)
        .checked_mul(rate)
        .map(|a| a.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero))
}

/// The ledger's name in a bookkeeper's words.
pub fn ledger_words(ledger: &str) -> &'static str {
    match ledger {
        "qbo" => "QuickBooks",
        "xero" => "Xero",
        _ => "the books",
    }
}

/// Compare the three sides of `period` (pure). `ledger` names the books in
/// the sentences (`qbo`, `xero`, `sandbox`).
pub fn compare(period: &Period, sides: &Sides, cfg: &ReconcileConfig, ledger: &str) -> Comparison {
    let books_name = ledger_words(ledger);
    let mut breaks = Vec::new();
    let mut rows: BTreeMap<(NaiveDate, String, String), Row> = BTreeMap::new();

    let by_id: BTreeMap<&str, &BookRecord> =
        sides.books.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut by_fp: BTreeMap<&str, Vec<&BookRecord>> = BTreeMap::new();
    for b in &sides.books {
        if let Some(fp) = &b.fingerprint {
            by_fp.entry(fp.as_str()).or_default().push(b);
        }
    }
    // Records some entry owns, and the fingerprints they carry.
    let owned: BTreeSet<&str> = sides
        .timepost
        .iter()
        .flat_map(|e| e.records.iter().map(|r| r.id.as_str()))
        .collect();
    let mut explained: BTreeSet<&str> = BTreeSet::new();

    for e in &sides.timepost {
        for line in e.lines.iter().filter(|l| period.contains(l.txn_date)) {
            let party = line.party.id();
            let customer = line.customer.as_deref().unwrap_or("");
            add(&mut rows, line.txn_date, party, customer, |r| {
                r.timepost_minutes += line.minutes
            });
            let Some(rec) = e.records.iter().find(|r| r.tier == line.tier) else {
                if e.posted {
                    breaks.push(
                        Break::new(
                            ExceptionCode::MissingInBooks,
                            Some(&e.key),
                            None,
                            format!(
                                "Entry {} should have {} ({}) for {party} on {} in {books_name}, but timepost holds no record of it there.",
                                e.key, hours(line.minutes), line.tier, line.txn_date
                            ),
                        )
                        .at(Some(party), line.customer.as_deref(), line.txn_date)
                        .minutes(Some(line.minutes), None),
                    );
                }
                continue;
            };
            let Some(book) = by_id.get(rec.id.as_str()).copied() else {
                breaks.push(
                    Break::new(
                        ExceptionCode::DeletedInBooks,
                        Some(&e.key),
                        Some(&rec.id),
                        format!(
                            "Time record {} ({} for {party} on {}, entry {}) was deleted in {books_name}.",
                            rec.id, hours(line.minutes), line.txn_date, e.key
                        ),
                    )
                    .at(Some(party), line.customer.as_deref(), line.txn_date)
                    .minutes(Some(line.minutes), None),
                );
                continue;
            };
            explained.insert(book.id.as_str());
            // A second record carrying this record's fingerprint.
            if let Some(fp) = &book.fingerprint {
                for other in by_fp.get(fp.as_str()).into_iter().flatten() {
                    if other.id == book.id || owned.contains(other.id.as_str()) {
                        continue;
                    }
                    explained.insert(other.id.as_str());
                    breaks.push(
                        Break::new(
                            ExceptionCode::DuplicateInBooks,
                            Some(&e.key),
                            Some(&other.id),
                            format!(
                                "Time record {} ({} for {} on {}) is a second copy of record {} of entry {} in {books_name}: the time is counted twice.",
                                other.id,
                                hours(other.minutes),
                                other.party.as_ref().map_or("nobody", |p| p.id()),
                                other.txn_date,
                                book.id,
                                e.key
                            ),
                        )
                        .at(
                            other.party.as_ref().map(|p| p.id()),
                            other.customer.as_deref(),
                            other.txn_date,
                        )
                        .minutes(None, Some(other.minutes)),
                    );
                }
            }
            if book.locked && e.newer_version {
                breaks.push(
                    Break::new(
                        ExceptionCode::BilledWithNewerVersion,
                        Some(&e.key),
                        Some(&book.id),
                        format!(
                            "Time record {} ({} for {party} on {}) is billed or locked in {books_name}, and entry {} has a newer version timepost cannot post over it.",
                            book.id, hours(book.minutes), book.txn_date, e.key
                        ),
                    )
                    .at(Some(party), line.customer.as_deref(), line.txn_date)
                    .minutes(Some(line.minutes), Some(book.minutes)),
                );
                continue;
            }
            let diff = differences(
                line,
                book,
                Closeness {
                    tolerance_minutes: cfg.tolerance_minutes,
                    description: false,
                    service_item: true,
                },
            );
            if !diff.is_empty() {
                breaks.push(
                    Break::new(
                        ExceptionCode::ChangedInBooks,
                        Some(&e.key),
                        Some(&book.id),
                        format!(
                            "Time record {} of entry {} was changed in {books_name}: {}.",
                            book.id,
                            e.key,
                            diff.join(", ")
                        ),
                    )
                    .at(Some(party), line.customer.as_deref(), line.txn_date)
                    .minutes(Some(line.minutes), Some(book.minutes)),
                );
                continue;
            }
            // Same hours (within tolerance): the amounts, where the books
            // keep a rate on the record.
            let expected = line.billable_amount().map(|m| m.amount);
            let held = match (line.billable, book.hourly_rate) {
                (true, Some(rate)) => amount(book.minutes, rate),
                _ => expected,
            };
            if let (Some(x), Some(h)) = (expected, held) {
                if (x - h).abs() > cfg.tolerance_amount {
                    breaks.push(
                        Break::new(
                            ExceptionCode::AmountDiffers,
                            Some(&e.key),
                            Some(&book.id),
                            format!(
                                "Time record {} of entry {} bills {h} in {books_name}; timepost's amount is {x} (tolerance {}).",
                                book.id, e.key, cfg.tolerance_amount
                            ),
                        )
                        .at(Some(party), line.customer.as_deref(), line.txn_date)
                        .minutes(Some(line.minutes), Some(book.minutes)),
                    );
                }
            }
        }
    }

    for b in &sides.books {
        let party = b.party.as_ref().map_or("", |p| p.id());
        let customer = b.customer.as_deref().unwrap_or("");
        let ours = b.fingerprint.is_some() || owned.contains(b.id.as_str());
        add(&mut rows, b.txn_date, party, customer, |r| {
            if ours {
                r.books_minutes += b.minutes
            } else {
                r.foreign_minutes += b.minutes
            }
        });
        if explained.contains(b.id.as_str()) || owned.contains(b.id.as_str()) {
            continue;
        }
        let what = format!(
            "{} for {} on {}{}",
            hours(b.minutes),
            if party.is_empty() { "nobody" } else { party },
            b.txn_date,
            b.customer
                .as_deref()
                .map(|c| format!(", customer {c}"))
                .unwrap_or_default()
        );
        if b.fingerprint.is_some() {
            breaks.push(
                Break::new(
                    ExceptionCode::UnownedInBooks,
                    None,
                    Some(&b.id),
                    format!(
                        "Time record {} ({what}) carries timepost's mark in {books_name}, but no entry owns it.",
                        b.id
                    ),
                )
                .at(Some(party), b.customer.as_deref(), b.txn_date)
                .minutes(None, Some(b.minutes)),
            );
        } else {
            let mut br = Break::new(
                ExceptionCode::NotTimepostsRecord,
                None,
                Some(&b.id),
                format!(
                    "Time record {} ({what}) in {books_name} was not written by timepost.",
                    b.id
                ),
            )
            .at(Some(party), b.customer.as_deref(), b.txn_date)
            .minutes(None, Some(b.minutes));
            br.info = !cfg.foreign_records_are_breaks;
            breaks.push(br);
        }
    }

    // The tracker: what timepost received, and what the tracker lists.
    let posted_at: BTreeMap<&str, &Expected> =
        sides.timepost.iter().map(|e| (e.key.as_str(), e)).collect();
    let place = |t: &TrackerEntry| -> (String, String) {
        match posted_at.get(t.key.as_str()).and_then(|e| e.lines.first()) {
            Some(l) => (
                l.party.id().to_string(),
                l.customer.clone().unwrap_or_default(),
            ),
            None => (
                format!("tracker:{}", t.worker),
                t.project.clone().unwrap_or_default(),
            ),
        }
    };
    let received: BTreeMap<&str, &TrackerEntry> = sides
        .tracker
        .received
        .iter()
        .filter(|t| period.contains(t.date))
        .map(|t| (t.key.as_str(), t))
        .collect();
    for t in received.values().filter(|t| !t.deleted) {
        let (p, c) = place(t);
        add(&mut rows, t.date, &p, &c, |r| {
            r.tracker_minutes += t.minutes
        });
    }
    if let Some(listed) = &sides.tracker.listed {
        for t in listed
            .iter()
            .filter(|t| period.contains(t.date) && !t.deleted)
        {
            let (p, c) = place(t);
            add(&mut rows, t.date, &p, &c, |r| {
                *r.listed_minutes.get_or_insert(0) += t.minutes
            });
            let from = sides
                .tracker
                .listed_from
                .as_deref()
                .unwrap_or("the tracker");
            let said = match received.get(t.key.as_str()) {
                None => format!(
                    "Entry {} ({} by {} on {}) is in {from} but timepost never received it.",
                    t.key,
                    hours(t.minutes),
                    t.worker,
                    t.date
                ),
                Some(r) if r.updated_at < t.updated_at => format!(
                    "Entry {} was changed in {from} at {} ({} by {} on {}), but the newest version timepost received is from {}.",
                    t.key,
                    t.updated_at.to_rfc3339(),
                    hours(t.minutes),
                    t.worker,
                    t.date,
                    r.updated_at.to_rfc3339()
                ),
                Some(_) => continue,
            };
            breaks.push(
                Break::new(ExceptionCode::NeverReceived, Some(&t.key), None, said)
                    .at(
                        Some(&p),
                        Some(&c).filter(|c| !c.is_empty()).map(|c| c.as_str()),
                        t.date,
                    )
                    .minutes(Some(t.minutes), None),
            );
        }
    }

    breaks.sort_by(|a, b| {
        (a.info, a.day, a.code, &a.entry, &a.record)
            .cmp(&(b.info, b.day, b.code, &b.entry, &b.record))
    });
    Comparison {
        breaks,
        rows: rows.into_values().collect(),
    }
}

fn add(
    rows: &mut BTreeMap<(NaiveDate, String, String), Row>,
    day: NaiveDate,
    party: &str,
    customer: &str,
    f: impl FnOnce(&mut Row),
) {
    let r = rows
        .entry((day, party.to_string(), customer.to_string()))
        .or_insert_with(|| Row {
            day,
            party: party.to_string(),
            customer: customer.to_string(),
            ..Row::default()
        });
    f(r);
}

/// One stored reconciliation run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Assigned by the store (0 before it is stored).
    pub seq: u64,
    pub period: Period,
    pub ledger: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Counted breaks per code.
    pub counts: BTreeMap<String, usize>,
    /// Counted breaks in all.
    pub breaks: usize,
    /// Information lines (records not timepost's) and dismissed breaks.
    pub info: usize,
    pub dismissed: usize,
    /// Ledger read calls the run made.
    pub ledger_reads: u64,
    /// Where the tracker side came from (`received`, or with a listing).
    pub tracker: String,
    /// Who ran it (`cli`, a schedule).
    pub by: String,
}

impl RunSummary {
    pub fn agrees(&self) -> bool {
        self.breaks == 0
    }
}

/// What finance did about a break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Post timepost's version again (the worker-week is converged).
    Repost,
    /// The entry state takes the books' record.
    AcceptBooks,
    /// Recorded with a reason; later runs show it as dismissed.
    Dismiss,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Repost => "repost",
            Action::AcceptBooks => "accept_books",
            Action::Dismiss => "dismiss",
        }
    }
}

/// One resolution of a break, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub break_id: String,
    pub action: Action,
    #[serde(default)]
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
    /// The run the break was read from.
    pub run: u64,
    /// What was done, in words.
    pub said: String,
}

/// Where reconciliation runs, their breaks and the resolutions are kept.
#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// Store a run and its breaks; returns the run's sequence number.
    async fn save_run(&self, run: &RunSummary, breaks: &[Break]) -> StoreResult<u64>;
    /// The newest runs first, at most `limit`.
    async fn runs(&self, limit: usize) -> StoreResult<Vec<RunSummary>>;
    /// The breaks of run `seq`, in the order they were stored.
    async fn run_breaks(&self, seq: u64) -> StoreResult<Vec<Break>>;
    async fn add_resolution(&self, resolution: &Resolution) -> StoreResult<()>;
    /// Every resolution of `break_id` (of every break when `None`), oldest
    /// first.
    async fn resolutions(&self, break_id: Option<&str>) -> StoreResult<Vec<Resolution>>;
}

#[cfg(test)]
mod tests;
