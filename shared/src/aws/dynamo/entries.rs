//! Entry state and claims: partition `entry#<key>`, items `state` and
//! `claim`; week membership: partition `week#<source>#<workspace>#<user>#<week_start>`,
//! one item per entry (`sk` = the entry's partition).
//!
//! The state item carries the JSON document, its week (`week`, the
//! membership partition) and the attributes its indexes need: `gsi2` by
//! status and age, `gsi3` by workspace and work date. Index reads are
//! eventually consistent, so the index only says *which* entries; their
//! documents are then read from the table with a consistent batch read and
//! re-checked against the query (an entry that just moved status is not
//! returned twice or under its old value).
//!
//! A worker-week's members must never be missing (the overtime split is
//! planned from them), so they are not an index: the membership item is
//! written in the same transaction as a new entry's state, moved in the
//! same transaction as the state that changes the entry's week, and read
//! with a strongly consistent Query. The same holds for the mapped-key
//! index items (`keyindex`) and the aggregate rows and KPI sample
//! (`aggregates`): every write first reads the stored state (a consistent
//! GetItem); a write that changes none of them is a single PutItem
//! conditional on the revision read, any other one TransactWriteItems with
//! their changes (`write_tx`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::{NaiveDate, SecondsFormat, Utc};

use super::codec::{
    decode, encode, entry_pk, get_n, get_s, key, n, part, s, Item, EXPIRES_AT, PK, SK,
};
use super::io::{batch_get, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::model::{EntryKey, Source};
use crate::ports::{EntryStore, StoreError, StoreResult, WorkerWeek};
use crate::state::{EntryState, Status};

const STATE: &str = "state";
const CLAIM: &str = "claim";
/// Received versions: `version#<updated_at>#<content hash>` items.
const VERSION: &str = "version";
pub(super) const VERSION_SK: &str = "version#";
/// The state item's attribute naming the week partition it is a member of.
const WEEK: &str = "week";
/// The most mapped-key index actions a state write's transaction carries
/// (an entry has a handful; see `keyindex`).
const INDEX_IN_TX: usize = 40;
/// How often a transaction cancelled by a concurrent one on a shared
/// aggregate row is sent again before the write reports a conflict.
const TX_RETRIES: u32 = 8;

pub(super) fn week_pk(w: &WorkerWeek) -> String {
    format!(
        "week#{}#{}#{}#{}",
        w.source.as_str(),
        part(&w.workspace),
        part(&w.user_id),
        w.week_start
    )
}

fn status_pk(status: Status) -> String {
    format!("status#{}", status.as_str())
}

fn dates_pk(source: Source, workspace: &str) -> String {
    format!("date#{}#{}", source.as_str(), part(workspace))
}

/// The state item for `stored` (whose revision is the one being written).
pub(super) fn state_item(stored: &EntryState) -> StoreResult<Item> {
    let e = &stored.entry;
    let pk = entry_pk(&e.key);
    let escaped_key = part(&e.key.to_string());
    let mut item = key(pk.clone(), STATE);
    item.insert(STATE.into(), s(encode(stored)?));
    item.insert("revision".into(), n(stored.revision));
    item.insert("status".into(), s(stored.status().as_str()));
    item.insert(WEEK.into(), s(week_pk(&WorkerWeek::of(e))));
    item.insert("gsi2pk".into(), s(status_pk(stored.status())));
    item.insert(
        "gsi2sk".into(),
        s(format!(
            "{}#{escaped_key}",
            stored
                .updated_at
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        )),
    );
    item.insert("gsi3pk".into(), s(dates_pk(e.key.source, &e.key.workspace)));
    item.insert("gsi3sk".into(), s(format!("{}#{escaped_key}", e.work_date)));
    // The key-ordered listing (`page`): the key's text, unescaped, so the
    // index orders like `all()`.
    item.insert("gsi1pk".into(), s(super::aggregates::ENTRIES_GSI1));
    item.insert("gsi1sk".into(), s(e.key.to_string()));
    Ok(item)
}

/// The week an old state item is a member of: its `week` attribute, or,
/// for an item written before membership items existed, its document's.
fn stored_week(old: &Item) -> StoreResult<String> {
    match old.get(WEEK) {
        Some(AttributeValue::S(w)) => Ok(w.clone()),
        _ => {
            let st: EntryState = decode(old, STATE)?;
            Ok(week_pk(&WorkerWeek::of(&st.entry)))
        }
    }
}

/// True when a transaction was cancelled because one of its conditions
/// failed or another transaction touched the same items: someone else
/// changed the entry, as a failed conditional put says.
pub(super) fn lost_race(e: &TransactWriteItemsError) -> bool {
    match e {
        TransactWriteItemsError::TransactionCanceledException(c) => {
            c.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed") | Some("TransactionConflict")
                )
            })
        }
        _ => false,
    }
}

