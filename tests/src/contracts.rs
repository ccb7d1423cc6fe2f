//! Port contracts that every adapter must meet, run against SQLite
//! (`tests/tests/it/store_contracts.rs`, `tests/tests/it/convergent_posting.rs`,
//! `tests/tests/it/reconcile.rs`), DynamoDB on moto
//! (`tests/tests/it/aws_dynamo.rs`) and, for the queue, SQS on moto
//! (`tests/tests/it/aws_sqs.rs`).

use chrono::{Duration, NaiveDate, Utc};
use timepost::intent::{Intent, IntentOutcome};
use timepost::ledger::LedgerOp;
use timepost::mapping::{MappingChange, MappingRow, MappingTable};
use timepost::model::NormalisedEntry;
use timepost::model::{EntryKey, Source};
use timepost::ports::{
    AlertState, AlertStore, AuditLog, AuditRecord, EntryStore, Journal, MappingStore,
    PendingChanges, ProposalStatus, ProposedChange, Queue, QueueMessage, Received, SessionStore,
    StatusCursor, StoreError, StoredSession, WatermarkStore, WorkerWeek,
};
use timepost::state::{EntryState, Status};

use crate::kit::E;

fn week(user: &str, start: &str) -> WorkerWeek {
    WorkerWeek {
        source: Source::Csv,
        workspace: "ws".into(),
        user_id: user.into(),
        week_start: start.parse().expect("date"),
    }
}

/// Write-ahead intents and dirty worker-weeks: an intent is open from
/// `open_intent` until `close_intent`, listed by entry (oldest first) and,
/// once old enough, by the sweep's query; dirty weeks are listed until
/// cleared, once each.
pub async fn journal_intents(j: &dyn Journal) {
    let a = EntryKey::new(Source::Csv, "ws", "intent-a");
    let b = EntryKey::new(Source::Csv, "ws", "intent-b");
    let old = Utc::now() - Duration::minutes(10);
    let new = |key: &EntryKey, at| {
        Intent::new(
            key.clone(),
            crate::version(1),
            "batch",
            LedgerOp::Create {
                lines: vec![crate::line(
                    timepost::ledger::Party::Employee { id: "E-1".into() },
                    60,
                    "work",
                )],
            },
            Vec::new(),
            at,
        )
    };
    let (a1, a2, b1) = (new(&a, old), new(&a, Utc::now()), new(&b, old));
    for i in [&a1, &a2, &b1] {
        j.open_intent(i).await.expect("open");
    }
    let open_a = j.open_intents(&a).await.expect("open a");
    assert_eq!(
        open_a.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [a1.id.as_str(), a2.id.as_str()],
        "an entry's open intents, oldest first"
    );
    assert_eq!(open_a[0], a1, "an intent reads back as written");
    let stale = j
        .stale_intents(Utc::now() - Duration::minutes(5), 10)
        .await
        .expect("stale");
    let mut stale_ids: Vec<&str> = stale.iter().map(|i| i.id.as_str()).collect();
    stale_ids.sort();
    let mut want = vec![a1.id.as_str(), b1.id.as_str()];
    want.sort();
    assert_eq!(stale_ids, want, "only intents opened before the cut-off");

    let mut closed = a1.clone();
    closed.outcome = IntentOutcome::Applied;
    j.close_intent(&closed).await.expect("close");
    assert_eq!(
        j.open_intents(&a).await.expect("open a").len(),
        1,
        "a closed intent is no longer open"
    );
    let stale = j
        .stale_intents(Utc::now() + Duration::minutes(1), 10)
        .await
        .expect("stale");
    assert!(stale.iter().all(|i| i.id != a1.id), "nor stale");

    let (w1, w2) = (week("u-ann", "2026-03-02"), week("u-bob", "2026-03-09"));
    j.mark_dirty(&w1, "a sibling failed").await.expect("mark");
    j.mark_dirty(&w2, "moved").await.expect("mark");
    j.mark_dirty(&w1, "again").await.expect("mark twice");
    let dirty = j.dirty_weeks(10).await.expect("dirty");
    assert_eq!(dirty.len(), 2, "{dirty:?}");
    assert!(dirty.contains(&w1) && dirty.contains(&w2));
    j.clear_dirty(&w1).await.expect("clear");
    assert_eq!(j.dirty_weeks(10).await.expect("dirty"), vec![w2]);
}

