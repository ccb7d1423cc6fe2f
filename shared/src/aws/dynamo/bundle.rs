//! Load a full export (`timepost --backend aws import --bundle DIR`) into
//! the table, with the item layout every port writes: entry states and
//! their week membership, their aggregate rows and KPI samples, received versions, journal records, intents,
//! audit records, proposals (sequence numbers, revisions and ids kept) and
//! the mapping change log (published with the same staged, conditional
//! publish as `mappings import`).
//!
//! Writes go 25 to a BatchWriteItem with the unprocessed remainder retried
//! with back-off (`io::batch_write`). BatchWriteItem takes no condition,
//! so before each batch the batch's keys are read (consistent BatchGetItem)
//! and the import stops, naming the item, if any is already there: an
//! existing item is never overwritten. The check and the write are two
//! calls; the import is meant for a stack nothing else writes to yet (the
//! CLI refuses a table holding records unless `--force`).
//!
//! The sequence counters (`seq#journal`, `seq#audit`, `seq#pending`) are
//! raised to the highest number loaded, so new records never reuse one.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::SecondsFormat;

use super::codec::{encode, entry_pk, get_s, key, n, part, s, seq_key, Item, PK, SK};
use super::entries::{state_item, week_pk, VERSION_SK};
use super::io::{batch_get, batch_write};
use super::journal::intent_item;
use super::DynamoStore;
use crate::archive::restore::Loaded;
use crate::aws::backend;
use crate::ports::{MappingStore, StoreError, StoreResult, WorkerWeek};

/// Partitions that hold records a bundle would load (or that a running
/// stack wrote): entries, week membership, audit, mappings, proposals.
const RECORD_PREFIXES: [&str; 5] = ["entry#", "week#", "audit#", "map#", "pending#"];

/// What `load_bundle` wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BundleLoad {
    /// Items written (entries, memberships, aggregate rows and samples,
    /// versions, journal, intents, audit, proposals; the mapping log and its commit are extra).
    pub items: usize,
    /// BatchWriteItem calls made.
    pub batches: usize,
    pub mapping_changes: usize,
}

impl DynamoStore {
    /// True when no item of a record partition exists (counters, sessions,
    /// watermarks and alert state do not count).
    pub async fn holds_no_records(&self) -> StoreResult<bool> {
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("pk")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("scan the table", e))?;
            for item in out.items() {
                let pk = get_s(item, PK).unwrap_or_default();
                if RECORD_PREFIXES.iter().any(|p| pk.starts_with(p)) {
                    return Ok(false);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(true),
            }
        }
    }

    /// Write everything `d` holds but the books' lines and the dead
    /// letters (the caller reports those): see the module comment.
    pub async fn load_bundle(&self, d: &Loaded) -> StoreResult<BundleLoad> {
        // Into an empty table: its work-date index is marked ready before
        // the states (each written with its items) arrive (`periodindex`).
        self.period_index_ready().await?;
        let mut items = Vec::new();
        for st in &d.entries {
            // With its mapped-key index items (`keyindex`).
            let keys = crate::mapping::keys_of(&st.entry);
            let mut state = state_item(st)?;
            state.insert(
                super::keyindex::MKEYS.into(),
                s(super::keyindex::encode_keys(&keys)?),
            );
            let pkeys = super::periodindex::keys_of(st);
            state.insert(
                super::periodindex::PKEYS.into(),
                s(super::periodindex::encode(&pkeys)?),
            );
            items.push(state);
            items.extend(super::keyindex::diff(&st.entry.key, &[], &keys).0);
            items.extend(super::periodindex::diff(&st.entry.key, &[], &pkeys).0);
            items.push(key(
                week_pk(&WorkerWeek::of(&st.entry)),
                entry_pk(&st.entry.key),
            ));
        }
        // The aggregate rows and KPI samples of the loaded states, as
        // every write keeps them (`aggregates.rs`).
        for (k, v) in &crate::aggregates::fold(&d.entries) {
            items.push(super::aggregates::row_item(k, v));
        }
        for st in &d.entries {
            if let Some(x) = crate::aggregates::sample(st) {
                items.push(super::aggregates::sample_item(&entry_pk(&st.entry.key), &x));
            }
        }
        for v in &d.versions {
            let mut item = key(
                entry_pk(&v.entry.key),
                format!(
                    "{VERSION_SK}{}#{}",
                    v.entry
                        .version
                        .updated_at
                        .to_rfc3339_opts(SecondsFormat::Micros, true),
                    part(&v.entry.version.content_hash)
                ),
            );
            item.insert("version".into(), s(encode(v)?));
            items.push(item);
        }
        for r in &d.journal {
            let sk = seq_key(r.seq);
            let mut item = key(entry_pk(&r.key), format!("journal#{sk}"));
            item.insert("record".into(), s(encode(r)?));
            item.insert("seq".into(), n(r.seq));
            item.insert("gsi1pk".into(), s(format!("journal#{}", part(&r.batch_id))));
            item.insert("gsi1sk".into(), s(sk));
            items.push(item);
        }
        for i in &d.intents {
            items.push(intent_item(i)?);
        }
        for a in &d.audit {
            let mut item = key("audit#log", seq_key(a.seq));
            item.insert("record".into(), s(encode(a)?));
            item.insert("seq".into(), n(a.seq));
            items.push(item);
        }
        for p in &d.proposals {
            items.push(crate::aws::dynamo_pending::to_item(p)?);
        }
        let mut out = BundleLoad {
            items: items.len(),
            ..BundleLoad::default()
        };
        for chunk in items.chunks(25) {
            self.refuse_existing(chunk).await?;
            let puts = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| backend("import: put request", e))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            batch_write(self, puts).await?;
            out.batches += 1;
        }
        self.raise_counter("journal", d.journal.iter().map(|r| r.seq).max())
            .await?;
        self.raise_counter("audit", d.audit.iter().map(|a| a.seq).max())
            .await?;
        self.raise_counter("pending", d.proposals.iter().map(|p| p.id).max())
            .await?;
        // The change log through the mapping store's own staged,
        // conditional publish: on a table with no mappings the changes
        // keep their numbers 1..=n.
        if !d.mapping_changes.is_empty() {
            let mut changes = d.mapping_changes.clone();
            changes.sort_by_key(|c| c.seq);
            out.mapping_changes = self.apply(changes).await?.len();
        }
        Ok(out)
    }

    /// Stop, naming it, when any item of `chunk` already exists.
    async fn refuse_existing(&self, chunk: &[Item]) -> StoreResult<()> {
        let keys = chunk
            .iter()
            .filter_map(|i| Some(key(get_s(i, PK).ok()?, get_s(i, SK).ok()?)))
            .collect();
        if let Some(found) = batch_get(self, keys).await?.first() {
            return Err(StoreError::Backend(format!(
                "import: the table already holds {}/{}; nothing was overwritten (the items before it are loaded)",
                get_s(found, PK).unwrap_or("?"),
                get_s(found, SK).unwrap_or("?")
            )));
        }
        Ok(())
    }

    /// Set counter `seq#name` to at least `to`.
    async fn raise_counter(&self, name: &str, to: Option<u64>) -> StoreResult<()> {
        let Some(to) = to else { return Ok(()) };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("seq#{name}"), "seq")))
            .update_expression("SET #n = :v")
            .condition_expression("attribute_not_exists(#n) OR #n < :v")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":v", AttributeValue::N(to.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already at or past `to`.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("raise sequence counter", e)),
        }
    }
}