impl DynamoStore {
    /// The partition keys an index query names, deduplicated.
    async fn index_pks(
        &self,
        index: &str,
        hash: (&str, String),
        range: Option<(&str, String, String)>,
        max: Option<usize>,
    ) -> StoreResult<Vec<String>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#h", hash.0)
            .expression_attribute_values(":h", s(hash.1));
        q = match range {
            Some((attr, from, to)) => q
                .key_condition_expression("#h = :h AND #r BETWEEN :a AND :b")
                .expression_attribute_names("#r", attr)
                .expression_attribute_values(":a", s(from))
                .expression_attribute_values(":b", s(to)),
            None => q.key_condition_expression("#h = :h"),
        };
        if let Some(m) = max {
            q = q.limit(i32::try_from(m.clamp(1, 1000)).unwrap_or(1000));
        }
        let items = query_all(q, "query entries", max).await?;
        let mut pks = Vec::with_capacity(items.len());
        for item in &items {
            let pk = get_s(item, PK)?;
            if !pks.iter().any(|p| p == pk) {
                pks.push(pk.to_string());
            }
        }
        Ok(pks)
    }

    /// Write `first` (the state's conditional Put or Delete), `extra`
    /// (week membership, KPI samples) and the aggregate row changes
    /// `rows` in one transaction (see `aggregates.rs` for what happens
    /// past 100 actions). `Err(None)` = the state's condition failed (a
    /// conflict). A transaction cancelled only because another one was
    /// touching a shared row at the same moment (`TransactionConflict`)
    /// is sent again: its condition is checked afresh each time.
    pub(super) async fn write_tx(
        &self,
        first: TransactWriteItem,
        extra: Vec<TransactWriteItem>,
        rows: Vec<(crate::aggregates::AggKey, crate::aggregates::AggVals)>,
        entry: &str,
        revision: u64,
    ) -> Result<(), Option<StoreError>> {
        let (row_items, pending) = self
            .plan_rows(entry, revision, 1 + extra.len(), rows)
            .map_err(Some)?;
        let mut attempt = 0u32;
        loop {
            let mut tx = self
                .client
                .transact_write_items()
                .transact_items(first.clone());
            for i in extra.iter().chain(&row_items) {
                tx = tx.transact_items(i.clone());
            }
            match tx.send().await {
                Ok(_) => break,
                Err(e) => {
                    let state_failed = e.as_service_error().is_some_and(|s| match s {
                        TransactWriteItemsError::TransactionCanceledException(c) => c
                            .cancellation_reasons()
                            .first()
                            .is_some_and(|r| r.code() == Some("ConditionalCheckFailed")),
                        _ => false,
                    });
                    if state_failed {
                        return Err(None);
                    }
                    if attempt < TX_RETRIES && e.as_service_error().is_some_and(lost_race) {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(10u64 << attempt.min(6))).await;
                        continue;
                    }
                    if e.as_service_error().is_some_and(lost_race) {
                        return Err(None);
                    }
                    return Err(Some(backend("put entry", e)));
                }
            }
        }
        if pending.is_some() {
            // This write's parked rows, and any a crashed writer left.
            self.drain_all_pending().await.map_err(Some)?;
        }
        Ok(())
    }

    /// The current documents of these entries (consistent read).
    async fn states_of(&self, pks: Vec<String>) -> StoreResult<Vec<EntryState>> {
        let keys = pks.into_iter().map(|pk| key(pk, STATE)).collect();
        batch_get(self, keys)
            .await?
            .iter()
            .map(|item| decode(item, STATE))
            .collect()
    }
}

