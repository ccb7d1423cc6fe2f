//! The scheduled pollers, through the real poller code against the fake
//! Harvest and Toggl APIs on 127.0.0.1:0 and a local sandbox stack.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use timepost::model::{EntryKey, Source};
use timepost::poll::{PollError, Poller};
use timepost::ports::{
    DeadLetter, EntryStore, Journal, Queue, QueueMessage, Received, Secrets, StoreError,
    StoreResult, WatermarkStore,
};
use timepost::stack::LocalStack;
use timepost::state::Status;
use timepost_tests::fake_common::Inject;
use timepost_tests::harvest_fake::{self, HarvestServer};
use timepost_tests::kit::stack_with;
use timepost_tests::toggl_fake::{self, TogglServer};

const ACCOUNT: &str = "987654";
const TOKEN: &str = "harvest-pat";
/// Harvest user 1001 is employee E-100, project 2001 is customer C-ACME;
/// Toggl user 4001 is E-101, project 5001 is C-GLOBEX.
const MAPPINGS: &str =
    "employee,1001,E-100,\nproject,2001,C-ACME,\nemployee,4001,E-101,\nproject,5001,C-GLOBEX,\n";

fn harvest_section(base: &str, extra: &str) -> String {
    format!(
        "\n[intake.harvest]\naccount_id = \"{ACCOUNT}\"\nbase_url = \"{base}\"\nuser_agent = \"timepost tests (ops@example.com)\"\n\
         backoff_base_ms = 10\nbackoff_cap_ms = 50\nmax_wait_secs = 5\nrequests_per_15s = 1000\n{extra}"
    )
}

async fn harvest_stack(dir: &std::path::Path, base: &str, extra: &str) -> LocalStack {
    let text = format!("{}{}", timepost::demo::CONFIG, harvest_section(base, extra));
    let stack = stack_with(dir, &text, MAPPINGS).await;
    stack
        .secrets
        .put("harvest_token", TOKEN)
        .await
        .expect("secret");
    stack
}

fn harvest_poller(stack: &LocalStack) -> Poller {
    Poller::for_source("harvest", &stack.config.intake)
        .expect("poller")
        .expect("configured")
}

fn days_ago(n: i64) -> NaiveDate {
    Utc::now().date_naive() - chrono::Duration::days(n)
}

fn hkey(id: u64) -> EntryKey {
    EntryKey::new(Source::Harvest, ACCOUNT, id.to_string())
}

async fn drain(stack: &LocalStack) -> Vec<timepost::engine::Outcome> {
    timepost::worker::drain_all(&stack.engine, &stack.store, Duration::from_secs(30))
        .await
        .expect("drain")
}

async fn status(stack: &LocalStack, key: &EntryKey) -> Option<Status> {
    stack.store.get(key).await.expect("get").map(|s| s.status())
}

fn records_of(stack: &LocalStack, key: &EntryKey) -> usize {
    let k = key.to_string();
    stack
        .sandbox
        .records()
        .expect("records")
        .iter()
        .filter(|r| r.entry_key == k)
        .count()
}

fn seed(fake: &HarvestServer, ids: &[u64]) {
    for (i, id) in ids.iter().enumerate() {
        fake.put(harvest_fake::entry(
            *id,
            1001,
            2001,
            3001,
            days_ago(2 + (i as i64 % 3)),
            "1.5",
        ));
    }
}

#[tokio::test]
async fn harvest_pagination_collects_every_page() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "per_page = 2\n").await;
    seed(&fake, &[11, 12, 13, 14, 15]);
    let ports = stack.poll_ports();
    let report = harvest_poller(&stack).run(&ports).await.expect("poll");
    assert_eq!(report.pages, 3, "{report:?}");
    assert_eq!(report.fetched, 5);
    assert_eq!(report.enqueued, 5);
    assert_eq!(report.deleted, 0);
    let q = fake.state().list_queries.clone();
    assert!(q[0].contains_key("updated_since"), "{q:?}");
    assert_eq!(q[0].get("per_page").map(String::as_str), Some("2"));
    assert!(q[1].contains_key("cursor") && q[2].contains_key("cursor"));
    let c = fake.counters();
    assert_eq!((c.unauthorised, c.bad_request), (0, 0));
    drain(&stack).await;
    for id in 11..=15 {
        assert_eq!(
            status(&stack, &hkey(id)).await,
            Some(Status::Posted),
            "{id}"
        );
        assert_eq!(records_of(&stack, &hkey(id)), 1);
    }
}

