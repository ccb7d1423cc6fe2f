//! Archival on the local stack: the demo store archived by week, purged,
//! restored (the same report), tamper detection, revisions, the grace
//! window, and a property test that a purge never removes an open entry.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use timepost::archive::format::{self, Kind, PeriodKind};
use timepost::archive::snapshot::{self, RunOutcome, Scope, Sources};
use timepost::archive::{retention, verify, Period, RetentionConfig};
use timepost::config::Config;
use timepost::local::DirArchive;
use timepost::ports::{Archive, EntryStore, Journal, Queue};
use timepost::stack::LocalStack;
use timepost::state::{EntryState, Status};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A day long after the demo's weeks (March 2026).
fn later() -> NaiveDate {
    day(2026, 12, 1)
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn weekly() -> RetentionConfig {
    RetentionConfig {
        period: PeriodKind::Week,
        grace_days: 35,
        live_days: Some(60),
        ..RetentionConfig::default()
    }
}

/// The demo run in `dir`, opened as a stack.
async fn demo(dir: &Path) -> LocalStack {
    timepost::demo::run(dir).await.unwrap();
    let mut config = Config::parse(timepost::demo::CONFIG, "demo").unwrap();
    config.store.path = dir.join("timepost.sqlite");
    config.store.archive_dir = dir.join("archive");
    config.store.secrets_file = dir.join("secrets.toml");
    LocalStack::open(config).unwrap()
}

fn sources(stack: &LocalStack) -> Sources<'_> {
    Sources {
        entries: &stack.store,
        journal: &stack.store,
        mappings: &stack.store,
        audit: &stack.store,
        pending: &stack.store,
        queue: &stack.store,
        ledger: stack.ledger.as_ref(),
        rules_toml: snapshot::rules_toml(&stack.config).unwrap(),
    }
}

/// Settle every open entry of the demo (as a discard would), so its
/// periods can be purged.
async fn close_all(stack: &LocalStack) {
    for mut s in stack.store.all().await.unwrap() {
        if retention::is_open(&s) {
            s.set_status(Status::Ignored, s.updated_at);
            s.note = Some("discarded for the test".into());
            stack.store.put(&s).await.unwrap();
        }
    }
}

/// What `timepost status --json` prints for a stack.
async fn status_json(stack: &LocalStack) -> serde_json::Value {
    let r = timepost::report::collect(
        &stack.store,
        stack.ledger.as_ref(),
        &stack.store,
        stack.engine.counters.snapshot(),
        &[],
    )
    .await
    .unwrap();
    serde_json::to_value(r).unwrap()
}

/// The report of one period of a live stack, as a snapshot computes it.
async fn period_report(stack: &LocalStack, p: Period) -> serde_json::Value {
    let states: Vec<EntryState> = stack
        .store
        .all()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| p.contains(s.entry.work_date))
        .collect();
    let keys: BTreeSet<String> = states.iter().map(|s| s.entry.key.to_string()).collect();
    let lines: Vec<_> = stack
        .ledger
        .read_back()
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| keys.contains(k))
        .collect();
    let dead = stack
        .store
        .dead_letters(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| match &d.message {
            timepost::ports::QueueMessage::Entry { entry, .. } => {
                keys.contains(&entry.key.to_string())
            }
            timepost::ports::QueueMessage::Redrive { key, .. } => keys.contains(&key.to_string()),
            timepost::ports::QueueMessage::Approval { from, to, .. } => {
                *from <= p.end() && *to >= p.start
            }
        })
        .count();
    serde_json::to_value(snapshot::report_of(
        stack.ledger.name(),
        &states,
        Some(&lines),
        dead,
    ))
    .unwrap()
}

async fn open_restored(dir: &Path) -> LocalStack {
    let cfg = Config::load(&dir.join("timepost.toml")).unwrap();
    LocalStack::open(cfg).unwrap()
}

