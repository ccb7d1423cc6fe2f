//! Contract: every request body the QuickBooks adapter can send validates
//! against Intuit's v3 XSD (`../shared/specs/qbo/`): creates, sparse
//! updates, deletes, several requests in one batch envelope, the journal
//! entry; its reads are queries the fake accepts. Also that the validator
//! (and so the fake) refuses what the XSD does not allow, so these checks
//! can fail.

use std::sync::Arc;

use serde_json::{json, Value};
use timepost::ledger::cloud::Connect;
use timepost::ledger::cloud::{QboEnvironment, QboLimits};
use timepost::ledger::qbo::{journal_batch, QboRequests, QboSettings};
use timepost::ledger::{LedgerOp, Party, PostingLine, RecordRef};
use timepost_tests::qbo_fake::{CompanyFacts, QboFakeLimits, QboServer};
use timepost_tests::qbo_xsd::qbo_schema_or_skip;
use timepost_tests::*;

fn requests(payroll: bool) -> QboRequests {
    QboRequests {
        settings: QboSettings {
            realm_id: "9341455000000000".into(),
            api_base: QboEnvironment::Sandbox.api_base().into(),
            environment: QboEnvironment::Sandbox,
            payroll,
            minor_version: 75,
            max_batch: 30,
        },
    }
}

/// A line with every field timepost can fill.
fn full_line(tier: &str, minutes: i64) -> PostingLine {
    let mut l = billable(
        line(
            Party::Employee { id: "55".into() },
            minutes,
            "Homepage sprint",
        ),
        "58",
        "150.25",
    );
    l.tier = tier.into();
    l.service_item = Some("3".into());
    l.class = Some("5000000000000000001".into());
    l.department = Some("1".into());
    l.payroll_item = Some("7".into());
    l
}

fn record(id: &str, tier: &str) -> RecordRef {
    RecordRef {
        id: id.into(),
        sync_token: "2".into(),
        tier: tier.into(),
    }
}