/// Reconciliation runs: stored with their breaks (more than one write
/// batch of them), listed newest first, each run's breaks in order;
/// resolutions listed per break and all together, oldest first.
pub async fn reconcile_store(store: &dyn timepost::reconcile::ReconcileStore) {
    use std::collections::BTreeMap;
    use timepost::exceptions::ExceptionCode;
    use timepost::reconcile::{break_id, Action, Break, Period, Resolution, RunSummary};
    let brk = |n: usize| Break {
        id: break_id(
            ExceptionCode::DeletedInBooks,
            Some(&format!("csv:ws:{n}")),
            None,
        ),
        code: ExceptionCode::DeletedInBooks,
        said: format!("record {n} was deleted"),
        fix_hint: ExceptionCode::DeletedInBooks.fix_hint().into(),
        entry: Some(format!("csv:ws:{n}")),
        record: Some(n.to_string()),
        party: None,
        customer: None,
        day: None,
        expected_minutes: Some(60),
        books_minutes: None,
        info: false,
        dismissed: None,
    };
    let summary = |breaks: usize| RunSummary {
        seq: 0,
        period: Period {
            from: "2026-03-02".parse().expect("date"),
            to: "2026-03-08".parse().expect("date"),
        },
        ledger: "sandbox".into(),
        started_at: Utc::now(),
        duration_ms: 12,
        counts: BTreeMap::from([("DELETED_IN_BOOKS".to_string(), breaks)]),
        breaks,
        info: 0,
        dismissed: 0,
        ledger_reads: 1,
        tracker: "received".into(),
        by: "test".into(),
    };
    assert!(store.runs(10).await.expect("runs").is_empty());
    let many: Vec<Break> = (0..60).map(brk).collect();
    let first = store.save_run(&summary(60), &many).await.expect("save");
    let second = store.save_run(&summary(0), &[]).await.expect("save");
    assert!(second > first);
    let runs = store.runs(10).await.expect("runs");
    assert_eq!(
        runs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![second, first]
    );
    assert_eq!(runs[1].breaks, 60);
    assert_eq!(runs[1].seq, first, "the stored summary carries its seq");
    assert_eq!(store.runs(1).await.expect("runs").len(), 1);
    assert_eq!(store.run_breaks(first).await.expect("breaks"), many);
    assert!(store.run_breaks(second).await.expect("breaks").is_empty());
    let res = |n: usize, action| Resolution {
        break_id: brk(n).id,
        action,
        reason: "why".into(),
        by: "fran".into(),
        at: Utc::now(),
        run: first,
        said: "done".into(),
    };
    store
        .add_resolution(&res(1, Action::Dismiss))
        .await
        .expect("add");
    store
        .add_resolution(&res(2, Action::Repost))
        .await
        .expect("add");
    store
        .add_resolution(&res(1, Action::Repost))
        .await
        .expect("add");
    let of1 = store
        .resolutions(Some(&brk(1).id))
        .await
        .expect("resolutions");
    assert_eq!(
        of1.iter().map(|r| r.action).collect::<Vec<_>>(),
        vec![Action::Dismiss, Action::Repost]
    );
    assert_eq!(store.resolutions(None).await.expect("all").len(), 3);
}

/// Entry `id` of the contracts' CSV workspace.
pub fn key(id: &str) -> EntryKey {
    EntryKey::new(Source::Csv, "ws", id)
}

/// An instant from RFC 3339 text.
pub fn at(s: &str) -> chrono::DateTime<Utc> {
    s.parse().expect("instant")
}

/// A state of `e` with `status`, last updated at `updated`.
pub fn state(e: NormalisedEntry, status: Status, updated: &str) -> EntryState {
    let mut st = EntryState::new(e, at(updated));
    st.set_status(status, st.updated_at);
    st.updated_at = at(updated);
    st
}

/// The tracker ids of `states`, in order.
pub fn ids(states: &[EntryState]) -> Vec<String> {
    states.iter().map(|s| s.entry.key.id.clone()).collect()
}

/// The tracker ids of `states`, sorted (for a read whose order the port
/// does not promise, such as `EntryStore::week`).
pub fn sorted_ids(states: &[EntryState]) -> Vec<String> {
    let mut ids = ids(states);
    ids.sort();
    ids
}

/// `EntryStore::put` is conditional on the revision: revision 0 creates,
/// a writer holding an older revision loses (`Conflict`), `get` of a
/// missing key is `None`.
pub async fn entry_store_revisions(s: &dyn EntryStore) {
    let e = E::new("a", "u-ann", "2026-03-03", "09:00", "12:00").build();
    let first = state(e.clone(), Status::Held, "2026-03-09T10:00:00Z");
    assert_eq!(s.put(&first).await.expect("create"), 1);
    assert!(
        matches!(s.put(&first).await, Err(StoreError::Conflict(_))),
        "revision 0 means it must not exist yet"
    );
    let mut stored = s.get(&key("a")).await.expect("get").expect("present");
    assert_eq!(stored.revision, 1);
    assert_eq!(stored.entry, e);
    stored.set_status(Status::Posted, stored.updated_at);
    assert_eq!(s.put(&stored).await.expect("update"), 2);
    // A writer still holding revision 1 loses.
    assert!(matches!(s.put(&stored).await, Err(StoreError::Conflict(_))));
    let now = s.get(&key("a")).await.expect("get").expect("present");
    assert_eq!((now.revision, now.status()), (2, Status::Posted));
    assert!(s.get(&key("missing")).await.expect("get").is_none());
}

