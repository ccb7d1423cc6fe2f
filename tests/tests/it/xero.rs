//! The Xero adapter against the fake Xero organisation, and its request
//! types against the vendor's OpenAPI document.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use timepost::exceptions::ExceptionCode;
use timepost::ledger::cloud::Connect;
use timepost::ledger::cloud::XeroLimits;
use timepost::ledger::xero::{XeroLedger, XeroRequests, XeroSettings};
use timepost::ledger::{Ledger, LedgerError, LedgerOp, Party, PostingLine, RecordRef};
use timepost_tests::fake_common::Inject;
use timepost_tests::openapi::{xero_spec_or_skip, Spec};
use timepost_tests::xero_fake::{XeroFakeLimits, XeroServer};
use timepost_tests::*;

const PROJECT: &str = "b021e7cb-1903-4292-b48b-5b27b4271e3e";
const PROJECT_2: &str = "3cd35eca-704f-4bca-b258-236028ae8ed1";
const TASK: &str = "7be77337-feec-4458-bb1b-dbaa5a4aafce";
const TASK_OT: &str = "c6539534-f1d2-43a6-80df-3bd1f8aca24d";
const TASK_2: &str = "00000000-0000-0000-0000-000000000002";
const USER: &str = "740add2a-a703-4b8a-a670-1093919c2040";

fn xline(minutes: i64, description: &str) -> PostingLine {
    let mut l = line(Party::Employee { id: USER.into() }, minutes, description);
    l.customer = Some(PROJECT.into());
    l.service_item = Some(TASK.into());
    l
}

async fn setup(spec: Spec, fake: XeroFakeLimits, limits: XeroLimits) -> (XeroServer, XeroLedger) {
    let projects = BTreeMap::from([
        (
            PROJECT.to_string(),
            BTreeSet::from([TASK.to_string(), TASK_OT.to_string()]),
        ),
        (
            PROJECT_2.to_string(),
            BTreeSet::from([TASK_2.to_string(), TASK.to_string()]),
        ),
    ]);
    let server = XeroServer::start(
        spec,
        "tenant-1",
        projects,
        BTreeSet::from([USER.to_string()]),
        fake,
        "rt-x",
    )
    .await;
    let secrets = Arc::new(oauth_secrets("xero", "rt-x"));
    let ledger = xero_config(&server, limits)
        .connect(secrets)
        .unwrap_or_else(|e| panic!("{e}"));
    (server, ledger)
}

fn fast() -> XeroLimits {
    XeroLimits {
        calls_per_minute: 600,
        calls_per_day: 5000,
        concurrent: 5,
        minute_ms: 60_000,
    }
}

fn fast_fake() -> XeroFakeLimits {
    XeroFakeLimits {
        per_minute: 600,
        ..Default::default()
    }
}

