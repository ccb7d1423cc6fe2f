//! The DynamoDB adapter's maintained aggregates against moto server,
//! through the real SDK client: after a random sequence of writes
//! (creates, edits, re-dates across weeks, months and years, status
//! changes, approvals, rollbacks, purges, and one write whose row changes
//! pass the 100-action transaction limit) the stored rows and KPI samples
//! equal `aggregates::fold` over every state, the listing pages through
//! every entry, and the rebuild finds nothing to fix; and the dashboard
//! (`GET /console` through the router, entries on DynamoDB) makes the same
//! number of DynamoDB read requests over 30 and over 300 entries, counted
//! by an SDK interceptor.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use timepost::aggregates::{self, Grain};
use timepost::archive::retention::PurgeStore;
use timepost::aws::DynamoStore;
use timepost::exceptions::{Exception, ExceptionCode};
use timepost::ledger::{Party, PostingLine, RecordRef};
use timepost::model::*;
use timepost::ports::EntryStore;
use timepost::state::{EntryState, Status};
use timepost_tests::dynamo_count::{counting_client, RequestCounter};
use timepost_tests::moto::{sdk_config, unique};

/// A fresh table on moto with a counting client, or `None` (skipped)
/// when no moto runs (a failure under CI=true: `sdk_config`).
async fn store() -> Option<(DynamoStore, RequestCounter)> {
    let config = sdk_config().await?;
    let counter = RequestCounter::default();
    let store = DynamoStore::new(counting_client(&config, &counter), unique("agg"));
    store.create_table().await.expect("create table");
    Some((store, counter))
}

/// xorshift: the same sequence every run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn t0() -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse().expect("instant")
}

fn money(cents: i64, eur: bool) -> Money {
    let c: Currency = if eur { "EUR" } else { "USD" }
        .parse()
        .unwrap_or_else(|e: String| panic!("{e}"));
    Money::new(Decimal::new(cents, 2), c)
}

fn entry(id: u64, day: i64, worker: u64, project: u64, minutes: i64) -> NormalisedEntry {
    let base = NaiveDate::from_ymd_opt(2026, 1, 15).expect("date");
    NormalisedEntry {
        key: EntryKey::new(Source::Csv, "w#1", id.to_string()),
        version: Version {
            updated_at: t0(),
            content_hash: format!("h{id}-{day}-{minutes}"),
        },
        worker: Worker {
            tracker_user_id: format!("u{worker}"),
            email: None,
            name: (worker != 3).then(|| format!("Worker {worker}")),
            kind: None,
            form_1099: None,
        },
        time_zone: chrono_tz::UTC,
        work_date: base + chrono::Duration::days(day),
        start: None,
        end: None,
        duration_secs: minutes * 60,
        project: (project != 0)
            .then(|| Ref::new(format!("p{project}"), Some(format!("P#{project}")))),
        client: None,
        task: None,
        tags: vec![],
        billable: project % 2 == 1,
        rate: Some(money(12_550 + minutes, worker == 1)),
        notes: String::new(),
        approval: ApprovalStatus::Approved,
        attachments: vec![],
        origin: Origin::Import,
        deleted: false,
        already_rounded: false,
    }
}

/// `parts` posted lines, the i-th dated `spread × i` days after the work
/// date (0: all on the work date, as the engine posts them).
fn lines(s: &EntryState, parts: i64, spread: i64) -> Vec<PostingLine> {
    let e = &s.entry;
    (0..parts)
        .map(|i| PostingLine {
            tier: if i == 0 { "regular" } else { "overtime" }.into(),
            party: if e.worker.tracker_user_id == "u2" {
                Party::Vendor {
                    id: "V-2".into(),
                    form_1099: None,
                }
            } else {
                Party::Employee {
                    id: format!("E-{}", e.worker.tracker_user_id),
                }
            },
            txn_date: e.work_date + chrono::Duration::days(i * spread),
            minutes: e.duration_secs / 60 / parts,
            customer: None,
            service_item: None,
            class: None,
            department: None,
            payroll_item: None,
            account: "4000".into(),
            billable: e.billable,
            hourly_rate: e.rate.clone(),
            original_rate: (i == 1).then(|| money(9_999, true)),
            fx_rate: None,
            fx_date: None,
            description: String::new(),
        })
        .collect()
}

