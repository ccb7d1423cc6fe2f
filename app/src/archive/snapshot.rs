//! Collect a period (or everything the store holds) into snapshot files,
//! and write period snapshots as revisions that are never overwritten.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::format::{self, FileInfo, Kind, Manifest, Period, PeriodKind};
use super::ArchiveError;
use crate::exceptions::Exception;
use crate::mapping::{MappingChange, MappingRow, Mappings};
use crate::model::ApprovalStatus;
use crate::ports::{
    Archive, AuditLog, AuditRecord, DeadLetter, EntryStore, Journal, MappingStore, PendingChanges,
    Queue, QueueMessage,
};
use crate::state::{EntryState, Status};
use timepost_core::ledger::{Ledger, PostingLine};

/// The ports a snapshot is read from (a local or a deployed stack's).
pub struct Sources<'a> {
    pub entries: &'a dyn EntryStore,
    pub journal: &'a dyn Journal,
    pub mappings: &'a dyn MappingStore,
    pub audit: &'a dyn AuditLog,
    pub pending: &'a dyn PendingChanges,
    pub queue: &'a dyn Queue,
    pub ledger: &'a dyn Ledger,
    /// The rules config in force, as TOML ([`rules_toml`]).
    pub rules_toml: String,
}

/// The `[rules]` table of a config as TOML text (what a snapshot keeps).
pub fn rules_toml(config: &crate::config::Config) -> Result<String, ArchiveError> {
    #[derive(Serialize)]
    struct Doc<'a> {
        rules: &'a crate::rules::Rules,
    }
    toml::to_string(&Doc {
        rules: &config.rules,
    })
    .map_err(|e| ArchiveError::Encode(format!("rules config: {e}")))
}

/// What to collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The entries whose work date is in the period, and what concerns them.
    Period(Period),
    /// Everything the store holds (`timepost export --all`).
    All,
}

/// One line of `ledger_records.jsonl.gz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLine {
    pub entry: String,
    pub line: PostingLine,
}

/// One line of `approvals.jsonl.gz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalLine {
    pub entry: String,
    /// The tracker's approval status of the current version.
    pub tracker_status: ApprovalStatus,
    /// The content hash of the version a manager approved last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_hash: Option<String>,
}

/// One line of `exceptions.jsonl.gz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionLine {
    pub entry: String,
    /// Where the entry stands now.
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Exception>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// `open`, `posted`, `voided`, `awaiting_approval` or `ignored`
    /// (discarded or nothing to post).
    pub resolution: String,
}

/// The files of one snapshot, before they are written.
pub struct Snapshot {
    pub scope: Scope,
    /// File name → bytes (every file but the manifest).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Lines per JSON Lines kind.
    pub counts: BTreeMap<String, usize>,
    /// The entries collected (what a purge may remove).
    pub states: Vec<EntryState>,
}

impl Snapshot {
    pub fn bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }

    /// The manifest for these files.
    pub fn manifest(
        &self,
        revision: u32,
        created_at: DateTime<Utc>,
        previous: Option<(String, String)>,
    ) -> Manifest {
        let (period, kind, from, to) = match self.scope {
            Scope::Period(p) => (
                p.label(),
                match p.kind {
                    PeriodKind::Month => "month",
                    PeriodKind::Week => "week",
                },
                Some(p.start),
                Some(p.end()),
            ),
            Scope::All => ("all".to_string(), "all", None, None),
        };
        let (previous_period, previous_manifest_sha256) = previous.unzip();
        Manifest {
            format: format::FORMAT.into(),
            format_version: format::FORMAT_VERSION,
            format_minor: format::FORMAT_MINOR,
            period,
            period_kind: kind.into(),
            from,
            to,
            revision,
            created_at,
            counts: self.counts.clone(),
            files: self.file_infos(),
            previous_period,
            previous_manifest_sha256,
        }
    }

    pub fn file_infos(&self) -> BTreeMap<String, FileInfo> {
        self.files
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    FileInfo {
                        sha256: format::sha256_hex(v),
                        bytes: v.len() as u64,
                    },
                )
            })
            .collect()
    }
}

/// The report of a set of entries as `timepost status` computes it on a
/// store holding just them (a fresh process: every counter zero).
pub fn report_of(
    ledger: &str,
    states: &[EntryState],
    ledger_lines: Option<&[(String, PostingLine)]>,
    dead_letters: usize,
) -> crate::report::Report {
    crate::report::build(crate::report::ReportInput {
        ledger,
        states,
        ledger_records: ledger_lines,
        duplicates: vec![],
        stale: vec![],
        counters: crate::engine::Counters::default().snapshot(),
        dead_letters,
    })
}

