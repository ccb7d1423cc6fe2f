//! The archive format: periods, the kinds of file a snapshot holds, the
//! versioned manifest, and the gzip'd JSON Lines and CSV encodings. What
//! `docs/archive-format.md` documents for someone who never runs timepost.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ArchiveError;

/// The manifest's `format` value.
pub const FORMAT: &str = "timepost-archive";
/// Bumped on any change a reader of an older version would misread.
pub const FORMAT_VERSION: u32 = 1;
/// Bumped when files or fields are added that an older reader of the same
/// `format_version` safely ignores. 1: `entry_versions.jsonl.gz`, every
/// version of each entry as received.
pub const FORMAT_MINOR: u32 = 1;
/// Where period snapshots live in the archive (local directory or bucket).
pub const SNAPSHOTS: &str = "snapshots/";
/// Where purge records live (one per purged period).
pub const PURGES: &str = "purges/";
pub const MANIFEST: &str = "manifest.json";
/// The manifest's own SHA-256 (hex), beside it.
pub const MANIFEST_SHA: &str = "manifest.json.sha256";

pub use crate::config::retention::PeriodKind;

/// One archive period: every work date in `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub start: NaiveDate,
    pub kind: PeriodKind,
}

impl Period {
    /// The period `date` falls in.
    pub fn of(date: NaiveDate, kind: PeriodKind) -> Self {
        let start = match kind {
            PeriodKind::Month => date.with_day(1).unwrap_or(date),
            PeriodKind::Week => crate::model::week_start(date),
        };
        Self { start, kind }
    }

    /// The last work date of the period.
    pub fn end(&self) -> NaiveDate {
        match self.kind {
            PeriodKind::Month => {
                let (y, m) = if self.start.month() == 12 {
                    (self.start.year() + 1, 1)
                } else {
                    (self.start.year(), self.start.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)
                    .map(|d| d - Duration::days(1))
                    .unwrap_or(self.start)
            }
            PeriodKind::Week => self.start + Duration::days(6),
        }
    }

    /// The last instant of the period (end of its last day, UTC): what the
    /// mapping tables and the audit log are cut at.
    pub fn end_instant(&self) -> DateTime<Utc> {
        (self.end() + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
            - Duration::nanoseconds(1)
    }

    pub fn start_instant(&self) -> DateTime<Utc> {
        self.start
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        date >= self.start && date <= self.end()
    }

    /// `2026-03` or `2026-W10`.
    pub fn label(&self) -> String {
        match self.kind {
            PeriodKind::Month => format!("{:04}-{:02}", self.start.year(), self.start.month()),
            PeriodKind::Week => {
                let w = self.start.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
        }
    }

    /// Parse a label (`2026-03`, `2026-W10`).
    pub fn parse(label: &str) -> Result<Self, ArchiveError> {
        let bad =
            || ArchiveError::Input(format!("`{label}` is not a period (2026-03 or 2026-W10)"));
        if let Some((y, w)) = label.split_once("-W") {
            let (y, w) = (y.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
            let start = NaiveDate::from_isoywd_opt(y, w, chrono::Weekday::Mon).ok_or_else(bad)?;
            return Ok(Self {
                start,
                kind: PeriodKind::Week,
            });
        }
        let (y, m) = label.split_once('-').ok_or_else(bad)?;
        if m.len() != 2 {
            return Err(bad());
        }
        let start = NaiveDate::from_ymd_opt(
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            1,
        )
        .ok_or_else(bad)?;
        Ok(Self {
            start,
            kind: PeriodKind::Month,
        })
    }
}

/// The JSON Lines files of a snapshot (each `<name>.jsonl.gz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Every entry with its final state, reason, posted lines, record refs.
    Entries,
    /// Every version of those entries as received (normalised), oldest
    /// first per entry (format 1.1 on).
    EntryVersions,
    /// The posting journal records of those entries.
    Journal,
    /// Their write-ahead intents still open.
    Intents,
    /// The lines the books held for them (the ledger's read-back).
    LedgerRecords,
    /// Each entry's tracker approval and the version a manager approved.
    Approvals,
    /// Mapping change proposals (who proposed, who approved or rejected).
    Proposals,
    /// Audit records of the period.
    Audit,
    /// The mapping tables as they stood at the period's end.
    Mappings,
    /// The mapping change log up to the period's end.
    MappingChanges,
    /// Entries that were exceptions or held, and how each was resolved.
    Exceptions,
    /// Dead-lettered messages about the entries.
    DeadLetters,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Entries,
        Kind::EntryVersions,
        Kind::Journal,
        Kind::Intents,
        Kind::LedgerRecords,
        Kind::Approvals,
        Kind::Proposals,
        Kind::Audit,
        Kind::Mappings,
        Kind::MappingChanges,
        Kind::Exceptions,
        Kind::DeadLetters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Entries => "entries",
            Kind::EntryVersions => "entry_versions",
            Kind::Journal => "journal",
            Kind::Intents => "intents",
            Kind::LedgerRecords => "ledger_records",
            Kind::Approvals => "approvals",
            Kind::Proposals => "proposals",
            Kind::Audit => "audit",
            Kind::Mappings => "mappings",
            Kind::MappingChanges => "mapping_changes",
            Kind::Exceptions => "exceptions",
            Kind::DeadLetters => "dead_letters",
        }
    }

    pub fn file(self) -> String {
        format!("{}.jsonl.gz", self.name())
    }
}

/// The other files of a snapshot.
pub const RULES_FILE: &str = "rules.toml";
pub const REPORT_FILE: &str = "report.json";
pub const ENTRIES_CSV: &str = "entries.csv";
pub const LINES_CSV: &str = "posted_lines.csv";

/// One file of a snapshot as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub sha256: String,
    pub bytes: u64,
}

