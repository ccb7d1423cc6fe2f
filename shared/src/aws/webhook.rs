//! The webhook function's ports, and nothing more: the rules file from the
//! bucket (for the intake settings; the newest version that loads, as
//! [`AwsStack::connect_last_good`](super::AwsStack::connect_last_good)),
//! the table read as a mapping store (per-user time zones), the ingest
//! queue and the webhook secrets. No ledger client, no engine: the function
//! only verifies, parses and enqueues, so that is all it builds and links.

use std::sync::Arc;

use super::stack::{load_last_good_config, AwsStackError, ConfigFallback, SECRETS_TTL};
use super::{AwsClients, AwsSettings, DynamoStore, S3Archive, SecretsManagerStore, SqsQueue};
use crate::config::Config;
use crate::http::WebhookState;

/// The webhook routes' state for the stack the environment names (what
/// the function does at init).
pub async fn from_env_last_good() -> Result<(WebhookState, Option<ConfigFallback>), AwsStackError> {
    let sdk = super::sdk_config().await;
    let settings = AwsSettings::from_env()?;
    let clients = AwsClients::from_sdk(&sdk, settings.s3_path_style);
    connect_with(clients, settings, None).await
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
    let (config, fallback) = match config {
        Some(c) => (c, None),
        None => {
            let archive = S3Archive::new(clients.s3, &settings.bucket);
            load_last_good_config(&archive, &settings).await?
        }
    };
    let store = Arc::new(DynamoStore::new(clients.dynamodb, &settings.table));
    let queue = Arc::new(SqsQueue::new(
        clients.sqs,
        &settings.queue_url,
        &settings.dlq_url,
    ));
    let secrets = Arc::new(SecretsManagerStore::new(
        clients.secrets,
        &settings.secret_prefix,
        SECRETS_TTL,
    ));
    let state = WebhookState::new(queue, secrets, store, config.intake);
    Ok((state, fallback))
}
