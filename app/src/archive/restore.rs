//! Read a snapshot (or a full export) back and load it into a fresh local
//! store: `archive restore` (a period, into a new directory with its own
//! `timepost.toml`) and `import --bundle` (a full export, into the store
//! the config names).

use serde::Serialize;

use super::format::{self, Kind, Manifest};
use super::snapshot::{rev_prefix, stored, ApprovalLine, LedgerLine};
use super::ArchiveError;
use crate::intent::Intent;
use crate::mapping::MappingChange;
use crate::ports::{
    Archive, AuditRecord, DeadLetter, JournalRecord, ProposedChange, ReceivedVersion,
};
use crate::state::EntryState;

/// A snapshot's contents, decoded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    pub entries: Vec<EntryState>,
    /// Every version received (empty for a format 1.0 snapshot, which did
    /// not keep them).
    pub versions: Vec<ReceivedVersion>,
    pub journal: Vec<JournalRecord>,
    pub intents: Vec<Intent>,
    pub ledger_records: Vec<LedgerLine>,
    pub approvals: Vec<ApprovalLine>,
    pub proposals: Vec<ProposedChange>,
    pub audit: Vec<AuditRecord>,
    pub mapping_changes: Vec<MappingChange>,
    pub dead_letters: Vec<DeadLetter>,
    pub rules_toml: String,
    /// `report.json` as stored.
    pub report: serde_json::Value,
}

async fn file(archive: &dyn Archive, key: &str) -> Result<Vec<u8>, ArchiveError> {
    archive
        .get(key)
        .await?
        .ok_or_else(|| ArchiveError::Corrupt(format!("{key}: missing")))
}

async fn kind<T: serde::de::DeserializeOwned>(
    archive: &dyn Archive,
    prefix: &str,
    k: Kind,
) -> Result<Vec<T>, ArchiveError> {
    let key = format!("{prefix}{}", k.file());
    format::read_jsonl_gz(&file(archive, &key).await?, &key)
}

/// Decode the snapshot under `prefix` (after it was verified).
pub async fn read(archive: &dyn Archive, prefix: &str) -> Result<Loaded, ArchiveError> {
    let mkey = format!("{prefix}{}", format::MANIFEST);
    let manifest: Manifest = serde_json::from_slice(&file(archive, &mkey).await?)
        .map_err(|e| ArchiveError::Corrupt(format!("{mkey}: {e}")))?;
    let rkey = format!("{prefix}{}", format::REPORT_FILE);
    // Format 1.0 snapshots have no versions file: read as none.
    let versions = if manifest.files.contains_key(&Kind::EntryVersions.file()) {
        kind(archive, prefix, Kind::EntryVersions).await?
    } else {
        Vec::new()
    };
    Ok(Loaded {
        entries: kind(archive, prefix, Kind::Entries).await?,
        versions,
        journal: kind(archive, prefix, Kind::Journal).await?,
        intents: kind(archive, prefix, Kind::Intents).await?,
        ledger_records: kind(archive, prefix, Kind::LedgerRecords).await?,
        approvals: kind(archive, prefix, Kind::Approvals).await?,
        proposals: kind(archive, prefix, Kind::Proposals).await?,
        audit: kind(archive, prefix, Kind::Audit).await?,
        mapping_changes: kind(archive, prefix, Kind::MappingChanges).await?,
        dead_letters: kind(archive, prefix, Kind::DeadLetters).await?,
        rules_toml: String::from_utf8(
            file(archive, &format!("{prefix}{}", format::RULES_FILE)).await?,
        )
        .map_err(|e| ArchiveError::Corrupt(format!("{prefix}{}: {e}", format::RULES_FILE)))?,
        report: serde_json::from_slice(&file(archive, &rkey).await?)
            .map_err(|e| ArchiveError::Corrupt(format!("{rkey}: {e}")))?,
        manifest,
    })
}