fn unmapped() -> Exception {
    Exception::missing(
        ExceptionCode::UnmappedProject,
        "no project",
        "projects",
        "p1",
    )
}

/// The next state of an entry under a random operation (None: purge it).
fn next(cur: Option<&EntryState>, id: u64, rng: &mut Rng, step: i64) -> Option<EntryState> {
    let now = t0() + chrono::Duration::minutes(step * 7);
    let Some(cur) = cur else {
        let e = entry(
            id,
            rng.below(800) as i64 - 400,
            rng.below(4),
            rng.below(4),
            30 + rng.below(900) as i64,
        );
        let mut s = EntryState::new(e, now);
        if rng.below(2) == 0 {
            s.set_status(Status::AwaitingApproval, now);
        }
        return Some(s);
    };
    let mut s = cur.clone();
    match rng.below(9) {
        // An edit: new hours, worker, project.
        0 => {
            let d = s.entry.work_date;
            s.entry = entry(
                id,
                0,
                rng.below(4),
                rng.below(4),
                30 + rng.below(900) as i64,
            );
            s.entry.work_date = d;
        }
        // Re-dated across weeks, months, years.
        1 => {
            let days = rng.below(800) as i64 - 400;
            s.entry.work_date += chrono::Duration::days(days);
            s.posted_lines
                .iter_mut()
                .for_each(|l| l.txn_date += chrono::Duration::days(days));
        }
        2 | 3 => {
            let st = Status::ALL[rng.below(Status::ALL.len() as u64) as usize];
            s.reason = None;
            match st {
                Status::Posted => {
                    s.posted_lines = lines(&s, 1 + rng.below(3) as i64, rng.below(2) as i64);
                    s.records = vec![RecordRef {
                        id: "r".into(),
                        sync_token: "0".into(),
                        tier: "regular".into(),
                    }];
                }
                Status::Held | Status::Exception => s.reason = Some(unmapped()),
                _ => s.posted_lines.clear(),
            }
            s.set_status(st, now);
        }
        // Approved.
        4 => {
            if s.status() == Status::AwaitingApproval {
                s.approved_hash = Some(s.entry.version.content_hash.clone());
                s.posted_lines = lines(&s, 1, 0);
                s.set_status(Status::Posted, now);
            }
        }
        // Rolled back.
        5 => {
            s.records.clear();
            s.posted_lines.clear();
            s.set_status(Status::AwaitingApproval, now);
        }
        // A mapping change: held, or posted.
        6 => {
            if rng.below(2) == 0 {
                s.reason = Some(unmapped());
                s.set_status(Status::Held, now);
            } else {
                s.reason = None;
                s.posted_lines = lines(&s, 2, 0);
                s.set_status(Status::Posted, now);
            }
        }
        // Nothing the aggregates see (a new updated_at only).
        7 => s.updated_at = now,
        _ => return None,
    }
    Some(s)
}

