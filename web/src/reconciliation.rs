//! The Reconciliation page and `/api/reconciliation`: the stored runs
//! (period, when, counts per class, duration), one run's breaks with code,
//! sentence, fix hint and the entry's page, their CSV, and for admin and
//! finance the resolve actions and "Run now". Every action calls the same
//! library functions `timepost reconcile` calls
//! ([`Reconciler::run`], [`resolve`]), audited with the signed-in user.
//!
//! "Run now" compares what timepost received with timepost and the books;
//! the tracker's fresh listing (`timepost reconcile` without
//! `--no-listing`) pages through the tracker's API and is left out of the
//! request path.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;

use super::auth::{self, Principal};
use super::console::{back_to, csv_download, field, PageError};
use super::extract::{ApiJson, ApiQuery};
use super::html::{csrf_field, esc, page};
use super::{ApiError, AppState, Reconcile};
use crate::reconcile::gather::{ReconcileError, Reconciler};
use crate::reconcile::resolve::{resolve, Resolver};
use crate::reconcile::{kpi, Action, Break, Period, Resolution, RunSummary};

/// How many runs the page and the API list at most.
pub const RUNS_LISTED: usize = 100;

fn offered(s: &AppState) -> Result<&Reconcile, ApiError> {
    s.reconcile().ok_or_else(|| {
        ApiError::unavailable(
            "reconciliation is not offered by this server; use `timepost reconcile`",
        )
    })
}

fn reconciler(s: &AppState, r: &Reconcile) -> Reconciler {
    Reconciler {
        entries: s.entries.clone(),
        ledger: s.ledger.clone(),
        store: r.store.clone(),
        config: r.config.clone(),
    }
}

impl From<ReconcileError> for ApiError {
    fn from(e: ReconcileError) -> Self {
        match e {
            ReconcileError::UnknownBreak(_) => Self::not_found(e.to_string()),
            ReconcileError::Refused(_) | ReconcileError::NoReadBack(_) => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            ReconcileError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "reconciliation failed");
                Self::unavailable(other.to_string())
            }
        }
    }
}

fn parse_action(a: &str) -> Result<Action, ApiError> {
    match a.trim() {
        "repost" => Ok(Action::Repost),
        "accept_books" => Ok(Action::AcceptBooks),
        "dismiss" => Ok(Action::Dismiss),
        other => Err(ApiError::bad_request(
            format!("`action` must be `repost`, `accept_books` or `dismiss`, not `{other}`"),
            Some("action".into()),
        )),
    }
}

fn parse_period(text: &str) -> Result<Period, ApiError> {
    Period::parse(text.trim(), chrono::Utc::now().date_naive())
        .map_err(|e| ApiError::bad_request(e, Some("period".into())))
}

fn parse_seq(text: &str) -> Result<u64, ApiError> {
    text.trim().parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!("`{text}` is not a run number"), Some("run".into()))
    })
}

/// The run `seq` (the newest when None) among the listed runs, and its
/// breaks.
async fn run_and_breaks(
    r: &Reconcile,
    runs: &[RunSummary],
    seq: Option<u64>,
) -> Result<Option<(RunSummary, Vec<Break>)>, ApiError> {
    let run = match seq {
        None => runs.first().cloned(),
        Some(n) => Some(
            runs.iter()
                .find(|x| x.seq == n)
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("no stored run #{n}")))?,
        ),
    };
    match run {
        Some(run) => {
            let breaks = r.store.run_breaks(run.seq).await?;
            Ok(Some((run, breaks)))
        }
        None => Ok(None),
    }
}

