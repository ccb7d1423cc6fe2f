//! The AWS path end to end, in one process, against moto server: a Toggl
//! webhook as an API Gateway v2 event → the webhook function's router →
//! SQS → the sync function's handler with the SQS event built from the
//! received messages → the sandbox ledger → entry state in DynamoDB. And the
//! unmapped path: → DLQ with the reason → fix the mapping → per-message
//! redrive → posted exactly once.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::tower::ServiceExt;
use serde_json::json;
use timepost::aws::{AwsSettings, AwsStack, S3Archive, SecretsManagerStore};
use timepost::model::EntryKey;
use timepost::ports::{Archive, EntryStore, Journal, MappingStore, Queue, Secrets};
use timepost::state::Status;
use timepost_tests::moto;

const TOGGL_SECRET: &str = "e2e-toggl-secret";

struct World {
    stack: AwsStack,
    sqs: aws_sdk_sqs::Client,
    sdk: aws_config::SdkConfig,
}

/// Create every resource the SAM template would, upload the sandbox rules
/// config (without manager approval), and connect the stack the way a
/// function does at init.
async fn world() -> Option<World> {
    let sdk = moto::sdk_config().await?;
    let name = moto::unique("e2e");
    let config = timepost_tests::aws_world::config_without_approval();
    let settings = timepost_tests::aws_world::provision(&sdk, &name, &config)
        .await
        .expect("provision");
    let secrets = SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        &settings.secret_prefix,
        Duration::from_secs(60),
    );
    secrets
        .put(timepost_web::secret_names::TOGGL, TOGGL_SECRET)
        .await
        .expect("secret");
    let stack = AwsStack::connect(&sdk, settings, None)
        .await
        .expect("stack from the uploaded config");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    Some(World { stack, sqs, sdk })
}

/// The sandbox mappings plus `extra` CSV rows, applied as one change set.
async fn import_mappings(stack: &AwsStack, extra: &str) {
    let text = format!("{}{extra}", timepost::demo::MAPPINGS);
    let rows = timepost::mapping::csv_io::read(text.as_bytes()).expect("mappings csv");
    let current = stack.store.snapshot().await.expect("snapshot");
    let changes =
        timepost::mapping::diff(&current, &rows, false, "e2e", chrono::Utc::now(), "test");
    stack.store.apply(changes).await.expect("apply");
}

