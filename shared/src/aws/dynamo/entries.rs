//! Entry state and claims: partition `entry#<key>`, items `state` and
//! `claim`.
//!
//! The state item carries the JSON document plus the attributes its
//! indexes need: `gsi1` by worker-week, `gsi2` by status and age, `gsi3` by
//! workspace and work date. Index reads are eventually consistent, so the
//! index only says *which* entries; their documents are then read from the
//! table with a consistent batch read and re-checked against the query
//! (an entry that just moved week or status is not returned twice or
//! under its old value).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, SecondsFormat, Utc};

use super::codec::{decode, encode, entry_pk, get_s, key, n, part, s, Item, EXPIRES_AT, PK};
use super::io::{batch_get, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::model::{EntryKey, Source};
use crate::ports::{EntryStore, StoreError, StoreResult, WorkerWeek};
use crate::state::{EntryState, Status};

const STATE: &str = "state";
const CLAIM: &str = "claim";

fn week_pk(w: &WorkerWeek) -> String {
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
fn state_item(stored: &EntryState) -> StoreResult<Item> {
    let e = &stored.entry;
    let pk = entry_pk(&e.key);
    let escaped_key = part(&e.key.to_string());
    let mut item = key(pk.clone(), STATE);
    item.insert(STATE.into(), s(encode(stored)?));
    item.insert("revision".into(), n(stored.revision));
    item.insert("status".into(), s(stored.status.as_str()));
    item.insert("gsi1pk".into(), s(week_pk(&WorkerWeek::of(e))));
    item.insert("gsi1sk".into(), s(pk));
    item.insert("gsi2pk".into(), s(status_pk(stored.status)));
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
    Ok(item)
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

    async fn put(&self, state: &EntryState) -> StoreResult<u64> {
        let mut stored = state.clone();
        stored.revision = state.revision + 1;
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(state_item(&stored)?));
        req = if state.revision == 0 {
            req.condition_expression("attribute_not_exists(pk)")
        } else {
            req.condition_expression("revision = :r")
                .expression_attribute_values(":r", n(state.revision))
        };
        match req.send().await {
            Ok(_) => Ok(stored.revision),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict(state.entry.key.to_string()))
            }
            Err(e) => Err(backend("put entry", e)),
        }
    }

    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        let pks = self
            .index_pks("gsi1", ("gsi1pk", week_pk(week)), None, None)
            .await?;
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
            .filter(|st| st.status == status)
            .collect();
        states.sort_by(|a, b| {
            (a.updated_at, a.entry.key.to_string()).cmp(&(b.updated_at, b.entry.key.to_string()))
        });
        states.truncate(limit);
        Ok(states)
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
}
