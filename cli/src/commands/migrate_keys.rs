//! `timepost migrate-keys`: move entries stored under the unescaped key
//! text of timepost before entry keys were escaped (a `:` or `%` inside a
//! workspace or tracker id) to their escaped key.
//!
//! Locally every open of the store migrates it (SQLite `user_version` 1),
//! so this command only opens the store and says what was done. On AWS
//! (`--backend aws`) it moves the DynamoDB partitions
//! (`DynamoStore::migrate_entry_keys`); run it once after deploying, with
//! the sync function paused.

use super::backend::{BackendKind, Global};
use crate::CliResult;

pub async fn run(g: &Global) -> CliResult {
    match g.backend {
        BackendKind::Local => {
            let stack = super::open(&g.config)?;
            println!(
                "{}: {} entr{} re-keyed; entry keys are escaped (store schema version 1)",
                stack.config.store.path.display(),
                stack.store.rekeyed_at_open(),
                if stack.store.rekeyed_at_open() == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
            Ok(())
        }
        BackendKind::Aws => deployed().await,
    }
}

#[cfg(not(feature = "aws"))]
async fn deployed() -> CliResult {
    Err(super::backend::without_aws())
}

#[cfg(feature = "aws")]
async fn deployed() -> CliResult {
    let settings = super::backend::aws::settings()?;
    let sdk = timepost::aws::sdk_config().await;
    let clients = timepost::aws::stack::AwsClients::from_sdk(&sdk, settings.s3_path_style);
    let store = timepost::aws::DynamoStore::new(clients.dynamodb, settings.table.clone());
    let done = store.migrate_entry_keys().await?;
    println!(
        "table {}: {} entries looked at, {} moved to their escaped key",
        settings.table, done.entries, done.moved
    );
    Ok(())
}
