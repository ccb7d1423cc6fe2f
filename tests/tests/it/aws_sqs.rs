//! The SQS queue adapter against moto server through the real aws-sdk-sqs
//! client: the queue port's contract (`contracts::queue`), batching, the
//! redrive policy, parking with reasons, listing and redriving the DLQ,
//! unreadable bodies, retries, depth, and the real worker draining an SQS
//! queue into the sandbox ledger.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use timepost::aws::SqsQueue;
use timepost::exceptions::ExceptionCode;
use timepost::model::{EntryKey, Source};
use timepost::ports::{EntryStore, Queue, QueueMessage, StoreError};
use timepost::state::Status;
use timepost_tests::kit::{sandbox_stack, E};
use timepost_tests::moto;

/// A fresh queue pair on moto (redrive after `max_receives`), or `None`
/// when no moto is running outside CI.
async fn queue(max_receives: u32) -> Option<(SqsQueue, aws_sdk_sqs::Client)> {
    let sdk = moto::sdk_config().await?;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (q, dlq) = SqsQueue::create_queues(&client, &moto::unique("ingest"), max_receives)
        .await
        .expect("create queues");
    Some((SqsQueue::new(client.clone(), q, dlq), client))
}

fn entry_msg(id: &str) -> QueueMessage {
    QueueMessage::Entry {
        entry: Box::new(E::new(id, "u-ann", "2026-03-03", "09:00", "12:00").build()),
        received_at: Utc::now(),
    }
}

fn id_of(m: &QueueMessage) -> String {
    match m {
        QueueMessage::Entry { entry, .. } => entry.key.id.clone(),
        QueueMessage::Redrive { key, .. } => key.id.clone(),
        QueueMessage::Approval { user_id, .. } => user_id.clone(),
    }
}

const VIS: Duration = Duration::from_secs(30);

/// The queue port's contract (the same as on SQLite, in `store_contracts`).
#[tokio::test]
async fn queue_contract_on_sqs() {
    let Some((q, _)) = queue(5).await else { return };
    timepost_tests::contracts::queue(&q).await;
}

#[tokio::test]
async fn a_batch_of_25_is_received_exactly_once() {
    let Some((q, _)) = queue(5).await else { return };
    let msgs: Vec<_> = (0..25).map(|i| entry_msg(&format!("m{i}"))).collect();
    let ids = q.send_batch(&msgs).await.expect("send");
    assert_eq!(ids.len(), 25);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25, "distinct ids");
    assert_eq!(q.depth().await.expect("depth"), 25);

    let got = q.receive(100, VIS).await.expect("receive");
    assert_eq!(got.len(), 25);
    let names: HashSet<String> = got.iter().map(|r| id_of(&r.message)).collect();
    assert_eq!(names.len(), 25, "each message once");
    // The ids returned by send are the ids received.
    let received: HashSet<&String> = got.iter().map(|r| &r.id).collect();
    assert_eq!(received, ids.iter().collect());
    assert!(got.iter().all(|r| r.receive_count == 1));
    // Hidden while in flight: nothing more to receive, but still counted.
    assert!(q.receive(10, VIS).await.expect("receive").is_empty());
    assert_eq!(q.depth().await.expect("depth"), 25);
    for r in &got {
        q.delete(&r.receipt).await.expect("delete");
    }
    assert_eq!(q.depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn a_message_failing_five_times_lands_in_the_dlq_by_the_redrive_policy() {
    let Some((q, _)) = queue(5).await else { return };
    q.send_batch(&[entry_msg("poison")]).await.expect("send");
    let mut counts = Vec::new();
    for _ in 0..5 {
        // Visibility 0: back at once, never deleted (one per call, as
        // the loop within a call would receive it again at once).
        let got = q.receive(1, Duration::ZERO).await.expect("receive");
        assert_eq!(got.len(), 1);
        counts.push(got[0].receive_count);
    }
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    // The sixth receive finds it moved.
    assert!(q
        .receive(1, Duration::ZERO)
        .await
        .expect("receive")
        .is_empty());
    assert_eq!(q.depth().await.expect("depth"), 0);
    let dl = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dl.len(), 1);
    assert_eq!(id_of(&dl[0].message), "poison");
    assert!(dl[0].reason.contains("redrive policy"), "{}", dl[0].reason);
    assert_eq!(dl[0].code, None);
}

