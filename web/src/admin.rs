//! The admin API (JSON): entries by status, exceptions, dead letters and
//! their redrive, discards, mappings and their history, the outcome report,
//! the audit log. Who may call what is decided in `auth::ROUTES`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::Principal;
use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, AppState};
use crate::exceptions::ExceptionCode;
use crate::mapping::MappingTable;
use crate::model::EntryKey;
use crate::state::Status;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/report", get(report))
        .route("/entries", get(entries))
        .route("/entries/{key}", get(entry))
        .route("/entries/{key}/redrive", post(redrive_entry))
        .route("/entries/{key}/trace", get(super::entry_detail::api_trace))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/{id}/redrive", post(redrive_dead_letter))
        .route("/mappings", get(mappings).post(super::mappings::api_set))
        .route("/mappings/revert", post(super::mappings::api_revert))
        .route("/mappings/history", get(history))
        .route("/mappings/preview", get(super::mapping_review::api_preview))
        .route("/mappings/pending", get(super::mapping_review::api_list))
        .route(
            "/mappings/pending/{id}",
            get(super::mapping_review::api_get),
        )
        .route(
            "/mappings/pending/{id}/approve",
            post(super::mapping_review::api_approve),
        )
        .route(
            "/mappings/pending/{id}/reject",
            post(super::mapping_review::api_reject),
        )
        .route("/exception-codes", get(codes))
        .route("/entries/{key}/discard", post(discard_entry))
        .route("/audit", get(audit))
        .route("/holding", post(super::holding::api_post))
        .route(
            "/approvals",
            get(super::approvals::api_list).post(super::approvals::api_post),
        )
        .route("/reconciliation/runs", get(super::reconciliation::api_runs))
        .route(
            "/reconciliation/runs/{seq}/breaks",
            get(super::reconciliation::api_breaks),
        )
        .route(
            "/reconciliation/breaks/{id}/resolve",
            post(super::reconciliation::api_resolve),
        )
        .route("/reconciliation/run", post(super::reconciliation::api_run))
        .route("/reconciliation/kpi", get(super::reconciliation::api_kpi))
        .route("/archives", get(super::archives::api_list))
        .route("/archives/verify", post(super::archives::api_verify))
}

#[derive(Deserialize)]
struct ReportQuery {
    period: Option<String>,
    /// `true`: the full outcome report (every entry state and the
    /// ledger's read-back).
    #[serde(default)]
    full: bool,
}

/// The store's summary (`crate::summary`: totals from the maintained
/// aggregates, bounded listings); with `full=true` the full outcome report
/// (every entry state and the ledger's read-back); with `period` (`all`,
/// `2026`, `2026-03`, `2026-W10`, `2026-03-02`) the period's report from
/// the maintained aggregates (`crate::period_report::PeriodReport`).
async fn report(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    match q.period {
        Some(label) => {
            let p: crate::aggregates::Period = label
                .parse()
                .map_err(|e: String| ApiError::bad_request(e, Some("period".into())))?;
            let r = crate::period_report::collect_period(s.entries.as_ref(), p, &label).await?;
            Ok(Json(r).into_response())
        }
        None if q.full => Ok(Json(s.report().await?).into_response()),
        // The store's totals from the aggregates, the entries that need
        // someone from bounded reads (`crate::summary`).
        None => Ok(Json(
            crate::summary::collect(s.entries.as_ref(), s.ledger.name(), s.queue.as_ref()).await?,
        )
        .into_response()),
    }
}

#[derive(Deserialize)]
struct EntriesQuery {
    status: Option<String>,
    limit: Option<usize>,
    /// Without `status`, or with `worker` / `project`: the page after
    /// this entry key (the last key of the previous page), in key order;
    /// with `status` alone: after `<updated_at>|<key>` of the previous
    /// page's last entry (oldest first).
    after: Option<String>,
    /// Only this worker's entries (tracker user id or e-mail), read over
    /// the mapped-key index.
    worker: Option<String>,
    /// Only this project's entries (tracker project id or name), read over
    /// the mapped-key index.
    project: Option<String>,
}

/// A query value given and not blank.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// One page of the entries of a worker and / or project (and `status`),
/// in key order after `after`: read over the mapped-key index (the
/// worker's key when both are given), never every entry.
async fn entries_by_keys(
    s: &AppState,
    q: &EntriesQuery,
    status: Option<Status>,
    after: Option<EntryKey>,
    limit: usize,
) -> Result<Vec<crate::state::EntryState>, ApiError> {
    use crate::mapping::keys::{filter_key, KeyKind};
    let worker = given(&q.worker).map(|w| filter_key(KeyKind::User, w));
    let project = given(&q.project).map(|p| filter_key(KeyKind::Project, p));
    let (walk, also) = match (worker, project) {
        (Some(w), p) => (w, p),
        (None, Some(p)) => (p, None),
        (None, None) => return Ok(Vec::new()),
    };
    let keep = |st: &crate::state::EntryState| {
        status.is_none_or(|x| st.status() == x)
            && also
                .as_ref()
                .is_none_or(|k| crate::mapping::keys_of(&st.entry).contains(k))
    };
    let mut out = Vec::new();
    let mut cursor = after;
    let step = limit.clamp(1, 1_000);
    while out.len() < limit {
        let page = s
            .entries
            .by_mapped_keys(std::slice::from_ref(&walk), cursor.as_ref(), step)
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.entry.key.clone());
        let n = page.len();
        out.extend(page.into_iter().filter(|st| keep(st)));
        if n < step {
            break;
        }
    }
    out.truncate(limit);
    Ok(out)
}

