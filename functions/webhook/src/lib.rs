//! The `webhook` function: tracker webhooks over HTTP (API Gateway HTTP API
//! or a Function URL) → verify the signature → normalise →
//! `SendMessageBatch` on the ingest queue. It answers only after SQS has
//! accepted every message (the router's webhook handlers await the send),
//! so a 2xx means the entry is durably queued; a wrong signature is a 401
//! and nothing is enqueued.
//!
//! It serves the same axum router as `timepost serve`; API Gateway sends it
//! only the `/webhooks/*` routes. When the current rules file does not load
//! it starts on the newest earlier version that does
//! (`AwsStack::from_env_last_good`), so a broken upload never turns
//! deliveries away.

use timepost::aws::AwsStack;

/// The router this function serves.
pub fn app(stack: &AwsStack) -> axum::Router {
    timepost::http::router(stack.app_state())
}
