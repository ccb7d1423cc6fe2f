//! The DynamoDB plumbing every port shares: paginated queries, batch reads
//! and writes within the service's limits (100 keys, 25 writes a call)
//! with their unprocessed remainder retried, and sequence counters.

use std::time::Duration;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValue, WriteRequest};

use super::codec::{get_n, key, n, Item};
use super::DynamoStore;
use crate::aws::backend;
use crate::ports::{StoreError, StoreResult};

/// BatchGetItem takes at most 100 keys a call.
const GET_BATCH: usize = 100;
/// BatchWriteItem takes at most 25 requests a call.
const WRITE_BATCH: usize = 25;
/// Rounds of retrying what DynamoDB left unprocessed (throttling) before
/// giving up with an error.
const UNPROCESSED_ROUNDS: u32 = 10;

/// Exponential back-off between rounds of unprocessed items: 50 ms,
/// 100 ms, … capped at 2 s.
fn backoff(round: u32) -> Duration {
    Duration::from_millis((50u64 << round.min(6)).min(2_000))
}

/// A query of one status partition of `gsi2` (where every state item is,
/// by status): the caller adds a limit or projection and runs it.
pub(super) fn status_partition(
    store: &DynamoStore,
    status: crate::state::Status,
) -> QueryFluentBuilder {
    store
        .client
        .query()
        .table_name(&store.table)
        .index_name("gsi2")
        .key_condition_expression("gsi2pk = :h")
        .expression_attribute_values(":h", super::codec::s(format!("status#{}", status.as_str())))
}

/// Every item a query matches, following `LastEvaluatedKey`; stops early
/// once `max` items are collected (the caller trims).
pub(super) async fn query_all(
    q: QueryFluentBuilder,
    what: &str,
    max: Option<usize>,
) -> StoreResult<Vec<Item>> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = q
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| backend(what, e))?;
        items.extend(out.items.unwrap_or_default());
        if max.is_some_and(|m| items.len() >= m) {
            break;
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    Ok(items)
}

/// The items under `keys` (strongly consistent), in no particular order;
/// missing ones are absent.
pub(super) async fn batch_get(store: &DynamoStore, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(GET_BATCH) {
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .consistent_read(true)
            .build()
            .map_err(|e| backend("batch get", e))?;
        let mut round = 0;
        loop {
            let out = store
                .client
                .batch_get_item()
                .request_items(&store.table, request)
                .send()
                .await
                .map_err(|e| backend("batch get", e))?;
            if let Some(mut r) = out.responses {
                found.extend(r.remove(&store.table).unwrap_or_default());
            }
            match out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&store.table))
                .filter(|k| !k.keys().is_empty())
            {
                Some(rest) if round < UNPROCESSED_ROUNDS => {
                    tokio::time::sleep(backoff(round)).await;
                    round += 1;
                    request = rest;
                }
                Some(rest) => {
                    return Err(StoreError::Backend(format!(
                        "batch get: {} keys still unprocessed after {UNPROCESSED_ROUNDS} retries (throttled)",
                        rest.keys().len()
                    )))
                }
                None => break,
            }
        }
    }
    Ok(found)
}

/// Write (put or delete) every request, 25 a call, retrying what DynamoDB
/// leaves unprocessed. Not atomic: callers that need all-or-nothing make
/// the written items invisible until one conditional write publishes them.
pub(super) async fn batch_write(
    store: &DynamoStore,
    requests: Vec<WriteRequest>,
) -> StoreResult<()> {
    for chunk in requests.chunks(WRITE_BATCH) {
        let mut pending = chunk.to_vec();
        let mut round = 0;
        loop {
            let out = store
                .client
                .batch_write_item()
                .request_items(&store.table, pending)
                .send()
                .await
                .map_err(|e| backend("batch write", e))?;
            match out
                .unprocessed_items
                .and_then(|mut u| u.remove(&store.table))
                .filter(|r| !r.is_empty())
            {
                Some(rest) if round < UNPROCESSED_ROUNDS => {
                    tokio::time::sleep(backoff(round)).await;
                    round += 1;
                    pending = rest;
                }
                Some(rest) => {
                    return Err(StoreError::Backend(format!(
                        "batch write: {} items still unprocessed after {UNPROCESSED_ROUNDS} retries (throttled)",
                        rest.len()
                    )))
                }
                None => break,
            }
        }
    }
    Ok(())
}

/// Reserve `count` numbers of the counter `name` (item `seq#name`);
/// returns the last one reserved. Numbers are never handed out twice; a
/// failed writer leaves a gap, never a repeat.
/// One unconditional PutItem; `what` names the operation in an error.
pub(super) async fn put_plain(store: &DynamoStore, item: Item, what: &str) -> StoreResult<()> {
    store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| backend(what, e))?;
    Ok(())
}

/// One unconditional DeleteItem; `what` names the operation in an error.
pub(super) async fn delete_plain(store: &DynamoStore, k: Item, what: &str) -> StoreResult<()> {
    store
        .client
        .delete_item()
        .table_name(&store.table)
        .set_key(Some(k))
        .send()
        .await
        .map_err(|e| backend(what, e))?;
    Ok(())
}

pub(super) async fn next_seq(store: &DynamoStore, name: &str, count: u64) -> StoreResult<u64> {
    let out = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(format!("seq#{name}"), "seq")))
        .update_expression("ADD #n :c")
        .expression_attribute_names("#n", "n")
        .expression_attribute_values(":c", n(count))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(|e| backend("sequence counter", e))?;
    get_n(&out.attributes.unwrap_or_default(), "n")
}
