//! The cross-instance rate limit: several independent sync workers (each
//! its own store, `Engine`, QBO ledger and `RateLimiter`, as separate Lambda
//! instances are) post to ONE fake QBO company whose limits are compressed
//! tenfold. Sharing a DynamoDB pacer (on moto) they stay under the
//! company's allowance: no 429. Without it, the same workers are each
//! within their own limit and together over it: the fake answers 429s,
//! which shows the test can fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use timepost::aws::DynamoPacer;
use timepost::engine::Engine;
use timepost::ledger::cloud::{Connect, VendorLimits};
use timepost::net::ratelimit::SharedPacer;
use timepost::ports::{EntryStore, QueueMessage};
use timepost::state::Status;
use timepost_tests::kit::E;
use timepost_tests::qbo_fake::{QboFakeLimits, QboServer};
use timepost_tests::{fast_qbo_limits, moto, qbo_config, sandbox_chart, sandbox_stack};

const WORKERS: usize = 4;
/// More calls in all than the company allows in one (compressed) minute
/// (40), so unshared pacing must exceed it.
const PER_WORKER: usize = 15;

/// The stack's table as the SAM template declares its key (the pacer
/// only uses `pk`/`sk`).
async fn table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = moto::unique("timepost");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key")
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create table");
    name
}

struct Figures {
    posted: usize,
    requests: u64,
    throttled: u64,
    calls_per_minute: f64,
    ceiling: f64,
}

/// Run the workers against a fresh fake company; `pacer` shared or not.
async fn run(pacer: Option<Arc<dyn SharedPacer>>) -> Figures {
    let minute = Duration::from_millis(fast_qbo_limits().minute_ms);
    let server = QboServer::start(
        "9130",
        sandbox_chart(),
        QboFakeLimits {
            minute,
            ..Default::default()
        },
        "rt-initial",
    )
    .await;
    let mut dirs = Vec::new();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = sandbox_stack(dir.path(), Some(&server)).await;
        let ledger = qbo_config(&server, 10, fast_qbo_limits())
            .connect_paced(stack.secrets.clone(), pacer.clone())
            .expect("connect");
        let store = Arc::new(stack.store.clone());
        let engine = Arc::new(Engine::new(
            store.clone(),
            store.clone(),
            store.clone(),
            Arc::new(ledger),
            stack.config.rules.clone(),
            stack.config.worker.clone(),
        ));
        // One hour a day on distinct days: no overtime re-splits, one
        // posting per entry.
        let msgs: Vec<QueueMessage> = (0..PER_WORKER)
            .map(|i| {
                let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("date")
                    + chrono::Duration::days(i as i64);
                QueueMessage::Entry {
                    entry: Box::new(
                        E::new(
                            &format!("w{w}-{i}"),
                            "u-ann",
                            &day.to_string(),
                            "09:00",
                            "10:00",
                        )
                        .build(),
                    ),
                    received_at: chrono::Utc::now(),
                }
            })
            .collect();
        dirs.push(dir);
        workers.push((engine, store, msgs));
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (w, (engine, store, msgs)) in workers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let batch = format!("b-worker-{w}");
            for m in &msgs {
                // A rate-limited attempt is retried by the engine; one that
                // still fails would be redelivered by SQS: we count it.
                let _ = engine.handle(m, &batch).await;
            }
            let mut posted = 0;
            for s in store.all().await.expect("all") {
                if s.status() == Status::Posted {
                    posted += 1;
                }
            }
            posted
        }));
    }
    let mut posted = 0;
    for t in tasks {
        posted += t.await.expect("worker");
    }
    let elapsed = t0.elapsed();
    let c = server.counters();
    let ceiling = fast_qbo_limits().limits().calls_per_minute();
    Figures {
        posted,
        requests: c.batch_calls + c.throttled,
        throttled: c.throttled,
        calls_per_minute: c.batch_calls as f64 * minute.as_secs_f64() / elapsed.as_secs_f64(),
        ceiling,
    }
}

fn print(label: &str, f: &Figures) {
    println!(
        "{label}: {WORKERS} workers, {} of {} entries posted, {} requests, {} answered 429, \
         {:.1} accepted calls per (compressed) minute vs ceiling {:.0}",
        f.posted,
        WORKERS * PER_WORKER,
        f.requests,
        f.throttled,
        f.calls_per_minute,
        f.ceiling
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_dynamodb_pacer_keeps_parallel_workers_under_one_company_limit() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let pacer: Arc<dyn SharedPacer> =
        Arc::new(DynamoPacer::new(client.clone(), table(&client).await));

    let shared = run(Some(pacer)).await;
    print("shared pacer", &shared);
    let alone = run(None).await;
    print("no shared pacer", &alone);

    assert_eq!(shared.throttled, 0, "no 429 with the shared pacer");
    assert_eq!(shared.posted, WORKERS * PER_WORKER, "everything posted");
    assert!(
        alone.throttled > 0,
        "without sharing, the workers together exceed the company's limit"
    );
}

#[tokio::test]
async fn reservations_are_spaced_across_pacers_and_pauses_are_shared() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let t = table(&client).await;
    // Two instances of the pacer (two Lambda instances), one company.
    let a = DynamoPacer::new(client.clone(), &t);
    let b = DynamoPacer::new(client, &t);
    let spacing = Duration::from_secs(10);
    let first = a.reserve("qbo:1", spacing).await.expect("reserve");
    assert_eq!(first, Duration::ZERO, "an idle company starts at once");
    // The next reservation, from the other instance, waits about one
    // spacing (less the time the first round trip took).
    let second = b.reserve("qbo:1", spacing).await.expect("reserve");
    assert!(second > Duration::from_secs(9), "{second:?}");
    let third = a.reserve("qbo:1", spacing).await.expect("reserve");
    assert!(third > Duration::from_secs(19), "{third:?}");
    // Another company is independent.
    assert_eq!(
        b.reserve("qbo:2", spacing).await.expect("reserve"),
        Duration::ZERO
    );
    // A pause published by one instance holds the other.
    a.pause("qbo:2", Duration::from_secs(100))
        .await
        .expect("pause");
    let held = b.reserve("qbo:2", spacing).await.expect("reserve");
    assert!(held > Duration::from_secs(90), "{held:?}");
    // A shorter pause does not shorten it.
    b.pause("qbo:2", Duration::from_secs(1))
        .await
        .expect("pause");
    let still = a.reserve("qbo:2", Duration::ZERO).await.expect("reserve");
    assert!(still > Duration::from_secs(80), "{still:?}");
}
