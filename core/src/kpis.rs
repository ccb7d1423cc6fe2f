//! Dashboard figures over a period, from the entry states alone (pure, no
//! clock): hours by project and by employee filtered by period, billable or
//! not and currency, and the integration KPIs per work day — share of
//! entries mapped, unmapped rate, exception count, median time to resolve
//! (became exception / held → posted, discarded or voided, from
//! `EntryState::open_since` / `resolved_at`) and median posting latency
//! (`first_seen_at` → `posted_at`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

pub use crate::figures::is_unmapped;
use crate::figures::{add_line, Group};
use crate::ledger::{Party, PostingLine};
use crate::state::{EntryState, Status};

/// Which posted lines and entries count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Some(true): billable lines only; Some(false): non-billable only.
    pub billable: Option<bool>,
    /// Lines whose rate is in this currency (tracker's or converted).
    pub currency: Option<String>,
}

impl Filter {
    pub fn in_period(&self, d: NaiveDate) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }

    pub fn line(&self, l: &PostingLine) -> bool {
        self.in_period(l.txn_date)
            && self.billable.is_none_or(|b| l.billable == b)
            && self.currency.as_ref().is_none_or(|c| {
                [&l.hourly_rate, &l.original_rate]
                    .iter()
                    .any(|m| m.as_ref().is_some_and(|m| m.currency.to_string() == *c))
            })
    }
}

fn sorted(map: BTreeMap<String, Group>) -> Vec<Group> {
    let mut v: Vec<Group> = map.into_values().collect();
    v.sort_by(|a, b| b.hours.cmp(&a.hours).then(a.name.cmp(&b.name)));
    v
}

/// Posted hours by project and by employee under `f` (the report's
/// groups, restricted to the lines the filter keeps). Never panics: sums
/// that do not fit saturate.
pub fn hours(states: &[EntryState], f: &Filter) -> (Vec<Group>, Vec<Group>) {
    let mut h = Hours::default();
    h.add(states, f);
    h.finish()
}

/// [`hours`] added up a page of states at a time (a period read page by
/// page): the same groups, holding one page at a time.
#[derive(Debug, Default)]
pub struct Hours {
    by_project: BTreeMap<String, Group>,
    by_employee: BTreeMap<String, Group>,
    // Sums saturate rather than panic (an absurd stored rate cannot take
    // the dashboard down); the report's KPIs count such overflows.
    tally: crate::money::Tally,
}

impl Hours {
    /// Add the posted lines of `states` that `f` keeps.
    pub fn add(&mut self, states: &[EntryState], f: &Filter) {
        for s in states.iter().filter(|s| s.status() == Status::Posted) {
            let e = &s.entry;
            let worker = e
                .worker
                .name
                .clone()
                .or_else(|| e.worker.email.clone())
                .unwrap_or_else(|| e.worker.tracker_user_id.clone());
            let project = e
                .project
                .as_ref()
                .map(|p| p.label().to_string())
                .unwrap_or_else(|| "(no project)".into());
            for l in s.posted_lines.iter().filter(|l| f.line(l)) {
                add_line(&mut self.by_project, &project, l, &mut self.tally);
                let who = match &l.party {
                    Party::Employee { id } => format!("{worker} (employee {id})"),
                    Party::Vendor { id, .. } => format!("{worker} (vendor {id})"),
                };
                add_line(&mut self.by_employee, &who, l, &mut self.tally);
            }
        }
    }

    /// By project and by employee, most hours first.
    pub fn finish(self) -> (Vec<Group>, Vec<Group>) {
        (sorted(self.by_project), sorted(self.by_employee))
    }
}

/// [`hours`] from the maintained aggregates' line rows (any grain; rows
/// outside the filter's period, or of another kind, are skipped): the
/// same groups, without reading an entry.
pub fn hours_from(
    rows: &[(crate::aggregates::AggKey, crate::aggregates::AggVals)],
    f: &Filter,
) -> (Vec<Group>, Vec<Group>) {
    use crate::aggregates::RowKind;
    let (mut by_project, mut by_employee) = (BTreeMap::new(), BTreeMap::new());
    let mut t = crate::money::Tally::new();
    for (k, v) in rows {
        let keep = k.kind == RowKind::Line
            && f.in_period(k.period)
            && f.billable.is_none_or(|b| k.billable == b)
            && f.currency
                .as_ref()
                .is_none_or(|c| k.currency == *c || k.original_currency == *c);
        if !keep {
            continue;
        }
        for (map, name) in [
            (&mut by_project, &k.project),
            (&mut by_employee, &k.employee),
        ] {
            let g: &mut Group = map.entry(name.clone()).or_insert_with(|| Group {
                name: name.clone(),
                ..Group::default()
            });
            g.lines = g
                .lines
                .saturating_add(usize::try_from(v.lines).unwrap_or(0));
            t.add_to(&mut g.hours, v.hours);
            // A billable line with a rate names its currency even when its
            // amount is zero (as `report::add_line` does).
            if k.billable && !k.currency.is_empty() {
                let amount = if v.overflows > 0 {
                    rust_decimal::Decimal::MAX
                } else {
                    v.amount
                };
                t.add_to(g.billable.entry(k.currency.clone()).or_default(), amount);
            }
        }
    }
    (sorted(by_project), sorted(by_employee))
}

