//! The archive's purge on the table: remove the live entries of an
//! archived, verified period (`timepost --backend aws archive purge`).
//! Per entry, the state item goes first, conditionally on the revision and
//! status just read (an entry that changed meanwhile, or is open, stays
//! whole), in one transaction with its aggregate rows' subtraction and its
//! KPI sample (`aggregates.rs`); then its journal records, received versions, closed intents,
//! claim, week membership item and mapped-key index items. An open intent is never removed.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, DeleteRequest, TransactWriteItem, WriteRequest};

use super::codec::{decode, entry_pk, get_n, get_s, key, n, s, Item, PK, SK};
use super::io::{batch_write, query_all};
use super::DynamoStore;
use crate::archive::retention::{is_open, PurgeStore};
use crate::aws::backend;
use crate::model::EntryKey;
use crate::ports::StoreResult;
use crate::state::EntryState;

impl DynamoStore {
    /// Remove one entry; false when it is absent, open, or changed since
    /// it was read.
    async fn purge_entry(&self, k: &EntryKey) -> StoreResult<bool> {
        let pk = entry_pk(k);
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(pk.clone()))
            .consistent_read(true);
        let items = query_all(q, "purge: the entry's items", None).await?;
        let Some(state_item) = items.iter().find(|i| get_s(i, SK).ok() == Some("state")) else {
            return Ok(false);
        };
        let state: EntryState = decode(state_item, "state")?;
        if is_open(&state) {
            return Ok(false);
        }
        let revision: u64 = get_n(state_item, "revision")?;
        // The state goes with its aggregate rows and KPI sample, in one
        // transaction (`aggregates.rs`).
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), "state")))
            .condition_expression("revision = :r AND #st = :s")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":r", n(revision))
            .expression_attribute_values(":s", s(state.status().as_str()))
            .build()
            .map_err(|e| backend("purge entry state", e))?;
        let rows = super::aggregates::delta(Some(&state), None);
        let samples = super::aggregates::sample_writes(&self.table, &pk, Some(&state), None)?;
        match self
            .write_tx(
                TransactWriteItem::builder().delete(delete).build(),
                samples,
                rows,
                &pk,
                revision + 1,
            )
            .await
        {
            Ok(()) => {}
            Err(None) => return Ok(false),
            Err(Some(e)) => return Err(e),
        }
        let mut rest: Vec<Item> = items
            .iter()
            .filter(|i| {
                let sk = get_s(i, SK).unwrap_or_default();
                sk.starts_with("journal#")
                    || sk.starts_with(super::entries::VERSION_SK)
                    || sk == "claim"
                    || (sk.starts_with("intent#") && get_n::<u8>(i, "open").ok() == Some(0))
            })
            .filter_map(|i| {
                Some(key(
                    get_s(i, PK).ok()?.to_string(),
                    get_s(i, SK).ok()?.to_string(),
                ))
            })
            .collect();
        if let Ok(week) = get_s(state_item, "week") {
            rest.push(key(week.to_string(), pk));
        }
        // Its mapped-key and work-date index items (`keyindex`,
        // `periodindex`).
        for mk in super::keyindex::stored_keys(state_item)?.unwrap_or_default() {
            rest.push(key(super::keyindex::key_pk(&mk), k.to_string()));
        }
        for (ipk, isk) in super::periodindex::stored(state_item)?.unwrap_or_default() {
            rest.push(key(ipk, isk));
        }
        let requests = rest
            .into_iter()
            .map(|k| {
                DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(|e| backend("purge: delete request", e))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        batch_write(self, requests).await?;
        Ok(true)
    }
}

#[async_trait]
impl PurgeStore for DynamoStore {
    async fn purge_entries(&self, keys: &[EntryKey]) -> StoreResult<usize> {
        let mut n = 0;
        for k in keys {
            if self.purge_entry(k).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}
