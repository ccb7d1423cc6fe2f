//! The migration of entry keys to their escaped text form
//! (`EntryKey`'s `Display`: `%` → `%25`, `:` → `%3A` inside the workspace
//! and the id). A table written by an older timepost keeps an entry whose
//! workspace or id holds `:` or `%` under the partition of the unescaped
//! text; [`DynamoStore::migrate_entry_keys`] moves each such partition to
//! the escaped one: `timepost migrate-keys --backend aws`.
//!
//! Each moved item is written under its new key before the old one is
//! deleted, and a state already present under the new key is kept (a
//! newer timepost wrote it), so the migration may be interrupted and run
//! again. Run it with the sync function paused (no new deliveries are
//! lost: they wait in the queue), then `timepost --backend aws store
//! rebuild-key-index` (a moved state gets its index items there; period
//! reads refuse until then). The audit log is history and keeps the text
//! it was written with.

use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{decode, entry_pk, get_s, key, s, Item, PK, SK};
use super::entries::{state_item, week_pk};
use super::DynamoStore;
use crate::aws::backend;
use crate::intent::Intent;
use crate::ports::{JournalRecord, StoreResult, WorkerWeek};
use crate::state::EntryState;

/// What a migration did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyMigration {
    /// Entry partitions looked at.
    pub entries: usize,
    /// Of those, moved to their escaped key.
    pub moved: usize,
}

impl DynamoStore {
    /// Move every entry partition whose key text changed to the escaped
    /// form (see the module documentation). Idempotent.
    pub async fn migrate_entry_keys(&self) -> StoreResult<KeyMigration> {
        let mut done = KeyMigration::default();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :state AND begins_with(pk, :entry)")
                .expression_attribute_values(":state", s("state"))
                .expression_attribute_values(":entry", s("entry#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("scan entries", e))?;
            for item in out.items.unwrap_or_default() {
                done.entries += 1;
                if self.move_partition(&item).await? {
                    done.moved += 1;
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        if done.moved > 0 {
            tracing::info!(
                moved = done.moved,
                "DynamoDB entry keys holding `:` or `%` moved to their escaped form"
            );
        }
        if done.moved > 0 {
            // A moved state has no work-date items under its new key: period
            // reads wait for `store rebuild-key-index` (`periodindex`).
            self.forget_period_index().await?;
        }
        Ok(done)
    }

    /// Move one entry's partition when its key text changed; true if moved.
    async fn move_partition(&self, state: &Item) -> StoreResult<bool> {
        let old_pk = get_s(state, PK)?.to_string();
        let stored: EntryState = decode(state, "state")?;
        let new_pk = entry_pk(&stored.entry.key);
        if new_pk == old_pk {
            return Ok(false);
        }
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(old_pk.as_str()))
            .consistent_read(true);
        let items = super::io::query_all(q, "query entry partition", None).await?;
        for item in items {
            let sk = get_s(&item, SK)?.to_string();
            if sk == "state" {
                // Keep a state a newer timepost already wrote there.
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(state_item(&stored)?))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                if let Err(e) = put {
                    let exists = e
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception());
                    if !exists {
                        return Err(backend("move entry state", e));
                    }
                }
                let week = week_pk(&WorkerWeek::of(&stored.entry));
                super::io::put_plain(self, key(week.as_str(), new_pk.as_str()), "move item")
                    .await?;
                super::io::delete_plain(
                    self,
                    key(week.as_str(), old_pk.as_str()),
                    "remove moved item",
                )
                .await?;
                // The KPI sample is keyed by the entry's partition too.
                if let Some(x) = crate::aggregates::sample(&stored) {
                    super::io::put_plain(
                        self,
                        super::aggregates::sample_item(&new_pk, &x),
                        "move item",
                    )
                    .await?;
                    super::io::delete_plain(
                        self,
                        super::aggregates::sample_key(&old_pk, x.day),
                        "remove moved item",
                    )
                    .await?;
                }
                super::io::delete_plain(
                    self,
                    key(old_pk.as_str(), sk.as_str()),
                    "remove moved item",
                )
                .await?;
            } else if sk == "claim" {
                // A lease that lapses anyway: dropped, not moved.
                super::io::delete_plain(
                    self,
                    key(old_pk.as_str(), sk.as_str()),
                    "remove moved item",
                )
                .await?;
            } else if let Some(pk) = own_partition(&item, &sk)? {
                // A journal record or intent names its own entry: it goes
                // where that entry's escaped key is.
                if pk != old_pk {
                    let mut moved = item.clone();
                    moved.insert(PK.into(), AttributeValue::S(pk));
                    super::io::put_plain(self, moved, "move item").await?;
                    super::io::delete_plain(
                        self,
                        key(old_pk.as_str(), sk.as_str()),
                        "remove moved item",
                    )
                    .await?;
                }
            }
        }
        Ok(true)
    }
}

/// The entry partition a journal record or intent belongs to (None for
/// any other item).
fn own_partition(item: &Item, sk: &str) -> StoreResult<Option<String>> {
    Ok(if sk.starts_with("journal#") {
        Some(entry_pk(&decode::<JournalRecord>(item, "record")?.key))
    } else if sk.starts_with("intent#") {
        Some(entry_pk(&decode::<Intent>(item, "intent")?.key))
    } else {
        None
    })
}