#[tokio::test]
async fn harvest_429_with_retry_after_is_honoured() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "per_page = 2\n").await;
    seed(&fake, &[21, 22, 23]);
    fake.inject(Inject::Throttle(Some(1.0)));
    let t0 = Instant::now();
    let report = harvest_poller(&stack)
        .run(&stack.poll_ports())
        .await
        .expect("poll completes after the 429");
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(report.fetched, 3);
    assert!(report.retries >= 1, "{report:?}");
    assert_eq!(fake.counters().throttled, 1);
    assert!(report.watermark_after.is_some());
}

#[tokio::test]
async fn harvest_rate_window_429s_are_waited_out() {
    let dir = tempfile::tempdir().expect("dir");
    // 3 requests per 2 s: a 5-page listing meets the limit and must wait.
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 3, Duration::from_secs(2)).await;
    let stack = harvest_stack(
        dir.path(),
        &fake.base_url(),
        "per_page = 1\nlookback_days = 0\n",
    )
    .await;
    seed(&fake, &[31, 32, 33, 34, 35]);
    let report = harvest_poller(&stack)
        .run(&stack.poll_ports())
        .await
        .expect("poll");
    assert_eq!(report.pages, 5);
    assert_eq!(report.fetched, 5);
    assert!(fake.counters().throttled >= 1);
}

/// A queue that refuses every send.
struct BrokenQueue;

#[async_trait]
impl Queue for BrokenQueue {
    async fn send_batch(&self, _: &[QueueMessage]) -> StoreResult<Vec<String>> {
        Err(StoreError::Backend("queue is down".into()))
    }
    async fn receive(&self, _: usize, _: Duration) -> StoreResult<Vec<Received>> {
        Ok(vec![])
    }
    async fn delete(&self, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn retry_later(&self, _: &str, _: Duration) -> StoreResult<()> {
        Ok(())
    }
    async fn retry_uncounted(&self, _: &str, _: Duration) -> StoreResult<()> {
        Ok(())
    }
    async fn dead_letter(&self, _: &str, _: &str, _: Option<&str>) -> StoreResult<()> {
        Ok(())
    }
    async fn dead_letters(&self, _: usize) -> StoreResult<Vec<DeadLetter>> {
        Ok(vec![])
    }
    async fn redrive(&self, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn depth(&self) -> StoreResult<usize> {
        Ok(0)
    }
}

#[tokio::test]
async fn watermark_advances_only_after_enqueue_succeeded() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "").await;
    seed(&fake, &[41, 42]);
    let poller = harvest_poller(&stack);
    let name = format!("harvest:{ACCOUNT}");

    let mut broken = stack.poll_ports();
    broken.queue = Arc::new(BrokenQueue);
    let e = poller.run(&broken).await.expect_err("enqueue fails");
    assert!(matches!(e, PollError::Enqueue(_)), "{e}");
    assert_eq!(stack.store.get_watermark(&name).await.expect("wm"), None);

    let report = poller.run(&stack.poll_ports()).await.expect("poll");
    let wm = stack
        .store
        .get_watermark(&name)
        .await
        .expect("wm")
        .expect("set");
    assert_eq!(report.watermark_after, Some(wm));
    let newest = fake
        .state()
        .entries
        .values()
        .filter_map(|e| {
            e["updated_at"]
                .as_str()?
                .parse::<chrono::DateTime<Utc>>()
                .ok()
        })
        .max()
        .expect("newest");
    // Newest change minus the default 60 s overlap.
    assert_eq!(wm, newest - chrono::Duration::seconds(60));
    // The next poll asks for changes since the stored watermark.
    poller.run(&stack.poll_ports()).await.expect("poll");
    let q = fake.state().list_queries.clone();
    let since = q
        .iter()
        .rev()
        .find_map(|q| q.get("updated_since").cloned())
        .expect("since");
    assert_eq!(since.parse::<chrono::DateTime<Utc>>().ok(), Some(wm));
}

