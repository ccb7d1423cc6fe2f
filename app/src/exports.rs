//! Exports for finance: one period's hours by project and by employee, its
//! exceptions, and the newest reconciliation run, as CSV (through
//! [`crate::csv_out::SafeCsv`], so no cell becomes a live formula), under
//! `<period>/` in a sink — the `[exports] dir` folder locally, the stack
//! bucket's `exports/` in AWS (both through the [`Archive`] port).
//!
//! [`scheduled`] exports the last closed week or month once (a period whose
//! `manifest.json` exists is done) and sends a notice through the alert
//! notifiers; `timepost export period` runs [`export`] by hand.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::alerts::{ExportPeriod, ExportsConfig};
use crate::csv_out::{Cell, SafeCsv};
use crate::kpis::{Filter, Hours};
use crate::ports::{Archive, EntryStore, Notice, Notifier, StoreError};
use crate::reconcile::{Period, ReconcileStore};
use crate::report::Group;
use crate::state::Status;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the CSV: {0}")]
    Csv(String),
}

/// The files of one export.
pub const FILES: [&str; 4] = [
    "hours_by_project.csv",
    "hours_by_employee.csv",
    "exceptions.csv",
    "reconciliation.csv",
];

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub period: Period,
    /// Keys in the sink (`2026-11-01_2026-11-30/hours_by_project.csv`, …).
    pub files: Vec<String>,
    pub entries: usize,
    pub exceptions: usize,
    /// The reconciliation run exported (its sequence), if any.
    pub reconciliation_run: Option<u64>,
}

/// The folder of a period in the sink.
pub fn folder(p: &Period) -> String {
    format!("{}_{}", p.from, p.to)
}

/// The last closed week or month before `today`.
pub fn last_closed(kind: ExportPeriod, today: NaiveDate) -> Period {
    let text = match kind {
        ExportPeriod::Week => "week",
        ExportPeriod::Month => "month",
    };
    // Both words always parse.
    Period::parse(text, today).unwrap_or(Period {
        from: today,
        to: today,
    })
}

fn csv_err(e: impl std::fmt::Display) -> ExportError {
    ExportError::Csv(e.to_string())
}

fn groups_csv(first: &str, groups: &[Group]) -> Result<Vec<u8>, ExportError> {
    let mut w = SafeCsv::new(Vec::new());
    w.header(&[first, "lines", "hours", "billable"])
        .map_err(csv_err)?;
    for g in groups {
        let lines = g.lines.to_string();
        let h = g.hours.round_dp(2).to_string();
        let billable = g
            .billable
            .iter()
            .map(|(c, a)| format!("{c} {}", a.round_dp(2)))
            .collect::<Vec<_>>()
            .join("; ");
        w.row(&[
            Cell::Text(&g.name),
            Cell::Number(&lines),
            Cell::Number(&h),
            Cell::Text(&billable),
        ])
        .map_err(csv_err)?;
    }
    w.into_inner().map_err(csv_err)
}

/// One row of `exceptions.csv`.
fn exception_row(
    w: &mut SafeCsv<Vec<u8>>,
    s: &crate::state::EntryState,
) -> Result<(), ExportError> {
    let key = s.entry.key.to_string();
    let worker = s
        .entry
        .worker
        .name
        .clone()
        .or_else(|| s.entry.worker.email.clone())
        .unwrap_or_else(|| s.entry.worker.tracker_user_id.clone());
    let date = s.entry.work_date.to_string();
    let h = (Decimal::from(s.entry.duration_secs) / Decimal::from(3600))
        .round_dp(2)
        .to_string();
    let project = s
        .entry
        .project
        .as_ref()
        .map(|p| p.label().to_string())
        .unwrap_or_default();
    let code = s.reason.as_ref().map(|r| r.code.as_str()).unwrap_or("");
    let what = s
        .reason
        .as_ref()
        .map(|r| r.code.title())
        .or(s.note.as_deref())
        .unwrap_or("");
    let fix = s.reason.as_ref().map(|r| r.code.fix_hint()).unwrap_or("");
    w.row(&[
        Cell::Text(&key),
        Cell::Text(&worker),
        Cell::Text(&date),
        Cell::Number(&h),
        Cell::Text(&project),
        Cell::Text(s.status().as_str()),
        Cell::Text(code),
        Cell::Text(what),
        Cell::Text(fix),
    ])
    .map_err(csv_err)
}

