//! Port contracts that every adapter must meet, run against SQLite
//! (`tests/tests/it/store_contracts.rs`, `tests/tests/it/convergent_posting.rs`,
//! `tests/tests/it/reconcile.rs`) and DynamoDB on moto
//! (`tests/tests/it/aws_dynamo.rs`).

use chrono::{Duration, NaiveDate, Utc};
use timepost::intent::{Intent, IntentOutcome};
use timepost::ledger::LedgerOp;
use timepost::model::NormalisedEntry;
use timepost::model::{EntryKey, Source};
use timepost::ports::{
    AuditLog, AuditRecord, EntryStore, Journal, StatusCursor, StoreError, WatermarkStore,
    WorkerWeek,
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
    st.status = status;
    st.updated_at = at(updated);
    st
}

/// The tracker ids of `states`, in order.
pub fn ids(states: &[EntryState]) -> Vec<String> {
    states.iter().map(|s| s.entry.key.id.clone()).collect()
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
    stored.status = Status::Posted;
    assert_eq!(s.put(&stored).await.expect("update"), 2);
    // A writer still holding revision 1 loses.
    assert!(matches!(s.put(&stored).await, Err(StoreError::Conflict(_))));
    let now = s.get(&key("a")).await.expect("get").expect("present");
    assert_eq!((now.revision, now.status), (2, Status::Posted));
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
        ids(&s.week(&ann_week).await.expect("week")),
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
    b.status = Status::Posted;
    s.put(&b).await.expect("move");
    assert_eq!(ids(&s.week(&ann_week).await.expect("week")), ["a", "e"]);
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
