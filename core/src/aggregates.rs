//! Maintained aggregates: what the dashboard shows, kept as entry states
//! change instead of recomputed from every entry on each page view.
//!
//! Each entry state contributes rows ([`contributions`]): one *entry* row
//! per grain (day, ISO week, month, year of its work date) keyed by status,
//! project, worker and the tracker rate's currency, and — when posted — one
//! *line* row per posted line and grain (the line's date) keyed by project,
//! employee / vendor, billable, rate currency and original currency. A
//! store adds a state's rows and subtracts its previous state's rows in the
//! same transaction as the state write (`local/sqlite.rs`), so the stored
//! sums always equal [`fold`] over every state; `timepost store
//! rebuild-aggregates` recomputes them and says whether they differed.
//!
//! The per-entry KPI samples (time to resolve, posting latency) the
//! dashboard takes medians of are [`sample`]: medians cannot be summed, so
//! a store keeps one small row per entry, indexed by work date.
//!
//! Pure: no I/O, no clock.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ledger::Party;
use crate::state::{EntryState, Status};

/// The period length of an aggregate row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    Day,
    Week,
    Month,
    Year,
}

impl Grain {
    pub const ALL: &'static [Grain] = &[Grain::Day, Grain::Week, Grain::Month, Grain::Year];

    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Year => "year",
        }
    }

    /// The first day of the period `d` falls in (weeks start on Monday).
    pub fn start(self, d: NaiveDate) -> NaiveDate {
        match self {
            Grain::Day => d,
            Grain::Week => crate::model::week_start(d),
            Grain::Month => d.with_day(1).unwrap_or(d),
            Grain::Year => d.with_ordinal(1).unwrap_or(d),
        }
    }
}

impl std::str::FromStr for Grain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Grain::ALL
            .iter()
            .copied()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| format!("unknown period `{s}` (day, week, month or year)"))
    }
}

/// Whether a row counts entries or posted lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Entry,
    Line,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Entry => "entry",
            RowKind::Line => "line",
        }
    }
}

impl std::str::FromStr for RowKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "entry" => Ok(RowKind::Entry),
            "line" => Ok(RowKind::Line),
            _ => Err(format!("unknown aggregate row kind `{s}`")),
        }
    }
}

/// The dimensions of one aggregate row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AggKey {
    pub grain: Grain,
    /// First day of the period.
    pub period: NaiveDate,
    pub kind: RowKind,
    pub status: Status,
    /// The project's label (as the report names it).
    pub project: String,
    /// Entry rows: the worker's label; line rows: the party as the report
    /// names it (`Ann Lee (employee E-100)`).
    pub employee: String,
    /// Entry rows: the tracker rate's currency; line rows: the posted
    /// rate's. Empty when there is no rate.
    pub currency: String,
    /// Entry rows: the entry is billable; line rows: the line is.
    pub billable: bool,
    /// Line rows: the original (pre-conversion) rate's currency, or empty.
    pub original_currency: String,
}

/// The sums of one aggregate row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggVals {
    /// Entries (entry rows).
    pub entries: i64,
    /// Posted lines (line rows).
    pub lines: i64,
    /// Entry rows: worked hours in the tracker (exact); line rows: posted
    /// hours, as the report sums them.
    pub hours: Decimal,
    /// Line rows: billable amount in `currency`.
    pub amount: Decimal,
    /// Entries whose reason names a missing mapping (the report's KPI).
    pub unmapped: i64,
    /// Held or exception entries with an `UNMAPPED_` code (the dashboard).
    pub unmapped_code: i64,
    /// Entries the dashboard's KPIs count (not ignored-and-never-open).
    pub counted: i64,
    /// Of those, entries that became an exception or held at some point.
    pub opened: i64,
    /// Of those, resolved ones.
    pub resolved: i64,
    /// Amounts that did not fit a `Decimal` (never silently dropped: the
    /// report shows them as `amount_overflows`).
    pub overflows: i64,
}

