//! Counts the AWS requests timepost makes per entry, end to end, and turns
//! them into a cost per million entries: signed Toggl deliveries → the
//! webhook function's router → SQS → the sync function's handler in
//! batches of 10 → the sandbox ledger, with a request-counting interceptor
//! on every SDK client. Runs against whatever `AWS_ENDPOINT_URL` names
//! (moto server; see `scripts/measure-functions.sh`).
//!
//! Usage: aws-costs [--entries 500] [--users 25]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use lambda_http::tower::ServiceExt;
use timepost::aws::{AwsClients, AwsStack, SecretsManagerStore};
use timepost::ports::{MappingStore, Secrets};

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// Counts each request the SDK sends, by service and operation.
#[derive(Debug, Clone)]
struct Counting {
    service: &'static str,
    counts: Counts,
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let req = context.request();
        let op = match req.headers().get("x-amz-target") {
            Some(t) => t.rsplit('.').next().unwrap_or(t).to_string(),
            None => req.method().to_string(),
        };
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{} {op}", self.service))
            .or_default() += 1;
        Ok(())
    }
}

fn clients(sdk: &aws_config::SdkConfig, counts: &Counts) -> AwsClients {
    let c = |service| Counting {
        service,
        counts: counts.clone(),
    };
    AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(c("dynamodb"))
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk)
                .interceptor(c("sqs"))
                .build(),
        ),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(true)
                .interceptor(c("s3"))
                .build(),
        ),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(sdk)
                .interceptor(c("secretsmanager"))
                .build(),
        ),
    }
}

const SECRET: &str = "cost-secret";

/// API Gateway's v2 event for a signed Toggl delivery of entry `id`.
fn delivery(id: u64, user: u64) -> String {
    let at = "2026-03-03T18:00:05Z";
    let body = serde_json::json!({
        "event_id": id, "created_at": at, "creator_id": 7, "subscription_id": 42, "timestamp": at,
        "metadata": {"action": "created", "model": "time_entry", "event_user_id": user.to_string(),
                     "workspace_id": "555", "time_entry_id": id.to_string(), "path": "/time_entries",
                     "request_type": "POST"},
        "payload": {"id": id, "workspace_id": 555, "user_id": user, "project_id": 9001, "task_id": null,
                    "billable": false, "start": "2026-03-03T17:00:00Z", "stop": "2026-03-03T18:00:00Z",
                    "duration": 3600, "description": "cost", "tags": [], "tag_ids": [], "at": at,
                    "server_deleted_at": null, "duronly": false}
    })
    .to_string();
    let sig = timepost::sources::signature::sign_toggl(body.as_bytes(), SECRET.as_bytes());
    serde_json::json!({
        "version": "2.0", "routeKey": "POST /webhooks/toggl", "rawPath": "/webhooks/toggl",
        "rawQueryString": "", "headers": {"content-type": "application/json", "x-webhook-signature-256": sig},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "x", "domainPrefix": "x",
            "requestId": format!("r{id}"), "routeKey": "POST /webhooks/toggl", "stage": "$default",
            "time": "03/Mar/2026:18:00:05 +0000", "timeEpoch": 1772560805000u64,
            "http": {"method": "POST", "path": "/webhooks/toggl", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "Toggl"}},
        "body": body, "isBase64Encoded": false
    })
    .to_string()
}

fn arg(name: &str, default: u64) -> anyhow::Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    Ok(match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?
            .parse()?,
        None => default,
    })
}

fn snapshot(counts: &Counts) -> BTreeMap<String, u64> {
    counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let entries = arg("--entries", 500)?;
    let users = arg("--users", 25)?.max(1);
    let sdk = timepost::aws::sdk_defaults().load().await;
    let name = format!("cost-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let settings = timepost_tests::aws_world::provision(
        &sdk,
        &name,
        &timepost_tests::aws_world::config_without_approval(),
    )
    .await?;
    // Map the delivering users so every entry posts.
    let extra: String = (0..users)
        .map(|u| format!("employee,{},E-100,\n", 2000 + u))
        .chain(["project,9001,C-ACME,\n".to_string()])
        .collect();
    let counts: Counts = Arc::default();
    let stack = AwsStack::connect_with(clients(&sdk, &counts), settings, None).await?;
    let text = format!("{}{extra}", timepost::demo::MAPPINGS);
    let rows = timepost::mapping::csv_io::read(text.as_bytes())?;
    let changes = timepost::mapping::diff(
        &stack.store.snapshot().await?,
        &rows,
        false,
        "cost",
        chrono::Utc::now(),
        "cost model",
    );
    stack.store.apply(changes).await?;
    SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        &stack.settings.secret_prefix,
        std::time::Duration::from_secs(300),
    )
    .put(timepost_web::secret_names::TOGGL, SECRET)
    .await?;

    // Webhooks: one invocation per delivery, on one warm instance.
    // Built as the function builds it at init (the rules file from the
    // bucket, the four ports the webhook routes use).
    let (webhook, _) =
        timepost_fn_webhook::connect_with(clients(&sdk, &counts), stack.settings.clone(), None)
            .await?;
    let setup = snapshot(&counts);
    let app = timepost_fn_webhook::app(webhook);
    let t = Instant::now();
    for i in 0..entries {
        let req = lambda_http::request::from_str(&delivery(100_000 + i, 2000 + i % users))?;
        let res = app.clone().oneshot(req).await?;
        anyhow::ensure!(
            res.status().as_u16() == 202,
            "delivery {i}: {}",
            res.status()
        );
    }
    let webhook_time = t.elapsed();
    let after_webhooks = snapshot(&counts);

    // Sync: batches of 10 as the event source hands them over.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut invocations = 0u64;
    let mut settled = 0u64;
    let t = Instant::now();
    let mut sync_busy = std::time::Duration::ZERO;
    while settled < entries {
        let event =
            timepost_tests::aws_world::receive_event(&sqs, &stack.settings.queue_url).await?;
        if event.records.is_empty() {
            anyhow::ensure!(
                t.elapsed().as_secs() < 120,
                "queue drained early: {settled}/{entries}"
            );
            continue;
        }
        let n = event.records.len() as u64;
        let started = Instant::now();
        let (response, summary) = timepost_fn_sync::handle(&stack, event, None).await;
        sync_busy += started.elapsed();
        anyhow::ensure!(response.batch_item_failures.is_empty(), "{summary:?}");
        invocations += 1;
        settled += n;
    }
    let end = snapshot(&counts);

    let diff = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
        b.iter()
            .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect::<BTreeMap<_, _>>()
    };
    let n = entries as f64;
    println!("entries: {entries} (users: {users}); sync invocations: {invocations}");
    println!("\nwebhook function, per entry (after its first call):");
    for (k, v) in diff(&setup, &after_webhooks) {
        println!("  {k:<40} {:>8.3}", v as f64 / n);
    }
    println!("\nsync function, per entry:");
    for (k, v) in diff(&after_webhooks, &end) {
        println!("  {k:<40} {:>8.3}", v as f64 / n);
    }
    println!(
        "\nlocal time (moto on loopback, not Lambda): webhook {:.2} ms/entry, sync {:.2} ms/entry",
        webhook_time.as_secs_f64() * 1e3 / n,
        sync_busy.as_secs_f64() * 1e3 / n
    );
    Ok(())
}
