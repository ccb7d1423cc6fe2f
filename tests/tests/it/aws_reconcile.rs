//! The reconcile function on the AWS stack against moto, the fake
//! QuickBooks and the fake Harvest, its handler invoked in-process as the
//! archive function's tests do: the last closed week and the current one
//! are each stored as a run in DynamoDB; the books and the tracker agree
//! at first; then a record deleted in QuickBooks, one edited there and an
//! entry Harvest lists but never delivered are the next run's breaks. The
//! Harvest token and the QuickBooks credentials come from Secrets Manager.
//! The same deleted and edited records are found on the fake Xero.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;
use timepost::aws::{AwsStack, SecretsManagerStore};
use timepost::exceptions::ExceptionCode;
use timepost::ports::{EntryStore, MappingStore, QueueMessage, Secrets};
use timepost::reconcile::{Period, ReconcileStore};
use timepost::state::Status;
use timepost_fn_reconcile::{ReconcileFnError, ReconcileInput};
use timepost_tests::harvest_fake::{self, HarvestServer};
use timepost_tests::moto;
use timepost_tests::qbo_fake::{QboFakeLimits, QboServer};

const ACCOUNT: &str = "987654";
const TOKEN: &str = "harvest-pat";

fn d(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, day).expect("date")
}

/// Wednesday 2026-03-11: the closed week is 03-02..08, the current one
/// 03-09..15.
fn wednesday() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 11, 5, 0, 0).unwrap()
}

struct World {
    qbo: QboServer,
    harvest: HarvestServer,
    stack: AwsStack,
}

/// A provisioned stack posting to the fake QuickBooks and polling the fake
/// Harvest, its secrets in Secrets Manager.
async fn world(sdk: &aws_config::SdkConfig) -> World {
    let qbo = QboServer::start(
        "9130",
        timepost_tests::sandbox_chart(),
        QboFakeLimits::default(),
        "rt-initial",
    )
    .await;
    let harvest = HarvestServer::start(ACCOUNT, TOKEN, 1000, Duration::from_secs(15)).await;
    let text = format!(
        "{}\n[intake.harvest]\naccount_id = \"{ACCOUNT}\"\nbase_url = \"{}\"\n\
         user_agent = \"timepost tests (ops@example.com)\"\nrequests_per_15s = 1000\n",
        timepost_tests::aws_world::config_without_approval(),
        harvest.base_url()
    );
    let name = moto::unique("recon");
    let settings = timepost_tests::aws_world::provision(sdk, &name, &text)
        .await
        .expect("provision");
    let secrets = SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(sdk),
        &settings.secret_prefix,
        Duration::from_secs(60),
    );
    for (k, v) in [
        ("harvest_token", TOKEN),
        ("qbo_client_id", "client-id"),
        ("qbo_client_secret", "client-secret"),
        ("qbo_refresh_token", "rt-initial"),
    ] {
        secrets.put(k, v).await.expect("secret");
    }
    // The rules file of the bucket, on the fake QuickBooks company.
    let mut config = timepost::config::Config::parse(&text, "s3").expect("config");
    config.ledger.kind = timepost::config::LedgerKind::Qbo;
    config.ledger.qbo = Some(timepost_tests::qbo_config(
        &qbo,
        10,
        timepost_tests::fast_qbo_limits(),
    ));
    config.rules.no_payroll = config.ledger.has_no_payroll();
    let stack = AwsStack::connect(sdk, settings, Some(config))
        .await
        .expect("stack");
    // Harvest's user and project, mapped as the sandbox's.
    let rows = timepost::mapping::csv_io::read(
        "table,key,target,attrs\nemployee,1001,E-100,\nproject,2001,C-ACME,\n".as_bytes(),
    )
    .expect("rows");
    let changes = timepost::mapping::diff(
        &stack.store.snapshot().await.expect("mappings"),
        &rows,
        false,
        "test",
        Utc::now(),
        "harvest mappings",
    );
    stack.store.apply(changes).await.expect("apply");
    World {
        qbo,
        harvest,
        stack,
    }
}

/// Deliver what Harvest lists for the closed week, as the poller and the
/// sync function would (listed, then handed to the stack's engine).
async fn deliver_listed(w: &World) {
    let poller = timepost::poll::Poller::for_source("harvest", &w.stack.config.intake)
        .expect("poller")
        .expect("configured");
    let (entries, _) = poller
        .list_period(&w.stack.poll_ports(), d(2), d(8))
        .await
        .expect("listing");
    for entry in entries {
        let message = QueueMessage::Entry {
            entry: Box::new(entry),
            received_at: Utc::now(),
        };
        w.stack
            .engine
            .handle(&message, "reconcile-test")
            .await
            .expect("handle");
    }
}

