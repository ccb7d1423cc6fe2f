//! Poller watermarks: item `wm#<name>` / `wm`, the instant as RFC 3339.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use super::codec::{get_s, key, part, s};
use super::DynamoStore;
use crate::aws::backend;
use crate::ports::{StoreError, StoreResult, WatermarkStore};

fn wm_key(name: &str) -> super::codec::Item {
    key(format!("wm#{}", part(name)), "wm")
}

#[async_trait]
impl WatermarkStore for DynamoStore {
    async fn get_watermark(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(wm_key(name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get watermark", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let at = get_s(&item, "at")?;
        DateTime::parse_from_rfc3339(at)
            .map(|d| Some(d.with_timezone(&Utc)))
            .map_err(|e| StoreError::Backend(format!("corrupt watermark {name}: {e}")))
    }

    async fn set_watermark(&self, name: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let mut item = wm_key(name);
        item.insert(
            "at".into(),
            s(at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| backend("set watermark", e))?;
        Ok(())
    }
}