/// `manifest.json`: what a snapshot holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `timepost-archive`.
    pub format: String,
    pub format_version: u32,
    /// Additions within `format_version` (0 when absent: format 1.0 had
    /// no `format_minor`).
    #[serde(default)]
    pub format_minor: u32,
    /// The period label (`2026-03`, `2026-W10`), or `all` for a full export.
    pub period: String,
    /// `month`, `week` or `all`.
    pub period_kind: String,
    /// First and last work date covered (none for `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
    /// 1 for the first snapshot of the period, 2 for the next, ...
    pub revision: u32,
    pub created_at: DateTime<Utc>,
    /// Lines per JSON Lines file (by kind name).
    pub counts: BTreeMap<String, usize>,
    /// Every other file of the snapshot: its SHA-256 (hex) and size.
    pub files: BTreeMap<String, FileInfo>,
    /// The period archived before this one, and the SHA-256 of its
    /// manifest (the chain): a removed or altered period is detectable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_manifest_sha256: Option<String>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Values as gzip-compressed JSON Lines (one value per line). The gzip
/// header carries no time, so the same values give the same bytes.
pub fn jsonl_gz<T: Serialize>(values: &[T]) -> Result<Vec<u8>, ArchiveError> {
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    for v in values {
        serde_json::to_writer(&mut enc, v).map_err(|e| ArchiveError::Encode(e.to_string()))?;
        enc.write_all(b"\n")
            .map_err(|e| ArchiveError::Encode(e.to_string()))?;
    }
    enc.finish()
        .map_err(|e| ArchiveError::Encode(e.to_string()))
}

/// Read gzip'd JSON Lines back; `file` names the file in errors.
pub fn read_jsonl_gz<T: DeserializeOwned>(
    bytes: &[u8],
    file: &str,
) -> Result<Vec<T>, ArchiveError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| ArchiveError::Corrupt(format!("{file}: {e}")))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| ArchiveError::Corrupt(format!("{file}, line {}: {e}", i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_label_and_bound() {
        let m = Period::parse("2026-02").unwrap();
        assert_eq!(m.end(), NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
        assert_eq!(m.label(), "2026-02");
        let d = Period::parse("2025-12").unwrap();
        assert_eq!(d.end(), NaiveDate::from_ymd_opt(2025, 12, 31).unwrap());
        let w = Period::of(
            NaiveDate::from_ymd_opt(2026, 3, 4).unwrap(),
            PeriodKind::Week,
        );
        assert_eq!(w.label(), "2026-W10");
        assert_eq!(Period::parse("2026-W10").unwrap(), w);
        assert_eq!(w.end(), NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
        assert!(Period::parse("2026-3").is_err());
        assert!(Period::parse("march").is_err());
        assert!(m.end_instant() < Period::parse("2026-03").unwrap().start_instant());
    }

    #[test]
    fn jsonl_gz_round_trips_and_is_deterministic() {
        let v = vec![serde_json::json!({"a": 1}), serde_json::json!({"b": [2]})];
        let a = jsonl_gz(&v).unwrap();
        assert_eq!(a, jsonl_gz(&v).unwrap());
        let back: Vec<serde_json::Value> = read_jsonl_gz(&a, "x").unwrap();
        assert_eq!(back, v);
        let mut bad = a.clone();
        let n = bad.len();
        bad[n / 2] ^= 0xff;
        assert!(read_jsonl_gz::<serde_json::Value>(&bad, "x").is_err());
    }
}