fn sort_by_key(states: Vec<EntryState>) -> Vec<EntryState> {
    let by_key: BTreeMap<String, EntryState> = states
        .into_iter()
        .map(|st| (st.entry.key.to_string(), st))
        .collect();
    by_key.into_values().collect()
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[async_trait]
impl EntryStore for DynamoStore {
    async fn get(&self, key_: &EntryKey) -> StoreResult<Option<EntryState>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(entry_pk(key_), STATE)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get entry", e))?;
        out.item.map(|item| decode(&item, STATE)).transpose()
    }

    /// Reads the stored state (consistent), then writes the new one
    /// conditionally on the revision read, with its week membership (a
    /// new entry, or one whose week changed) and the aggregate rows and
    /// KPI sample it changes in one transaction (`aggregates.rs`). A write
    /// that changes none of those is one conditional PutItem.
    async fn put(&self, state: &EntryState) -> StoreResult<u64> {
        let mut stored = state.clone();
        stored.revision = state.revision + 1;
        let mut item = state_item(&stored)?;
        // The mapped-key index (`keyindex`): the keys ride on the state item.
        let keys = crate::mapping::keys_of(&stored.entry);
        item.insert(
            super::keyindex::MKEYS.into(),
            s(super::keyindex::encode_keys(&keys)?.as_str()),
        );
        // The work-date index (`periodindex`): its items ride on the
        // state item too.
        let pkeys = super::periodindex::keys_of(&stored);
        item.insert(
            super::periodindex::PKEYS.into(),
            s(super::periodindex::encode(&pkeys)?.as_str()),
        );
        let mut old_pkeys = Vec::new();
        let pk = entry_pk(&stored.entry.key);
        let new_week = week_pk(&WorkerWeek::of(&stored.entry));
        let conflict = || StoreError::Conflict(state.entry.key.to_string());
        // An item written before the index (no `mkeys`) has none: all of
        // this write's keys are put (a put of an existing index item is
        // harmless).
        let mut old_keys = Vec::new();
        // `legacy`: a state item written before membership items existed
        // (no `week` attribute) gets its membership written now.
        let (old, old_week, legacy) = if state.revision == 0 {
            // A table's first entry settles the work-date index's marker
            // (`periodindex`): an empty table gets it before any entry.
            self.period_index_ready().await?;
            (None, None, false)
        } else {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(pk.as_str(), STATE)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| backend("put entry: read the stored state", e))?;
            let Some(old_item) = out.item else {
                return Err(conflict());
            };
            if get_n::<u64>(&old_item, "revision")? != state.revision {
                return Err(conflict());
            }
            let old: EntryState = decode(&old_item, STATE)?;
            let legacy = !old_item.contains_key(WEEK);
            old_keys = super::keyindex::stored_keys(&old_item)?.unwrap_or_default();
            old_pkeys = super::periodindex::stored(&old_item)?.unwrap_or_default();
            (Some(old), Some(stored_week(&old_item)?), legacy)
        };
        let rows = super::aggregates::delta(old.as_ref(), Some(&stored));
        let samples =
            super::aggregates::sample_writes(&self.table, &pk, old.as_ref(), Some(&stored))?;
        let moved = legacy || old_week.as_deref() != Some(new_week.as_str());
        let revision_check = |p: aws_sdk_dynamodb::types::builders::PutBuilder| match old {
            None => p.condition_expression("attribute_not_exists(pk)"),
            Some(_) => p
                .condition_expression("revision = :r")
                .expression_attribute_values(":r", n(state.revision)),
        };
        // The work-date items first (one or two when the date moves), then
        // the mapped keys'.
        let (padd, premove) = super::periodindex::diff(&stored.entry.key, &old_pkeys, &pkeys);
        let mut index = super::keyindex::actions(&self.table, padd, premove)?;
        let (add, remove) = super::keyindex::diff(&stored.entry.key, &old_keys, &keys);
        index.extend(super::keyindex::actions(&self.table, add, remove)?);
        if !moved && rows.is_empty() && samples.is_empty() && index.is_empty() {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("revision = :r")
                .expression_attribute_values(":r", n(state.revision))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(stored.revision),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
                {
                    Err(conflict())
                }
                Err(e) => Err(backend("put entry", e)),
            };
        }
        let build = |e| backend("put entry", e);
        let first = TransactWriteItem::builder()
            .put(
                revision_check(Put::builder().table_name(&self.table).set_item(Some(item)))
                    .build()
                    .map_err(build)?,
            )
            .build();
        let mut extra = Vec::new();
        if moved {
            extra.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(key(new_week.as_str(), pk.as_str())))
                            .build()
                            .map_err(build)?,
                    )
                    .build(),
            );
            if let Some(old) = old_week.filter(|w| *w != new_week) {
                extra.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(key(old, pk.as_str())))
                                .build()
                                .map_err(build)?,
                        )
                        .build(),
                );
            }
        }
        extra.extend(samples);
        // The mapped-key index items that changed, up to `INDEX_IN_TX` of
        // them in the transaction (room stays for the aggregate rows); an
        // entry with more keys than that gets the rest right after it.
        let overflow = index.split_off(index.len().min(INDEX_IN_TX));
        extra.extend(index);
        self.write_tx(first, extra, rows, &pk, stored.revision)
            .await
            .map_err(|e| e.unwrap_or_else(conflict))?;
        super::keyindex::write_overflow(self, overflow).await?;
        Ok(stored.revision)
    }

    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PK)
            .expression_attribute_values(":p", s(week_pk(week)))
            .consistent_read(true);
        let members = query_all(q, "query week members", None).await?;
        let pks = members
            .iter()
            .map(|m| get_s(m, SK).map(str::to_string))
            .collect::<StoreResult<Vec<_>>>()?;
        let states = self.states_of(pks).await?;
        Ok(sort_by_key(
            states
                .into_iter()
                .filter(|st| WorkerWeek::of(&st.entry) == *week)
                .collect(),
        ))
    }

    async fn by_status(&self, status: Status, limit: usize) -> StoreResult<Vec<EntryState>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pks = self
            .index_pks("gsi2", ("gsi2pk", status_pk(status)), None, Some(limit))
            .await?;
        let mut states: Vec<EntryState> = self
            .states_of(pks)
            .await?
            .into_iter()
            .filter(|st| st.status() == status)
            .collect();
        states.sort_by(|a, b| {
            (a.updated_at, a.entry.key.to_string()).cmp(&(b.updated_at, b.entry.key.to_string()))
        });
        states.truncate(limit);
        Ok(states)
    }

    async fn by_status_after(
        &self,
        status: Status,
        after: Option<&crate::ports::StatusCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        // gsi2's sort key is `<updated_at, microseconds>#<escaped key>`
        // (`state_item`); the index is eventually consistent, so a state
        // that has moved on since is dropped and the read goes on past it
        // until the page is full or the status ends.
        let mut from = after.map(|a| {
            format!(
                "{}#{}",
                a.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                part(&a.key)
            )
        });
        let mut out: Vec<(String, EntryState)> = Vec::new();
        while out.len() < limit {
            let want = limit - out.len();
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi2")
                .expression_attribute_names("#h", "gsi2pk")
                .expression_attribute_values(":h", s(status_pk(status)))
                .limit(i32::try_from(want.clamp(1, 1000)).unwrap_or(1000));
            q = match &from {
                Some(c) => q
                    .key_condition_expression("#h = :h AND #r > :c")
                    .expression_attribute_names("#r", "gsi2sk")
                    .expression_attribute_values(":c", s(c.clone())),
                None => q.key_condition_expression("#h = :h"),
            };
            let items = query_all(q, "query entries by status", Some(want)).await?;
            let mut order = BTreeMap::new();
            for item in items.iter().take(want) {
                order.insert(
                    get_s(item, PK)?.to_string(),
                    get_s(item, "gsi2sk")?.to_string(),
                );
            }
            let Some(last) = order.values().max().cloned() else {
                break;
            };
            let got = order.len();
            for st in self.states_of(order.keys().cloned().collect()).await? {
                if let Some(sk) = order
                    .get(&entry_pk(&st.entry.key))
                    .filter(|_| st.status() == status)
                {
                    out.push((sk.clone(), st));
                }
            }
            from = Some(last);
            if got < want {
                break;
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, st)| st).take(limit).collect())
    }

    fn period_page(&self) -> usize {
        crate::ports::PERIOD_PAGE
    }

    async fn by_work_dates(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: Option<&crate::ports::PeriodCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        if !self.period_index_ready().await? {
            return Err(StoreError::Backend(
                "the table's work-date index is not built yet (entries written by an older \
                 timepost): run `timepost --backend aws store rebuild-key-index` once"
                    .into(),
            ));
        }
        self.by_work_dates_now(from, to, after, limit).await
    }

    async fn all(&self) -> StoreResult<Vec<EntryState>> {
        // Every state item is in exactly one status partition of gsi2, so
        // the six partitions list every entry without scanning the journal
        // and change log that share the table.
        let mut pks = Vec::new();
        for status in Status::ALL {
            pks.extend(
                self.index_pks("gsi2", ("gsi2pk", status_pk(*status)), None, None)
                    .await?,
            );
        }
        pks.sort();
        pks.dedup();
        Ok(sort_by_key(self.states_of(pks).await?))
    }

    async fn by_mapped_keys(
        &self,
        keys: &[crate::mapping::MappedKey],
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        self.by_mapped_keys_now(keys, after, limit).await
    }

    async fn count_by_mapped_keys(&self, keys: &[crate::mapping::MappedKey]) -> StoreResult<usize> {
        self.count_by_mapped_keys_now(keys).await
    }

    async fn rebuild_key_index(&self) -> StoreResult<crate::mapping::keys::IndexRebuild> {
        self.rebuild_key_index_now().await
    }

    async fn by_source_dates(
        &self,
        source: Source,
        workspace: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>> {
        if from > to {
            return Ok(Vec::new());
        }
        // `<date>#<key>`: every key of date `to` sorts below `<to>$`
        // (`$` follows `#`) and above every earlier date.
        let pks = self
            .index_pks(
                "gsi3",
                ("gsi3pk", dates_pk(source, workspace)),
                Some(("gsi3sk", from.to_string(), format!("{to}$"))),
                None,
            )
            .await?;
        let states = self.states_of(pks).await?;
        Ok(sort_by_key(
            states
                .into_iter()
                .filter(|st| {
                    let e = &st.entry;
                    e.key.source == source
                        && e.key.workspace == workspace
                        && e.work_date >= from
                        && e.work_date <= to
                })
                .collect(),
        ))
    }

    /// The rows kept with every write (`aggregates.rs`): one Query per
    /// partition the period touches.
    async fn aggregates(
        &self,
        grain: crate::aggregates::Grain,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<(crate::aggregates::AggKey, crate::aggregates::AggVals)>> {
        self.read_rows(grain, from, to).await
    }

    /// The sample items of the months `from..=to` touches.
    async fn kpi_samples(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<crate::aggregates::Sample>> {
        self.read_samples(from, to).await
    }

    /// From the ends of the year, month and day rows (three small Queries).
    async fn newest_work_date(&self) -> StoreResult<Option<NaiveDate>> {
        self.newest_day().await
    }

    /// gsi1 partition `entries` (sort key: the key's text) says which
    /// entries follow `after`; their documents are read consistently.
    async fn page(&self, after: Option<&EntryKey>, limit: usize) -> StoreResult<Vec<EntryState>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .expression_attribute_values(":h", s(super::aggregates::ENTRIES_GSI1))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000));
        q = match after {
            Some(a) => q
                .key_condition_expression("gsi1pk = :h AND gsi1sk > :a")
                .expression_attribute_values(":a", s(a.to_string())),
            None => q.key_condition_expression("gsi1pk = :h"),
        };
        let items = query_all(q, "list entries", Some(limit)).await?;
        let pks = items
            .iter()
            .take(limit)
            .map(|i| get_s(i, PK).map(str::to_string))
            .collect::<StoreResult<Vec<_>>>()?;
        let after = after.map(|a| a.to_string());
        let mut states: Vec<EntryState> = sort_by_key(self.states_of(pks).await?)
            .into_iter()
            .filter(|st| after.as_ref().is_none_or(|a| st.entry.key.to_string() > *a))
            .collect();
        states.truncate(limit);
        Ok(states)
    }

    /// Recompute the rows and samples from every state and replace the
    /// stored ones (run it with the sync function paused: writes made
    /// while it runs may be overwritten); also finishes parked row
    /// changes and gives older state items the listing's index key.
    async fn rebuild_aggregates(&self) -> StoreResult<crate::aggregates::Rebuild> {
        self.rebuild().await
    }

    /// The claim item holds the owner and when it lapses: `expires_ms` is
    /// what every claimant checks (DynamoDB's TTL deletion runs late), and
    /// `expires_at` (epoch seconds, rounded up) lets TTL sweep it later.
    async fn claim(&self, key_: &EntryKey, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let now = now_ms();
        let expires_ms = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let expires_secs = expires_ms.div_euclid(1000) + 1;
        let mut item = key(entry_pk(key_), CLAIM);
        item.insert("owner".into(), s(owner));
        item.insert("expires_ms".into(), n(expires_ms));
        item.insert(EXPIRES_AT.into(), n(expires_secs));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_ms <= :now OR #o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":o", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("claim entry", e)),
        }
    }

    async fn release(&self, key_: &EntryKey, owner: &str) -> StoreResult<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(entry_pk(key_), CLAIM)))
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours (or already gone): someone else's claim stays.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("release claim", e)),
        }
    }

    /// Item `version#<updated_at>#<content hash>` in the entry's
    /// partition, written once (a redelivery finds it and changes nothing).
    async fn record_version(
        &self,
        entry: &crate::model::NormalisedEntry,
        received_at: chrono::DateTime<Utc>,
    ) -> StoreResult<()> {
        let v = crate::ports::ReceivedVersion {
            received_at,
            entry: entry.clone(),
        };
        let mut item = key(
            entry_pk(&entry.key),
            format!(
                "{VERSION_SK}{}#{}",
                entry
                    .version
                    .updated_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
                part(&entry.version.content_hash)
            ),
        );
        item.insert(VERSION.into(), s(encode(&v)?));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("record entry version", e)),
        }
    }

    async fn versions(&self, key_: &EntryKey) -> StoreResult<Vec<crate::ports::ReceivedVersion>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :v)")
            .expression_attribute_values(":p", s(entry_pk(key_)))
            .expression_attribute_values(":v", s(VERSION_SK))
            .consistent_read(true);
        let mut out: Vec<crate::ports::ReceivedVersion> = query_all(q, "entry versions", None)
            .await?
            .iter()
            .map(|i| decode(i, VERSION))
            .collect::<StoreResult<_>>()?;
        out.sort_by(|a, b| {
            (a.entry.version.updated_at, a.received_at)
                .cmp(&(b.entry.version.updated_at, b.received_at))
        });
        Ok(out)
    }
}