/// The entry store's reads: a worker-week, a status oldest first (whole
/// and a page at a time after a cursor), every entry in key order, a
/// source's work dates; a re-dated, re-statused entry moves in each.
pub async fn entry_store_queries(s: &dyn EntryStore) {
    let puts = [
        state(
            E::new("a", "u-ann", "2026-03-02", "09:00", "12:00").build(),
            Status::Posted,
            "2026-03-09T10:00:03Z",
        ),
        state(
            E::new("b", "u-ann", "2026-03-06", "09:00", "12:00").build(),
            Status::Held,
            "2026-03-09T10:00:01Z",
        ),
        state(
            E::new("c", "u-ann", "2026-03-09", "09:00", "12:00").build(),
            Status::Held,
            "2026-03-09T10:00:02Z",
        ),
        state(
            E::new("d", "u-bob", "2026-03-03", "09:00", "12:00").build(),
            Status::Held,
            "2026-03-09T10:00:00Z",
        ),
        state(
            E::new("e", "u-ann", "2026-03-04", "09:00", "12:00")
                .deleted()
                .build(),
            Status::Voided,
            "2026-03-09T10:00:04Z",
        ),
        state(
            E::new("f", "u-ann", "2026-03-04", "09:00", "12:00")
                .with(|e| e.key.workspace = "other".into())
                .build(),
            Status::Posted,
            "2026-03-09T10:00:05Z",
        ),
    ];
    for p in &puts {
        s.put(p).await.expect("put");
    }
    let ann_week = WorkerWeek {
        source: Source::Csv,
        workspace: "ws".into(),
        user_id: "u-ann".into(),
        week_start: NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"),
    };
    assert_eq!(
        sorted_ids(&s.week(&ann_week).await.expect("week")),
        ["a", "b", "e"]
    );

    assert_eq!(
        ids(&s.by_status(Status::Held, 10).await.expect("held")),
        ["d", "b", "c"],
        "oldest first"
    );
    assert_eq!(
        ids(&s.by_status(Status::Held, 2).await.expect("held")),
        ["d", "b"]
    );
    assert!(s
        .by_status(Status::Exception, 10)
        .await
        .expect("none")
        .is_empty());
    // A page at a time from a cursor (the console's listings), every
    // page size walking the same order.
    for size in [1, 2, 3, 10] {
        let mut seen = Vec::new();
        let mut after: Option<StatusCursor> = None;
        loop {
            let page = s
                .by_status_after(Status::Held, after.as_ref(), size)
                .await
                .expect("page");
            assert!(page.len() <= size);
            after = StatusCursor::after(&page);
            seen.extend(ids(&page));
            if page.len() < size {
                break;
            }
        }
        assert_eq!(seen, ["d", "b", "c"], "page size {size}");
    }

    let all = s.all().await.expect("all");
    let keys: Vec<String> = all.iter().map(|st| st.entry.key.to_string()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "key order");
    assert_eq!(all.len(), 6);

    let d = |s: &str| s.parse::<NaiveDate>().expect("date");
    assert_eq!(
        ids(&s
            .by_source_dates(Source::Csv, "ws", d("2026-03-03"), d("2026-03-06"))
            .await
            .expect("dates")),
        ["b", "d", "e"],
        "inclusive range, deleted included, other workspace excluded"
    );
    assert!(s
        .by_source_dates(Source::Harvest, "ws", d("2026-03-01"), d("2026-03-31"))
        .await
        .expect("dates")
        .is_empty());

    // Moving an entry to another week and status moves it in every index.
    let mut b = s.get(&key("b")).await.expect("get").expect("b");
    b.entry = E::new("b", "u-ann", "2026-03-10", "09:00", "12:00").build();
    b.set_status(Status::Posted, b.updated_at);
    s.put(&b).await.expect("move");
    assert_eq!(
        sorted_ids(&s.week(&ann_week).await.expect("week")),
        ["a", "e"]
    );
    assert_eq!(
        ids(&s.by_status(Status::Held, 10).await.expect("held")),
        ["d", "c"]
    );
    assert_eq!(
        ids(&s
            .by_source_dates(Source::Csv, "ws", d("2026-03-09"), d("2026-03-10"))
            .await
            .expect("dates")),
        ["b", "c"]
    );
}

/// Claims: the owner may claim again, another may not until the claim
/// expires, only the owner releases.
pub async fn entry_claims(s: &dyn EntryStore) {
    let k = key("a");
    let short = std::time::Duration::from_millis(300);
    assert!(s.claim(&k, "w1", short).await.expect("claim"));
    assert!(s
        .claim(&k, "w1", short)
        .await
        .expect("re-claim by the owner"));
    assert!(!s.claim(&k, "w2", short).await.expect("held by w1"));
    s.release(&k, "w2").await.expect("release by a non-owner");
    assert!(
        !s.claim(&k, "w3", short).await.expect("still held"),
        "a non-owner's release does nothing"
    );
    // Expired (TTL deletion has not run): the next claimant takes over.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(s
        .claim(&k, "w2", std::time::Duration::from_secs(60))
        .await
        .expect("takeover"));
    s.release(&k, "w1").await.expect("stale owner's release");
    assert!(
        !s.claim(&k, "w3", short).await.expect("w2 holds it"),
        "the previous owner cannot release the new claim"
    );
    s.release(&k, "w2").await.expect("release");
    assert!(s.claim(&k, "w3", short).await.expect("free again"));
    // Another entry's claim is independent.
    assert!(s.claim(&key("b"), "w1", short).await.expect("other entry"));
}

/// Watermarks round-trip to the nanosecond and are kept per name.
pub async fn watermarks(s: &dyn WatermarkStore) {
    assert!(s.get_watermark("harvest:1").await.expect("get").is_none());
    let t1 = at("2026-03-09T10:00:00.123456789Z");
    s.set_watermark("harvest:1", t1).await.expect("set");
    assert_eq!(s.get_watermark("harvest:1").await.expect("get"), Some(t1));
    let t2 = at("2026-03-10T00:00:00Z");
    s.set_watermark("harvest:1", t2).await.expect("set");
    assert_eq!(s.get_watermark("harvest:1").await.expect("get"), Some(t2));
    assert!(s.get_watermark("toggl:1").await.expect("get").is_none());
}

