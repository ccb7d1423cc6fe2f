//! The DynamoDB adapter against moto server, through the real SDK client:
//! every port method, the conditional writes and claims under concurrency,
//! the all-or-nothing mapping import beyond the 100-action transaction
//! limit, and the real engine running on it (same end states as SQLite).
//!
//! Run: `source scripts/moto.sh && moto_start && cargo test -p
//! timepost-tests --test aws_dynamo; moto_stop`. Each test has its own
//! table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use timepost::aws::DynamoStore;
use timepost::mapping::{MappingChange, MappingRow, MappingTable};
use timepost::model::{EntryKey, NormalisedEntry, Source};
use timepost::ports::*;
use timepost::state::{EntryState, Status};
use timepost_tests::contracts::{at, ids, key, state};
use timepost_tests::kit::E;
use timepost_tests::moto::{sdk_config, unique};

/// A fresh table on moto, or `None` (skipped) when no moto runs.
async fn store() -> Option<DynamoStore> {
    let config = sdk_config().await?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), unique("tp"));
    store.create_table().await.expect("create table");
    Some(store)
}

fn change(table: MappingTable, key: &str, target: Option<&str>, reason: &str) -> MappingChange {
    MappingChange {
        seq: 0,
        table,
        key: key.into(),
        before: None,
        after: target.map(|t| MappingRow::new(table, key, t)),
        changed_by: "ann".into(),
        changed_at: Utc
            .with_ymd_and_hms(2026, 3, 9, 12, 0, 0)
            .single()
            .expect("time"),
        reason: reason.into(),
    }
}

#[tokio::test]
async fn create_table_declares_the_contract_and_is_idempotent() {
    let Some(s) = store().await else { return };
    s.create_table().await.expect("second create is a no-op");
    let config = sdk_config().await.expect("moto");
    let client = aws_sdk_dynamodb::Client::new(&config);
    let described = client
        .describe_table()
        .table_name(s.table_name())
        .send()
        .await
        .expect("describe table");
    let table = described.table().expect("table");
    assert_eq!(table.table_status().map(|t| t.as_str()), Some("ACTIVE"));
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("pk".to_string(), "HASH".to_string()),
            ("sk".into(), "RANGE".into())
        ]
    );
    let mut gsis: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            let names: Vec<_> = g.key_schema().iter().map(|k| k.attribute_name()).collect();
            let projection = g
                .projection()
                .and_then(|p| p.projection_type())
                .map(|t| t.as_str().to_string());
            (
                g.index_name().unwrap_or_default().to_string(),
                names.join(","),
                projection,
            )
        })
        .collect();
    gsis.sort();
    let all = Some("ALL".to_string());
    assert_eq!(
        gsis,
        [
            ("gsi1".to_string(), "gsi1pk,gsi1sk".to_string(), all.clone()),
            ("gsi2".into(), "gsi2pk,gsi2sk".into(), all.clone()),
            ("gsi3".into(), "gsi3pk,gsi3sk".into(), all),
        ]
    );
    assert_eq!(
        table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(s.table_name())
        .send()
        .await
        .expect("describe ttl");
    let ttl = ttl.time_to_live_description().expect("ttl description");
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );
}

#[tokio::test]
async fn put_is_conditional_on_the_revision() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::entry_store_revisions(&s).await;
}

#[tokio::test]
async fn week_status_all_and_date_queries() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::entry_store_queries(&s).await;
}