#[tokio::test]
async fn archive_purge_restore_reproduces_each_periods_report() {
    let d = tempfile::tempdir().unwrap();
    let stack = demo(d.path()).await;
    close_all(&stack).await;
    let ret = weekly();
    let src = sources(&stack);
    let periods = snapshot::periods_with_entries(&stack.store, PeriodKind::Week)
        .await
        .unwrap();
    assert!(periods.len() >= 2, "the demo spans two weeks");
    let mut before = Vec::new();
    for p in &periods {
        before.push(period_report(&stack, *p).await);
    }

    let runs = snapshot::run(&src, stack.archive.as_ref(), None, &ret, later(), now())
        .await
        .unwrap();
    assert!(runs
        .iter()
        .all(|r| matches!(r.outcome, RunOutcome::Written { revision: 1, .. })));
    assert!(verify::verify(stack.archive.as_ref(), None)
        .await
        .unwrap()
        .ok());

    let plan = retention::plan(
        &stack.store,
        &stack.store,
        stack.archive.as_ref(),
        &ret,
        later(),
    )
    .await
    .unwrap();
    assert!(plan.iter().all(|p| p.kept_because.is_none()), "{plan:?}");
    let total = stack.store.all().await.unwrap().len();
    let removed = retention::purge(
        &plan,
        &stack.store,
        stack.archive.as_ref(),
        &stack.store,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(removed, total);
    assert!(stack.store.all().await.unwrap().is_empty());
    let audit = snapshot::all_audit(&stack.store).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "archive.purged")
            .count(),
        periods.len()
    );
    // A purged period is never re-archived from what is left.
    let again = snapshot::run(
        &src,
        stack.archive.as_ref(),
        Some(periods[0]),
        &ret,
        later(),
        now(),
    )
    .await
    .unwrap();
    assert!(matches!(
        again[0].outcome,
        RunOutcome::Purged { revision: 1 }
    ));

    for (p, want) in periods.iter().zip(&before) {
        let into = d.path().join(format!("restored-{}", p.label()));
        let r = timepost::local::restore_period(stack.archive.as_ref(), &p.label(), None, &into)
            .await
            .unwrap();
        assert!(r.entries > 0);
        let restored = open_restored(&into).await;
        assert_eq!(&status_json(&restored).await, want, "period {}", p.label());
        let stored: serde_json::Value = serde_json::from_slice(
            &stack
                .archive
                .get(&format!(
                    "{}{}",
                    snapshot::rev_prefix(&p.label(), 1),
                    format::REPORT_FILE
                ))
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(&stored, want);
    }
}

#[tokio::test]
async fn restore_refuses_a_directory_that_holds_a_store() {
    let d = tempfile::tempdir().unwrap();
    let stack = demo(d.path()).await;
    let src = sources(&stack);
    snapshot::run(
        &src,
        stack.archive.as_ref(),
        None,
        &weekly(),
        later(),
        now(),
    )
    .await
    .unwrap();
    let into = d.path().join("r");
    let label = Period::of(day(2026, 3, 2), PeriodKind::Week).label();
    timepost::local::restore_period(stack.archive.as_ref(), &label, None, &into)
        .await
        .unwrap();
    let again = timepost::local::restore_period(stack.archive.as_ref(), &label, None, &into).await;
    assert!(again.is_err());
}

/// Archive the demo by week; return the stack, the archive dir and the
/// two period labels.
async fn archived(dir: &Path) -> (LocalStack, Vec<String>) {
    let stack = demo(dir).await;
    let src = sources(&stack);
    let runs = snapshot::run(
        &src,
        stack.archive.as_ref(),
        None,
        &weekly(),
        later(),
        now(),
    )
    .await
    .unwrap();
    let labels = runs.into_iter().map(|r| r.period).collect();
    (stack, labels)
}

/// Make a (read-only) snapshot file writable again, as someone tampering
/// with it would.
#[allow(clippy::permissions_set_readonly_false)]
fn unlock(f: &Path) {
    let mut p = std::fs::metadata(f).unwrap().permissions();
    p.set_readonly(false);
    std::fs::set_permissions(f, p).unwrap();
}

fn file_of(dir: &Path, period: &str, rev: u32, name: &str) -> std::path::PathBuf {
    dir.join("archive")
        .join(snapshot::rev_prefix(period, rev))
        .join(name)
}

