//! The console's home: counts by status, unmapped entries, the approval
//! backlog, posted hours by project and by employee, and the KPIs — all
//! from the maintained aggregates (`crate::aggregates`: year rows for the
//! whole store, day rows for a period) and the open entries, never a read
//! of every entry. The KPIs over time cover the filter's period, or the
//! newest [`KPI_DAYS`] days of work. Bars are plain HTML with CSS widths:
//! no scripts, no external assets. The hours-by-project table is also
//! served as CSV.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::auth::Principal;
use super::console::{csv_download, PageError};
use super::html::{esc, page};
use super::{ApiError, AppState};
use crate::aggregates::{AggKey, Grain, Totals};
use crate::kpis::{self, DayKpis, Filter};
use crate::report::{Group, Item};
use crate::state::Status;

/// The dashboard's filters from the query string (`from`, `to` as
/// YYYY-MM-DD, `billable` = `billable` | `non_billable` | empty,
/// `currency` = ISO code or empty); a bad value is a 400 naming it.
pub(super) fn filter(q: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let date = |k: &str| {
        get(k)
            .map(|v| {
                v.parse::<chrono::NaiveDate>().map_err(|_| {
                    ApiError::bad_request(
                        format!("`{k}` must be a date (YYYY-MM-DD)"),
                        Some(k.into()),
                    )
                })
            })
            .transpose()
    };
    let f = Filter {
        from: date("from")?,
        to: date("to")?,
        billable: match get("billable") {
            None | Some("all") => None,
            Some("billable") => Some(true),
            Some("non_billable") => Some(false),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "`billable` must be billable, non_billable or empty",
                    Some("billable".into()),
                ))
            }
        },
        currency: match get("currency") {
            None => None,
            Some(c) if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(c.to_ascii_uppercase())
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "`currency` must be a three-letter code",
                    Some("currency".into()),
                ))
            }
        },
    };
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if a > b {
            return Err(ApiError::bad_request(
                "`from` is after `to`",
                Some("from".into()),
            ));
        }
    }
    Ok(f)
}

fn query_string(f: &Filter) -> String {
    let mut parts = Vec::new();
    if let Some(d) = f.from {
        parts.push(format!("from={d}"));
    }
    if let Some(d) = f.to {
        parts.push(format!("to={d}"));
    }
    match f.billable {
        Some(true) => parts.push("billable=billable".into()),
        Some(false) => parts.push("billable=non_billable".into()),
        None => {}
    }
    if let Some(c) = &f.currency {
        parts.push(format!("currency={c}"));
    }
    parts.join("&")
}

fn filter_form(f: &Filter) -> String {
    let sel = |v: Option<bool>| if f.billable == v { " selected" } else { "" };
    format!(
        "<form class=\"filters\" method=\"get\" action=\"/console\">\
         <label>From <input type=\"date\" name=\"from\" value=\"{}\"></label> \
         <label>To <input type=\"date\" name=\"to\" value=\"{}\"></label> \
         <label>Time <select name=\"billable\"><option value=\"\"{}>all</option>\
         <option value=\"billable\"{}>billable</option><option value=\"non_billable\"{}>non-billable</option></select></label> \
         <label>Currency <input type=\"text\" name=\"currency\" size=\"4\" value=\"{}\"></label> \
         <button type=\"submit\">Filter</button></form>",
        f.from.map(|d| d.to_string()).unwrap_or_default(),
        f.to.map(|d| d.to_string()).unwrap_or_default(),
        sel(None),
        sel(Some(true)),
        sel(Some(false)),
        esc(f.currency.as_deref().unwrap_or("")),
    )
}

