//! Mappings and their change log, all-or-nothing for imports of any size.
//!
//! A DynamoDB transaction holds at most 100 actions, and an import can
//! carry thousands of rows, so `apply` stages and then publishes:
//!
//! 1. read the published version `v` from the head item (`map#head`);
//! 2. write the changes as immutable log items `map#log` /
//!    `<seq>#<import id>`, numbered `v+1..=v+n`, 25 a batch — invisible so
//!    far, because readers only trust log items a commit names;
//! 3. publish with one transaction of two actions: move the head from `v`
//!    to `v+n` (conditional on it still being `v`) and put the commit item
//!    `map#commit` / `<v+1>` naming the import and its last seq.
//!
//! Readers take the head's version, then keep exactly the log items whose
//! seq a commit at or below that version covers *and* whose import id is
//! that commit's. A failed or crashed import leaves log items no commit
//! names: never visible (and removed when the failure is known). Two
//! imports racing for the same `v` stage under different import ids; the
//! loser's publish fails its condition, it removes its items and retries
//! with fresh numbers.
//!
//! The current tables are the fold of the published log: `snapshot` reads
//! the whole log, which is fine for mapping tables (changes are rare and
//! the engine caches a snapshot until `version()` — one GetItem — moves).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    DeleteRequest, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};

use super::codec::{decode, encode, get_n, get_s, key, n, s, seq_key, Item, SK};
use super::io::{batch_write, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::mapping::{MappingChange, MappingTable, Mappings};
use crate::ports::{MappingStore, StoreError, StoreResult};

const HEAD_PK: &str = "map#head";
const HEAD_SK: &str = "head";
const LOG_PK: &str = "map#log";
const COMMIT_PK: &str = "map#commit";
const CHANGE: &str = "change";
/// Publishing retries when another import published first.
const PUBLISH_ATTEMPTS: u32 = 10;

/// How a publish attempt ended.
enum Publish {
    Done,
    /// Another import moved the head first (or a concurrent transaction
    /// touched it): nothing of ours is visible; renumber and retry.
    Lost,
}

impl DynamoStore {
    /// The published change log: every change up to the head's version,
    /// oldest first, and that version.
    async fn published(&self) -> StoreResult<(u64, Vec<MappingChange>)> {
        let version = self.version().await?;
        if version == 0 {
            return Ok((0, Vec::new()));
        }
        let upto = seq_key(version + 1);
        let commits = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND sk < :u")
                .expression_attribute_values(":p", s(COMMIT_PK))
                .expression_attribute_values(":u", s(upto.clone()))
                .consistent_read(true),
            "read mapping commits",
            None,
        )
        .await?;
        // first seq → (import id, last seq)
        let mut covered: BTreeMap<u64, (String, u64)> = BTreeMap::new();
        for c in &commits {
            covered.insert(
                get_n(c, "first")?,
                (get_s(c, "import")?.to_string(), get_n(c, "last")?),
            );
        }
        let log = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND sk < :u")
                .expression_attribute_values(":p", s(LOG_PK))
                .expression_attribute_values(":u", s(upto))
                .consistent_read(true),
            "read mapping change log",
            None,
        )
        .await?;
        let mut changes = Vec::with_capacity(log.len());
        for item in &log {
            let seq: u64 = get_n(item, "seq")?;
            let import = get_s(item, "import")?;
            let published = covered
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, (id, last))| seq <= *last && id == import);
            if published {
                changes.push(decode::<MappingChange>(item, CHANGE)?);
            }
        }
        changes.sort_by_key(|c| c.seq);
        // Published log items are immutable and never deleted: anything
        // short of 1..=version means the table was tampered with.
        if changes.len() as u64 != version {
            return Err(StoreError::Backend(format!(
                "mapping change log incomplete: version {version} but {} published changes found",
                changes.len()
            )));
        }
        Ok((version, changes))
    }

    /// Step 3: move the head from `from` to `to` and record the commit, in
    /// one transaction.
    async fn publish(&self, from: u64, to: u64, import: &str) -> StoreResult<Publish> {
        let head_condition = if from == 0 {
            "attribute_not_exists(pk) OR version = :old"
        } else {
            "version = :old"
        };
        let head = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(HEAD_PK, HEAD_SK)))
            .update_expression("SET version = :new")
            .condition_expression(head_condition)
            .expression_attribute_values(":old", n(from))
            .expression_attribute_values(":new", n(to))
            .build()
            .map_err(|e| backend("publish mappings", e))?;
        let mut commit = key(COMMIT_PK, seq_key(from + 1));
        commit.insert("import".into(), s(import));
        commit.insert("first".into(), n(from + 1));
        commit.insert("last".into(), n(to));
        let commit = Put::builder()
            .table_name(&self.table)
            .set_item(Some(commit))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| backend("publish mappings", e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(head).build())
            .transact_items(TransactWriteItem::builder().put(commit).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Publish::Done),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(_))
                ) =>
            {
                Ok(Publish::Lost)
            }
            Err(e) => Err(backend("publish mappings", e)),
        }
    }

    /// Remove staged log items that will never be published (best effort:
    /// left behind, they are invisible anyway).
    async fn discard(&self, staged: &[Item]) {
        let deletes = staged
            .iter()
            .filter_map(|item| {
                let k: Item = item
                    .iter()
                    .filter(|(name, _)| name.as_str() == "pk" || name.as_str() == SK)
                    .map(|(name, v)| (name.clone(), v.clone()))
                    .collect();
                DeleteRequest::builder().set_key(Some(k)).build().ok()
            })
            .map(|d| WriteRequest::builder().delete_request(d).build())
            .collect();
        if let Err(e) = batch_write(self, deletes).await {
            tracing::warn!(error = %e, "could not remove unpublished mapping changes");
        }
    }
}