#[test]
fn adapter_request_types_match_the_spec() {
    let Some(spec) = xero_spec_or_skip("adapter_request_types_match_the_spec") else {
        return;
    };
    let r = XeroRequests {
        settings: XeroSettings {
            tenant_id: "tenant-1".into(),
            api_base: "https://api.xero.com/projects.xro/2.0".into(),
            accounting_base: "https://api.xero.com/api.xro/2.0".into(),
            time_zone: None,
        },
    };
    let ot = PostingLine {
        tier: "overtime".into(),
        payroll_item: Some(TASK_OT.into()),
        minutes: 59_940,
        ..xline(1, "")
    };
    let create = request(
        "s1",
        1,
        LedgerOp::Create {
            lines: vec![xline(95, "Design"), ot],
        },
    );
    let existing = RecordRef {
        id: format!("{PROJECT}/{TASK}"),
        sync_token: "x".into(),
        tier: "regular".into(),
    };
    let update = request(
        "s1",
        2,
        LedgerOp::Update {
            records: vec![existing.clone()],
            lines: vec![xline(60, "Design")],
        },
    );
    let delete = request(
        "s1",
        3,
        LedgerOp::Delete {
            records: vec![existing],
        },
    );
    let mut seen = 0;
    for req in [create, update, delete] {
        for c in r.plan(&req).unwrap_or_else(|e| panic!("{e}")) {
            let method = c.call.method.to_ascii_lowercase();
            let path = if method == "post" {
                "/Projects/{projectId}/Time"
            } else {
                "/Projects/{projectId}/Time/{timeEntryId}"
            };
            for h in spec.required_headers(path, &method) {
                assert!(
                    c.call
                        .headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case(&h)),
                    "{method} {path} lacks required header {h}"
                );
            }
            let key = c
                .call
                .headers
                .iter()
                .find(|(k, _)| k == "Idempotency-Key")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            assert!(
                !key.is_empty() && key.len() <= 128,
                "Idempotency-Key `{key}`"
            );
            if method != "delete" {
                assert!(
                    spec.header_param(path, &method, "Idempotency-Key"),
                    "the spec takes Idempotency-Key on {method}"
                );
                let schema = spec
                    .request_schema(path, &method)
                    .unwrap_or_else(|| panic!("no request body schema for {method} {path}"));
                let body: serde_json::Value =
                    serde_json::from_str(c.call.body.as_deref().unwrap_or("null"))
                        .unwrap_or_default();
                let problems = spec.validate(&schema, &body, true);
                assert!(problems.is_empty(), "{method} {path}: {problems:?}\n{body}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
    // The validator does catch what the contract forbids.
    let bad = serde_json::json!({"userId": "not-a-uuid", "taskId": TASK, "dateUtc": "2026-03-02", "extra": 1});
    let problems = spec.validate("TimeEntryCreateOrUpdate", &bad, true);
    assert!(problems.len() >= 4, "{problems:?}");
}

#[tokio::test]
async fn posts_updates_and_deletes_time_entries_once() {
    let Some(spec) = xero_spec_or_skip("posts_updates_and_deletes_time_entries_once") else {
        return;
    };
    let (server, ledger) = setup(spec, fast_fake(), fast()).await;
    let ot = PostingLine {
        tier: "overtime".into(),
        payroll_item: Some(TASK_OT.into()),
        ..xline(30, "Late deploy")
    };
    let create = request(
        "x1",
        1,
        LedgerOp::Create {
            lines: vec![xline(95, "Deploy"), ot],
        },
    );
    server.inject(Inject::DropAfter);
    assert!(matches!(
        ledger.apply(&create).await,
        Err(LedgerError::Transient(_))
    ));
    let refs = ledger
        .apply(&create)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refs.len(), 2);
    let entries = server.entries();
    assert_eq!(
        entries.len(),
        2,
        "the retried create was replayed, not repeated"
    );
    let ot_entry = entries
        .values()
        .find(|e| e.body["taskId"] == TASK_OT)
        .unwrap_or_else(|| panic!("no overtime entry"));
    assert_eq!(ot_entry.body["duration"], 30);
    assert_eq!(ot_entry.body["dateUtc"], "2026-03-02T00:00:00Z");

    // Update in place, and move the overtime line to another project.
    let moved = PostingLine {
        customer: Some(PROJECT_2.into()),
        payroll_item: Some(TASK_2.into()),
        ..xline(45, "Late deploy")
    };
    let moved = PostingLine {
        tier: "overtime".into(),
        ..moved
    };
    let update = request(
        "x1",
        2,
        LedgerOp::Update {
            records: refs.clone(),
            lines: vec![xline(100, "Deploy"), moved],
        },
    );
    let refs2 = ledger
        .apply(&update)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refs2[0].id, refs[0].id);
    assert!(refs2[1].id.starts_with(PROJECT_2));
    let live: Vec<_> = server
        .entries()
        .into_values()
        .filter(|e| e.status == "ACTIVE")
        .collect();
    assert_eq!(live.len(), 2);

    // An invoiced entry refuses changes: an exception, not a retry.
    let id = timepost::ledger::xero::entry_of(&refs2[0].id).to_string();
    server.set_status(&id, "INVOICED");
    let e = ledger
        .apply(&request(
            "x1",
            3,
            LedgerOp::Delete {
                records: refs2.clone(),
            },
        ))
        .await
        .unwrap_err();
    match e {
        LedgerError::Rejected(x) => assert_eq!(x.code, ExceptionCode::LedgerRecordLocked),
        other => panic!("{other}"),
    }
    server.set_status(&id, "ACTIVE");
    ledger
        .apply(&request("x1", 4, LedgerOp::Delete { records: refs2 }))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(server.entries().values().all(|e| e.status == "DELETED"));
    let c = server.counters();
    assert_eq!((c.duplicates, c.invalid_bodies), (0, 0));
}

#[tokio::test]
async fn errors_limits_and_remaining_headers() {
    let Some(spec) = xero_spec_or_skip("errors_limits_and_remaining_headers") else {
        return;
    };
    // The fake allows 5 calls per (compressed) minute of 1 s; the adapter is
    // told 100 — the X-MinLimit-Remaining header must hold it back.
    let fake = XeroFakeLimits {
        per_minute: 5,
        per_day: 5000,
        concurrent: 5,
        minute: Duration::from_secs(1),
    };
    let limits = XeroLimits {
        calls_per_minute: 100,
        calls_per_day: 5000,
        concurrent: 5,
        minute_ms: 1000,
    };
    let (server, ledger) = setup(spec, fake, limits).await;
    for n in 0..12 {
        ledger
            .apply(&request(
                &format!("h{n}"),
                1,
                LedgerOp::Create {
                    lines: vec![xline(15, &format!("h{n}"))],
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("call {n}: {e}"));
    }
    assert_eq!(
        server.counters().throttled,
        0,
        "remaining-allowance headers respected"
    );

    server.inject(Inject::Throttle(Some(3.0)));
    match ledger
        .apply(&request(
            "t",
            1,
            LedgerOp::Create {
                lines: vec![xline(15, "t")],
            },
        ))
        .await
    {
        Err(LedgerError::RateLimited(Some(d))) => assert_eq!(d, Duration::from_secs(3)),
        other => panic!("{other:?}"),
    }
    server.inject(Inject::ErrorIn200);
    let e = ledger
        .apply(&request(
            "e",
            1,
            LedgerOp::Create {
                lines: vec![xline(15, "e")],
            },
        ))
        .await;
    assert!(matches!(e, Err(LedgerError::Rejected(_))), "{e:?}");
    // Xero takes whole minutes from 1 to 59940: refused before sending.
    let e = ledger
        .apply(&request(
            "big",
            1,
            LedgerOp::Create {
                lines: vec![xline(60_000, "big")],
            },
        ))
        .await;
    assert!(matches!(e, Err(LedgerError::Rejected(_))));
    assert_eq!(server.counters().invalid_bodies, 0);
}

#[tokio::test]
async fn the_fake_validates_bodies_against_the_spec() {
    let Some(spec) = xero_spec_or_skip("the_fake_validates_bodies_against_the_spec") else {
        return;
    };
    let (server, _ledger) = setup(spec, fast_fake(), fast()).await;
    server.lock().oauth.access.insert(
        "direct".into(),
        tokio::time::Instant::now() + Duration::from_secs(60),
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/Projects/{PROJECT}/Time", server.api_base()))
        .bearer_auth("direct")
        .header("xero-tenant-id", "tenant-1")
        .json(
            &serde_json::json!({"userId": USER, "taskId": TASK, "dateUtc": "2026-03-02T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().contains_key("x-minlimit-remaining"));
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert!(v["modelState"].to_string().contains("duration"), "{v}");
}

// ---- Issue 11, point 8: `dateUtc` reads as the work date in the
// organisation's time zone ----

async fn create_one(ledger: &XeroLedger, id: &str) -> Vec<RecordRef> {
    ledger
        .apply(&request(
            id,
            1,
            LedgerOp::Create {
                lines: vec![xline(60, "Design")],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn date_utc_is_the_work_date_start_in_the_organisation_zone() {
    let Some(spec) = xero_spec_or_skip("date_utc_is_the_work_date_start_in_the_organisation_zone")
    else {
        return;
    };
    for (zone, expected) in [
        // West of UTC: midnight UTC would show 1 March in New York.
        ("EASTERNSTANDARDTIME", "2026-03-02T05:00:00Z"),
        // East of UTC: the local start is the previous UTC day.
        ("NEWZEALANDSTANDARDTIME", "2026-03-01T11:00:00Z"),
        ("UTC", "2026-03-02T00:00:00Z"),
    ] {
        let (server, ledger) = setup(spec.clone(), fast_fake(), fast()).await;
        server.lock().org_timezone = zone.into();
        let refs = create_one(&ledger, "tz1").await;
        create_one(&ledger, "tz2").await;
        let entries = server.entries();
        assert!(
            entries.values().all(|e| e.body["dateUtc"] == expected),
            "{zone}: {:?}",
            entries
                .values()
                .map(|e| &e.body["dateUtc"])
                .collect::<Vec<_>>()
        );
        // Read once per connection, then cached.
        assert_eq!(server.counters().organisation_reads, 1, "{zone}");
        // Read back as the work date in the same zone.
        let q = timepost::ledger::books::BookQuery {
            from: chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default(),
            to: chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default(),
            parties: Vec::new(),
            customers: vec![PROJECT.to_string()],
        };
        let books = ledger
            .read_books(&q)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_default();
        assert_eq!(books.len(), 2, "{zone}");
        assert!(books.iter().all(|b| b.txn_date.to_string() == "2026-03-02"));
        assert!(books.iter().any(|b| b.id == refs[0].id));
        assert!(
            server.lock().problems.is_empty(),
            "{:?}",
            server.lock().problems
        );
    }
}

#[tokio::test]
async fn configured_time_zone_is_used_and_an_unknown_one_is_refused() {
    let Some(spec) =
        xero_spec_or_skip("configured_time_zone_is_used_and_an_unknown_one_is_refused")
    else {
        return;
    };
    let (server, _) = setup(spec.clone(), fast_fake(), fast()).await;
    let mut cfg = xero_config(&server, fast());
    cfg.time_zone = Some(chrono_tz::Pacific::Auckland);
    let ledger = cfg
        .connect(Arc::new(oauth_secrets("xero", "rt-x")))
        .unwrap_or_else(|e| panic!("{e}"));
    create_one(&ledger, "cfg").await;
    assert_eq!(server.counters().organisation_reads, 0);
    assert!(server
        .entries()
        .values()
        .all(|e| e.body["dateUtc"] == "2026-03-01T11:00:00Z"));
    // The dry-run planner dates as the real run does when the zone is set.
    let planner = timepost::ledger::cloud::xero_planner(&cfg);
    let calls = planner(&request(
        "cfg",
        1,
        LedgerOp::Create {
            lines: vec![xline(60, "Design")],
        },
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value =
        serde_json::from_str(calls[0].body.as_deref().unwrap_or_default()).unwrap_or_default();
    assert_eq!(body["dateUtc"], "2026-03-01T11:00:00Z");

    // A zone timepost cannot translate: refused, naming the setting.
    let (server, ledger) = setup(spec, fast_fake(), fast()).await;
    server.lock().org_timezone = "MARSSTANDARDTIME".into();
    let e = ledger
        .apply(&request(
            "mars",
            1,
            LedgerOp::Create {
                lines: vec![xline(60, "Design")],
            },
        ))
        .await
        .unwrap_err();
    match e {
        LedgerError::Rejected(x) => {
            assert_eq!(x.code, ExceptionCode::LedgerValidation);
            assert!(
                x.message.contains("[ledger.xero] time_zone"),
                "{}",
                x.message
            );
        }
        other => panic!("{other}"),
    }
    assert!(server.entries().is_empty());
}

/// Issue 11, point 10: `X-AppMinLimit-Remaining: 0` (the app's minute,
/// spent by other tenants) holds the adapter back like the tenant's own.
#[tokio::test]
async fn a_spent_app_minute_holds_the_adapter_back() {
    let Some(spec) = xero_spec_or_skip("a_spent_app_minute_holds_the_adapter_back") else {
        return;
    };
    let limits = XeroLimits {
        calls_per_minute: 600,
        calls_per_day: 5000,
        concurrent: 5,
        minute_ms: 700,
    };
    let (server, ledger) = setup(spec, fast_fake(), limits).await;
    create_one(&ledger, "app0").await;
    server.lock().app_minute_remaining = 0;
    create_one(&ledger, "app1").await;
    server.lock().app_minute_remaining = 9_999;
    let t0 = std::time::Instant::now();
    create_one(&ledger, "app2").await;
    assert!(
        t0.elapsed() >= Duration::from_millis(650),
        "waited {:?}",
        t0.elapsed()
    );
    assert_eq!(server.counters().throttled, 0, "held back before any 429");
}

// ---- Issue 11, point 9: chargeability is the task's ----

#[tokio::test]
async fn non_billable_time_never_lands_on_a_chargeable_task() {
    let Some(spec) = xero_spec_or_skip("non_billable_time_never_lands_on_a_chargeable_task") else {
        return;
    };
    let (server, ledger) = setup(spec, fast_fake(), fast()).await;
    // TASK is chargeable by the hour; TASK_OT is not chargeable.
    server
        .lock()
        .charge_types
        .insert(TASK.into(), "TIME".into());
    let post = |id: &str, l: PostingLine| request(id, 1, LedgerOp::Create { lines: vec![l] });
    // Non-billable time mapped to the chargeable task: refused, nothing sent.
    let e = ledger
        .apply(&post("nb1", xline(30, "Internal")))
        .await
        .unwrap_err();
    match e {
        LedgerError::Rejected(x) => {
            assert_eq!(x.code, ExceptionCode::LedgerValidation);
            assert!(
                x.message.contains("non_billable=") && x.message.contains("service_item"),
                "{}",
                x.message
            );
        }
        other => panic!("{other}"),
    }
    assert!(server.entries().is_empty());
    // Mapped to the non-chargeable task (what `non_billable=` gives): posted.
    let nb = PostingLine {
        service_item: Some(TASK_OT.into()),
        ..xline(30, "Internal")
    };
    ledger
        .apply(&post("nb2", nb))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Billable time on the chargeable task: posted.
    let b = PostingLine {
        billable: true,
        ..xline(45, "Client work")
    };
    ledger
        .apply(&post("b1", b.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Billable time on the non-chargeable task: refused (never invoiced).
    let e = ledger
        .apply(&post(
            "b2",
            PostingLine {
                service_item: Some(TASK_OT.into()),
                ..b
            },
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LedgerError::Rejected(x) if x.message.contains("NON_CHARGEABLE")),
        "{e}"
    );
    let sent: Vec<_> = server
        .entries()
        .into_values()
        .map(|e| e.body["taskId"].clone())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    // The project's tasks were read once for all four.
    assert_eq!(server.counters().task_lists, 1);
    assert!(
        server.lock().problems.is_empty(),
        "{:?}",
        server.lock().problems
    );
}

/// Issue 11, point 11: dry-run renders a Xero update and delete in their
/// real shape (`PUT` / `DELETE …/Projects/{projectId}/Time/{timeEntryId}`),
/// also for a record the same dry run made up.
#[tokio::test]
async fn dry_run_shows_updates_and_deletes_as_sent() {
    let Some(spec) = xero_spec_or_skip("dry_run_shows_updates_and_deletes_as_sent") else {
        return;
    };
    let (server, _) = setup(spec.clone(), fast_fake(), fast()).await;
    let mut cfg = xero_config(&server, fast());
    cfg.time_zone = Some(chrono_tz::America::New_York);
    let dry = timepost::ledger::recording::RecordingLedger::new(
        "xero",
        Some(timepost::ledger::cloud::xero_planner(&cfg)),
    );
    let created = dry
        .apply(&request(
            "d1",
            1,
            LedgerOp::Create {
                lines: vec![xline(60, "Design")],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        created[0].id.starts_with(&format!("{PROJECT}/")),
        "{:?}",
        created
    );
    let updated = dry
        .apply(&request(
            "d1",
            2,
            LedgerOp::Update {
                records: created.clone(),
                lines: vec![xline(90, "Design")],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(updated[0].id, created[0].id, "updated in place");
    // Moved to another project: deleted there, created in the new one.
    let moved = PostingLine {
        customer: Some(PROJECT_2.into()),
        ..xline(90, "Design")
    };
    let moved_refs = dry
        .apply(&request(
            "d1",
            3,
            LedgerOp::Update {
                records: updated,
                lines: vec![moved],
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(moved_refs[0].id.starts_with(&format!("{PROJECT_2}/")));
    dry.apply(&request(
        "d1",
        4,
        LedgerOp::Delete {
            records: moved_refs.clone(),
        },
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let rec = dry.recorded();
    let shape: Vec<(String, String)> = rec
        .iter()
        .flat_map(|r| r.calls.iter())
        .map(|c| (c.method.clone(), c.url.replace(&server.api_base(), "")))
        .collect();
    let entry = timepost::ledger::xero::entry_of(&created[0].id);
    let entry2 = timepost::ledger::xero::entry_of(&moved_refs[0].id);
    assert_eq!(
        shape,
        vec![
            ("POST".to_string(), format!("/Projects/{PROJECT}/Time")),
            (
                "PUT".to_string(),
                format!("/Projects/{PROJECT}/Time/{entry}")
            ),
            (
                "DELETE".to_string(),
                format!("/Projects/{PROJECT}/Time/{entry}")
            ),
            ("POST".to_string(), format!("/Projects/{PROJECT_2}/Time")),
            (
                "DELETE".to_string(),
                format!("/Projects/{PROJECT_2}/Time/{entry2}")
            ),
        ]
    );
    // Every body shown is one Xero accepts, dated in the organisation zone.
    for c in rec.iter().flat_map(|r| r.calls.iter()) {
        if let Some(b) = &c.body {
            let v: serde_json::Value = serde_json::from_str(b).unwrap_or_default();
            let problems = spec.validate("TimeEntryCreateOrUpdate", &v, true);
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(v["dateUtc"], "2026-03-02T05:00:00Z");
        }
    }
}

/// The names of the query parameters the spec declares for `GET path`.
fn query_params(spec: &Spec, path: &str) -> Vec<String> {
    let resolve = |p: &serde_json::Value| -> serde_json::Value {
        match p["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or("");
                spec.doc["components"]["parameters"][name].clone()
            }
            None => p.clone(),
        }
    };
    let mut params: Vec<serde_json::Value> = Vec::new();
    for at in [&spec.doc["paths"][path], &spec.doc["paths"][path]["get"]] {
        if let Some(a) = at["parameters"].as_array() {
            params.extend(a.iter().map(resolve));
        }
    }
    params
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

/// Issue 11: every read the Xero adapter sends (tasks, time) uses only
/// query parameters the published document declares, with its required
/// headers.
#[test]
fn adapter_reads_match_the_spec() {
    let Some(spec) = xero_spec_or_skip("adapter_reads_match_the_spec") else {
        return;
    };
    let r = XeroRequests {
        settings: XeroSettings {
            tenant_id: "tenant-1".into(),
            api_base: "https://api.xero.com/projects.xro/2.0".into(),
            accounting_base: "https://api.xero.com/api.xro/2.0".into(),
            time_zone: None,
        },
    };
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default();
    for (call, path) in [
        (r.tasks_call(PROJECT, 1), "/Projects/{projectId}/Tasks"),
        (
            r.time_list_call(PROJECT, day(1), day(31), 2, chrono_tz::Pacific::Auckland),
            "/Projects/{projectId}/Time",
        ),
        (r.projects_call(1), "/Projects"),
    ] {
        let declared = query_params(&spec, path);
        let query = call.url.split_once('?').map(|(_, q)| q).unwrap_or("");
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or("");
            assert!(
                declared.iter().any(|d| d == name),
                "{path}: `{name}` is not a declared parameter ({declared:?})"
            );
        }
        for h in spec.required_headers(path, "get") {
            assert!(
                call.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(&h)),
                "GET {path} lacks required header {h}"
            );
        }
    }
    // The time list is bounded by the organisation's days, as instants.
    let call = r.time_list_call(PROJECT, day(2), day(2), 1, chrono_tz::Pacific::Auckland);
    assert!(
        call.url.contains("dateAfterUtc=2026-03-01T11%3A00%3A00Z")
            && call.url.contains("dateBeforeUtc=2026-03-02T10%3A59%3A59Z"),
        "{}",
        call.url
    );
}
