//! The findings of the convergent-posting issue, one test each, on the
//! local stack (SQLite store and queue, the sandbox ledger): what was seen
//! under crashes and a flaky ledger, and what must hold instead. The
//! seeded simulation (`tests/sim.rs`) covers the same ground at random.

use std::collections::BTreeMap;
use std::time::Duration;

use timepost::engine::Engine;
use timepost::exceptions::{Exception, ExceptionCode};
use timepost::ledger::sandbox::Fault;
use timepost::ledger::LedgerError;
use timepost::model::{ApprovalStatus, EntryKey, Source};
use timepost::ports::{EntryStore, Journal, Queue, QueueMessage, Received, WorkerWeek};
use timepost::stack::LocalStack;
use timepost::state::Status;
use timepost::week_claim::week_claim_key;
use timepost::worker::{settle, Settled};
use timepost_tests::kit::{deliver, sandbox_stack, send, E};

fn key(id: &str) -> EntryKey {
    EntryKey::new(Source::Csv, "ws", id)
}

/// (entry key, tier) → minutes, as the books hold them.
fn books(s: &LocalStack) -> BTreeMap<(String, String), i64> {
    let mut m = BTreeMap::new();
    for r in s.sandbox.records().expect("records") {
        *m.entry((r.entry_key, r.line.tier)).or_default() += r.line.minutes;
    }
    m
}

fn overtime(b: &BTreeMap<(String, String), i64>) -> i64 {
    b.iter()
        .filter(|((_, t), _)| t != "regular")
        .map(|(_, m)| m)
        .sum()
}

/// Ann's week: five 8 h days (40 h, no overtime yet).
fn full_week() -> Vec<timepost::model::NormalisedEntry> {
    [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ]
    .iter()
    .enumerate()
    .map(|(i, d)| E::new(&format!("w{i}"), "u-ann", d, "08:00", "16:00").build())
    .collect()
}

/// Finding 1: a crash after the ledger call and before the entry-state
/// write, then a newer version of the entry: the first record is adopted
/// from the write-ahead intent, never created a second time.
#[tokio::test]
async fn a_crash_after_the_call_then_a_new_version_updates_the_one_record() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let v1 = E::new("a", "u-ann", "2026-03-03", "08:00", "16:00").build();
    // The call goes through but its answer is lost, and every read of the
    // books fails, so the worker gives up with the intent still open:
    // what a crash right after the call leaves behind.
    for _ in 0..3 {
        s.sandbox.inject(Fault::LoseResponse);
    }
    let mut failing = (*s.engine).clone_for_test();
    failing.ledger = std::sync::Arc::new(Unreadable(s.ledger.clone()));
    send(&s, entry_message(&v1)).await;
    let (_, settled) = next_settled(&s, &failing).await;
    assert!(matches!(settled, Settled::Retry(_)), "{settled:?}");
    assert_eq!(
        s.sandbox.records().expect("records").len(),
        1,
        "the record was created"
    );
    assert_eq!(
        s.store
            .open_intents(&key("a"))
            .await
            .expect("intents")
            .len(),
        1,
        "the intent stays open"
    );
    // A newer version arrives (the old message is still queued too).
    let v2 = E::new("a", "u-ann", "2026-03-03", "08:00", "12:00")
        .updated("2026-03-10T00:00:00Z")
        .build();
    deliver(&s, &[v2]).await;
    timepost::worker::drain_all(&s.engine, &s.store, Duration::from_secs(10))
        .await
        .expect("drain");
    let b = books(&s);
    assert_eq!(
        b.values().sum::<i64>(),
        240,
        "one record of 4 h, not two: {b:?}"
    );
    assert_eq!(s.sandbox.records().expect("records").len(), 1);
    assert!(s
        .store
        .open_intents(&key("a"))
        .await
        .expect("intents")
        .is_empty());
    let st = s.store.get(&key("a")).await.expect("get").expect("state");
    assert_eq!(st.status(), Status::Posted);
    assert_eq!(st.posted_minutes(), 240);
}

