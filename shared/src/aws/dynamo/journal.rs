//! The posting journal: one immutable item per ledger operation, in the
//! entry's partition (`entry#<key>`, sort key `journal#<seq>`) so an
//! entry's history is one consistent query, and indexed by import batch in
//! `gsi1` (`journal#<batch>`, `<seq>`) for rollback. `seq` comes from the
//! `seq#journal` counter, so it increases across the whole journal.

use async_trait::async_trait;

use super::codec::{decode, encode, entry_pk, key, n, part, s, seq_key, Item};
use super::io::{next_seq, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::intent::{Intent, IntentOutcome};
use crate::model::EntryKey;
use crate::ports::{Journal, JournalRecord, StoreResult, WorkerWeek};

const RECORD: &str = "record";

fn batch_pk(batch_id: &str) -> String {
    format!("journal#{}", part(batch_id))
}

fn records(items: &[Item]) -> StoreResult<Vec<JournalRecord>> {
    let mut out: Vec<JournalRecord> = items
        .iter()
        .map(|i| decode(i, RECORD))
        .collect::<StoreResult<_>>()?;
    out.sort_by_key(|r| r.seq);
    Ok(out)
}

// Write-ahead intents: item `intent#<id>` in the entry's partition (so an
// entry's open intents are one consistent query), indexed while open in
// `gsi1` under `intents#open` by the time it was opened (what the sweep
// reads); closing removes the index attributes. Dirty worker-weeks: items
// of the `dirty#weeks` partition, one per week.

const INTENT: &str = "intent";
const OPEN_INTENTS: &str = "intents#open";
const DIRTY: &str = "dirty#weeks";

pub(super) fn intent_item(intent: &Intent) -> StoreResult<Item> {
    let mut item = key(entry_pk(&intent.key), format!("intent#{}", intent.id));
    item.insert(INTENT.into(), s(encode(intent)?));
    let open = matches!(intent.outcome, IntentOutcome::Open);
    item.insert("open".into(), n(u8::from(open)));
    if open {
        item.insert("gsi1pk".into(), s(OPEN_INTENTS));
        item.insert(
            "gsi1sk".into(),
            s(format!("{}#{}", intent.opened_at.to_rfc3339(), intent.id)),
        );
    }
    Ok(item)
}

fn intents(items: &[Item]) -> StoreResult<Vec<Intent>> {
    let mut out: Vec<Intent> = items
        .iter()
        .map(|i| decode(i, INTENT))
        .collect::<StoreResult<_>>()?;
    out.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
    Ok(out)
}

fn dirty_key(week: &WorkerWeek) -> StoreResult<Item> {
    Ok(key(DIRTY, format!("week#{}", encode(week)?)))
}

#[async_trait]
impl Journal for DynamoStore {
    async fn append(&self, mut record: JournalRecord) -> StoreResult<u64> {
        record.seq = next_seq(self, "journal", 1).await?;
        let sk = seq_key(record.seq);
        let mut item = key(entry_pk(&record.key), format!("journal#{sk}"));
        item.insert(RECORD.into(), s(encode(&record)?));
        item.insert("seq".into(), n(record.seq));
        item.insert("gsi1pk".into(), s(batch_pk(&record.batch_id)));
        item.insert("gsi1sk".into(), s(sk));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("append journal", e))?;
        Ok(record.seq)
    }

    async fn by_batch(&self, batch_id: &str) -> StoreResult<Vec<JournalRecord>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :b")
            .expression_attribute_values(":b", s(batch_pk(batch_id)));
        records(&query_all(q, "journal by batch", None).await?)
    }

    async fn by_entry(&self, key_: &EntryKey) -> StoreResult<Vec<JournalRecord>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :j)")
            .expression_attribute_values(":p", s(entry_pk(key_)))
            .expression_attribute_values(":j", s("journal#"))
            .consistent_read(true);
        records(&query_all(q, "journal by entry", None).await?)
    }

    async fn open_intent(&self, intent: &Intent) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(intent_item(intent)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("open intent", e))?;
        Ok(())
    }

    async fn close_intent(&self, intent: &Intent) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(intent_item(intent)?))
            .send()
            .await
            .map_err(|e| backend("close intent", e))?;
        Ok(())
    }

    async fn open_intents(&self, key_: &EntryKey) -> StoreResult<Vec<Intent>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :i)")
            .filter_expression("#open = :one")
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":p", s(entry_pk(key_)))
            .expression_attribute_values(":i", s("intent#"))
            .expression_attribute_values(":one", n(1))
            .consistent_read(true);
        intents(&query_all(q, "open intents of an entry", None).await?)
    }

    async fn stale_intents(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Intent>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :o AND gsi1sk < :b")
            .expression_attribute_values(":o", s(OPEN_INTENTS))
            .expression_attribute_values(":b", s(before.to_rfc3339()));
        let mut out = intents(&query_all(q, "stale intents", Some(limit)).await?)?;
        // The index is eventually consistent: keep only what is still open.
        out.retain(|i| matches!(i.outcome, IntentOutcome::Open));
        out.truncate(limit);
        Ok(out)
    }

    async fn mark_dirty(&self, week: &WorkerWeek, why: &str) -> StoreResult<()> {
        let mut item = dirty_key(week)?;
        item.insert("week".into(), s(encode(week)?));
        item.insert("why".into(), s(why));
        item.insert("marked_at".into(), s(chrono::Utc::now().to_rfc3339()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| backend("mark week dirty", e))?;
        Ok(())
    }

    async fn dirty_weeks(&self, limit: usize) -> StoreResult<Vec<WorkerWeek>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :d")
            .expression_attribute_values(":d", s(DIRTY))
            .consistent_read(true);
        let items = query_all(q, "dirty weeks", Some(limit)).await?;
        let mut out: Vec<WorkerWeek> = items
            .iter()
            .map(|i| decode(i, "week"))
            .collect::<StoreResult<_>>()?;
        out.truncate(limit);
        Ok(out)
    }

    async fn clear_dirty(&self, week: &WorkerWeek) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(dirty_key(week)?))
            .send()
            .await
            .map_err(|e| backend("clear dirty week", e))?;
        Ok(())
    }
}
