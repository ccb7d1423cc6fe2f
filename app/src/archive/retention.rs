//! `[retention]`: how periods are cut, when a period may be archived, how
//! long snapshots are kept and live entries stay, legal hold; which
//! snapshots are past their retention (listed, never deleted) and the
//! purge of live data of archived periods.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::format::{self, Kind, Period};
use super::snapshot::{rev_prefix, stored};
use super::ArchiveError;
use crate::model::EntryKey;
use crate::ports::{Archive, AuditLog, EntryStore, Journal, StoreResult};
use crate::state::{EntryState, Status};

pub use crate::config::retention::RetentionConfig;

impl RetentionConfig {
    /// The first day a snapshot of `period` is past its retention.
    pub fn expires(&self, period: &Period) -> NaiveDate {
        let end = period.end();
        let y = end.year().saturating_add(self.keep_years as i32);
        end.with_year(y)
            .or_else(|| NaiveDate::from_ymd_opt(y, end.month(), 28))
            .unwrap_or(NaiveDate::MAX)
            .succ_opt()
            .unwrap_or(NaiveDate::MAX)
    }
}

/// An entry a purge must keep whatever its period: still open (held, an
/// exception, awaiting approval).
pub fn is_open(s: &EntryState) -> bool {
    matches!(
        s.status(),
        Status::Held | Status::Exception | Status::AwaitingApproval
    )
}

/// A store whose archived entries can be removed (the local store).
#[async_trait]
pub trait PurgeStore: Send + Sync {
    /// Remove these entries, their journal records and their closed
    /// intents, in one transaction; returns how many entries went.
    async fn purge_entries(&self, keys: &[EntryKey]) -> StoreResult<usize>;
}

/// One archived snapshot as `archive list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub period: String,
    pub revision: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    pub counts: BTreeMap<String, usize>,
    pub bytes: u64,
    pub manifest_sha256: String,
    /// When its retention ends (`keep_years` after the period's end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<NaiveDate>,
    /// Past its retention: listed for deletion (never deleted here).
    pub expired: bool,
    /// Its live entries were purged (when, and how many).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged: Option<PurgeRecord>,
}

/// `purges/<period>.json`: the record of a purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRecord {
    pub period: String,
    pub revision: u32,
    pub manifest_sha256: String,
    pub entries: usize,
    pub at: DateTime<Utc>,
}

/// Every stored revision, with its retention.
pub async fn list(
    archive: &dyn Archive,
    retention: &RetentionConfig,
    today: NaiveDate,
) -> Result<Vec<Listed>, ArchiveError> {
    let mut out = Vec::new();
    for s in stored(archive).await? {
        let period = Period::parse(&s.period).ok();
        let expires = period.map(|p| retention.expires(&p));
        let purged = match archive
            .get(&format!("{}{}.json", format::PURGES, s.period))
            .await?
        {
            Some(b) => serde_json::from_slice::<PurgeRecord>(&b)
                .ok()
                .filter(|r| r.revision == s.revision),
            None => None,
        };
        out.push(Listed {
            revision: s.revision,
            created_at: s.manifest.as_ref().map(|m| m.created_at),
            counts: s
                .manifest
                .as_ref()
                .map(|m| m.counts.clone())
                .unwrap_or_default(),
            bytes: s
                .manifest
                .as_ref()
                .map(|m| m.files.values().map(|f| f.bytes).sum())
                .unwrap_or(0),
            manifest_sha256: s.manifest_sha256,
            expired: !retention.legal_hold && expires.is_some_and(|e| today >= e),
            expires,
            purged,
            period: s.period,
        });
    }
    Ok(out)
}

/// What a purge removes (or would, with `--dry-run`) per period.
#[derive(Debug, Clone, Serialize)]
pub struct PurgePeriod {
    pub period: String,
    pub revision: u32,
    /// Entries to remove (all of the period's: verified in the snapshot,
    /// unchanged since, none open).
    pub entries: usize,
    /// Why nothing of this period is removed, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
    #[serde(skip)]
    keys: Vec<EntryKey>,
    #[serde(skip)]
    manifest_sha256: String,
}

