//! Tracker webhooks: verify the signature on the raw body, parse, enqueue
//! durably, and only then answer. A 2xx therefore never loses an event.
//!
//! The routes work on [`WebhookState`] alone — the queue, the webhook
//! secrets, the mappings (per-user time zones) and the intake settings — so
//! the webhook function builds just those ([`WebhookState::aws`]) and
//! links no engine, ledger or console; `timepost serve` serves the same
//! handlers from its `AppState`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use std::sync::Arc;

use super::{secret_list, secret_names, ApiError};
use crate::config::IntakeConfig;
use crate::intake::Intake;
use crate::ports::{MappingStore, Queue, Secrets};
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

/// What the webhook routes work on (cheap to clone).
#[derive(Clone)]
pub struct WebhookState(Arc<WebhookPorts>);

pub struct WebhookPorts {
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
    pub mappings: Arc<dyn MappingStore>,
    pub intake: IntakeConfig,
    /// The parse context (per-user time zones from the mappings), cached
    /// briefly so a webhook does not read every mapping.
    pub parse_context: ParseContextCache,
}

impl WebhookState {
    pub fn new(
        queue: Arc<dyn Queue>,
        secrets: Arc<dyn Secrets>,
        mappings: Arc<dyn MappingStore>,
        intake: IntakeConfig,
    ) -> Self {
        Self(Arc::new(WebhookPorts {
            queue,
            secrets,
            mappings,
            intake,
            parse_context: ParseContextCache::default(),
        }))
    }
}

impl WebhookState {
    /// The webhook routes' state on a deployed stack's ports (the webhook
    /// function builds nothing else).
    #[cfg(feature = "aws")]
    pub fn aws(ports: &crate::aws::AwsPorts) -> Self {
        Self::new(
            ports.queue.clone(),
            ports.secrets.clone(),
            ports.store.clone(),
            ports.config.intake.clone(),
        )
    }
}

impl std::ops::Deref for WebhookState {
    type Target = WebhookPorts;
    fn deref(&self) -> &WebhookPorts {
        &self.0
    }
}

/// A parse context refreshed at most every few seconds. While one request
/// refreshes it (a read of the mappings, which waits behind whatever holds
/// the store), the others go on with the copy they have: a webhook never
/// queues behind a console page's read.
#[derive(Default)]
pub struct ParseContextCache {
    slot: std::sync::Mutex<Option<(std::time::Instant, crate::sources::ParseContext)>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl ParseContextCache {
    const TTL: std::time::Duration = std::time::Duration::from_secs(5);

    fn cached(&self) -> Option<(std::time::Instant, crate::sources::ParseContext)> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn get(
        &self,
        intake: &IntakeConfig,
        mappings: &dyn MappingStore,
    ) -> Result<crate::sources::ParseContext, crate::ports::StoreError> {
        let cached = self.cached();
        if let Some((at, ctx)) = &cached {
            if at.elapsed() < Self::TTL {
                return Ok(ctx.clone());
            }
        }
        let _gate = match (&cached, self.refreshing.try_lock()) {
            (_, Ok(gate)) => gate,
            // Stale, and another request is reading the mappings already.
            (Some((_, ctx)), Err(_)) => return Ok(ctx.clone()),
            // The first one: wait for it.
            (None, Err(_)) => {
                let gate = self.refreshing.lock().await;
                if let Some((_, ctx)) = self.cached() {
                    return Ok(ctx);
                }
                gate
            }
        };
        let ctx = crate::intake::parse_context(intake, &mappings.snapshot().await?);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), ctx.clone()));
        Ok(ctx)
    }
}

async fn context(s: &WebhookState) -> Result<sources::ParseContext, ApiError> {
    let mut ctx = s.parse_context.get(&s.intake, s.mappings.as_ref()).await?;
    ctx.received_at = Some(Utc::now());
    Ok(ctx)
}

pub async fn clockify(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
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

pub async fn toggl(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
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
async fn accept(s: &WebhookState, route: &str, parsed: Parsed) -> Response {
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
