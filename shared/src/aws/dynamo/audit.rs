//! The audit log: one partition `audit#log`, sort key the record's `seq`
//! (from the `seq#audit` counter), so "newest first" is one backwards
//! query. Audit writes come at human pace, far below one partition's
//! write limit.

use async_trait::async_trait;

use super::codec::{decode, encode, key, n, s, seq_key};
use super::io::{next_seq, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::ports::{AuditLog, AuditRecord, StoreResult};

const PARTITION: &str = "audit#log";
const RECORD: &str = "record";

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, mut record: AuditRecord) -> StoreResult<u64> {
        record.seq = next_seq(self, "audit", 1).await?;
        let mut item = key(PARTITION, seq_key(record.seq));
        item.insert(RECORD.into(), s(encode(&record)?));
        item.insert("seq".into(), n(record.seq));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("record audit", e))?;
        Ok(record.seq)
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(PARTITION))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.min(1000)).unwrap_or(1000))
            .consistent_read(true);
        let mut items = query_all(q, "recent audit", Some(limit)).await?;
        items.truncate(limit);
        items.iter().map(|i| decode(i, RECORD)).collect()
    }
}