/// Finding 2: a message that finds its week held by another worker is put
/// back without using up its retries, however often; a dead process's
/// claims are taken over when the store is opened again.
#[tokio::test]
async fn waiting_on_another_worker_never_dead_letters_a_healthy_message() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("a", "u-ann", "2026-03-03", "08:00", "12:00").build();
    let week = week_claim_key(&WorkerWeek::of(&e));
    // Another (live) worker holds the week.
    assert!(s
        .store
        .claim(&week, "someone-else", Duration::from_secs(600))
        .await
        .expect("claim"));
    send(&s, entry_message(&e)).await;
    for _ in 0..(s.engine.settings.max_receives * 3) {
        let (r, got) = next_settled(&s, &s.engine).await;
        assert!(matches!(got, Settled::Requeued(_)), "{got:?}");
        assert!(
            r.receive_count <= 1,
            "a busy wait counted: {}",
            r.receive_count
        );
        s.store
            .retry_later(&r.receipt, Duration::ZERO)
            .await
            .expect("visible");
    }
    assert!(s.store.dead_letters(10).await.expect("dlq").is_empty());
    s.store
        .release(&week, "someone-else")
        .await
        .expect("release");
    timepost::worker::drain_all(&s.engine, &s.store, Duration::from_secs(10))
        .await
        .expect("drain");
    assert_eq!(
        s.store
            .get(&key("a"))
            .await
            .expect("get")
            .expect("state")
            .status(),
        Status::Posted
    );

    // A process that died holding a claim: its pid no longer runs.
    let dead = format!("pid:{}:gone", u32::MAX - 7);
    assert!(s
        .store
        .claim(&week, &dead, Duration::from_secs(600))
        .await
        .expect("claim"));
    assert_eq!(s.store.release_dead_claims().expect("release"), 1);
    assert!(s
        .store
        .claim(&week, "me", Duration::from_secs(1))
        .await
        .expect("claim"));
}

/// Finding 2, second part: an approval parked in the dead-letter queue
/// leaves no entry waiting without a reason.
#[tokio::test]
async fn a_dead_lettered_approval_shows_its_reason_on_its_entries() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("p", "u-ann", "2026-03-03", "08:00", "12:00")
        .approval(ApprovalStatus::Pending)
        .build();
    deliver(&s, &[e]).await;
    assert_eq!(
        s.store
            .get(&key("p"))
            .await
            .expect("get")
            .expect("state")
            .status(),
        Status::AwaitingApproval
    );
    // Every attempt to apply the approval fails transiently.
    for _ in 0..(3 * s.engine.settings.max_receives) {
        s.sandbox
            .inject(Fault::Before(LedgerError::Transient("503".into())));
    }
    send(
        &s,
        QueueMessage::Approval {
            source: Source::Csv,
            workspace: "ws".into(),
            user_id: "u-ann".into(),
            from: "2026-03-02".parse().expect("date"),
            to: "2026-03-08".parse().expect("date"),
            status: ApprovalStatus::Approved,
            by: "manager@example.com".into(),
        },
    )
    .await;
    timepost::worker::drain_all(&s.engine, &s.store, Duration::from_secs(30))
        .await
        .expect("drain");
    assert_eq!(s.store.dead_letters(10).await.expect("dlq").len(), 1);
    let st = s.store.get(&key("p")).await.expect("get").expect("state");
    assert_eq!(st.status(), Status::Exception);
    let reason = st.reason.expect("a reason");
    assert!(
        reason
            .message
            .contains("approval of this time by manager@example.com"),
        "{}",
        reason.message
    );
}

/// Finding 4: a sibling's split going A → B → A → B over ordinary edits
/// never reuses an idempotency key for a different request.
#[tokio::test]
async fn a_split_going_back_and_forth_never_reuses_a_key() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    deliver(&s, &full_week()).await;
    let sat = |to: &str, at: &str| {
        E::new("sat", "u-ann", "2026-03-07", "08:00", to)
            .updated(at)
            .build()
    };
    // Saturday's length moves the weekly overtime of the week back and forth.
    deliver(&s, &[sat("14:00", "2026-03-10T00:00:00Z")]).await;
    deliver(&s, &[sat("10:00", "2026-03-10T01:00:00Z")]).await;
    deliver(&s, &[sat("14:00", "2026-03-10T02:00:00Z")]).await;
    deliver(&s, &[sat("10:00", "2026-03-10T03:00:00Z")]).await;
    deliver(&s, &[sat("14:00", "2026-03-10T04:00:00Z")]).await;
    for st in s.store.all().await.expect("all") {
        assert_eq!(
            st.status(),
            Status::Posted,
            "{}: {:?}",
            st.entry.key,
            st.reason
        );
    }
    let b = books(&s);
    assert_eq!(overtime(&b), 360, "{b:?}");
    assert_eq!(b.values().sum::<i64>(), 46 * 60);
}

