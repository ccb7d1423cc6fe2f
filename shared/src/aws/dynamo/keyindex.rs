//! The mapped-key index on the table: one item per key an entry is looked
//! up by (`crate::mapping::keys_of`), partition `mkey#<kind>#<value>`, sort
//! key the entry's key text (so a partition reads in key order and a page
//! resumes after a key), attribute `entry` naming the entry's partition.
//! An entry has several such keys (user id and e-mail, project id and
//! name, task, tags), so they are items, not a GSI (an item sits in one
//! partition of an index).
//!
//! The state item carries the keys it is indexed under (`mkeys`, JSON).
//! `put` writes the state conditionally on them being unchanged — nearly
//! every write, one PutItem as before — and, when they change (a new
//! entry, another project, a state written before the index existed), one
//! `TransactWriteItems` writes the state, adds the new index items and
//! removes the old ones (`entries.rs`). Reads are strongly consistent
//! queries of the index partitions, then a consistent batch read of the
//! states, re-checked against the keys asked for.
//!
//! `rebuild_key_index` (`timepost --backend aws store rebuild-key-index`)
//! gives states written before the index existed (no `mkeys`) their items.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::{Delete, Put, PutRequest, TransactWriteItem, WriteRequest};

use super::codec::{entry_pk, get_n, get_s, key, n, part, s, Item, PK, SK};
use super::io::{batch_get, batch_write, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::mapping::keys::IndexRebuild;
use crate::mapping::{keys_of, MappedKey};
use crate::model::EntryKey;
use crate::ports::{StoreError, StoreResult};
use crate::state::{EntryState, Status};

/// The state item's attribute listing the keys it is indexed under.
pub(super) const MKEYS: &str = "mkeys";

pub(super) fn key_pk(k: &MappedKey) -> String {
    format!("mkey#{}#{}", k.0.as_str(), part(&k.1))
}

/// `keys` as the state item's `mkeys` value.
pub(super) fn encode_keys(keys: &[MappedKey]) -> StoreResult<String> {
    super::codec::json_attr(keys, "encode mapped keys")
}

/// The keys a stored state item is indexed under: None when it carries no
/// `mkeys` (written before the index existed: it has no index items).
pub(super) fn stored_keys(item: &Item) -> StoreResult<Option<Vec<MappedKey>>> {
    super::codec::json_attr_of(item, MKEYS, "decode mapped keys")
}

fn index_item(k: &MappedKey, entry: &EntryKey) -> Item {
    let mut item = key(key_pk(k), entry.to_string());
    item.insert("entry".into(), s(entry_pk(entry)));
    item
}

/// The index items to add and the ones to remove when an entry's keys go
/// from `old` to `new`.
pub(super) fn diff(
    entry: &EntryKey,
    old: &[MappedKey],
    new: &[MappedKey],
) -> (Vec<Item>, Vec<Item>) {
    let add = new
        .iter()
        .filter(|k| !old.contains(k))
        .map(|k| index_item(k, entry))
        .collect();
    let remove = old
        .iter()
        .filter(|k| !new.contains(k))
        .map(|k| key(key_pk(k), entry.to_string()))
        .collect();
    (add, remove)
}

/// Transaction actions for `add` (puts) and `remove` (deletes).
pub(super) fn actions(
    table: &str,
    add: Vec<Item>,
    remove: Vec<Item>,
) -> StoreResult<Vec<TransactWriteItem>> {
    let mut out = Vec::with_capacity(add.len() + remove.len());
    for item in add {
        out.push(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| backend("index put", e))?,
                )
                .build(),
        );
    }
    for k in remove {
        out.push(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .set_key(Some(k))
                        .build()
                        .map_err(|e| backend("index delete", e))?,
                )
                .build(),
        );
    }
    Ok(out)
}

/// Write actions that did not fit in the state's transaction (an entry
/// with more than 40 changed keys, `entries.rs` `INDEX_IN_TX`): puts and
/// deletes, not atomic with it.
pub(super) async fn write_overflow(
    store: &DynamoStore,
    rest: Vec<TransactWriteItem>,
) -> StoreResult<()> {
    let mut requests = Vec::new();
    for a in rest {
        if let Some(p) = a.put {
            requests.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(p.item))
                            .build()
                            .map_err(|e| backend("index put", e))?,
                    )
                    .build(),
            );
        } else if let Some(d) = a.delete {
            requests.push(
                WriteRequest::builder()
                    .delete_request(
                        aws_sdk_dynamodb::types::DeleteRequest::builder()
                            .set_key(Some(d.key))
                            .build()
                            .map_err(|e| backend("index delete", e))?,
                    )
                    .build(),
            );
        }
    }
    batch_write(store, requests).await
}