/// A store a snapshot can be loaded into (the local SQLite store).
pub trait LoadStore {
    /// True when the store holds no entry, mapping, journal, audit,
    /// proposal, queued or dead-lettered message, nor book record.
    fn is_empty_store(&self) -> Result<bool, crate::ports::StoreError>;
    /// Load everything in one transaction, keeping sequence numbers,
    /// revisions and ids.
    fn load(&self, data: &Loaded) -> Result<(), crate::ports::StoreError>;
}

/// What a restore or import loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub period: String,
    pub revision: u32,
    pub entries: usize,
    pub versions: usize,
    pub journal: usize,
    pub audit: usize,
    pub mapping_changes: usize,
    pub ledger_records: usize,
}

fn summary(d: &Loaded) -> Restored {
    Restored {
        period: d.manifest.period.clone(),
        revision: d.manifest.revision,
        entries: d.entries.len(),
        versions: d.versions.len(),
        journal: d.journal.len(),
        audit: d.audit.len(),
        mapping_changes: d.mapping_changes.len(),
        ledger_records: d.ledger_records.len(),
    }
}

/// The config a restored directory gets: its own store files, the sandbox
/// ledger holding the books' records of the snapshot, the rules in force.
pub fn restored_config(d: &Loaded) -> String {
    format!(
        "# Restored by `timepost archive restore` from the snapshot of {} (revision {}).\n\
         # The sandbox ledger holds the lines the books held for these entries.\n\
         [store]\npath = \"timepost.sqlite\"\narchive_dir = \"archive\"\nsecrets_file = \"secrets.toml\"\nread_only = true\n\n\
         [ledger]\nkind = \"sandbox\"\n\n{}",
        d.manifest.period, d.manifest.revision, d.rules_toml
    )
}

/// The newest revision of `period` (or `revision`), verified first and
/// decoded: what a restore loads into a new store
/// (`crate::local::restore_period`).
pub async fn read_period(
    archive: &dyn Archive,
    period: &str,
    revision: Option<u32>,
) -> Result<Loaded, ArchiveError> {
    let revs: Vec<u32> = stored(archive)
        .await?
        .into_iter()
        .filter(|s| s.period == period)
        .map(|s| s.revision)
        .collect();
    let rev = match revision {
        Some(r) if revs.contains(&r) => r,
        Some(r) => {
            return Err(ArchiveError::Input(format!(
                "period {period} has no revision {r}"
            )))
        }
        None => *revs
            .iter()
            .max()
            .ok_or_else(|| ArchiveError::Input(format!("period {period} is not archived")))?,
    };
    let check = super::verify::verify(archive, Some(period)).await?;
    let prefix = rev_prefix(period, rev);
    let problems: Vec<String> = check
        .problems
        .iter()
        .filter(|p| p.key.starts_with(&prefix))
        .map(|p| format!("{}: {}", p.key, p.what))
        .collect();
    if !problems.is_empty() {
        return Err(ArchiveError::Unverified {
            period: period.to_string(),
            problems,
        });
    }
    read(archive, &prefix).await
}

/// Load a bundle written by `export --all` (see [`read_bundle`]) into
/// `store`: verified first; refused if the store is not empty, unless
/// `force`.
pub async fn import_bundle(
    bundle: &dyn Archive,
    store: &dyn LoadStore,
    force: bool,
) -> Result<Restored, ArchiveError> {
    let data = read_bundle(bundle).await?;
    if !force && !store.is_empty_store()? {
        return Err(ArchiveError::Input(
            "the store is not empty; import into a fresh store (or pass --force to load on top)"
                .into(),
        ));
    }
    store.load(&data)?;
    Ok(summary(&data))
}

/// Verify the bundle `export --all` wrote (every file re-hashed against its
/// manifest; locally a `DirArchive` on its directory) and decode it.
pub async fn read_bundle(archive: &dyn Archive) -> Result<Loaded, ArchiveError> {
    let (manifest, problems) = super::verify::verify_bundle(archive).await?;
    if !problems.is_empty() {
        return Err(ArchiveError::Unverified {
            period: manifest.period,
            problems: problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.what))
                .collect(),
        });
    }
    read(archive, "").await
}

/// What `data` holds, as `import_bundle` reports it.
pub fn summary_of(data: &Loaded) -> Restored {
    summary(data)
}