/// A signed Toggl webhook for entry `id` by user 101 on project 9001, as
/// API Gateway (HTTP API, payload v2) hands it to the function.
fn toggl_event(id: u64) -> String {
    let at = "2026-03-03T18:00:05Z";
    let body = serde_json::to_string(&json!({
        "event_id": 1000 + id, "created_at": at, "creator_id": 7, "subscription_id": 42, "timestamp": at,
        "metadata": {"action": "created", "model": "time_entry", "event_user_id": "101", "workspace_id": "555",
                     "time_entry_id": id.to_string(), "path": "/time_entries", "request_type": "POST"},
        "payload": {"id": id, "workspace_id": 555, "user_id": 101, "project_id": 9001, "task_id": null,
                    "billable": false, "start": "2026-03-03T17:00:00Z", "stop": "2026-03-03T18:00:00Z",
                    "duration": 3600, "description": "Bookkeeping", "tags": [], "tag_ids": [],
                    "at": at, "server_deleted_at": null, "duronly": false}
    }))
    .expect("json");
    let sig = timepost::sources::signature::sign_toggl(body.as_bytes(), TOGGL_SECRET.as_bytes());
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/toggl",
        "rawPath": "/webhooks/toggl",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-webhook-signature-256": sig},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": format!("req-{id}"), "routeKey": "POST /webhooks/toggl",
            "stage": "$default", "time": "03/Mar/2026:18:00:05 +0000", "timeEpoch": 1772560805000u64,
            "http": {"method": "POST", "path": "/webhooks/toggl", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "Toggl-Webhooks"}
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// The webhook function's state on the world's stack, built as the function
/// builds it (its own four ports; the stack's rules).
async fn webhook_state(w: &World) -> timepost_web::WebhookState {
    let clients = timepost::aws::AwsClients::from_sdk(&w.sdk, w.stack.settings.s3_path_style);
    let config = Some(w.stack.config.clone());
    timepost_fn_webhook::connect_with(clients, w.stack.settings.clone(), config)
        .await
        .expect("webhook state")
        .0
}

/// POST the event to the webhook function's router; returns the status.
async fn deliver(w: &World, event: &str) -> u16 {
    let request = lambda_http::request::from_str(event).expect("API Gateway v2 event");
    let app = timepost_fn_webhook::app(webhook_state(w).await);
    let response = app.oneshot(request).await.expect("router");
    response.status().as_u16()
}

/// Receive what is on `queue_url` as Lambda's event source would hand it
/// to the sync function (a few receives, as moto may spread messages).
async fn sqs_event(w: &World, queue_url: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    for _ in 0..5 {
        let more = timepost_tests::aws_world::receive_event(&w.sqs, queue_url)
            .await
            .expect("receive");
        if more.records.is_empty() && !event.records.is_empty() {
            break;
        }
        event.records.extend(more.records);
    }
    event
}

/// Hand everything queued to the sync function; it must fail nothing.
async fn sync_queued(w: &World) -> timepost_fn_sync::Summary {
    let event = sqs_event(w, &w.stack.settings.queue_url).await;
    let (response, summary) = timepost_fn_sync::handle(&w.stack, event, None).await;
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
    summary
}

async fn state_of(w: &World, id: u64) -> timepost::state::EntryState {
    w.stack
        .store
        .get(&key(id))
        .await
        .expect("get")
        .expect("state")
}

async fn journal_len(w: &World, id: u64) -> usize {
    w.stack
        .store
        .by_entry(&key(id))
        .await
        .expect("journal")
        .len()
}

fn key(id: u64) -> EntryKey {
    format!("toggl:555:{id}").parse().expect("entry key")
}

#[tokio::test]
async fn webhook_to_sqs_to_sync_to_the_ledger_and_state_in_dynamodb() {
    let Some(w) = world().await else { return };
    import_mappings(&w.stack, "project,9001,C-ACME,\nemployee,101,E-100,\n").await;

    assert_eq!(deliver(&w, &toggl_event(7101)).await, 202);
    // A bad signature is refused and enqueues nothing.
    let forged = toggl_event(7102).replace("sha256=", "sha256=00");
    assert_eq!(deliver(&w, &forged).await, 401);
    // The function serves the webhooks and health only: the console and
    // the admin API are the admin function's (it does not link them).
    for (method, path, code) in [
        ("GET", "/healthz", 200),
        ("GET", "/console", 404),
        ("GET", "/api/entries", 404),
        ("GET", "/openapi.json", 404),
    ] {
        let event = toggl_event(7103)
            .replace("\"POST\"", &format!("\"{method}\""))
            .replace("/webhooks/toggl", path);
        assert_eq!(deliver(&w, &event).await, code, "{method} {path}");
    }

    let event = sqs_event(&w, &w.stack.settings.queue_url).await;
    assert_eq!(
        event.records.len(),
        1,
        "only the signed delivery was queued"
    );
    let (response, summary) = timepost_fn_sync::handle(&w.stack, event, None).await;
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
    assert_eq!(summary.done, 1);

    let state = state_of(&w, 7101).await;
    assert_eq!(state.status(), Status::Posted, "{state:?}");
    assert_eq!(state.records.len(), 1);
    assert_eq!(state.posted_minutes(), 60);
    assert_eq!(journal_len(&w, 7101).await, 1);
    assert_eq!(w.stack.queue.depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn unmapped_goes_to_the_dlq_with_its_reason_and_posts_once_after_fix_and_redrive() {
    let Some(w) = world().await else { return };
    // Toggl user 101 has no employee mapping: the sandbox blocks on that.
    assert_eq!(deliver(&w, &toggl_event(7201)).await, 202);
    let summary = sync_queued(&w).await;
    assert_eq!(summary.dead_lettered, 1);

    let state = state_of(&w, 7201).await;
    assert_eq!(state.status(), Status::Exception);
    let reason = state.reason.clone().expect("reason");
    assert_eq!(reason.code.as_str(), "UNMAPPED_EMPLOYEE");

    let parked = w.stack.queue.dead_letters(10).await.expect("dead letters");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].code.as_deref(), Some("UNMAPPED_EMPLOYEE"));
    assert!(!parked[0].reason.is_empty());

    // Finance adds the mapping, then redrives that one message.
    import_mappings(&w.stack, "project,9001,C-ACME,\nemployee,101,E-100,\n").await;
    w.stack.queue.redrive(&parked[0].id).await.expect("redrive");
    assert!(w
        .stack
        .queue
        .dead_letters(10)
        .await
        .expect("dlq")
        .is_empty());

    assert_eq!(sync_queued(&w).await.done, 1);

    let state = state_of(&w, 7201).await;
    assert_eq!(state.status(), Status::Posted, "{state:?}");
    assert_eq!(state.records.len(), 1);

    // The same delivery again (a tracker retry) posts nothing more.
    assert_eq!(deliver(&w, &toggl_event(7201)).await, 202);
    sync_queued(&w).await;
    let state = state_of(&w, 7201).await;
    assert_eq!(state.records.len(), 1);
    assert_eq!(journal_len(&w, 7201).await, 1);
}

#[tokio::test]
async fn a_malformed_queue_message_is_set_aside_not_lost() {
    let Some(w) = world().await else { return };
    w.sqs
        .send_message()
        .queue_url(&w.stack.settings.queue_url)
        .message_body("{\"type\":\"mystery\"}")
        .send()
        .await
        .expect("send");
    let summary = sync_queued(&w).await;
    assert_eq!(summary.dead_lettered, 1);
    // Not a dead letter the console could redrive, but kept, unread, with
    // its reason.
    assert!(w
        .stack
        .queue
        .dead_letters(10)
        .await
        .expect("dlq")
        .is_empty());
    let parked = w.stack.queue.parked(10).await.expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].code.as_deref(), Some("UNREADABLE_MESSAGE"));
    assert_eq!(parked[0].body, "{\"type\":\"mystery\"}");
}

