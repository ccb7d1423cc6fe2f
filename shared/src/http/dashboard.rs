//! The console's home: counts by status, unmapped entries, the approval
//! backlog, posted hours by project and by employee (from
//! `report::collect`), and the KPIs. Bars are plain HTML with CSS widths:
//! no scripts, no external assets. The hours-by-project table is also
//! served as CSV.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::auth::Principal;
use super::console::{cell, csv_download, PageError};
use super::html::{esc, page};
use super::{ApiError, AppState};
use crate::report::{Group, Item, Report};

async fn report(s: &AppState) -> Result<Report, ApiError> {
    s.report().await
}

fn h(d: Decimal) -> String {
    format!("{:.2}", d.to_f64().unwrap_or(0.0))
}

fn is_unmapped(i: &Item) -> bool {
    i.reason
        .as_ref()
        .is_some_and(|r| r.code.as_str().starts_with("UNMAPPED_"))
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
            (g.hours / max * Decimal::from(100)).to_f64().unwrap_or(0.0)
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
) -> Result<Response, PageError> {
    let r = report(&s).await?;
    let counts = [
        ("posted", r.posted.entries),
        ("awaiting approval", r.awaiting_approval.len()),
        ("held", r.held.len()),
        ("exception", r.exceptions.len()),
        ("voided", r.voided.len()),
        ("ignored", r.ignored.len()),
    ];
    let unmapped: Vec<&Item> = r
        .held
        .iter()
        .chain(&r.exceptions)
        .filter(|i| is_unmapped(i))
        .collect();
    let backlog: Decimal = r.awaiting_approval.iter().map(|i| i.hours).sum();
    let mut body =
        String::from("<section class=\"group\"><h2>Entries by status</h2><p class=\"tiles\">");
    for (name, n) in counts {
        body.push_str(&format!(
            "<span class=\"tile\" data-status=\"{name}\"><b>{n}</b> {name}</span> "
        ));
    }
    body.push_str(&format!(
        "</p><p>Posted: <b>{}</b> hours in {} lines.</p></section>",
        h(r.posted.hours),
        r.posted.lines
    ));
    body.push_str(&format!(
        "<section class=\"group\"><h2>Approval backlog</h2><p><b id=\"backlog\">{}</b> entr{} ({} h) awaiting approval. <a href=\"/console/approvals\">Approvals</a></p></section>",
        r.awaiting_approval.len(),
        if r.awaiting_approval.len() == 1 { "y" } else { "ies" },
        h(backlog)
    ));
    body.push_str(&format!(
        "<section class=\"group\"><h2>Unmapped entries</h2><p><b id=\"unmapped\">{}</b> entr{} wait for a mapping. <a href=\"/console/exceptions\">Exceptions</a></p>",
        unmapped.len(),
        if unmapped.len() == 1 { "y" } else { "ies" }
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
    }
    body.push_str("</section>");
    body.push_str(&bars(
        "Hours by project",
        &r.posted.by_project,
        "<p><a href=\"/console/hours-by-project.csv\">Download as CSV</a></p>",
    ));
    body.push_str(&bars("Hours by employee", &r.posted.by_employee, ""));
    body.push_str("<section class=\"group\"><h2>KPIs</h2><table><tbody>");
    for (k, v) in &r.kpis {
        body.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(k),
            esc(&v.normalize().to_string())
        ));
    }
    body.push_str("</tbody></table></section>");
    Ok(page("Dashboard", Some(&who), &body).into_response())
}

pub async fn hours_by_project_csv(State(s): State<AppState>) -> Result<Response, PageError> {
    let r = report(&s).await?;
    let csv_err = |e: csv::Error| ApiError::unavailable(format!("cannot write CSV: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["project", "lines", "hours", "billable"])
        .map_err(csv_err)?;
    for g in &r.posted.by_project {
        let billable: Vec<String> = g.billable.iter().map(|(c, a)| format!("{c} {a}")).collect();
        w.write_record([
            cell(&g.name).as_str(),
            &g.lines.to_string(),
            &h(g.hours),
            &billable.join("; "),
        ])
        .map_err(csv_err)?;
    }
    Ok(csv_download(w, "timepost-hours-by-project.csv")?)
}