fn log_item(change: &MappingChange, import: &str) -> StoreResult<Item> {
    let mut item = key(LOG_PK, format!("{}#{import}", seq_key(change.seq)));
    item.insert(CHANGE.into(), s(encode(change)?));
    item.insert("seq".into(), n(change.seq));
    item.insert("import".into(), s(import));
    item.insert("tbl".into(), s(change.table.as_str()));
    item.insert("key".into(), s(change.key.clone()));
    Ok(item)
}

#[async_trait]
impl MappingStore for DynamoStore {
    async fn snapshot(&self) -> StoreResult<Mappings> {
        let (version, changes) = self.published().await?;
        let mut m = Mappings::from_rows([], version);
        crate::mapping::change::apply(&mut m, &changes);
        m.version = version;
        Ok(m)
    }

    async fn version(&self) -> StoreResult<u64> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(HEAD_PK, HEAD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("mapping version", e))?;
        match out.item {
            Some(item) => get_n(&item, "version"),
            None => Ok(0),
        }
    }

    async fn apply(&self, changes: Vec<MappingChange>) -> StoreResult<Vec<MappingChange>> {
        if changes.is_empty() {
            return Ok(changes);
        }
        for attempt in 0..PUBLISH_ATTEMPTS {
            let from = self.version().await?;
            let import = uuid::Uuid::new_v4().simple().to_string();
            let mut numbered = changes.clone();
            for (i, c) in numbered.iter_mut().enumerate() {
                c.seq = from + 1 + i as u64;
            }
            let staged = numbered
                .iter()
                .map(|c| log_item(c, &import))
                .collect::<StoreResult<Vec<_>>>()?;
            let puts = staged
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| backend("stage mapping changes", e))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            if let Err(e) = batch_write(self, puts).await {
                self.discard(&staged).await;
                return Err(e);
            }
            let to = from + numbered.len() as u64;
            // Any other error leaves the staged items alone: the publish may
            // have committed with only its answer lost.
            match self.publish(from, to, &import).await? {
                Publish::Done => return Ok(numbered),
                Publish::Lost => {
                    self.discard(&staged).await;
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "mapping change log: {PUBLISH_ATTEMPTS} concurrent imports published first"
        )))
    }

    async fn history(
        &self,
        table: Option<MappingTable>,
        key_: Option<&str>,
    ) -> StoreResult<Vec<MappingChange>> {
        let (_, changes) = self.published().await?;
        Ok(changes
            .into_iter()
            .filter(|c| table.is_none_or(|t| c.table == t))
            .filter(|c| key_.is_none_or(|k| c.key == k))
            .collect())
    }
}
