//! Tracker webhooks: verify the signature on the raw body, parse, enqueue
//! durably, and only then answer. A 2xx therefore never loses an event.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use super::{secret_list, secret_names, ApiError, AppState};
use crate::intake::Intake;
use crate::sources::{self, signature, ParseError, Parsed};

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn bad_payload(e: ParseError) -> ApiError {
    let field = if e.field.is_empty() {
        None
    } else {
        Some(e.field.clone())
    };
    ApiError::bad_request(format!("malformed payload: {e}"), field)
}

async fn context(s: &AppState) -> Result<sources::ParseContext, ApiError> {
    let mut ctx = s.parse_context.get(&s.intake, s.mappings.as_ref()).await?;
    ctx.received_at = Some(Utc::now());
    Ok(ctx)
}

pub async fn clockify(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let secrets = secret_list(s.secrets.as_ref(), secret_names::CLOCKIFY).await;
    let keys: Vec<&[u8]> = secrets.iter().map(|k| k.as_bytes()).collect();
    if !signature::verify_clockify(header(&headers, "clockify-signature"), &keys) {
        tracing::warn!(
            route = "clockify",
            "webhook refused: bad or missing signature"
        );
        return ApiError::unauthorized().into_response();
    }
    let ctx = match context(&s).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let event_type = header(&headers, "clockify-webhook-event-type");
    match sources::clockify::parse(&body, event_type, &ctx) {
        Ok(parsed) => accept(&s, "clockify", parsed).await,
        Err(e) => bad_payload(e).into_response(),
    }
}

pub async fn toggl(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let secrets = secret_list(s.secrets.as_ref(), secret_names::TOGGL).await;
    let keys: Vec<&[u8]> = secrets.iter().map(|k| k.as_bytes()).collect();
    if !signature::verify_toggl(&body, header(&headers, "x-webhook-signature-256"), &keys) {
        tracing::warn!(route = "toggl", "webhook refused: bad or missing signature");
        return ApiError::unauthorized().into_response();
    }
    let ctx = match context(&s).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match sources::toggl::parse(&body, &ctx) {
        Ok(parsed) => accept(&s, "toggl", parsed).await,
        Err(e) => bad_payload(e).into_response(),
    }
}

/// Enqueue what a delivery carries; answer once it is durable.
async fn accept(s: &AppState, route: &str, parsed: Parsed) -> Response {
    let messages = match crate::intake::intake(parsed.event, route) {
        Intake::Ping(validation_code) => {
            tracing::info!(route, "webhook validation ping answered");
            return (
                StatusCode::OK,
                Json(json!({ "validation_code": validation_code })),
            )
                .into_response();
        }
        Intake::Ignored(reason) => {
            tracing::info!(
                route,
                event_id = parsed.event_id.as_deref(),
                reason,
                "webhook event ignored"
            );
            return (
                StatusCode::ACCEPTED,
                Json(json!({ "accepted": 0, "ignored": reason })),
            )
                .into_response();
        }
        Intake::Enqueue(messages) => messages,
    };
    let n = messages.len();
    for batch in crate::intake::batches(messages) {
        if let Err(e) = s.queue.send_batch(&batch).await {
            tracing::error!(route, error = %e, "enqueue failed; the tracker will retry");
            return ApiError::unavailable("could not store the event; please retry")
                .into_response();
        }
    }
    tracing::info!(
        route,
        event_id = parsed.event_id.as_deref(),
        accepted = n,
        "webhook accepted"
    );
    (StatusCode::ACCEPTED, Json(json!({ "accepted": n }))).into_response()
}
