//! Three-way reconciliation (`timepost::reconcile`) against the sandbox
//! ledger, the fake QuickBooks, the fake Xero and the fake Harvest: each
//! class of break found where the books were changed, the resolve actions
//! (re-post converges the books, accept-books adopts, dismiss is recorded
//! and audited), the stored history, and the ledger reads a run costs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use serde_json::json;
use timepost::exceptions::ExceptionCode;
use timepost::ledger::cloud::Connect;
use timepost::local::SqliteStore;
use timepost::poll::list_trackers;
use timepost::ports::{AuditLog, EntryStore, Secrets};
use timepost::reconcile::gather::{Reconciler, Run};
use timepost::reconcile::resolve::{resolve, Resolver};
use timepost::reconcile::{Action, Break, Period, ReconcileConfig, ReconcileStore};
use timepost::stack::LocalStack;
use timepost_tests::kit::{deliver, stack_with, E};

fn d(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, day).expect("date")
}

/// Ann's week (2026-03-02..08): five 8 h days.
fn week() -> Period {
    Period {
        from: d(2),
        to: d(8),
    }
}

fn full_week() -> Vec<timepost::model::NormalisedEntry> {
    (0..5)
        .map(|i| {
            E::new(
                &format!("w{i}"),
                "u-ann",
                &format!("2026-03-0{}", i + 2),
                "08:00",
                "16:00",
            )
            .build()
        })
        .collect()
}

fn reconciler(s: &LocalStack) -> Reconciler {
    Reconciler {
        entries: Arc::new(s.store.clone()),
        ledger: s.ledger.clone(),
        store: Arc::new(s.store.clone()),
        config: ReconcileConfig::default(),
    }
}