/// [`by_day`] from the maintained aggregates' day-grain entry rows and the
/// KPI samples of the same days.
pub fn by_day_from(
    rows: &[(crate::aggregates::AggKey, crate::aggregates::AggVals)],
    samples: &[crate::aggregates::Sample],
    f: &Filter,
) -> (Vec<DayKpis>, DayKpis) {
    use crate::aggregates::{Grain, RowKind};
    #[derive(Default, Clone)]
    struct Day {
        n: usize,
        unmapped: usize,
        opened: usize,
        resolve: Vec<f64>,
        latency: Vec<f64>,
    }
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    for (k, v) in rows {
        if k.kind == RowKind::Entry
            && k.grain == Grain::Day
            && f.in_period(k.period)
            && v.counted > 0
        {
            let d = days.entry(k.period).or_default();
            d.n += n(v.counted);
            d.unmapped += n(v.unmapped_code);
            d.opened += n(v.opened);
        }
    }
    for s in samples {
        if let Some(d) = days.get_mut(&s.day) {
            d.resolve.extend(s.resolve_minutes);
            d.latency.extend(s.latency_minutes);
        }
    }
    let kpis = |date: NaiveDate, d: Day| {
        let share = |k: usize| if d.n == 0 { 0.0 } else { k as f64 / d.n as f64 };
        DayKpis {
            date,
            entries: d.n,
            mapped_share: share(d.n - d.unmapped.min(d.n)),
            unmapped_rate: share(d.unmapped),
            exceptions: d.opened,
            resolved: d.resolve.len(),
            median_resolve_minutes: median(d.resolve),
            median_latency_minutes: median(d.latency),
        }
    };
    let mut all = Day::default();
    for d in days.values() {
        all.n += d.n;
        all.unmapped += d.unmapped;
        all.opened += d.opened;
        all.resolve.extend(&d.resolve);
        all.latency.extend(&d.latency);
    }
    let first = days.keys().next().copied().unwrap_or_default();
    let total = kpis(first, all);
    let out = days.into_iter().map(|(date, d)| kpis(date, d)).collect();
    (out, total)
}

/// The integration KPIs of the entries worked on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayKpis {
    pub date: NaiveDate,
    /// Entries counted (ignored ones — running timers, zero time — are not).
    pub entries: usize,
    /// Share (0..=1) of them not waiting for a mapping.
    pub mapped_share: f64,
    /// Share waiting for a mapping (held or exception with an UNMAPPED_ code).
    pub unmapped_rate: f64,
    /// Entries that became an exception or held at some point.
    pub exceptions: usize,
    /// Of those, resolved ones, and the median minutes it took.
    pub resolved: usize,
    pub median_resolve_minutes: Option<f64>,
    /// Median minutes from first receipt to first posting.
    pub median_latency_minutes: Option<f64>,
}

/// The median of `v` (sorted here); None when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn minutes_between(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 60_000.0
}

/// KPIs per work day in the filter's period (days with no entries are
/// left out), oldest first, and the same over the whole period.
pub fn by_day(states: &[EntryState], f: &Filter) -> (Vec<DayKpis>, DayKpis) {
    let mut days: BTreeMap<NaiveDate, Vec<&EntryState>> = BTreeMap::new();
    for s in states {
        if s.status() == Status::Ignored && s.resolved_at.is_none() {
            continue;
        }
        if f.in_period(s.entry.work_date) {
            days.entry(s.entry.work_date).or_default().push(s);
        }
    }
    let all: Vec<&EntryState> = days.values().flatten().copied().collect();
    let first = days.keys().next().copied().unwrap_or_default();
    let total = kpis(first, &all);
    let out = days.into_iter().map(|(d, v)| kpis(d, &v)).collect();
    (out, total)
}

