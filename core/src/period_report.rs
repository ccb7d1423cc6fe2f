//! The report of one period from the maintained aggregates alone (what
//! `timepost status --period` and `/api/report?period=` answer): its cost
//! is the period's rows, never its entries.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::aggregates::{AggKey, AggVals, Period, Totals};
use crate::figures::Group;

/// The report of one period from the aggregates alone: entries and
/// tracker hours per status, posted lines and hours, posted hours by
/// project and by employee / vendor, and the report's KPIs. What
/// `timepost status --period` prints; its cost is the period's rows.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodReport {
    pub period: String,
    pub entries: BTreeMap<String, usize>,
    pub hours: BTreeMap<String, Decimal>,
    pub posted_lines: usize,
    pub posted_hours: Decimal,
    pub by_project: Vec<Group>,
    pub by_employee: Vec<Group>,
    pub kpis: BTreeMap<String, Decimal>,
}

/// Build the period's report from its rows (one grain, one period or all).
pub fn period_report(label: &str, rows: &[(AggKey, AggVals)]) -> PeriodReport {
    let totals = Totals::of(rows);
    let (by_project, by_employee) = crate::kpis::hours_from(rows, &crate::kpis::Filter::default());
    let mut kpis = crate::report::kpis_of(&totals.counts(), &BTreeMap::new(), 0);
    kpis.remove("dead_letters");
    kpis.remove("duplicate_frequency");
    if totals.overflows > 0 {
        kpis.insert("amount_overflows".into(), Decimal::from(totals.overflows));
    }
    PeriodReport {
        period: label.to_string(),
        entries: totals
            .entries
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        hours: totals
            .hours
            .iter()
            .map(|(s, h)| (s.to_string(), *h))
            .collect(),
        posted_lines: totals.posted_lines,
        posted_hours: totals.posted_hours,
        by_project,
        by_employee,
        kpis,
    }
}

/// Read the period's rows from `store` and build its report.
pub async fn collect_period(
    store: &dyn crate::ports::EntryStore,
    p: Period,
    label: &str,
) -> crate::ports::StoreResult<PeriodReport> {
    let rows = store.aggregates(p.grain, p.start, p.start).await?;
    Ok(period_report(label, &rows))
}

/// The period report as text for a terminal.
pub fn render_period(r: &PeriodReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "timepost — period {} (from the maintained aggregates)\n",
        r.period
    );
    for (s, n) in &r.entries {
        let h = r.hours.get(s).copied().unwrap_or_default();
        let _ = writeln!(o, "  {s:<20} {n:>8} entries {:>12} h", h.round_dp(2));
    }
    let _ = writeln!(
        o,
        "\nPOSTED: {} lines, {} h",
        r.posted_lines,
        r.posted_hours.round_dp(2)
    );
    for (title, groups) in [
        ("by project", &r.by_project),
        ("by employee / vendor", &r.by_employee),
    ] {
        let _ = writeln!(o, "  {title}:");
        for g in groups {
            let _ = writeln!(o, "{}", g.text_line(6, 10));
        }
    }
    let _ = writeln!(o, "\nKPIs:");
    for (k, v) in &r.kpis {
        let _ = writeln!(o, "  {k:<28} {}", v.normalize());
    }
    o
}