async fn record_of(w: &World, id: &str) -> u64 {
    let key = timepost::model::EntryKey::new(timepost::model::Source::Harvest, ACCOUNT, id);
    let st = w
        .stack
        .store
        .get(&key)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("entry {id} is stored"));
    assert_eq!(st.status(), Status::Posted, "{st:?}");
    st.records[0].id.parse().expect("numeric id")
}

#[tokio::test]
async fn the_reconcile_function_stores_both_weeks_and_finds_what_changed_and_what_never_came() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let w = world(&sdk).await;
    w.harvest
        .put(harvest_fake::entry(1, 1001, 2001, 3001, d(3), "8.0"));
    w.harvest
        .put(harvest_fake::entry(2, 1001, 2001, 3001, d(4), "8.0"));
    deliver_listed(&w).await;

    // Everything agrees: one run per week, with Harvest's listing.
    let s = timepost_fn_reconcile::handle(&w.stack, ReconcileInput::default(), wednesday())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.runs, s.breaks), (2, 0), "{s:#?}");
    let periods: Vec<Period> = s.periods.iter().map(|p| p.period).collect();
    assert_eq!(
        periods,
        vec![
            Period {
                from: d(2),
                to: d(8)
            },
            Period {
                from: d(9),
                to: d(15)
            }
        ]
    );
    let first = s.periods[0].run.clone().expect("stored");
    assert_eq!(first.tracker, "received + harvest listing");
    assert_eq!(first.by, "schedule");
    assert_eq!(first.ledger, "qbo");
    let stored = w.stack.store.runs(10).await.expect("runs");
    assert_eq!(stored.len(), 2);

    // Someone deletes entry 1's record in QuickBooks and edits entry 2's;
    // a third entry is entered in Harvest and never delivered.
    let (r1, r2) = (record_of(&w, "1").await, record_of(&w, "2").await);
    w.qbo.delete_by_hand(r1);
    w.qbo.edit_by_hand(r2, "Hours", json!(3));
    w.harvest
        .put(harvest_fake::entry(3, 1001, 2001, 3001, d(5), "2.5"));

    let s = timepost_fn_reconcile::handle(&w.stack, ReconcileInput::default(), wednesday())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let week = s.periods[0].run.clone().expect("stored");
    assert_eq!(week.breaks, 3, "{week:#?}");
    let breaks = w.stack.store.run_breaks(week.seq).await.expect("breaks");
    let found: std::collections::BTreeSet<(ExceptionCode, String)> = breaks
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
        .collect();
    assert_eq!(
        found,
        std::collections::BTreeSet::from([
            (ExceptionCode::DeletedInBooks, "1".to_string()),
            (ExceptionCode::ChangedInBooks, "2".to_string()),
            (ExceptionCode::NeverReceived, "3".to_string()),
        ]),
        "{breaks:#?}"
    );
    let never = breaks
        .iter()
        .find(|b| b.code == ExceptionCode::NeverReceived)
        .expect("never received");
    assert!(
        never
            .said
            .contains("is in harvest but timepost never received it"),
        "{}",
        never.said
    );
    // The listing enqueued nothing and stored nothing.
    assert_eq!(
        w.stack
            .store
            .get(&timepost::model::EntryKey::new(
                timepost::model::Source::Harvest,
                ACCOUNT,
                "3"
            ))
            .await
            .expect("get"),
        None
    );
    assert_eq!(w.stack.store.runs(10).await.expect("runs").len(), 4);

    // Without the listing, the entry never received is not seen.
    let s = timepost_fn_reconcile::handle(
        &w.stack,
        ReconcileInput {
            period: Some("2026-03-02..2026-03-08".into()),
            no_listing: true,
        },
        wednesday(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.runs, s.breaks), (1, 2), "{s:#?}");
    assert_eq!(s.periods[0].run.as_ref().expect("run").tracker, "received");
}

#[tokio::test]
async fn a_tracker_that_cannot_be_listed_fails_the_run_and_stores_nothing() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let w = world(&sdk).await;
    // The Harvest token in Secrets Manager is wrong: Harvest refuses it.
    SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        &w.stack.settings.secret_prefix,
        Duration::from_secs(60),
    )
    .put("harvest_token", "wrong")
    .await
    .expect("secret");
    let stack = AwsStack::connect(&sdk, w.stack.settings.clone(), Some(w.stack.config.clone()))
        .await
        .expect("stack");
    let err = timepost_fn_reconcile::handle(&stack, ReconcileInput::default(), wednesday())
        .await
        .expect_err("harvest refuses the token");
    let ReconcileFnError::Failed {
        failed, of, errors, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*failed, *of), (2, 2), "{err}");
    assert!(errors.contains("2026-03-02..2026-03-08"), "{err}");
    assert!(stack.store.runs(10).await.expect("runs").is_empty());

    // A period that is not one is refused in words.
    let err = timepost_fn_reconcile::handle(
        &stack,
        ReconcileInput {
            period: Some("fortnight".into()),
            no_listing: false,
        },
        wednesday(),
    )
    .await
    .expect_err("not a period");
    assert!(matches!(err, ReconcileFnError::Period { .. }), "{err}");
    assert!(err.to_string().contains("fortnight"), "{err}");
    // The schedule's Input is `{}`; an unknown field is refused.
    let bad: Result<ReconcileInput, _> = serde_json::from_str(r#"{"periods":"week"}"#);
    assert!(bad.is_err());
    let empty: ReconcileInput = serde_json::from_str("{}").expect("{}");
    assert_eq!(empty, ReconcileInput::default());
}

