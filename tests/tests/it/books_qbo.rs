//! Reading the QBO books back (`read_books`) against the fake company: the
//! fingerprint in every record timepost writes, `query` paging, changes
//! made by someone else in QuickBooks, and why an uncertain outcome is
//! settled by reading the books rather than by trusting `requestid`.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::json;
use timepost::ledger::books::{BookQuery, BookRecord};
use timepost::ledger::cloud::Connect;
use timepost::ledger::cloud::QboLimits;
use timepost::ledger::qbo::QboLedger;
use timepost::ledger::{Ledger, LedgerError, LedgerOp, LedgerRequest, Party, PostingLine};
use timepost_tests::fake_common::Inject;
use timepost_tests::qbo_fake::{QboFakeLimits, QboServer, RequestIdMode};
use timepost_tests::*;

async fn setup() -> (QboServer, QboLedger) {
    let server = QboServer::start(
        "9130",
        sandbox_chart(),
        QboFakeLimits::default(),
        "rt-initial",
    )
    .await;
    let secrets = Arc::new(oauth_secrets("qbo", "rt-initial"));
    let ledger = qbo_config(&server, 10, QboLimits::default())
        .connect(secrets)
        .unwrap_or_else(|e| panic!("{e}"));
    (server, ledger)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default()
}

fn march() -> BookQuery {
    BookQuery {
        from: day(1),
        to: day(31),
        parties: Vec::new(),
        customers: Vec::new(),
    }
}

fn employee() -> Party {
    Party::Employee { id: "E-100".into() }
}

fn create(id: &str, lines: Vec<PostingLine>) -> LedgerRequest {
    request(id, 1, LedgerOp::Create { lines })
}

async fn read(ledger: &QboLedger, q: &BookQuery) -> Vec<BookRecord> {
    ledger
        .read_books(q)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("QBO reads its books"))
}

/// A TimeActivity keyed in by a bookkeeper on `date`.
fn by_hand(date: &str, minutes: i64, description: &str) -> serde_json::Value {
    json!({"NameOf": "Employee", "EmployeeRef": {"value": "E-100"}, "TxnDate": date,
        "Hours": minutes / 60, "Minutes": minutes % 60, "BillableStatus": "NotBillable",
        "Description": description})
}