#[tokio::test]
async fn a_stack_without_its_config_says_where_to_upload_it() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let name = moto::unique("noconf");
    let archive = S3Archive::new(S3Archive::client(&sdk, true), &name);
    archive.create_bucket().await.expect("bucket");
    let settings = AwsSettings {
        table: name.clone(),
        queue_url: "q".into(),
        dlq_url: "d".into(),
        bucket: name.clone(),
        archive_bucket: name.clone(),
        secret_prefix: "p/".into(),
        s3_path_style: true,
        config_key: "config/timepost.toml".into(),
        ledger: None,
    };
    let err = AwsStack::connect(&sdk, settings, None)
        .await
        .err()
        .expect("no config uploaded");
    let text = err.to_string();
    assert!(
        text.contains(&format!("s3://{name}/config/timepost.toml")),
        "{text}"
    );
}

/// An API Gateway v2 event for the admin function, with the claims the JWT
/// authorizer would have verified.
fn admin_event(method: &str, path: &str, claims: serde_json::Value) -> String {
    json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": "admin-req", "routeKey": format!("{method} {path}"),
            "stage": "$default", "time": "03/Mar/2026:18:00:05 +0000", "timeEpoch": 1772560805000u64,
            "authorizer": {"jwt": {"claims": claims, "scopes": null}},
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "console"}
        },
        "body": if method == "POST" { "{}" } else { "" },
        "isBase64Encoded": false
    })
    .to_string()
}