/// The audit log numbers records from 1 and lists the newest first.
pub async fn audit_log(s: &dyn AuditLog) {
    for i in 0..5 {
        let seq = s
            .record(AuditRecord {
                seq: 0,
                at: at("2026-03-09T10:00:00Z") + chrono::Duration::seconds(i),
                who: "ann".into(),
                role: "finance".into(),
                action: format!("redrive {i}"),
                entry: (i % 2 == 0).then(|| format!("csv:ws:{i}")),
                detail: "because".into(),
            })
            .await
            .expect("record");
        assert_eq!(seq, i as u64 + 1);
    }
    let recent = s.recent(3).await.expect("recent");
    assert_eq!(
        recent.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["redrive 4", "redrive 3", "redrive 2"]
    );
    assert_eq!(recent[0].seq, 5);
    assert_eq!(recent[0].entry.as_deref(), Some("csv:ws:4"));
    assert_eq!(recent[1].entry, None);
    assert_eq!(s.recent(100).await.expect("all").len(), 5);
    assert!(s.recent(0).await.expect("none").is_empty());
}

/// One mapping change of the contracts: `key` in `table` from `before` to
/// `after` (targets; None: absent), by ann at a fixed instant.
fn mapping_change(
    table: MappingTable,
    key: &str,
    before: Option<&str>,
    after: Option<&str>,
    reason: &str,
) -> MappingChange {
    MappingChange {
        seq: 0,
        table,
        key: key.into(),
        before: before.map(|t| MappingRow::new(table, key, t)),
        after: after.map(|t| MappingRow::new(table, key, t)),
        changed_by: "ann".into(),
        changed_at: at("2026-03-09T12:00:00.123456789Z"),
        reason: reason.into(),
    }
}

/// Changes sorted by their change-log sequence number.
fn by_seq(mut changes: Vec<MappingChange>) -> Vec<MappingChange> {
    changes.sort_by_key(|c| c.seq);
    changes
}