#[tokio::test]
async fn created_records_read_back_with_their_fingerprint() {
    let (server, ledger) = setup().await;
    let regular = billable(line(employee(), 485, "Homepage sprint"), "C-ACME", "150");
    let overtime = PostingLine {
        tier: "overtime".into(),
        minutes: 30,
        ..regular.clone()
    };
    let vendor = Party::Vendor {
        id: "V-200".into(),
        form_1099: None,
    };
    let e1 = create("e1", vec![regular.clone(), overtime]);
    let e2 = create("e2", vec![line(vendor.clone(), 60, "Audit")]);
    let refs = ledger.apply(&e1).await.unwrap_or_else(|e| panic!("{e}"));
    ledger.apply(&e2).await.unwrap_or_else(|e| panic!("{e}"));
    server.create_by_hand(by_hand("2026-03-05", 45, "keyed in QBO"));
    server.create_by_hand(by_hand("2026-04-01", 45, "April"));

    // What was sent carries the marker in Description.
    let fp = e1.fingerprint("regular").unwrap_or_default();
    let sent: Vec<String> = server
        .active("TimeActivity")
        .values()
        .filter_map(|r| r.body["Description"].as_str().map(str::to_string))
        .collect();
    assert!(
        sent.contains(&format!("Homepage sprint [tp:{fp}]")),
        "{sent:?}"
    );

    let writes = ledger.transport.counts.writes();
    let books = read(&ledger, &march()).await;
    assert_eq!(books.len(), 4, "{books:#?}");
    let reg = books
        .iter()
        .find(|r| r.fingerprint.as_deref() == Some(fp.as_str()))
        .unwrap_or_else(|| panic!("the regular record is not in the books"));
    assert_eq!(reg.id, refs[0].id);
    assert_eq!(reg.sync_token, refs[0].sync_token);
    assert_eq!(reg.description, "Homepage sprint");
    assert_eq!((reg.txn_date, reg.minutes), (day(2), 485));
    assert_eq!(reg.party, Some(employee()));
    assert_eq!(reg.customer.as_deref(), Some("C-ACME"));
    assert_eq!((reg.billable, reg.locked), (Some(true), false));
    let ot = books
        .iter()
        .find(|r| r.fingerprint == e1.fingerprint("overtime"))
        .unwrap_or_else(|| panic!("no overtime record"));
    assert_eq!((ot.id.as_str(), ot.minutes), (refs[1].id.as_str(), 30));
    let audit = books
        .iter()
        .find(|r| r.fingerprint == e2.fingerprint("regular"))
        .unwrap_or_else(|| panic!("no vendor record"));
    assert_eq!(audit.party.as_ref().map(Party::id), Some("V-200"));
    assert_eq!(audit.billable, Some(false));
    let theirs = books
        .iter()
        .find(|r| r.fingerprint.is_none())
        .unwrap_or_else(|| panic!("no hand-keyed record"));
    assert_eq!(
        (theirs.description.as_str(), theirs.minutes),
        ("keyed in QBO", 45)
    );

    // One query page, counted as a read; no write. (The other read is the
    // company's preferences, read once by the first posting.)
    assert_eq!(ledger.transport.counts.reads(), 1 + 1);
    assert_eq!(server.counters().preferences, 1);
    assert_eq!(ledger.transport.counts.writes(), writes);
    assert_eq!(server.counters().queries, 1);

    // Parties and customers narrow the read (filtered by timepost).
    let only_vendor = BookQuery {
        parties: vec![vendor],
        ..march()
    };
    let v = read(&ledger, &only_vendor).await;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].description, "Audit");
    let only_acme = BookQuery {
        customers: vec!["C-ACME".into()],
        ..march()
    };
    assert_eq!(read(&ledger, &only_acme).await.len(), 2);
    let one_day = BookQuery {
        from: day(5),
        to: day(5),
        ..march()
    };
    let d = read(&ledger, &one_day).await;
    assert_eq!((d.len(), d[0].description.as_str()), (1, "keyed in QBO"));
}

#[tokio::test]
async fn reading_pages_through_more_than_a_thousand_records() {
    let (server, ledger) = setup().await;
    for n in 0..1000 {
        server.create_by_hand(by_hand("2026-03-10", 30, &format!("r{n}")));
    }
    // Exactly one full page: a second page comes back empty
    // (`{"QueryResponse": {}}`) and ends the read.
    assert_eq!(read(&ledger, &march()).await.len(), 1000);
    assert_eq!(ledger.transport.counts.reads(), 2);

    for n in 1000..2050 {
        server.create_by_hand(by_hand("2026-03-11", 30, &format!("r{n}")));
    }
    server.create_by_hand(by_hand("2026-02-28", 30, "February"));
    let books = read(&ledger, &march()).await;
    assert_eq!(books.len(), 2050);
    let ids: std::collections::BTreeSet<&str> = books.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 2050, "no record twice");
    assert!(books.iter().all(|r| r.description != "February"));
    assert_eq!(ledger.transport.counts.reads(), 2 + 3);
    assert_eq!(server.counters().queries, 5);
    assert_eq!(server.counters().batch_calls, 0, "reading writes nothing");
}

