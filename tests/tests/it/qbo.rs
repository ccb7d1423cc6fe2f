//! The QBO adapter against the fake QBO company.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use timepost::exceptions::ExceptionCode;
use timepost::ledger::cloud::Connect;
use timepost::ledger::cloud::QboLimits;
use timepost::ledger::qbo::QboLedger;
use timepost::ledger::{Ledger, LedgerError, LedgerOp, Party};
use timepost_tests::fake_common::Inject;
use timepost_tests::qbo_fake::{QboFakeLimits, QboServer};
use timepost_tests::*;

async fn setup(max_batch: usize) -> (QboServer, Arc<MemSecrets>, QboLedger) {
    let server = QboServer::start(
        "9130",
        sandbox_chart(),
        QboFakeLimits::default(),
        "rt-initial",
    )
    .await;
    let secrets = Arc::new(oauth_secrets("qbo", "rt-initial"));
    let ledger = qbo_config(&server, max_batch, QboLimits::default())
        .connect(secrets.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    (server, secrets, ledger)
}

fn employee() -> Party {
    Party::Employee { id: "E-100".into() }
}

fn rejected_code(e: LedgerError) -> ExceptionCode {
    match e {
        LedgerError::Rejected(x) => x.code,
        other => panic!("expected a rejection, got {other}"),
    }
}

#[tokio::test]
async fn posts_time_activity_with_every_mapped_field() {
    let (server, _s, ledger) = setup(10).await;
    let mut regular = billable(line(employee(), 485, "Homepage sprint"), "C-ACME", "150.25");
    regular.service_item = Some("SVC-DEV".into());
    regular.class = Some("CL-PRODUCT".into());
    regular.payroll_item = Some("PI-REG".into());
    let overtime = timepost::ledger::PostingLine {
        tier: "overtime".into(),
        minutes: 30,
        payroll_item: Some("PI-OT".into()),
        ..regular.clone()
    };
    let contractor = line(
        Party::Vendor {
            id: "V-200".into(),
            form_1099: Some("NEC".into()),
        },
        60,
        "Audit",
    );
    let refs = ledger
        .apply(&request(
            "e1",
            1,
            LedgerOp::Create {
                lines: vec![regular, overtime],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refs.len(), 2);
    assert_eq!(
        (refs[0].tier.as_str(), refs[1].tier.as_str()),
        ("regular", "overtime")
    );
    ledger
        .apply(&request(
            "e2",
            1,
            LedgerOp::Create {
                lines: vec![contractor],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = server.active("TimeActivity");
    let bodies: Vec<_> = held.values().map(|r| r.body.clone()).collect();
    let reg = &bodies[0];
    assert_eq!(reg["NameOf"], "Employee");
    assert_eq!(reg["EmployeeRef"]["value"], "E-100");
    assert_eq!(reg["CustomerRef"]["value"], "C-ACME");
    assert_eq!(reg["ItemRef"]["value"], "SVC-DEV");
    assert_eq!(reg["ClassRef"]["value"], "CL-PRODUCT");
    assert_eq!(reg["PayrollItemRef"]["value"], "PI-REG");
    assert_eq!(reg["BillableStatus"], "Billable");
    assert_eq!(reg["HourlyRate"].to_string(), "150.25");
    assert_eq!(
        (reg["Hours"].as_i64(), reg["Minutes"].as_i64()),
        (Some(8), Some(5))
    );
    assert_eq!(bodies[1]["PayrollItemRef"]["value"], "PI-OT");
    assert_eq!(bodies[2]["NameOf"], "Vendor");
    assert_eq!(bodies[2]["VendorRef"]["value"], "V-200");
    assert_eq!(bodies[2]["BillableStatus"], "NotBillable");
    assert!(bodies[2].get("EmployeeRef").is_none());
    assert_eq!(server.counters().duplicates, 0);
}

#[tokio::test]
async fn updates_use_the_sync_token_and_deletes_remove_the_record() {
    let (server, _s, ledger) = setup(10).await;
    let l = line(employee(), 60, "Design review");
    let refs = ledger
        .apply(&request(
            "e1",
            1,
            LedgerOp::Create {
                lines: vec![l.clone()],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let longer = timepost::ledger::PostingLine {
        minutes: 90,
        ..l.clone()
    };
    let updated = ledger
        .apply(&request(
            "e1",
            2,
            LedgerOp::Update {
                records: refs.clone(),
                lines: vec![longer],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(updated[0].id, refs[0].id);
    assert_eq!(updated[0].sync_token, "1");
    // An update with the old token is a stale object.
    let stale = ledger
        .apply(&request(
            "e1",
            3,
            LedgerOp::Update {
                records: refs.clone(),
                lines: vec![l.clone()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(stale), ExceptionCode::LedgerStaleRecord);
    // Someone edits it in QBO: timepost's delete is refused, not forced.
    let id: u64 = updated[0].id.parse().unwrap_or_default();
    server.edit_by_hand(id, "Description", json!("edited in QBO"));
    let refused = ledger
        .apply(&request(
            "e1",
            4,
            LedgerOp::Delete {
                records: updated.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(refused), ExceptionCode::LedgerStaleRecord);
    let current = timepost::ledger::RecordRef {
        sync_token: "2".into(),
        ..updated[0].clone()
    };
    let gone = ledger
        .apply(&request(
            "e1",
            5,
            LedgerOp::Delete {
                records: vec![current],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(gone.is_empty());
    assert!(server.active("TimeActivity").is_empty());
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_returns_the_original_record() {
    let (server, _s, ledger) = setup(10).await;
    for (n, fault) in [
        Inject::DropAfter,
        Inject::StatusAfter(503),
        Inject::TimeoutAfter(Duration::from_secs(3)),
    ]
    .into_iter()
    .enumerate()
    {
        server.inject(fault.clone());
        let req = request(
            &format!("lost-{n}"),
            1,
            LedgerOp::Create {
                lines: vec![line(employee(), 45, &format!("lost {n}"))],
            },
        );
        let first = ledger.apply(&req).await;
        assert!(
            matches!(first, Err(LedgerError::Transient(_))),
            "{fault:?}: {first:?}"
        );
        let again = ledger
            .apply(&req)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(again.len(), 1);
    }
    let c = server.counters();
    assert_eq!(
        c.creates, 3,
        "one record per entry, whatever happened to the answers"
    );
    assert_eq!(c.replays, 3);
    assert_eq!(c.duplicates, 0);
    assert_eq!(server.active("TimeActivity").len(), 3);
}

#[tokio::test]
async fn a_200_with_a_fault_is_an_error_and_faults_become_exceptions() {
    let (server, _s, ledger) = setup(10).await;
    server.inject(Inject::ErrorIn200);
    let req = request(
        "f1",
        1,
        LedgerOp::Create {
            lines: vec![line(employee(), 30, "x")],
        },
    );
    assert_eq!(
        rejected_code(ledger.apply(&req).await.unwrap_err()),
        ExceptionCode::LedgerCompanyStatus
    );
    assert!(server.active("TimeActivity").is_empty());

    server.lock().chart.inactive.insert("C-GLOBEX".into());
    let inactive = billable(line(employee(), 30, "globex"), "C-GLOBEX", "100");
    let e = ledger
        .apply(&request(
            "f2",
            1,
            LedgerOp::Create {
                lines: vec![inactive],
            },
        ))
        .await
        .unwrap_err();
    let LedgerError::Rejected(exc) = e else {
        panic!("not rejected")
    };
    assert_eq!(exc.code, ExceptionCode::LedgerInactiveReference);
    assert!(exc.message.ends_with('.'));
    assert!(
        exc.vendor_message.as_deref().unwrap_or("").contains("610"),
        "{exc:?}"
    );

    let mut unknown = line(employee(), 30, "unknown item");
    unknown.service_item = Some("SVC-NOPE".into());
    let e = ledger
        .apply(&request(
            "f3",
            1,
            LedgerOp::Create {
                lines: vec![unknown],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(e), ExceptionCode::LedgerUnknownReference);

    // Billable time without a rate never leaves timepost.
    let mut no_rate = billable(line(employee(), 30, "no rate"), "C-ACME", "1");
    no_rate.hourly_rate = None;
    let calls = server.counters().batch_calls;
    let e = ledger
        .apply(&request(
            "f4",
            1,
            LedgerOp::Create {
                lines: vec![no_rate],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rejected_code(e), ExceptionCode::LedgerValidation);
    assert_eq!(server.counters().batch_calls, calls);
}

#[tokio::test]
async fn the_fake_requires_customer_and_rate_when_billable() {
    let (server, _s, _ledger) = setup(10).await;
    let token = {
        let mut s = server.lock();
        s.oauth.access.insert(
            "direct".into(),
            tokio::time::Instant::now() + Duration::from_secs(60),
        );
        "direct"
    };
    let body = json!({"BatchItemRequest": [{"bId": "1", "operation": "create", "TimeActivity": {
        "NameOf": "Employee", "EmployeeRef": {"value": "E-100"}, "TxnDate": "2026-03-02",
        "Hours": 1, "Minutes": 0, "BillableStatus": "Billable", "CustomerRef": {"value": "C-ACME"}}}]});
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v3/company/9130/batch?requestid=raw-1",
            server.base()
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = resp.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v["BatchItemResponse"][0]["Fault"]["Error"][0]["code"], "2020",
        "{v}"
    );
}

#[tokio::test]
async fn rate_limits_and_authentication() {
    let (server, secrets, ledger) = setup(10).await;
    server.inject(Inject::Throttle(Some(2.0)));
    let req = request(
        "r1",
        1,
        LedgerOp::Create {
            lines: vec![line(employee(), 30, "r1")],
        },
    );
    match ledger.apply(&req).await {
        Err(LedgerError::RateLimited(Some(d))) => assert_eq!(d, Duration::from_secs(2)),
        other => panic!("expected RateLimited(2s), got {other:?}"),
    }
    assert_eq!(server.counters().throttled, 1);
    // A 401 (token revoked early) → one refresh, one retry, success.
    server.inject(Inject::ExpireTokens);
    let req = request(
        "r2",
        1,
        LedgerOp::Create {
            lines: vec![line(employee(), 30, "r2")],
        },
    );
    // Wait out the pause the 429 put on this company.
    ledger.apply(&req).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.lock().oauth.refresh_calls, 2);
    assert_eq!(server.counters().unauthorised, 1);
    // The rotated refresh token is stored, and the previous one dropped
    // once a call with the new access token succeeded.
    let state: serde_json::Value =
        serde_json::from_str(&secrets.get_now("qbo_oauth_state").unwrap_or_default())
            .unwrap_or_default();
    let current = state["current"].as_str().unwrap_or_default().to_string();
    assert!(
        current.starts_with("rt-") && current != "rt-initial",
        "{state}"
    );
    assert!(state.get("previous").is_none(), "{state}");
}

#[tokio::test]
async fn a_lost_refresh_answer_does_not_lock_the_integration_out() {
    let (server, secrets, ledger) = setup(10).await;
    server.lock().oauth.drop_next_refresh = true;
    let req = request(
        "o1",
        1,
        LedgerOp::Create {
            lines: vec![line(employee(), 30, "o1")],
        },
    );
    assert!(matches!(
        ledger.apply(&req).await,
        Err(LedgerError::Transient(_))
    ));
    assert!(
        secrets.get_now("qbo_oauth_state").is_none(),
        "nothing stored from a lost answer"
    );
    ledger.apply(&req).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(secrets.get_now("qbo_oauth_state").is_some());
    assert_eq!(server.active("TimeActivity").len(), 1);
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let (server, _s, ledger) = setup(10).await;
    let ledger = Arc::new(ledger);
    let mut tasks = Vec::new();
    for n in 0..8 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            l.apply(&request(
                &format!("c{n}"),
                1,
                LedgerOp::Create {
                    lines: vec![line(employee(), 30, &format!("c{n}"))],
                },
            ))
            .await
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(server.lock().oauth.refresh_calls, 1);
    assert_eq!(server.active("TimeActivity").len(), 8);
}

#[tokio::test]
async fn apply_many_fills_batches_and_one_bad_request_fails_alone() {
    let (server, _s, ledger) = setup(10).await;
    server.lock().chart.inactive.insert("SVC-ADMIN".into());
    let mut reqs = Vec::new();
    for n in 0..25 {
        let mut l = line(employee(), 30, &format!("bulk {n}"));
        if n == 7 {
            l.service_item = Some("SVC-ADMIN".into());
        }
        reqs.push(request(
            &format!("b{n}"),
            1,
            LedgerOp::Create { lines: vec![l] },
        ));
    }
    let results = ledger.apply_many(&reqs).await;
    assert_eq!(results.len(), 25);
    for (n, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), n != 7, "request {n}: {r:?}");
    }
    let c = server.counters();
    assert_eq!(c.batch_calls, 3, "25 requests at 10 per call");
    assert_eq!(server.active("TimeActivity").len(), 24);
    // A failed two-line create leaves nothing behind.
    let good = line(employee(), 30, "half good");
    let bad = timepost::ledger::PostingLine {
        tier: "overtime".into(),
        payroll_item: Some("PI-NOPE".into()),
        ..good.clone()
    };
    let e = ledger
        .apply(&request(
            "half",
            1,
            LedgerOp::Create {
                lines: vec![good, bad],
            },
        ))
        .await;
    assert!(e.is_err());
    assert_eq!(server.active("TimeActivity").len(), 24);
}

#[tokio::test]
async fn labour_accrual_posts_a_balanced_journal_entry() {
    use timepost::ledger::journal_entry::{imbalance, JournalEntry, JournalLine, LineDetail};
    use timepost::ledger::qbo::{decimal_number, Ref};
    let (server, _s, ledger) = setup(10).await;
    let line_of = |amount: &str, kind: &'static str, account: &str| JournalLine {
        amount: decimal_number(amount.parse().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}")),
        description: "accrual".into(),
        detail_type: "JournalEntryLineDetail",
        journal_entry_line_detail: LineDetail {
            posting_type: kind,
            account_ref: Ref {
                value: account.into(),
            },
        },
    };
    let je = JournalEntry {
        txn_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap_or_default(),
        private_note: "timepost labour-cost accrual".into(),
        line: vec![
            line_of("1234.56", "Debit", "5000-labour"),
            line_of("1234.56", "Credit", "2100-payroll-liab"),
        ],
    };
    assert!(imbalance(&je).is_zero());
    let rec = ledger
        .post_journal_entry(&je, "tp-accrual-2026-03")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.active("JournalEntry").len(), 1);
    // Replayed by requestid: still one.
    let again = ledger
        .post_journal_entry(&je, "tp-accrual-2026-03")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rec.id, again.id);
    assert_eq!(server.active("JournalEntry").len(), 1);
}

/// What the alert pass reads about the refresh token: the last successful
/// refresh and the expiry QuickBooks announced (`x_refresh_token_expires_in`,
/// 100 days); a refusal is recorded and raises the "refused" alert; a
/// refresh token an admin stores anew replaces the refused one.
#[tokio::test]
async fn the_token_state_tells_the_alerts_about_expiry_and_refusal() {
    use timepost::alerts::{evaluate, AlertsConfig, Snapshot, TokenInfo};
    use timepost::ledger::oauth::TokenState;
    use timepost::ports::Secrets;
    let (server, secrets, ledger) = setup(10).await;
    let state = |s: &MemSecrets| -> TokenState {
        serde_json::from_str(&s.get_now("qbo_oauth_state").unwrap_or_default())
            .unwrap_or_else(|e| panic!("token state: {e}"))
    };
    let info = |st: &TokenState| TokenInfo {
        ledger: "qbo".into(),
        refreshed_at: st.refreshed_at,
        expires_at: st.refresh_expires_at,
        refused: st.refused.as_ref().map(|r| (r.at, r.code.clone())),
    };
    let alerts = |st: &TokenState, now| {
        let snap = Snapshot {
            tokens: vec![info(st)],
            ..Snapshot::default()
        };
        evaluate(&snap, &AlertsConfig::default(), now)
            .into_iter()
            .map(|c| c.key)
            .collect::<Vec<_>>()
    };
    let post = |id: &str| {
        request(
            id,
            1,
            LedgerOp::Create {
                lines: vec![line(employee(), 30, id)],
            },
        )
    };
    ledger
        .apply(&post("t1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let st = state(&secrets);
    let refreshed = st
        .refreshed_at
        .unwrap_or_else(|| panic!("no refresh time: {st:?}"));
    let expires = st
        .refresh_expires_at
        .unwrap_or_else(|| panic!("no expiry: {st:?}"));
    assert_eq!((expires - refreshed).num_days(), 100, "{st:?}");
    assert!(st.refused.is_none());
    let now = chrono::Utc::now();
    assert!(alerts(&st, now).is_empty());
    // 90 days on without a refresh: within the 14-day warning.
    assert_eq!(
        alerts(&st, now + chrono::Duration::days(90)),
        vec!["token_expiry:qbo"]
    );

    // The company disconnects the app: every refresh token is refused.
    server.lock().oauth.valid_refresh.clear();
    server.inject(Inject::ExpireTokens);
    let refused = ledger.apply(&post("t2")).await;
    assert_eq!(
        rejected_code(refused.expect_err("refused")),
        ExceptionCode::LedgerNotAuthorised
    );
    let st = state(&secrets);
    let r = st
        .refused
        .clone()
        .unwrap_or_else(|| panic!("refusal kept: {st:?}"));
    assert_eq!(r.code, "invalid_grant");
    assert_eq!(alerts(&st, chrono::Utc::now()), vec!["token_refused:qbo"]);

    // The admin reconnects and stores the new refresh token where the
    // first one went: it is used, and the refusal is gone.
    server
        .lock()
        .oauth
        .valid_refresh
        .insert("rt-reconnected".into());
    secrets
        .put("qbo_refresh_token", "rt-reconnected")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ledger
        .apply(&post("t3"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let st = state(&secrets);
    assert!(st.refused.is_none(), "{st:?}");
    assert!(alerts(&st, chrono::Utc::now()).is_empty());
}
