//! DynamoDB: entry state, mappings and their change log, the posting
//! journal, watermarks and the audit log, in one table.
//! SKELETON: the implementation lands with the DynamoDB adapter work.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::mapping::{MappingChange, MappingTable, Mappings};
use crate::model::{EntryKey, Source};
use crate::ports::*;
use crate::state::{EntryState, Status};

#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Create the table as the SAM template declares it (tests, local
    /// emulators). Does nothing when it exists.
    pub async fn create_table(&self) -> StoreResult<()> {
        todo!()
    }
}

#[async_trait]
impl EntryStore for DynamoStore {
    async fn get(&self, _key: &EntryKey) -> StoreResult<Option<EntryState>> {
        todo!()
    }
    async fn put(&self, _state: &EntryState) -> StoreResult<u64> {
        todo!()
    }
    async fn week(&self, _week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        todo!()
    }
    async fn by_status(&self, _status: Status, _limit: usize) -> StoreResult<Vec<EntryState>> {
        todo!()
    }
    async fn all(&self) -> StoreResult<Vec<EntryState>> {
        todo!()
    }
    async fn by_source_dates(
        &self,
        _source: Source,
        _workspace: &str,
        _from: NaiveDate,
        _to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>> {
        todo!()
    }
    async fn claim(&self, _key: &EntryKey, _owner: &str, _ttl: Duration) -> StoreResult<bool> {
        todo!()
    }
    async fn release(&self, _key: &EntryKey, _owner: &str) -> StoreResult<()> {
        todo!()
    }
}

#[async_trait]
impl MappingStore for DynamoStore {
    async fn snapshot(&self) -> StoreResult<Mappings> {
        todo!()
    }
    async fn version(&self) -> StoreResult<u64> {
        todo!()
    }
    async fn apply(&self, _changes: Vec<MappingChange>) -> StoreResult<Vec<MappingChange>> {
        todo!()
    }
    async fn history(
        &self,
        _table: Option<MappingTable>,
        _key: Option<&str>,
    ) -> StoreResult<Vec<MappingChange>> {
        todo!()
    }
}

#[async_trait]
impl Journal for DynamoStore {
    async fn append(&self, _record: JournalRecord) -> StoreResult<u64> {
        todo!()
    }
    async fn by_batch(&self, _batch_id: &str) -> StoreResult<Vec<JournalRecord>> {
        todo!()
    }
    async fn by_entry(&self, _key: &EntryKey) -> StoreResult<Vec<JournalRecord>> {
        todo!()
    }
}

#[async_trait]
impl WatermarkStore for DynamoStore {
    async fn get_watermark(&self, _name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        todo!()
    }
    async fn set_watermark(&self, _name: &str, _at: DateTime<Utc>) -> StoreResult<()> {
        todo!()
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, _record: AuditRecord) -> StoreResult<u64> {
        todo!()
    }
    async fn recent(&self, _limit: usize) -> StoreResult<Vec<AuditRecord>> {
        todo!()
    }
}