#[tokio::test]
async fn watermark_untouched_when_the_vendor_keeps_failing() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "max_attempts = 3\n").await;
    seed(&fake, &[51]);
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    let name = format!("harvest:{ACCOUNT}");
    poller.run(&ports).await.expect("first poll");
    let wm = stack.store.get_watermark(&name).await.expect("wm");
    assert!(wm.is_some());

    // One 5xx is retried and the run succeeds.
    fake.put(harvest_fake::entry(52, 1001, 2001, 3001, days_ago(1), "1"));
    fake.inject(Inject::StatusBefore(503));
    let r = poller.run(&ports).await.expect("retried");
    assert!(r.retries >= 1);
    let wm = stack.store.get_watermark(&name).await.expect("wm");

    // Three in a row: the run gives up and the watermark stays.
    fake.edit(52, |e| e["notes"] = "edited".into());
    for _ in 0..3 {
        fake.inject(Inject::StatusBefore(500));
    }
    let depth = stack.store.depth().await.expect("depth");
    let e = poller.run(&ports).await.expect_err("gives up");
    assert!(
        matches!(e, PollError::Unavailable { attempts: 3, .. }),
        "{e}"
    );
    assert!(!e.is_config());
    assert_eq!(stack.store.get_watermark(&name).await.expect("wm"), wm);
    assert_eq!(stack.store.depth().await.expect("depth"), depth);

    // The vendor is back: the edit arrives.
    let r = poller.run(&ports).await.expect("recovered");
    assert!(r.fetched >= 1);
}

#[tokio::test]
async fn watermark_untouched_when_the_lookback_listing_fails() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "max_attempts = 2\n").await;
    seed(&fake, &[55]);
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    let name = format!("harvest:{ACCOUNT}");
    poller.run(&ports).await.expect("first poll");
    let wm = stack.store.get_watermark(&name).await.expect("wm");

    fake.put(harvest_fake::entry(56, 1001, 2001, 3001, days_ago(1), "1"));
    // An edit is at least 1 s newer: a (wrongly) advanced watermark would show.
    fake.edit(55, |e| e["notes"] = "edited".into());
    fake.state().fail_window_listings = 2;
    let e = poller.run(&ports).await.expect_err("sweep fails");
    assert!(matches!(e, PollError::Unavailable { .. }), "{e}");
    assert_eq!(stack.store.get_watermark(&name).await.expect("wm"), wm);

    // Next run: the changes are listed again and the watermark moves.
    let r = poller.run(&ports).await.expect("recovered");
    assert!(r.fetched >= 2);
    assert!(r.watermark_after > wm, "{r:?} vs {wm:?}");
    drain(&stack).await;
    assert_eq!(status(&stack, &hkey(56)).await, Some(Status::Posted));
}

#[tokio::test]
async fn edits_and_new_entries_flow_in_on_the_next_poll() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "").await;
    seed(&fake, &[61, 62]);
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    poller.run(&ports).await.expect("poll 1");
    drain(&stack).await;
    assert_eq!(records_of(&stack, &hkey(61)), 1);

    fake.edit(61, |e| {
        e["hours"] = 3.0.into();
        e["rounded_hours"] = 3.0.into();
    });
    fake.put(harvest_fake::entry(63, 1001, 2001, 3001, days_ago(1), "2"));
    let r = poller.run(&ports).await.expect("poll 2");
    assert!(r.fetched >= 2, "{r:?}");
    drain(&stack).await;
    let s = stack
        .store
        .get(&hkey(61))
        .await
        .expect("get")
        .expect("known");
    assert_eq!(s.status(), Status::Posted);
    assert_eq!(s.posted_minutes(), 180);
    assert_eq!(s.entry.duration_secs, 3 * 3600);
    assert_eq!(status(&stack, &hkey(63)).await, Some(Status::Posted));
    assert_eq!(records_of(&stack, &hkey(63)), 1);
}

#[tokio::test]
async fn harvest_deletion_in_the_lookback_window_voids_the_entry() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "lookback_days = 14\n").await;
    seed(&fake, &[71, 72]);
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    poller.run(&ports).await.expect("poll 1");
    drain(&stack).await;
    assert_eq!(records_of(&stack, &hkey(71)), 1);

    fake.delete(71);
    let r = poller.run(&ports).await.expect("poll 2");
    assert_eq!(r.deleted, 1, "{r:?}");
    assert_eq!(fake.counters().single_gets, 1);
    drain(&stack).await;
    let s = stack
        .store
        .get(&hkey(71))
        .await
        .expect("get")
        .expect("known");
    assert_eq!(s.status(), Status::Voided);
    assert!(s.entry.deleted);
    assert_eq!(records_of(&stack, &hkey(71)), 0, "ledger record removed");
    assert_eq!(status(&stack, &hkey(72)).await, Some(Status::Posted));
    assert_eq!(records_of(&stack, &hkey(72)), 1);

    // Polling again finds nothing more to delete.
    let r = poller.run(&ports).await.expect("poll 3");
    assert_eq!(r.deleted, 0);
}