impl AggVals {
    /// `self += sign × o`, counting a sum that does not fit.
    pub fn add(&mut self, o: &AggVals, sign: i64) {
        let mut t = crate::money::Tally::new();
        let dec = |t: &mut crate::money::Tally, a: Decimal, b: Decimal| {
            if sign >= 0 {
                t.add(a, b)
            } else {
                t.sub(a, b)
            }
        };
        self.entries = self.entries.saturating_add(sign * o.entries);
        self.lines = self.lines.saturating_add(sign * o.lines);
        self.hours = dec(&mut t, self.hours, o.hours);
        self.amount = dec(&mut t, self.amount, o.amount);
        self.unmapped = self.unmapped.saturating_add(sign * o.unmapped);
        self.unmapped_code = self.unmapped_code.saturating_add(sign * o.unmapped_code);
        self.counted = self.counted.saturating_add(sign * o.counted);
        self.opened = self.opened.saturating_add(sign * o.opened);
        self.resolved = self.resolved.saturating_add(sign * o.resolved);
        self.overflows = self
            .overflows
            .saturating_add(sign * o.overflows)
            .saturating_add(t.overflows() as i64);
    }

    /// A row whose every sum is zero holds nothing (and is not stored).
    pub fn is_empty(&self) -> bool {
        [
            self.entries,
            self.lines,
            self.unmapped,
            self.unmapped_code,
            self.counted,
            self.opened,
            self.resolved,
            self.overflows,
        ]
        .iter()
        .all(|n| *n == 0)
            && self.hours.is_zero()
            && self.amount.is_zero()
    }
}

/// How the report and the dashboard name a posted line's party.
pub(crate) fn party_label(worker: &str, party: &Party) -> String {
    match party {
        Party::Employee { id } => format!("{worker} (employee {id})"),
        Party::Vendor { id, .. } => format!("{worker} (vendor {id})"),
    }
}

/// Whether the dashboard counts `s` in its KPIs (ignored entries that were
/// never open are not).
pub(crate) fn counted(s: &EntryState) -> bool {
    !(s.status() == Status::Ignored && s.resolved_at.is_none())
}

fn minutes_between(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 60_000.0
}

/// One entry's KPI sample: minutes from open to resolved (when resolved,
/// not negative) and from first receipt to first posting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub day: NaiveDate,
    pub resolve_minutes: Option<f64>,
    pub latency_minutes: Option<f64>,
}

/// The KPI sample `s` contributes, if any.
pub fn sample(s: &EntryState) -> Option<Sample> {
    if !counted(s) {
        return None;
    }
    let resolve = s
        .open_since
        .zip(s.resolved_at)
        .map(|(a, b)| minutes_between(a, b))
        .filter(|m| *m >= 0.0);
    let latency = s.posted_at.map(|p| minutes_between(s.first_seen_at, p));
    (resolve.is_some() || latency.is_some()).then_some(Sample {
        day: s.entry.work_date,
        resolve_minutes: resolve,
        latency_minutes: latency,
    })
}