/// The mapping tables and their change log: `apply` numbers every change
/// above the current version and returns them otherwise as given; the
/// snapshot is the fold of the log (additions, edits, removals) at
/// `version()`, the newest sequence number; `history` lists the applied
/// changes, filtered by table and key.
pub async fn mapping_store(s: &dyn MappingStore) {
    assert_eq!(s.version().await.expect("version"), 0, "no change yet");
    let empty = s.snapshot().await.expect("snapshot");
    assert!(empty.is_empty());
    assert_eq!(empty.version, 0);
    assert!(s.history(None, None).await.expect("history").is_empty());

    // Apply three imports, checking the numbers each one gets.
    let mut ann = mapping_change(
        MappingTable::Employee,
        "ann@example.com",
        None,
        Some("E-1"),
        "add ann",
    );
    if let Some(row) = ann.after.as_mut() {
        row.attrs.insert("time_zone".into(), "Europe/Paris".into());
    }
    let imports = vec![
        vec![
            mapping_change(MappingTable::Project, "p1", None, Some("C1"), "add p1"),
            ann,
        ],
        vec![
            mapping_change(
                MappingTable::Project,
                "p1",
                Some("C1"),
                Some("C2"),
                "move p1",
            ),
            mapping_change(MappingTable::Project, "p2", None, Some("C3"), "add p2"),
        ],
        vec![mapping_change(
            MappingTable::Project,
            "p1",
            Some("C2"),
            None,
            "drop p1",
        )],
    ];
    let mut log: Vec<MappingChange> = Vec::new();
    for import in imports {
        let before = s.version().await.expect("version");
        let applied = s.apply(import.clone()).await.expect("apply");
        assert_eq!(applied.len(), import.len(), "every change returned");
        for (got, sent) in applied.iter().zip(&import) {
            assert_eq!(
                &MappingChange {
                    seq: 0,
                    ..got.clone()
                },
                sent,
                "returned as given, with its number"
            );
        }
        let seqs: Vec<u64> = applied.iter().map(|c| c.seq).collect();
        assert!(seqs[0] > before, "numbered above the version: {seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        let newest = *seqs.last().expect("a change");
        assert_eq!(s.version().await.expect("version"), newest);
        assert_eq!(s.snapshot().await.expect("snapshot").version, newest);
        log.extend(applied);
    }

    let snap = s.snapshot().await.expect("snapshot");
    assert_eq!(snap.version, log.last().expect("log").seq);
    assert!(snap.get(MappingTable::Project, "p1").is_none(), "removed");
    assert_eq!(
        snap.get(MappingTable::Project, "p2"),
        Some(&MappingRow::new(MappingTable::Project, "p2", "C3"))
    );
    assert_eq!(
        snap.get(MappingTable::Employee, "ann@example.com")
            .and_then(|r| r.attr("time_zone")),
        Some("Europe/Paris"),
        "a row keeps its attributes"
    );
    assert_eq!(snap.len(), 2);

    // The history is the applied changes (the port does not say in which
    // order it lists them; the console reverses it for newest first).
    let history =
        |t, k: Option<&'static str>| async move { by_seq(s.history(t, k).await.expect("history")) };
    assert_eq!(history(None, None).await, log);
    let pick = |f: &dyn Fn(&MappingChange) -> bool| -> Vec<MappingChange> {
        log.iter().filter(|c| f(c)).cloned().collect()
    };
    let p1 = history(Some(MappingTable::Project), Some("p1")).await;
    assert_eq!(
        p1.iter().map(|c| c.reason.as_str()).collect::<Vec<_>>(),
        ["add p1", "move p1", "drop p1"]
    );
    assert_eq!(
        history(Some(MappingTable::Project), None).await,
        pick(&|c| c.table == MappingTable::Project)
    );
    assert_eq!(history(None, Some("p1")).await, p1);
    assert!(history(Some(MappingTable::Employee), Some("p1"))
        .await
        .is_empty());

    // Nothing to apply changes nothing.
    let version = s.version().await.expect("version");
    assert!(s.apply(Vec::new()).await.expect("empty").is_empty());
    assert_eq!(s.version().await.expect("version"), version);
    assert_eq!(history(None, None).await.len(), log.len());
}

/// A proposal of the contracts: project `key` moves from C-OLD to C-NEW,
/// with a preview listing one changed entry.
fn proposed(key: &str, status: ProposalStatus) -> ProposedChange {
    use timepost::impact::{EntryImpact, ImpactPreview, LineView, Outcome};
    let line = LineView {
        tier: "regular".into(),
        minutes: 60,
        account: "5000-labour".into(),
        party: "employee E-100".into(),
        customer: Some("C-OLD".into()),
        service_item: Some("SVC-DEV".into()),
        class: None,
        department: None,
        payroll_item: Some("PI-REG".into()),
    };
    ProposedChange {
        id: 0,
        change: mapping_change(
            MappingTable::Project,
            key,
            Some("C-OLD"),
            Some("C-NEW"),
            "client renamed",
        ),
        further: Vec::new(),
        preview: ImpactPreview {
            from: "2026-03-01".parse().expect("date"),
            to: "2026-03-31".parse().expect("date"),
            mapping_version: 31,
            entries_checked: 4,
            changed: vec![EntryImpact {
                key: format!("toggl:555:{key}"),
                work_date: "2026-03-03".parse().expect("date"),
                worker: "Ann".into(),
                project: Some(key.into()),
                before: Outcome::Postable {
                    lines: vec![line.clone()],
                },
                after: Outcome::Postable {
                    lines: vec![LineView {
                        customer: Some("C-NEW".into()),
                        ..line
                    }],
                },
                differs: vec!["customer".into()],
            }],
            entries_replayed: 9,
            entries_affected: 3,
            entries_in_reach: 5,
        },
        status,
        needs_approval: status == ProposalStatus::Pending,
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        applied_seq: None,
    }
}

/// Proposed mapping changes: `propose` assigns each a new id and stores it
/// whole (preview, further changes); `proposals` lists them newest first,
/// by status; `settle` replaces one only while its stored status is the
/// expected one (else `Conflict`), so of two concurrent decisions one wins.
pub async fn pending_changes(p: &dyn PendingChanges) {
    assert!(p.proposals(None).await.expect("list").is_empty());
    let a_in = proposed("p-acme", ProposalStatus::Pending);
    let mut b_in = proposed("p-globex", ProposalStatus::Applied);
    b_in.further = vec![mapping_change(
        MappingTable::Project,
        "p-globex-2",
        None,
        Some("C-NEW"),
        "import",
    )];
    b_in.applied_seq = Some(7);
    let mut c_in = proposed("p-initech", ProposalStatus::Rejected);
    c_in.needs_approval = true;
    c_in.decided_by = Some("bob".into());
    c_in.decided_at = Some(at("2026-03-09T13:00:00Z"));
    c_in.decision_reason = Some("wrong client".into());
    let mut stored = Vec::new();
    for input in [&a_in, &b_in, &c_in] {
        let out = p.propose(input.clone()).await.expect("propose");
        assert_ne!(out.id, 0, "the store assigns an id");
        assert_eq!(
            ProposedChange {
                id: 0,
                ..out.clone()
            },
            *input,
            "returned as given, with its id"
        );
        stored.push(out);
    }
    let (a, b, c) = (stored[0].clone(), stored[1].clone(), stored[2].clone());
    assert!(a.id != b.id && b.id != c.id && a.id != c.id, "distinct ids");
    for s in &stored {
        assert_eq!(
            p.proposal(s.id).await.expect("read").as_ref(),
            Some(s),
            "reads back whole"
        );
    }
    let unknown = a.id.max(b.id).max(c.id) + 1_000;
    assert_eq!(p.proposal(unknown).await.expect("read"), None);
    assert_eq!(
        p.proposals(None).await.expect("list"),
        vec![c.clone(), b.clone(), a.clone()],
        "newest first"
    );
    for (status, want) in [
        (ProposalStatus::Pending, &a),
        (ProposalStatus::Applied, &b),
        (ProposalStatus::Rejected, &c),
    ] {
        assert_eq!(
            p.proposals(Some(status)).await.expect("list"),
            vec![want.clone()],
            "{status:?}"
        );
    }

    // Two admins decide the pending one at once: exactly one settle wins.
    let mut approved = a.clone();
    approved.status = ProposalStatus::Applied;
    approved.decided_by = Some("bob".into());
    approved.decided_at = Some(at("2026-03-10T09:00:00Z"));
    approved.applied_seq = Some(32);
    let mut rejected = a.clone();
    rejected.status = ProposalStatus::Rejected;
    rejected.decided_by = Some("cat".into());
    rejected.decided_at = Some(at("2026-03-10T09:00:01Z"));
    rejected.decision_reason = Some("too broad".into());
    let (x, y) = tokio::join!(
        p.settle(&approved, ProposalStatus::Pending),
        p.settle(&rejected, ProposalStatus::Pending)
    );
    assert!(x.is_ok() != y.is_ok(), "one wins: {x:?} {y:?}");
    let (winner, loser) = if x.is_ok() {
        (approved, y)
    } else {
        (rejected, x)
    };
    assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");
    assert_eq!(p.proposal(a.id).await.expect("read"), Some(winner.clone()));
    assert!(p
        .proposals(Some(ProposalStatus::Pending))
        .await
        .expect("list")
        .is_empty());
    let now_all = vec![c.clone(), b.clone(), winner.clone()];
    assert_eq!(p.proposals(None).await.expect("list"), now_all);
    assert_eq!(
        p.proposals(Some(winner.status)).await.expect("list"),
        now_all
            .iter()
            .filter(|q| q.status == winner.status)
            .cloned()
            .collect::<Vec<_>>()
    );

    // A settle expecting a status the proposal no longer has changes nothing.
    let mut late = winner.clone();
    late.decision_reason = Some("late".into());
    let stale = p.settle(&late, ProposalStatus::Pending).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(p.proposal(a.id).await.expect("read"), Some(winner.clone()));
    // Expecting the status it has replaces it.
    p.settle(&late, winner.status).await.expect("settle again");
    assert_eq!(p.proposal(a.id).await.expect("read"), Some(late));
    // A proposal that does not exist is not settled into existence.
    let mut ghost = a.clone();
    ghost.id = unknown;
    assert!(p.settle(&ghost, ProposalStatus::Pending).await.is_err());
    assert_eq!(p.proposal(unknown).await.expect("read"), None);
}

/// A session key of the contracts (the stores take a SHA-256 in hex).
fn session_key(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// Console sessions: `put_session` writes (replaces) the session of a key,
/// `session` reads it back whole, `delete_session` removes it; keys are
/// independent. An expired session may still be returned (the caller
/// checks `expires_at`), but then unchanged.
pub async fn session_store(s: &dyn SessionStore) {
    let (k1, k2, k3) = (session_key(1), session_key(2), session_key(3));
    assert!(s.session(&k1).await.expect("read").is_none());
    let fran = StoredSession {
        name: "fran@example.com".into(),
        role: "finance".into(),
        named: true,
        csrf: "csrf-1".into(),
        expires_at: Utc::now() + Duration::hours(1),
    };
    s.put_session(&k1, &fran).await.expect("put");
    assert_eq!(s.session(&k1).await.expect("read"), Some(fran.clone()));
    assert!(s.session(&k2).await.expect("read").is_none(), "per key");

    let admin = StoredSession {
        name: "admin".into(),
        role: "admin".into(),
        named: false,
        csrf: "csrf-2".into(),
        expires_at: Utc::now() + Duration::minutes(30),
    };
    s.put_session(&k2, &admin).await.expect("put");
    let renewed = StoredSession {
        role: "admin".into(),
        csrf: "csrf-3".into(),
        expires_at: fran.expires_at + Duration::hours(1),
        ..fran.clone()
    };
    s.put_session(&k1, &renewed).await.expect("replace");
    assert_eq!(s.session(&k1).await.expect("read"), Some(renewed));
    assert_eq!(s.session(&k2).await.expect("read"), Some(admin.clone()));

    s.delete_session(&k1).await.expect("delete");
    assert!(s.session(&k1).await.expect("read").is_none(), "deleted");
    assert_eq!(s.session(&k2).await.expect("read"), Some(admin), "kept");

    let expired = StoredSession {
        name: "kim".into(),
        role: "admin".into(),
        named: true,
        csrf: "csrf-4".into(),
        expires_at: Utc::now() - Duration::minutes(1),
    };
    s.put_session(&k3, &expired).await.expect("put expired");
    match s.session(&k3).await.expect("read") {
        None => {}
        Some(kept) => assert_eq!(kept, expired, "kept past expiry, unchanged"),
    }
    s.delete_session(&k2).await.expect("delete");
    s.delete_session(&k3).await.expect("delete");
    assert!(s.session(&k2).await.expect("read").is_none());
    assert!(s.session(&k3).await.expect("read").is_none());
}

/// An alert state of the contracts, first fired `fired` minutes after
/// `t0` and last seen `seen` minutes after it.
fn alert(key: &str, t0: chrono::DateTime<Utc>, fired: i64, seen: i64) -> AlertState {
    AlertState {
        key: key.into(),
        rule: key.split(':').next().unwrap_or(key).into(),
        said: format!("{key} needs attention"),
        link: format!("/console/alerts#{key}"),
        owner: None,
        first_fired: t0 + Duration::minutes(fired),
        last_seen: t0 + Duration::minutes(seen),
        notified: None,
        cleared: None,
    }
}

/// Sorted by condition key (the port does not order `active_alerts`).
fn by_key(mut states: Vec<AlertState>) -> Vec<AlertState> {
    states.sort_by(|a, b| a.key.cmp(&b.key));
    states
}

/// Alert state, condition key → state: `put_alert` replaces the key's
/// state, `active_alerts` lists those not cleared, `alert_history` the
/// recent ones, cleared included, newest `last_seen` first, at most
/// `limit`.
pub async fn alert_store(s: &dyn AlertStore) {
    // Recent instants: a store may drop states cleared long ago.
    let t0 = Utc::now() - Duration::hours(2);
    assert!(s.active_alerts().await.expect("active").is_empty());
    assert!(s.alert_history(10).await.expect("history").is_empty());

    let disk = alert("queue:dlq", t0, 0, 1);
    let mut held = alert("held:csv:ws#a%1", t0, 2, 3);
    held.owner = Some("pm@example.com".into());
    held.notified = Some(t0 + Duration::minutes(2));
    let mut token = alert("token:xero", t0, 0, 4);
    token.notified = Some(t0 + Duration::minutes(1));
    token.cleared = Some(t0 + Duration::minutes(5));
    for a in [&disk, &held, &token] {
        s.put_alert(a).await.expect("put");
    }
    assert_eq!(
        by_key(s.active_alerts().await.expect("active")),
        by_key(vec![disk.clone(), held.clone()]),
        "the cleared one is not active"
    );
    assert_eq!(
        s.alert_history(10).await.expect("history"),
        vec![token.clone(), held.clone(), disk.clone()],
        "newest last_seen first, cleared included"
    );
    assert_eq!(
        s.alert_history(2).await.expect("history"),
        vec![token.clone(), held.clone()]
    );
    assert!(s.alert_history(0).await.expect("history").is_empty());

    // A later pass still finds the first one and notifies: replaced, not added.
    let mut disk2 = disk.clone();
    disk2.last_seen = t0 + Duration::minutes(10);
    disk2.notified = Some(t0 + Duration::minutes(10));
    s.put_alert(&disk2).await.expect("put");
    // A pass no longer finds the second one: cleared, still in the history.
    let mut held2 = held.clone();
    held2.cleared = Some(t0 + Duration::minutes(11));
    s.put_alert(&held2).await.expect("put");
    assert_eq!(
        s.active_alerts().await.expect("active"),
        vec![disk2.clone()]
    );
    assert_eq!(
        s.alert_history(10).await.expect("history"),
        vec![disk2.clone(), token.clone(), held2.clone()]
    );

    // The cleared condition starts again: active once more.
    let token2 = alert("token:xero", t0, 12, 12);
    s.put_alert(&token2).await.expect("put");
    assert_eq!(
        by_key(s.active_alerts().await.expect("active")),
        by_key(vec![disk2.clone(), token2.clone()])
    );
    assert_eq!(
        s.alert_history(10).await.expect("history"),
        vec![token2, disk2, held2]
    );
}

/// A queue message of the contracts (entry `id`).
pub fn entry_message(id: &str) -> QueueMessage {
    QueueMessage::Entry {
        entry: Box::new(E::new(id, "u-ann", "2026-03-03", "09:00", "12:00").build()),
        received_at: Utc::now(),
    }
}

/// How long the queue contract keeps a received message in flight: longer
/// than the contract runs, so nothing reappears by itself.
const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(300);
/// A retry delay longer than the contract runs.
const LATER: std::time::Duration = std::time::Duration::from_secs(600);

/// Receive everything visible now (at most `max` per call).
async fn receive_all(q: &dyn Queue, max: usize) -> Vec<Received> {
    q.receive(max, IN_FLIGHT).await.expect("receive")
}

/// The ingest queue and its dead-letter queue: each message sent is
/// received once (hidden while in flight, counted by `depth` until
/// deleted); `retry_later` brings it back after its delay with its
/// receives counted, `retry_uncounted` without counting that receive;
/// `dead_letter` parks it with its reason, listed (without being consumed)
/// and counted until `redrive` puts it back on the ingest queue.
pub async fn queue(q: &dyn Queue) {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration as Wait;
    assert_eq!(q.depth().await.expect("depth"), 0);
    assert!(q.dead_letters(10).await.expect("dead letters").is_empty());
    assert_eq!(q.dead_letter_count().await.expect("count"), 0);

    let approval = QueueMessage::Approval {
        source: Source::Csv,
        workspace: "ws".into(),
        user_id: "u-bob".into(),
        from: "2026-03-02".parse().expect("date"),
        to: "2026-03-08".parse().expect("date"),
        status: timepost::model::ApprovalStatus::Approved,
        by: "mgr".into(),
    };
    let redrive = QueueMessage::Redrive {
        key: key("q-e"),
        by: "fran".into(),
    };
    // a: deleted; b: retried later; c: retried at once, then uncounted;
    // d, e: parked (e redriven); f: retried later, uncounted.
    let sent = vec![
        entry_message("q-a"),
        entry_message("q-b"),
        entry_message("q-c"),
        approval,
        redrive,
        entry_message("q-f"),
    ];
    let ids = q.send_batch(&sent).await.expect("send");
    assert_eq!(ids.len(), sent.len(), "an id per message");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), sent.len());
    assert_eq!(q.depth().await.expect("depth"), 6);

    // Each once, at most `max` per receive, as sent.
    let mut got = receive_all(q, 2).await;
    assert!(!got.is_empty() && got.len() <= 2, "{}", got.len());
    got.extend(receive_all(q, 10).await);
    assert_eq!(got.len(), 6, "every message");
    let mut by_name: BTreeMap<&str, Received> = BTreeMap::new();
    for r in &got {
        let i = ids
            .iter()
            .position(|id| *id == r.id)
            .unwrap_or_else(|| panic!("received id {} was not sent", r.id));
        assert_eq!(r.message, sent[i], "message {i} reads back as sent");
        assert_eq!(r.receive_count, 1);
        let name = ["a", "b", "c", "d", "e", "f"][i];
        assert!(by_name.insert(name, r.clone()).is_none(), "{name} twice");
    }
    assert!(receive_all(q, 10).await.is_empty(), "hidden in flight");
    assert_eq!(q.depth().await.expect("depth"), 6, "in flight still counts");

    q.delete(&by_name["a"].receipt).await.expect("delete");
    assert_eq!(q.depth().await.expect("depth"), 5, "deleted");

    q.retry_later(&by_name["b"].receipt, LATER)
        .await
        .expect("retry later");
    q.retry_uncounted(&by_name["f"].receipt, LATER)
        .await
        .expect("retry uncounted later");
    assert!(receive_all(q, 10).await.is_empty(), "not before the delay");
    assert_eq!(q.depth().await.expect("depth"), 5, "waiting still counts");

    q.retry_later(&by_name["c"].receipt, Wait::ZERO)
        .await
        .expect("retry now");
    let again = receive_all(q, 10).await;
    assert_eq!(again.len(), 1, "only c is visible");
    assert_eq!(again[0].id, by_name["c"].id, "the same message");
    assert_eq!(again[0].message, sent[2]);
    assert_eq!(again[0].receive_count, 2, "both receives counted");
    q.retry_uncounted(&again[0].receipt, Wait::ZERO)
        .await
        .expect("retry uncounted");
    let third = receive_all(q, 10).await;
    assert_eq!(third.len(), 1, "c once more (or its copy)");
    assert_eq!(third[0].message, sent[2]);
    assert!(
        third[0].receive_count <= again[0].receive_count,
        "the uncounted receive is not charged: {} after {}",
        third[0].receive_count,
        again[0].receive_count
    );
    q.delete(&third[0].receipt).await.expect("delete");
    assert_eq!(q.depth().await.expect("depth"), 4, "b, d, e, f");

    // Parking: off the ingest queue, listed with the reason and counted.
    q.dead_letter(
        &by_name["d"].receipt,
        "Employee u-x is not mapped.",
        Some("unmapped_employee"),
    )
    .await
    .expect("park d");
    q.dead_letter(&by_name["e"].receipt, "Something else.", None)
        .await
        .expect("park e");
    assert_eq!(q.depth().await.expect("depth"), 2, "b and f are left");
    assert_eq!(q.dead_letter_count().await.expect("count"), 2);
    let parked = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(parked.len(), 2);
    let find = |m: &QueueMessage| {
        parked
            .iter()
            .find(|d| d.message == *m)
            .cloned()
            .unwrap_or_else(|| panic!("{m:?} is not parked: {parked:?}"))
    };
    let (dd, de) = (find(&sent[3]), find(&sent[4]));
    assert_eq!(
        (dd.reason.as_str(), dd.code.as_deref(), dd.receive_count),
        ("Employee u-x is not mapped.", Some("unmapped_employee"), 1)
    );
    assert_eq!(
        (de.reason.as_str(), de.code.as_deref(), de.receive_count),
        ("Something else.", None, 1)
    );
    assert_ne!(dd.id, de.id);
    // Listing does not consume.
    let ids_of = |v: &[timepost::ports::DeadLetter]| -> BTreeSet<String> {
        v.iter().map(|d| d.id.clone()).collect()
    };
    assert_eq!(
        ids_of(&q.dead_letters(10).await.expect("again")),
        ids_of(&parked)
    );
    assert_eq!(q.dead_letters(1).await.expect("limit").len(), 1);
    assert_eq!(q.dead_letter_count().await.expect("count"), 2);
    // A settled message cannot be parked.
    assert!(q
        .dead_letter(&by_name["a"].receipt, "gone", None)
        .await
        .is_err());
    assert_eq!(q.dead_letter_count().await.expect("count"), 2);

    // Redrive: back on the ingest queue, no longer parked.
    q.redrive(&de.id).await.expect("redrive");
    let left = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(ids_of(&left), BTreeSet::from([dd.id.clone()]));
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    assert_eq!(q.depth().await.expect("depth"), 3);
    let back = receive_all(q, 10).await;
    assert_eq!(back.len(), 1, "e is visible again");
    assert_eq!(back[0].message, sent[4]);
    q.delete(&back[0].receipt).await.expect("delete");
    // Redriving what is not parked fails and disturbs nothing.
    assert!(q.redrive(&de.id).await.is_err(), "redriven already");
    assert!(q.redrive("no-such-dead-letter").await.is_err());
    assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    assert_eq!(q.depth().await.expect("depth"), 2);
}
