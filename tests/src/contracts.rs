//! Port contracts that every adapter must meet, run against SQLite (in
//! `tests/convergent_posting.rs`) and DynamoDB on moto (`tests/aws_dynamo.rs`).

use chrono::{Duration, Utc};
use timepost::intent::{Intent, IntentOutcome};
use timepost::ledger::LedgerOp;
use timepost::model::{EntryKey, Source};
use timepost::ports::{Journal, WorkerWeek};

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
