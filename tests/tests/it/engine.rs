//! The engine end to end on the local stack: SQLite store and queue, the
//! sandbox ledger, the sandbox mappings and rules.

use std::collections::BTreeMap;

use timepost::exceptions::ExceptionCode;
use timepost::ledger::sandbox::Fault;
use timepost::ledger::LedgerError;
use timepost::mapping::{diff, MappingRow, MappingTable};
use timepost::model::{ApprovalStatus, EntryKey, Source};
use timepost::ports::{EntryStore, Journal, MappingStore, Queue, QueueMessage};
use timepost::state::Status;
use timepost_tests::kit::{deliver, sandbox_stack, send, E};

fn key(id: &str) -> EntryKey {
    EntryKey::new(Source::Csv, "ws", id)
}

async fn status(stack: &timepost::stack::LocalStack, id: &str) -> Status {
    stack.store.get(&key(id)).await.unwrap().unwrap().status()
}

/// (entry key, tier) → minutes, as the ledger holds them.
async fn books(stack: &timepost::stack::LocalStack) -> BTreeMap<(String, String), i64> {
    let mut m = BTreeMap::new();
    for r in stack.sandbox.records().unwrap() {
        *m.entry((r.entry_key, r.line.tier)).or_default() += r.line.minutes;
    }
    m
}

#[tokio::test]
async fn posts_once_and_ignores_exact_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("a", "u-ann", "2026-03-03", "09:00", "12:00").build();
    let out = deliver(&s, &[e.clone(), e.clone(), e]).await;
    assert_eq!(out.iter().filter(|o| o.is_duplicate()).count(), 2);
    assert_eq!(s.sandbox.records().unwrap().len(), 1);
    assert_eq!(status(&s, "a").await, Status::Posted);
}

#[tokio::test]
async fn a_lost_ledger_response_does_not_double_post() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    // The record is created but the answer is lost, twice; the retries
    // carry the same idempotency key and get the original record back.
    s.sandbox.inject(Fault::LoseResponse);
    s.sandbox.inject(Fault::LoseResponse);
    let e = E::new("a", "u-ann", "2026-03-03", "09:00", "12:00").build();
    deliver(&s, &[e]).await;
    assert_eq!(s.sandbox.records().unwrap().len(), 1);
    assert_eq!(status(&s, "a").await, Status::Posted);
    let journal = s.store.by_entry(&key("a")).await.unwrap();
    assert_eq!(journal.len(), 1, "one posting journaled");
}

#[tokio::test]
async fn transient_failures_retry_then_park_in_the_dlq_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    // 3 attempts per delivery × 5 deliveries = 15 failures exhaust it.
    for _ in 0..15 {
        s.sandbox
            .inject(Fault::Before(LedgerError::Transient("503".into())));
    }
    let e = E::new("a", "u-ann", "2026-03-03", "09:00", "12:00").build();
    send(
        &s,
        QueueMessage::Entry {
            entry: Box::new(e),
            received_at: chrono::Utc::now(),
        },
    )
    .await;
    timepost::worker::drain_all(&s.engine, &s.store, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let st = s.store.get(&key("a")).await.unwrap().unwrap();
    assert_eq!(st.status(), Status::Exception);
    assert!(
        st.open_since.is_some(),
        "a parked entry counts as open from when it was parked (time-to-resolve KPI)"
    );
    assert_eq!(st.reason.unwrap().code, ExceptionCode::LedgerUnavailable);
    let dl = s.store.dead_letters(10).await.unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(s.store.dead_letter_count().await.unwrap(), 1);
    assert_eq!(dl[0].code.as_deref(), Some("LEDGER_UNAVAILABLE"));
    assert!(s.sandbox.records().unwrap().is_empty());
    // Redrive once the ledger is back: posted exactly once.
    s.store.redrive(&dl[0].id).await.unwrap();
    assert_eq!(s.store.dead_letter_count().await.unwrap(), 0);
    timepost::worker::drain(&s.engine, &s.store).await.unwrap();
    assert_eq!(status(&s, "a").await, Status::Posted);
    assert!(s
        .store
        .get(&key("a"))
        .await
        .unwrap()
        .unwrap()
        .resolved_at
        .is_some());
    assert_eq!(s.sandbox.records().unwrap().len(), 1);
}

