//! Restoring an archived period into a new local store: the snapshot is
//! verified and decoded by `crate::archive::restore`, then written here as
//! a fresh directory holding `timepost.toml` and `timepost.sqlite`.

use std::path::Path;

use crate::archive::restore::{read_period, restored_config, summary_of, LoadStore, Restored};
use crate::archive::ArchiveError;
use crate::ports::Archive;

use super::SqliteStore;

/// Restore the newest revision of `period` (or `revision`) into the new
/// directory `into`: verified first; refused if `into` holds a store.
pub async fn restore_period(
    archive: &dyn Archive,
    period: &str,
    revision: Option<u32>,
    into: &Path,
) -> Result<Restored, ArchiveError> {
    let data = read_period(archive, period, revision).await?;
    let db = into.join("timepost.sqlite");
    if db.exists() {
        return Err(ArchiveError::Input(format!(
            "{} already holds a store; restore into a new directory",
            into.display()
        )));
    }
    std::fs::create_dir_all(into).map_err(|e| io(into, e))?;
    let cfg = into.join("timepost.toml");
    std::fs::write(&cfg, restored_config(&data)).map_err(|e| io(&cfg, e))?;
    let store = SqliteStore::open(&db)?;
    store.load(&data)?;
    Ok(summary_of(&data))
}

fn io(p: &Path, e: std::io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    }
}