/// The rows one entry state contributes, every grain.
pub fn contributions(s: &EntryState) -> Vec<(AggKey, AggVals)> {
    let e = &s.entry;
    let project = crate::figures::project_label(e);
    let worker = crate::figures::worker_label(e);
    let is_counted = counted(s);
    let entry_vals = AggVals {
        entries: 1,
        hours: crate::figures::exact_hours(e),
        unmapped: i64::from(
            s.reason
                .as_ref()
                .is_some_and(|r| r.missing_mapping.is_some()),
        ),
        unmapped_code: i64::from(crate::figures::is_unmapped(s)),
        counted: i64::from(is_counted),
        opened: i64::from(is_counted && s.open_since.is_some()),
        resolved: i64::from(is_counted && sample(s).is_some_and(|x| x.resolve_minutes.is_some())),
        ..AggVals::default()
    };
    let mut out = Vec::new();
    for &grain in Grain::ALL {
        out.push((
            AggKey {
                grain,
                period: grain.start(e.work_date),
                kind: RowKind::Entry,
                status: s.status(),
                project: project.clone(),
                employee: worker.clone(),
                currency: e
                    .rate
                    .as_ref()
                    .map(|r| r.currency.to_string())
                    .unwrap_or_default(),
                billable: e.billable,
                original_currency: String::new(),
            },
            entry_vals.clone(),
        ));
    }
    if s.status() == Status::Posted {
        for l in &s.posted_lines {
            let mut v = AggVals {
                lines: 1,
                hours: crate::figures::line_hours(l.minutes),
                ..AggVals::default()
            };
            match l.checked_billable_amount() {
                Ok(Some(m)) => v.amount = m.amount,
                Ok(None) => {}
                Err(_) => v.overflows = 1,
            }
            let cur = |m: &Option<crate::model::Money>| {
                m.as_ref()
                    .map(|m| m.currency.to_string())
                    .unwrap_or_default()
            };
            for &grain in Grain::ALL {
                out.push((
                    AggKey {
                        grain,
                        period: grain.start(l.txn_date),
                        kind: RowKind::Line,
                        status: Status::Posted,
                        project: project.clone(),
                        employee: party_label(&worker, &l.party),
                        currency: cur(&l.hourly_rate),
                        billable: l.billable,
                        original_currency: cur(&l.original_rate),
                    },
                    v.clone(),
                ));
            }
        }
    }
    out
}

/// Aggregate rows by key.
pub type Aggregates = BTreeMap<AggKey, AggVals>;

/// Add (`sign` 1) or remove (-1) one state's rows; rows left empty go.
pub fn apply(aggs: &mut Aggregates, s: &EntryState, sign: i64) {
    for (k, v) in contributions(s) {
        let row = aggs.entry(k.clone()).or_default();
        row.add(&v, sign);
        if row.is_empty() {
            aggs.remove(&k);
        }
    }
}

/// The aggregates of `states`, recomputed: what a store's maintained rows
/// must equal.
pub fn fold<'a>(states: impl IntoIterator<Item = &'a EntryState>) -> Aggregates {
    let mut aggs = Aggregates::new();
    for s in states {
        apply(&mut aggs, s, 1);
    }
    aggs
}