/// Finding 5: a transient failure while re-splitting a sibling, then the
/// retry meets the duplicate check: the week is converged all the same.
#[tokio::test]
async fn a_resplit_cut_short_by_a_transient_error_is_finished_by_the_retry() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let sat = E::new("sat", "u-ann", "2026-03-07", "08:00", "14:00").build();
    let mut week = full_week();
    week.push(sat);
    deliver(&s, &week).await;
    assert_eq!(overtime(&books(&s)), 360);
    // Monday is edited down to 2 h: the week falls to 40 h and Saturday's
    // overtime must become regular time. Monday's own update goes
    // through; every attempt at Saturday's fails, so the settle stops.
    s.sandbox.inject_after(
        1,
        (0..3)
            .map(|_| Fault::Before(LedgerError::Transient("503".into())))
            .collect(),
    );
    let monday = E::new("w0", "u-ann", "2026-03-02", "08:00", "10:00")
        .updated("2026-03-10T00:00:00Z")
        .build();
    send(&s, entry_message(&monday)).await;
    let (r, got) = next_settled(&s, &s.engine).await;
    assert!(matches!(got, Settled::Retry(_)), "{got:?}");
    let st = s.store.get(&key("w0")).await.expect("get").expect("state");
    assert_eq!((st.status(), st.posted_minutes()), (Status::Posted, 120));
    assert_eq!(overtime(&books(&s)), 360, "Saturday still holds overtime");
    assert_eq!(s.store.dirty_weeks(10).await.expect("dirty").len(), 1);
    // The retry is a duplicate of a posted version, and still converges.
    s.store
        .retry_later(&r.receipt, Duration::ZERO)
        .await
        .expect("visible");
    timepost::worker::drain_all(&s.engine, &s.store, Duration::from_secs(10))
        .await
        .expect("drain");
    let b = books(&s);
    assert_eq!(
        overtime(&b),
        0,
        "the week's re-split reached the books: {b:?}"
    );
    assert_eq!(b.values().sum::<i64>(), 40 * 60);
    // The sweep clears the mark.
    s.engine.sweep("sweep").await.expect("sweep");
    assert!(s.store.dirty_weeks(10).await.expect("dirty").is_empty());
}

/// Finding 6: after a definite refusal the next attempt is a new intent
/// with a new idempotency key, so a vendor replaying the cached fault for
/// the old key cannot keep a fixed entry out of the books.
#[tokio::test]
async fn a_redrive_after_a_refusal_sends_a_new_key() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    s.sandbox
        .inject(Fault::Before(LedgerError::Rejected(Exception::new(
            ExceptionCode::PeriodClosed,
            "The accounting period is closed.",
        ))));
    let e = E::new("c", "u-ann", "2026-03-03", "08:00", "12:00").build();
    deliver(&s, &[e]).await;
    let st = s.store.get(&key("c")).await.expect("get").expect("state");
    assert_eq!(st.status(), Status::Exception);
    send(
        &s,
        QueueMessage::Redrive {
            key: key("c"),
            by: "finance".into(),
        },
    )
    .await;
    timepost::worker::drain_all(&s.engine, &s.store, Duration::from_secs(10))
        .await
        .expect("drain");
    let st = s.store.get(&key("c")).await.expect("get").expect("state");
    assert_eq!(st.status(), Status::Posted);
    let journal = s.store.by_entry(&key("c")).await.expect("journal");
    assert_eq!(journal.len(), 1);
    assert!(!journal[0].intent.is_empty());
}

