//! Reading the Xero books back (`read_books`) against the fake
//! organisation: the fingerprint in every time entry timepost writes, the
//! Time list's paging per project, changes made by someone else in Xero,
//! and a lost response settled by reading the books.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::json;
use timepost::ledger::books::{BookQuery, BookRecord};
use timepost::ledger::cloud::Connect;
use timepost::ledger::cloud::XeroLimits;
use timepost::ledger::xero::{entry_of, XeroLedger};
use timepost::ledger::{Ledger, LedgerError, LedgerOp, LedgerRequest, Party, PostingLine};
use timepost_tests::fake_common::Inject;
use timepost_tests::openapi::{xero_spec_or_skip, Spec};
use timepost_tests::xero_fake::{XeroFakeLimits, XeroServer};
use timepost_tests::*;

const PROJECT: &str = "b021e7cb-1903-4292-b48b-5b27b4271e3e";
const PROJECT_2: &str = "3cd35eca-704f-4bca-b258-236028ae8ed1";
const TASK: &str = "7be77337-feec-4458-bb1b-dbaa5a4aafce";
const USER: &str = "740add2a-a703-4b8a-a670-1093919c2040";
const USER_2: &str = "00000000-0000-0000-0000-000000000007";

async fn setup(spec: Spec) -> (XeroServer, XeroLedger) {
    let projects = BTreeMap::from([
        (PROJECT.to_string(), BTreeSet::from([TASK.to_string()])),
        (PROJECT_2.to_string(), BTreeSet::from([TASK.to_string()])),
    ]);
    let server = XeroServer::start(
        spec,
        "tenant-1",
        projects,
        BTreeSet::from([USER.to_string(), USER_2.to_string()]),
        XeroFakeLimits {
            per_minute: 600,
            ..Default::default()
        },
        "rt-x",
    )
    .await;
    let limits = XeroLimits {
        calls_per_minute: 600,
        ..Default::default()
    };
    let ledger = xero_config(&server, limits)
        .connect(Arc::new(oauth_secrets("xero", "rt-x")))
        .unwrap_or_else(|e| panic!("{e}"));
    (server, ledger)
}

fn xline(project: &str, user: &str, minutes: i64, description: &str) -> PostingLine {
    let mut l = line(Party::Employee { id: user.into() }, minutes, description);
    l.customer = Some(project.into());
    l.service_item = Some(TASK.into());
    l
}

fn create(id: &str, lines: Vec<PostingLine>) -> LedgerRequest {
    request(id, 1, LedgerOp::Create { lines })
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default()
}

fn march(customers: &[&str]) -> BookQuery {
    BookQuery {
        from: day(1),
        to: day(31),
        parties: Vec::new(),
        customers: customers.iter().map(|c| c.to_string()).collect(),
    }
}

async fn read(ledger: &XeroLedger, q: &BookQuery) -> Vec<BookRecord> {
    ledger
        .read_books(q)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("Xero reads its books"))
}

/// Time logged in Xero's screens.
fn by_hand(date: &str, minutes: i64, description: &str) -> serde_json::Value {
    json!({"userId": USER, "taskId": TASK, "dateUtc": format!("{date}T00:00:00Z"),
        "duration": minutes, "description": description})
}

fn no_problems(server: &XeroServer) {
    let s = server.lock();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.counters.invalid_bodies, 0);
}

#[tokio::test]
async fn created_entries_read_back_with_their_fingerprint() {
    let Some(spec) = xero_spec_or_skip("created_entries_read_back_with_their_fingerprint") else {
        return;
    };
    let (server, ledger) = setup(spec).await;
    let x1 = create("x1", vec![xline(PROJECT, USER, 95, "Deploy")]);
    let x2 = create("x2", vec![xline(PROJECT_2, USER_2, 30, "Review")]);
    let refs = ledger.apply(&x1).await.unwrap_or_else(|e| panic!("{e}"));
    ledger.apply(&x2).await.unwrap_or_else(|e| panic!("{e}"));
    server.create_by_hand(PROJECT, by_hand("2026-03-04", 20, "logged in Xero"));
    server.create_by_hand(PROJECT, by_hand("2026-04-01", 20, "April"));

    let fp = x1.fingerprint("regular").unwrap_or_default();
    let sent: Vec<String> = server
        .entries()
        .values()
        .filter_map(|e| e.body["description"].as_str().map(str::to_string))
        .collect();
    assert!(sent.contains(&format!("Deploy [tp:{fp}]")), "{sent:?}");

    // The query's customers are the projects read: one list call (the
    // organisation's time zone and the project's tasks were read once, by
    // the first apply of this connection).
    let writes = ledger.transport.counts.writes();
    let reads = ledger.transport.counts.reads();
    let books = read(&ledger, &march(&[PROJECT])).await;
    assert_eq!(ledger.transport.counts.reads() - reads, 1);
    assert_eq!(ledger.transport.counts.writes(), writes);
    assert_eq!(books.len(), 2, "{books:#?}");
    let ours = books
        .iter()
        .find(|r| r.fingerprint.as_deref() == Some(fp.as_str()))
        .unwrap_or_else(|| panic!("the entry is not in the books"));
    assert_eq!(ours.id, refs[0].id);
    assert_eq!(
        ours.sync_token, refs[0].sync_token,
        "unchanged since timepost wrote it"
    );
    assert_eq!(ours.description, "Deploy");
    assert_eq!((ours.txn_date, ours.minutes), (day(2), 95));
    assert_eq!(ours.party, Some(Party::Employee { id: USER.into() }));
    assert_eq!(ours.customer.as_deref(), Some(PROJECT));
    assert_eq!((ours.billable, ours.locked), (None, false));
    let theirs = books
        .iter()
        .find(|r| r.fingerprint.is_none())
        .unwrap_or_else(|| panic!("no hand-logged entry"));
    assert_eq!(theirs.description, "logged in Xero");

    // No customers: every project of the organisation (GET /Projects, then
    // each project's time).
    let all = read(&ledger, &march(&[])).await;
    assert_eq!(all.len(), 3);
    assert_eq!(ledger.transport.counts.reads() - reads, 1 + 3);
    assert!(all
        .iter()
        .any(|r| r.fingerprint == x2.fingerprint("regular")
            && r.customer.as_deref() == Some(PROJECT_2)));
    // Parties narrow it.
    let q = BookQuery {
        parties: vec![Party::Employee { id: USER_2.into() }],
        ..march(&[])
    };
    let only = read(&ledger, &q).await;
    assert_eq!((only.len(), only[0].description.as_str()), (1, "Review"));
    // One day.
    let q = BookQuery {
        from: day(4),
        to: day(4),
        ..march(&[PROJECT])
    };
    let d = read(&ledger, &q).await;
    assert_eq!((d.len(), d[0].description.as_str()), (1, "logged in Xero"));
    let c = server.counters();
    assert_eq!(
        c.lists + c.organisation_reads + c.task_lists,
        ledger.transport.counts.reads()
    );
    no_problems(&server);
}

