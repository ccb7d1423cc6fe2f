//! The `webhook` function: tracker webhooks over HTTP (API Gateway HTTP API
//! or a Function URL) → verify the signature → normalise →
//! `SendMessageBatch` on the ingest queue. It answers only after SQS has
//! accepted every message (the router's webhook handlers await the send),
//! so a 2xx means the entry is durably queued; a wrong signature is a 401
//! and nothing is enqueued.
//!
//! It serves the webhook routes of the router `timepost serve` serves
//! (`timepost::http::webhook_router`: health and `/webhooks/*`, the same
//! handlers, limits and headers) on the webhook routes' own state
//! (`timepost::aws::webhook`: the queue, the secrets, the mappings and the
//! intake settings), so it builds and links no engine, ledger client,
//! console or admin API. When the current rules file does not load it
//! starts on the newest earlier version that does, so a broken upload never
//! turns deliveries away.

use timepost::http::WebhookState;

/// The router this function serves.
pub fn app(state: WebhookState) -> axum::Router {
    timepost::http::webhook_router(state)
}
