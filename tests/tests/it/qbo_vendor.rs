//! The QuickBooks adapter held to the vendor's published behaviour (issue
//! 11, QuickBooks points 1–7), against the fake rebuilt from the XSD.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use timepost::exceptions::{Exception, ExceptionCode};
use timepost::ledger::books::BookQuery;
use timepost::ledger::cloud::{Connect, VendorLimits};
use timepost::ledger::cloud::{QboEnvironment, QboLimits};
use timepost::ledger::qbo::QboLedger;
use timepost::ledger::{Ledger, LedgerError, LedgerOp, Party, PostingLine};
use timepost::state::Status;
use timepost_tests::fake_common::Inject;
use timepost_tests::qbo_fake::{AuthShape, CompanyFacts, QboFakeLimits, QboServer};
use timepost_tests::*;

async fn company(facts: CompanyFacts, fake: QboFakeLimits) -> QboServer {
    let server = QboServer::start("9130", sandbox_chart(), fake, "rt-initial").await;
    server.set_company(facts);
    server
}

fn connect(server: &QboServer, limits: QboLimits) -> QboLedger {
    qbo_config(server, 10, limits)
        .connect(Arc::new(oauth_secrets("qbo", "rt-initial")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn employee() -> Party {
    Party::Employee { id: "E-100".into() }
}

fn refused(e: LedgerError) -> Exception {
    match e {
        LedgerError::Rejected(x) => x,
        other => panic!("expected a refusal, got {other}"),
    }
}

fn create(id: &str, lines: Vec<PostingLine>) -> timepost::ledger::LedgerRequest {
    request(id, 1, LedgerOp::Create { lines })
}

fn qbo_toml(extra: &str) -> String {
    timepost::demo::CONFIG.replace("kind = \"sandbox\"", "kind = \"qbo\"")
        + "\n[ledger.qbo]\nrealm_id = \"9130\"\npayroll = false\n"
        + extra
}

// 1. Environment is explicit.

#[test]
fn the_environment_is_required_and_selects_the_host() {
    let e = timepost::config::Config::parse(&qbo_toml(""), "timepost.toml")
        .err()
        .unwrap_or_else(|| panic!("accepted without environment"))
        .to_string();
    assert!(e.contains("environment"), "{e}");
    for (env, host) in [
        ("sandbox", "https://sandbox-quickbooks.api.intuit.com"),
        ("production", "https://quickbooks.api.intuit.com"),
    ] {
        let cfg = timepost::config::Config::parse(
            &qbo_toml(&format!("environment = \"{env}\"\n")),
            "timepost.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let q = cfg.ledger.qbo.unwrap_or_else(|| panic!("no qbo"));
        assert_eq!(q.settings().api_base, host);
        assert!(cfg.rules.no_payroll, "payroll = false reaches the rules");
    }
    let wrong =
        timepost::config::Config::parse(&qbo_toml("environment = \"staging\"\n"), "timepost.toml");
    assert!(wrong.is_err());
}

#[tokio::test]
async fn a_refused_company_names_the_host_and_asks_whether_it_is_a_sandbox() {
    let server = company(CompanyFacts::default(), QboFakeLimits::default()).await;
    let mut cfg = qbo_config(&server, 10, QboLimits::default());
    // A production company's id used against the sandbox host.
    cfg.realm_id = "4620816365000000000".into();
    cfg.environment = QboEnvironment::Sandbox;
    let ledger = cfg
        .connect(Arc::new(oauth_secrets("qbo", "rt-initial")))
        .unwrap_or_else(|e| panic!("{e}"));
    let e = refused(
        ledger
            .apply(&create("a1", vec![line(employee(), 60, "x")]))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ExceptionCode::LedgerNotAuthorised);
    assert!(
        e.message.contains(&server.addr.to_string()),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("Is it a sandbox company?"),
        "{}",
        e.message
    );
    assert!(e.message.contains("environment"), "{}", e.message);
    let vendor = e.vendor_message.unwrap_or_default();
    assert!(
        vendor.contains("3100") && vendor.contains("AuthorizationFailed"),
        "{vendor}"
    );
}

// 2. Every fault shape is read.

#[tokio::test]
async fn authentication_failures_in_xml_and_lowercase_json_carry_quickbooks_words() {
    for (shape, words) in [
        (AuthShape::Xml, "General Authentication Error"),
        (AuthShape::LowercaseJson, "AuthenticationFailed"),
    ] {
        let server = company(CompanyFacts::default(), QboFakeLimits::default()).await;
        server.lock().auth_shape = shape;
        let ledger = connect(&server, QboLimits::default());
        // Revoked twice: the refresh and retry meet a 401 again.
        server.inject(Inject::ExpireTokens);
        server.inject(Inject::ExpireTokens);
        let e = refused(
            ledger
                .apply(&create("x1", vec![line(employee(), 60, "x")]))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, ExceptionCode::LedgerNotAuthorised, "{shape:?}");
        assert!(e.message.contains("401"), "{}", e.message);
        let vendor = e.vendor_message.unwrap_or_default();
        assert!(vendor.contains(words), "{shape:?}: {vendor}");
        assert_eq!(server.counters().unauthorised, 2);
    }
}

#[tokio::test]
async fn validation_faults_keep_quickbooks_message() {
    let server = company(CompanyFacts::default(), QboFakeLimits::default()).await;
    let ledger = connect(&server, QboLimits::default());
    let mut l = line(employee(), 60, "x");
    l.service_item = Some("SVC-NOPE".into());
    let e = refused(ledger.apply(&create("v1", vec![l])).await.unwrap_err());
    assert_eq!(e.code, ExceptionCode::LedgerUnknownReference);
    assert!(
        e.vendor_message
            .unwrap_or_default()
            .contains("Invalid Reference Id"),
        "the vendor's own words travel with the exception"
    );
}

// 3. Pay types only where payroll exists.

#[tokio::test]
async fn without_payroll_no_pay_type_is_sent() {
    let server = company(
        CompanyFacts {
            payroll: false,
            ..Default::default()
        },
        QboFakeLimits::default(),
    )
    .await;
    let ledger = connect(&server, QboLimits::default());
    let mut regular = line(employee(), 480, "build");
    regular.payroll_item = Some("PI-REG".into());
    let overtime = PostingLine {
        tier: "overtime".into(),
        minutes: 60,
        payroll_item: Some("PI-OT".into()),
        description: "overtime: build".into(),
        ..regular.clone()
    };
    let refs = ledger
        .apply(&create("p1", vec![regular, overtime]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refs.len(), 2, "overtime keeps a record of its own");
    for r in server.active("TimeActivity").values() {
        assert!(r.body.get("PayrollItemRef").is_none(), "{}", r.body);
    }
}

#[tokio::test]
async fn with_payroll_pay_types_are_sent_and_a_company_without_refuses_them() {
    let server = company(CompanyFacts::default(), QboFakeLimits::default()).await;
    let ledger = connect(&server, QboLimits::default());
    let mut l = line(employee(), 60, "x");
    l.payroll_item = Some("PI-REG".into());
    ledger
        .apply(&create("p2", vec![l.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = server.active("TimeActivity");
    assert_eq!(
        held.values()
            .next()
            .map(|r| r.body["PayrollItemRef"]["value"].clone()),
        Some(json!("PI-REG"))
    );
    // A company without payroll refuses a pay type (what `payroll = true`
    // on such a company would meet).
    server.set_company(CompanyFacts {
        payroll: false,
        ..Default::default()
    });
    let e = refused(ledger.apply(&create("p3", vec![l])).await.unwrap_err());
    assert!(
        e.vendor_message
            .unwrap_or_default()
            .contains("PayrollItemRef"),
        "the fake names the field"
    );
}

#[tokio::test]
async fn a_company_without_payroll_gets_the_sandbox_week_with_overtime_apart_and_nothing_held_for_pay_types(
) {
    let server = company(
        CompanyFacts {
            payroll: false,
            ..Default::default()
        },
        QboFakeLimits::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stack = sandbox_stack(dir.path(), Some(&server)).await;
    assert!(stack.config.rules.no_payroll);
    // No payroll_item rows at all: nothing may wait for one.
    let mappings = {
        use timepost::ports::MappingStore;
        stack
            .store
            .snapshot()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for e in entries_from_csv_lenient(&stack, &mappings, timepost::demo::ENTRIES) {
        timepost::intake::enqueue_entries(&stack.store, vec![e])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        timepost::worker::drain_all(&stack.engine, &stack.store, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    use timepost::ports::EntryStore;
    let states = stack.store.all().await.unwrap_or_else(|e| panic!("{e}"));
    for s in &states {
        assert!(
            !(s.status() == Status::Held
                && s.reason.as_ref().map(|r| r.code) == Some(ExceptionCode::UnmappedPayrollItem)),
            "{} held for a payroll item",
            s.entry.key
        );
    }
    let active = server.active("TimeActivity");
    assert!(!active.is_empty());
    assert!(active
        .values()
        .all(|r| r.body.get("PayrollItemRef").is_none()));
    let overtime: Vec<_> = active
        .values()
        .filter(|r| {
            r.body["Description"]
                .as_str()
                .is_some_and(|d| d.starts_with("overtime: ") || d.starts_with("double_time: "))
        })
        .collect();
    assert!(!overtime.is_empty(), "overtime lines name their tier");
}

// 4. Sparse updates; billed records are not rewritten.

#[tokio::test]
async fn updates_are_sparse_and_keep_what_was_set_in_quickbooks() {
    let server = company(CompanyFacts::default(), QboFakeLimits::default()).await;
    let ledger = connect(&server, QboLimits::default());
    let l = line(employee(), 60, "review");
    let refs = ledger
        .apply(&create("s1", vec![l.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id: u64 = refs[0].id.parse().unwrap_or_default();
    // A bookkeeper sets fields timepost does not own.
    server.edit_by_hand(id, "Taxable", json!(true));
    server.edit_by_hand(id, "CostRate", json!(42.5));
    let now = ledger
        .read_books(&BookQuery {
            from: l.txn_date,
            to: l.txn_date,
            parties: vec![],
            customers: vec![],
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
    let current = timepost::ledger::RecordRef {
        id: refs[0].id.clone(),
        sync_token: now[0].sync_token.clone(),
        tier: "regular".into(),
    };
    ledger
        .apply(&request(
            "s1",
            2,
            LedgerOp::Update {
                records: vec![current],
                lines: vec![PostingLine { minutes: 90, ..l }],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rec = &server.active("TimeActivity")[&id];
    assert_eq!(
        (rec.body["Hours"].as_i64(), rec.body["Minutes"].as_i64()),
        (Some(1), Some(30))
    );
    assert_eq!(rec.body["Taxable"], json!(true), "{}", rec.body);
    assert_eq!(rec.body["CostRate"], json!(42.5), "{}", rec.body);
}

#[tokio::test]
async fn a_billed_record_is_refused_before_anything_is_sent() {
    let server = company(CompanyFacts::default(), QboFakeLimits::default()).await;
    let ledger = connect(&server, QboLimits::default());
    let l = billable(line(employee(), 60, "billed"), "C-ACME", "100");
    let refs = ledger
        .apply(&create("b1", vec![l.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id: u64 = refs[0].id.parse().unwrap_or_default();
    server.bill_by_hand(id);
    let current = timepost::ledger::RecordRef {
        sync_token: server.active("TimeActivity")[&id].sync_token.to_string(),
        ..refs[0].clone()
    };
    let batches = server.counters().batch_calls;
    for op in [
        LedgerOp::Update {
            records: vec![current.clone()],
            lines: vec![PostingLine {
                minutes: 120,
                ..l.clone()
            }],
        },
        LedgerOp::Delete {
            records: vec![current.clone()],
        },
    ] {
        let e = refused(ledger.apply(&request("b1", 2, op)).await.unwrap_err());
        assert_eq!(e.code, ExceptionCode::LedgerRecordLocked);
        assert!(
            e.message.contains(&refs[0].id) && e.message.contains("invoice"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("redrive"),
            "tells finance what to do: {}",
            e.message
        );
    }
    assert_eq!(server.counters().batch_calls, batches, "nothing was sent");
    assert_eq!(
        server.active("TimeActivity")[&id].body["BillableStatus"],
        "HasBeenBilled"
    );
    // Other requests of the same call still go through.
    let results = ledger
        .apply_many(&[
            request(
                "b1",
                3,
                LedgerOp::Delete {
                    records: vec![current],
                },
            ),
            create("b2", vec![line(employee(), 30, "other")]),
        ])
        .await;
    assert!(results[0].is_err() && results[1].is_ok(), "{results:?}");
}

// 5. Currency.

#[tokio::test]
async fn a_rate_in_another_currency_is_refused_never_sent_as_home_currency() {
    let server = company(CompanyFacts::default(), QboFakeLimits::default()).await;
    let ledger = connect(&server, QboLimits::default());
    let mut l = billable(line(employee(), 60, "eu work"), "C-ACME", "140");
    l.hourly_rate = Some(timepost::model::Money::new(
        "140".parse().unwrap_or_default(),
        "EUR".parse().unwrap_or_else(|e: String| panic!("{e}")),
    ));
    let e = refused(ledger.apply(&create("c1", vec![l])).await.unwrap_err());
    assert_eq!(e.code, ExceptionCode::LedgerForeignCurrency);
    assert!(
        e.message.contains("EUR") && e.message.contains("USD"),
        "{}",
        e.message
    );
    assert_eq!(server.counters().batch_calls, 0);
    // In the home currency it is sent as is.
    let usd = billable(line(employee(), 60, "us work"), "C-ACME", "140");
    ledger
        .apply(&create("c2", vec![usd]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

// 6. Limits as published.

#[test]
fn no_per_second_limit_is_kept() {
    let limits = QboLimits::default().limits();
    assert_eq!(limits.rates.len(), 2, "{limits:?}");
    assert!(limits
        .rates
        .iter()
        .all(|r| r.window == Duration::from_secs(60)));
    let old = timepost::config::Config::parse(
        &qbo_toml("environment = \"sandbox\"\n[ledger.qbo.limits]\nrequests_per_second = 10\n"),
        "timepost.toml",
    );
    let e = old.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains("requests_per_second"),
        "the invented per-second limit is gone: {e}"
    );
}

#[tokio::test]
async fn every_batch_item_counts_toward_the_minute() {
    let minute = Duration::from_millis(1_500);
    let fake = QboFakeLimits {
        per_minute: 25,
        batches_per_minute: 40,
        minute,
        ..Default::default()
    };
    let reqs: Vec<_> = (0..3)
        .map(|i| {
            create(
                &format!("m{i}"),
                (0..10)
                    .map(|d| {
                        let mut l = line(employee(), 30, &format!("m{i}-{d}"));
                        l.txn_date += chrono::Duration::days(d);
                        l
                    })
                    .collect(),
            )
        })
        .collect();
    // Counting batches (3 calls) would stay far under 25 a minute; the fake
    // counts 30 items and refuses the third batch.
    let server = company(CompanyFacts::default(), fake.clone()).await;
    let careless = connect(
        &server,
        QboLimits {
            requests_per_minute: 10_000,
            minute_ms: minute.as_millis() as u64,
            ..Default::default()
        },
    );
    let results = careless.apply_many(&reqs).await;
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(LedgerError::RateLimited(_)))),
        "{results:?}"
    );
    assert!(server.counters().throttled >= 1);
    // Paced by items, the adapter waits instead and is never refused.
    let server = company(CompanyFacts::default(), fake).await;
    let paced = connect(
        &server,
        QboLimits {
            requests_per_minute: 25,
            minute_ms: minute.as_millis() as u64,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    for r in &reqs {
        paced.apply(r).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(server.counters().throttled, 0);
    assert!(
        t0.elapsed() >= minute / 2,
        "31 requests (30 items and a read) at 25 a minute take most of a minute: {:?}",
        t0.elapsed()
    );
}

// 7. Company preferences: class and location tracking.

#[tokio::test]
async fn class_and_location_follow_the_company_preferences() {
    let server = company(CompanyFacts::fresh_sandbox(), QboFakeLimits::default()).await;
    let ledger = connect(&server, QboLimits::default());
    let mut classed = line(employee(), 60, "classed");
    classed.class = Some("CL-PRODUCT".into());
    let e = refused(
        ledger
            .apply(&create("k1", vec![classed.clone()]))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ExceptionCode::LedgerCompanySetting);
    assert!(e.message.contains("Track classes"), "{}", e.message);
    let mut located = line(employee(), 60, "located");
    located.department = Some("D-EU".into());
    let e = refused(
        ledger
            .apply(&create("k2", vec![located.clone()]))
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("Track locations"), "{}", e.message);
    assert_eq!(server.counters().batch_calls, 0, "refused before sending");
    assert_eq!(server.counters().preferences, 1, "read once per connection");

    // Switched on in QuickBooks: a new connection reads them again and sends
    // the references.
    server.set_company(CompanyFacts {
        payroll: false,
        ..Default::default()
    });
    let ledger = connect(&server, QboLimits::default());
    ledger
        .apply(&create("k3", vec![classed]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ledger
        .apply(&create("k4", vec![located]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bodies: Vec<_> = server
        .active("TimeActivity")
        .values()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(bodies[0]["ClassRef"]["value"], "CL-PRODUCT");
    assert_eq!(bodies[1]["DepartmentRef"]["value"], "D-EU");
    assert_eq!(server.counters().preferences, 2);
}