#[tokio::test]
async fn reading_follows_the_page_count() {
    let Some(spec) = xero_spec_or_skip("reading_follows_the_page_count") else {
        return;
    };
    let (server, ledger) = setup(spec).await;
    for n in 0..1100 {
        server.create_by_hand(PROJECT, by_hand("2026-03-09", 15, &format!("r{n}")));
    }
    server.create_by_hand(PROJECT, by_hand("2026-02-27", 15, "February"));
    let books = read(&ledger, &march(&[PROJECT])).await;
    assert_eq!(books.len(), 1100);
    let ids: BTreeSet<&str> = books.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1100, "no entry twice");
    // 500 a page: pageCount 3; and the organisation's time zone, read
    // once per connection.
    assert_eq!(ledger.transport.counts.reads(), 3 + 1);
    assert_eq!(server.counters().organisation_reads, 1);
    assert_eq!(ledger.transport.counts.writes(), 0);
    no_problems(&server);
}

#[tokio::test]
async fn changes_made_in_xero_read_back_as_they_are() {
    let Some(spec) = xero_spec_or_skip("changes_made_in_xero_read_back_as_they_are") else {
        return;
    };
    let (server, ledger) = setup(spec).await;
    let mut refs = Vec::new();
    for n in 0..4 {
        let l = xline(PROJECT, USER, 60, &format!("t{n}"));
        refs.extend(
            ledger
                .apply(&create(&format!("h{n}"), vec![l]))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let entry = |n: usize| entry_of(&refs[n].id).to_string();
    server.delete_by_hand(&entry(0));
    server.edit_by_hand(&entry(1), "duration", json!(180));
    server.set_status(&entry(2), "INVOICED");
    server.set_status(&entry(3), "LOCKED");

    let books = read(&ledger, &march(&[PROJECT])).await;
    assert_eq!(books.len(), 3);
    assert!(books.iter().all(|r| r.id != refs[0].id), "deleted: gone");
    let get = |n: usize| {
        books
            .iter()
            .find(|r| r.id == refs[n].id)
            .unwrap_or_else(|| panic!("entry {n} missing"))
    };
    assert_eq!(get(1).minutes, 180);
    assert_ne!(
        get(1).sync_token,
        refs[1].sync_token,
        "edited: no longer what timepost wrote"
    );
    assert!(!get(1).locked);
    assert!(get(2).locked && get(3).locked);
    assert_eq!(get(2).sync_token, refs[2].sync_token);
    no_problems(&server);
}

#[tokio::test]
async fn a_lost_response_is_settled_by_reading_the_books() {
    let Some(spec) = xero_spec_or_skip("a_lost_response_is_settled_by_reading_the_books") else {
        return;
    };
    let (server, ledger) = setup(spec).await;
    // A first posting reads what every later one needs once per connection
    // (the organisation's time zone, the project's tasks), so the dropped
    // answer below is the create's.
    ledger
        .apply(&create("warm", vec![xline(PROJECT, USER, 15, "warm")]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    server.inject(Inject::DropAfter);
    let req = create("lost", vec![xline(PROJECT, USER, 45, "lost")]);
    assert!(matches!(
        ledger.apply(&req).await,
        Err(LedgerError::Transient(_))
    ));
    let found: Vec<BookRecord> = read(&ledger, &march(&[PROJECT]))
        .await
        .into_iter()
        .filter(|r| r.fingerprint == req.fingerprint("regular"))
        .collect();
    assert_eq!(found.len(), 1, "the work was done: nothing to re-send");
    assert_eq!(found[0].minutes, 45);
    assert_eq!(server.counters().creates, 2, "the warm-up and the lost one");

    // A project Xero does not know is an exception, not an empty read.
    let e = ledger
        .read_books(&march(&["00000000-0000-0000-0000-0000000000ff"]))
        .await;
    assert!(matches!(e, Err(LedgerError::Rejected(_))), "{e:?}");
    no_problems(&server);
}