fn concerns(m: &QueueMessage, keys: &BTreeSet<String>, period: &Period) -> bool {
    match m {
        QueueMessage::Entry { entry, .. } => keys.contains(&entry.key.to_string()),
        QueueMessage::Redrive { key, .. } => keys.contains(&key.to_string()),
        QueueMessage::Approval { from, to, .. } => {
            (*from).min(*to) <= period.end() && (*from).max(*to) >= period.start
        }
    }
}

/// Every audit record, oldest first.
pub async fn all_audit(audit: &dyn AuditLog) -> Result<Vec<AuditRecord>, ArchiveError> {
    let mut all = audit.recent(10_000_000).await?;
    all.reverse();
    Ok(all)
}

/// The mapping tables as they stood at `at`, replayed from the change log.
pub fn mappings_at(log: &[MappingChange], at: DateTime<Utc>) -> Vec<MappingRow> {
    let mut m = Mappings::default();
    let upto: Vec<MappingChange> = log.iter().filter(|c| c.changed_at <= at).cloned().collect();
    crate::mapping::change::apply(&mut m, &upto);
    m.rows().into_iter().cloned().collect()
}

/// Collect the files of a snapshot.
pub async fn collect(src: &Sources<'_>, scope: Scope) -> Result<Snapshot, ArchiveError> {
    // A period's snapshot reads the period (`by_work_dates`), not the
    // store; `--all` reads everything.
    let states = match scope {
        Scope::Period(p) => {
            let mut v = crate::ports::period_states(src.entries, p.start, p.end()).await?;
            v.retain(|s| p.contains(s.entry.work_date));
            v.sort_by_cached_key(|s| s.entry.key.to_string());
            v
        }
        Scope::All => src.entries.all().await?,
    };
    let keys: BTreeSet<String> = states.iter().map(|s| s.entry.key.to_string()).collect();

    let mut journal = Vec::new();
    let mut intents = Vec::new();
    let mut versions = Vec::new();
    for s in &states {
        versions.extend(src.entries.versions(&s.entry.key).await?);
        journal.extend(src.journal.by_entry(&s.entry.key).await?);
        intents.extend(src.journal.open_intents(&s.entry.key).await?);
    }
    journal.sort_by_key(|r| r.seq);

    let read_back = src.ledger.read_back().await?;
    let ledger_pairs: Option<Vec<(String, PostingLine)>> = read_back.map(|recs| match scope {
        Scope::Period(_) => recs.into_iter().filter(|(k, _)| keys.contains(k)).collect(),
        Scope::All => recs,
    });
    let ledger_lines: Vec<LedgerLine> = ledger_pairs
        .iter()
        .flatten()
        .map(|(k, l)| LedgerLine {
            entry: k.clone(),
            line: l.clone(),
        })
        .collect();

    let approvals: Vec<ApprovalLine> = states
        .iter()
        .map(|s| ApprovalLine {
            entry: s.entry.key.to_string(),
            tracker_status: s.entry.approval,
            approved_hash: s.approved_hash.clone(),
        })
        .collect();

    let log = src.mappings.history(None, None).await?;
    let (rows, log) = match scope {
        Scope::Period(p) => {
            let end = p.end_instant();
            (
                mappings_at(&log, end),
                log.into_iter().filter(|c| c.changed_at <= end).collect(),
            )
        }
        Scope::All => {
            let snap = src.mappings.snapshot().await?;
            (snap.rows().into_iter().cloned().collect(), log)
        }
    };

    let mut proposals = src.pending.proposals(None).await?;
    proposals.sort_by_key(|p| p.id);
    let mut audit = all_audit(src.audit).await?;
    let mut dead: Vec<DeadLetter> = src.queue.dead_letters(1_000_000).await?;
    dead.sort_by(|a, b| (a.parked_at, &a.id).cmp(&(b.parked_at, &b.id)));
    if let Scope::Period(p) = scope {
        let (from, to) = (p.start_instant(), p.end_instant());
        proposals.retain(|x| x.change.changed_at <= to);
        audit.retain(|r| {
            (r.at >= from && r.at <= to) || r.entry.as_ref().is_some_and(|e| keys.contains(e))
        });
        dead.retain(|d| concerns(&d.message, &keys, &p));
    }

    let exceptions: Vec<ExceptionLine> = states
        .iter()
        .filter(|s| s.reason.is_some() || s.open_since.is_some())
        .map(|s| ExceptionLine {
            entry: s.entry.key.to_string(),
            status: s.status(),
            reason: s.reason.clone(),
            note: s.note.clone(),
            open_since: s.open_since,
            resolved_at: s.resolved_at,
            resolution: match s.status() {
                Status::Held | Status::Exception => "open",
                Status::Posted => "posted",
                Status::Voided => "voided",
                Status::AwaitingApproval => "awaiting_approval",
                Status::Ignored => "ignored",
            }
            .into(),
        })
        .collect();

    let report = report_of(
        src.ledger.name(),
        &states,
        ledger_pairs.as_deref(),
        dead.len(),
    );

    let mut files = BTreeMap::new();
    let mut counts = BTreeMap::new();
    let mut put = |kind: Kind, bytes: Vec<u8>, n: usize| {
        files.insert(kind.file(), bytes);
        counts.insert(kind.name().to_string(), n);
    };
    put(Kind::Entries, format::jsonl_gz(&states)?, states.len());
    put(
        Kind::EntryVersions,
        format::jsonl_gz(&versions)?,
        versions.len(),
    );
    put(Kind::Journal, format::jsonl_gz(&journal)?, journal.len());
    put(Kind::Intents, format::jsonl_gz(&intents)?, intents.len());
    put(
        Kind::LedgerRecords,
        format::jsonl_gz(&ledger_lines)?,
        ledger_lines.len(),
    );
    put(
        Kind::Approvals,
        format::jsonl_gz(&approvals)?,
        approvals.len(),
    );
    put(
        Kind::Proposals,
        format::jsonl_gz(&proposals)?,
        proposals.len(),
    );
    put(Kind::Audit, format::jsonl_gz(&audit)?, audit.len());
    put(Kind::Mappings, format::jsonl_gz(&rows)?, rows.len());
    put(Kind::MappingChanges, format::jsonl_gz(&log)?, log.len());
    put(
        Kind::Exceptions,
        format::jsonl_gz(&exceptions)?,
        exceptions.len(),
    );
    put(Kind::DeadLetters, format::jsonl_gz(&dead)?, dead.len());
    files.insert(
        format::RULES_FILE.to_string(),
        src.rules_toml.clone().into_bytes(),
    );
    let mut report_json =
        serde_json::to_vec_pretty(&report).map_err(|e| ArchiveError::Encode(e.to_string()))?;
    report_json.push(b'\n');
    files.insert(format::REPORT_FILE.to_string(), report_json);
    files.insert(format::ENTRIES_CSV.to_string(), entries_csv(&states)?);
    files.insert(format::LINES_CSV.to_string(), lines_csv(&states)?);
    Ok(Snapshot {
        scope,
        files,
        counts,
        states,
    })
}