#[tokio::test]
async fn harvest_entry_moved_out_of_the_window_is_not_deleted() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "lookback_days = 7\n").await;
    seed(&fake, &[81]);
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    poller.run(&ports).await.expect("poll 1");
    drain(&stack).await;

    // Re-dated to 30 days ago, and (as if the change had been listed by an
    // earlier run whose queue is not yet processed) not in this run's
    // changes: the look-up by id finds it, so it is not deleted.
    fake.edit(81, |e| e["spent_date"] = days_ago(30).to_string().into());
    let name = format!("harvest:{ACCOUNT}");
    stack
        .store
        .set_watermark(&name, Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("wm");
    let r = poller.run(&ports).await.expect("poll 2");
    assert_eq!(r.fetched, 0);
    assert_eq!(r.deleted, 0, "{r:?}");
    assert_eq!(r.enqueued, 1, "the moved version is enqueued");
    drain(&stack).await;
    let s = stack
        .store
        .get(&hkey(81))
        .await
        .expect("get")
        .expect("known");
    assert_eq!(s.status(), Status::Posted);
    assert_eq!(s.entry.work_date, days_ago(30));
}

#[tokio::test]
async fn replaying_a_poll_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "").await;
    seed(&fake, &[91, 92, 93]);
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    let name = format!("harvest:{ACCOUNT}");
    let before = stack.store.get_watermark(&name).await.expect("wm");
    poller.run(&ports).await.expect("poll 1");
    drain(&stack).await;
    let records = stack.sandbox.records().expect("records");
    let mut journal = 0;
    for id in [91, 92, 93] {
        journal += stack
            .store
            .by_entry(&hkey(id))
            .await
            .expect("journal")
            .len();
    }
    assert_eq!(records.len(), 3);

    // Replay the same poll: rewind the watermark and run again.
    assert!(before.is_none());
    stack
        .store
        .set_watermark(&name, Utc::now() - chrono::Duration::days(30))
        .await
        .expect("wm");
    let r = poller.run(&ports).await.expect("replay");
    assert_eq!(r.fetched, 3);
    let outcomes = drain(&stack).await;
    assert!(
        outcomes
            .iter()
            .filter(|o| !o.sibling)
            .all(|o| o.is_duplicate()),
        "{outcomes:?}"
    );
    let after = stack.sandbox.records().expect("records");
    assert_eq!(after.len(), 3);
    assert_eq!(
        records.iter().map(|r| &r.id).collect::<Vec<_>>(),
        after.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    let mut journal_after = 0;
    for id in [91, 92, 93] {
        journal_after += stack
            .store
            .by_entry(&hkey(id))
            .await
            .expect("journal")
            .len();
    }
    assert_eq!(journal, journal_after, "no new postings");
}

#[tokio::test]
async fn harvest_fake_requires_the_documented_headers() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let url = format!("{}/v2/time_entries", fake.base_url());
    let http = timepost_tests::kit::http();
    let send = |ua: Option<&str>, token: &str, account: &str| {
        let mut r = http
            .get(&url)
            .bearer_auth(token)
            .header("Harvest-Account-Id", account);
        if let Some(ua) = ua {
            r = r.header("User-Agent", ua);
        }
        r.send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.expect("send").status().as_u16();
    assert_eq!(status(send(None, TOKEN, ACCOUNT).await), 400);
    assert_eq!(status(send(Some("t (a@b.c)"), "wrong", ACCOUNT).await), 401);
    assert_eq!(status(send(Some("t (a@b.c)"), TOKEN, "1").await), 401);
    assert_eq!(status(send(Some("t (a@b.c)"), TOKEN, ACCOUNT).await), 200);

    // The poller with a wrong token: a configuration error, nothing moves.
    let stack = harvest_stack(dir.path(), &fake.base_url(), "").await;
    stack
        .secrets
        .put("harvest_token", "wrong")
        .await
        .expect("secret");
    let e = harvest_poller(&stack)
        .run(&stack.poll_ports())
        .await
        .expect_err("401");
    assert!(e.is_config(), "{e}");
    assert_eq!(
        stack
            .store
            .get_watermark(&format!("harvest:{ACCOUNT}"))
            .await
            .expect("wm"),
        None
    );
}

