//! The webhook function's state, and nothing more: [`AwsPorts`] on the
//! newest version of the rules file that loads (as
//! [`AwsStack::connect_last_good`](super::AwsStack::connect_last_good)),
//! viewed as the webhook routes' queue, secrets, mappings (per-user time
//! zones) and intake settings. No ledger client, no engine: the function
//! only verifies, parses and enqueues, so that is all it builds and links.

use super::stack::{AwsPorts, AwsStackError, ConfigFallback};
use super::{AwsClients, AwsSettings};
use crate::config::Config;
use crate::http::WebhookState;

/// The webhook routes' state for the stack the environment names (what
/// the function does at init).
pub async fn from_env_last_good() -> Result<(WebhookState, Option<ConfigFallback>), AwsStackError> {
    let (ports, fallback) = AwsPorts::from_env_last_good().await?;
    Ok((ports.webhook_state(), fallback))
}

/// The webhook routes' state on `clients`; `config` as given when present
/// (tests, the cost measurement), otherwise the newest version of the rules
/// file that loads (the fallback, when taken, returned for the caller to
/// log).
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
    Ok((ports.webhook_state(), fallback))
}