#[tokio::test]
async fn one_flipped_byte_is_named() {
    let d = tempfile::tempdir().unwrap();
    let (stack, labels) = archived(d.path()).await;
    let f = file_of(d.path(), &labels[0], 1, &Kind::Entries.file());
    unlock(&f);
    let mut b = std::fs::read(&f).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&f, b).unwrap();
    let r = verify::verify(stack.archive.as_ref(), None).await.unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(
        r.problems[0].key,
        format!("{}entries.jsonl.gz", snapshot::rev_prefix(&labels[0], 1))
    );
    assert!(r.problems[0].what.contains("differs"));
    // The restore of that period refuses; the other period still restores.
    assert!(timepost::local::restore_period(
        stack.archive.as_ref(),
        &labels[0],
        None,
        &d.path().join("r0")
    )
    .await
    .is_err());
    timepost::local::restore_period(
        stack.archive.as_ref(),
        &labels[1],
        None,
        &d.path().join("r1"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_altered_manifest_is_named() {
    let d = tempfile::tempdir().unwrap();
    let (stack, labels) = archived(d.path()).await;
    let f = file_of(d.path(), &labels[0], 1, format::MANIFEST);
    let text = std::fs::read_to_string(&f).unwrap();
    unlock(&f);
    std::fs::write(&f, text.replacen("\"revision\": 1", "\"revision\": 1 ", 1)).unwrap();
    let r = verify::verify(stack.archive.as_ref(), None).await.unwrap();
    let keys: Vec<&str> = r.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(
        keys.contains(&format!("{}manifest.json", snapshot::rev_prefix(&labels[0], 1)).as_str()),
        "{keys:?}"
    );
    // The next period's chain no longer finds it either.
    assert!(
        keys.contains(&format!("snapshots/{}/", labels[0]).as_str()),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_removed_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    let (stack, labels) = archived(d.path()).await;
    std::fs::remove_file(file_of(d.path(), &labels[1], 1, format::LINES_CSV)).unwrap();
    let r = verify::verify(stack.archive.as_ref(), None).await.unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(
        r.problems[0].key,
        format!("{}posted_lines.csv", snapshot::rev_prefix(&labels[1], 1))
    );
    assert_eq!(r.problems[0].what, "missing");
}

#[tokio::test]
async fn a_removed_period_is_named() {
    let d = tempfile::tempdir().unwrap();
    let (stack, labels) = archived(d.path()).await;
    // The first period: its successor's chain names it.
    std::fs::remove_dir_all(d.path().join("archive/snapshots").join(&labels[0])).unwrap();
    let r = verify::verify(stack.archive.as_ref(), None).await.unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].key, format!("snapshots/{}/", labels[0]));
    assert!(r.problems[0].what.starts_with("missing"));
    // The last period: nothing chains to it, the audit log records it.
    std::fs::remove_dir_all(d.path().join("archive/snapshots").join(&labels[1])).unwrap();
    let audit = snapshot::all_audit(&stack.store).await.unwrap();
    let r = verify::verify_with(stack.archive.as_ref(), None, &audit)
        .await
        .unwrap();
    let keys: Vec<&str> = r.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(
        keys.contains(&snapshot::rev_prefix(&labels[1], 1).as_str()),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_rerun_writes_nothing_and_a_changed_period_gets_a_revision() {
    let d = tempfile::tempdir().unwrap();
    let (stack, labels) = archived(d.path()).await;
    let src = sources(&stack);
    let files_before = stack.archive.list("").await.unwrap();
    let again = snapshot::run(
        &src,
        stack.archive.as_ref(),
        None,
        &weekly(),
        later(),
        now(),
    )
    .await
    .unwrap();
    assert!(again
        .iter()
        .all(|r| matches!(r.outcome, RunOutcome::Unchanged { revision: 1 })));
    assert_eq!(stack.archive.list("").await.unwrap(), files_before);

    // Change one entry of the first period.
    let first = Period::parse(&labels[0]).unwrap();
    let mut s = stack
        .store
        .all()
        .await
        .unwrap()
        .into_iter()
        .find(|s| first.contains(s.entry.work_date))
        .unwrap();
    s.note = Some("changed after archiving".into());
    stack.store.put(&s).await.unwrap();
    let runs = snapshot::run(
        &src,
        stack.archive.as_ref(),
        None,
        &weekly(),
        later(),
        now(),
    )
    .await
    .unwrap();
    assert!(matches!(
        runs[0].outcome,
        RunOutcome::Written { revision: 2, .. }
    ));
    assert!(matches!(
        runs[1].outcome,
        RunOutcome::Unchanged { revision: 1 }
    ));
    // Revision 1 is still there, unchanged; the chain still holds.
    let r = verify::verify(stack.archive.as_ref(), None).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.checked.len(), 3);
    let audit = snapshot::all_audit(&stack.store).await.unwrap();
    let written: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == "archive.written")
        .map(|a| a.detail.as_str())
        .collect();
    assert_eq!(written.len(), 3);
    assert!(written
        .iter()
        .any(|w| w.starts_with(&format!("period {}: revision 2 written", labels[0]))));
    assert!(audit.iter().any(|a| a.action == "archive.unchanged"));
}

#[tokio::test]
async fn a_period_inside_the_grace_window_is_not_archived() {
    let d = tempfile::tempdir().unwrap();
    let stack = demo(d.path()).await;
    let src = sources(&stack);
    let ret = RetentionConfig::default();
    // March 2026 ends on the 31st; 35 days of grace run to 5 May.
    let p = Period::parse("2026-03").unwrap();
    for today in [day(2026, 4, 10), day(2026, 5, 5)] {
        let runs = snapshot::run(&src, stack.archive.as_ref(), Some(p), &ret, today, now())
            .await
            .unwrap();
        assert_eq!(
            runs[0].outcome,
            RunOutcome::InGrace {
                until: day(2026, 5, 5)
            }
        );
    }
    assert!(stack.archive.list("").await.unwrap().is_empty());
    let runs = snapshot::run(
        &src,
        stack.archive.as_ref(),
        None,
        &ret,
        day(2026, 5, 6),
        now(),
    )
    .await
    .unwrap();
    assert!(matches!(
        runs[0].outcome,
        RunOutcome::Written { revision: 1, .. }
    ));
}

#[tokio::test]
async fn expired_snapshots_are_listed_never_deleted_and_legal_hold_lists_none() {
    let d = tempfile::tempdir().unwrap();
    let (stack, _) = archived(d.path()).await;
    let mut ret = weekly();
    ret.keep_years = 3;
    let listed = retention::list(stack.archive.as_ref(), &ret, day(2029, 3, 20))
        .await
        .unwrap();
    assert!(listed.iter().all(|l| l.expired));
    assert!(!stack.archive.list("snapshots/").await.unwrap().is_empty());
    let listed = retention::list(stack.archive.as_ref(), &ret, day(2029, 3, 1))
        .await
        .unwrap();
    assert!(listed.iter().all(|l| !l.expired));
    ret.legal_hold = true;
    let listed = retention::list(stack.archive.as_ref(), &ret, day(2040, 1, 1))
        .await
        .unwrap();
    assert!(listed.iter().all(|l| !l.expired));
    // Legal hold purges nothing.
    let plan = retention::plan(
        &stack.store,
        &stack.store,
        stack.archive.as_ref(),
        &ret,
        later(),
    )
    .await
    .unwrap();
    assert!(plan
        .iter()
        .all(|p| p.kept_because.as_deref() == Some("legal hold")));
}

#[tokio::test]
async fn a_period_changed_after_archiving_is_not_purged() {
    let d = tempfile::tempdir().unwrap();
    let stack = demo(d.path()).await;
    close_all(&stack).await;
    let src = sources(&stack);
    snapshot::run(
        &src,
        stack.archive.as_ref(),
        None,
        &weekly(),
        later(),
        now(),
    )
    .await
    .unwrap();
    let mut s = stack.store.all().await.unwrap().remove(0);
    s.note = Some("late edit".into());
    stack.store.put(&s).await.unwrap();
    let plan = retention::plan(
        &stack.store,
        &stack.store,
        stack.archive.as_ref(),
        &weekly(),
        later(),
    )
    .await
    .unwrap();
    let p = plan
        .iter()
        .find(|p| {
            Period::parse(&p.period)
                .unwrap()
                .contains(s.entry.work_date)
        })
        .unwrap();
    assert!(
        p.kept_because.as_deref().unwrap().contains("changed"),
        "{p:?}"
    );
}

#[tokio::test]
async fn full_export_and_import_give_the_same_status() {
    let d = tempfile::tempdir().unwrap();
    let stack = demo(d.path()).await;
    let want = status_json(&stack).await;
    let src = sources(&stack);
    let snap = snapshot::collect(&src, Scope::All).await.unwrap();
    let bundle = d.path().join("bundle");
    let out = DirArchive::new(&bundle);
    snapshot::write(&out, "", &snap, &snap.manifest(1, now(), None))
        .await
        .unwrap();

    let f = tempfile::tempdir().unwrap();
    let mut config = stack.config.clone();
    config.store.path = f.path().join("timepost.sqlite");
    config.store.archive_dir = f.path().join("archive");
    config.store.secrets_file = f.path().join("secrets.toml");
    let fresh = LocalStack::open(config).unwrap();
    timepost::archive::restore::import_bundle(&DirArchive::new(&bundle), &fresh.store, false)
        .await
        .unwrap();
    assert_eq!(status_json(&fresh).await, want);
    assert_eq!(
        fresh.store.all().await.unwrap(),
        stack.store.all().await.unwrap()
    );
    use timepost::ports::MappingStore;
    assert_eq!(
        fresh.store.history(None, None).await.unwrap(),
        stack.store.history(None, None).await.unwrap()
    );
    // Not into a store that holds something.
    let again =
        timepost::archive::restore::import_bundle(&DirArchive::new(&bundle), &fresh.store, false)
            .await;
    assert!(again.is_err());
    // A tampered bundle is refused, naming the file.
    let g = tempfile::tempdir().unwrap();
    let mut config = stack.config.clone();
    config.store.path = g.path().join("timepost.sqlite");
    let other = LocalStack::open(config).unwrap();
    std::fs::write(bundle.join("audit.jsonl.gz"), b"not gzip").unwrap();
    let err =
        timepost::archive::restore::import_bundle(&DirArchive::new(&bundle), &other.store, false)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("audit.jsonl.gz"), "{err}");
}