// ---- Toggl ----

const TOGGL_TOKEN: &str = "toggl-api-token";

async fn toggl_stack(dir: &std::path::Path, base: &str) -> LocalStack {
    let text = format!(
        "{}\n[intake.toggl_poll]\nbase_url = \"{base}\"\nworkspace = \"777\"\nrequests_per_hour = 36000\n\
         backoff_base_ms = 10\nbackoff_cap_ms = 50\nmax_wait_secs = 5\n",
        timepost::demo::CONFIG
    );
    let mut stack = stack_with(dir, &text, MAPPINGS).await;
    // Toggl entries carry no approval: let them post.
    stack.config.rules.approval.required = false;
    let stack = LocalStack::with_store(stack.config.clone(), stack.store.clone()).expect("stack");
    stack
        .secrets
        .put("toggl_token", TOGGL_TOKEN)
        .await
        .expect("secret");
    stack
}

fn tkey(id: u64) -> EntryKey {
    EntryKey::new(Source::Toggl, "777", id.to_string())
}

fn start_days_ago(n: i64) -> String {
    format!("{}T17:00:00Z", days_ago(n))
}

#[tokio::test]
async fn toggl_poll_since_watermark_brings_edits_and_deletions() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = TogglServer::start(TOGGL_TOKEN, 100, Duration::from_secs(3600)).await;
    let stack = toggl_stack(dir.path(), &fake.base_url()).await;
    fake.put(toggl_fake::entry(
        1,
        777,
        4001,
        5001,
        &start_days_ago(2),
        3600,
    ));
    fake.put(toggl_fake::entry(
        2,
        777,
        4001,
        5001,
        &start_days_ago(3),
        5400,
    ));
    // Another workspace: filtered out by `workspace = "777"`.
    fake.put(toggl_fake::entry(
        3,
        888,
        4001,
        5001,
        &start_days_ago(2),
        600,
    ));
    let poller = Poller::for_source("toggl", &stack.config.intake)
        .expect("poller")
        .expect("configured");
    let ports = stack.poll_ports();
    let r = poller.run(&ports).await.expect("poll 1");
    // User 4001's time, read with the admin's token (user 9001): the
    // workspace report sees everyone.
    assert_eq!(r.fetched, 2, "{r:?}");
    assert_eq!(fake.counters().served, fake.counters().report_pages);
    drain(&stack).await;
    assert_eq!(status(&stack, &tkey(1)).await, Some(Status::Posted));
    assert_eq!(status(&stack, &tkey(2)).await, Some(Status::Posted));
    let wm = stack
        .store
        .get_watermark("toggl:777")
        .await
        .expect("wm")
        .expect("set");

    fake.edit(1, |e| e["description"] = "edited".into());
    fake.delete(2);
    let r = poller.run(&ports).await.expect("poll 2");
    // The edit is listed (its `at` is past the watermark), the deletion
    // found by its absence and a search by id.
    assert_eq!((r.fetched, r.deleted), (1, 1), "{r:?}");
    let bodies = fake.state().report_bodies.clone();
    let by_id = bodies.last().expect("searched by id");
    assert_eq!(by_id["time_entry_ids"], serde_json::json!([2]));
    assert!(stack.store.get_watermark("toggl:777").await.expect("wm") >= Some(wm));
    drain(&stack).await;
    let s = stack
        .store
        .get(&tkey(1))
        .await
        .expect("get")
        .expect("known");
    assert_eq!(s.entry.notes, "edited");
    assert_eq!(s.status(), Status::Posted);
    assert_eq!(status(&stack, &tkey(2)).await, Some(Status::Voided));
    let k2 = tkey(2).to_string();
    assert!(stack
        .sandbox
        .records()
        .expect("records")
        .iter()
        .all(|r| r.entry_key != k2));
}

