//! The figures every report adds up, in one place: a group of posted
//! lines and its sums, hours as the reports count them, the labels a
//! worker and a project are listed under, the counts KPIs are ratios of.
//! Shared by the outcome report ([`crate::report`]), the dashboard's
//! figures ([`crate::kpis`]) and the maintained aggregates
//! ([`crate::aggregates`]), so the three cannot count differently.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::ledger::PostingLine;
use crate::model::NormalisedEntry;
use crate::money::Tally;
use crate::state::{EntryState, Status};

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Group {
    pub name: String,
    pub lines: usize,
    pub hours: Decimal,
    /// Billable amount per currency, as posted.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub billable: BTreeMap<String, Decimal>,
}

impl Group {
    /// One indented line of a terminal report: name, lines and hours (in
    /// columns this wide), and the billable amount per currency.
    pub fn text_line(&self, lines_width: usize, hours_width: usize) -> String {
        let bill: Vec<String> = self
            .billable
            .iter()
            .map(|(c, a)| format!("{} {c}", a.round_dp(2)))
            .collect();
        format!(
            "    {:<44} {:>lw$} lines {:>hw$} h  {}",
            self.name,
            self.lines,
            self.hours.round_dp(2),
            if bill.is_empty() {
                String::new()
            } else {
                format!("billable {}", bill.join(", "))
            },
            lw = lines_width,
            hw = hours_width,
        )
    }
}

pub fn hours(minutes: i64) -> Decimal {
    crate::rules::hours(minutes).round_dp(4)
}

/// A posted line's hours, as every sum of posted hours counts them.
pub fn line_hours(minutes: i64) -> Decimal {
    hours(minutes)
}

pub fn exact_hours(e: &NormalisedEntry) -> Decimal {
    if e.deleted || e.is_running() {
        return Decimal::ZERO;
    }
    (Decimal::from(e.duration_secs) / Decimal::from(3600)).round_dp(4)
}

pub fn worker_label(e: &NormalisedEntry) -> String {
    e.worker
        .name
        .clone()
        .or_else(|| e.worker.email.clone())
        .unwrap_or_else(|| e.worker.tracker_user_id.clone())
}

pub fn project_label(e: &NormalisedEntry) -> String {
    e.project
        .as_ref()
        .map(|p| p.label().to_string())
        .unwrap_or_else(|| "(no project)".into())
}

/// Add one posted line to its group. Every sum saturates (see
/// [`crate::money`]); `t` counts what did not fit.
pub fn add_line(
    groups: &mut BTreeMap<String, Group>,
    name: &str,
    line: &PostingLine,
    t: &mut Tally,
) {
    let g = groups.entry(name.to_string()).or_insert_with(|| Group {
        name: name.to_string(),
        ..Group::default()
    });
    g.lines = g.lines.saturating_add(1);
    t.add_to(&mut g.hours, hours(line.minutes));
    add_amount(&mut g.billable, line, t);
}

/// Add a line's billable amount to a per-currency map, saturating.
pub fn add_amount(map: &mut BTreeMap<String, Decimal>, line: &PostingLine, t: &mut Tally) {
    match line.checked_billable_amount() {
        Ok(Some(m)) => t.add_to(map.entry(m.currency.to_string()).or_default(), m.amount),
        Ok(None) => {}
        Err(_) => {
            t.note_overflow();
            if let Some(rate) = &line.hourly_rate {
                let negative = rate.amount.is_sign_negative() != (line.minutes < 0);
                let bound = if negative { Decimal::MIN } else { Decimal::MAX };
                t.add_to(map.entry(rate.currency.to_string()).or_default(), bound);
            }
        }
    }
}

/// The counts the report's KPIs are ratios of: from the states (the
/// report) or from the maintained aggregates (the dashboard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub known: usize,
    pub posted: usize,
    pub lines: usize,
    pub held: usize,
    pub awaiting: usize,
    pub exceptions: usize,
    /// Entries whose reason names a missing mapping.
    pub unmapped: usize,
    pub duplicates: usize,
}

/// Whether an open entry waits for a missing mapping.
pub fn is_unmapped(s: &EntryState) -> bool {
    matches!(s.status(), Status::Exception | Status::Held)
        && s.reason
            .as_ref()
            .is_some_and(|r| r.code.as_str().starts_with("UNMAPPED_"))
}
