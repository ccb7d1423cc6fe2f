//! Alert state: partition `alerts`, sort key the condition key (escaped),
//! the state as JSON in `doc`, `active` = 1 while not cleared. A cleared
//! state carries `expires_at` 30 days on, so the table's TTL drops it and
//! the partition stays small.

use async_trait::async_trait;

use super::codec::{decode, encode, key, n, part, s, EXPIRES_AT};
use super::io::query_all;
use super::DynamoStore;
use crate::aws::backend;
use crate::ports::KEEP_CLEARED_DAYS;
use crate::ports::{AlertState, AlertStore, StoreResult};

const PARTITION: &str = "alerts";
const DOC: &str = "doc";

impl DynamoStore {
    async fn alert_items(&self) -> StoreResult<Vec<AlertState>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(PARTITION))
            .consistent_read(true);
        query_all(q, "alert states", None)
            .await?
            .iter()
            .map(|i| decode(i, DOC))
            .collect()
    }
}

#[async_trait]
impl AlertStore for DynamoStore {
    async fn active_alerts(&self) -> StoreResult<Vec<AlertState>> {
        let mut v: Vec<AlertState> = self
            .alert_items()
            .await?
            .into_iter()
            .filter(|a| a.cleared.is_none())
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(v)
    }

    async fn put_alert(&self, state: &AlertState) -> StoreResult<()> {
        let mut item = key(PARTITION, part(&state.key));
        item.insert(DOC.into(), s(encode(state)?));
        item.insert("active".into(), n(u8::from(state.cleared.is_none())));
        if let Some(c) = state.cleared {
            let until = c + chrono::TimeDelta::days(KEEP_CLEARED_DAYS);
            item.insert(EXPIRES_AT.into(), n(until.timestamp()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| backend("put alert state", e))?;
        Ok(())
    }

    async fn alert_history(&self, limit: usize) -> StoreResult<Vec<AlertState>> {
        let mut v = self.alert_items().await?;
        v.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.key.cmp(&b.key)));
        v.truncate(limit);
        Ok(v)
    }
}