#[tokio::test]
async fn toggl_429_is_waited_out_and_bad_token_is_a_config_error() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = TogglServer::start(TOGGL_TOKEN, 100, Duration::from_secs(3600)).await;
    let stack = toggl_stack(dir.path(), &fake.base_url()).await;
    fake.put(toggl_fake::entry(
        1,
        777,
        4001,
        5001,
        &start_days_ago(1),
        1800,
    ));
    let poller = Poller::for_source("toggl", &stack.config.intake)
        .expect("poller")
        .expect("configured");
    let ports = stack.poll_ports();
    fake.inject(Inject::Throttle(Some(1.0)));
    let t0 = Instant::now();
    let r = poller.run(&ports).await.expect("poll");
    assert!(t0.elapsed() >= Duration::from_millis(950));
    assert_eq!(r.fetched, 1);
    assert_eq!(fake.counters().throttled, 1);

    // A Retry-After beyond max_wait_secs: the run gives up, watermark kept.
    let wm = stack.store.get_watermark("toggl:777").await.expect("wm");
    fake.inject(Inject::Throttle(Some(600.0)));
    let e = poller.run(&ports).await.expect_err("too long a wait");
    assert!(matches!(e, PollError::RateLimited { .. }), "{e}");
    assert_eq!(
        stack.store.get_watermark("toggl:777").await.expect("wm"),
        wm
    );

    stack
        .secrets
        .put("toggl_token", "nope")
        .await
        .expect("secret");
    let e = poller.run(&ports).await.expect_err("403");
    assert!(e.is_config(), "{e}");
}

#[tokio::test]
async fn unconfigured_pollers_are_absent_and_config_is_strict() {
    let cfg = timepost::config::Config::parse(timepost::demo::CONFIG, "t").expect("config");
    assert!(Poller::for_source("harvest", &cfg.intake)
        .expect("ok")
        .is_none());
    assert!(Poller::for_source("toggl", &cfg.intake)
        .expect("ok")
        .is_none());
    let bad = format!(
        "{}\n[intake.harvest]\naccount_id = \"1\"\nper_pages = 3\n",
        timepost::demo::CONFIG
    );
    let e = timepost::config::Config::parse(&bad, "t")
        .expect_err("unknown field")
        .to_string();
    assert!(e.contains("intake.harvest.per_pages"), "{e}");
    let bad = format!(
        "{}\n[intake.harvest]\naccount_id = \"1\"\nper_page = 5000\n",
        timepost::demo::CONFIG
    );
    let e = timepost::config::Config::parse(&bad, "t")
        .expect_err("range")
        .to_string();
    assert!(e.contains("intake.harvest.per_page"), "{e}");
}

// ---- Harvest rates and unreadable entries (issue 11, point 15) ----

fn billable(id: u64, date: NaiveDate, rate: f64) -> serde_json::Value {
    let mut e = harvest_fake::entry(id, 1001, 2001, 3001, date, "1");
    e["billable"] = true.into();
    e["billable_rate"] = rate.into();
    e
}

async fn stored_rate(stack: &LocalStack, id: u64) -> Option<(String, String)> {
    let s = stack
        .store
        .get(&hkey(id))
        .await
        .expect("get")
        .expect("known");
    s.entry
        .rate
        .map(|m| (m.amount.to_string(), m.currency.as_str().to_string()))
}

#[tokio::test]
async fn harvest_rate_currency_is_read_from_the_client_record_once() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "lookback_days = 0\n").await;
    fake.put(billable(301, days_ago(2), 120.0));
    fake.put(billable(302, days_ago(2), 80.0));
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    let r = poller.run(&ports).await.expect("poll");
    assert_eq!((r.fetched, r.rejected), (2, 0), "{r:?}");
    // One client, read once for both entries.
    assert_eq!(fake.counters().client_gets, 1);
    drain(&stack).await;
    assert_eq!(
        stored_rate(&stack, 301).await,
        Some(("120".into(), "USD".into()))
    );
    // Cached: an edit does not read the client again.
    fake.edit(301, |e| e["billable_rate"] = 130.0.into());
    poller.run(&ports).await.expect("poll 2");
    assert_eq!(fake.counters().client_gets, 1);
    drain(&stack).await;
    assert_eq!(
        stored_rate(&stack, 301).await,
        Some(("130".into(), "USD".into()))
    );
}

