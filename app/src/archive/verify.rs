//! Check snapshots: every file re-hashed against its manifest, the
//! manifest against its recorded hash, files the manifest does not list,
//! and the chain of manifests from period to period (and, given the audit
//! log, every revision it says was written is still there).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::format::{self, Manifest};
use super::snapshot::{rev_prefix, stored};
use super::ArchiveError;
use crate::ports::{Archive, AuditRecord};

/// One thing wrong, naming the file (archive key) concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub key: String,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub period: String,
    pub revision: u32,
    pub files: usize,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub checked: Vec<Checked>,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Check the files of one snapshot under `prefix` against `manifest`:
/// the problems found.
pub async fn check_files(
    archive: &dyn Archive,
    prefix: &str,
    manifest_bytes: &[u8],
    manifest: &Manifest,
) -> Result<Vec<Problem>, ArchiveError> {
    let mut out = Vec::new();
    let msha = format::sha256_hex(manifest_bytes);
    let sha_key = format!("{prefix}{}", format::MANIFEST_SHA);
    match archive.get(&sha_key).await? {
        None => out.push(Problem {
            key: sha_key,
            what: "missing".into(),
        }),
        Some(b) if String::from_utf8_lossy(&b).trim() != msha => out.push(Problem {
            key: format!("{prefix}{}", format::MANIFEST),
            what: "differs from its recorded hash".into(),
        }),
        Some(_) => {}
    }
    if manifest.format != format::FORMAT || manifest.format_version > format::FORMAT_VERSION {
        out.push(Problem {
            key: format!("{prefix}{}", format::MANIFEST),
            what: format!(
                "format {} version {} is not one this timepost reads",
                manifest.format, manifest.format_version
            ),
        });
    }
    for (name, info) in &manifest.files {
        let key = format!("{prefix}{name}");
        match archive.get(&key).await? {
            None => out.push(Problem {
                key,
                what: "missing".into(),
            }),
            Some(b) if format::sha256_hex(&b) != info.sha256 => out.push(Problem {
                key,
                what: "differs from its manifest hash".into(),
            }),
            Some(_) => {}
        }
    }
    for key in archive.list(prefix).await? {
        let name = &key[prefix.len()..];
        if name != format::MANIFEST
            && name != format::MANIFEST_SHA
            && !manifest.files.contains_key(name)
        {
            out.push(Problem {
                key,
                what: "not listed in the manifest".into(),
            });
        }
    }
    Ok(out)
}

/// Verify every snapshot (or those of one period). `audit`, when given,
/// is the audit log: a revision it records as written must still exist.
pub async fn verify(
    archive: &dyn Archive,
    period: Option<&str>,
) -> Result<VerifyReport, ArchiveError> {
    verify_with(archive, period, &[]).await
}

pub async fn verify_with(
    archive: &dyn Archive,
    period: Option<&str>,
    audit: &[AuditRecord],
) -> Result<VerifyReport, ArchiveError> {
    let all = stored(archive).await?;
    let mut report = VerifyReport::default();
    let by_period: BTreeMap<&str, Vec<&super::snapshot::Stored>> =
        all.iter().fold(BTreeMap::new(), |mut m, s| {
            m.entry(s.period.as_str()).or_default().push(s);
            m
        });
    for s in all.iter().filter(|s| period.is_none_or(|p| p == s.period)) {
        let prefix = rev_prefix(&s.period, s.revision);
        let mkey = format!("{prefix}{}", format::MANIFEST);
        let mut problems = Vec::new();
        let mut files = 0;
        match (archive.get(&mkey).await?, &s.manifest) {
            (None, _) => problems.push(Problem {
                key: mkey,
                what: "missing".into(),
            }),
            (Some(_), None) => problems.push(Problem {
                key: mkey,
                what: "cannot be read as a manifest".into(),
            }),
            (Some(bytes), Some(m)) => {
                files = m.files.len();
                problems.extend(check_files(archive, &prefix, &bytes, m).await?);
                if m.period != s.period || m.revision != s.revision {
                    problems.push(Problem {
                        key: mkey.clone(),
                        what: format!(
                            "names period {} revision {}, but is stored as {} revision {}",
                            m.period, m.revision, s.period, s.revision
                        ),
                    });
                }
                if let (Some(pp), Some(psha)) = (&m.previous_period, &m.previous_manifest_sha256) {
                    match by_period.get(pp.as_str()) {
                        None => problems.push(Problem {
                            key: format!("{}{pp}/", format::SNAPSHOTS),
                            what: format!("missing: period {} chains to it", s.period),
                        }),
                        Some(revs) if !revs.iter().any(|r| &r.manifest_sha256 == psha) => {
                            problems.push(Problem {
                                key: format!("{}{pp}/", format::SNAPSHOTS),
                                what: format!(
                                    "altered: no revision's manifest has the hash period {} chains to",
                                    s.period
                                ),
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        report.checked.push(Checked {
            period: s.period.clone(),
            revision: s.revision,
            files,
            ok: problems.is_empty(),
        });
        report.problems.extend(problems);
    }
    // Revisions the audit log says were written must still be there.
    let have: BTreeSet<(String, u32)> =
        all.iter().map(|s| (s.period.clone(), s.revision)).collect();
    for r in audit.iter().filter(|r| r.action == "archive.written") {
        let Some((p, n)) = written_of(&r.detail) else {
            continue;
        };
        if period.is_some_and(|x| x != p) || have.contains(&(p.clone(), n)) {
            continue;
        }
        report.problems.push(Problem {
            key: rev_prefix(&p, n),
            what: format!("missing: the audit log records it written at {}", r.at),
        });
    }
    Ok(report)
}

/// `period P: revision N written ...` → (P, N).
fn written_of(detail: &str) -> Option<(String, u32)> {
    let rest = detail.strip_prefix("period ")?;
    let (p, rest) = rest.split_once(": revision ")?;
    let n = rest.split_whitespace().next()?.parse().ok()?;
    Some((p.to_string(), n))
}

/// Check a bundle written by `export --all` (files at the root of `archive`).
pub async fn verify_bundle(
    archive: &dyn Archive,
) -> Result<(Manifest, Vec<Problem>), ArchiveError> {
    let bytes = archive
        .get(format::MANIFEST)
        .await?
        .ok_or_else(|| ArchiveError::Input(format!("no {} in the bundle", format::MANIFEST)))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::Corrupt(format!("{}: {e}", format::MANIFEST)))?;
    let problems = check_files(archive, "", &bytes, &manifest).await?;
    Ok((manifest, problems))
}