#[tokio::test]
async fn unmapped_employee_is_an_exception_then_posts_once_after_fix_and_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("k", "u-new", "2026-03-03", "09:00", "17:00").build();
    deliver(&s, &[e]).await;
    let st = s.store.get(&key("k")).await.unwrap().unwrap();
    assert_eq!(st.status(), Status::Exception);
    let reason = st.reason.unwrap();
    assert_eq!(reason.code, ExceptionCode::UnmappedEmployee);
    assert!(reason.message.contains("u-new"), "{}", reason.message);
    let dl = s.store.dead_letters(10).await.unwrap();
    assert_eq!(dl.len(), 1);
    // Fix the mapping (E-107 exists in the sandbox chart), redrive twice.
    let m = s.store.snapshot().await.unwrap();
    let fix = diff(
        &m,
        &[MappingRow::new(MappingTable::Employee, "u-new", "E-107")],
        false,
        "fin",
        chrono::Utc::now(),
        "new hire",
    );
    s.store.apply(fix).await.unwrap();
    s.store.redrive(&dl[0].id).await.unwrap();
    send(
        &s,
        QueueMessage::Redrive {
            key: key("k"),
            by: "fin".into(),
        },
    )
    .await;
    timepost::worker::drain(&s.engine, &s.store).await.unwrap();
    let st = s.store.get(&key("k")).await.unwrap().unwrap();
    assert_eq!(st.status(), Status::Posted, "{:?} {:?}", st.reason, st.note);
    assert_eq!(s.sandbox.records().unwrap().len(), 1);
}

#[tokio::test]
async fn held_entries_post_by_themselves_once_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("r", "u-ann", "2026-03-03", "09:00", "12:00")
        .project("p-new")
        .build();
    deliver(&s, &[e]).await;
    assert_eq!(status(&s, "r").await, Status::Held);
    assert!(
        s.store.dead_letters(10).await.unwrap().is_empty(),
        "held is not an exception"
    );
    let m = s.store.snapshot().await.unwrap();
    s.store
        .apply(diff(
            &m,
            &[MappingRow::new(MappingTable::Project, "p-new", "C-ACME")],
            false,
            "a",
            chrono::Utc::now(),
            "x",
        ))
        .await
        .unwrap();
    s.engine.recheck_held("b-test").await.unwrap();
    assert_eq!(status(&s, "r").await, Status::Posted);
}

#[tokio::test]
async fn the_ledger_refusing_a_reference_is_an_exception_with_its_words() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let m = s.store.snapshot().await.unwrap();
    // Map to a customer the books do not have.
    s.store
        .apply(diff(
            &m,
            &[MappingRow::new(MappingTable::Project, "p-ghost", "C-GHOST")],
            false,
            "a",
            chrono::Utc::now(),
            "x",
        ))
        .await
        .unwrap();
    let e = E::new("g", "u-ann", "2026-03-03", "09:00", "12:00")
        .project("p-ghost")
        .build();
    deliver(&s, &[e]).await;
    let st = s.store.get(&key("g")).await.unwrap().unwrap();
    assert_eq!(st.status(), Status::Exception);
    let r = st.reason.unwrap();
    assert_eq!(r.code, ExceptionCode::LedgerUnknownReference);
    assert!(r.message.contains("C-GHOST"));
    assert!(r.vendor_message.is_some());
}

