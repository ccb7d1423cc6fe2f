//! The run report (`timepost_core::report`, re-exported) and how a
//! running stack collects one: the stores and the ledger read back.

use std::collections::BTreeMap;

pub use timepost_core::report::*;

/// Why a report could not be collected: a store or the ledger did not
/// answer.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Store(#[from] timepost_core::ports::StoreError),
    #[error(transparent)]
    Ledger(#[from] timepost_core::ledger::LedgerError),
}

/// Read the stores and the ledger and build the report. `outcomes` are
/// the outcomes of the run being reported on (for duplicates and stale
/// versions); pass none for a report of the store as it stands.
pub async fn collect(
    entries: &dyn timepost_core::ports::EntryStore,
    ledger: &dyn timepost_core::ledger::Ledger,
    queue: &dyn timepost_core::ports::Queue,
    counters: BTreeMap<&'static str, u64>,
    outcomes: &[crate::engine::Outcome],
) -> Result<Report, CollectError> {
    let states = entries.all().await?;
    let records = ledger.read_back().await?;
    Ok(build(ReportInput {
        ledger: ledger.name(),
        states: &states,
        ledger_records: records.as_deref(),
        duplicates: outcomes
            .iter()
            .filter(|o| o.is_duplicate())
            .map(|o| o.key.to_string())
            .collect(),
        stale: outcomes
            .iter()
            .filter(|o| o.is_stale())
            .map(|o| o.key.to_string())
            .collect(),
        counters,
        dead_letters: queue.dead_letter_count().await?,
    }))
}