fn csv_err(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Encode(format!("csv: {e}"))
}

/// `entries.csv`: one row per entry, for a person with a spreadsheet.
fn entries_csv(states: &[EntryState]) -> Result<Vec<u8>, ArchiveError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "entry",
        "worker",
        "email",
        "work_date",
        "hours",
        "project",
        "client",
        "billable",
        "status",
        "reason",
        "note",
        "posted_version",
        "ledger_records",
        "batch_id",
    ])
    .map_err(csv_err)?;
    for s in states {
        let e = &s.entry;
        let hours =
            rust_decimal::Decimal::from(e.duration_secs) / rust_decimal::Decimal::from(3600);
        w.write_record([
            e.key.to_string(),
            e.worker
                .name
                .clone()
                .unwrap_or_else(|| e.worker.tracker_user_id.clone()),
            e.worker.email.clone().unwrap_or_default(),
            e.work_date.to_string(),
            hours.round_dp(4).normalize().to_string(),
            e.project
                .as_ref()
                .map(|p| p.label().to_string())
                .unwrap_or_default(),
            e.client
                .as_ref()
                .map(|p| p.label().to_string())
                .unwrap_or_default(),
            e.billable.to_string(),
            s.status().to_string(),
            s.reason
                .as_ref()
                .map(|r| r.code.to_string())
                .unwrap_or_default(),
            s.note.clone().unwrap_or_default(),
            s.posted_version
                .as_ref()
                .map(|v| v.content_hash.clone())
                .unwrap_or_default(),
            s.records
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            s.batch_id.clone().unwrap_or_default(),
        ])
        .map_err(csv_err)?;
    }
    w.into_inner().map_err(csv_err)
}