#[tokio::test]
async fn of_twenty_concurrent_claims_exactly_one_wins() {
    let Some(s) = store().await else { return };
    for round in 0..3 {
        let id = format!("hot{round}");
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            let k = key(&id);
            tasks.push(tokio::spawn(async move {
                s.claim(&k, &format!("worker-{i}"), Duration::from_secs(60))
                    .await
                    .expect("claim")
            }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.expect("task") {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

#[tokio::test]
async fn claims_expire_and_only_the_owner_releases() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::entry_claims(&s).await;
}

/// 250 project rows, each carrying a 4.5 KB attribute so the change log
/// exceeds one 1 MB query page (reads must follow LastEvaluatedKey).
fn import(n: usize, tag: &str) -> Vec<MappingChange> {
    let padding = "x".repeat(4_500);
    (0..n)
        .map(|i| {
            let mut c = change(
                MappingTable::Project,
                &format!("p-{i:03}"),
                Some(&format!("C-{tag}-{i}")),
                tag,
            );
            if let Some(row) = c.after.as_mut() {
                row.attrs.insert("note".into(), padding.clone());
            }
            c
        })
        .collect()
}

#[tokio::test]
async fn a_250_row_import_is_all_or_nothing() {
    let Some(s) = store().await else { return };
    assert_eq!(s.version().await.expect("version"), 0);
    assert_eq!(s.snapshot().await.expect("snapshot").rows().len(), 0);

    let applied = s.apply(import(250, "first")).await.expect("apply");
    let seqs: Vec<u64> = applied.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=250).collect::<Vec<_>>());
    assert_eq!(s.version().await.expect("version"), 250);
    let snap = s.snapshot().await.expect("snapshot");
    assert_eq!(snap.version, 250);
    assert_eq!(snap.rows().len(), 250);
    assert_eq!(
        snap.get(MappingTable::Project, "p-249")
            .map(|r| r.target.as_str()),
        Some("C-first-249")
    );
    assert_eq!(s.history(None, None).await.expect("history").len(), 250);

    // The second import fails at row 200 (an item over DynamoDB's 400 KB
    // limit): 175 rows were already staged in earlier batches.
    let mut bad = import(250, "second");
    if let Some(row) = bad[200].after.as_mut() {
        row.attrs.insert("note".into(), "y".repeat(420_000));
    }
    let err = s.apply(bad).await.expect_err("oversized row");
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(
        err.to_string().contains("size"),
        "service message kept: {err}"
    );
    assert_eq!(
        s.version().await.expect("version"),
        250,
        "nothing published"
    );
    let after = s.snapshot().await.expect("snapshot");
    assert_eq!(after.rows().len(), 250);
    assert_eq!(
        after
            .get(MappingTable::Project, "p-000")
            .map(|r| r.target.as_str()),
        Some("C-first-0"),
        "no row of the failed import is visible"
    );
    let history = s.history(None, None).await.expect("history");
    assert_eq!(history.len(), 250);
    assert!(history.iter().all(|c| c.reason == "first"));

    // An import that crashed after staging (before publishing) leaves log
    // items behind that no commit names: readers must not see them.
    let config = sdk_config().await.expect("moto");
    let raw = aws_sdk_dynamodb::Client::new(&config);
    for seq in 251..=260u64 {
        let mut c = change(MappingTable::Project, "p-000", Some("C-CRASHED"), "crashed");
        c.seq = seq;
        let v = |s: String| aws_sdk_dynamodb::types::AttributeValue::S(s);
        raw.put_item()
            .table_name(s.table_name())
            .item("pk", v("map#log".into()))
            .item("sk", v(format!("{seq:020}#crashedimport")))
            .item("change", v(serde_json::to_string(&c).expect("json")))
            .item(
                "seq",
                aws_sdk_dynamodb::types::AttributeValue::N(seq.to_string()),
            )
            .item("import", v("crashedimport".into()))
            .send()
            .await
            .expect("orphan");
    }
    assert_eq!(s.history(None, None).await.expect("history").len(), 250);

    // The next import takes the next numbers.
    let next = s
        .apply(vec![change(
            MappingTable::Project,
            "p-000",
            Some("C-NEW"),
            "fix",
        )])
        .await
        .expect("apply");
    assert_eq!(next[0].seq, 251);
    assert_eq!(
        s.snapshot()
            .await
            .expect("snapshot")
            .get(MappingTable::Project, "p-000")
            .map(|r| r.target.clone()),
        Some("C-NEW".to_string())
    );
    let history = s.history(None, None).await.expect("history");
    assert_eq!(history.len(), 251);
    assert!(history.iter().all(|c| c.reason != "crashed"));
}

#[tokio::test]
async fn concurrent_imports_each_publish_whole_and_in_sequence() {
    let Some(s) = store().await else { return };
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let changes: Vec<MappingChange> = (0..40)
                .map(|i| {
                    change(
                        MappingTable::Employee,
                        &format!("u-{t}-{i}"),
                        Some("E-1"),
                        &format!("import {t}"),
                    )
                })
                .collect();
            s.apply(changes).await.expect("apply")
        }));
    }
    let mut all_seqs = BTreeSet::new();
    for t in tasks {
        let applied = t.await.expect("task");
        let seqs: Vec<u64> = applied.iter().map(|c| c.seq).collect();
        let first = seqs[0];
        assert_eq!(seqs, (first..first + 40).collect::<Vec<_>>(), "contiguous");
        all_seqs.extend(seqs);
    }
    assert_eq!(all_seqs, (1..=160).collect::<BTreeSet<_>>());
    assert_eq!(s.version().await.expect("version"), 160);
    let history = s.history(None, None).await.expect("history");
    assert_eq!(
        history.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (1..=160).collect::<Vec<_>>()
    );
    // Each import's changes are one run in the log.
    for run in history.chunks(40) {
        assert!(run.iter().all(|c| c.reason == run[0].reason));
    }
    assert_eq!(s.snapshot().await.expect("snapshot").rows().len(), 160);
}