#[tokio::test]
async fn harvest_client_not_readable_falls_back_to_the_account_currency() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    fake.state().clients_forbidden = true;
    fake.put(billable(311, days_ago(2), 95.0));

    // With `currency` set: the account's currency.
    let stack = harvest_stack(
        dir.path(),
        &fake.base_url(),
        "lookback_days = 0\ncurrency = \"EUR\"\n",
    )
    .await;
    let r = harvest_poller(&stack)
        .run(&stack.poll_ports())
        .await
        .expect("poll");
    assert_eq!((r.fetched, r.rejected), (1, 0), "{r:?}");
    drain(&stack).await;
    assert_eq!(
        stored_rate(&stack, 311).await,
        Some(("95".into(), "EUR".into()))
    );

    // Without it: the entry still parses, without a rate; the poll moves on.
    let dir2 = tempfile::tempdir().expect("dir");
    let stack = harvest_stack(dir2.path(), &fake.base_url(), "lookback_days = 0\n").await;
    let r = harvest_poller(&stack)
        .run(&stack.poll_ports())
        .await
        .expect("poll");
    assert_eq!((r.fetched, r.rejected), (1, 0), "{r:?}");
    assert!(r.watermark_after.is_some());
    drain(&stack).await;
    assert_eq!(stored_rate(&stack, 311).await, None);
}

#[tokio::test]
async fn harvest_bad_entry_becomes_an_exception_and_the_watermark_moves() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let stack = harvest_stack(dir.path(), &fake.base_url(), "lookback_days = 14\n").await;
    seed(&fake, &[321, 322]);
    let mut bad = harvest_fake::entry(323, 1001, 2001, 3001, days_ago(1), "1");
    bad["hours"] = "lots".into();
    fake.put(bad);
    let poller = harvest_poller(&stack);
    let ports = stack.poll_ports();
    let name = format!("harvest:{ACCOUNT}");
    let r = poller
        .run(&ports)
        .await
        .expect("one bad entry never fails the poll");
    assert_eq!((r.fetched, r.rejected, r.deleted), (2, 1, 0), "{r:?}");
    // The watermark moved past the bad entry (newest change minus overlap).
    let newest = fake
        .state()
        .entries
        .values()
        .filter_map(|e| {
            e["updated_at"]
                .as_str()?
                .parse::<chrono::DateTime<Utc>>()
                .ok()
        })
        .max()
        .expect("newest");
    assert_eq!(
        stack.store.get_watermark(&name).await.expect("wm"),
        Some(newest - chrono::Duration::seconds(60))
    );
    drain(&stack).await;
    assert_eq!(status(&stack, &hkey(321)).await, Some(Status::Posted));
    let s = stack
        .store
        .get(&hkey(323))
        .await
        .expect("get")
        .expect("recorded");
    assert_eq!(s.status(), Status::Exception);
    let reason = s.reason.expect("reason");
    assert_eq!(reason.code.as_str(), "TRACKER_ENTRY_UNREADABLE");
    assert!(reason.message.contains("hours"), "{}", reason.message);
    assert_eq!(records_of(&stack, &hkey(323)), 0);

    // Listed again by the look-back but unreadable: not taken for deleted.
    let r = poller.run(&ports).await.expect("poll 2");
    assert_eq!(r.deleted, 0, "{r:?}");

    // Corrected in Harvest: the new version flows in and posts.
    fake.edit(323, |e| e["hours"] = 2.0.into());
    let r = poller.run(&ports).await.expect("poll 3");
    assert_eq!(r.rejected, 0, "{r:?}");
    drain(&stack).await;
    let s = stack
        .store
        .get(&hkey(323))
        .await
        .expect("get")
        .expect("known");
    assert_eq!(s.status(), Status::Posted, "{:?}", s.reason);
    assert_eq!(s.entry.duration_secs, 7200);
}

#[tokio::test]
async fn harvest_fake_serves_the_documented_client_shapes() {
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    fake.put(harvest_fake::entry(331, 1001, 2001, 3001, days_ago(1), "1"));
    let http = timepost_tests::kit::http();
    let get = |path: String| {
        http.get(format!("{}{path}", fake.base_url()))
            .bearer_auth(TOKEN)
            .header("Harvest-Account-Id", ACCOUNT)
            .header("User-Agent", "t (a@b.c)")
            .send()
    };
    let e: serde_json::Value = get("/v2/time_entries/331".into())
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let client = e["client"].as_object().expect("client");
    let mut keys: Vec<&str> = client.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "name"]);
    let c: serde_json::Value = get("/v2/clients/5735776".into())
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(c["currency"], "USD");
    fake.state().clients_forbidden = true;
    let s = get("/v2/clients/5735776".into())
        .await
        .expect("send")
        .status();
    assert_eq!(s.as_u16(), 403);
}

// ---- Toggl: every user's time (issue 11, point 14) ----