/// `posted_lines.csv`: one row per line posted (what the books were sent).
fn lines_csv(states: &[EntryState]) -> Result<Vec<u8>, ArchiveError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "entry",
        "record",
        "tier",
        "party",
        "txn_date",
        "minutes",
        "account",
        "customer",
        "service_item",
        "class",
        "billable",
        "hourly_rate",
        "currency",
        "description",
    ])
    .map_err(csv_err)?;
    for s in states {
        for (i, l) in s.posted_lines.iter().enumerate() {
            let party = match &l.party {
                timepost_core::ledger::Party::Employee { id } => format!("employee {id}"),
                timepost_core::ledger::Party::Vendor { id, .. } => format!("vendor {id}"),
            };
            w.write_record([
                s.entry.key.to_string(),
                s.records.get(i).map(|r| r.id.clone()).unwrap_or_default(),
                l.tier.clone(),
                party,
                l.txn_date.to_string(),
                l.minutes.to_string(),
                l.account.clone(),
                l.customer.clone().unwrap_or_default(),
                l.service_item.clone().unwrap_or_default(),
                l.class.clone().unwrap_or_default(),
                l.billable.to_string(),
                l.hourly_rate
                    .as_ref()
                    .map(|m| m.amount.to_string())
                    .unwrap_or_default(),
                l.hourly_rate
                    .as_ref()
                    .map(|m| m.currency.to_string())
                    .unwrap_or_default(),
                l.description.clone(),
            ])
            .map_err(csv_err)?;
        }
    }
    w.into_inner().map_err(csv_err)
}

/// The archive key prefix of one revision of a period.
pub fn rev_prefix(period: &str, revision: u32) -> String {
    format!("{}{period}/rev-{revision}/", format::SNAPSHOTS)
}

/// One stored revision: its period label, number and manifest.
#[derive(Debug, Clone)]
pub struct Stored {
    pub period: String,
    pub revision: u32,
    pub manifest_sha256: String,
    pub manifest: Option<Manifest>,
}

/// Every `(period, revision)` directory in the archive, in order, with
/// its manifest when it can be read.
pub async fn stored(archive: &dyn Archive) -> Result<Vec<Stored>, ArchiveError> {
    let keys = archive.list(format::SNAPSHOTS).await?;
    let mut revs: BTreeSet<(String, u32)> = BTreeSet::new();
    for k in &keys {
        let rest = &k[format::SNAPSHOTS.len()..];
        let mut parts = rest.splitn(3, '/');
        let (Some(p), Some(r)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let Some(n) = r.strip_prefix("rev-").and_then(|n| n.parse().ok()) {
            revs.insert((p.to_string(), n));
        }
    }
    let mut out = Vec::new();
    for (period, revision) in revs {
        let key = format!("{}{}", rev_prefix(&period, revision), format::MANIFEST);
        let bytes = archive.get(&key).await?;
        let manifest_sha256 = bytes.as_deref().map(format::sha256_hex).unwrap_or_default();
        let manifest = bytes.and_then(|b| serde_json::from_slice(&b).ok());
        out.push(Stored {
            period,
            revision,
            manifest_sha256,
            manifest,
        });
    }
    out.sort_by(|a, b| {
        let pa = Period::parse(&a.period).ok();
        let pb = Period::parse(&b.period).ok();
        (pa.map(|p| p.start), &a.period, a.revision).cmp(&(
            pb.map(|p| p.start),
            &b.period,
            b.revision,
        ))
    });
    Ok(out)
}

/// What `archive run` did for one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// A new revision was written.
    Written {
        revision: u32,
        entries: usize,
        bytes: usize,
        manifest_sha256: String,
    },
    /// The period is archived and nothing changed since: nothing written.
    Unchanged { revision: u32 },
    /// Its live data was purged after archiving: the snapshot stands.
    Purged { revision: u32 },
    /// Still inside the grace window (until the given date).
    InGrace { until: NaiveDate },
}

#[derive(Debug, Clone, Serialize)]
pub struct PeriodRun {
    pub period: String,
    #[serde(flatten)]
    pub outcome: RunOutcome,
}

/// Who runs the archive (the audit log's `who`).
pub const ARCHIVER: &str = "archiver";