/// A small inline SVG bar chart of one KPI per day (no scripts), with the
/// values in a `<title>` per bar for hover and screen readers.
fn chart(
    title: &str,
    days: &[DayKpis],
    value: impl Fn(&DayKpis) -> Option<f64>,
    unit: &str,
) -> String {
    let vals: Vec<Option<f64>> = days.iter().map(&value).collect();
    let max = vals.iter().flatten().copied().fold(0.0_f64, f64::max);
    let (w, hgt, gap) = (14.0, 48.0, 3.0);
    let width = (days.len().max(1) as f64) * (w + gap);
    let mut bars = String::new();
    for (i, (d, v)) in days.iter().zip(&vals).enumerate() {
        let x = i as f64 * (w + gap);
        let label = match v {
            Some(v) => format!("{}: {v:.2}{unit}", d.date),
            None => format!("{}: no data", d.date),
        };
        let bh = match v {
            Some(v) if max > 0.0 => (v / max * hgt).max(1.0),
            _ => 0.0,
        };
        bars.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w}\" height=\"{bh:.1}\" fill=\"#2b5fd9\"><title>{}</title></rect>",
            hgt - bh,
            esc(&label)
        ));
    }
    format!(
        "<figure class=\"kpi\"><figcaption>{}</figcaption>\
         <svg role=\"img\" aria-label=\"{}\" width=\"{width:.0}\" height=\"{hgt:.0}\" viewBox=\"0 0 {width:.0} {hgt:.0}\">{bars}</svg></figure>",
        esc(title),
        esc(title)
    )
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{v:.1}{unit}"))
        .unwrap_or_else(|| "—".into())
}

fn kpi_section(f: &Filter, days: &[DayKpis], total: &DayKpis, dup: (u64, u64)) -> String {
    let mut out = String::from(
        "<section class=\"group\" id=\"kpis-over-time\"><h2>Integration KPIs over the period</h2>",
    );
    if let (Some(a), Some(b)) = (f.from, f.to) {
        out.push_str(&format!(
            "<p class=\"hint\" id=\"kpi-period\">Work dates {a} to {b}.</p>"
        ));
    }
    out.push_str(&format!(
        "<table class=\"kpi-totals\"><tbody>\
         <tr><td>Entries</td><td class=\"num\" id=\"kpi-entries\">{}</td></tr>\
         <tr><td>Share of entries mapped</td><td class=\"num\" id=\"kpi-mapped\">{:.1}%</td></tr>\
         <tr><td>Unmapped rate</td><td class=\"num\" id=\"kpi-unmapped\">{:.1}%</td></tr>\
         <tr><td>Exceptions raised</td><td class=\"num\" id=\"kpi-exceptions\">{}</td></tr>\
         <tr><td>Resolved</td><td class=\"num\" id=\"kpi-resolved\">{}</td></tr>\
         <tr><td>Median time to resolve</td><td class=\"num\" id=\"kpi-resolve\">{}</td></tr>\
         <tr><td>Median posting latency</td><td class=\"num\" id=\"kpi-latency\">{}</td></tr>\
         <tr><td>Duplicate deliveries (since start)</td><td class=\"num\" id=\"kpi-duplicates\">{} of {} messages</td></tr>\
         </tbody></table>",
        total.entries,
        total.mapped_share * 100.0,
        total.unmapped_rate * 100.0,
        total.exceptions,
        total.resolved,
        opt(total.median_resolve_minutes, " min"),
        opt(total.median_latency_minutes, " min"),
        dup.0,
        dup.1,
    ));
    if days.is_empty() {
        out.push_str("<p>No entries in this period.</p>");
    } else {
        out.push_str("<p class=\"hint\">Per work day, oldest on the left.</p>");
        out.push_str(&chart(
            "Share mapped (%)",
            days,
            |d| Some(d.mapped_share * 100.0),
            "%",
        ));
        out.push_str(&chart(
            "Unmapped rate (%)",
            days,
            |d| Some(d.unmapped_rate * 100.0),
            "%",
        ));
        out.push_str(&chart(
            "Exceptions",
            days,
            |d| Some(d.exceptions as f64),
            "",
        ));
        out.push_str(&chart(
            "Median time to resolve (min)",
            days,
            |d| d.median_resolve_minutes,
            " min",
        ));
        out.push_str(&chart(
            "Median posting latency (min)",
            days,
            |d| d.median_latency_minutes,
            " min",
        ));
    }
    out.push_str("</section>");
    out
}

/// Aggregate rows the filter's period needs: the year rows when it is
/// unbounded (a few per project × person × year), else the day rows of
/// the period.
async fn period_rows(
    s: &AppState,
    f: &Filter,
) -> Result<Vec<(AggKey, crate::aggregates::AggVals)>, ApiError> {
    let rows = if f.from.is_none() && f.to.is_none() {
        s.entries.aggregates(Grain::Year, None, None).await?
    } else {
        s.entries.aggregates(Grain::Day, f.from, f.to).await?
    };
    Ok(rows)
}

/// How many days of work the KPIs over time cover when the filter names
/// no period: the newest ones in the store.
pub const KPI_DAYS: i64 = 30;