/// The same on Xero: time entries timepost posted to the fake Xero (its
/// credentials in Secrets Manager), then one deleted there and one edited
/// there are the reconcile function's breaks.
#[tokio::test]
async fn on_xero_deleted_and_edited_time_entries_are_the_functions_breaks() {
    use std::collections::{BTreeMap, BTreeSet};
    use timepost::ledger::cloud::XeroLimits;
    use timepost::ledger::xero::entry_of;
    use timepost::ledger::{LedgerOp, Party};
    use timepost::state::EntryState;
    use timepost_tests::kit::E;
    use timepost_tests::xero_fake::{XeroFakeLimits, XeroServer};
    const PROJECT: &str = "b021e7cb-1903-4292-b48b-5b27b4271e3e";
    const TASK: &str = "7be77337-feec-4458-bb1b-dbaa5a4aafce";
    const USER: &str = "740add2a-a703-4b8a-a670-1093919c2040";

    let Some(spec) = timepost_tests::openapi::xero_spec_or_skip(
        "on_xero_deleted_and_edited_time_entries_are_the_functions_breaks",
    ) else {
        return;
    };
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
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
    let name = moto::unique("reconx");
    let text = timepost_tests::aws_world::config_without_approval();
    let settings = timepost_tests::aws_world::provision(&sdk, &name, &text)
        .await
        .expect("provision");
    let secrets = SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        &settings.secret_prefix,
        Duration::from_secs(60),
    );
    for (k, v) in [
        ("xero_client_id", "client-id"),
        ("xero_client_secret", "client-secret"),
        ("xero_refresh_token", "rt-x"),
    ] {
        secrets.put(k, v).await.expect("secret");
    }
    let mut config = timepost::config::Config::parse(&text, "s3").expect("config");
    config.ledger.kind = timepost::config::LedgerKind::Xero;
    config.ledger.xero = Some(timepost_tests::xero_config(
        &server,
        XeroLimits {
            calls_per_minute: 6000,
            ..Default::default()
        },
    ));
    let stack = AwsStack::connect(&sdk, settings, Some(config))
        .await
        .expect("stack");

    // Three entries posted to Xero, with the states timepost keeps.
    let mut ids = Vec::new();
    for n in 0..3u32 {
        let mut line = timepost_tests::line(Party::Employee { id: USER.into() }, 480, "work");
        line.customer = Some(PROJECT.into());
        line.service_item = Some(TASK.into());
        line.txn_date = d(2 + n);
        let id = format!("x{n}");
        let req = timepost_tests::request(
            &id,
            1,
            LedgerOp::Create {
                lines: vec![line.clone()],
            },
        );
        let refs = stack
            .ledger
            .apply(&req)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let entry = E::new(
            &id,
            "u-ann",
            &format!("2026-03-0{}", 2 + n),
            "08:00",
            "16:00",
        )
        .build();
        let mut st = EntryState::new(entry, Utc::now());
        st.set_status(Status::Posted, st.updated_at);
        st.posted_version = Some(st.entry.version.clone());
        st.records = refs.clone();
        st.posted_lines = vec![line];
        stack.store.put(&st).await.expect("put");
        ids.push(refs[0].id.clone());
    }
    let s = timepost_fn_reconcile::handle(&stack, ReconcileInput::default(), wednesday())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.runs, s.breaks), (2, 0), "{s:#?}");
    let first = s.periods[0].run.clone().expect("stored");
    assert_eq!(
        (first.ledger.as_str(), first.tracker.as_str()),
        ("xero", "received")
    );

    server.delete_by_hand(entry_of(&ids[0]));
    server.edit_by_hand(entry_of(&ids[1]), "duration", json!(180));
    let s = timepost_fn_reconcile::handle(&stack, ReconcileInput::default(), wednesday())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let week = s.periods[0].run.clone().expect("stored");
    let breaks = stack.store.run_breaks(week.seq).await.expect("breaks");
    let found: BTreeSet<(ExceptionCode, String)> = breaks
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
        .collect();
    assert_eq!(
        found,
        BTreeSet::from([
            (ExceptionCode::DeletedInBooks, "x0".to_string()),
            (ExceptionCode::ChangedInBooks, "x1".to_string()),
        ]),
        "{breaks:#?}"
    );
}
