//! The `webhook` function: tracker webhooks over HTTP (API Gateway HTTP API
//! or a Function URL) → verify the signature → normalise →
//! `SendMessageBatch` on the ingest queue. It answers only after SQS has
//! accepted every message (the router's webhook handlers await the send),
//! so a 2xx means the entry is durably queued; a wrong signature is a 401
//! and nothing is enqueued.
//!
//! It serves the webhook routes of the router `timepost serve` serves
//! (`timepost_web::webhook_router`: health and `/webhooks/*`, the same
//! handlers, limits and headers) on the webhook routes' own state, built
//! from the stack's ports alone ([`AwsPorts`]: the queue, the secrets, the
//! mappings and the intake settings), so it builds no engine or ledger
//! client; `timepost-web` is compiled without its `console` feature, so
//! the console and the admin API are not in this function at all. When the current rules file does
//! not load it starts on the newest earlier version that does, so a broken
//! upload never turns deliveries away.

use timepost::aws::stack::{AwsStackError, ConfigFallback};
use timepost::aws::{AwsClients, AwsPorts, AwsSettings};
use timepost::config::Config;
use timepost_web::WebhookState;

/// The router this function serves.
pub fn app(state: WebhookState) -> axum::Router {
    timepost_web::webhook_router(state)
}

/// The state for the stack the environment names (what the function does
/// at init), on the newest version of the rules file that loads; the
/// fallback, when taken, is returned for the caller to log.
pub async fn state_from_env() -> Result<(WebhookState, Option<ConfigFallback>), AwsStackError> {
    let (ports, fallback) = AwsPorts::from_env_last_good().await?;
    Ok((WebhookState::aws(&ports), fallback))
}

/// The state on `clients`: `config` as given when present (tests, the cost
/// measurement), otherwise the newest version of the rules file that loads.
pub async fn connect_with(
    clients: AwsClients,
    settings: AwsSettings,
    config: Option<Config>,
) -> Result<(WebhookState, Option<ConfigFallback>), AwsStackError> {
    let (ports, fallback) = match config {
        Some(c) => (
            AwsPorts::connect_with(clients, settings, Some(c)).await?,
            None,
        ),
        None => AwsPorts::connect_last_good_with(clients, settings).await?,
    };
    Ok((WebhookState::aws(&ports), fallback))
}