async fn check(store: &DynamoStore) {
    let all = store.all().await.expect("all");
    let folded = aggregates::fold(&all);
    for &g in Grain::ALL {
        let kept: aggregates::Aggregates = store
            .aggregates(g, None, None)
            .await
            .expect("rows")
            .into_iter()
            .collect();
        let want: aggregates::Aggregates = aggregates::select(&folded, g, None, None)
            .into_iter()
            .collect();
        assert_eq!(aggregates::differences(&kept, &want), 0, "{g:?}");
        // A bounded range reads the same rows as the fold selects.
        let (from, to) = (
            NaiveDate::from_ymd_opt(2025, 11, 20),
            NaiveDate::from_ymd_opt(2026, 2, 10),
        );
        let kept: aggregates::Aggregates = store
            .aggregates(g, from, to)
            .await
            .expect("rows")
            .into_iter()
            .collect();
        let want: aggregates::Aggregates = aggregates::select(&folded, g, from, to)
            .into_iter()
            .collect();
        assert_eq!(aggregates::differences(&kept, &want), 0, "{g:?} range");
    }
    let key = |x: &aggregates::Sample| {
        (
            x.day,
            x.resolve_minutes.map(f64::to_bits),
            x.latency_minutes.map(f64::to_bits),
        )
    };
    let mut kept: Vec<_> = store
        .kpi_samples(None, None)
        .await
        .expect("samples")
        .iter()
        .map(key)
        .collect();
    let mut want: Vec<_> = all
        .iter()
        .filter_map(aggregates::sample)
        .map(|x| key(&x))
        .collect();
    kept.sort();
    want.sort();
    assert_eq!(kept, want);
    assert_eq!(
        store.newest_work_date().await.expect("newest"),
        all.iter().map(|s| s.entry.work_date).max()
    );
    let mut paged = Vec::new();
    let mut after: Option<EntryKey> = None;
    loop {
        let page = store.page(after.as_ref(), 5).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.entry.key.clone());
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let r = store.rebuild_aggregates().await.expect("rebuild");
    assert_eq!(
        (r.entries, r.rows, r.differed, r.samples_differed),
        (all.len(), folded.len(), 0, 0)
    );
}

#[tokio::test]
async fn maintained_rows_equal_a_fold_over_every_state_after_random_writes() {
    let Some((store, _)) = store().await else {
        return;
    };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for step in 0..80i64 {
        let id = rng.below(14);
        let k = EntryKey::new(Source::Csv, "w#1", id.to_string());
        let cur = store.get(&k).await.expect("get");
        match next(cur.as_ref(), id, &mut rng, step) {
            Some(s) => {
                store.put(&s).await.expect("put");
            }
            None => {
                store.purge_entries(&[k]).await.expect("purge");
            }
        }
        if step == 39 {
            check(&store).await;
        }
    }
    // One write whose row changes pass 100 actions: 30 lines on 30 days
    // are 4 × 30 line rows, then moved by a re-date.
    let mut s = EntryState::new(entry(99, 3, 1, 1, 600), t0());
    s.posted_lines = lines(&s, 30, 1);
    s.set_status(Status::Posted, t0());
    let rev = store.put(&s).await.expect("put wide");
    eprintln!("wide write stored");
    let mut s = store.get(&s.entry.key).await.expect("get").expect("stored");
    assert_eq!(s.revision, rev);
    s.entry.work_date += chrono::Duration::days(40);
    s.posted_lines
        .iter_mut()
        .for_each(|l| l.txn_date += chrono::Duration::days(40));
    store.put(&s).await.expect("re-date wide");
    check(&store).await;
}

#[tokio::test]
async fn a_rebuild_repairs_rows_and_samples_that_went_wrong() {
    let Some((store, _)) = store().await else {
        return;
    };
    let mut s = EntryState::new(entry(1, 0, 0, 1, 120), t0());
    s.set_status(Status::Held, t0());
    s.reason = Some(unmapped());
    store.put(&s).await.expect("put");
    let mut s = store.get(&s.entry.key).await.expect("get").expect("stored");
    s.reason = None;
    s.posted_lines = lines(&s, 1, 0);
    s.set_status(Status::Posted, t0() + chrono::Duration::minutes(30));
    store.put(&s).await.expect("put");
    // Tamper: lose every month row and every sample (as a table written
    // before the aggregates existed would have none).
    let config = sdk_config().await.expect("moto");
    let raw = aws_sdk_dynamodb::Client::new(&config);
    let scan = raw
        .scan()
        .table_name(store.table_name())
        .send()
        .await
        .expect("scan");
    let mut removed = 0;
    for item in scan.items() {
        let pk = match item.get("pk") {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(p)) => p.clone(),
            _ => continue,
        };
        if pk.starts_with("agg#month#") || pk.starts_with("kpi#") {
            let mut k = std::collections::HashMap::new();
            k.insert("pk".to_string(), item["pk"].clone());
            k.insert("sk".to_string(), item["sk"].clone());
            raw.delete_item()
                .table_name(store.table_name())
                .set_key(Some(k))
                .send()
                .await
                .expect("delete");
            removed += 1;
        }
    }
    assert!(removed >= 3, "{removed}");
    let r = store.rebuild_aggregates().await.expect("rebuild");
    assert!(r.differed >= 2 && r.samples_differed == 1, "{r:?}");
    let r = store.rebuild_aggregates().await.expect("rebuild");
    assert_eq!((r.differed, r.samples_differed), (0, 0));
    check(&store).await;
}

