//! `dry_run::dry_run_from` on the port traits, with the local SQLite store
//! standing in for the deployed stack: the queued messages are peeked, not
//! consumed; the worker-weeks they touch are copied, so a re-split of a
//! posted week shows up as the sibling updates it would send; nothing in
//! the source store, queue or books changes.

use timepost::dry_run::{dry_run_from, peek, DryRunSource};
use timepost::ledger::LedgerOp;
use timepost::model::{EntryKey, Source};
use timepost::ports::{EntryStore, Queue, QueueMessage};
use timepost::state::Status;
use timepost_tests::kit::{deliver, sandbox_stack, send, E};

fn key(id: &str) -> EntryKey {
    EntryKey::new(Source::Csv, "ws", id)
}

#[tokio::test]
async fn peek_leaves_every_message_on_the_queue() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    for i in 0..25 {
        let e = E::new(&format!("p{i}"), "u-ann", "2026-03-03", "09:00", "10:00").build();
        send(
            &s,
            QueueMessage::Entry {
                entry: Box::new(e),
                received_at: chrono::Utc::now(),
            },
        )
        .await;
    }
    let seen = peek(&s.store, 100).await.expect("peek");
    assert_eq!(seen.len(), 25);
    assert_eq!(s.store.depth().await.expect("depth"), 25);
    // Visible again at once: the next consumer receives them all.
    let again = s
        .store
        .receive(100, std::time::Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(again.len(), 25);
}

/// Ann's posted week: five 8 h days = 40 h, no overtime.
fn ann_week() -> Vec<timepost::model::NormalisedEntry> {
    [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ]
    .iter()
    .enumerate()
    .map(|(i, d)| E::new(&format!("o{i}"), "u-ann", d, "08:00", "16:00").build())
    .collect()
}

async fn queue(s: &timepost::stack::LocalStack, e: timepost::model::NormalisedEntry) {
    send(
        s,
        QueueMessage::Entry {
            entry: Box::new(e),
            received_at: chrono::Utc::now(),
        },
    )
    .await;
}

async fn dry_run(s: &timepost::stack::LocalStack) -> timepost::dry_run::DryRun {
    let scratch = tempfile::tempdir().expect("scratch");
    dry_run_from(
        &s.config,
        DryRunSource {
            entries: &s.store,
            mappings: &s.store,
            queue: &s.store,
        },
        scratch.path(),
    )
    .await
    .expect("dry run")
}

/// (operation, tier, minutes) of every line the dry run would send for `id`.
fn lines_of(run: &timepost::dry_run::DryRun, id: &str) -> Vec<(String, String, i64)> {
    run.requests
        .iter()
        .filter(|r| r.entry == key(id).to_string())
        .flat_map(|r| {
            let lines = match &r.op {
                LedgerOp::Create { lines } | LedgerOp::Update { lines, .. } => lines.clone(),
                LedgerOp::Delete { .. } => Vec::new(),
            };
            lines
                .into_iter()
                .map(|l| (r.operation.to_string(), l.tier, l.minutes))
        })
        .collect()
}

#[tokio::test]
async fn a_queued_entry_is_split_against_its_posted_week_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    deliver(&s, &ann_week()).await;
    let books_before = s.sandbox.records().expect("records");
    let states_before = s.store.all().await.expect("all");
    // A Saturday entry is queued, not processed: 6 h beyond the 40 h.
    queue(
        &s,
        E::new("o5", "u-ann", "2026-03-07", "08:00", "14:00").build(),
    )
    .await;

    let run = dry_run(&s).await;

    // All overtime: only true when the posted week was copied alongside.
    assert_eq!(
        lines_of(&run, "o5"),
        vec![("create".to_string(), "overtime".to_string(), 360)]
    );
    let o5 = run
        .outcomes
        .iter()
        .find(|o| o.key == key("o5") && !o.sibling)
        .expect("the queued entry's outcome");
    assert_eq!(o5.status, Status::Posted);
    assert_eq!(s.store.depth().await.expect("depth"), 1, "still queued");
    assert_eq!(s.store.all().await.expect("all"), states_before);
    assert_eq!(s.sandbox.records().expect("records"), books_before);
    assert!(s.store.get(&key("o5")).await.expect("get").is_none());
}

#[tokio::test]
async fn a_queued_edit_shows_the_update_and_the_siblings_it_resplits() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let mut week = ann_week();
    week.push(E::new("o5", "u-ann", "2026-03-07", "08:00", "14:00").build());
    deliver(&s, &week).await;
    let states_before = s.store.all().await.expect("all");
    // Monday edited down to 2 h: the week falls to 40 h, Saturday's
    // overtime becomes regular time.
    queue(
        &s,
        E::new("o0", "u-ann", "2026-03-02", "08:00", "10:00")
            .updated("2026-03-10T00:00:00Z")
            .build(),
    )
    .await;

    let run = dry_run(&s).await;

    assert_eq!(
        lines_of(&run, "o0"),
        vec![("update".to_string(), "regular".to_string(), 120)]
    );
    assert_eq!(
        lines_of(&run, "o5"),
        vec![("update".to_string(), "regular".to_string(), 360)]
    );
    assert_eq!(s.store.depth().await.expect("depth"), 1, "still queued");
    assert_eq!(s.store.all().await.expect("all"), states_before);
}