async fn run(s: &LocalStack) -> Run {
    reconciler(s)
        .run(&week(), None, "test")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Counted breaks as (code, entry id).
fn found(r: &Run) -> BTreeSet<(ExceptionCode, String)> {
    r.breaks
        .iter()
        .filter(|b| b.counts())
        .map(|b| {
            (
                b.code,
                b.entry
                    .as_deref()
                    .and_then(|k| k.rsplit(':').next())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn the(r: &Run, code: ExceptionCode) -> Break {
    r.breaks
        .iter()
        .find(|b| b.code == code)
        .cloned()
        .unwrap_or_else(|| panic!("no {code} in {:#?}", r.breaks))
}

fn who() -> Resolver {
    Resolver {
        who: "fran".into(),
        role: "finance".into(),
    }
}

async fn act(s: &LocalStack, id: &str, action: Action, reason: &str) {
    resolve(
        &reconciler(s),
        &s.engine,
        &s.store,
        id,
        action,
        reason,
        &who(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn converge(s: &LocalStack) -> usize {
    s.engine
        .sweep_older_than("reconcile-test", timepost::engine::STALE_INTENT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .weeks
}

#[tokio::test]
async fn reconciliation_runs_meet_the_store_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(&dir.path().join("t.sqlite")).expect("store");
    timepost_tests::contracts::reconcile_store(&store).await;
}

#[tokio::test]
async fn the_sandbox_demo_agrees() {
    let dir = tempfile::tempdir().expect("dir");
    timepost::demo::run(dir.path()).await.expect("demo");
    let mut config =
        timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    config.store.path = dir.path().join("timepost.sqlite");
    config.store.archive_dir = dir.path().join("archive");
    config.store.secrets_file = dir.path().join("secrets.toml");
    let store = SqliteStore::open(&config.store.path).expect("store");
    let s = LocalStack::with_store(config, store).expect("stack");
    let r = reconciler(&s)
        .run(
            &Period {
                from: d(1),
                to: d(31),
            },
            None,
            "test",
        )
        .await
        .expect("run");
    assert!(r.summary.agrees(), "{:#?}", r.breaks);
    assert_eq!(r.summary.breaks, 0);
    assert!(r.rows.iter().any(|row| row.books_minutes > 0));
    assert!(r
        .rows
        .iter()
        .all(|row| row.timepost_minutes == row.books_minutes));
    assert_eq!(r.summary.ledger_reads, 1, "one paged read of the books");
}

#[tokio::test]
async fn sandbox_breaks_are_found_and_each_action_resolves_one() {
    let dir = tempfile::tempdir().expect("dir");
    let s = stack_with(dir.path(), timepost::demo::CONFIG, "").await;
    deliver(&s, &full_week()).await;
    assert!(run(&s).await.summary.agrees());

    let recs = s.sandbox.records().expect("records");
    let rec_of = |id: &str| {
        let key = E::new(id, "u-ann", "2026-03-02", "08:00", "16:00")
            .build()
            .key
            .to_string();
        recs.iter()
            .find(|r| r.entry_key == key)
            .expect("record")
            .id
            .clone()
    };
    s.sandbox.delete_elsewhere(&rec_of("w0")).expect("delete");
    s.sandbox.edit_elsewhere(&rec_of("w1"), 60).expect("edit");
    s.sandbox.edit_elsewhere(&rec_of("w2"), 420).expect("edit");
    let r = run(&s).await;
    assert_eq!(
        found(&r),
        BTreeSet::from([
            (ExceptionCode::DeletedInBooks, "w0".into()),
            (ExceptionCode::ChangedInBooks, "w1".into()),
            (ExceptionCode::ChangedInBooks, "w2".into()),
        ]),
        "{:#?}",
        r.breaks
    );
    let changed: Vec<&Break> = r
        .breaks
        .iter()
        .filter(|b| b.code == ExceptionCode::ChangedInBooks)
        .collect();
    assert!(
        changed
            .iter()
            .any(|b| b.said.contains("1:00 h instead of 8:00 h")),
        "{changed:#?}"
    );
    let id_of = |code: ExceptionCode, entry: &str| {
        r.breaks
            .iter()
            .find(|b| b.code == code && b.entry.as_deref().is_some_and(|k| k.ends_with(entry)))
            .map(|b| b.id.clone())
            .expect("break")
    };

    // Re-post: the deleted record is created again by convergence.
    act(
        &s,
        &id_of(ExceptionCode::DeletedInBooks, "w0"),
        Action::Repost,
        "",
    )
    .await;
    assert_eq!(converge(&s).await, 1);
    // Accept the books: w1 keeps the books' hour.
    act(
        &s,
        &id_of(ExceptionCode::ChangedInBooks, "w1"),
        Action::AcceptBooks,
        "",
    )
    .await;
    // Dismiss w2 with a reason.
    let w2 = id_of(ExceptionCode::ChangedInBooks, "w2");
    act(&s, &w2, Action::Dismiss, "agreed with Ann: 7 h").await;

    let after = run(&s).await;
    assert!(after.summary.agrees(), "{:#?}", after.breaks);
    assert_eq!(after.summary.dismissed, 1);
    let dismissed = after.breaks.iter().find(|b| b.id == w2).expect("w2 again");
    assert_eq!(dismissed.dismissed.as_deref(), Some("agreed with Ann: 7 h"));
    let minutes: BTreeMap<String, i64> = s
        .sandbox
        .records()
        .expect("records")
        .into_iter()
        .map(|r| (r.entry_key, r.line.minutes))
        .collect();
    assert_eq!(minutes.len(), 5, "w0 is back: {minutes:?}");
    assert!(
        minutes.values().any(|m| *m == 60),
        "w1 keeps the books' hour"
    );
    let w1 = s
        .store
        .get(
            &E::new("w1", "u-ann", "2026-03-03", "08:00", "16:00")
                .build()
                .key,
        )
        .await
        .expect("get")
        .expect("w1");
    assert_eq!(w1.posted_minutes(), 60, "the state took the books' record");

    // Audited, and stored.
    let audit = s.store.recent(20).await.expect("audit");
    let actions: BTreeSet<&str> = audit
        .iter()
        .filter(|a| a.action.starts_with("reconcile_"))
        .map(|a| a.action.as_str())
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "reconcile_repost",
            "reconcile_accept_books",
            "reconcile_dismiss"
        ])
    );
    assert!(audit
        .iter()
        .any(|a| a.who == "fran" && a.detail.contains("agreed with Ann: 7 h")));
    let resolutions = s.store.resolutions(Some(&w2)).await.expect("resolutions");
    assert_eq!(resolutions.len(), 1);
    assert_eq!(resolutions[0].action, Action::Dismiss);
    let history = s.store.runs(10).await.expect("runs");
    assert_eq!(history.len(), 3, "every run is stored");
    assert_eq!(history[0].seq, after.summary.seq, "newest first");
    assert_eq!(
        history[1].counts,
        BTreeMap::from([
            ("CHANGED_IN_BOOKS".to_string(), 2),
            ("DELETED_IN_BOOKS".to_string(), 1)
        ])
    );
    assert_eq!(
        s.store
            .run_breaks(history[1].seq)
            .await
            .expect("breaks")
            .len(),
        3
    );

    // A break no run holds, a dismissal without reason, a re-post of a
    // record no entry owns: refused.
    let rec = reconciler(&s);
    for (id, action, reason) in [
        ("b-000000000000", Action::Dismiss, "x"),
        (w2.as_str(), Action::Dismiss, "  "),
    ] {
        assert!(
            resolve(&rec, &s.engine, &s.store, id, action, reason, &who())
                .await
                .is_err(),
            "{id} {action:?}"
        );
    }
}

// ------------------------------------------------------------- QuickBooks

mod qbo {
    use super::*;
    use timepost_tests::qbo_fake::{QboFakeLimits, QboServer};

    async fn setup(dir: &std::path::Path) -> (QboServer, LocalStack) {
        let server = QboServer::start(
            "9130",
            timepost_tests::sandbox_chart(),
            QboFakeLimits::default(),
            "rt-initial",
        )
        .await;
        let stack = timepost_tests::sandbox_stack(dir, Some(&server)).await;
        (server, stack)
    }

    async fn id_of(s: &LocalStack, entry: &str) -> u64 {
        let key = E::new(entry, "u-ann", "2026-03-02", "08:00", "16:00")
            .build()
            .key;
        let st = s.store.get(&key).await.expect("get").expect("state");
        st.records[0].id.parse().expect("numeric id")
    }

    #[tokio::test]
    async fn deleted_edited_and_duplicated_records_are_breaks() {
        let dir = tempfile::tempdir().expect("dir");
        let (server, s) = setup(dir.path()).await;
        deliver(&s, &full_week()).await;
        let queries = server.counters().queries;
        let r = run(&s).await;
        assert!(r.summary.agrees(), "{:#?}", r.breaks);
        assert_eq!(server.counters().queries - queries, 1, "one query page");

        let (w0, w1, w2) = (
            id_of(&s, "w0").await,
            id_of(&s, "w1").await,
            id_of(&s, "w2").await,
        );
        server.delete_by_hand(w0);
        server.edit_by_hand(w1, "Hours", json!(3));
        // A second record with w2's fingerprint (a copy keyed from it).
        let copy = server.active("TimeActivity")[&w2].body.clone();
        let dup = server.create_by_hand(copy);
        // And one keyed in by hand: information only.
        server.create_by_hand(
            json!({"NameOf": "Employee", "EmployeeRef": {"value": "E-100"},
            "TxnDate": "2026-03-04", "Hours": 1, "Minutes": 0, "BillableStatus": "NotBillable",
            "Description": "keyed in QBO"}),
        );
        let r = run(&s).await;
        assert_eq!(
            found(&r),
            BTreeSet::from([
                (ExceptionCode::DeletedInBooks, "w0".into()),
                (ExceptionCode::ChangedInBooks, "w1".into()),
                (ExceptionCode::DuplicateInBooks, "w2".into()),
            ]),
            "{:#?}",
            r.breaks
        );
        assert_eq!(
            the(&r, ExceptionCode::DuplicateInBooks).record,
            Some(dup.to_string())
        );
        assert!(the(&r, ExceptionCode::ChangedInBooks)
            .said
            .contains("3:00 h instead of 8:00 h"));
        let info = the(&r, ExceptionCode::NotTimepostsRecord);
        assert!(info.info && info.said.contains("was not written by timepost"));
        assert!(the(&r, ExceptionCode::DeletedInBooks)
            .said
            .contains("deleted in QuickBooks"));

        // Re-post the deleted and the edited record: the books converge.
        act(
            &s,
            &the(&r, ExceptionCode::DeletedInBooks).id,
            Action::Repost,
            "",
        )
        .await;
        act(
            &s,
            &the(&r, ExceptionCode::ChangedInBooks).id,
            Action::Repost,
            "",
        )
        .await;
        assert!(converge(&s).await >= 1);
        server.delete_by_hand(dup);
        let r = run(&s).await;
        assert!(r.summary.agrees(), "{:#?}", r.breaks);
        let hours: Vec<i64> = server
            .active("TimeActivity")
            .values()
            .filter(|t| t.body["Description"] != "keyed in QBO")
            .map(|t| t.body["Hours"].as_i64().unwrap_or(0))
            .collect();
        assert_eq!(hours, vec![8; 5]);
    }

    /// A weekly reconciliation of 10,000 entries: how many ledger reads
    /// it costs on QuickBooks (figures in docs/performance.md).
    #[tokio::test]
    async fn a_week_of_ten_thousand_records_costs_eleven_query_calls() {
        let dir = tempfile::tempdir().expect("dir");
        let (server, s) = setup(dir.path()).await;
        for n in 0..10_000u32 {
            server.create_by_hand(
                json!({"NameOf": "Employee", "EmployeeRef": {"value": "E-100"},
                "TxnDate": format!("2026-03-0{}", 2 + n % 5), "Hours": 8, "Minutes": 0,
                "BillableStatus": "NotBillable", "Description": format!("r{n}")}),
            );
        }
        let before = server.counters().queries;
        let r = run(&s).await;
        let pages = server.counters().queries - before;
        println!("QBO: 10,000 time records of one week read in {pages} query call(s)");
        // 1,000 a page (MAXRESULTS' ceiling), and the empty page that ends
        // the read.
        assert_eq!(pages, 11);
        assert_eq!(r.breaks.iter().filter(|b| b.info).count(), 10_000);
        assert_eq!(r.summary.breaks, 0);
    }
}

// ------------------------------------------------------------------- Xero

mod xero {
    use super::*;
    use timepost::ledger::cloud::XeroLimits;
    use timepost::ledger::xero::entry_of;
    use timepost::ledger::{Ledger, LedgerOp, Party, PostingLine};
    use timepost::state::{EntryState, Status};
    use timepost_tests::openapi::xero_spec_or_skip;
    use timepost_tests::xero_fake::{XeroFakeLimits, XeroServer};

    const PROJECT: &str = "b021e7cb-1903-4292-b48b-5b27b4271e3e";
    const TASK: &str = "7be77337-feec-4458-bb1b-dbaa5a4aafce";
    const USER: &str = "740add2a-a703-4b8a-a670-1093919c2040";

    struct World {
        server: XeroServer,
        ledger: Arc<dyn Ledger>,
        store: SqliteStore,
        _dir: tempfile::TempDir,
    }

    async fn world(spec: timepost_tests::openapi::Spec) -> World {
        let server = XeroServer::start(
            spec,
            "tenant-1",
            BTreeMap::from([(PROJECT.to_string(), BTreeSet::from([TASK.to_string()]))]),
            BTreeSet::from([USER.to_string()]),
            XeroFakeLimits {
                per_minute: 6000,
                ..Default::default()
            },
            "rt-x",
        )
        .await;
        let ledger = timepost_tests::xero_config(
            &server,
            XeroLimits {
                calls_per_minute: 6000,
                ..Default::default()
            },
        )
        .connect(Arc::new(timepost_tests::oauth_secrets("xero", "rt-x")))
        .unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).expect("store");
        World {
            server,
            ledger: Arc::new(ledger),
            store,
            _dir: dir,
        }
    }

    fn xline(day: u32, minutes: i64) -> PostingLine {
        let mut l = timepost_tests::line(Party::Employee { id: USER.into() }, minutes, "work");
        l.customer = Some(PROJECT.into());
        l.service_item = Some(TASK.into());
        l.txn_date = d(day);
        l
    }

    /// Post one entry to Xero and store the state timepost would hold.
    async fn post(w: &World, id: &str, day: u32) -> String {
        let line = xline(day, 480);
        let req = timepost_tests::request(
            id,
            1,
            LedgerOp::Create {
                lines: vec![line.clone()],
            },
        );
        let refs = w.ledger.apply(&req).await.unwrap_or_else(|e| panic!("{e}"));
        let entry = E::new(id, "u-ann", &format!("2026-03-0{day}"), "08:00", "16:00").build();
        let mut st = EntryState::new(entry, Utc::now());
        st.set_status(Status::Posted, st.updated_at);
        st.posted_version = Some(st.entry.version.clone());
        st.records = refs.clone();
        st.posted_lines = vec![line];
        w.store.put(&st).await.expect("put");
        refs[0].id.clone()
    }

    fn rec(w: &World) -> Reconciler {
        Reconciler {
            entries: Arc::new(w.store.clone()),
            ledger: w.ledger.clone(),
            store: Arc::new(w.store.clone()),
            config: ReconcileConfig::default(),
        }
    }

    #[tokio::test]
    async fn deleted_edited_and_duplicated_time_entries_are_breaks() {
        let Some(spec) = xero_spec_or_skip("deleted_edited_and_duplicated_time_entries_are_breaks")
        else {
            return;
        };
        let w = world(spec).await;
        let mut ids = Vec::new();
        for n in 0..4u32 {
            ids.push(post(&w, &format!("x{n}"), 2 + n).await);
        }
        let r = rec(&w).run(&week(), None, "test").await.expect("run");
        assert!(r.summary.agrees(), "{:#?}", r.breaks);

        w.server.delete_by_hand(entry_of(&ids[0]));
        w.server
            .edit_by_hand(entry_of(&ids[1]), "duration", json!(180));
        let body = w.server.entries()[entry_of(&ids[2])].body.clone();
        let copy = w.server.create_by_hand(
            PROJECT,
            json!({"userId": USER, "taskId": TASK, "dateUtc": body["dateUtc"],
                "duration": body["duration"], "description": body["description"]}),
        );
        w.server.create_by_hand(
            PROJECT,
            json!({"userId": USER, "taskId": TASK, "dateUtc": "2026-03-04T00:00:00Z",
                "duration": 30, "description": "logged in Xero"}),
        );
        let reads = w.server.counters();
        let r = rec(&w).run(&week(), None, "test").await.expect("run");
        let c = w.server.counters();
        assert_eq!(
            found(&r),
            BTreeSet::from([
                (ExceptionCode::DeletedInBooks, "x0".into()),
                (ExceptionCode::ChangedInBooks, "x1".into()),
                (ExceptionCode::DuplicateInBooks, "x2".into()),
            ]),
            "{:#?}",
            r.breaks
        );
        assert!(the(&r, ExceptionCode::DuplicateInBooks)
            .record
            .is_some_and(|id| id.ends_with(&copy)));
        assert!(the(&r, ExceptionCode::ChangedInBooks)
            .said
            .contains("3:00 h instead of 8:00 h"));
        assert!(the(&r, ExceptionCode::NotTimepostsRecord).info);
        // Every project (GET /Projects), then the one project's time.
        assert_eq!(c.lists - reads.lists, 2, "{c:?}");
    }

    /// A weekly reconciliation of 10,000 time entries on Xero: its reads
    /// (figures in docs/performance.md).
    #[tokio::test]
    async fn a_week_of_ten_thousand_time_entries_costs_twenty_two_calls() {
        let Some(spec) = xero_spec_or_skip("a_week_of_ten_thousand_time_entries") else {
            return;
        };
        let w = world(spec).await;
        for n in 0..10_000u32 {
            w.server.create_by_hand(
                PROJECT,
                json!({"userId": USER, "taskId": TASK,
                    "dateUtc": format!("2026-03-0{}T00:00:00Z", 2 + n % 5),
                    "duration": 60, "description": format!("r{n}")}),
            );
        }
        let before = w.server.counters();
        let r = rec(&w).run(&week(), None, "test").await.expect("run");
        let c = w.server.counters();
        let calls = (c.lists - before.lists)
            + (c.organisation_reads - before.organisation_reads)
            + (c.task_lists - before.task_lists);
        println!("Xero: 10,000 time entries of one week read in {calls} call(s)");
        assert_eq!(r.breaks.iter().filter(|b| b.info).count(), 10_000);
        // GET /Projects, 20 pages of 500, the organisation's time zone.
        assert_eq!(calls, 1 + 20 + 1, "{c:?}");
    }
}

// ---------------------------------------------------------------- Harvest

#[tokio::test]
async fn an_entry_harvest_lists_but_never_delivered_is_never_received() {
    use timepost_tests::harvest_fake::{self, HarvestServer};
    const ACCOUNT: &str = "987654";
    let server = HarvestServer::start(
        ACCOUNT,
        "harvest-pat",
        1000,
        std::time::Duration::from_secs(15),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "{}\n[intake.harvest]\naccount_id = \"{ACCOUNT}\"\nbase_url = \"{}\"\nuser_agent = \"timepost tests (ops@example.com)\"\nrequests_per_15s = 1000\n",
        timepost::demo::CONFIG,
        server.base_url()
    );
    let s = stack_with(
        dir.path(),
        &config,
        "employee,1001,E-100,\nproject,2001,C-ACME,\n",
    )
    .await;
    s.secrets
        .put("harvest_token", "harvest-pat")
        .await
        .expect("secret");
    server.put(harvest_fake::entry(1, 1001, 2001, 3001, d(3), "8.0"));
    server.put(harvest_fake::entry(2, 1001, 2001, 3001, d(4), "8.0"));
    // Both are delivered by a poll and posted.
    let poller = timepost::poll::Poller::for_source("harvest", &s.config.intake)
        .expect("poller")
        .expect("configured");
    poller.run(&s.poll_ports()).await.expect("poll");
    timepost::worker::drain_all(&s.engine, &s.store, std::time::Duration::from_secs(30))
        .await
        .expect("drain");
    // A third is entered in Harvest; its webhook (or poll) never arrives.
    server.put(harvest_fake::entry(3, 1001, 2001, 3001, d(5), "2.5"));

    let ports = s.poll_ports();
    let listing = list_trackers(&s.config.intake, &ports, &week())
        .await
        .expect("listing")
        .expect("harvest is configured");
    assert_eq!(
        (listing.from.as_str(), listing.entries.len()),
        ("harvest", 3)
    );
    let r = reconciler(&s)
        .run(&week(), Some(&listing), "test")
        .await
        .expect("run");
    assert_eq!(
        found(&r),
        BTreeSet::from([(ExceptionCode::NeverReceived, "3".to_string())]),
        "{:#?}",
        r.breaks
    );
    let b = the(&r, ExceptionCode::NeverReceived);
    assert!(
        b.said
            .contains("is in harvest but timepost never received it"),
        "{}",
        b.said
    );
    assert_eq!(r.summary.tracker, "received + harvest listing");
    // Nothing was enqueued by the listing, and no watermark moved.
    assert_eq!(
        s.store
            .get(&timepost::model::EntryKey::new(
                timepost::model::Source::Harvest,
                ACCOUNT,
                "3"
            ))
            .await
            .expect("get"),
        None
    );
    // Resolving it is a poll, not a re-post.
    assert!(resolve(
        &reconciler(&s),
        &s.engine,
        &s.store,
        &b.id,
        Action::Repost,
        "",
        &who()
    )
    .await
    .is_err());
}