/// A record changed in the books by someone else (its sync token moved):
/// the next update reads what the books hold and aims at it, instead of
/// ending as an exception.
#[tokio::test]
async fn a_record_edited_in_the_books_is_retargeted_not_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("x", "u-ann", "2026-03-03", "08:00", "12:00").build();
    deliver(&s, &[e]).await;
    let rec = &s.sandbox.records().expect("records")[0];
    s.sandbox.touch_elsewhere(&rec.id).expect("touch");
    let e2 = E::new("x", "u-ann", "2026-03-03", "08:00", "13:00")
        .updated("2026-03-10T00:00:00Z")
        .build();
    deliver(&s, &[e2]).await;
    let st = s.store.get(&key("x")).await.expect("get").expect("state");
    assert_eq!(st.status(), Status::Posted, "{:?}", st.reason);
    assert_eq!(books(&s).values().sum::<i64>(), 300);
    assert_eq!(s.sandbox.records().expect("records").len(), 1);
}

/// Receive the next queued message and settle it with `engine`.
async fn next_settled(s: &LocalStack, engine: &Engine) -> (Received, Settled) {
    let r = s
        .store
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive")
        .into_iter()
        .next()
        .expect("a queued message");
    let got = settle(engine, &s.store, &r, "b").await.expect("settle");
    (r, got)
}

fn entry_message(e: &timepost::model::NormalisedEntry) -> QueueMessage {
    QueueMessage::Entry {
        entry: Box::new(e.clone()),
        received_at: chrono::Utc::now(),
    }
}

/// A ledger whose books cannot be read right now.
struct Unreadable(std::sync::Arc<dyn timepost::ledger::Ledger>);

#[async_trait::async_trait]
impl timepost::ledger::Ledger for Unreadable {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn apply(
        &self,
        request: &timepost::ledger::LedgerRequest,
    ) -> Result<Vec<timepost::ledger::RecordRef>, LedgerError> {
        self.0.apply(request).await
    }
    async fn read_books(
        &self,
        _: &timepost::ledger::books::BookQuery,
    ) -> Result<Option<Vec<timepost::ledger::books::BookRecord>>, LedgerError> {
        Err(LedgerError::Transient("read timed out".into()))
    }
}

trait CloneForTest {
    fn clone_for_test(&self) -> Engine;
}

impl CloneForTest for Engine {
    fn clone_for_test(&self) -> Engine {
        Engine::new(
            self.entries.clone(),
            self.mappings.clone(),
            self.journal.clone(),
            self.ledger.clone(),
            (*self.rules).clone(),
            self.settings.clone(),
        )
    }
}

#[tokio::test]
async fn intents_and_dirty_weeks_meet_the_journal_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let store = timepost::local::SqliteStore::open(&dir.path().join("j.sqlite")).expect("store");
    timepost_tests::contracts::journal_intents(&store).await;
}

