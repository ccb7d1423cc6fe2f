//! Reconciliation runs, their breaks and the resolutions:
//!
//! - a run: partition `recon#runs`, sort key its `seq` (from the
//!   `seq#recon` counter), the summary as JSON; "newest first" is one
//!   backwards query;
//! - its breaks: partition `recon#breaks#<seq>`, sort key the position,
//!   one item each (a run may hold thousands: one item would pass
//!   DynamoDB's 400 KB limit), written 25 a call *before* the run item,
//!   which publishes them;
//! - resolutions: partition `recon#resolutions`, sort key a `seq` (from
//!   `seq#recon_resolution`), `break_id` as an attribute.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use super::codec::{decode, encode, get_s, key, n, s, seq_key};
use super::io::{batch_write, next_seq, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::ports::{StoreError, StoreResult};
use crate::reconcile::{Break, ReconcileStore, Resolution, RunSummary};

const RUNS: &str = "recon#runs";
const RESOLUTIONS: &str = "recon#resolutions";
const DOC: &str = "doc";

fn breaks_pk(seq: u64) -> String {
    format!("recon#breaks#{}", seq_key(seq))
}

impl DynamoStore {
    async fn partition(
        &self,
        pk: &str,
        forward: bool,
        max: Option<usize>,
    ) -> StoreResult<Vec<super::codec::Item>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(pk))
            .scan_index_forward(forward)
            .consistent_read(true);
        query_all(q, "reconciliation", max).await
    }
}

#[async_trait]
impl ReconcileStore for DynamoStore {
    async fn save_run(&self, run: &RunSummary, breaks: &[Break]) -> StoreResult<u64> {
        let seq = next_seq(self, "recon", 1).await?;
        let mut requests = Vec::with_capacity(breaks.len());
        for (pos, b) in breaks.iter().enumerate() {
            let mut item = key(breaks_pk(seq), seq_key(pos as u64));
            item.insert(DOC.into(), s(encode(b)?));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Backend(format!("break item: {e}")))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        batch_write(self, requests).await?;
        let mut stored = run.clone();
        stored.seq = seq;
        let mut item = key(RUNS, seq_key(seq));
        item.insert(DOC.into(), s(encode(&stored)?));
        item.insert("seq".into(), n(seq));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("save reconciliation run", e))?;
        Ok(seq)
    }

    async fn runs(&self, limit: usize) -> StoreResult<Vec<RunSummary>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut items = self.partition(RUNS, false, Some(limit)).await?;
        items.truncate(limit);
        items.iter().map(|i| decode(i, DOC)).collect()
    }

    async fn run_breaks(&self, seq: u64) -> StoreResult<Vec<Break>> {
        self.partition(&breaks_pk(seq), true, None)
            .await?
            .iter()
            .map(|i| decode(i, DOC))
            .collect()
    }

    async fn add_resolution(&self, resolution: &Resolution) -> StoreResult<()> {
        let seq = next_seq(self, "recon_resolution", 1).await?;
        let mut item = key(RESOLUTIONS, seq_key(seq));
        item.insert(DOC.into(), s(encode(resolution)?));
        item.insert("break_id".into(), s(resolution.break_id.clone()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("record resolution", e))?;
        Ok(())
    }

    async fn resolutions(&self, break_id: Option<&str>) -> StoreResult<Vec<Resolution>> {
        let mut out = Vec::new();
        for item in self.partition(RESOLUTIONS, true, None).await? {
            if break_id.is_some_and(|b| get_s(&item, "break_id").ok() != Some(b)) {
                continue;
            }
            out.push(decode(&item, DOC)?);
        }
        Ok(out)
    }
}
