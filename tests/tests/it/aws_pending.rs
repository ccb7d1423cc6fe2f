//! The DynamoDB store of proposed mapping changes against moto server,
//! through the real SDK client, behind the console: proposals kept in the
//! table and approved by a second admin. The port's contract (ids, reads,
//! listing by status newest first, the conditional settle that lets one of
//! two concurrent approvals win) is `contracts::pending_changes`, run on
//! DynamoDB in `aws_dynamo` and on SQLite and in memory.
//!
//! Run: `source scripts/moto.sh && moto_start && cargo test -p
//! timepost-tests --test aws_pending; moto_stop`.

use std::sync::Arc;

use axum::Extension;
use timepost::aws::DynamoStore;
use timepost::mapping::MappingTable;
use timepost::ports::MappingStore;
use timepost::ports::{PendingChanges, ProposalStatus};
use timepost_tests::kit::{deliver, sandbox_stack, E};
use timepost_tests::moto::{sdk_config, unique};
use timepost_web::auth::{Identity, Role};
use timepost_web::{router, AppState};

async fn store() -> Option<DynamoStore> {
    let config = sdk_config().await?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), unique("tp-pending"));
    store.create_table().await.expect("create table");
    Some(store)
}

/// Serve `state` to `who` (an admin), as the admin function's hosting
/// layer does with a verified JWT; returns the base URL.
async fn serve_as(state: AppState, who: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let identity = Identity {
        who: who.into(),
        role: Role::Admin,
    };
    let app = router(state).layer(Extension(identity));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

/// The router with its proposals kept on DynamoDB (what the admin function
/// gets from `AppState::with_review`): a large change waits there, the
/// proposer cannot approve it, a second admin does and it applies.
#[tokio::test]
async fn the_console_keeps_proposals_on_dynamodb() {
    let Some(pending) = store().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let stack = sandbox_stack(dir.path()).await;
    let entries = [
        E::new("a1", "u-ann", "2026-03-03", "09:00", "11:00").build(),
        E::new("a2", "u-ann", "2026-03-04", "09:00", "10:00").build(),
    ];
    deliver(&stack, &entries).await;
    let state = AppState::local(&stack).with_review(Arc::new(pending.clone()), 1);
    let ann = serve_as(state.clone(), "ann@example.com").await;
    let bob = serve_as(state, "bob@example.com").await;
    let http = timepost_tests::kit::http();
    let propose = http
        .post(format!("{ann}/api/mappings"))
        .json(
            &serde_json::json!({"table": "project", "key": "p-acme-web", "target": "C-GLOBEX",
               "reason": "Acme sold to Globex", "from": "2026-03-01", "to": "2026-03-31"}),
        )
        .send()
        .await
        .expect("propose");
    assert_eq!(propose.status(), 202);
    let body: serde_json::Value = propose.json().await.expect("json");
    let id = body["pending"]["id"].as_u64().expect("id");
    let stored = pending
        .proposal(id)
        .await
        .expect("read")
        .expect("on dynamodb");
    assert_eq!(stored.status, ProposalStatus::Pending);
    assert_eq!(stored.preview.changed.len(), 2);
    let target = |m: &timepost::mapping::Mappings| {
        m.get(MappingTable::Project, "p-acme-web")
            .map(|r| r.target.clone())
    };
    assert_eq!(
        target(&stack.store.snapshot().await.expect("snapshot")).as_deref(),
        Some("C-ACME")
    );
    let own = http
        .post(format!("{ann}/api/mappings/pending/{id}/approve"))
        .send()
        .await
        .expect("approve");
    assert_eq!(own.status(), 403);
    let approved = http
        .post(format!("{bob}/api/mappings/pending/{id}/approve"))
        .send()
        .await
        .expect("approve");
    assert_eq!(approved.status(), 200);
    assert_eq!(
        target(&stack.store.snapshot().await.expect("snapshot")).as_deref(),
        Some("C-GLOBEX")
    );
    let settled = pending.proposal(id).await.expect("read").expect("stored");
    assert_eq!(settled.status, ProposalStatus::Applied);
    assert_eq!(settled.decided_by.as_deref(), Some("bob@example.com"));
    assert!(settled.applied_seq.is_some());
}