#[tokio::test]
async fn approval_gate_waits_releases_and_waits_again_after_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let v1 = E::new("w", "u-eve", "2026-03-03", "09:00", "12:00")
        .approval(ApprovalStatus::Unknown)
        .build();
    deliver(&s, std::slice::from_ref(&v1)).await;
    assert_eq!(status(&s, "w").await, Status::AwaitingApproval);
    // The manager approves the week.
    let approve = QueueMessage::Approval {
        source: Source::Csv,
        workspace: "ws".into(),
        user_id: "u-eve".into(),
        from: "2026-03-02".parse().unwrap(),
        to: "2026-03-08".parse().unwrap(),
        status: ApprovalStatus::Approved,
        by: "manager".into(),
    };
    send(&s, approve.clone()).await;
    timepost::worker::drain(&s.engine, &s.store).await.unwrap();
    assert_eq!(status(&s, "w").await, Status::Posted);
    // An edit after approval waits again; the books keep the approved version.
    let v2 = E::new("w", "u-eve", "2026-03-03", "09:00", "13:00")
        .approval(ApprovalStatus::Unknown)
        .updated("2026-03-10T00:00:00Z")
        .build();
    deliver(&s, &[v2]).await;
    let st = s.store.get(&key("w")).await.unwrap().unwrap();
    assert_eq!(st.status(), Status::AwaitingApproval);
    assert_eq!(st.posted_minutes(), 180);
    send(&s, approve).await;
    timepost::worker::drain(&s.engine, &s.store).await.unwrap();
    let st = s.store.get(&key("w")).await.unwrap().unwrap();
    assert_eq!(st.status(), Status::Posted);
    assert_eq!(st.posted_minutes(), 240);
    assert_eq!(
        s.sandbox.records().unwrap().len(),
        1,
        "updated in place, not posted twice"
    );
}

#[tokio::test]
async fn delete_after_posting_voids_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let v1 = E::new("d", "u-gus", "2026-03-03", "09:00", "12:00").build();
    let v2 = E::new("d", "u-gus", "2026-03-03", "09:00", "12:00")
        .updated("2026-03-10T00:00:00Z")
        .deleted()
        .build();
    deliver(&s, &[v1, v2]).await;
    assert_eq!(status(&s, "d").await, Status::Voided);
    assert!(s.sandbox.records().unwrap().is_empty());
}

#[tokio::test]
async fn a_late_edit_changes_the_overtime_split_of_the_rest_of_the_week() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    // Ann (California rules): five 8 h days = 40 h, no overtime.
    let days = [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ];
    let week: Vec<_> = days
        .iter()
        .enumerate()
        .map(|(i, d)| E::new(&format!("o{i}"), "u-ann", d, "08:00", "16:00").build())
        .collect();
    deliver(&s, &week).await;
    assert!(books(&s).await.keys().all(|(_, t)| t == "regular"));
    // A Saturday entry arrives: 6 h beyond 40 h in the week → weekly overtime.
    deliver(
        &s,
        &[E::new("o5", "u-ann", "2026-03-07", "08:00", "14:00").build()],
    )
    .await;
    let b = books(&s).await;
    let ot: i64 = b
        .iter()
        .filter(|((_, t), _)| t == "overtime")
        .map(|(_, m)| m)
        .sum();
    let total: i64 = b.values().sum();
    assert_eq!(ot, 360);
    assert_eq!(total, 46 * 60);
    // Monday is edited down to 2 h: the week falls to 40 h; the overtime goes away.
    deliver(
        &s,
        &[E::new("o0", "u-ann", "2026-03-02", "08:00", "10:00")
            .updated("2026-03-10T00:00:00Z")
            .build()],
    )
    .await;
    let b = books(&s).await;
    assert!(b.keys().all(|(_, t)| t == "regular"), "{b:?}");
    assert_eq!(b.values().sum::<i64>(), 40 * 60);
}

#[tokio::test]
async fn an_entry_moved_to_another_week_resplits_the_old_week() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let mut entries: Vec<_> = [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ]
    .iter()
    .enumerate()
    .map(|(i, d)| E::new(&format!("m{i}"), "u-bob", d, "08:00", "16:00").build())
    .collect();
    entries.push(E::new("m5", "u-bob", "2026-03-07", "08:00", "16:00").build());
    deliver(&s, &entries).await;
    let ot: i64 = books(&s)
        .await
        .iter()
        .filter(|((_, t), _)| t == "overtime")
        .map(|(_, m)| m)
        .sum();
    assert_eq!(ot, 480);
    // Saturday's entry is re-dated into the next week.
    deliver(
        &s,
        &[E::new("m5", "u-bob", "2026-03-09", "08:00", "16:00")
            .updated("2026-03-11T00:00:00Z")
            .build()],
    )
    .await;
    let b = books(&s).await;
    assert!(b.keys().all(|(_, t)| t == "regular"), "{b:?}");
    assert_eq!(b.values().sum::<i64>(), 48 * 60);
}