#[tokio::test]
async fn history_filters_by_table_and_key_oldest_first() {
    let Some(s) = store().await else { return };
    s.apply(vec![
        change(MappingTable::Project, "p1", Some("C1"), "add p1"),
        change(MappingTable::Employee, "u1", Some("E1"), "add u1"),
    ])
    .await
    .expect("apply");
    s.apply(vec![change(
        MappingTable::Project,
        "p1",
        Some("C2"),
        "move p1",
    )])
    .await
    .expect("apply");
    s.apply(vec![change(
        MappingTable::Project,
        "p2",
        Some("C3"),
        "add p2",
    )])
    .await
    .expect("apply");
    s.apply(vec![change(MappingTable::Project, "p1", None, "drop p1")])
        .await
        .expect("apply");

    let reasons = |h: Vec<MappingChange>| h.into_iter().map(|c| c.reason).collect::<Vec<_>>();
    assert_eq!(
        reasons(
            s.history(Some(MappingTable::Project), Some("p1"))
                .await
                .expect("h")
        ),
        ["add p1", "move p1", "drop p1"]
    );
    assert_eq!(
        reasons(
            s.history(Some(MappingTable::Project), None)
                .await
                .expect("h")
        ),
        ["add p1", "move p1", "add p2", "drop p1"]
    );
    assert_eq!(
        reasons(s.history(None, Some("u1")).await.expect("h")),
        ["add u1"]
    );
    assert_eq!(s.history(None, None).await.expect("h").len(), 5);
    let snap = s.snapshot().await.expect("snapshot");
    assert_eq!(snap.version, 5);
    assert!(snap.get(MappingTable::Project, "p1").is_none(), "removed");
    assert_eq!(
        snap.get(MappingTable::Project, "p2")
            .map(|r| r.target.as_str()),
        Some("C3")
    );
    assert!(s.apply(Vec::new()).await.expect("empty").is_empty());
    assert_eq!(s.version().await.expect("version"), 5);
}

fn journal_record(batch: &str, id: &str, op: &str) -> JournalRecord {
    JournalRecord {
        seq: 0,
        batch_id: batch.into(),
        key: key(id),
        version: timepost_tests::version(1),
        operation: op.into(),
        request_id: format!("req-{id}-{op}"),
        records: vec![],
        lines: vec![],
        ledger: "sandbox".into(),
        at: at("2026-03-09T10:00:00Z"),
        intent: String::new(),
    }
}

#[tokio::test]
async fn journal_assigns_increasing_seq_and_reads_by_batch_and_entry() {
    let Some(s) = store().await else { return };
    let mut seqs = Vec::new();
    for (batch, id, op) in [
        ("b1", "a", "create"),
        ("b1", "b", "create"),
        ("b2", "a", "update"),
        ("b2", "c", "create"),
        ("b1", "a", "delete"),
    ] {
        seqs.push(
            s.append(journal_record(batch, id, op))
                .await
                .expect("append"),
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let b1 = s.by_batch("b1").await.expect("b1");
    assert_eq!(
        b1.iter()
            .map(|r| (r.key.id.as_str(), r.operation.as_str()))
            .collect::<Vec<_>>(),
        [("a", "create"), ("b", "create"), ("a", "delete")]
    );
    assert_eq!(b1[0].seq, seqs[0]);
    let a = s.by_entry(&key("a")).await.expect("a");
    assert_eq!(
        a.iter().map(|r| r.operation.as_str()).collect::<Vec<_>>(),
        ["create", "update", "delete"]
    );
    assert_eq!(a[1], {
        let mut r = journal_record("b2", "a", "update");
        r.seq = seqs[2];
        r
    });
    assert!(s.by_batch("none").await.expect("none").is_empty());
    assert!(s.by_entry(&key("z")).await.expect("none").is_empty());
}

#[tokio::test]
async fn watermarks_round_trip() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::watermarks(&s).await;
}

#[tokio::test]
async fn audit_log_lists_newest_first() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::audit_log(&s).await;
}

#[tokio::test]
async fn mapping_changes_are_numbered_folded_and_logged_on_dynamodb() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::mapping_store(&s).await;
}

#[tokio::test]
async fn pending_changes_contract_on_dynamodb() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::pending_changes(&s).await;
}

#[tokio::test]
async fn console_sessions_contract_on_dynamodb() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::session_store(&s).await;
}

#[tokio::test]
async fn alert_states_are_replaced_cleared_and_listed_on_dynamodb() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::alert_store(&s).await;
}

/// The entries both engines receive: posted ones, an unmapped project
/// (held), an edit of a posted entry, a deletion, enough hours for weekly
/// overtime.
fn scenario() -> Vec<NormalisedEntry> {
    let mut v = vec![
        E::new("a", "u-ann", "2026-03-02", "08:00", "18:00").build(),
        E::new("b", "u-ann", "2026-03-03", "08:00", "18:00").build(),
        E::new("c", "u-ann", "2026-03-04", "08:00", "18:00").build(),
        E::new("d", "u-ann", "2026-03-05", "08:00", "18:00").build(),
        E::new("u", "u-bob", "2026-03-03", "09:00", "12:00")
            .project("p-nowhere")
            .build(),
        E::new("x", "u-bob", "2026-03-04", "09:00", "11:00").build(),
    ];
    // Ann's Friday pushes her week over 40 hours; then Monday is edited
    // shorter and Bob's second entry is deleted.
    v.push(E::new("e", "u-ann", "2026-03-06", "08:00", "16:00").build());
    v.push(
        E::new("a", "u-ann", "2026-03-02", "08:00", "12:00")
            .updated("2026-03-09T08:00:00Z")
            .build(),
    );
    v.push(
        E::new("x", "u-bob", "2026-03-04", "09:00", "11:00")
            .updated("2026-03-09T09:00:00Z")
            .deleted()
            .build(),
    );
    v
}