async fn admin(w: &World, event: &str) -> (u16, serde_json::Value) {
    let request = lambda_http::request::from_str(event).expect("API Gateway v2 event");
    let app = timepost_fn_admin::app(&w.stack, timepost_fn_admin::DEFAULT_ROLE_CLAIM);
    let response = app.oneshot(request).await.expect("router");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn the_admin_function_lists_and_redrives_the_dlq_for_the_role_the_jwt_names() {
    let Some(w) = world().await else { return };
    assert_eq!(deliver(&w, &toggl_event(7301)).await, 202);
    assert_eq!(sync_queued(&w).await.dead_lettered, 1);

    let finance = json!({"email": "fin@example.com", "custom:timepost_role": "finance"});
    let viewer = json!({"email": "view@example.com", "custom:timepost_role": "viewer"});
    let nobody = json!({"email": "who@example.com"});

    let (status, list) = admin(
        &w,
        &admin_event("GET", "/api/dead-letters", finance.clone()),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let id = list[0]["id"].as_str().expect("dead letter id").to_string();
    assert_eq!(list[0]["code"], "UNMAPPED_EMPLOYEE", "{list}");

    // A viewer may not redrive; a token without a role gets nothing.
    let redrive = format!("/api/dead-letters/{id}/redrive");
    assert_eq!(
        admin(&w, &admin_event("POST", &redrive, viewer)).await.0,
        403
    );
    assert_eq!(
        admin(&w, &admin_event("GET", "/api/dead-letters", nobody))
            .await
            .0,
        403
    );

    // Finance fixes the mapping and redrives that message: posted once.
    import_mappings(&w.stack, "project,9001,C-ACME,\nemployee,101,E-100,\n").await;
    let (status, body) = admin(&w, &admin_event("POST", &redrive, finance.clone())).await;
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(sync_queued(&w).await.done, 1);
    let state = state_of(&w, 7301).await;
    assert_eq!(state.status(), Status::Posted, "{state:?}");
    assert_eq!(journal_len(&w, 7301).await, 1);

    // The redrive is audited under the JWT's user.
    let (_, audit) = admin(&w, &admin_event("GET", "/api/audit", finance)).await;
    assert!(
        audit
            .as_array()
            .expect("audit list")
            .iter()
            .any(|r| r["who"] == "fin@example.com" && r["role"] == "finance"),
        "{audit}"
    );
}

/// A mapping change made through the admin function releases the held
/// entries it can, but not in the request: only the sync function writes
/// the books, so the admin function queues one redrive per entry
/// (`timepost::app::recheck`) and the entry posts when sync takes it.
#[tokio::test]
async fn a_mapping_change_in_the_admin_function_queues_its_held_entries_for_sync() {
    let Some(w) = world().await else { return };
    // The employee is mapped, the project is not: the sandbox holds that.
    import_mappings(&w.stack, "employee,101,E-100,\n").await;
    assert_eq!(deliver(&w, &toggl_event(7401)).await, 202);
    sync_queued(&w).await;
    assert_eq!(state_of(&w, 7401).await.status(), Status::Held);

    let admin_claims = json!({"email": "ada@example.com", "custom:timepost_role": "admin"});
    let body =
        json!({"table": "project", "key": "9001", "target": "C-ACME", "reason": "new client"});
    let event = admin_event("POST", "/api/mappings", admin_claims).replace(
        "\"body\":\"{}\"",
        &format!("\"body\":{}", json!(body.to_string())),
    );
    let (status, answer) = admin(&w, &event).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], true, "{answer}");

    // Nothing was posted in the request; the redrive waits on the queue.
    assert_eq!(state_of(&w, 7401).await.status(), Status::Held);
    assert_eq!(journal_len(&w, 7401).await, 0);
    let event = sqs_event(&w, &w.stack.settings.queue_url).await;
    assert_eq!(event.records.len(), 1, "one redrive for the one held entry");
    let message: timepost::ports::QueueMessage =
        serde_json::from_str(event.records[0].body.as_deref().unwrap_or_default())
            .expect("message");
    assert_eq!(
        message,
        timepost::ports::QueueMessage::Redrive {
            key: key(7401),
            by: "ada@example.com".into()
        }
    );
    let (response, summary) = timepost_fn_sync::handle(&w.stack, event, None).await;
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
    let state = state_of(&w, 7401).await;
    assert_eq!(state.status(), Status::Posted, "{state:?}");
    assert_eq!(journal_len(&w, 7401).await, 1);
}

