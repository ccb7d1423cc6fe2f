//! The admin API (JSON): entries by status, exceptions, dead letters and
//! their redrive, mappings and their history, the outcome report. Every
//! route needs the admin bearer token; the console issue adds roles.

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{secret_list, secret_names, ApiError, AppState};
use crate::exceptions::ExceptionCode;
use crate::mapping::MappingTable;
use crate::model::EntryKey;
use crate::ports::QueueMessage;
use crate::state::Status;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/report", get(report))
        .route("/entries", get(entries))
        .route("/entries/{key}", get(entry))
        .route("/entries/{key}/redrive", post(redrive_entry))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/{id}/redrive", post(redrive_dead_letter))
        .route("/mappings", get(mappings))
        .route("/mappings/history", get(history))
        .route("/exception-codes", get(codes))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let tokens = secret_list(s.secrets.as_ref(), secret_names::ADMIN).await;
    let ok = !given.is_empty()
        && tokens.iter().fold(false, |acc, t| {
            acc | bool::from(t.as_bytes().ct_eq(given.as_bytes()))
        });
    if !ok {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

async fn report(State(s): State<AppState>) -> Result<Response, ApiError> {
    let r = crate::report::collect(
        s.entries.as_ref(),
        s.ledger.as_ref(),
        s.queue.as_ref(),
        s.engine.counters.snapshot(),
        &[],
    )
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(r).into_response())
}

#[derive(Deserialize)]
struct EntriesQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn entries(
    State(s): State<AppState>,
    Query(q): Query<EntriesQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(500).min(10_000);
    let list = match q.status.as_deref() {
        Some(st) => {
            let status: Status = st
                .parse()
                .map_err(|e: String| ApiError::bad_request(e, Some("status".into())))?;
            s.entries.by_status(status, limit).await?
        }
        None => s.entries.all().await?.into_iter().take(limit).collect(),
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
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    if s.entries.get(&key).await?.is_none() {
        return Err(ApiError::not_found(format!("no entry {key}")));
    }
    s.queue
        .send_batch(&[QueueMessage::Redrive {
            key: key.clone(),
            by: "admin api".into(),
        }])
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
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.queue.redrive(&id).await?;
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
    Query(q): Query<TableQuery>,
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
    Query(q): Query<TableQuery>,
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
