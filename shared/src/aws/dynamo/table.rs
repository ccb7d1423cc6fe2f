//! Creating the table exactly as the SAM template declares it, for tests
//! and local emulators (in AWS the stack creates it).

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use super::codec::{EXPIRES_AT, PK, SK};
use super::DynamoStore;
use crate::aws::backend;
use crate::ports::{StoreError, StoreResult};

/// The overloaded global secondary indexes: (name, hash key, range key).
pub(super) const GSIS: [(&str, &str, &str); 3] = [
    ("gsi1", "gsi1pk", "gsi1sk"),
    ("gsi2", "gsi2pk", "gsi2sk"),
    ("gsi3", "gsi3pk", "gsi3sk"),
];

/// How long `create` waits for the table to become ACTIVE.
const ACTIVE_WAIT: Duration = Duration::from_secs(300);

fn key_element(name: &str, kind: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| backend("create table", e))
}

fn string_attribute(name: &str) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| backend("create table", e))
}

pub(super) async fn create(store: &DynamoStore) -> StoreResult<()> {
    let mut request = store
        .client
        .create_table()
        .table_name(&store.table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element(PK, KeyType::Hash)?)
        .key_schema(key_element(SK, KeyType::Range)?)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?);
    for (index, hash, range) in GSIS {
        request = request
            .attribute_definitions(string_attribute(hash)?)
            .attribute_definitions(string_attribute(range)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .key_schema(key_element(hash, KeyType::Hash)?)
                    .key_schema(key_element(range, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(|e| backend("create table", e))?,
            );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            // It exists (created by the stack or an earlier run): leave it.
            return wait_active(store).await;
        }
        Err(e) => return Err(backend("create table", e)),
    }
    wait_active(store).await?;
    store
        .client
        .update_time_to_live()
        .table_name(&store.table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES_AT)
                .enabled(true)
                .build()
                .map_err(|e| backend("enable TTL", e))?,
        )
        .send()
        .await
        .map_err(|e| backend("enable TTL", e))?;
    Ok(())
}

/// Poll until the table and its indexes are ACTIVE.
async fn wait_active(store: &DynamoStore) -> StoreResult<()> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let out = store
            .client
            .describe_table()
            .table_name(&store.table)
            .send()
            .await
            .map_err(|e| backend("describe table", e))?;
        let ready = out.table().is_some_and(|t| {
            t.table_status() == Some(&TableStatus::Active)
                && t.global_secondary_indexes()
                    .iter()
                    .all(|g| g.index_status().is_none_or(|s| *s == IndexStatus::Active))
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Backend(format!(
                "table {} did not become ACTIVE within {}s",
                store.table,
                ACTIVE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