#[tokio::test]
async fn changes_made_in_quickbooks_read_back_as_they_are() {
    let (server, ledger) = setup().await;
    let mut refs = Vec::new();
    for n in 0..3 {
        let l = billable(line(employee(), 60, &format!("t{n}")), "C-ACME", "100");
        refs.extend(
            ledger
                .apply(&create(&format!("h{n}"), vec![l]))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let id = |n: usize| refs[n].id.parse::<u64>().unwrap_or_default();
    server.delete_by_hand(id(0));
    server.edit_by_hand(id(1), "Hours", json!(3));
    server.bill_by_hand(id(2));

    let books = read(&ledger, &march()).await;
    assert_eq!(books.len(), 2);
    assert!(
        books.iter().all(|r| r.id != refs[0].id),
        "the deleted record is gone"
    );
    let edited = books
        .iter()
        .find(|r| r.id == refs[1].id)
        .unwrap_or_else(|| panic!("edited record missing"));
    assert_eq!(edited.minutes, 180);
    assert_eq!(edited.sync_token, "1", "the edit moved the SyncToken on");
    assert!(edited.fingerprint.is_some() && !edited.locked);
    let billed = books
        .iter()
        .find(|r| r.id == refs[2].id)
        .unwrap_or_else(|| panic!("billed record missing"));
    assert_eq!((billed.locked, billed.billable), (true, Some(true)));
    assert_eq!(billed.description, "t2");
}

#[tokio::test]
async fn with_requestid_ignored_a_resent_create_makes_a_second_record() {
    let (server, ledger) = setup().await;
    // As documented: the same requestid is answered with the original.
    let once = create("d1", vec![line(employee(), 30, "once")]);
    ledger.apply(&once).await.unwrap_or_else(|e| panic!("{e}"));
    ledger.apply(&once).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.counters().replays, 1);
    assert_eq!(server.active("TimeActivity").len(), 1);

    // As developers report it: the id is not honoured.
    server.set_requestid_mode(RequestIdMode::Ignore);
    let twice = create("d2", vec![line(employee(), 30, "twice")]);
    let first = ledger.apply(&twice).await.unwrap_or_else(|e| panic!("{e}"));
    let second = ledger.apply(&twice).await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(first[0].id, second[0].id, "a second record was made");
    assert_eq!(server.counters().duplicates, 1);
    let fp = twice.fingerprint("regular");
    let dups: Vec<BookRecord> = read(&ledger, &march())
        .await
        .into_iter()
        .filter(|r| r.fingerprint == fp)
        .collect();
    assert_eq!(dups.len(), 2, "both copies carry the same fingerprint");
    assert_eq!(dups[0].description, dups[1].description);
}

#[tokio::test]
async fn a_replayed_requestid_replays_the_original_fault() {
    let (server, ledger) = setup().await;
    server.inject(Inject::ErrorIn200);
    let req = create("f1", vec![line(employee(), 30, "after the fix")]);
    assert!(matches!(
        ledger.apply(&req).await,
        Err(LedgerError::Rejected(_))
    ));
    // The cause is gone, but the same requestid gets the same fault.
    assert!(matches!(
        ledger.apply(&req).await,
        Err(LedgerError::Rejected(_))
    ));
    assert_eq!(server.counters().replays, 1);
    assert!(server.active("TimeActivity").is_empty());
    // A new intent (new key) goes through.
    let fresh = request(
        "f1",
        2,
        LedgerOp::Create {
            lines: vec![line(employee(), 30, "after the fix")],
        },
    );
    ledger.apply(&fresh).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.active("TimeActivity").len(), 1);
}

#[tokio::test]
async fn a_lost_response_is_settled_by_reading_the_books() {
    let (server, ledger) = setup().await;
    // The unfavourable vendor: a re-send would duplicate.
    server.set_requestid_mode(RequestIdMode::Ignore);
    for (n, fault) in [
        Inject::DropAfter,
        Inject::StatusAfter(503),
        Inject::TimeoutAfter(Duration::from_secs(3)),
    ]
    .into_iter()
    .enumerate()
    {
        server.inject(fault.clone());
        let req = create(&format!("lost-{n}"), vec![line(employee(), 45, "lost")]);
        let outcome = ledger.apply(&req).await;
        assert!(
            matches!(outcome, Err(LedgerError::Transient(_))),
            "{fault:?}: {outcome:?}"
        );
        let fp = req.fingerprint("regular");
        let found: Vec<BookRecord> = read(&ledger, &march())
            .await
            .into_iter()
            .filter(|r| r.fingerprint == fp)
            .collect();
        assert_eq!(found.len(), 1, "{fault:?}: the work was done");
        assert_eq!(found[0].minutes, 45);
    }
    // Nothing was sent twice: one record per request.
    assert_eq!(server.active("TimeActivity").len(), 3);
    assert_eq!(server.counters().duplicates, 0);
}

