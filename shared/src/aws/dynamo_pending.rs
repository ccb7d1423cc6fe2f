//! Proposed mapping changes on the DynamoDB table (`pending#…` items), for
//! [`DynamoStore`]:
//!
//! | method | item / key condition |
//! | --- | --- |
//! | `propose` | counter `seq#pending` (UpdateItem ADD), PutItem `pending#<id>` / `pending` (`doc`, `status`, `gsi1pk = pending#<status>`, `gsi1sk = <id>`), condition `attribute_not_exists(pk)` |
//! | `proposal` | GetItem `pending#<id>` / `pending` (consistent) |
//! | `proposals` | Query `gsi1`: `gsi1pk = pending#<status>` (each status when none is given), newest first; each found item re-read with a consistent GetItem and kept only if still in that status (index reads lag) |
//! | `settle` | PutItem, condition `#status = :expected`; failure → `Conflict` (or `NotFound` when there is no such item) |
//!
//! Ids are zero-padded to 20 digits so they sort as numbers. Proposals
//! never expire: they are part of the mapping history.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::backend;
use super::DynamoStore;
use crate::ports::{PendingChanges, ProposalStatus, ProposedChange, StoreError, StoreResult};

type Item = HashMap<String, AttributeValue>;

const SK: &str = "pending";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn id_key(id: u64) -> String {
    format!("{id:020}")
}

fn pk(id: u64) -> String {
    format!("pending#{}", id_key(id))
}

fn status_pk(status: ProposalStatus) -> String {
    format!("pending#{}", status.as_str())
}

fn item_key(id: u64) -> Item {
    HashMap::from([("pk".to_string(), s(pk(id))), ("sk".to_string(), s(SK))])
}

pub(crate) fn to_item(p: &ProposedChange) -> StoreResult<Item> {
    let doc = serde_json::to_string(p)
        .map_err(|e| StoreError::Backend(format!("cannot encode proposal: {e}")))?;
    let mut item = item_key(p.id);
    item.insert("doc".into(), s(doc));
    item.insert("status".into(), s(p.status.as_str()));
    item.insert("gsi1pk".into(), s(status_pk(p.status)));
    item.insert("gsi1sk".into(), s(id_key(p.id)));
    Ok(item)
}

fn from_item(item: &Item) -> StoreResult<ProposedChange> {
    let doc = match item.get("doc") {
        Some(AttributeValue::S(d)) => d,
        _ => {
            return Err(StoreError::Backend(
                "corrupt proposal item: no `doc` attribute".into(),
            ))
        }
    };
    serde_json::from_str(doc).map_err(|e| StoreError::Backend(format!("corrupt proposal: {e}")))
}

impl DynamoStore {
    async fn next_proposal_id(&self) -> StoreResult<u64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("seq#pending"))
            .key("sk", s("seq"))
            .update_expression("ADD #n :one")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| backend("proposal counter", e))?;
        match out.attributes.as_ref().and_then(|a| a.get("n")) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| StoreError::Backend(format!("proposal counter is not a number: {v}"))),
            _ => Err(StoreError::Backend("proposal counter missing".into())),
        }
    }
}

#[async_trait]
impl PendingChanges for DynamoStore {
    async fn propose(&self, mut proposal: ProposedChange) -> StoreResult<ProposedChange> {
        proposal.id = self.next_proposal_id().await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&proposal)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("store proposal", e))?;
        Ok(proposal)
    }

    async fn proposal(&self, id: u64) -> StoreResult<Option<ProposedChange>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("read proposal", e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn proposals(&self, status: Option<ProposalStatus>) -> StoreResult<Vec<ProposedChange>> {
        let statuses = match status {
            Some(st) => vec![st],
            None => ProposalStatus::ALL.to_vec(),
        };
        let mut out = Vec::new();
        for st in statuses {
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi1")
                    .key_condition_expression("gsi1pk = :p")
                    .expression_attribute_values(":p", s(status_pk(st)))
                    .scan_index_forward(false)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| backend("list proposals", e))?;
                for item in page.items.unwrap_or_default() {
                    let listed = from_item(&item)?;
                    // The index lags: trust only the item itself.
                    if let Some(p) = self.proposal(listed.id).await? {
                        if p.status == st {
                            out.push(p);
                        }
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.id));
        out.dedup_by_key(|p| p.id);
        Ok(out)
    }

    async fn settle(&self, proposal: &ProposedChange, expected: ProposalStatus) -> StoreResult<()> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(proposal)?))
            .condition_expression("#st = :expected")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":expected", s(expected.as_str()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                let what = format!("mapping change proposal #{}", proposal.id);
                if self.proposal(proposal.id).await?.is_some() {
                    Err(StoreError::Conflict(what))
                } else {
                    Err(StoreError::NotFound(what))
                }
            }
            Err(e) => Err(backend("settle proposal", e)),
        }
    }
}