/// The KPI section's period: the filter's, or the [`KPI_DAYS`] days up to
/// the newest work date in the store.
async fn kpi_period(s: &AppState, f: &Filter) -> Result<Filter, ApiError> {
    if f.from.is_some() || f.to.is_some() {
        return Ok(f.clone());
    }
    let Some(newest) = s.entries.newest_work_date().await? else {
        return Ok(f.clone());
    };
    Ok(Filter {
        from: Some(newest - chrono::Duration::days(KPI_DAYS - 1)),
        to: Some(newest),
        ..f.clone()
    })
}

/// At most this many held and as many exception entries are read for the
/// unmapped list (every unmapped entry is counted, from the aggregates).
const UNMAPPED_LISTED: usize = 100;

fn h(d: Decimal) -> String {
    format!("{:.2}", d.to_f64().unwrap_or(0.0))
}

/// A table of groups with a bar per row, widths relative to the largest.
fn bars(title: &str, groups: &[Group], extra: &str) -> String {
    let max = groups
        .iter()
        .map(|g| g.hours)
        .max()
        .unwrap_or(Decimal::ZERO);
    let mut out = format!(
        "<section class=\"group\"><h2>{}</h2>{extra}<table class=\"bars\"><thead><tr><th>Name</th><th>Hours</th><th></th></tr></thead><tbody>",
        esc(title)
    );
    for g in groups {
        let pct = if max > Decimal::ZERO {
            // hours <= max, so the ratio fits; checked all the same.
            g.hours
                .checked_div(max)
                .and_then(|r| r.checked_mul(Decimal::from(100)))
                .and_then(|p| p.to_f64())
                .unwrap_or(0.0)
        } else {
            0.0
        };
        out.push_str(&format!(
            "<tr><td>{n}</td><td class=\"num\">{h}</td><td class=\"bar\"><div style=\"width:{pct:.1}%\"></div></td></tr>",
            n = esc(&g.name),
            h = h(g.hours),
        ));
    }
    if groups.is_empty() {
        out.push_str("<tr><td colspan=\"3\">Nothing posted yet.</td></tr>");
    }
    out.push_str("</tbody></table></section>");
    out
}