/// The purge plan: for each archived period past `live_days`, either all
/// its live entries (each unchanged since the verified snapshot, none
/// open, no open intent) or nothing, with the reason.
pub async fn plan(
    entries: &dyn EntryStore,
    journal: &dyn Journal,
    archive: &dyn Archive,
    retention: &RetentionConfig,
    today: NaiveDate,
) -> Result<Vec<PurgePeriod>, ArchiveError> {
    let Some(live_days) = retention.live_days else {
        return Ok(vec![]);
    };
    let all = stored(archive).await?;
    let mut latest: BTreeMap<String, &super::snapshot::Stored> = BTreeMap::new();
    for s in &all {
        latest.insert(s.period.clone(), s);
    }
    let mut out = Vec::new();
    for (label, s) in latest {
        let Ok(period) = Period::parse(&label) else {
            continue;
        };
        if today <= period.end() + chrono::Duration::days(i64::from(live_days)) {
            continue;
        }
        let mut p = PurgePeriod {
            period: label.clone(),
            revision: s.revision,
            entries: 0,
            kept_because: None,
            keys: vec![],
            manifest_sha256: s.manifest_sha256.clone(),
        };
        // The period's live entries, read over the period index (those
        // worked in it; an entry worked elsewhere with lines booked in it
        // belongs to its own work date's period).
        let in_period: Vec<EntryState> =
            crate::ports::period_states(entries, period.start, period.end())
                .await?
                .into_iter()
                .filter(|st| period.contains(st.entry.work_date))
                .collect();
        if in_period.is_empty() {
            continue;
        }
        if retention.legal_hold {
            p.kept_because = Some("legal hold".into());
            out.push(p);
            continue;
        }
        // Read the snapshot back and check it before trusting it.
        let check = super::verify::verify(archive, Some(&label)).await?;
        let problems: Vec<String> = check
            .problems
            .iter()
            .filter(|x| x.key.starts_with(&rev_prefix(&label, s.revision)))
            .map(|x| format!("{}: {}", x.key, x.what))
            .collect();
        if !problems.is_empty() {
            p.kept_because = Some(format!(
                "its snapshot failed verification: {}",
                problems.join("; ")
            ));
            out.push(p);
            continue;
        }
        let key = format!("{}{}", rev_prefix(&label, s.revision), Kind::Entries.file());
        let bytes = archive
            .get(&key)
            .await?
            .ok_or_else(|| ArchiveError::Corrupt(format!("{key}: missing")))?;
        let archived: Vec<EntryState> = format::read_jsonl_gz(&bytes, &key)?;
        let archived: BTreeMap<String, EntryState> = archived
            .into_iter()
            .map(|a| (a.entry.key.to_string(), a))
            .collect();
        let mut open = 0;
        let mut changed = 0;
        let mut intents = 0;
        for st in &in_period {
            if is_open(st) {
                open += 1;
            } else if archived.get(&st.entry.key.to_string()) != Some(st) {
                changed += 1;
            } else if !journal.open_intents(&st.entry.key).await?.is_empty() {
                intents += 1;
            }
        }
        if open + changed + intents > 0 {
            let mut why = Vec::new();
            if open > 0 {
                why.push(format!(
                    "{open} entries still open (held, exception or awaiting approval)"
                ));
            }
            if intents > 0 {
                why.push(format!("{intents} entries with open intents"));
            }
            if changed > 0 {
                why.push(format!(
                    "{changed} entries changed or arrived since revision {} (run `timepost archive run` first)",
                    s.revision
                ));
            }
            p.kept_because = Some(why.join(", "));
        } else {
            p.keys = in_period.iter().map(|st| st.entry.key.clone()).collect();
            p.entries = p.keys.len();
        }
        out.push(p);
    }
    Ok(out)
}

/// Carry out a plan: remove each period's entries, record the purge
/// beside the snapshots and in the audit log.
pub async fn purge(
    plan: &[PurgePeriod],
    store: &dyn PurgeStore,
    archive: &dyn Archive,
    audit: &dyn AuditLog,
    now: DateTime<Utc>,
) -> Result<usize, ArchiveError> {
    let mut total = 0;
    for p in plan
        .iter()
        .filter(|p| p.kept_because.is_none() && !p.keys.is_empty())
    {
        let n = store.purge_entries(&p.keys).await?;
        total += n;
        let record = PurgeRecord {
            period: p.period.clone(),
            revision: p.revision,
            manifest_sha256: p.manifest_sha256.clone(),
            entries: n,
            at: now,
        };
        let bytes =
            serde_json::to_vec_pretty(&record).map_err(|e| ArchiveError::Encode(e.to_string()))?;
        archive
            .put(&format!("{}{}.json", format::PURGES, p.period), bytes)
            .await?;
        audit
            .record(super::snapshot::audit(
                now,
                "archive.purged",
                format!(
                    "period {}: {n} entries removed from the live store after revision {} (manifest sha256 {}) was read back and verified",
                    p.period, p.revision, p.manifest_sha256
                ),
            ))
            .await?;
    }
    Ok(total)
}