/// The deployed console offers reconciliation (not a 503): finance starts
/// a run over a period, it is kept on the table and listed; a viewer may
/// not start one.
#[tokio::test]
async fn the_admin_function_reconciles_and_keeps_the_runs_on_the_table() {
    let Some(w) = world().await else { return };
    let finance = json!({"email": "fin@example.com", "custom:timepost_role": "finance"});
    let viewer = json!({"email": "view@example.com", "custom:timepost_role": "viewer"});
    let (status, runs) = admin(
        &w,
        &admin_event("GET", "/api/reconciliation/runs", finance.clone()),
    )
    .await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs.as_array().map(Vec::len), Some(0), "{runs}");

    let with_body = |claims: serde_json::Value| {
        let mut e: serde_json::Value =
            serde_json::from_str(&admin_event("POST", "/api/reconciliation/run", claims))
                .expect("event");
        e["body"] = json!(json!({"period": "2026-03-02..2026-03-08"}).to_string());
        e.to_string()
    };
    assert_eq!(admin(&w, &with_body(viewer)).await.0, 403);
    let (status, run) = admin(&w, &with_body(finance.clone())).await;
    assert_eq!(status, 201, "{run}");
    let (status, runs) = admin(&w, &admin_event("GET", "/api/reconciliation/runs", finance)).await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}

/// A rules file broken after deploy must not drain the ingest queue into
/// the dead-letter queue: the sync function starts anyway, hands every
/// message back as a fresh copy (its receive count untouched) and posts
/// them once the file is fixed, without a restart.
#[tokio::test]
async fn a_broken_rules_file_holds_messages_back_until_it_is_fixed() {
    let Some(w) = world().await else { return };
    import_mappings(&w.stack, "project,9001,C-ACME,\nemployee,101,E-100,\n").await;
    assert_eq!(deliver(&w, &toggl_event(7401)).await, 202);

    let settings = w.stack.settings.clone();
    let archive = S3Archive::new(S3Archive::client(&w.sdk, true), &settings.bucket);
    let good = timepost_tests::aws_world::config_without_approval();
    archive
        .put(&settings.config_key, b"[rules\nthis is not toml".to_vec())
        .await
        .expect("put broken config");

    let instance = timepost_fn_sync::Instance::start(w.sdk.clone(), settings.clone())
        .await
        .with_hold_delay(Duration::ZERO);
    let why = instance
        .stack()
        .await
        .err()
        .expect("the broken file is refused");
    assert!(why.to_string().contains("config"), "{why}");

    // More invocations than the queue's maxReceiveCount (5): nothing is
    // dead-lettered and the message is offered each time as a fresh copy.
    for round in 0..7 {
        let event = sqs_event(&w, &settings.queue_url).await;
        assert_eq!(event.records.len(), 1, "round {round}");
        assert_eq!(
            event.records[0]
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str),
            Some("1"),
            "round {round}: the receive count was spent"
        );
        let (response, summary) = instance.invoke(event, None).await;
        assert!(response.batch_item_failures.is_empty(), "{summary:?}");
        assert_eq!(summary.held, 1, "{summary:?}");
    }
    assert!(w
        .stack
        .queue
        .dead_letters(10)
        .await
        .expect("dlq")
        .is_empty());

    // The file is fixed: the next invocation builds the stack and posts.
    archive
        .put(&settings.config_key, good.into_bytes())
        .await
        .expect("put config");
    let event = sqs_event(&w, &settings.queue_url).await;
    let (response, summary) = instance.invoke(event, None).await;
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
    assert_eq!(summary.done, 1, "{summary:?}");
    assert_eq!(state_of(&w, 7401).await.status(), Status::Posted);
}

