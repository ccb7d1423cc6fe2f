//! DynamoDB: entry state, claims, mappings and their change log, the
//! posting journal, watermarks, the audit log and reconciliation runs, in one table (the SAM
//! template's: `pk`/`sk`, three overloaded GSIs, TTL on `expires_at`).
//!
//! Each port lives in its own module; the item layout and every access
//! pattern are listed in `docs/architecture.md` ("DynamoDB access
//! patterns"). Only claims and console sessions carry a TTL: everything
//! else is the books' history and is kept.

mod aggregates;
mod alerts;
mod audit;
mod bundle;
mod codec;
mod entries;
mod io;
mod journal;
mod keyindex;
mod mappings;
mod periodindex;
mod purge;
mod reconcile;
mod rekey;
mod sessions;
mod table;
mod watermarks;

use crate::ports::StoreResult;
pub use bundle::BundleLoad;
pub use rekey::KeyMigration;

/// Every store of the AWS stack on one DynamoDB table. Cheap to clone (the
/// SDK client is shared).
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    /// Set once this process knows the work-date index covers every state
    /// (`periodindex`).
    pub(crate) period_index: std::sync::Arc<std::sync::OnceLock<()>>,
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            period_index: Default::default(),
        }
    }

    /// The table this store reads and writes.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Create the table as the SAM template declares it (tests, local
    /// emulators): on-demand, `pk`/`sk`, GSIs `gsi1`..`gsi3` projecting
    /// everything, TTL on `expires_at`. Waits until it is ACTIVE. Does
    /// nothing when it exists.
    pub async fn create_table(&self) -> StoreResult<()> {
        table::create(self).await
    }
}