impl DynamoStore {
    /// The entry keys indexed under `k` after `after`, in key order, at
    /// most `limit` (strongly consistent: the index items are table items).
    async fn indexed(
        &self,
        k: &MappedKey,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> StoreResult<Vec<String>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":p", s(key_pk(k)))
            .projection_expression("#s")
            .expression_attribute_names("#s", SK)
            .consistent_read(true);
        q = match after {
            Some(a) => q
                .key_condition_expression("pk = :p AND #s > :a")
                .expression_attribute_values(":a", s(a)),
            None => q.key_condition_expression("pk = :p"),
        };
        if let Some(l) = limit {
            q = q.limit(i32::try_from(l.clamp(1, 1000)).unwrap_or(1000));
        }
        let items = query_all(q, "query mapped keys", limit).await?;
        items
            .iter()
            .map(|i| get_s(i, SK).map(str::to_string))
            .collect()
    }

    pub(super) async fn by_mapped_keys_now(
        &self,
        keys: &[MappedKey],
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        let mut out: Vec<EntryState> = Vec::new();
        let mut cursor = after.map(|k| k.to_string());
        // A state re-checked out of its keys (an index item left by a
        // write that did not finish) leaves the page short: read on.
        while out.len() < limit {
            let want = limit - out.len();
            let mut found = BTreeSet::new();
            for k in keys {
                found.extend(self.indexed(k, cursor.as_deref(), Some(want)).await?);
                while found.len() > want {
                    found.pop_last();
                }
            }
            let Some(last) = found.last().cloned() else {
                break;
            };
            let pks = found
                .iter()
                .map(|t| t.parse::<EntryKey>().map(|k| entry_pk(&k)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Backend(format!("mapped key index: {e}")))?;
            let items =
                batch_get(self, pks.into_iter().map(|pk| key(pk, "state")).collect()).await?;
            let mut page: Vec<EntryState> = items
                .iter()
                .map(|i| super::codec::decode::<EntryState>(i, "state"))
                .collect::<StoreResult<_>>()?;
            page.retain(|st| keys_of(&st.entry).iter().any(|k| keys.contains(k)));
            page.sort_by_key(|st| st.entry.key.to_string());
            out.extend(page);
            cursor = Some(last);
        }
        out.truncate(limit);
        Ok(out)
    }

    pub(super) async fn count_by_mapped_keys_now(&self, keys: &[MappedKey]) -> StoreResult<usize> {
        let mut found = BTreeSet::new();
        for k in keys {
            found.extend(self.indexed(k, None, None).await?);
        }
        Ok(found.len())
    }

    /// Give every state item the index items of its keys (and `mkeys`)
    /// and its work-date items (and `pkeys`, `periodindex`) when it lacks
    /// them or they differ; says how many did.
    pub(super) async fn rebuild_key_index_now(&self) -> StoreResult<IndexRebuild> {
        let mut r = IndexRebuild::default();
        for status in Status::ALL {
            let q = super::io::status_partition(self, *status);
            let hits = query_all(q, "query entries", None).await?;
            let pks: Vec<Item> = hits
                .iter()
                .map(|i| get_s(i, PK).map(|pk| key(pk, "state")))
                .collect::<StoreResult<_>>()?;
            for item in batch_get(self, pks).await? {
                let st: EntryState = super::codec::decode(&item, "state")?;
                if st.status() != *status {
                    continue; // moved meanwhile: its new status's pass sees it
                }
                r.entries += 1;
                let want = keys_of(&st.entry);
                r.keys += want.len();
                let have = stored_keys(&item)?;
                // The work-date index (`periodindex`) is repaired in the
                // same pass.
                let want_p = super::periodindex::keys_of(&st);
                let have_p = super::periodindex::stored(&item)?;
                if have.as_deref() == Some(want.as_slice())
                    && have_p.as_deref() == Some(want_p.as_slice())
                {
                    continue;
                }
                r.differed += 1;
                let (add, remove) = diff(&st.entry.key, have.as_deref().unwrap_or(&[]), &want);
                write_overflow(self, actions(&self.table, add, remove)?).await?;
                let (add, remove) = super::periodindex::diff(
                    &st.entry.key,
                    have_p.as_deref().unwrap_or(&[]),
                    &want_p,
                );
                write_overflow(self, actions(&self.table, add, remove)?).await?;
                let revision: u64 = get_n(&item, "revision")?;
                // Publish the keys only if the state did not move meanwhile
                // (a write that did wrote its own index items).
                let published = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(get_s(&item, PK)?, "state")))
                    .update_expression("SET #m = :m, #p = :p")
                    .condition_expression("revision = :r")
                    .expression_attribute_names("#m", MKEYS)
                    .expression_attribute_names("#p", super::periodindex::PKEYS)
                    .expression_attribute_values(":m", s(encode_keys(&want)?))
                    .expression_attribute_values(":p", s(super::periodindex::encode(&want_p)?))
                    .expression_attribute_values(":r", n(revision))
                    .send()
                    .await;
                if let Err(e) = published {
                    if !e
                        .as_service_error()
                        .is_some_and(|x| x.is_conditional_check_failed_exception())
                    {
                        return Err(backend("publish mapped keys", e));
                    }
                }
            }
        }
        // Every state read has its work-date items now (a state written
        // meanwhile wrote its own): period reads may use the index.
        self.mark_period_index_ready().await?;
        Ok(r)
    }
}
