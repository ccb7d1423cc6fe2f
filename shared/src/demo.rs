//! The bundled sandbox: a small consulting firm's week with every edge case
//! the integration guide names, run through the whole pipeline on embedded
//! storage and the sandbox ledger. The files are compiled in, so
//! `timepost demo` works from any directory; they are also in
//! `examples/sandbox/` to copy and edit.

use std::path::Path;

use crate::config::Config;
use crate::local::SqliteStore;
use crate::mapping::{csv_io, diff};
use crate::ports::MappingStore;
use crate::report::{self, Report};
use crate::stack::LocalStack;

pub const CONFIG: &str = include_str!("../../examples/sandbox/timepost.toml");
pub const MAPPINGS: &str = include_str!("../../examples/sandbox/mappings.csv");
pub const ENTRIES: &str = include_str!("../../examples/sandbox/entries.csv");

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Mappings(#[from] csv_io::MappingCsvError),
    #[error(transparent)]
    Entries(#[from] crate::sources::ParseError),
    #[error(transparent)]
    Stack(#[from] crate::stack::StackError),
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    #[error(transparent)]
    Ledger(#[from] timepost_core::ledger::LedgerError),
    #[error(transparent)]
    Report(#[from] crate::report::CollectError),
}

/// Run the sandbox in `dir` (a fresh directory) and report the outcome.
pub async fn run(dir: &Path) -> Result<Report, DemoError> {
    let mut config = Config::parse(CONFIG, "examples/sandbox/timepost.toml")?;
    config.store.path = dir.join("timepost.sqlite");
    config.store.archive_dir = dir.join("archive");
    config.store.secrets_file = dir.join("secrets.toml");
    let stack = LocalStack::with_store(config, SqliteStore::open(&dir.join("timepost.sqlite"))?)?;
    let rows = csv_io::read(MAPPINGS.as_bytes())?;
    let current = stack.store.snapshot().await?;
    let changes = diff(
        &current,
        &rows,
        false,
        "demo",
        chrono::Utc::now(),
        "sandbox mappings",
    );
    stack.store.apply(changes).await?;
    let mappings = stack.store.snapshot().await?;

    let ctx = crate::intake::parse_context(&stack.config.intake, &mappings);
    let columns = crate::sources::csv_import::CsvColumns::default();
    let entries = crate::sources::csv_import::reader(ENTRIES.as_bytes(), &columns, &ctx)?
        .collect::<Result<Vec<_>, _>>()?;
    // One delivery per row, in file order: the arrival order is the point.
    let mut outcomes = Vec::new();
    for e in entries {
        crate::intake::enqueue_entries(&stack.store, vec![e]).await?;
        outcomes.extend(crate::worker::drain(&stack.engine, &stack.store).await?);
    }
    report_for(&stack, &outcomes).await
}

/// The outcome report for a stack, with duplicates and stale versions taken
/// from the outcomes of the run.
pub async fn report_for(
    stack: &LocalStack,
    outcomes: &[crate::engine::Outcome],
) -> Result<Report, DemoError> {
    report::collect(
        &stack.store,
        stack.ledger.as_ref(),
        &stack.store,
        stack.engine.counters.snapshot(),
        outcomes,
    )
    .await
    .map_err(DemoError::from)
}