#[tokio::test]
async fn reads_share_the_connection_limits_and_faults_of_writes() {
    let (server, ledger) = setup().await;
    // A 401 on a read: one refresh and one retry, as for a write.
    read(&ledger, &march()).await;
    server.inject(Inject::ExpireTokens);
    read(&ledger, &march()).await;
    assert_eq!(server.lock().oauth.refresh_calls, 2);
    assert_eq!(ledger.transport.counts.reads(), 3, "the 401 and its retry");
    // A throttled read is RateLimited; a 5xx is transient; a 200 Fault is
    // the fault.
    server.inject(Inject::Throttle(Some(0.05)));
    assert!(matches!(
        ledger.read_books(&march()).await,
        Err(LedgerError::RateLimited(_))
    ));
    server.inject(Inject::StatusBefore(503));
    assert!(matches!(
        ledger.read_books(&march()).await,
        Err(LedgerError::Transient(_))
    ));
    server.inject(Inject::ErrorIn200);
    assert!(matches!(
        ledger.read_books(&march()).await,
        Err(LedgerError::Rejected(_))
    ));
    assert_eq!(server.counters().batch_calls, 0);
}

#[tokio::test]
async fn the_fake_answers_queries_as_documented() {
    let (server, _ledger) = setup().await;
    for n in 0..5 {
        server.create_by_hand(by_hand("2026-03-02", 30, &format!("q{n}")));
    }
    server.lock().oauth.access.insert(
        "direct".into(),
        tokio::time::Instant::now() + Duration::from_secs(60),
    );
    let get = |q: &str| {
        let url = format!(
            "{}/v3/company/9130/query?query={}",
            server.base(),
            timepost::ledger::transport::url_encode(q)
        );
        async move {
            let resp = timepost_tests::kit::http()
                .get(url)
                .bearer_auth("direct")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp.json().await.unwrap_or_else(|e| panic!("{e}"));
            (status, v)
        }
    };
    let (s, v) = get("select * from TimeActivity STARTPOSITION 2 MAXRESULTS 2").await;
    assert_eq!(s, 200);
    assert_eq!(v["QueryResponse"]["startPosition"], 2);
    assert_eq!(v["QueryResponse"]["maxResults"], 2);
    assert_eq!(v["QueryResponse"]["TimeActivity"][0]["Description"], "q1");
    let (_, v) = get("select * from TimeActivity where TxnDate > '2026-03-02'").await;
    assert_eq!(
        v["QueryResponse"],
        json!({}),
        "no match: an empty QueryResponse"
    );
    let (s, v) = get("select * from TimeActivity where EmployeeRef = 'E-100'").await;
    assert_eq!(
        (s, v["Fault"]["Error"][0]["code"].as_str()),
        (400, Some("4001"))
    );
    let (s, _) = get("select * from TimeActivity MAXRESULTS 1001").await;
    assert_eq!(s, 400);
    let (s, v) = get("select * from TimeActivity where TxnDate = '2026-03-02' or Id = '1'").await;
    assert_eq!(
        (s, v["Fault"]["Error"][0]["code"].as_str()),
        (400, Some("4000"))
    );
}

/// Intuit's change data capture page lists TimeActivity among the
/// entities CDC cannot be used for: the adapter says so and sends nothing.
#[tokio::test]
async fn quickbooks_has_no_change_feed_for_time() {
    let (server, ledger) = setup().await;
    let answer = ledger
        .book_changes(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let timepost::ledger::books::BookChanges::ReadBooks { why } = answer else {
        panic!("QuickBooks answered a change feed: {answer:?}");
    };
    assert!(why.contains("TimeActivity"), "{why}");
    assert_eq!(ledger.transport.counts.reads(), 0);
    assert_eq!(server.counters().queries, 0);
}