#[tokio::test]
async fn dead_letter_keeps_the_reason_and_redrive_puts_it_back() {
    let Some((q, _)) = queue(5).await else { return };
    q.send_batch(&[entry_msg("a"), entry_msg("b")])
        .await
        .expect("send");
    let got = q.receive(10, VIS).await.expect("receive");
    assert_eq!(got.len(), 2);
    let a = got.iter().find(|r| id_of(&r.message) == "a").expect("a");
    let b = got.iter().find(|r| id_of(&r.message) == "b").expect("b");
    q.dead_letter(
        &a.receipt,
        "Employee u-x is not mapped.",
        Some("unmapped_employee"),
    )
    .await
    .expect("park a");
    q.dead_letter(&b.receipt, "Something else.", None)
        .await
        .expect("park b");
    assert_eq!(q.depth().await.expect("depth"), 0, "removed from ingest");

    // Listing does not consume: twice gives the same two.
    let dl = q.dead_letters(10).await.expect("list");
    assert_eq!(dl.len(), 2);
    let again = q.dead_letters(10).await.expect("list again");
    assert_eq!(
        dl.iter().map(|d| &d.id).collect::<HashSet<_>>(),
        again.iter().map(|d| &d.id).collect::<HashSet<_>>()
    );
    let da = dl
        .iter()
        .find(|d| id_of(&d.message) == "a")
        .expect("a parked");
    assert_eq!(da.reason, "Employee u-x is not mapped.");
    assert_eq!(da.code.as_deref(), Some("unmapped_employee"));
    assert_eq!(da.receive_count, 1);
    assert!(da.parked_at <= Utc::now());
    let db = dl
        .iter()
        .find(|d| id_of(&d.message) == "b")
        .expect("b parked");
    assert_eq!(db.code, None);
    // The raw view names the ingest message it came from.
    let raw = q.parked(10).await.expect("parked");
    let ra = raw.iter().find(|p| p.id == da.id).expect("raw a");
    assert_eq!(ra.source_message_id.as_deref(), Some(a.id.as_str()));

    // Per-message redrive: back on the ingest queue, gone from the DLQ.
    q.redrive(&da.id).await.expect("redrive");
    let left = q.dead_letters(10).await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(id_of(&left[0].message), "b");
    let back = q.receive(10, VIS).await.expect("receive");
    assert_eq!(back.len(), 1);
    assert_eq!(id_of(&back[0].message), "a");

    // Unknown id: NotFound, and nothing disturbed.
    let err = q.redrive("no-such-id").await.expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(q.dead_letters(10).await.expect("list").len(), 1);

    // Selected redrive by the original (ingest) id works too.
    let done = q
        .redrive_selected(std::slice::from_ref(&b.id))
        .await
        .expect("redrive selected");
    assert_eq!(done.len(), 1);
    assert!(q.dead_letters(10).await.expect("list").is_empty());
}

#[tokio::test]
async fn redrive_all_empties_the_dlq_onto_the_ingest_queue() {
    let Some((q, _)) = queue(5).await else { return };
    let msgs: Vec<_> = (0..12).map(|i| entry_msg(&format!("r{i}"))).collect();
    q.send_batch(&msgs).await.expect("send");
    for r in q.receive(20, VIS).await.expect("receive") {
        q.dead_letter(&r.receipt, "parked", Some("x"))
            .await
            .expect("park");
    }
    // Counted without receiving them (the dashboard's figure).
    assert_eq!(q.dead_letter_count().await.expect("count"), 12);
    assert_eq!(q.dead_letters(50).await.expect("list").len(), 12);
    assert_eq!(q.dead_letter_count().await.expect("count"), 12);
    assert_eq!(q.redrive_all().await.expect("redrive all").len(), 12);
    assert!(q.dead_letters(50).await.expect("list").is_empty());
    assert_eq!(q.dead_letter_count().await.expect("count"), 0);
    assert_eq!(q.receive(20, VIS).await.expect("receive").len(), 12);
}