#[tokio::test]
async fn concurrent_claims_of_one_entry_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    let k = key("c");
    let ttl = std::time::Duration::from_secs(60);
    assert!(s.store.claim(&k, "w1", ttl).await.unwrap());
    assert!(!s.store.claim(&k, "w2", ttl).await.unwrap());
    s.store.release(&k, "w1").await.unwrap();
    assert!(s.store.claim(&k, "w2", ttl).await.unwrap());
    // An expired claim can be taken over.
    assert!(s
        .store
        .claim(&key("x"), "w1", std::time::Duration::ZERO)
        .await
        .unwrap());
    assert!(s.store.claim(&key("x"), "w2", ttl).await.unwrap());
}

#[tokio::test]
async fn stale_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_stack(dir.path()).await;
    deliver(
        &s,
        &[E::new("s", "u-ann", "2026-03-03", "09:00", "10:00").build()],
    )
    .await;
    let st = s.store.get(&key("s")).await.unwrap().unwrap();
    s.store.put(&st).await.unwrap();
    assert!(matches!(
        s.store.put(&st).await,
        Err(timepost::ports::StoreError::Conflict(_))
    ));
}

/// (entry key, tier, minutes) of every record the sandbox ledger holds.
fn ledger_lines(s: &timepost::stack::LocalStack) -> Vec<(String, String, i64)> {
    s.sandbox
        .records()
        .unwrap()
        .into_iter()
        .map(|r| (r.entry_key, r.line.tier, r.line.minutes))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_workers_split_each_week_like_one_sequential_worker() {
    use std::sync::Arc;
    use timepost::engine::Engine;
    use timepost::ledger::Ledger;
    use timepost_tests::week_race::{
        final_versions, messages, minutes_by_week_and_tier, race, scenario, shuffle, Paced,
    };

    let dir = tempfile::tempdir().unwrap();
    let entries = scenario();
    let finals = final_versions(&entries);
    let reference = sandbox_stack(&dir.path().join("sequential")).await;
    for m in messages(&entries) {
        reference.engine.handle(&m, "sequential").await.unwrap();
    }
    let want_lines = {
        let mut l = ledger_lines(&reference);
        l.sort();
        l
    };
    let want = minutes_by_week_and_tier(&finals, &want_lines);
    assert!(
        want.keys().any(|(_, tier)| tier == "overtime"),
        "the scenario splits weekly overtime: {want:?}"
    );

    for seed in [7u64, 42, 2026] {
        let s = sandbox_stack(&dir.path().join(format!("race-{seed}"))).await;
        let store = Arc::new(s.store.clone());
        let ledger: Arc<dyn Ledger> = Arc::new(Paced(s.ledger.clone()));
        let engines = (0..8)
            .map(|_| {
                Arc::new(Engine::new(
                    store.clone(),
                    store.clone(),
                    store.clone(),
                    ledger.clone(),
                    s.config.rules.clone(),
                    s.config.worker.clone(),
                ))
            })
            .collect();
        let mut arrival = messages(&entries);
        shuffle(&mut arrival, seed);
        race(engines, arrival).await;

        let mut lines = ledger_lines(&s);
        lines.sort();
        assert_eq!(
            minutes_by_week_and_tier(&finals, &lines),
            want,
            "seed {seed}: minutes per worker-week and tier"
        );
        assert_eq!(lines, want_lines, "seed {seed}: the same lines per entry");
        // Posted exactly once: one record per entry and tier, one create
        // per entry in the journal, every entry posted.
        let mut seen = std::collections::BTreeSet::new();
        for (key, tier, _) in &lines {
            assert!(seen.insert((key, tier)), "seed {seed}: {key} {tier} twice");
        }
        for (k, e) in &finals {
            let creates = s
                .store
                .by_entry(&e.key)
                .await
                .unwrap()
                .iter()
                .filter(|r| r.operation == "create")
                .count();
            assert_eq!(creates, 1, "seed {seed}: {k} created {creates} times");
            let st = s.store.get(&e.key).await.unwrap().unwrap();
            assert_eq!(st.status(), Status::Posted, "seed {seed}: {k}");
            assert_eq!(st.entry, *e, "seed {seed}: {k} ends at its newest version");
        }
    }
}