/// Records of ours changed or deleted in the books by someone else: the
/// sweep reads the sandbox's change feed, audits what it found in words,
/// and converges the week back to what it should hold; a record keyed in
/// by hand is someone else's and is left alone.
#[tokio::test]
async fn the_sweep_brings_back_what_someone_else_changed_in_the_books() {
    use timepost::ports::AuditLog;
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    deliver(&s, &full_week()).await;
    let desired = books(&s);
    assert_eq!(desired.values().sum::<i64>(), 40 * 60);
    // The first pass only starts following the books.
    let first = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    assert!(first.books.as_ref().is_some_and(|b| b.started));

    let recs = s.sandbox.records().expect("records");
    let ours = |key: &str| {
        recs.iter()
            .find(|r| r.entry_key == self::key(key).to_string())
            .expect("record")
            .id
            .clone()
    };
    let (gone, edited) = (ours("w0"), ours("w1"));
    let mut theirs_line = recs[0].line.clone();
    theirs_line.minutes = 45;
    theirs_line.description = "keyed in by the bookkeeper".into();
    let theirs = s.sandbox.create_elsewhere(&theirs_line).expect("create");
    s.sandbox.delete_elsewhere(&gone).expect("delete");
    s.sandbox.edit_elsewhere(&edited, 60).expect("edit");
    s.sandbox.edit_elsewhere(&theirs, 50).expect("edit theirs");
    let reads = s
        .engine
        .counters
        .ledger_reads
        .load(std::sync::atomic::Ordering::Relaxed);

    let swept = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    let b = swept.books.expect("the books were read");
    assert_eq!((b.deleted, b.changed, b.weeks), (1, 1, 1), "{b:?}");
    assert!(b.how.starts_with("feed"), "{}", b.how);
    assert!(b.moved && b.busy == 0);
    assert_eq!(swept.weeks, 1, "the week was converged in the same sweep");
    assert_eq!(
        s.engine
            .counters
            .ledger_reads
            .load(std::sync::atomic::Ordering::Relaxed)
            - reads,
        b.reads,
        "the pass's reads are counted as reads"
    );
    assert_eq!(b.reads, 1 + 2, "the feed, then one read per changed entry");

    // The books hold what the week should again.
    let mut after = books(&s);
    let hand = after.remove(&(String::new(), "regular".to_string()));
    assert_eq!(after, desired);
    // Someone else's record is as they left it.
    assert_eq!(hand, Some(50));
    let theirs_now = s
        .sandbox
        .records()
        .expect("records")
        .into_iter()
        .find(|r| r.id == theirs)
        .expect("theirs");
    assert_eq!(theirs_now.sync_token, "1");
    // The deleted record was posted again; the edited one set back.
    let states = s.store.all().await.expect("states");
    let w0 = states
        .iter()
        .find(|st| st.entry.key == key("w0"))
        .expect("w0");
    assert_eq!(w0.status(), Status::Posted);
    assert_ne!(w0.records[0].id, gone);
    let w1 = states
        .iter()
        .find(|st| st.entry.key == key("w1"))
        .expect("w1");
    assert_eq!(w1.records[0].id, edited);
    assert!(s.store.dirty_weeks(10).await.expect("dirty").is_empty());

    // What was found, in a bookkeeper's words.
    let audit = s.store.recent(10).await.expect("audit");
    let lines: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == "changed_in_books")
        .map(|a| a.detail.as_str())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("Time record {gone}"))
                && l.contains("was deleted in the books outside timepost")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("Time record {edited}"))
                && l.contains("1:00 h instead of 8:00 h")),
        "{lines:?}"
    );

    // Seen again (the feed overlaps), nothing is found twice.
    let again = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    let b = again.books.expect("read");
    assert_eq!((b.deleted, b.changed, b.weeks), (0, 0, 0), "{b:?}");
    assert_eq!(after_books(&s), desired);
}

fn after_books(s: &LocalStack) -> BTreeMap<(String, String), i64> {
    let mut b = books(s);
    b.remove(&(String::new(), "regular".to_string()));
    b
}

/// A pass that cannot finish (the week is held by a live worker) leaves
/// the watermark, so the next pass sees the same change.
#[tokio::test]
async fn a_week_held_elsewhere_keeps_the_books_watermark() {
    use timepost::ports::WatermarkStore;
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("h", "u-ann", "2026-03-03", "08:00", "12:00").build();
    deliver(&s, std::slice::from_ref(&e)).await;
    s.engine
        .watch_books_pass(Duration::ZERO)
        .await
        .expect("start");
    let name = timepost::books_watch::watermark_name("sandbox");
    let mark = s
        .store
        .get_watermark(&name)
        .await
        .expect("wm")
        .expect("set");
    let rec = s.sandbox.records().expect("records")[0].id.clone();
    s.sandbox.delete_elsewhere(&rec).expect("delete");
    let week = WorkerWeek::of(&e);
    assert!(s
        .store
        .claim(
            &week_claim_key(&week),
            "someone-else",
            Duration::from_secs(60)
        )
        .await
        .expect("claim"));
    let b = s
        .engine
        .watch_books_pass(Duration::ZERO)
        .await
        .expect("pass")
        .expect("ran");
    assert_eq!((b.busy, b.moved, b.deleted), (1, false, 0), "{b:?}");
    assert_eq!(s.store.get_watermark(&name).await.expect("wm"), Some(mark));
    s.store
        .release(&week_claim_key(&week), "someone-else")
        .await
        .expect("release");
    let swept = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    let b = swept.books.expect("ran");
    assert_eq!((b.deleted, b.moved), (1, true), "{b:?}");
    assert_eq!(books(&s).values().sum::<i64>(), 240);
}