#[tokio::test]
async fn an_unreadable_body_is_parked_not_returned_nor_lost() {
    let Some((q, client)) = queue(5).await else {
        return;
    };
    // Written by something else (an older or newer version).
    client
        .send_message()
        .queue_url(q.queue_url())
        .message_body("{\"type\":\"telegram\",\"x\":1}")
        .send()
        .await
        .expect("raw send");
    q.send_batch(&[entry_msg("ok")]).await.expect("send");
    let got = q.receive(10, VIS).await.expect("receive");
    assert_eq!(got.len(), 1, "only the readable one is returned");
    assert_eq!(id_of(&got[0].message), "ok");
    let parked = q.parked(10).await.expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].code.as_deref(), Some("UNREADABLE_MESSAGE"));
    assert!(parked[0].body.contains("telegram"));
    assert!(
        parked[0].reason.contains("cannot be read"),
        "{}",
        parked[0].reason
    );
    // Not a QueueMessage, so not among the port's dead letters.
    assert!(q.dead_letters(10).await.expect("list").is_empty());
}

#[tokio::test]
async fn retry_later_makes_it_reappear_and_counts_receives() {
    let Some((q, _)) = queue(5).await else { return };
    q.send_batch(&[entry_msg("t")]).await.expect("send");
    let first = q.receive(10, VIS).await.expect("receive");
    assert_eq!(first.len(), 1);
    assert!(
        q.receive(10, VIS).await.expect("receive").is_empty(),
        "hidden"
    );
    q.retry_later(&first[0].receipt, Duration::ZERO)
        .await
        .expect("retry");
    let second = q.receive(10, VIS).await.expect("receive");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].receive_count, 2);
}

#[tokio::test]
async fn parking_a_receipt_this_handle_never_saw_is_refused() {
    let Some((q, _)) = queue(5).await else { return };
    let err = q
        .dead_letter("not-a-receipt", "x", None)
        .await
        .expect_err("unknown receipt");
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn the_worker_drains_sqs_into_the_ledger_and_parks_unmapped_entries() {
    let Some((q, _)) = queue(5).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let s = sandbox_stack(dir.path()).await;
    let good: Vec<_> = (0..3)
        .map(|i| QueueMessage::Entry {
            entry: Box::new(
                E::new(
                    &format!("g{i}"),
                    "u-ann",
                    &format!("2026-03-0{}", i + 2),
                    "09:00",
                    "11:00",
                )
                .build(),
            ),
            received_at: Utc::now(),
        })
        .collect();
    let unmapped = QueueMessage::Entry {
        entry: Box::new(E::new("k", "u-new", "2026-03-03", "09:00", "17:00").build()),
        received_at: Utc::now(),
    };
    let mut all = good.clone();
    all.push(unmapped);
    q.send_batch(&all).await.expect("send");
    timepost::worker::drain(&s.engine, &q).await.expect("drain");

    for i in 0..3 {
        let st = s
            .store
            .get(&EntryKey::new(Source::Csv, "ws", format!("g{i}")))
            .await
            .expect("get")
            .expect("state");
        assert_eq!(st.status(), Status::Posted, "g{i}: {:?}", st.reason);
    }
    assert_eq!(s.sandbox.records().expect("records").len(), 3);
    let k = s
        .store
        .get(&EntryKey::new(Source::Csv, "ws", "k"))
        .await
        .expect("get")
        .expect("state");
    assert_eq!(k.status(), Status::Exception);
    assert_eq!(q.depth().await.expect("depth"), 0, "every message settled");
    let dl = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dl.len(), 1);
    assert_eq!(id_of(&dl[0].message), "k");
    assert_eq!(
        dl[0].code.as_deref(),
        Some(ExceptionCode::UnmappedEmployee.as_str())
    );
    assert!(dl[0].reason.contains("u-new"), "{}", dl[0].reason);
}