fn kpis(date: NaiveDate, v: &[&EntryState]) -> DayKpis {
    let n = v.len();
    let unmapped = v.iter().filter(|s| is_unmapped(s)).count();
    let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let opened: Vec<&&EntryState> = v.iter().filter(|s| s.open_since.is_some()).collect();
    let resolve: Vec<f64> = opened
        .iter()
        .filter_map(|s| Some(minutes_between(s.open_since?, s.resolved_at?)))
        .filter(|m| *m >= 0.0)
        .collect();
    let latency: Vec<f64> = v
        .iter()
        .filter_map(|s| Some(minutes_between(s.first_seen_at, s.posted_at?)))
        .collect();
    DayKpis {
        date,
        entries: n,
        mapped_share: share(n - unmapped),
        unmapped_rate: share(unmapped),
        exceptions: opened.len(),
        resolved: resolve.len(),
        median_resolve_minutes: median(resolve),
        median_latency_minutes: median(latency),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exceptions::{Exception, ExceptionCode};
    use crate::model::*;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    fn state(id: &str, date: &str, status: Status, when: DateTime<Utc>) -> EntryState {
        let d: NaiveDate = date.parse().unwrap_or_default();
        let entry = NormalisedEntry {
            key: EntryKey::new(Source::Csv, "ws", id),
            version: Version {
                updated_at: at("2026-03-09T00:00:00Z"),
                content_hash: String::new(),
            },
            worker: Worker {
                tracker_user_id: "u".into(),
                email: None,
                name: Some("Ann".into()),
                kind: None,
                form_1099: None,
            },
            time_zone: chrono_tz::UTC,
            work_date: d,
            start: None,
            end: None,
            duration_secs: 3600,
            project: Some(Ref::new("p", Some("Acme".into()))),
            client: None,
            task: None,
            tags: vec![],
            billable: false,
            rate: None,
            notes: String::new(),
            approval: ApprovalStatus::Approved,
            attachments: vec![],
            origin: Origin::Web,
            deleted: false,
            already_rounded: false,
        };
        let mut s = EntryState::new(entry, at("2026-03-03T10:00:00Z"));
        s.set_status(status, when);
        s
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![50.0, 10.0, 30.0]), Some(30.0));
        assert_eq!(median(vec![40.0, 10.0, 30.0, 20.0]), Some(25.0));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn time_to_resolve_and_latency_on_a_known_scenario() {
        // Three exceptions raised at 10:00, resolved after 10, 30 and 50
        // minutes (posted, discarded, posted); one still open; one posted
        // directly 2 minutes after receipt.
        let open = at("2026-03-03T10:00:00Z");
        let mut v = Vec::new();
        for (id, mins, status) in [
            ("a", 10, Status::Posted),
            ("b", 30, Status::Ignored),
            ("c", 50, Status::Posted),
        ] {
            let mut s = state(id, "2026-03-03", Status::Exception, open);
            s.set_status(status, open + chrono::Duration::minutes(mins));
            v.push(s);
        }
        let mut d = state("d", "2026-03-03", Status::Exception, open);
        d.reason = Some(Exception::new(ExceptionCode::UnmappedEmployee, "x"));
        v.push(d);
        let e = state(
            "e",
            "2026-03-04",
            Status::Posted,
            at("2026-03-03T10:02:00Z"),
        );
        v.push(e);

        let (days, total) = by_day(&v, &Filter::default());
        assert_eq!(days.len(), 2);
        let d1 = &days[0];
        assert_eq!((d1.entries, d1.exceptions, d1.resolved), (4, 4, 3));
        assert_eq!(d1.median_resolve_minutes, Some(30.0));
        assert_eq!(d1.unmapped_rate, 0.25);
        assert_eq!(d1.mapped_share, 0.75);
        // a posted 10 min, c 50 min after first seen (10:00): median 30.
        assert_eq!(d1.median_latency_minutes, Some(30.0));
        assert_eq!(days[1].median_latency_minutes, Some(2.0));
        assert_eq!(total.entries, 5);
        assert_eq!(total.median_latency_minutes, Some(10.0));

        // The period filter.
        let f = Filter {
            from: "2026-03-04".parse().ok(),
            ..Filter::default()
        };
        let (days, total) = by_day(&v, &f);
        assert_eq!((days.len(), total.entries, total.exceptions), (1, 1, 0));
    }
}