/// Seed 9967 of the simulation: a write of ours to a posted entry's record
/// is cut short (its intent stays open) and a bookkeeper deletes that
/// record in the books meanwhile. Settling the write finds neither the
/// record it aimed at nor one it wrote: the entry is still to be posted, so
/// its time is posted again, with an audit line. It used to end *voided*,
/// with nothing in the books.
#[tokio::test]
async fn a_record_deleted_while_our_write_to_it_was_open_is_posted_again() {
    use timepost::intent::Intent;
    use timepost::ledger::LedgerOp;
    use timepost::ports::AuditLog;
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let e = E::new("d", "u-ann", "2026-03-03", "08:00", "12:00").build();
    deliver(&s, std::slice::from_ref(&e)).await;
    s.engine
        .watch_books_pass(Duration::ZERO)
        .await
        .expect("start");
    let st = s.store.get(&key("d")).await.expect("get").expect("state");
    assert_eq!(st.status(), Status::Posted);
    let gone = st.records[0].id.clone();
    // The write cut short before its call: the record set to 5 h.
    let mut line = st.posted_lines[0].clone();
    line.minutes = 300;
    let intent = Intent::new(
        key("d"),
        st.posted_version.clone().expect("posted version"),
        "cut-short",
        LedgerOp::Update {
            records: st.records.clone(),
            lines: vec![line],
        },
        st.posted_lines.clone(),
        chrono::Utc::now() - chrono::Duration::hours(1),
    );
    s.store.open_intent(&intent).await.expect("open");
    s.sandbox.delete_elsewhere(&gone).expect("delete");

    s.engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    let st = s.store.get(&key("d")).await.expect("get").expect("state");
    assert_eq!(st.status(), Status::Posted, "{st:?}");
    assert_eq!(st.records.len(), 1);
    assert_ne!(st.records[0].id, gone);
    assert_eq!(
        books(&s).get(&(key("d").to_string(), "regular".to_string())),
        Some(&240),
        "the books hold the entry's 4 h again"
    );
    assert!(s
        .store
        .open_intents(&key("d"))
        .await
        .expect("intents")
        .is_empty());
    assert!(s.store.dirty_weeks(10).await.expect("dirty").is_empty());
    let audit = s.store.recent(10).await.expect("audit");
    assert!(
        audit.iter().any(|a| a.action == "changed_in_books"
            && a.detail.contains(&format!("Time record {gone}"))
            && a.detail
                .contains("deleted in the books outside timepost while timepost was changing it")),
        "{audit:?}"
    );
}

/// The sandbox's change feed: records created, changed or deleted after
/// the instant asked for, deletions by id only; nothing before it.
#[tokio::test]
async fn the_sandbox_feed_lists_changes_since_an_instant() {
    use timepost::ledger::books::BookChanges;
    use timepost::ledger::Ledger;
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    deliver(&s, &full_week()[..3]).await;
    let recs = s.sandbox.records().expect("records");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let since = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let quiet = s.sandbox.book_changes(since).await.expect("feed");
    assert_eq!(
        quiet,
        BookChanges::Changes {
            changed: Vec::new(),
            deleted: Vec::new()
        }
    );
    s.sandbox.delete_elsewhere(&recs[0].id).expect("delete");
    s.sandbox.edit_elsewhere(&recs[1].id, 90).expect("edit");
    let BookChanges::Changes { changed, deleted } =
        s.sandbox.book_changes(since).await.expect("feed")
    else {
        panic!("the sandbox has a feed");
    };
    assert_eq!(deleted, vec![recs[0].id.clone()]);
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].id.as_str(), changed[0].minutes),
        (recs[1].id.as_str(), 90)
    );
    assert_eq!(changed[0].sync_token, "1");
    assert!(changed[0].fingerprint.is_some(), "the marker stays");
    // From before the postings, every record shows.
    let BookChanges::Changes { changed, .. } = s
        .sandbox
        .book_changes(since - chrono::Duration::hours(1))
        .await
        .expect("feed")
    else {
        panic!("the sandbox has a feed");
    };
    assert_eq!(changed.len(), 2);
}