/// Rows of `aggs` of one grain whose period starts in `from..=to`.
pub fn select(
    aggs: &Aggregates,
    grain: Grain,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<(AggKey, AggVals)> {
    aggs.iter()
        .filter(|(k, _)| {
            k.grain == grain
                && from.is_none_or(|f| k.period >= f)
                && to.is_none_or(|t| k.period <= t)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What `timepost store rebuild-aggregates` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rebuild {
    /// Entry states read.
    pub entries: usize,
    /// Aggregate rows after the rebuild.
    pub rows: usize,
    /// Rows that were missing, extra or different before it (0: the
    /// maintained aggregates were right).
    pub differed: usize,
    /// KPI samples that were missing, extra or different.
    pub samples_differed: usize,
}

/// How many keys differ between two sets of rows.
pub fn differences(a: &Aggregates, b: &Aggregates) -> usize {
    let mut n = 0;
    for (k, v) in a {
        if b.get(k).is_none_or(|w| !same(v, w)) {
            n += 1;
        }
    }
    n + b.keys().filter(|k| !a.contains_key(*k)).count()
}

/// Equal sums (decimals compared by value, not scale).
pub fn same(a: &AggVals, b: &AggVals) -> bool {
    let norm = |v: &AggVals| AggVals {
        hours: v.hours.normalize(),
        amount: v.amount.normalize(),
        ..v.clone()
    };
    norm(a) == norm(b)
}

/// Store-wide figures from the rows of one grain (every period): what the
/// dashboard's status tiles, posted totals, backlog and KPI table show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Entries per status.
    pub entries: BTreeMap<Status, usize>,
    /// Tracker hours per status (the backlog is the awaiting ones).
    pub hours: BTreeMap<Status, Decimal>,
    pub posted_lines: usize,
    pub posted_hours: Decimal,
    /// Entries whose reason names a missing mapping.
    pub unmapped: usize,
    /// Sums that did not fit (amounts, hours).
    pub overflows: usize,
}

impl Totals {
    pub fn of(rows: &[(AggKey, AggVals)]) -> Self {
        let mut t = crate::money::Tally::new();
        let mut out = Totals::default();
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        for (k, v) in rows {
            match k.kind {
                RowKind::Entry => {
                    *out.entries.entry(k.status).or_default() += n(v.entries);
                    t.add_to(out.hours.entry(k.status).or_default(), v.hours);
                    out.unmapped += n(v.unmapped);
                }
                RowKind::Line => {
                    out.posted_lines += n(v.lines);
                    t.add_to(&mut out.posted_hours, v.hours);
                }
            }
            out.overflows += n(v.overflows);
        }
        out.overflows += t.overflows();
        out
    }

    pub fn count(&self, s: Status) -> usize {
        self.entries.get(&s).copied().unwrap_or(0)
    }

    /// The report's KPI counts (no run outcomes: no duplicates).
    pub fn counts(&self) -> crate::figures::Counts {
        crate::figures::Counts {
            known: self.entries.values().sum(),
            posted: self.count(Status::Posted),
            lines: self.posted_lines,
            held: self.count(Status::Held),
            awaiting: self.count(Status::AwaitingApproval),
            exceptions: self.count(Status::Exception),
            unmapped: self.unmapped,
            duplicates: 0,
        }
    }
}

/// A period the summary report names: `all`, a year (`2026`), a month
/// (`2026-03`), an ISO week (`2026-W10`) or a day (`2026-03-02`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub grain: Grain,
    /// None: every period (the all-time view, a sum of year rows).
    pub start: Option<NaiveDate>,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a period: all, 2026, 2026-03, 2026-W10 or 2026-03-02");
        let s = s.trim();
        if s == "all" {
            return Ok(Period {
                grain: Grain::Year,
                start: None,
            });
        }
        let at = |grain, d: Option<NaiveDate>| {
            d.map(|d| Period {
                grain,
                start: Some(d),
            })
            .ok_or_else(bad)
        };
        if let Some((y, w)) = s.split_once("-W") {
            let (y, w) = (y.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
            return at(
                Grain::Week,
                NaiveDate::from_isoywd_opt(y, w, chrono::Weekday::Mon),
            );
        }
        match s.split('-').count() {
            1 => at(
                Grain::Year,
                s.parse()
                    .ok()
                    .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1)),
            ),
            2 => at(
                Grain::Month,
                NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok(),
            ),
            3 => at(Grain::Day, NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_to_their_grain_and_start() {
        let d = |s: &str| s.parse::<NaiveDate>().ok();
        let p = |s: &str| s.parse::<Period>();
        assert_eq!(
            p("all"),
            Ok(Period {
                grain: Grain::Year,
                start: None
            })
        );
        assert_eq!(
            p("2026"),
            Ok(Period {
                grain: Grain::Year,
                start: d("2026-01-01")
            })
        );
        assert_eq!(
            p("2026-03"),
            Ok(Period {
                grain: Grain::Month,
                start: d("2026-03-01")
            })
        );
        assert_eq!(
            p("2026-W10"),
            Ok(Period {
                grain: Grain::Week,
                start: d("2026-03-02")
            })
        );
        assert_eq!(
            p("2026-03-04"),
            Ok(Period {
                grain: Grain::Day,
                start: d("2026-03-04")
            })
        );
        for bad in ["March", "2026-13", "2026-W60", "2026-02-30", "1-2-3-4"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Grain::Week.start(NaiveDate::from_ymd_opt(2026, 3, 8).unwrap_or_default()),
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default()
        );
    }
}
