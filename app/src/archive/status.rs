//! What the console's Archives page and `/api/archives` show of each
//! stored snapshot: `archive list`'s row (counts, bytes, manifest hash,
//! retention, purge), the storage class its manifest is kept in, and the
//! last verification recorded in the audit log; and the audited verify
//! action itself ([`verify_as`]), which runs the checks `timepost archive
//! verify` runs.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::format::{self, FileInfo};
use super::retention::{self, Listed, RetentionConfig};
use super::snapshot::{all_audit, rev_prefix, stored};
use super::verify::{verify_with, VerifyReport};
use super::ArchiveError;
use crate::ports::{Archive, AuditLog, AuditRecord};

/// The audit action of a verification (one record per revision checked).
pub const VERIFIED: &str = "archive.verified";

/// How many of the newest audit records are searched for the last
/// verification of each revision.
pub const VERIFY_SCAN: usize = 5_000;

/// One verification, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastVerify {
    pub at: DateTime<Utc>,
    pub who: String,
    pub ok: bool,
    /// `ok (N files)` or the problems found, as recorded.
    pub detail: String,
}

/// How cold a storage class is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Temperature {
    /// A local directory, or S3 Standard / Intelligent-Tiering's frequent
    /// tier: read at once, no retrieval fee.
    Hot,
    /// S3 Glacier Instant Retrieval (what the template's lifecycle rule
    /// moves snapshots to): read at once, with a per-GB retrieval fee.
    ColdInstant,
    /// A class whose objects must be restored before they can be read
    /// (Glacier Flexible Retrieval, Deep Archive). The template never moves
    /// snapshots there; a bucket rule added by hand could.
    ColdRestoreFirst,
}

/// The temperature of an S3 storage class name (None: a local directory).
/// Classes from
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-class-intro.html>.
pub fn temperature(class: Option<&str>) -> Temperature {
    match class {
        Some("GLACIER_IR") => Temperature::ColdInstant,
        Some("GLACIER") | Some("DEEP_ARCHIVE") => Temperature::ColdRestoreFirst,
        _ => Temperature::Hot,
    }
}

/// One stored revision with everything the Archives page shows.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveRow {
    #[serde(flatten)]
    pub listed: Listed,
    /// Where the snapshot's largest file is kept: an S3 storage class, or
    /// None for a local directory.
    pub storage_class: Option<String>,
    pub temperature: Temperature,
    /// The files of the snapshot (name → SHA-256 and size), the manifest
    /// and its hash file besides.
    pub files: BTreeMap<String, FileInfo>,
    /// The newest recorded verification of this revision, if any among
    /// the newest [`VERIFY_SCAN`] audit records.
    pub last_verify: Option<LastVerify>,
}

/// `period P revision N: ...` → (P, N, the rest).
fn verified_of(detail: &str) -> Option<(String, u32, &str)> {
    let rest = detail.strip_prefix("period ")?;
    let (p, rest) = rest.split_once(" revision ")?;
    let (n, rest) = rest.split_once(": ")?;
    Some((p.to_string(), n.parse().ok()?, rest))
}

/// The newest verification of each (period, revision) in `recent`
/// (newest first, as [`AuditLog::recent`] returns them).
pub fn last_verifications(recent: &[AuditRecord]) -> BTreeMap<(String, u32), LastVerify> {
    let mut out = BTreeMap::new();
    for r in recent.iter().filter(|r| r.action == VERIFIED) {
        let Some((p, n, rest)) = verified_of(&r.detail) else {
            continue;
        };
        out.entry((p, n)).or_insert_with(|| LastVerify {
            at: r.at,
            who: r.who.clone(),
            ok: rest.starts_with("ok"),
            detail: rest.to_string(),
        });
    }
    out
}

/// The file whose storage class a row shows: the snapshot's largest (S3
/// lifecycle rules leave objects under 128 KB in Standard by default, so a
/// manifest would stay there while the data moves), or the manifest.
fn largest(files: &BTreeMap<String, FileInfo>) -> &str {
    files
        .iter()
        .max_by_key(|(name, f)| (f.bytes, std::cmp::Reverse(name.as_str())))
        .map(|(name, _)| name.as_str())
        .unwrap_or(format::MANIFEST)
}