/// Write the export of `period` into `sink` under `prefix` + the period's
/// folder. Reads only the period's entries (`EntryStore::by_work_dates`),
/// a page at a time: the hours are summed and the exceptions written as
/// each page comes.
pub async fn export(
    entries: &dyn EntryStore,
    reconcile: &dyn ReconcileStore,
    sink: &dyn Archive,
    prefix: &str,
    period: &Period,
) -> Result<Written, ExportError> {
    let filter = Filter {
        from: Some(period.from),
        to: Some(period.to),
        ..Filter::default()
    };
    let mut hours = Hours::default();
    let mut w = SafeCsv::new(Vec::new());
    w.header(&[
        "entry", "worker", "date", "hours", "project", "status", "code", "what", "fix",
    ])
    .map_err(csv_err)?;
    let mut exceptions = 0;
    let mut in_period = 0;
    crate::ports::each_period_page(entries, period.from, period.to, |page| {
        hours.add(&page, &filter);
        for s in &page {
            if !period.contains(s.entry.work_date) {
                continue;
            }
            in_period += 1;
            if !matches!(s.status(), Status::Exception | Status::Held) {
                continue;
            }
            exceptions += 1;
            exception_row(&mut w, s)?;
        }
        Ok::<(), ExportError>(())
    })
    .await?;
    let (by_project, by_employee) = hours.finish();
    let dir = format!("{prefix}{}", folder(period));
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| {
        let key = format!("{dir}/{name}");
        files.push(key.clone());
        (key, bytes)
    };
    let mut out = vec![
        put(FILES[0], groups_csv("project", &by_project)?),
        put(FILES[1], groups_csv("employee", &by_employee)?),
    ];
    out.push(put(FILES[2], w.into_inner().map_err(csv_err)?));

    let run = reconcile.runs(1).await?.into_iter().next();
    let breaks = match &run {
        Some(r) => reconcile.run_breaks(r.seq).await?,
        None => Vec::new(),
    };
    let mut w = SafeCsv::new(Vec::new());
    w.header(&[
        "run",
        "period",
        "break",
        "code",
        "what",
        "entry",
        "record",
        "party",
        "customer",
        "day",
        "timepost_minutes",
        "books_minutes",
        "dismissed",
    ])
    .map_err(csv_err)?;
    if let Some(r) = &run {
        let seq = r.seq.to_string();
        let p = r.period.to_string();
        for b in &breaks {
            let day = b.day.map(|d| d.to_string()).unwrap_or_default();
            let exp = b
                .expected_minutes
                .map(|m| m.to_string())
                .unwrap_or_default();
            let got = b.books_minutes.map(|m| m.to_string()).unwrap_or_default();
            w.row(&[
                Cell::Number(&seq),
                Cell::Text(&p),
                Cell::Text(&b.id),
                Cell::Text(b.code.as_str()),
                Cell::Text(&b.said),
                Cell::Text(b.entry.as_deref().unwrap_or("")),
                Cell::Text(b.record.as_deref().unwrap_or("")),
                Cell::Text(b.party.as_deref().unwrap_or("")),
                Cell::Text(b.customer.as_deref().unwrap_or("")),
                Cell::Text(&day),
                Cell::Number(&exp),
                Cell::Number(&got),
                Cell::Text(b.dismissed.as_deref().unwrap_or("")),
            ])
            .map_err(csv_err)?;
        }
    }
    out.push(put(FILES[3], w.into_inner().map_err(csv_err)?));

    let written = Written {
        period: *period,
        files,
        entries: in_period,
        exceptions,
        reconciliation_run: run.map(|r| r.seq),
    };
    for (key, bytes) in out {
        sink.put(&key, bytes).await?;
    }
    // Last: its presence marks the period done.
    let manifest = serde_json::to_vec_pretty(&written).map_err(csv_err)?;
    sink.put(&format!("{dir}/manifest.json"), manifest).await?;
    Ok(written)
}

/// The scheduled run: export the last closed period unless done, then
/// notify. `None` when it was already exported.
pub async fn scheduled(
    entries: &dyn EntryStore,
    reconcile: &dyn ReconcileStore,
    sink: &dyn Archive,
    prefix: &str,
    cfg: &ExportsConfig,
    notifiers: &[Arc<dyn Notifier>],
    today: NaiveDate,
) -> Result<Option<Written>, ExportError> {
    let period = last_closed(cfg.period, today);
    let marker = format!("{prefix}{}/manifest.json", folder(&period));
    if sink.get(&marker).await?.is_some() {
        return Ok(None);
    }
    let written = export(entries, reconcile, sink, prefix, &period).await?;
    if cfg.notify && !notifiers.is_empty() {
        let notice = Notice {
            subject: format!("timepost export {} ready", period),
            text: format!(
                "The export for {} to {} is written: {} entries worked in the period, {} exception(s) or held.\nFiles:\n{}",
                period.from,
                period.to,
                written.entries,
                written.exceptions,
                written.files.join("\n")
            ),
            extra_to: Vec::new(),
        };
        crate::alerts::deliver::broadcast(notifiers, &notice).await;
    }
    Ok(Some(written))
}