/// Resolve break `id` as `who` (the library call the CLI makes), then,
/// locally, converge a re-posted week at once as the CLI does.
pub async fn resolve_as(
    s: &AppState,
    who: &Principal,
    id: &str,
    action: Action,
    reason: &str,
) -> Result<Resolution, ApiError> {
    let r = offered(s)?;
    if action == Action::Dismiss && reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "a dismissal needs a reason",
            Some("reason".into()),
        ));
    }
    let by = Resolver {
        who: who.name.clone(),
        role: who.role.as_str().to_string(),
    };
    let done = resolve(
        &reconciler(s, r),
        &s.engine,
        s.audit.as_ref(),
        id,
        action,
        reason,
        &by,
    )
    .await?;
    if action == Action::Repost && r.converge_now {
        s.engine
            .sweep_older_than(&crate::engine::new_batch_id(), crate::engine::STALE_INTENT)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("the re-post is recorded; convergence failed: {e}"))
            })?;
    }
    Ok(done)
}

fn counts_text(r: &RunSummary) -> String {
    if r.counts.is_empty() {
        return "—".into();
    }
    r.counts
        .iter()
        .map(|(c, n)| format!("{} {n}", esc(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn page_get(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let r = offered(&s)?;
    let seq = match q.get("run").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_seq(v)?),
        None => None,
    };
    let runs = r.store.runs(RUNS_LISTED).await?;
    let selected = run_and_breaks(r, &runs, seq).await?;
    let can_act = auth::may(who.role, "POST", "/console/reconciliation/resolve");
    let mut body = String::new();
    if let Some(n) = q.get("notice").filter(|n| !n.is_empty()) {
        body.push_str(&format!("<p class=\"notice\">{}</p>", esc(n)));
    }
    if can_act {
        body.push_str(&format!(
            "<section class=\"group\"><h2>Run now</h2><form class=\"inline\" method=\"post\" action=\"/console/reconciliation/run\">{}\
             <input type=\"text\" name=\"period\" value=\"week\" aria-label=\"period\">\
             <button type=\"submit\">Run now</button></form>\
             <p class=\"hint\">A period is <code>week</code>, <code>month</code> or <code>FROM..TO</code>. \
             Compares what timepost received with timepost and the books; the tracker's fresh listing is left out here (run <code>timepost reconcile</code> for it).</p></section>",
            csrf_field(&who)
        ));
    }
    body.push_str("<section class=\"group\"><h2>Runs</h2>");
    if runs.is_empty() {
        body.push_str("<p>No reconciliation run stored yet.</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>Run</th><th>Period</th><th>When (UTC)</th><th>Result</th><th>Per class</th><th>Dismissed</th><th>Duration</th><th>By</th></tr></thead><tbody>",
        );
        for run in &runs {
            body.push_str(&format!(
                "<tr data-run=\"{n}\"><td><a href=\"/console/reconciliation?run={n}\">#{n}</a></td><td>{p}</td><td>{w}</td><td>{res}</td><td>{c}</td><td class=\"num\">{d}</td><td class=\"num\">{ms} ms</td><td>{by}</td></tr>",
                n = run.seq,
                p = run.period,
                w = run.started_at.format("%Y-%m-%d %H:%M:%S"),
                res = if run.agrees() {
                    "agrees".to_string()
                } else {
                    format!("{} break(s)", run.breaks)
                },
                c = counts_text(run),
                d = run.dismissed,
                ms = run.duration_ms,
                by = esc(&run.by),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    body.push_str(&kpi_section(&runs, chrono::Utc::now()));
    if let Some((run, breaks)) = &selected {
        body.push_str(&format!(
            "<section class=\"group\"><h2>Breaks of run #{n} ({p}, against {l})</h2>\
             <p><a href=\"/console/reconciliation.csv?run={n}\">Download the breaks (CSV)</a></p>",
            n = run.seq,
            p = run.period,
            l = esc(&run.ledger),
        ));
        let shown: Vec<&Break> = breaks.iter().filter(|b| !b.info).collect();
        if shown.is_empty() {
            body.push_str("<p>No break: the three sides agree.</p>");
        } else {
            body.push_str(
                "<table><thead><tr><th>Break</th><th>Code</th><th>What</th><th>Fix</th><th>Entry</th><th></th></tr></thead><tbody>",
            );
            for b in shown {
                body.push_str(&break_row(&who, b, can_act));
            }
            body.push_str("</tbody></table>");
        }
        let info = breaks.iter().filter(|b| b.info).count();
        if info > 0 {
            body.push_str(&format!(
                "<p class=\"hint\">{info} record(s) in the books not written by timepost (information, in the CSV).</p>"
            ));
        }
        body.push_str("</section>");
    }
    Ok(page("Reconciliation", Some(&who), &body).into_response())
}

fn break_row(who: &Principal, b: &Break, can_act: bool) -> String {
    let entry = match &b.entry {
        Some(k) => format!(
            "<a href=\"/console/exceptions/{}\"><code>{}</code></a>",
            super::entry_detail::urlencode(k),
            esc(k)
        ),
        None => "—".into(),
    };
    let state = match &b.dismissed {
        Some(r) => format!("<br><span class=\"status\">dismissed: {}</span>", esc(r)),
        None => String::new(),
    };
    let actions = if can_act && b.dismissed.is_none() {
        let id = esc(&b.id);
        let csrf = csrf_field(who);
        let mut a = String::new();
        if b.entry.is_some() {
            for (action, label) in [("repost", "Re-post"), ("accept_books", "Accept the books")] {
                a.push_str(&format!(
                    "<form class=\"inline\" method=\"post\" action=\"/console/reconciliation/resolve\">{csrf}\
                     <input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"action\" value=\"{action}\">\
                     <button type=\"submit\">{label}</button></form> "
                ));
            }
        }
        a.push_str(&format!(
            "<form class=\"inline\" method=\"post\" action=\"/console/reconciliation/resolve\">{csrf}\
             <input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"action\" value=\"dismiss\">\
             <input type=\"text\" name=\"reason\" placeholder=\"reason\" aria-label=\"reason\">\
             <button class=\"secondary\" type=\"submit\">Dismiss</button></form>"
        ));
        a
    } else {
        String::new()
    };
    format!(
        "<tr data-break=\"{id}\"><td><code>{id}</code>{state}</td><td>{code}</td><td>{said}</td><td>{fix}</td><td>{entry}</td><td>{actions}</td></tr>",
        id = esc(&b.id),
        code = b.code.as_str(),
        said = esc(&b.said),
        fix = esc(&b.fix_hint),
    )
}

/// The breaks of a run (the newest when `run` is not given) as CSV.
pub async fn csv(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    use crate::csv_out::{Cell, SafeCsv};
    let r = offered(&s)?;
    let seq = match q.get("run").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_seq(v)?),
        None => None,
    };
    let runs = r.store.runs(RUNS_LISTED).await?;
    let mut w = SafeCsv::new(Vec::new());
    let csv_err = |e: csv::Error| ApiError::unavailable(format!("cannot write CSV: {e}"));
    w.header(&[
        "run",
        "period",
        "break",
        "code",
        "information",
        "dismissed",
        "entry",
        "record",
        "day",
        "expected_minutes",
        "books_minutes",
        "sentence",
        "fix_hint",
    ])
    .map_err(csv_err)?;
    let name = match run_and_breaks(r, &runs, seq).await? {
        Some((run, breaks)) => {
            let (n, p) = (run.seq.to_string(), run.period.to_string());
            for b in &breaks {
                let day = b.day.map(|d| d.to_string()).unwrap_or_default();
                let em = b
                    .expected_minutes
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let bm = b.books_minutes.map(|m| m.to_string()).unwrap_or_default();
                w.row(&[
                    Cell::Number(&n),
                    Cell::Text(&p),
                    Cell::Text(&b.id),
                    Cell::Text(b.code.as_str()),
                    Cell::Text(if b.info { "yes" } else { "no" }),
                    Cell::Text(b.dismissed.as_deref().unwrap_or("")),
                    Cell::Text(b.entry.as_deref().unwrap_or("")),
                    Cell::Text(b.record.as_deref().unwrap_or("")),
                    Cell::Text(&day),
                    Cell::Number(&em),
                    Cell::Number(&bm),
                    Cell::Text(&b.said),
                    Cell::Text(&b.fix_hint),
                ])
                .map_err(csv_err)?;
            }
            format!("timepost-reconciliation-{}.csv", run.seq)
        }
        None => "timepost-reconciliation.csv".to_string(),
    };
    Ok(csv_download(w, &name)?)
}

pub async fn resolve_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let id = field(&form, "id")?;
    let action = parse_action(field(&form, "action")?)?;
    let reason = form.get("reason").map(|r| r.trim()).unwrap_or("");
    let done = resolve_as(&s, &who, id, action, reason).await?;
    Ok(back_to("/console/reconciliation", &done.said))
}

pub async fn run_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let period = parse_period(field(&form, "period")?)?;
    let run = run_as(&s, &who, &period).await?;
    let s = &run.summary;
    Ok(back_to(
        &format!("/console/reconciliation?run={}", s.seq),
        &format!(
            "Run #{} of {}: {}.",
            s.seq,
            s.period,
            if s.agrees() {
                "agrees".to_string()
            } else {
                format!("{} break(s)", s.breaks)
            }
        ),
    ))
}

/// Reconcile `period` as `who` (no tracker listing in the request path).
async fn run_as(
    s: &AppState,
    who: &Principal,
    period: &Period,
) -> Result<crate::reconcile::gather::Run, ApiError> {
    let r = offered(s)?;
    let run = reconciler(s, r).run(period, None, &who.name).await?;
    s.audit
        .record(super::console::audit_record(
            who,
            "reconcile_run",
            None,
            format!(
                "run #{} of {}: {} break(s)",
                run.summary.seq, run.summary.period, run.summary.breaks
            ),
        ))
        .await?;
    Ok(run)
}

#[derive(Deserialize)]
pub struct RunsQuery {
    limit: Option<usize>,
}

pub async fn api_runs(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Response, ApiError> {
    let r = offered(&s)?;
    let limit = q.limit.unwrap_or(20).clamp(1, RUNS_LISTED);
    Ok(Json(r.store.runs(limit).await?).into_response())
}

pub async fn api_breaks(
    State(s): State<AppState>,
    Path(seq): Path<String>,
) -> Result<Response, ApiError> {
    let r = offered(&s)?;
    let seq = parse_seq(&seq)?;
    let runs = r.store.runs(RUNS_LISTED).await?;
    let (_, breaks) = run_and_breaks(r, &runs, Some(seq))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no stored run #{seq}")))?;
    Ok(Json(breaks).into_response())
}

#[derive(Deserialize)]
pub struct ResolveBody {
    action: Option<String>,
    reason: Option<String>,
}

pub async fn api_resolve(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<ApiJson<ResolveBody>>,
) -> Result<Response, ApiError> {
    let Some(ApiJson(b)) = body else {
        return Err(ApiError::bad_request(
            "a JSON body {\"action\": \"repost\"|\"accept_books\"|\"dismiss\", \"reason\": \"...\"} is required",
            Some("action".into()),
        ));
    };
    let action =
        parse_action(b.action.as_deref().ok_or_else(|| {
            ApiError::bad_request("`action` is required", Some("action".into()))
        })?)?;
    let done = resolve_as(&s, &who, &id, action, b.reason.as_deref().unwrap_or("")).await?;
    Ok(Json(done).into_response())
}

#[derive(Deserialize)]
pub struct RunBody {
    period: Option<String>,
}

pub async fn api_run(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<ApiJson<RunBody>>,
) -> Result<Response, ApiError> {
    let text = body
        .and_then(|ApiJson(b)| b.period)
        .ok_or_else(|| ApiError::bad_request("`period` is required", Some("period".into())))?;
    let period = parse_period(&text)?;
    let run = run_as(&s, &who, &period).await?;
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

/// The KPI "reconciliation time" per period of `runs`, as the page's
/// section (period end → the first run after it with zero breaks).
fn kpi_section(runs: &[RunSummary], now: chrono::DateTime<chrono::Utc>) -> String {
    let times = kpi::reconciliation_times(runs, now);
    let mut out = String::from(
        "<section class=\"group\" id=\"reconciliation-time\"><h2>Reconciliation time</h2>\
         <p class=\"hint\">From a period's end (midnight UTC after its last day) to the first run after it with zero breaks.</p>",
    );
    if times.is_empty() {
        out.push_str("<p>No period reconciled yet.</p></section>");
        return out;
    }
    out.push_str(&format!(
        "<p>Median over the periods reconciled: <b id=\"reconciliation-time-median\">{}</b></p>",
        kpi::median_minutes(&times).map_or_else(|| "not yet".to_string(), kpi::duration_text)
    ));
    out.push_str(
        "<table><thead><tr><th>Period</th><th>Ended (UTC)</th><th>Zero breaks in run</th><th>Reconciliation time</th></tr></thead><tbody>",
    );
    for t in &times {
        let run = match &t.standing {
            kpi::Standing::Reconciled { run, .. } => {
                format!("<a href=\"/console/reconciliation?run={run}\">#{run}</a>")
            }
            kpi::Standing::NotYet {
                open_breaks: Some(n),
                ..
            } => format!("— ({n} break(s) in the newest run)"),
            _ => "—".to_string(),
        };
        out.push_str(&format!(
            "<tr data-period=\"{p}\"><td>{p}</td><td>{e}</td><td>{run}</td><td>{t}</td></tr>",
            p = t.period,
            e = t.ended_at.format("%Y-%m-%d %H:%M"),
            t = esc(&t.text()),
        ));
    }
    out.push_str("</tbody></table></section>");
    out
}

/// How many of the newest runs the KPI "reconciliation time" is measured
/// over on the dashboard and in `/api/reconciliation/kpi`.
pub const KPI_RUNS: usize = 500;

/// The KPI "reconciliation time" of every period among the newest
/// [`KPI_RUNS`] runs, and its median.
#[derive(serde::Serialize)]
pub struct KpiBody {
    pub median_minutes: Option<i64>,
    pub periods: Vec<kpi::PeriodTime>,
}

pub async fn api_kpi(State(s): State<AppState>) -> Result<Response, ApiError> {
    let r = offered(&s)?;
    let runs = r.store.runs(KPI_RUNS).await?;
    let periods = kpi::reconciliation_times(&runs, chrono::Utc::now());
    Ok(Json(KpiBody {
        median_minutes: kpi::median_minutes(&periods),
        periods,
    })
    .into_response())
}

/// The dashboard's reconciliation time tile: the newest closed period's
/// figure ("not yet" while no run after its end found zero breaks) and the
/// median, when a run of a closed period is stored.
pub async fn kpi_tile(s: &AppState) -> Option<String> {
    let r = s.reconcile()?;
    let runs = match r.store.runs(KPI_RUNS).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the reconciliation runs");
            return None;
        }
    };
    let times = kpi::reconciliation_times(&runs, chrono::Utc::now());
    let last = times
        .iter()
        .find(|t| !matches!(t.standing, kpi::Standing::Open))?;
    Some(format!(
        "<p class=\"tile\" id=\"kpi-reconciliation-time\">Reconciliation time (period end → zero breaks), \
         last closed period {}: <a href=\"/console/reconciliation#reconciliation-time\"><b>{}</b></a>; \
         median over the periods reconciled: <b>{}</b></p>",
        last.period,
        esc(&last.text()),
        kpi::median_minutes(&times).map_or_else(|| "not yet".to_string(), kpi::duration_text)
    ))
}

/// The dashboard's reconciliation figure: the newest run's open breaks,
/// when a run is stored (one read of the newest run).
pub async fn last_run(s: &AppState) -> Option<RunSummary> {
    let r = s.reconcile()?;
    match r.store.runs(1).await {
        Ok(runs) => runs.into_iter().next(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the newest reconciliation run");
            None
        }
    }
}