#[tokio::test]
async fn toggl_me_endpoint_is_user_scoped_but_the_poller_sees_every_user() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = TogglServer::start(TOGGL_TOKEN, 1000, Duration::from_secs(3600)).await;
    fake.add_user("member-token", 4001, false);
    // Three people's time in workspace 777; 4001 is the only mapped one.
    for (id, user) in [(11, 4001), (12, 4002), (13, toggl_fake::ADMIN_USER)] {
        fake.put(toggl_fake::entry(
            id,
            777,
            user,
            5001,
            &start_days_ago(1),
            1800,
        ));
    }
    // The documented `/me` scope: a member sees only their own entries.
    let http = timepost_tests::kit::http();
    let mine: Vec<serde_json::Value> = http
        .get(format!("{}/api/v9/me/time_entries", fake.base_url()))
        .basic_auth("member-token", Some("api_token"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["user_id"], 4001);

    // The poller, with the admin's token, reads all three.
    let stack = toggl_stack(dir.path(), &fake.base_url()).await;
    let poller = Poller::for_source("toggl", &stack.config.intake)
        .expect("poller")
        .expect("configured");
    let ports = stack.poll_ports();
    let r = poller.run(&ports).await.expect("poll");
    assert_eq!(r.fetched, 3, "{r:?}");
    drain(&stack).await;
    assert_eq!(status(&stack, &tkey(11)).await, Some(Status::Posted));
    for id in [12, 13] {
        assert!(status(&stack, &tkey(id)).await.is_some(), "{id} was seen");
    }

    // A member's token cannot read the workspace report: a configuration
    // error (the token must be an admin's), nothing moves.
    stack
        .secrets
        .put("toggl_token", "member-token")
        .await
        .expect("secret");
    let wm = stack.store.get_watermark("toggl:777").await.expect("wm");
    let e = poller.run(&ports).await.expect_err("403");
    assert!(e.is_config(), "{e}");
    assert_eq!(fake.counters().forbidden, 1);
    assert_eq!(
        stack.store.get_watermark("toggl:777").await.expect("wm"),
        wm
    );
}

#[tokio::test]
async fn toggl_report_pages_are_followed_and_a_moved_entry_is_not_deleted() {
    let dir = tempfile::tempdir().expect("dir");
    let fake = TogglServer::start(TOGGL_TOKEN, 1000, Duration::from_secs(3600)).await;
    for id in 21..=25 {
        fake.put(toggl_fake::entry(
            id,
            777,
            4001,
            5001,
            &start_days_ago(2),
            900,
        ));
    }
    let text = format!(
        "{}\n[intake.toggl_poll]\nbase_url = \"{}\"\nworkspace = \"777\"\nrequests_per_hour = 36000\n\
         page_size = 2\nlookback_days = 7\nfirst_poll_days = 7\nbackoff_base_ms = 10\nbackoff_cap_ms = 50\nmax_wait_secs = 5\n",
        timepost::demo::CONFIG,
        fake.base_url()
    );
    let mut stack = stack_with(dir.path(), &text, MAPPINGS).await;
    stack.config.rules.approval.required = false;
    let stack = LocalStack::with_store(stack.config.clone(), stack.store.clone()).expect("stack");
    stack
        .secrets
        .put("toggl_token", TOGGL_TOKEN)
        .await
        .expect("secret");
    let poller = Poller::for_source("toggl", &stack.config.intake)
        .expect("poller")
        .expect("configured");
    let ports = stack.poll_ports();
    let r = poller.run(&ports).await.expect("poll");
    assert_eq!((r.pages, r.fetched), (3, 5), "{r:?}");
    let bodies = fake.state().report_bodies.clone();
    assert_eq!(bodies[1]["first_row_number"], 3);
    assert!(bodies[1]["first_id"].is_u64());
    drain(&stack).await;

    // Re-dated out of the window: found by id, so moved, not deleted.
    fake.edit(21, |e| {
        let start = format!("{}T17:00:00Z", days_ago(40));
        e["start"] = start.clone().into();
        e["stop"] = format!("{}T17:15:00Z", days_ago(40)).into();
    });
    let r = poller.run(&ports).await.expect("poll 2");
    assert_eq!(r.deleted, 0, "{r:?}");
    drain(&stack).await;
    let s = stack
        .store
        .get(&tkey(21))
        .await
        .expect("get")
        .expect("known");
    assert_eq!(s.status(), Status::Posted);
    assert_eq!(s.entry.work_date, days_ago(40));
}
