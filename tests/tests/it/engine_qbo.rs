//! The whole pipeline posting to the fake QBO: the sandbox week with
//! injected faults ends exactly as on the sandbox ledger, with nothing
//! posted twice; and rollback of an import batch.

use std::collections::BTreeMap;
use std::time::Duration;

use timepost::ports::{EntryStore, Journal, MappingStore, QueueMessage};
use timepost::rollback::{rollback, RollbackError, RollbackOptions};
use timepost::state::Status;
use timepost_tests::fake_common::Inject;
use timepost_tests::qbo_fake::{QboFakeLimits, QboServer};
use timepost_tests::*;

fn fake_limits() -> QboFakeLimits {
    QboFakeLimits {
        minute: Duration::from_millis(6_000),
        ..Default::default()
    }
}

async fn run_dataset(stack: &timepost::stack::LocalStack) -> BTreeMap<String, Status> {
    let mappings = stack
        .store
        .snapshot()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for e in entries_from_csv_lenient(stack, &mappings, timepost::demo::ENTRIES) {
        timepost::intake::enqueue_entries(&stack.store, vec![e])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        timepost::worker::drain_all(&stack.engine, &stack.store, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let all = stack.store.all().await.unwrap_or_else(|e| panic!("{e}"));
    all.into_iter()
        .map(|s| (s.entry.key.to_string(), s.status()))
        .collect()
}

#[tokio::test]
async fn the_sandbox_week_lands_in_qbo_once_despite_faults() {
    let reference_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let reference = run_dataset(&sandbox_stack(reference_dir.path(), None).await).await;

    let server = QboServer::start("9130", sandbox_chart(), fake_limits(), "rt-initial").await;
    for f in [
        Inject::DropAfter,
        Inject::StatusAfter(502),
        Inject::Throttle(Some(0.05)),
        Inject::TimeoutAfter(Duration::from_secs(3)),
        Inject::StatusBefore(500),
        Inject::ExpireTokens,
        Inject::DropAfter,
    ] {
        server.inject(f);
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stack = sandbox_stack(dir.path(), Some(&server)).await;
    let got = run_dataset(&stack).await;
    assert_eq!(
        got, reference,
        "every entry ends as it does on the sandbox ledger"
    );
    assert!(server.lock().injected.is_empty(), "every fault was met");

    // What timepost believes is in the books is exactly what QBO holds.
    let states = stack.store.all().await.unwrap_or_else(|e| panic!("{e}"));
    let mut believed = 0;
    let active = server.active("TimeActivity");
    for s in &states {
        assert!(Status::ALL.contains(&s.status()));
        if s.status() == Status::Exception {
            assert!(s.reason.is_some(), "{} has a reason", s.entry.key);
        }
        for r in &s.records {
            let id: u64 = r.id.parse().unwrap_or_default();
            let rec = active
                .get(&id)
                .unwrap_or_else(|| panic!("{} record {} not in QBO", s.entry.key, r.id));
            assert_eq!(rec.sync_token.to_string(), r.sync_token);
            believed += 1;
        }
    }
    assert_eq!(
        active.len(),
        believed,
        "no orphan or duplicate records in QBO"
    );
    assert_eq!(server.counters().duplicates, 0);
    assert!(believed > 10);
}

fn row(id: &str, updated: &str, day: u32, start: &str, end: &str, notes: &str) -> String {
    format!(
        "{id},acme-consulting,{updated},u-ann,ann.lee@example.com,Ann Lee,employee,,America/Los_Angeles,,2026-03-{day:02} {start},2026-03-{day:02} {end},,p-acme-web,Acme website,cl-acme,Acme Corp,t-dev,Development,,true,150.00,USD,{notes},approved,web,false,false,"
    )
}

async fn post_batch(stack: &timepost::stack::LocalStack, rows: &[String], batch: &str) {
    let mappings = stack
        .store
        .snapshot()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let csv = format!("{}\n{}\n", entries_header(), rows.join("\n"));
    for e in entries_from_csv(stack, &mappings, &csv) {
        let msg = QueueMessage::Entry {
            entry: Box::new(e),
            received_at: chrono::Utc::now(),
        };
        stack
            .engine
            .handle(&msg, batch)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The books' content, without ids and tokens.
fn content(server: &QboServer) -> Vec<String> {
    let mut v: Vec<String> = server
        .active("TimeActivity")
        .values()
        .map(|r| {
            let mut b = r.body.clone();
            if let Some(o) = b.as_object_mut() {
                for k in ["Id", "SyncToken", "MetaData"] {
                    o.remove(k);
                }
            }
            b.to_string()
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn rollback_puts_the_books_back_as_they_were_before_the_batch() {
    let server = QboServer::start("9130", sandbox_chart(), fake_limits(), "rt-initial").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stack = sandbox_stack(dir.path(), Some(&server)).await;
    let opts = |batch: &str, force: bool, hold: bool| RollbackOptions {
        batch_id: batch.into(),
        force,
        hold,
        by: "test".into(),
    };

    // Batch A: two days, the first with daily overtime (10 h).
    post_batch(
        &stack,
        &[
            row("r-1", "2026-03-09T18:00:00Z", 2, "08:00", "18:00", "Sprint"),
            row(
                "r-2",
                "2026-03-09T18:00:00Z",
                3,
                "09:00",
                "17:00",
                "Reviews",
            ),
        ],
        "batch-A",
    )
    .await;
    let before = content(&server);
    assert_eq!(before.len(), 3, "regular + overtime + one regular");

    // Batch B: r-1 edited (shorter, no overtime), r-3 new.
    post_batch(
        &stack,
        &[
            row("r-1", "2026-03-10T18:00:00Z", 2, "08:00", "16:00", "Sprint"),
            row(
                "r-3",
                "2026-03-10T18:00:00Z",
                4,
                "09:00",
                "12:00",
                "Support",
            ),
        ],
        "batch-B",
    )
    .await;
    assert_ne!(content(&server), before);

    let report = rollback(
        &stack.store,
        &stack.store,
        stack.ledger.clone(),
        &stack.config.worker,
        &opts("batch-B", false, false),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(content(&server), before, "the books are as before batch B");
    assert_eq!(report.entries.len(), 2);
    let r1 = stack
        .store
        .get(&key_of("r-1"))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("r-1"));
    assert_eq!(
        r1.status(),
        Status::Ignored,
        "its newer version is not posted"
    );
    assert_eq!(r1.records.len(), 2, "the lines before the batch are back");
    let r3 = stack
        .store
        .get(&key_of("r-3"))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("r-3"));
    assert_eq!(r3.status(), Status::Ignored);
    assert!(r3.records.is_empty() && r3.note.as_deref().unwrap_or("").contains("not posted"));
    assert!(
        !stack
            .store
            .by_batch("rollback-batch-B")
            .await
            .unwrap_or_default()
            .is_empty(),
        "the rollback is journaled"
    );
    // Running it again changes nothing.
    let again = rollback(
        &stack.store,
        &stack.store,
        stack.ledger.clone(),
        &stack.config.worker,
        &opts("batch-B", false, false),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.entries.len(), again.already_done), (0, 2));
    assert_eq!(content(&server), before);

    // Batch C posts r-4; batch D edits it: rolling back C is refused…
    post_batch(
        &stack,
        &[row(
            "r-4",
            "2026-03-11T18:00:00Z",
            5,
            "09:00",
            "11:00",
            "Admin",
        )],
        "batch-C",
    )
    .await;
    post_batch(
        &stack,
        &[row(
            "r-4",
            "2026-03-12T18:00:00Z",
            5,
            "09:00",
            "12:00",
            "Admin",
        )],
        "batch-D",
    )
    .await;
    let refused = rollback(
        &stack.store,
        &stack.store,
        stack.ledger.clone(),
        &stack.config.worker,
        &opts("batch-C", false, false),
    )
    .await;
    match refused {
        Err(e @ RollbackError::EditedAfterwards { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("batch-D") && msg.contains("--force"), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(content(&server).len(), 4);
    // …unless forced; held on request.
    rollback(
        &stack.store,
        &stack.store,
        stack.ledger.clone(),
        &stack.config.worker,
        &opts("batch-C", true, true),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(content(&server), before);
    let r4 = stack
        .store
        .get(&key_of("r-4"))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("r-4"));
    assert_eq!(r4.status(), Status::Held);
    assert!(
        r4.open_since.is_some(),
        "a rolled-back, held entry counts as open from the rollback (time-to-resolve KPI)"
    );
    assert_eq!(
        r4.reason.map(|r| r.code),
        Some(timepost::exceptions::ExceptionCode::RolledBack)
    );
    assert_eq!(server.counters().duplicates, 0);
}

fn key_of(id: &str) -> timepost::model::EntryKey {
    timepost::model::EntryKey::new(timepost::model::Source::Csv, "acme-consulting", id)
}

/// QuickBooks has no change feed for time activities, so the sweep reads
/// the books by date and compares: a record of ours deleted and one edited
/// in QuickBooks by someone else are posted again and set back, a record
/// keyed in by hand is left alone, and the reads are counted as reads.
#[tokio::test]
async fn the_sweep_reads_quickbooks_back_and_restores_what_someone_else_changed() {
    use timepost::ports::AuditLog;
    let server = QboServer::start("9130", sandbox_chart(), fake_limits(), "rt-initial").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stack = sandbox_stack(dir.path(), Some(&server)).await;
    let rows = [
        row("t1", "2026-03-02T18:00:00Z", 2, "09:00", "12:00", "Design"),
        row("t2", "2026-03-03T18:00:00Z", 3, "09:00", "13:00", "Build"),
        row("t3", "2026-03-04T18:00:00Z", 4, "09:00", "11:00", "Review"),
    ];
    post_batch(&stack, &rows, "b1").await;
    let hours = |server: &QboServer| -> BTreeMap<u64, (i64, i64)> {
        server
            .active("TimeActivity")
            .into_iter()
            .map(|(id, r)| {
                let n = |f: &str| r.body[f].as_i64().unwrap_or_default();
                (id, (n("Hours"), n("Minutes")))
            })
            .collect()
    };
    let desired = hours(&server);
    assert_eq!(desired.len(), 3);
    let first = stack
        .engine
        .sweep_every("s", Duration::ZERO, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.books.is_some_and(|b| b.started));

    let ids: Vec<u64> = desired.keys().copied().collect();
    server.delete_by_hand(ids[0]);
    server.edit_by_hand(ids[1], "Hours", serde_json::json!(7));
    let theirs = server.create_by_hand(serde_json::json!({"NameOf": "Employee",
        "EmployeeRef": {"value": "E-100"}, "TxnDate": "2026-03-03", "Hours": 1, "Minutes": 15,
        "BillableStatus": "NotBillable", "Description": "keyed in QBO"}));
    let (reads, queries, batches) = (
        stack
            .engine
            .counters
            .ledger_reads
            .load(std::sync::atomic::Ordering::Relaxed),
        server.counters().queries,
        server.counters().batch_calls,
    );

    let swept = stack
        .engine
        .sweep_every("s", Duration::ZERO, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = swept
        .books
        .unwrap_or_else(|| panic!("the books were not read"));
    assert!(b.how.starts_with("read_books"), "{}", b.how);
    assert!(b.how.contains("TimeActivity"), "{}", b.how);
    assert_eq!(
        (b.deleted, b.changed, b.weeks, b.busy),
        (1, 1, 1, 0),
        "{b:?}"
    );
    assert!(b.moved);
    // One read of the week's dates, then one per changed entry; no CDC.
    assert_eq!(b.reads, 1 + 1 + 2, "{b:?}");
    assert_eq!(
        stack
            .engine
            .counters
            .ledger_reads
            .load(std::sync::atomic::Ordering::Relaxed)
            - reads,
        b.reads
    );
    assert!(server.counters().queries >= queries + 3);
    assert!(
        server.counters().batch_calls > batches,
        "the week was converged"
    );

    // The books hold what the week should: same durations, and someone
    // else's record as they keyed it.
    let now = hours(&server);
    let mut ours: Vec<(i64, i64)> = now
        .iter()
        .filter(|(id, _)| **id != theirs)
        .map(|(_, h)| *h)
        .collect();
    let mut want: Vec<(i64, i64)> = desired.values().copied().collect();
    ours.sort();
    want.sort();
    assert_eq!(ours, want);
    assert_eq!(now.get(&theirs), Some(&(1, 15)));
    assert_eq!(
        server.active("TimeActivity")[&theirs].sync_token,
        0,
        "someone else's record was not touched"
    );
    assert!(
        !now.contains_key(&ids[0]),
        "the deleted record stays deleted"
    );
    let states = stack.store.all().await.unwrap_or_else(|e| panic!("{e}"));
    for s in &states {
        assert_eq!(s.status(), Status::Posted, "{}", s.entry.key);
        for r in &s.records {
            let id: u64 = r.id.parse().unwrap_or_default();
            assert_eq!(
                server.active("TimeActivity")[&id].sync_token.to_string(),
                r.sync_token
            );
        }
    }
    let audit = stack
        .store
        .recent(10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let said: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == "changed_in_books")
        .map(|a| a.detail.as_str())
        .collect();
    assert!(
        said.iter()
            .any(|l| l.contains("was deleted in QuickBooks outside timepost")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("changed in QuickBooks outside timepost") && l.contains("7:00 h")),
        "{said:?}"
    );
}