/// Archive one period: write a new revision unless the newest one holds
/// the same files. Both outcomes are audited.
pub async fn archive_period(
    src: &Sources<'_>,
    archive: &dyn Archive,
    period: Period,
    retention: &super::RetentionConfig,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<PeriodRun, ArchiveError> {
    let label = period.label();
    let until = period.end() + chrono::Duration::days(i64::from(retention.grace_days));
    if today <= until {
        return Ok(PeriodRun {
            period: label,
            outcome: RunOutcome::InGrace { until },
        });
    }
    let all = stored(archive).await?;
    let latest = all
        .iter()
        .filter(|s| s.period == label)
        .max_by_key(|s| s.revision);
    if let Some(l) = latest {
        if archive
            .get(&format!("{}{label}.json", format::PURGES))
            .await?
            .is_some()
        {
            return Ok(PeriodRun {
                period: label,
                outcome: RunOutcome::Purged {
                    revision: l.revision,
                },
            });
        }
    }
    let snap = collect(src, Scope::Period(period)).await?;
    if let Some(l) = latest {
        if l.manifest.as_ref().map(|m| &m.files) == Some(&snap.file_infos()) {
            src.audit
                .record(audit(
                    now,
                    "archive.unchanged",
                    format!(
                        "period {label}: unchanged since revision {}; nothing written",
                        l.revision
                    ),
                ))
                .await?;
            return Ok(PeriodRun {
                period: label,
                outcome: RunOutcome::Unchanged {
                    revision: l.revision,
                },
            });
        }
    }
    let revision = latest.map(|l| l.revision + 1).unwrap_or(1);
    // The chain: the newest revision of the period archived before this one.
    let previous = all
        .iter()
        .filter(|s| {
            Period::parse(&s.period)
                .map(|p| p.start < period.start)
                .unwrap_or(false)
        })
        .max_by(|a, b| {
            let pa = Period::parse(&a.period).map(|p| p.start).ok();
            let pb = Period::parse(&b.period).map(|p| p.start).ok();
            (pa, a.revision).cmp(&(pb, b.revision))
        })
        .map(|s| (s.period.clone(), s.manifest_sha256.clone()));
    let manifest = snap.manifest(revision, now, previous);
    let sha = write(archive, &rev_prefix(&label, revision), &snap, &manifest).await?;
    src.audit
        .record(audit(
            now,
            "archive.written",
            format!(
                "period {label}: revision {revision} written ({} entries, {} bytes, manifest sha256 {sha})",
                snap.states.len(),
                snap.bytes()
            ),
        ))
        .await?;
    Ok(PeriodRun {
        period: label,
        outcome: RunOutcome::Written {
            revision,
            entries: snap.states.len(),
            bytes: snap.bytes(),
            manifest_sha256: sha,
        },
    })
}

/// Write the files, then the manifest and its hash (last, so a snapshot
/// without a manifest is visibly incomplete). Returns the manifest's hash.
pub async fn write(
    archive: &dyn Archive,
    prefix: &str,
    snap: &Snapshot,
    manifest: &Manifest,
) -> Result<String, ArchiveError> {
    for (name, bytes) in &snap.files {
        archive
            .put(&format!("{prefix}{name}"), bytes.clone())
            .await?;
    }
    let mut m =
        serde_json::to_vec_pretty(manifest).map_err(|e| ArchiveError::Encode(e.to_string()))?;
    m.push(b'\n');
    let sha = format::sha256_hex(&m);
    archive
        .put(&format!("{prefix}{}", format::MANIFEST), m)
        .await?;
    archive
        .put(
            &format!("{prefix}{}", format::MANIFEST_SHA),
            format!("{sha}\n").into_bytes(),
        )
        .await?;
    Ok(sha)
}

pub(crate) fn audit(now: DateTime<Utc>, action: &str, detail: String) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at: now,
        who: ARCHIVER.into(),
        role: "system".into(),
        action: action.into(),
        entry: None,
        detail,
    }
}

/// The periods (of `kind`) that hold at least one entry, earliest first:
/// the maintained aggregates' entry rows of the matching grain (one row per
/// period, status, project, worker and currency with entries), not a read
/// of every entry.
pub async fn periods_with_entries(
    entries: &dyn EntryStore,
    kind: PeriodKind,
) -> Result<Vec<Period>, ArchiveError> {
    use crate::aggregates::{Grain, RowKind};
    let grain = match kind {
        PeriodKind::Month => Grain::Month,
        PeriodKind::Week => Grain::Week,
    };
    let set: BTreeSet<Period> = entries
        .aggregates(grain, None, None)
        .await?
        .iter()
        .filter(|(k, v)| k.kind == RowKind::Entry && v.entries > 0)
        .map(|(k, _)| Period::of(k.period, kind))
        .collect();
    Ok(set.into_iter().collect())
}

/// `archive run`: the given period, or every period with entries (earliest
/// first) that is past the grace window.
pub async fn run(
    src: &Sources<'_>,
    archive: &dyn Archive,
    period: Option<Period>,
    retention: &super::RetentionConfig,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<PeriodRun>, ArchiveError> {
    let periods = match period {
        Some(p) => vec![p],
        None => periods_with_entries(src.entries, retention.period).await?,
    };
    let mut out = Vec::new();
    for p in periods {
        out.push(archive_period(src, archive, p, retention, today, now).await?);
    }
    Ok(out)
}