/// Every body the adapter plans for these requests, parsed.
fn bodies(r: &QboRequests, reqs: &[timepost::ledger::LedgerRequest]) -> Vec<Value> {
    let (batches, errors) = r.plan_batches(reqs, r.offline());
    assert!(errors.iter().all(Option::is_none), "{errors:?}");
    batches
        .iter()
        .map(|b| {
            serde_json::from_str(b.call.body.as_deref().unwrap_or("null"))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

#[test]
fn every_body_the_adapter_can_send_validates_against_the_xsd() {
    let Some(schema) = qbo_schema_or_skip("qbo_contract::every_body") else {
        return;
    };
    let vendor = line(
        Party::Vendor {
            id: "56".into(),
            form_1099: Some("NEC".into()),
        },
        90,
        "Audit",
    );
    let reqs = vec![
        // Create: employee, billable, every reference, two tiers.
        request(
            "c1",
            1,
            LedgerOp::Create {
                lines: vec![full_line("regular", 480), full_line("overtime", 45)],
            },
        ),
        // Create: contractor, not billable.
        request(
            "c2",
            1,
            LedgerOp::Create {
                lines: vec![vendor],
            },
        ),
        // Update: one record rewritten (sparse), one created, one deleted.
        request(
            "u1",
            2,
            LedgerOp::Update {
                records: vec![record("101", "regular"), record("102", "double_time")],
                lines: vec![full_line("regular", 300), full_line("overtime", 30)],
            },
        ),
        // Delete.
        request(
            "d1",
            3,
            LedgerOp::Delete {
                records: vec![record("103", "regular")],
            },
        ),
    ];
    let mut checked = 0;
    for payroll in [true, false] {
        let r = requests(payroll);
        // Each request alone, and all of them in one batch envelope.
        let mut all = Vec::new();
        for req in &reqs {
            all.extend(bodies(&r, std::slice::from_ref(req)));
        }
        all.extend(bodies(&r, &reqs));
        for body in &all {
            let problems = schema.validate_element("IntuitBatchRequest", body);
            assert!(problems.is_empty(), "{problems:#?}\n{body:#}");
            checked += 1;
        }
        let items: Vec<&Value> = all
            .last()
            .and_then(|b| b["BatchItemRequest"].as_array())
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let ops: Vec<&str> = items
            .iter()
            .filter_map(|i| i["operation"].as_str())
            .collect();
        assert_eq!(
            ops,
            ["create", "create", "create", "update", "create", "delete", "delete"]
        );
        let update = items[3]["TimeActivity"].clone();
        assert_eq!(
            update["sparse"],
            json!(true),
            "updates are sparse: {update}"
        );
        assert_eq!(
            (update["Id"].as_str(), update["SyncToken"].as_str()),
            (Some("101"), Some("2"))
        );
        let delete = items[6]["TimeActivity"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(delete.keys().collect::<Vec<_>>(), ["Id", "SyncToken"]);
        assert_eq!(
            items[0]["TimeActivity"].get("PayrollItemRef").is_some(),
            payroll,
            "pay types only with payroll"
        );
    }
    // The labour accrual's journal entry (`accrue`'s shape: one debit,
    // one credit).
    use timepost::ledger::journal_entry::{JournalEntry, JournalLine, LineDetail};
    use timepost::ledger::qbo::{decimal_number, Ref};
    let je_line = |posting_type: &'static str, account: &str| JournalLine {
        amount: decimal_number("1234.50".parse().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}")),
        description: "Labour accrual March".into(),
        detail_type: "JournalEntryLineDetail",
        journal_entry_line_detail: LineDetail {
            posting_type,
            account_ref: Ref {
                value: account.into(),
            },
        },
    };
    let je = JournalEntry {
        txn_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap_or_default(),
        private_note: "timepost accrual".into(),
        line: vec![je_line("Debit", "80"), je_line("Credit", "33")],
    };
    let body = serde_json::to_value(journal_batch(&je)).unwrap_or_default();
    let problems = schema.validate_element("IntuitBatchRequest", &body);
    assert!(problems.is_empty(), "{problems:#?}\n{body:#}");
    checked += 1;
    assert!(checked >= 11, "{checked}");
}

#[test]
fn the_validator_refuses_what_the_xsd_does_not_allow() {
    let Some(schema) = qbo_schema_or_skip("qbo_contract::the_validator_refuses") else {
        return;
    };
    let ta = |extra: Value| {
        let mut t = json!({"NameOf": "Employee", "EmployeeRef": {"value": "55"},
            "TxnDate": "2026-03-02", "Hours": 1, "Minutes": 0});
        if let (Some(o), Some(e)) = (t.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        json!({"BatchItemRequest": [{"bId": "0-0", "operation": "create", "TimeActivity": t}]})
    };
    assert!(schema
        .validate_element("IntuitBatchRequest", &ta(json!({})))
        .is_empty());
    let cases = [
        (
            ta(json!({"Currency": "EUR"})),
            "no element or attribute Currency",
        ),
        (ta(json!({"Hours": "1"})), "is not an xs:int"),
        (ta(json!({"HourlyRate": "150.25"})), "is not an xs:decimal"),
        (ta(json!({"TxnDate": "02/03/2026"})), "is not an xs:date"),
        (ta(json!({"BillableStatus": "Maybe"})), "BillableStatusEnum"),
        (ta(json!({"NameOf": "Contractor"})), "TimeActivityTypeEnum"),
        (ta(json!({"EmployeeRef": "55"})), "expected an object"),
        (ta(json!({"sparse": "yes"})), "is not an xs:boolean"),
        (json!({}), "required element BatchItemRequest"),
        (
            json!({"BatchItemRequest": {"bId": "1"}}),
            "must be an array",
        ),
        (
            json!({"BatchItemRequest": [{"bId": "1", "operation": "upsert"}]}),
            "OperationEnum",
        ),
    ];
    for (body, want) in cases {
        let problems = schema.validate_element("IntuitBatchRequest", &body);
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want}: {problems:?}\n{body}"
        );
    }
}

#[tokio::test]
async fn the_fake_refuses_a_body_the_xsd_does_not_allow_and_its_answers_validate() {
    let server = QboServer::start(
        "9130",
        sandbox_chart(),
        QboFakeLimits::default(),
        "rt-initial",
    )
    .await;
    if !server.validates() {
        return; // the XSD is missing outside CI (the start said so)
    }
    let Some(schema) = qbo_schema_or_skip("qbo_contract::the_fake") else {
        return;
    };
    server.lock().oauth.access.insert(
        "direct".into(),
        tokio::time::Instant::now() + std::time::Duration::from_secs(60),
    );
    let post = |body: Value| {
        reqwest::Client::new()
            .post(format!(
                "{}/v3/company/9130/batch?requestid=raw-{}",
                server.base(),
                body.to_string().len()
            ))
            .bearer_auth("direct")
            .json(&body)
            .send()
    };
    let resp = post(
        json!({"BatchItemRequest": [{"bId": "1", "operation": "create", "TimeActivity": {
        "NameOf": "Employee", "EmployeeRef": {"value": "E-100"}, "TxnDate": "2026-03-02",
        "Hours": 1, "Minutes": 0, "Colour": "blue"}}]}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["Fault"]["Error"][0]["code"], "2010", "{v}");
    assert!(
        v["Fault"]["Error"][0]["Detail"]
            .as_str()
            .unwrap_or("")
            .contains("Colour"),
        "{v}"
    );
    assert_eq!(server.counters().schema_refusals, 1);
    assert_eq!(server.counters().creates, 0);
    // What the fake answers for the company's preferences is a Preferences.
    let prefs = server.lock().preferences_body();
    let problems = schema.validate_element("Preferences", &prefs["Preferences"]);
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn every_read_the_adapter_makes_is_a_query_quickbooks_accepts() {
    let server = QboServer::start(
        "9130",
        sandbox_chart(),
        QboFakeLimits::default(),
        "rt-initial",
    )
    .await;
    server.set_company(CompanyFacts::default());
    let ledger = qbo_config(&server, 10, QboLimits::default())
        .connect(Arc::new(oauth_secrets("qbo", "rt-initial")))
        .unwrap_or_else(|e| panic!("{e}"));
    let refs = timepost::ledger::Ledger::apply(
        &ledger,
        &request(
            "q1",
            1,
            LedgerOp::Create {
                lines: vec![line(Party::Employee { id: "E-100".into() }, 60, "q")],
            },
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &ledger.requests;
    let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
    for call in [
        r.query_call(d, d + chrono::Duration::days(30), 1),
        r.ids_call(&[refs[0].id.clone(), "999".into()]),
        r.preferences_call(),
    ] {
        let reply = ledger
            .transport
            .send(&call)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reply.status,
            200,
            "{}: {}",
            call.url,
            String::from_utf8_lossy(&reply.body)
        );
    }
    let ids = ledger
        .transport
        .send(&r.ids_call(&[refs[0].id.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = serde_json::from_slice(&ids.body).unwrap_or_default();
    assert_eq!(
        v["QueryResponse"]["TimeActivity"][0]["Id"],
        json!(refs[0].id)
    );
}