async fn entries(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Response, ApiError> {
    let limit = super::listing::api_limit(q.limit);
    if given(&q.worker).is_some() || given(&q.project).is_some() {
        let status = q
            .status
            .as_deref()
            .map(str::parse::<Status>)
            .transpose()
            .map_err(|e| ApiError::bad_request(e, Some("status".into())))?;
        let after = q
            .after
            .as_deref()
            .map(|k| k.parse::<EntryKey>())
            .transpose()
            .map_err(|e: String| ApiError::bad_request(e, Some("after".into())))?;
        let list = entries_by_keys(&s, &q, status, after, limit).await?;
        return Ok(Json(list).into_response());
    }
    let list = match q.status.as_deref() {
        Some(st) => {
            let status: Status = st
                .parse()
                .map_err(|e: String| ApiError::bad_request(e, Some("status".into())))?;
            // The page after `<updated_at>|<key>` of the previous page's
            // last entry, oldest first.
            super::listing::api_page(s.entries.as_ref(), status, q.after.as_deref(), q.limit)
                .await?
        }
        // One page in key order, read as a page: never every entry.
        None => {
            let after = q
                .after
                .as_deref()
                .map(|k| k.parse::<EntryKey>())
                .transpose()
                .map_err(|e: String| ApiError::bad_request(e, Some("after".into())))?;
            s.entries.page(after.as_ref(), limit).await?
        }
    };
    Ok(Json(list).into_response())
}

fn parse_key(key: &str) -> Result<EntryKey, ApiError> {
    key.parse()
        .map_err(|e: String| ApiError::bad_request(e, Some("key".into())))
}

async fn entry(State(s): State<AppState>, Path(key): Path<String>) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    let state = s
        .entries
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no entry {key}")))?;
    Ok(Json(state).into_response())
}

async fn redrive_entry(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    let (entries, queue, audit) = (s.entries.as_ref(), s.queue.as_ref(), s.audit.as_ref());
    crate::app::entries::redrive_entry(entries, queue, audit, &who.actor(), &key, "admin api")
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "redriven": key.to_string() })),
    )
        .into_response())
}

async fn dead_letters(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.queue.dead_letters(10_000).await?).into_response())
}

async fn redrive_dead_letter(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (queue, audit) = (s.queue.as_ref(), s.audit.as_ref());
    crate::app::entries::redrive_dead_letter(queue, audit, &who.actor(), &id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "redriven": id }))).into_response())
}

#[derive(Deserialize)]
struct TableQuery {
    table: Option<String>,
    key: Option<String>,
}

fn parse_table(t: Option<&str>) -> Result<Option<MappingTable>, ApiError> {
    t.map(|t| {
        t.parse()
            .map_err(|e: String| ApiError::bad_request(e, Some("table".into())))
    })
    .transpose()
}

async fn mappings(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<TableQuery>,
) -> Result<Response, ApiError> {
    let table = parse_table(q.table.as_deref())?;
    let m = s.mappings.snapshot().await?;
    let rows: Vec<_> = m
        .rows()
        .into_iter()
        .filter(|r| table.is_none_or(|t| t == r.table))
        .cloned()
        .collect();
    Ok(Json(json!({ "version": m.version, "rows": rows })).into_response())
}

async fn history(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<TableQuery>,
) -> Result<Response, ApiError> {
    let table = parse_table(q.table.as_deref())?;
    Ok(Json(s.mappings.history(table, q.key.as_deref()).await?).into_response())
}

async fn codes() -> Response {
    let list: Vec<_> = ExceptionCode::ALL
        .iter()
        .map(|c| json!({ "code": c.as_str(), "title": c.title(), "fix_hint": c.fix_hint() }))
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize)]
struct DiscardBody {
    reason: Option<String>,
}

async fn discard_entry(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
    body: Option<ApiJson<DiscardBody>>,
) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    let reason = body
        .and_then(|ApiJson(b)| b.reason)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("`reason` is required", Some("reason".into())))?;
    super::console::discard(&s, &who, &key, &reason).await?;
    Ok(Json(json!({ "discarded": key.to_string(), "reason": reason })).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = super::listing::api_limit(q.limit);
    Ok(Json(s.audit.recent(limit).await?).into_response())
}
