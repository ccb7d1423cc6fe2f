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
use crate::model::EntryKey;
use crate::ports::{Journal, JournalRecord, StoreResult};

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
}