/// A broken upload of the rules file does not turn deliveries away: the
/// webhook starts on the newest earlier version that loads (the bucket is
/// versioned), says so, and a signed delivery is still queued. A bucket
/// whose every version is broken still refuses to start, in the parser's
/// words.
#[tokio::test]
async fn the_webhook_starts_on_the_last_rules_file_that_loads() {
    let Some(w) = world().await else { return };
    let settings = w.stack.settings.clone();
    let archive = S3Archive::new(S3Archive::client(&w.sdk, true), &settings.bucket);

    // The current file loads: no fallback.
    let (_, fallback) = AwsStack::connect_last_good(&w.sdk, settings.clone())
        .await
        .expect("stack");
    assert!(fallback.is_none(), "{fallback:?}");

    archive
        .put(&settings.config_key, b"[rules\nthis is not toml".to_vec())
        .await
        .expect("put broken config");
    assert!(
        AwsStack::connect(&w.sdk, settings.clone(), None)
            .await
            .is_err(),
        "the current file is broken"
    );
    let clients = timepost::aws::AwsClients::from_sdk(&w.sdk, settings.s3_path_style);
    let (state, fallback) = timepost_fn_webhook::connect_with(clients, settings.clone(), None)
        .await
        .expect("started on the previous version");
    let fallback = fallback.expect("a fallback was taken");
    let said = fallback.to_string();
    assert!(said.contains(&settings.config_key), "{said}");
    assert!(
        said.contains("nothing is posted until the file is fixed"),
        "{said}"
    );

    let request = lambda_http::request::from_str(&toggl_event(7501)).expect("event");
    let response = timepost_fn_webhook::app(state)
        .oneshot(request)
        .await
        .expect("router");
    assert_eq!(response.status().as_u16(), 202);
    let queued = sqs_event(&w, &settings.queue_url).await;
    assert_eq!(queued.records.len(), 1, "the delivery is queued");

    // Every version broken: the current file's error, as before.
    let lonely = AwsSettings {
        config_key: "only-broken.toml".into(),
        ..settings.clone()
    };
    archive
        .put(&lonely.config_key, b"not = [toml".to_vec())
        .await
        .expect("put");
    archive
        .put(&lonely.config_key, b"still = [not toml".to_vec())
        .await
        .expect("put");
    let err = AwsStack::connect_last_good(&w.sdk, lonely)
        .await
        .err()
        .expect("nothing loads");
    assert!(err.to_string().contains("only-broken.toml"), "{err}");
}

/// Failed bearer tokens reaching the admin function (no JWT authorizer in
/// front of that route) are throttled per API Gateway `sourceIp`: the
/// sixth from one address is 429 with `Retry-After`; another address is
/// still answered.
#[tokio::test]
async fn the_admin_function_throttles_failed_bearer_tokens_per_source_ip() {
    let Some(w) = world().await else { return };
    let app = timepost_fn_admin::app(&w.stack, timepost_fn_admin::DEFAULT_ROLE_CLAIM);
    let event = |ip: &str| {
        json!({
            "version": "2.0", "routeKey": "GET /api/report", "rawPath": "/api/report", "rawQueryString": "",
            "headers": {"authorization": "Bearer not-a-token-0123456789abcdef"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "domainPrefix": "api", "requestId": "admin-req", "routeKey": "GET /api/report",
                "stage": "$default", "time": "03/Mar/2026:18:00:05 +0000", "timeEpoch": 1772560805000u64,
                "http": {"method": "GET", "path": "/api/report", "protocol": "HTTP/1.1",
                         "sourceIp": ip, "userAgent": "guesser"}
            },
            "body": "", "isBase64Encoded": false
        })
        .to_string()
    };
    let call = |ip: &str| {
        let app = app.clone();
        let request = lambda_http::request::from_str(&event(ip)).expect("API Gateway v2 event");
        async move {
            let r = app.oneshot(request).await.expect("router");
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (r.status().as_u16(), retry)
        }
    };
    for _ in 0..5 {
        assert_eq!(call("203.0.113.9").await, (401, None));
    }
    assert_eq!(call("203.0.113.9").await, (429, Some("1".to_string())));
    assert_eq!(call("198.51.100.7").await, (401, None));
}