/// key → (status, posted minutes by tier, exception code)
type Summary = BTreeMap<String, (Status, BTreeMap<String, i64>, Option<String>)>;

fn summary(states: &[EntryState]) -> Summary {
    states
        .iter()
        .map(|st| {
            let mut tiers = BTreeMap::new();
            for l in &st.posted_lines {
                *tiers.entry(l.tier.clone()).or_insert(0) += l.minutes;
            }
            (
                st.entry.key.to_string(),
                (
                    st.status(),
                    tiers,
                    st.reason.as_ref().map(|r| format!("{:?}", r.code)),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_engine_on_dynamodb_ends_like_on_sqlite() {
    let Some(dynamo) = store().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");

    // Reference: the local stack (SQLite store and sandbox ledger).
    let local = timepost_tests::kit::sandbox_stack(&dir.path().join("local")).await;

    // The same engine on DynamoDB, posting to a sandbox ledger of its own.
    let config =
        timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    let books =
        timepost::local::SqliteStore::open(&dir.path().join("books.sqlite")).expect("books");
    let sandbox = Arc::new(timepost::ledger::sandbox::SandboxLedger::new(
        books,
        config.ledger.sandbox.clone(),
    ));
    let rows =
        timepost::mapping::csv_io::read(timepost::demo::MAPPINGS.as_bytes()).expect("mappings");
    let changes = timepost::mapping::diff(
        &dynamo.snapshot().await.expect("snapshot"),
        &rows,
        false,
        "test",
        Utc::now(),
        "sandbox",
    );
    dynamo.apply(changes).await.expect("mappings");
    let shared = Arc::new(dynamo.clone());
    let engine = timepost::engine::Engine::new(
        shared.clone(),
        shared.clone(),
        shared,
        sandbox.clone(),
        config.rules.clone(),
        config.worker.clone(),
    );

    for (i, e) in scenario().into_iter().enumerate() {
        let message = QueueMessage::Entry {
            entry: Box::new(e),
            received_at: Utc::now(),
        };
        let batch = format!("batch-{i}");
        local
            .engine
            .handle(&message, &batch)
            .await
            .expect("local engine");
        engine
            .handle(&message, &batch)
            .await
            .expect("dynamo engine");
    }
    // The missing project mapping arrives; held entries post by themselves.
    let fix = vec![change(
        MappingTable::Project,
        "p-nowhere",
        Some("C-ACME"),
        "fix",
    )];
    local.store.apply(fix.clone()).await.expect("local fix");
    dynamo.apply(fix).await.expect("dynamo fix");
    local
        .engine
        .recheck_held("recheck")
        .await
        .expect("local recheck");
    engine
        .recheck_held("recheck")
        .await
        .expect("dynamo recheck");

    let want = summary(&local.store.all().await.expect("local all"));
    let got = summary(&dynamo.all().await.expect("dynamo all"));
    assert_eq!(got, want);
    // The scenario exercised what it claims to.
    let statuses: BTreeSet<Status> = want.values().map(|v| v.0).collect();
    assert!(statuses.contains(&Status::Posted) && statuses.contains(&Status::Voided));
    assert!(
        want.values().any(|v| v.1.contains_key("overtime")),
        "weekly overtime was split: {want:?}"
    );
    // The books agree too, and the journals tell the same story.
    let book = |recs: Vec<timepost::ledger::sandbox::SandboxRecord>| {
        let mut m = BTreeMap::new();
        for r in recs {
            *m.entry((r.entry_key, r.line.tier)).or_insert(0) += r.line.minutes;
        }
        m
    };
    assert_eq!(
        book(sandbox.records().expect("books")),
        book(local.sandbox.records().expect("books"))
    );
    for id in ["a", "u", "x"] {
        let ops = |j: Vec<JournalRecord>| j.into_iter().map(|r| r.operation).collect::<Vec<_>>();
        assert_eq!(
            ops(dynamo.by_entry(&key(id)).await.expect("journal")),
            ops(local.store.by_entry(&key(id)).await.expect("journal")),
            "journal of {id}"
        );
    }
}

/// Counts the DynamoDB requests a client sends, by operation.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<std::sync::Mutex<BTreeMap<String, u64>>>);

impl aws_sdk_dynamodb::config::Intercept for Counting {
    fn name(&self) -> &'static str {
        "request-counter"
    }
    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let op = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_string();
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default() += 1;
        Ok(())
    }
}

/// The sandbox mappings on `store`, and an engine on it posting to a
/// sandbox ledger kept in `books` (a SQLite file).
async fn engine_on(
    store: &DynamoStore,
    ledger: Arc<dyn timepost::ledger::Ledger>,
) -> timepost::engine::Engine {
    let config =
        timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    let shared = Arc::new(store.clone());
    timepost::engine::Engine::new(
        shared.clone(),
        shared.clone(),
        shared,
        ledger,
        config.rules.clone(),
        config.worker.clone(),
    )
}

async fn with_sandbox_mappings(store: &DynamoStore) {
    let rows =
        timepost::mapping::csv_io::read(timepost::demo::MAPPINGS.as_bytes()).expect("mappings");
    let changes = timepost::mapping::diff(
        &store.snapshot().await.expect("snapshot"),
        &rows,
        false,
        "test",
        Utc::now(),
        "sandbox",
    );
    store.apply(changes).await.expect("mappings");
}

fn sandbox_ledger(path: &std::path::Path) -> Arc<timepost::ledger::sandbox::SandboxLedger> {
    let config =
        timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    let books = timepost::local::SqliteStore::open(path).expect("books");
    Arc::new(timepost::ledger::sandbox::SandboxLedger::new(
        books,
        config.ledger.sandbox.clone(),
    ))
}

fn lines_of(ledger: &timepost::ledger::sandbox::SandboxLedger) -> Vec<(String, String, i64)> {
    let mut l: Vec<_> = ledger
        .records()
        .expect("records")
        .into_iter()
        .map(|r| (r.entry_key, r.line.tier, r.line.minutes))
        .collect();
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_workers_on_dynamodb_split_each_week_like_one_sequential_worker() {
    use timepost_tests::week_race::{
        final_versions, messages, minutes_by_week_and_tier, race, scenario, shuffle, Paced,
    };
    let Some(config) = sdk_config().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = scenario();
    let finals = final_versions(&entries);

    // Reference: one worker, in order, on DynamoDB, counting requests.
    let counts = Counting::default();
    let counted = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counts.clone())
            .build(),
    );
    let sequential = DynamoStore::new(counted, unique("tp-seq"));
    sequential.create_table().await.expect("create table");
    with_sandbox_mappings(&sequential).await;
    let reference_books = sandbox_ledger(&dir.path().join("sequential.sqlite"));
    let one = engine_on(&sequential, reference_books.clone()).await;
    counts.0.lock().expect("counts").clear();
    for m in messages(&entries) {
        one.handle(&m, "sequential").await.expect("sequential");
    }
    let per_op = counts.0.lock().expect("counts").clone();
    let total: u64 = per_op.values().sum();
    eprintln!(
        "DynamoDB requests for {} messages, sequential: {total} ({:.1} per message): {per_op:?}",
        entries.len(),
        total as f64 / entries.len() as f64
    );
    let want_lines = lines_of(&reference_books);
    let want = minutes_by_week_and_tier(&finals, &want_lines);
    assert!(
        want.keys().any(|(_, tier)| tier == "overtime"),
        "the scenario splits weekly overtime: {want:?}"
    );

    for seed in [7u64, 2026] {
        let Some(store) = store().await else { return };
        with_sandbox_mappings(&store).await;
        let books = sandbox_ledger(&dir.path().join(format!("race-{seed}.sqlite")));
        let ledger: Arc<dyn timepost::ledger::Ledger> = Arc::new(Paced(books.clone()));
        let mut engines = Vec::new();
        for _ in 0..8 {
            engines.push(Arc::new(engine_on(&store, ledger.clone()).await));
        }
        let mut arrival = messages(&entries);
        shuffle(&mut arrival, seed);
        race(engines, arrival).await;

        let lines = lines_of(&books);
        assert_eq!(
            minutes_by_week_and_tier(&finals, &lines),
            want,
            "seed {seed}: minutes per worker-week and tier"
        );
        assert_eq!(lines, want_lines, "seed {seed}: the same lines per entry");
        let mut seen = BTreeSet::new();
        for (key, tier, _) in &lines {
            assert!(seen.insert((key, tier)), "seed {seed}: {key} {tier} twice");
        }
        for (k, e) in &finals {
            let creates = store
                .by_entry(&e.key)
                .await
                .expect("journal")
                .iter()
                .filter(|r| r.operation == "create")
                .count();
            assert_eq!(creates, 1, "seed {seed}: {k} created {creates} times");
            let st = store.get(&e.key).await.expect("get").expect("state");
            assert_eq!(st.status(), Status::Posted, "seed {seed}: {k}");
            assert_eq!(st.entry, *e, "seed {seed}: {k} ends at its newest version");
        }
    }
}

/// The membership item of `id` in `week`, read from the base table.
async fn member(s: &DynamoStore, week: &str, id: &str) -> bool {
    let config = sdk_config().await.expect("moto");
    let out = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(s.table_name())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(week.into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("entry#csv:ws:{id}")),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get membership");
    out.item.is_some()
}

#[tokio::test]
async fn a_written_entry_is_listed_by_its_week_at_once_and_leaves_it_when_moved() {
    let Some(s) = store().await else { return };
    let week = |start: &str| WorkerWeek {
        source: Source::Csv,
        workspace: "ws".into(),
        user_id: "u-ann".into(),
        week_start: start.parse().expect("date"),
    };
    let (w1, w2) = (week("2026-03-02"), week("2026-03-09"));
    let (p1, p2) = (
        "week#csv#ws#u-ann#2026-03-02",
        "week#csv#ws#u-ann#2026-03-09",
    );
    // Read after write, every time: the week is read from the base table.
    let mut written = Vec::new();
    for i in 0..20 {
        let id = format!("raw{i:02}");
        let day = format!("2026-03-0{}", 2 + i % 7);
        let st = state(
            E::new(&id, "u-ann", &day, "09:00", "10:00").build(),
            Status::Posted,
            "2026-03-09T10:00:00Z",
        );
        s.put(&st).await.expect("put");
        written.push(id.clone());
        assert_eq!(
            ids(&s.week(&w1).await.expect("week")),
            written,
            "after {id}"
        );
        assert!(member(&s, p1, &id).await, "{id} is a member of its week");
    }
    // An update in the same week keeps it there (no second membership).
    let mut a = s.get(&key("raw00")).await.expect("get").expect("raw00");
    a.set_status(Status::Held, a.updated_at);
    s.put(&a).await.expect("update");
    assert_eq!(s.week(&w1).await.expect("week").len(), 20);
    // Moving it to the next week moves its membership, atomically with the state.
    let mut a = s.get(&key("raw00")).await.expect("get").expect("raw00");
    a.entry = E::new("raw00", "u-ann", "2026-03-10", "09:00", "10:00").build();
    s.put(&a).await.expect("move");
    assert!(!ids(&s.week(&w1).await.expect("week")).contains(&"raw00".to_string()));
    assert_eq!(ids(&s.week(&w2).await.expect("week")), ["raw00"]);
    assert!(!member(&s, p1, "raw00").await, "left the old week");
    assert!(member(&s, p2, "raw00").await, "joined the new week");
    // A stale writer of the move loses, and the membership stays put.
    a.entry = E::new("raw00", "u-ann", "2026-03-03", "09:00", "10:00").build();
    assert!(matches!(s.put(&a).await, Err(StoreError::Conflict(_))));
    assert!(member(&s, p2, "raw00").await && !member(&s, p1, "raw00").await);
    // A new entry whose key exists already is a conflict, and adds no member.
    let dup = state(
        E::new("raw01", "u-ann", "2026-03-11", "09:00", "10:00").build(),
        Status::Posted,
        "2026-03-09T10:00:00Z",
    );
    assert!(matches!(s.put(&dup).await, Err(StoreError::Conflict(_))));
    assert!(!member(&s, p2, "raw01").await);
}

#[tokio::test]
async fn intents_and_dirty_weeks_meet_the_journal_contract() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::journal_intents(&s).await;
}

#[tokio::test]
async fn reconciliation_runs_meet_the_store_contract() {
    let Some(s) = store().await else { return };
    timepost_tests::contracts::reconcile_store(&s).await;
}

/// Workspace `ws:x` + id `y` and workspace `ws` + id `x:y` are two
/// entries, each in its own partition.
#[tokio::test]
async fn entries_whose_unescaped_keys_collide_are_two_entries() {
    let Some(s) = store().await else { return };
    let a = E::new("y", "u-ann", "2026-03-02", "09:00", "12:00")
        .with(|e| e.key.workspace = "ws:x".into())
        .build();
    let b = E::new("x:y", "u-ann", "2026-03-02", "13:00", "15:00").build();
    for e in [&a, &b] {
        s.put(&state(e.clone(), Status::Held, "2026-03-09T10:00:00Z"))
            .await
            .expect("put");
    }
    assert_eq!(s.get(&a.key).await.expect("get").expect("a").entry, a);
    assert_eq!(s.get(&b.key).await.expect("get").expect("b").entry, b);
    assert_eq!(s.all().await.expect("all").len(), 2);
    s.append(JournalRecord {
        key: b.key.clone(),
        ..journal_record("b1", "x:y", "create")
    })
    .await
    .expect("append");
    assert!(s.by_entry(&a.key).await.expect("a").is_empty());
    assert_eq!(s.by_entry(&b.key).await.expect("b").len(), 1);
}

/// A table an older timepost wrote (an entry whose id holds `:` under the
/// unescaped partition `entry#csv:ws:a:1`) is moved by
/// `migrate_entry_keys`: state, journal and week membership under the
/// escaped key, nothing left under the old one; a second run moves nothing.
#[tokio::test]
async fn migrate_entry_keys_moves_unescaped_partitions() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let Some(s) = store().await else { return };
    let colon = E::new("a:1", "u-ann", "2026-03-02", "09:00", "12:00").build();
    let plain = E::new("b", "u-ann", "2026-03-03", "09:00", "12:00").build();
    for e in [&colon, &plain] {
        s.put(&state(e.clone(), Status::Held, "2026-03-09T10:00:00Z"))
            .await
            .expect("put");
    }
    s.append(journal_record("b1", "a:1", "create"))
        .await
        .expect("append");
    // Rewrite what this timepost wrote as an older one would have.
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await.expect("moto"));
    // The entry key text `csv:ws:a%3A1`, escaped again as a DynamoDB key
    // part (`%` → `%25`).
    let (new_pk, old_pk) = ("entry#csv:ws:a%253A1", "entry#csv:ws:a:1");
    let items = client
        .scan()
        .table_name(s.table_name())
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    let mut rewritten = 0;
    for item in items {
        let pk = item["pk"].as_s().expect("pk").clone();
        let sk = item["sk"].as_s().expect("sk").clone();
        if pk != new_pk && sk != new_pk {
            continue;
        }
        let mut old = item.clone();
        if pk == new_pk {
            old.insert("pk".into(), AttributeValue::S(old_pk.into()));
        } else {
            old.insert("sk".into(), AttributeValue::S(old_pk.into()));
        }
        client
            .put_item()
            .table_name(s.table_name())
            .set_item(Some(old))
            .send()
            .await
            .expect("put legacy");
        client
            .delete_item()
            .table_name(s.table_name())
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .send()
            .await
            .expect("delete new");
        rewritten += 1;
    }
    assert_eq!(rewritten, 3, "state, journal record, week membership");
    assert!(s.get(&colon.key).await.expect("get").is_none());

    let done = s.migrate_entry_keys().await.expect("migrate");
    assert_eq!((done.entries, done.moved), (2, 1));
    assert_eq!(
        s.get(&colon.key).await.expect("get").expect("moved").entry,
        colon
    );
    assert_eq!(s.by_entry(&colon.key).await.expect("journal").len(), 1);
    let week = WorkerWeek::of(&colon);
    assert_eq!(ids(&s.week(&week).await.expect("week")), ["a:1", "b"]);
    let left = client
        .query()
        .table_name(s.table_name())
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", AttributeValue::S(old_pk.into()))
        .send()
        .await
        .expect("query old");
    assert_eq!(left.count(), 0);
    assert_eq!(s.migrate_entry_keys().await.expect("again").moved, 0);
}

