//! The `webhook` function: tracker webhooks over HTTP (API Gateway HTTP API
//! or a Function URL) → verify the signature → normalise →
//! `SendMessageBatch` on the ingest queue. It answers only after SQS has
//! accepted every message (the router's webhook handlers await the send),
//! so a 2xx means the entry is durably queued; a wrong signature is a 401
//! and nothing is enqueued.
//!
//! It serves the webhook routes of the router `timepost serve` serves
//! (`timepost::http::webhook_router`: health and `/webhooks/*`, the same
//! handlers, limits and headers); API Gateway sends it only those, and it
//! does not link the console or the admin API. When the current rules file does not load
//! it starts on the newest earlier version that does
//! (`AwsStack::from_env_last_good`), so a broken upload never turns
//! deliveries away.

use timepost::aws::AwsStack;

/// The router this function serves.
pub fn app(stack: &AwsStack) -> axum::Router {
    timepost::http::webhook_router(stack.app_state())
}