/// One of `n` entries of a firm: four workers, three projects, 30 dates
/// over a year (the same span for any `n`), every tenth held for a missing mapping, every seventh
/// awaiting approval, the rest posted.
fn firm_entry(i: u64) -> EntryState {
    let mut s = EntryState::new(
        entry(
            1000 + i,
            (i % 30) as i64 * 12 - 200,
            i % 4,
            1 + i % 3,
            60 + (i % 8) as i64 * 30,
        ),
        t0(),
    );
    if i.is_multiple_of(10) {
        s.reason = Some(unmapped());
        s.set_status(Status::Held, t0());
    } else if i.is_multiple_of(7) {
        s.set_status(Status::AwaitingApproval, t0());
    } else {
        s.posted_lines = lines(&s, 1 + (i % 2) as i64, 0);
        s.set_status(
            Status::Posted,
            t0() + chrono::Duration::minutes(5 + (i % 50) as i64),
        );
    }
    s
}

#[tokio::test]
async fn a_dashboard_view_reads_as_many_requests_over_300_entries_as_over_30() {
    let Some((dynamo, counter)) = store().await else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "aggregates-test-admin-token-0123456789abcdef";
    let secrets = timepost_tests::kit::admin_secrets(dir.path(), token);
    let mut config =
        timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    config.store.path = dir.path().join("local.sqlite");
    config.store.secrets_file = secrets;
    config.store.archive_dir = dir.path().join("archive");
    let stack = timepost::stack::LocalStack::open(config).expect("stack");
    let app = timepost_web::router(dynamo_console(&stack, Arc::new(dynamo.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let views = [
        "/console",
        "/console?from=2026-01-01&to=2026-01-31",
        "/console/hours-by-project.csv",
    ];
    let mut reads = Vec::new();
    for n in [30u64, 300] {
        let have = if n == 30 { 0 } else { 30 };
        for i in have..n {
            dynamo.put(&firm_entry(i)).await.expect("put");
        }
        let mut per_view = Vec::new();
        for path in views {
            let before = counter.snapshot();
            let resp = client
                .get(format!("http://{addr}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let body = resp.text().await.expect("body");
            let used = counter.snapshot() - before;
            assert_eq!(used.writes, 0, "{path} wrote");
            if path == "/console" {
                // The status tiles count every entry: the rows hold them.
                let posted = (0..n).filter(|i| i % 10 != 0 && i % 7 != 0).count();
                assert!(
                    body.contains(&posted.to_string()),
                    "{path}: {posted} posted"
                );
            }
            per_view.push(used.reads);
        }
        eprintln!("{n} entries: read requests per view {per_view:?}");
        reads.push(per_view);
    }
    assert_eq!(
        reads[0], reads[1],
        "read requests per view at 30 and 300 entries"
    );
    assert!(reads[0].iter().all(|r| *r > 0 && *r < 40), "{reads:?}");
}

/// The console's state with the entries on DynamoDB (the rest local).
fn dynamo_console(
    stack: &timepost::stack::LocalStack,
    entries: Arc<dyn EntryStore>,
) -> timepost_web::AppState {
    let store = Arc::new(stack.store.clone());
    timepost_web::AppState::new(timepost_web::Inner {
        engine: stack.engine.clone(),
        queue: store.clone(),
        entries,
        mappings: store.clone(),
        secrets: stack.secrets.clone(),
        ledger: stack.ledger.clone(),
        intake: stack.config.intake.clone(),
        audit: store,
        users: stack.config.console.users.clone(),
        sessions: timepost_web::auth::Sessions::new(Duration::from_secs(600)),
    })
}