pub async fn home(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let f = filter(&q)?;
    // Every figure comes from the maintained aggregates (bounded by
    // periods × projects × people, not by entries) and the open entries.
    let year_rows = s.entries.aggregates(Grain::Year, None, None).await?;
    let totals = Totals::of(&year_rows);
    let rows = if f.from.is_none() && f.to.is_none() {
        year_rows.clone()
    } else {
        period_rows(&s, &f).await?
    };
    let (by_project, by_employee) = kpis::hours_from(&rows, &f);
    let kf = kpi_period(&s, &f).await?;
    let day_rows = s.entries.aggregates(Grain::Day, kf.from, kf.to).await?;
    let samples = s.entries.kpi_samples(kf.from, kf.to).await?;
    let (days, total) = kpis::by_day_from(&day_rows, &samples, &kf);
    let counts = [
        ("posted", totals.count(Status::Posted)),
        ("awaiting approval", totals.count(Status::AwaitingApproval)),
        ("held", totals.count(Status::Held)),
        ("exception", totals.count(Status::Exception)),
        ("voided", totals.count(Status::Voided)),
        ("ignored", totals.count(Status::Ignored)),
    ];
    let unmapped_count: usize = year_rows
        .iter()
        .map(|(_, v)| usize::try_from(v.unmapped_code).unwrap_or(0))
        .sum();
    let mut unmapped: Vec<Item> = Vec::new();
    // The oldest open entries of each status, not every open one.
    for st in [Status::Held, Status::Exception] {
        for e in s.entries.by_status(st, UNMAPPED_LISTED).await? {
            if kpis::is_unmapped(&e) {
                unmapped.push(crate::report::item_of(&e));
            }
        }
    }
    unmapped.sort_by(|a, b| a.entry.cmp(&b.entry));
    unmapped.truncate(UNMAPPED_LISTED);
    let awaiting = totals.count(Status::AwaitingApproval);
    let backlog = totals
        .hours
        .get(&Status::AwaitingApproval)
        .copied()
        .unwrap_or_default();
    let counters = s.engine.counters.snapshot();
    let dead_letters = s
        .queue
        .dead_letter_count()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut report_kpis = crate::report::kpis_of(&totals.counts(), &counters, dead_letters);
    if totals.overflows > 0 {
        report_kpis.insert("amount_overflows".into(), Decimal::from(totals.overflows));
    }
    let mut body = filter_form(&f);
    // One read of the newest stored run, for those who may open the page.
    if super::auth::may(who.role, "GET", "/console/reconciliation") {
        if let Some(run) = super::reconciliation::last_run(&s).await {
            body.push_str(&format!(
                "<p class=\"tile\" id=\"kpi-reconciliation\">Reconciliation, last run (#{} of {}): \
                 <a href=\"/console/reconciliation?run={}\">{} break(s) open</a></p>",
                run.seq, run.period, run.seq, run.breaks
            ));
        }
        if let Some(tile) = super::reconciliation::kpi_tile(&s).await {
            body.push_str(&tile);
        }
    }
    body.push_str("<section class=\"group\"><h2>Entries by status</h2><p class=\"tiles\">");
    for (name, n) in counts {
        body.push_str(&format!(
            "<span class=\"tile\" data-status=\"{name}\"><b>{n}</b> {name}</span> "
        ));
    }
    body.push_str(&format!(
        "</p><p>Posted: <b>{}</b> hours in {} lines.</p></section>",
        h(totals.posted_hours),
        totals.posted_lines
    ));
    body.push_str(&format!(
        "<section class=\"group\"><h2>Approval backlog</h2><p><b id=\"backlog\">{}</b> entr{} ({} h) awaiting approval. <a href=\"/console/approvals\">Approvals</a></p></section>",
        awaiting,
        if awaiting == 1 { "y" } else { "ies" },
        h(backlog)
    ));
    body.push_str(&format!(
        "<section class=\"group\"><h2>Unmapped entries</h2><p><b id=\"unmapped\">{}</b> entr{} wait for a mapping. <a href=\"/console/exceptions\">Exceptions</a></p>",
        unmapped_count,
        if unmapped_count == 1 { "y" } else { "ies" }
    ));
    if !unmapped.is_empty() {
        body.push_str(
            "<table><thead><tr><th>Entry</th><th>Worker</th><th>Code</th></tr></thead><tbody>",
        );
        for i in &unmapped {
            body.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&i.entry),
                esc(&i.worker),
                i.reason.as_ref().map(|r| r.code.as_str()).unwrap_or("")
            ));
        }
        body.push_str("</tbody></table>");
        if unmapped_count > unmapped.len() {
            body.push_str(&format!(
                "<p>{} of them listed (from the oldest held and exception entries).</p>",
                unmapped.len()
            ));
        }
    }
    body.push_str("</section>");
    let qs = query_string(&f);
    body.push_str(&bars(
        "Hours by project",
        &by_project,
        &format!(
            "<p><a href=\"/console/hours-by-project.csv{}{}\">Download as CSV</a></p>",
            if qs.is_empty() { "" } else { "?" },
            esc(&qs)
        ),
    ));
    body.push_str(&bars("Hours by employee", &by_employee, ""));
    body.push_str(&kpi_section(
        &kf,
        &days,
        &total,
        (
            counters.get("duplicates_ignored").copied().unwrap_or(0),
            counters.get("messages_received").copied().unwrap_or(0),
        ),
    ));
    body.push_str("<section class=\"group\"><h2>KPIs</h2><table><tbody>");
    for (k, v) in &report_kpis {
        body.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(k),
            esc(&v.normalize().to_string())
        ));
    }
    body.push_str("</tbody></table></section>");
    Ok(page("Dashboard", Some(&who), &body).into_response())
}

pub async fn hours_by_project_csv(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let f = filter(&q)?;
    let (by_project, _) = kpis::hours_from(&period_rows(&s, &f).await?, &f);
    use crate::csv_out::{Cell, SafeCsv};
    let csv_err = |e: csv::Error| ApiError::unavailable(format!("cannot write CSV: {e}"));
    let mut w = SafeCsv::new(Vec::new());
    w.header(&["project", "lines", "hours", "billable"])
        .map_err(csv_err)?;
    for g in &by_project {
        let billable: Vec<String> = g.billable.iter().map(|(c, a)| format!("{c} {a}")).collect();
        let (lines, hours, billable) = (g.lines.to_string(), h(g.hours), billable.join("; "));
        w.row(&[
            Cell::Text(&g.name),
            Cell::Number(&lines),
            Cell::Number(&hours),
            Cell::Text(&billable),
        ])
        .map_err(csv_err)?;
    }
    Ok(csv_download(w, "timepost-hours-by-project.csv")?)
}