/// An entry posted, then edited so that its new version waits for approval,
/// still holds its approved time in the books. A bookkeeper deletes that
/// record in the books and edits another such entry's hours: the books
/// watch writes back what was last posted (the entries keep waiting), even
/// when the first write back fails and leaves its intent open.
#[tokio::test]
async fn time_of_an_entry_awaiting_approval_is_kept_in_the_books() {
    use timepost::ports::AuditLog;
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let days = [("a", "2026-03-03"), ("b", "2026-03-04")];
    let approved: Vec<_> = days
        .iter()
        .map(|(id, d)| E::new(id, "u-ann", d, "08:00", "12:00").build())
        .collect();
    deliver(&s, &approved).await;
    let desired = books(&s);
    let edited: Vec<_> = days
        .iter()
        .map(|(id, d)| {
            E::new(id, "u-ann", d, "08:00", "13:00")
                .updated("2026-03-10T00:00:00Z")
                .approval(ApprovalStatus::Pending)
                .build()
        })
        .collect();
    deliver(&s, &edited).await;
    for id in ["a", "b"] {
        let st = s.store.get(&key(id)).await.expect("get").expect("state");
        assert_eq!(st.status(), Status::AwaitingApproval);
        assert_eq!(st.records.len(), 1);
    }
    assert_eq!(books(&s), desired, "the approved time stays while waiting");
    let first = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    assert!(first.books.as_ref().is_some_and(|b| b.started));

    let record = |id: &str| {
        s.sandbox
            .records()
            .expect("records")
            .into_iter()
            .find(|r| r.entry_key == key(id).to_string())
            .expect("record")
            .id
    };
    let (gone, changed) = (record("a"), record("b"));
    s.sandbox.delete_elsewhere(&gone).expect("delete");
    s.sandbox.edit_elsewhere(&changed, 30).expect("edit");
    // Every attempt of the first write back fails before any work: the
    // pass fails with the write back's intent open and its watermark where
    // it was; the same sweep then settles the intent (nothing was done),
    // and the entry still expects its record.
    for _ in 0..s.engine.settings.ledger_attempts {
        s.sandbox
            .inject(Fault::Before(LedgerError::Transient("503".into())));
    }
    let failed = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    assert!(failed.books_error.is_some(), "{failed:?}");
    assert_eq!(failed.intents, 1, "{failed:?}");
    assert_ne!(books(&s), desired);
    let a = s.store.get(&key("a")).await.expect("get").expect("state");
    assert!(a.records.is_empty() && a.posted_lines.len() == 1, "{a:?}");

    // The next pass writes the time back.
    let again = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    let b = again.books.expect("the books were read");
    assert!(b.moved && b.refused == 0, "{b:?}");
    assert_eq!(books(&s), desired, "what was last posted is back");
    for id in ["a", "b"] {
        let st = s.store.get(&key(id)).await.expect("get").expect("state");
        assert_eq!(st.status(), Status::AwaitingApproval, "{id} still waits");
        assert_eq!(st.posted_lines[0].minutes, 240, "{id}");
    }
    let a = s.store.get(&key("a")).await.expect("get").expect("state");
    assert_ne!(a.records[0].id, gone, "a new record holds a's time");
    let audit = s.store.recent(20).await.expect("audit");
    let said: Vec<&str> = audit
        .iter()
        .filter(|r| r.action == "changed_in_books")
        .map(|r| r.detail.as_str())
        .collect();
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("Time record {gone}"))
                && l.contains("its newer version is not posted yet")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("Time record {changed}"))
                && l.contains("0:30 h instead of 4:00 h")),
        "{said:?}"
    );
    // Nothing more to do: a further pass finds nothing.
    let quiet = s
        .engine
        .sweep_every("sweep", Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep")
        .books
        .expect("read");
    assert_eq!((quiet.deleted, quiet.changed), (0, 0), "{quiet:?}");
    assert_eq!(books(&s), desired);
    // Approving the new versions posts them over the kept records.
    let approved: Vec<_> = days
        .iter()
        .map(|(id, d)| {
            E::new(id, "u-ann", d, "08:00", "13:00")
                .updated("2026-03-11T00:00:00Z")
                .build()
        })
        .collect();
    deliver(&s, &approved).await;
    assert_eq!(books(&s).values().sum::<i64>(), 2 * 300);
    assert_eq!(s.sandbox.records().expect("records").len(), 2);
}