/// An API Gateway v2 event with no authorizer (the console's and sign-in's
/// routes), a query string and a cookie.
fn browser_event(path: &str, query: &str, cookie: Option<&str>) -> String {
    let mut headers = json!({"host": "api.example.com"});
    if let Some(c) = cookie {
        headers["cookie"] = json!(c);
    }
    json!({
        "version": "2.0", "routeKey": format!("GET {path}"), "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": "browser-req", "routeKey": format!("GET {path}"),
            "stage": "$default", "time": "03/Mar/2026:18:00:05 +0000", "timeEpoch": 1772560805000u64,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "browser"}
        },
        "isBase64Encoded": false
    })
    .to_string()
}

/// The admin function as the template configures it with a created user
/// pool: the client id read from the `console_client_id` secret, the
/// callback URL from API Gateway's domain. A finance user signs in through
/// the (fake) hosted UI and opens the exceptions page with the session
/// alone, over HTTPS (`Secure` cookies).
#[tokio::test]
async fn the_admin_function_signs_a_browser_in_through_the_stacks_user_pool() {
    use timepost_tests::oidc_fake::{FakeOidc, FakeUser};
    let Some(w) = world().await else { return };
    let fake = FakeOidc::start(
        "pool-console-client",
        &["https://api.example.com/auth/callback".to_string()],
        &["https://api.example.com/console/login".to_string()],
        vec![FakeUser {
            username: "fran".into(),
            email: "fran@example.com".into(),
            role: Some("finance".into()),
        }],
    )
    .await;
    w.stack
        .secrets
        .put("console_client_id", "pool-console-client")
        .await
        .expect("put the client id secret");
    let env = |k: &str| -> Option<String> {
        match k {
            "TIMEPOST_OIDC_ISSUER" => Some(fake.issuer.clone()),
            "TIMEPOST_OIDC_CLIENT_ID" => Some(String::new()),
            "TIMEPOST_OIDC_CLIENT_ID_SECRET" => Some("console_client_id".into()),
            "TIMEPOST_OIDC_LOGOUT_URL" => Some(format!("{}/logout", fake.base)),
            _ => None,
        }
    };
    let provider = timepost_fn_admin::oidc_provider(&w.stack, env)
        .await
        .expect("configured")
        .expect("provider");
    assert_eq!(provider.client_id(), "pool-console-client");
    let app = timepost_fn_admin::app_with_state(
        timepost_web::AppState::aws(&w.stack).with_oidc(provider),
        timepost_fn_admin::DEFAULT_ROLE_CLAIM,
    );
    let call = |event: String| {
        let app = app.clone();
        async move {
            let request = lambda_http::request::from_str(&event).expect("API Gateway v2 event");
            app.oneshot(request).await.expect("router")
        }
    };
    let header = |r: &axum::response::Response, name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };

    let r = call(browser_event("/console", "", None)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), ["/auth/login"]);
    let r = call(browser_event("/auth/login", "", None)).await;
    assert_eq!(r.status(), 303);
    let flow = header(&r, "set-cookie")[0].clone();
    assert!(flow.contains("; Secure"), "{flow}");
    let flow = flow.split(';').next().expect("cookie").to_string();
    let authorize = header(&r, "location")[0].clone();
    assert!(
        authorize.contains("redirect_uri=https%3A%2F%2Fapi.example.com%2Fauth%2Fcallback"),
        "{authorize}"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let back = http
        .post(format!("{}/login", fake.base))
        .form(&FakeOidc::form_for(&authorize, "fran"))
        .send()
        .await
        .expect("provider sign-in");
    let back = back
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("back to the callback")
        .to_string();
    let query = back.split_once('?').expect("a query").1.to_string();
    let r = call(browser_event("/auth/callback", &query, Some(&flow))).await;
    assert_eq!(r.status(), 200);
    let session = header(&r, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with("tp_session="))
        .expect("a session");
    assert!(session.contains("; Secure") && session.contains("HttpOnly"));
    let session = session.split(';').next().expect("cookie").to_string();

    let r = call(browser_event("/console/exceptions", "", Some(&session))).await;
    assert_eq!(r.status(), 200);
    let body = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("fran@example.com · finance"), "{html}");
}