/// Every stored revision (oldest period first) with its storage class
/// (of its largest file) and last verification.
pub async fn rows(
    archive: &dyn Archive,
    audit: &dyn AuditLog,
    retention: &RetentionConfig,
    today: NaiveDate,
) -> Result<Vec<ArchiveRow>, ArchiveError> {
    let listed = retention::list(archive, retention, today).await?;
    let manifests: BTreeMap<(String, u32), BTreeMap<String, FileInfo>> = stored(archive)
        .await?
        .into_iter()
        .map(|s| {
            let files = s.manifest.map(|m| m.files).unwrap_or_default();
            ((s.period, s.revision), files)
        })
        .collect();
    let verified = last_verifications(&audit.recent(VERIFY_SCAN).await?);
    let mut out = Vec::with_capacity(listed.len());
    for l in listed {
        let key = (l.period.clone(), l.revision);
        let prefix = rev_prefix(&l.period, l.revision);
        let files = manifests.get(&key).cloned().unwrap_or_default();
        let storage_class = archive
            .storage_class(&format!("{prefix}{}", largest(&files)))
            .await?;
        out.push(ArchiveRow {
            temperature: temperature(storage_class.as_deref()),
            storage_class,
            files,
            last_verify: verified.get(&key).cloned(),
            listed: l,
        });
    }
    Ok(out)
}

/// The problems of `report` that concern revision `revision` of `period`:
/// its own files, and the chain it links to.
fn problems_of(report: &VerifyReport, period: &str, revision: u32) -> Vec<String> {
    let prefix = rev_prefix(period, revision);
    let chain = format!("period {period} chains");
    report
        .problems
        .iter()
        .filter(|p| p.key.starts_with(&prefix) || p.what.contains(&chain))
        .map(|p| format!("{}: {}", p.key, p.what))
        .collect()
}

/// Verify every snapshot (or one period's) as `timepost archive verify`
/// does (files, manifests, the chain, revisions the audit log says were
/// written), and record one `archive.verified` audit record per revision
/// checked, as `who` with `role`.
pub async fn verify_as(
    archive: &dyn Archive,
    audit: &dyn AuditLog,
    period: Option<&str>,
    who: &str,
    role: &str,
) -> Result<VerifyReport, ArchiveError> {
    let log = all_audit(audit).await?;
    let report = verify_with(archive, period, &log).await?;
    for c in &report.checked {
        let problems = problems_of(&report, &c.period, c.revision);
        let detail = if problems.is_empty() {
            format!(
                "period {} revision {}: ok ({} files re-hashed)",
                c.period, c.revision, c.files
            )
        } else {
            format!(
                "period {} revision {}: FAILED: {}",
                c.period,
                c.revision,
                problems.join("; ")
            )
        };
        audit
            .record(AuditRecord {
                seq: 0,
                at: Utc::now(),
                who: who.to_string(),
                role: role.to_string(),
                action: VERIFIED.to_string(),
                entry: None,
                detail,
            })
            .await?;
    }
    Ok(report)
}

/// Whether `name` is a file of the snapshot under `prefix` a reader may
/// download: listed in its manifest, or the manifest and its hash.
pub async fn snapshot_file(
    archive: &dyn Archive,
    period: &str,
    revision: u32,
    name: &str,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let prefix = rev_prefix(period, revision);
    let Some(m) = stored(archive)
        .await?
        .into_iter()
        .find(|s| s.period == period && s.revision == revision)
    else {
        return Ok(None);
    };
    let listed = name == format::MANIFEST
        || name == format::MANIFEST_SHA
        || m.manifest.is_some_and(|m| m.files.contains_key(name));
    if !listed {
        return Ok(None);
    }
    Ok(archive.get(&format!("{prefix}{name}")).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: &str, detail: &str, who: &str) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at: Utc::now(),
            who: who.into(),
            role: "auditor".into(),
            action: action.into(),
            entry: None,
            detail: detail.into(),
        }
    }

    #[test]
    fn the_newest_verification_of_each_revision_wins() {
        let recent = vec![
            rec(
                VERIFIED,
                "period 2026-03 revision 2: FAILED: x: missing",
                "b",
            ),
            rec(
                VERIFIED,
                "period 2026-03 revision 2: ok (15 files re-hashed)",
                "a",
            ),
            rec(
                VERIFIED,
                "period 2026-03 revision 1: ok (15 files re-hashed)",
                "a",
            ),
            rec("archive.written", "period 2026-04: revision 1 written", "x"),
            rec(VERIFIED, "garbage", "c"),
        ];
        let v = last_verifications(&recent);
        assert_eq!(v.len(), 2);
        let r2 = &v[&("2026-03".to_string(), 2)];
        assert!(!r2.ok);
        assert_eq!(r2.who, "b");
        assert!(v[&("2026-03".to_string(), 1)].ok);
    }

    #[test]
    fn storage_classes_have_a_temperature() {
        assert_eq!(temperature(None), Temperature::Hot);
        assert_eq!(temperature(Some("STANDARD")), Temperature::Hot);
        assert_eq!(temperature(Some("GLACIER_IR")), Temperature::ColdInstant);
        assert_eq!(
            temperature(Some("DEEP_ARCHIVE")),
            Temperature::ColdRestoreFirst
        );
    }
}