/// Console sessions on the table are shared by every admin function
/// instance: a session started on one is honoured by another, ended on
/// either it is gone on both, an expired one (still on the table until TTL
/// removes it) signs nobody in, and the table holds only the cookie's
/// hash.
#[tokio::test]
async fn console_sessions_are_shared_by_every_instance_and_end_everywhere() {
    use timepost_web::auth::{Principal, Role, Sessions};
    let Some(store) = store().await else { return };
    let shared: Arc<dyn SessionStore> = Arc::new(store.clone());
    let one = Sessions::new(Duration::from_secs(600)).with_store(shared.clone());
    let two = Sessions::new(Duration::from_secs(600)).with_store(shared.clone());
    let fran = Principal {
        name: "fran@example.com".into(),
        role: Role::Finance,
        csrf: None,
        named: true,
    };
    let id = one.create(&fran).await.expect("session stored");
    let seen = two.get(&id).await.expect("the other instance knows it");
    assert_eq!(
        (seen.name.as_str(), seen.role, seen.named),
        ("fran@example.com", Role::Finance, true)
    );
    let csrf = seen.csrf.clone().expect("a CSRF token");
    assert_eq!(one.get(&id).await.and_then(|p| p.csrf), Some(csrf));
    assert!(
        shared.session(&id).await.expect("read").is_none(),
        "the cookie value is not a key of the table"
    );
    assert!(two.get("not-a-session").await.is_none());

    two.remove(&id).await;
    assert!(one.get(&id).await.is_none(), "signed out everywhere");

    // Expired but not yet removed by TTL.
    let hash = timepost_web::auth::sha256_hex("old-cookie");
    shared
        .put_session(
            &hash,
            &StoredSession {
                name: "kim".into(),
                role: "admin".into(),
                named: true,
                csrf: "c".into(),
                expires_at: Utc::now() - chrono::Duration::seconds(5),
            },
        )
        .await
        .expect("put");
    assert!(shared.session(&hash).await.expect("read").is_some());
    assert!(one.get("old-cookie").await.is_none(), "expired");
}