// A purge never removes an open entry, nor one with an open intent, nor
// one changed since its snapshot; a period goes whole or not at all.
proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]
    #[test]
    fn purge_never_removes_an_open_entry(
        rows in proptest::collection::vec((0usize..6, 0u32..3, 1u32..28, any::<bool>(), any::<bool>()), 1..25)
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let d = tempfile::tempdir().unwrap();
            let stack = demo(d.path()).await;
            let template = stack.store.all().await.unwrap().remove(0);
            let store = timepost::local::SqliteStore::open(&d.path().join("p.sqlite")).unwrap();
            let mut open_keys = BTreeSet::new();
            let mut intent_keys = BTreeSet::new();
            for (i, (status, month, dom, intent, _)) in rows.iter().enumerate() {
                let mut s = template.clone();
                s.revision = 0;
                s.entry.key.id = format!("p-{i}");
                s.entry.work_date = day(2026, 1 + month, *dom);
                s.set_status(Status::ALL[*status], s.updated_at);
                store.put(&s).await.unwrap();
                if retention::is_open(&s) {
                    open_keys.insert(s.entry.key.to_string());
                }
                if *intent {
                    let it = timepost::intent::Intent::new(
                        s.entry.key.clone(),
                        s.entry.version.clone(),
                        "b",
                        timepost::ledger::LedgerOp::Create { lines: vec![] },
                        vec![],
                        now(),
                    );
                    store.open_intent(&it).await.unwrap();
                    intent_keys.insert(s.entry.key.to_string());
                }
            }
            let ledger = timepost::ledger::sandbox::SandboxLedger::new(store.clone(), Default::default());
            let src = Sources {
                entries: &store, journal: &store, mappings: &store, audit: &store,
                pending: &store, queue: &store, ledger: &ledger,
                rules_toml: String::new(),
            };
            let archive = DirArchive::new(d.path().join("parch"));
            let ret = RetentionConfig { grace_days: 0, live_days: Some(0), ..RetentionConfig::default() };
            snapshot::run(&src, &archive, None, &ret, later(), now()).await.unwrap();
            // Some entries change after archiving.
            for (i, (_, _, _, _, change)) in rows.iter().enumerate() {
                if *change {
                    let key: timepost::model::EntryKey = format!("{}:p-{i}", template.entry.key.to_string().rsplit_once(':').unwrap().0).parse().unwrap();
                    let mut s = store.get(&key).await.unwrap().unwrap();
                    s.note = Some("late".into());
                    store.put(&s).await.unwrap();
                }
            }
            let before: Vec<EntryState> = store.all().await.unwrap();
            let plan = retention::plan(&store, &store, &archive, &ret, later()).await.unwrap();
            retention::purge(&plan, &store, &archive, &store, now()).await.unwrap();
            let after: BTreeSet<String> = store.all().await.unwrap().iter().map(|s| s.entry.key.to_string()).collect();
            for k in open_keys.iter().chain(&intent_keys) {
                prop_assert!(after.contains(k), "{k} was purged");
            }
            // Whole periods or nothing; what went is in a verified snapshot.
            let by_period = |v: &[EntryState]| -> std::collections::BTreeMap<String, usize> {
                let mut m = std::collections::BTreeMap::new();
                for s in v { *m.entry(Period::of(s.entry.work_date, PeriodKind::Month).label()).or_default() += 1; }
                m
            };
            let all_before = by_period(&before);
            for (p, n) in &all_before {
                let left = before.iter().filter(|s| &Period::of(s.entry.work_date, PeriodKind::Month).label() == p && after.contains(&s.entry.key.to_string())).count();
                prop_assert!(left == 0 || left == *n, "period {p}: {left} of {n} left");
            }
            for s in &before {
                if !after.contains(&s.entry.key.to_string()) {
                    let p = Period::of(s.entry.work_date, PeriodKind::Month).label();
                    let bytes = archive.get(&format!("{}{}", snapshot::rev_prefix(&p, 1), Kind::Entries.file())).await.unwrap().unwrap();
                    let archived: Vec<EntryState> = format::read_jsonl_gz(&bytes, "e").unwrap();
                    prop_assert!(archived.contains(s), "{} purged but not as archived", s.entry.key);
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn the_local_schedule_archives_when_retention_is_configured() {
    let d = tempfile::tempdir().unwrap();
    let mut stack = demo(d.path()).await;
    assert!(timepost::schedules::ArchiveJob::local(&stack)
        .unwrap()
        .is_none());
    stack.config.retention = Some(RetentionConfig::default());
    let job = timepost::schedules::ArchiveJob::local(&stack)
        .unwrap()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(timepost::schedules::run_archive(
        job,
        std::time::Duration::from_secs(3600),
        stop_rx,
    ));
    // The first run starts at once; wait for its manifest (bounded).
    let mut written = false;
    for _ in 0..200 {
        let keys = stack.archive.list("snapshots/").await.unwrap();
        if keys.iter().any(|k| k.ends_with(format::MANIFEST_SHA)) {
            written = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    assert!(written, "the scheduled run wrote no snapshot");
    assert!(verify::verify(stack.archive.as_ref(), Some("2026-03"))
        .await
        .unwrap()
        .ok());
}

/// Every version of an entry timepost received is kept from intake on
/// (once per version: a redelivery adds nothing), written into the
/// period's snapshot (`entry_versions.jsonl.gz`, format 1.1), and loaded
/// back by a restore; a format 1.0 snapshot, which had no versions file,
/// still verifies and restores (with no versions).
#[tokio::test]
async fn every_version_received_is_archived_and_restored_and_older_snapshots_still_restore() {
    use timepost::ports::QueueMessage;
    let d = tempfile::tempdir().unwrap();
    let stack = demo(d.path()).await;
    let first = stack
        .store
        .all()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.status() == Status::Posted)
        .expect("a posted demo entry");
    let key = first.entry.key.clone();
    let kept = stack.store.versions(&key).await.unwrap();
    assert_eq!(kept.len(), 1, "the demo's one version, kept at intake");
    assert_eq!(kept[0].entry, first.entry);

    // An edit in the tracker, delivered twice.
    let mut edited = first.entry.clone();
    edited.notes = format!("{} (edited)", edited.notes);
    edited.version.updated_at += chrono::Duration::minutes(5);
    edited.version.content_hash = "edited-version-hash".into();
    let received_at = first.entry.version.updated_at + chrono::Duration::minutes(6);
    for _ in 0..2 {
        let m = QueueMessage::Entry {
            entry: Box::new(edited.clone()),
            received_at,
        };
        stack.engine.handle(&m, "edit").await.unwrap();
    }
    let kept = stack.store.versions(&key).await.unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0].entry, first.entry);
    assert_eq!(kept[1].entry, edited);
    assert_eq!(kept[1].received_at, received_at);

    let period = Period::of(first.entry.work_date, PeriodKind::Month);
    let retention = RetentionConfig::default();
    let src = sources(&stack);
    snapshot::archive_period(
        &src,
        stack.archive.as_ref(),
        period,
        &retention,
        later(),
        now(),
    )
    .await
    .unwrap();
    let label = period.label();
    let prefix = snapshot::rev_prefix(&label, 1);
    let manifest: format::Manifest = serde_json::from_slice(
        &stack
            .archive
            .get(&format!("{prefix}{}", format::MANIFEST))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!((manifest.format_version, manifest.format_minor), (1, 1));
    let bytes = stack
        .archive
        .get(&format!("{prefix}{}", Kind::EntryVersions.file()))
        .await
        .unwrap()
        .unwrap();
    let versions: Vec<timepost::ports::ReceivedVersion> =
        format::read_jsonl_gz(&bytes, "entry_versions").unwrap();
    assert_eq!(manifest.counts["entry_versions"], versions.len());
    let of_key: Vec<_> = versions.iter().filter(|v| v.entry.key == key).collect();
    assert_eq!(of_key.len(), 2);
    assert_eq!(of_key[1].entry.notes, edited.notes);
    assert!(versions
        .iter()
        .all(|v| period.contains(v.entry.work_date) || v.entry.key == key));

    // Restored: the versions are back in the store.
    let into = d.path().join("restored");
    let r = timepost::local::restore_period(stack.archive.as_ref(), &label, None, &into)
        .await
        .unwrap();
    assert_eq!(r.versions, versions.len());
    let restored = open_restored(&into).await;
    assert_eq!(restored.store.versions(&key).await.unwrap(), kept);

    // A format 1.0 snapshot of the same period: no versions file, no
    // `format_minor`. It verifies and restores, with no versions.
    let old_dir = d.path().join("old-archive");
    let old = DirArchive::new(&old_dir);
    let mut snap = snapshot::collect(&src, Scope::Period(period))
        .await
        .unwrap();
    snap.files.remove(&Kind::EntryVersions.file());
    snap.counts.remove(Kind::EntryVersions.name());
    let m = snap.manifest(1, now(), None);
    let mut json = serde_json::to_value(&m).unwrap();
    json.as_object_mut().unwrap().remove("format_minor");
    let mut mbytes = serde_json::to_vec_pretty(&json).unwrap();
    mbytes.push(b'\n');
    for (name, b) in &snap.files {
        old.put(&format!("{prefix}{name}"), b.clone())
            .await
            .unwrap();
    }
    old.put(
        &format!("{prefix}{}", format::MANIFEST_SHA),
        format!("{}\n", format::sha256_hex(&mbytes)).into_bytes(),
    )
    .await
    .unwrap();
    old.put(&format!("{prefix}{}", format::MANIFEST), mbytes)
        .await
        .unwrap();
    let report = verify::verify(&old, Some(&label)).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let into = d.path().join("restored-old");
    let r = timepost::local::restore_period(&old, &label, None, &into)
        .await
        .unwrap();
    assert_eq!(r.versions, 0);
    assert!(r.entries > 0);
    let restored = open_restored(&into).await;
    assert!(restored.store.versions(&key).await.unwrap().is_empty());
    assert!(restored.store.get(&key).await.unwrap().is_some());
}
