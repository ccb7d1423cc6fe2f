//! `timepost archive run|list|verify|restore|purge`, `timepost export
//! --all` and `timepost import --bundle`: period snapshots through the
//! `Archive` port (the local `archive_dir`, or the stack's bucket under
//! `archive/` with `--backend aws`), checked, restored, and the full
//! portable export. The work is in `timepost::archive`.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use timepost::archive::snapshot::{self, Sources};
use timepost::archive::{self as arch, ArchiveError, Period, RetentionConfig};

use super::backend::{BackendKind, Global, Ops};
use crate::{CliResult, Failure};

#[derive(Subcommand)]
pub enum Cmd {
    /// Write a snapshot of every closed period past the grace window (or
    /// of one period); an unchanged period writes nothing, a changed one a
    /// new revision.
    Run {
        /// One period: `2026-03` (months) or `2026-W10` (weeks).
        #[arg(long)]
        period: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The archived snapshots, with counts, hashes and retention (expired
    /// ones are marked for deletion; timepost deletes nothing).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every file of every snapshot (or one period's) and the
    /// chain of manifests; name what differs; exit 1 if anything does.
    Verify {
        #[arg(long)]
        period: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Build a fresh local store in DIR from a period's snapshot (verified
    /// first): `timepost --data-dir DIR status` then shows its report.
    Restore {
        #[arg(long)]
        period: String,
        /// A revision other than the newest.
        #[arg(long)]
        revision: Option<u32>,
        #[arg(long)]
        into: PathBuf,
    },
    /// Remove from the live store the entries of archived periods past
    /// `[retention] live_days` (snapshot verified first; never an open
    /// entry): the local store, or a deployed stack's table with
    /// `--backend aws`.
    Purge {
        /// Print what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

/// `timepost export --all DIR`.
#[derive(Args)]
pub struct ExportArgs {
    /// Everything the store holds (the only export there is for now).
    #[arg(long, required = true)]
    pub all: bool,
    /// A new or empty directory.
    pub dir: PathBuf,
}

/// `timepost import --bundle DIR`.
#[derive(Args)]
pub struct ImportArgs {
    /// A directory `timepost export --all` wrote.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Load even though the store is not empty (on AWS an item that
    /// already exists still stops the import: nothing is overwritten).
    #[arg(long)]
    pub force: bool,
}

fn input(e: ArchiveError) -> Failure {
    match e {
        ArchiveError::Input(_) | ArchiveError::Unverified { .. } => Failure::Input(anyhow!(e)),
        other => Failure::Runtime(anyhow!(other)),
    }
}

fn sources(ops: &Ops) -> Result<Sources<'_>, Failure> {
    Ok(Sources {
        entries: ops.entries.as_ref(),
        journal: ops.journal.as_ref(),
        mappings: ops.mappings.as_ref(),
        audit: ops.audit.as_ref(),
        pending: ops.pending.as_ref(),
        queue: ops.queue.as_ref(),
        ledger: ops.ledger.as_ref(),
        rules_toml: snapshot::rules_toml(&ops.config).map_err(input)?,
    })
}

fn retention(ops: &Ops) -> RetentionConfig {
    ops.config.retention.clone().unwrap_or_default()
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

fn print_json(v: serde_json::Value) -> CliResult {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub async fn run(g: &Global, cmd: Cmd) -> CliResult {
    let ops = super::backend::open(g).await?;
    // Snapshots live in the archive directory, or under `archive/` in the
    // deployed stack's archive bucket (`TIMEPOST_ARCHIVE_BUCKET`).
    let archive = ops.snapshots.clone();
    let ret = retention(&ops);
    match cmd {
        Cmd::Run { period, json } => {
            let period = period
                .map(|p| Period::parse(&p))
                .transpose()
                .map_err(input)?;
            let src = sources(&ops)?;
            let now = chrono::Utc::now();
            let out = snapshot::run(&src, archive.as_ref(), period, &ret, now.date_naive(), now)
                .await
                .map_err(input)?;
            if json {
                return print_json(serde_json::to_value(&out)?);
            }
            if out.is_empty() {
                println!("no entries: nothing to archive");
            }
            for r in &out {
                use snapshot::RunOutcome::*;
                match &r.outcome {
                    Written {
                        revision,
                        entries,
                        bytes,
                        manifest_sha256,
                    } => println!(
                        "{}: revision {revision} written ({entries} entries, {bytes} bytes, manifest sha256 {manifest_sha256})",
                        r.period
                    ),
                    Unchanged { revision } => println!(
                        "{}: unchanged since revision {revision}; nothing written",
                        r.period
                    ),
                    Purged { revision } => println!(
                        "{}: its live entries were purged after revision {revision}; the snapshot stands",
                        r.period
                    ),
                    InGrace { until } => println!(
                        "{}: inside the grace window until {until}; not archived yet",
                        r.period
                    ),
                }
            }
            Ok(())
        }
        Cmd::List { json } => {
            let out = arch::retention::list(archive.as_ref(), &ret, today())
                .await
                .map_err(input)?;
            if json {
                return print_json(serde_json::to_value(&out)?);
            }
            if out.is_empty() {
                println!("no snapshots yet (`timepost archive run` writes them)");
            }
            for l in &out {
                println!(
                    "{} rev {}  {} entries  {} bytes  manifest {}  keep until {}{}{}",
                    l.period,
                    l.revision,
                    l.counts.get("entries").copied().unwrap_or(0),
                    l.bytes,
                    &l.manifest_sha256.get(..16).unwrap_or("(none)"),
                    l.expires
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "?".into()),
                    if l.expired {
                        "  EXPIRED: listed for deletion"
                    } else {
                        ""
                    },
                    l.purged
                        .as_ref()
                        .map(|p| format!("  live entries purged {}", p.at.date_naive()))
                        .unwrap_or_default(),
                );
            }
            if ret.legal_hold {
                println!("legal hold: nothing is listed for deletion");
            }
            Ok(())
        }
        Cmd::Verify { period, json } => {
            let audit = snapshot::all_audit(ops.audit.as_ref())
                .await
                .map_err(input)?;
            let report = arch::verify::verify_with(archive.as_ref(), period.as_deref(), &audit)
                .await
                .map_err(input)?;
            if json {
                print_json(serde_json::to_value(&report)?)?;
            } else {
                for c in &report.checked {
                    println!(
                        "{} rev {}: {} files {}",
                        c.period,
                        c.revision,
                        c.files,
                        if c.ok { "ok" } else { "FAILED" }
                    );
                }
                for p in &report.problems {
                    println!("{}: {}", p.key, p.what);
                }
            }
            if report.checked.is_empty() && period.is_some() {
                return Err(Failure::Input(anyhow!("no snapshot of that period")));
            }
            if !report.ok() {
                return Err(Failure::Runtime(anyhow!(
                    "{} problem(s) found",
                    report.problems.len()
                )));
            }
            Ok(())
        }
        Cmd::Restore {
            period,
            revision,
            into,
        } => {
            let r = timepost::local::restore_period(archive.as_ref(), &period, revision, &into)
                .await
                .map_err(input)?;
            println!(
                "restored {} revision {} into {}: {} entries, {} entry versions, {} journal records, {} audit records, {} mapping changes, {} book lines",
                r.period,
                r.revision,
                into.display(),
                r.entries,
                r.versions,
                r.journal,
                r.audit,
                r.mapping_changes,
                r.ledger_records
            );
            println!(
                "read it with: timepost --data-dir {} status",
                into.display()
            );
            Ok(())
        }
        Cmd::Purge { dry_run, json } => {
            let plan = arch::retention::plan(
                ops.entries.as_ref(),
                ops.journal.as_ref(),
                archive.as_ref(),
                &ret,
                today(),
            )
            .await
            .map_err(input)?;
            let removed = if dry_run {
                0
            } else {
                arch::retention::purge(
                    &plan,
                    ops.purge.as_ref(),
                    archive.as_ref(),
                    ops.audit.as_ref(),
                    chrono::Utc::now(),
                )
                .await
                .map_err(input)?
            };
            if json {
                return print_json(serde_json::json!({
                    "dry_run": dry_run, "removed": removed, "periods": plan
                }));
            }
            if ret.live_days.is_none() {
                println!(
                    "[retention] live_days is not set: archived entries stay in the live store"
                );
            }
            for p in &plan {
                match &p.kept_because {
                    Some(why) => println!("{} rev {}: kept: {why}", p.period, p.revision),
                    None if dry_run => println!(
                        "{} rev {}: would remove {} entries",
                        p.period, p.revision, p.entries
                    ),
                    None => println!(
                        "{} rev {}: removed {} entries",
                        p.period, p.revision, p.entries
                    ),
                }
            }
            if plan.is_empty() {
                println!("nothing to purge");
            }
            Ok(())
        }
    }
}

/// `timepost export --all DIR`: everything the store holds, in the
/// archive format, with a manifest (no chain: it stands alone).
pub async fn export(g: &Global, args: ExportArgs) -> CliResult {
    if !args.all {
        return Err(Failure::Input(anyhow!("pass --all")));
    }
    if args.dir.join(arch::format::MANIFEST).exists() {
        return Err(Failure::Input(anyhow!(
            "{} already holds an export; choose a new directory",
            args.dir.display()
        )));
    }
    let ops = super::backend::open(g).await?;
    let src = sources(&ops)?;
    let snap = snapshot::collect(&src, snapshot::Scope::All)
        .await
        .map_err(input)?;
    let manifest = snap.manifest(1, chrono::Utc::now(), None);
    let out = timepost::local::DirArchive::new(&args.dir);
    let sha = snapshot::write(&out, "", &snap, &manifest)
        .await
        .map_err(input)?;
    println!(
        "exported {} entries ({} files, {} bytes) to {}; manifest sha256 {sha}",
        snap.states.len(),
        snap.files.len() + 2,
        snap.bytes(),
        args.dir.display()
    );
    Ok(())
}

/// `timepost import --bundle DIR` into the local store the config names,
/// or (`--backend aws`) into the deployed stack's table.
pub async fn import(g: &Global, args: ImportArgs) -> CliResult {
    if g.backend == BackendKind::Aws {
        return import_aws(args).await;
    }
    let stack = super::open(&g.config)?;
    let r = arch::restore::import_bundle(
        &timepost::local::DirArchive::new(&args.bundle),
        &stack.store,
        args.force,
    )
    .await
    .map_err(input)?;
    println!(
        "imported {} entries, {} entry versions, {} journal records, {} audit records, {} mapping changes, {} book lines from {}",
        r.entries,
        r.versions,
        r.journal,
        r.audit,
        r.mapping_changes,
        r.ledger_records,
        args.bundle.display()
    );
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn import_aws(_: ImportArgs) -> CliResult {
    Err(super::backend::without_aws())
}

/// The bundle, verified, into the table `TIMEPOST_TABLE` names: refused
/// when the table holds records (unless `--force`), never overwriting an
/// item, audited as `bundle.imported`. The books' lines and dead letters
/// are not loaded: the books are the ledger's, and a dead letter is an SQS
/// message; both are counted in the output.
#[cfg(feature = "aws")]
async fn import_aws(args: ImportArgs) -> CliResult {
    use timepost::ports::{AuditLog, AuditRecord};
    let settings = super::backend::aws::settings()?;
    let data = arch::restore::read_bundle(&timepost::local::DirArchive::new(&args.bundle))
        .await
        .map_err(input)?;
    let sdk = timepost::aws::sdk_config().await;
    let clients = timepost::aws::stack::AwsClients::from_sdk(&sdk, settings.s3_path_style);
    let store = timepost::aws::DynamoStore::new(clients.dynamodb, settings.table.clone());
    if !args.force && !store.holds_no_records().await? {
        return Err(Failure::Input(anyhow!(
            "table {} already holds records; import into a fresh stack (or pass --force to load on top: an item that exists stops the import, nothing is overwritten)",
            settings.table
        )));
    }
    let loaded = store.load_bundle(&data).await?;
    let r = arch::restore::summary_of(&data);
    store
        .record(AuditRecord {
            seq: 0,
            at: chrono::Utc::now(),
            who: "cli".into(),
            role: "admin".into(),
            action: "bundle.imported".into(),
            entry: None,
            detail: format!(
                "{} entries, {} versions, {} journal records, {} audit records, {} mapping changes from the bundle exported {} (format {} {}.{})",
                r.entries,
                r.versions,
                r.journal,
                r.audit,
                r.mapping_changes,
                data.manifest.created_at.to_rfc3339(),
                data.manifest.format,
                data.manifest.format_version,
                data.manifest.format_minor
            ),
        })
        .await?;
    println!(
        "imported {} entries, {} entry versions, {} journal records, {} audit records, {} mapping changes into table {} ({} items in {} batches)",
        r.entries,
        r.versions,
        r.journal,
        r.audit,
        loaded.mapping_changes,
        settings.table,
        loaded.items,
        loaded.batches
    );
    if r.ledger_records > 0 || !data.dead_letters.is_empty() {
        println!(
            "not loaded: {} book lines (the books live in the stack's ledger) and {} dead letters (SQS messages; redrive them from the source)",
            r.ledger_records,
            data.dead_letters.len()
        );
    }
    Ok(())
}