/// What a period read must list, in its order: the port's definition
/// (`PeriodCursor::touches`; worked in the period by (work date, key),
/// then the rest by key) applied to every state.
fn period_reference(all: &[EntryState], from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut v: Vec<&EntryState> = all
        .iter()
        .filter(|s| PeriodCursor::touches(s, from, to))
        .collect();
    v.sort_by_key(|s| PeriodCursor::of(s, from, to).order());
    v.iter().map(|s| s.entry.key.to_string()).collect()
}

async fn period_walk(s: &DynamoStore, from: NaiveDate, to: NaiveDate, size: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<PeriodCursor> = None;
    loop {
        let page = s
            .by_work_dates(from, to, after.as_ref(), size)
            .await
            .expect("period page");
        assert!(page.len() <= size);
        after = PeriodCursor::after(&page, from, to);
        out.extend(page.iter().map(|st| st.entry.key.to_string()));
        if page.len() < size {
            return out;
        }
    }
}

/// Period reads on DynamoDB go over the work-date index and list what the
/// port's definition lists over every state, in its order, for every page
/// size: the sandbox demo's entries, copies a year back, one re-dated to
/// another month after posting (its lines stay dated in March) and one
/// purged. A table holding states written before the index refuses period
/// reads, naming the command, until `rebuild_key_index` gives them their
/// items.
#[tokio::test]
async fn period_reads_over_the_work_date_index_equal_the_definition() {
    let Some(s) = store().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    timepost::demo::run(dir.path()).await.expect("demo");
    let demo = timepost::local::SqliteStore::open(&dir.path().join("timepost.sqlite"))
        .expect("demo store");
    let states = demo.all().await.expect("all");
    for st in &states {
        let mut copy = st.clone();
        copy.revision = 0;
        s.put(&copy).await.expect("put");
        let mut old = copy.clone();
        old.entry.key = EntryKey::new(
            st.entry.key.source,
            &st.entry.key.workspace,
            format!("old-{}", st.entry.key.id),
        );
        old.entry.work_date = st.entry.work_date - chrono::Duration::days(365);
        for l in &mut old.posted_lines {
            l.txn_date = old.entry.work_date;
        }
        s.put(&old).await.expect("old copy");
    }
    let posted: Vec<&EntryState> = states
        .iter()
        .filter(|st| st.status() == Status::Posted && !st.posted_lines.is_empty())
        .collect();
    assert!(posted.len() >= 2);
    let mut moved = s
        .get(&posted[0].entry.key)
        .await
        .expect("get")
        .expect("moved");
    moved.entry.work_date = NaiveDate::from_ymd_opt(2026, 4, 15).expect("date");
    s.put(&moved).await.expect("re-dated");
    let gone = posted[1].entry.key.clone();
    use timepost::archive::retention::PurgeStore;
    assert_eq!(
        s.purge_entries(std::slice::from_ref(&gone))
            .await
            .expect("purge"),
        1
    );

    let all = s.all().await.expect("all");
    let d = |x: &str| x.parse::<NaiveDate>().expect("date");
    for (from, to) in [
        (d("2026-03-01"), d("2026-03-31")),
        (d("2026-03-02"), d("2026-03-08")),
        (d("2026-04-01"), d("2026-04-30")),
        (d("2025-02-15"), d("2026-03-10")),
        (d("2024-01-01"), d("2024-12-31")),
    ] {
        let want = period_reference(&all, from, to);
        for size in [1, 4, 500] {
            assert_eq!(
                period_walk(&s, from, to, size).await,
                want,
                "{from}..{to}, pages of {size}"
            );
        }
    }
    let march = period_walk(&s, d("2026-03-01"), d("2026-03-31"), 500).await;
    assert!(
        march.contains(&moved.entry.key.to_string()),
        "its lines are dated in March"
    );
    assert!(!march.contains(&gone.to_string()));

    // States from before the index: take one state's items away and the
    // marker with them, as an older timepost left the table.
    let config = sdk_config().await.expect("moto");
    let client = aws_sdk_dynamodb::Client::new(&config);
    let attr = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    let victim = &all[0];
    let sk = format!("{}#{}", victim.entry.work_date, victim.entry.key);
    let month = &sk[..7];
    for (pk, sk) in [
        (format!("wdate#{month}"), sk.clone()),
        ("meta".to_string(), "period-index".to_string()),
    ] {
        client
            .delete_item()
            .table_name(s.table_name())
            .key("pk", attr(&pk))
            .key("sk", attr(&sk))
            .send()
            .await
            .expect("delete");
    }
    client
        .update_item()
        .table_name(s.table_name())
        .key(
            "pk",
            attr(&format!(
                "entry#{}",
                victim
                    .entry
                    .key
                    .to_string()
                    .replace('%', "%25")
                    .replace('#', "%23")
            )),
        )
        .key("sk", attr("state"))
        .update_expression("REMOVE pkeys")
        .send()
        .await
        .expect("forget pkeys");
    let fresh = DynamoStore::new(client.clone(), s.table_name());
    let from = victim.entry.work_date;
    let err = fresh
        .by_work_dates(from, from, None, 10)
        .await
        .expect_err("refused before the rebuild");
    assert!(err.to_string().contains("rebuild-key-index"), "{err}");
    let r = fresh.rebuild_key_index().await.expect("rebuild");
    assert!(r.differed >= 1, "{r:?}");
    let after = period_walk(&fresh, from, from, 500).await;
    assert!(after.contains(&victim.entry.key.to_string()), "{after:?}");
    assert_eq!(after, period_reference(&all, from, from));
}
