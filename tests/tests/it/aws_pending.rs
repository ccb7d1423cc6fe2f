//! The DynamoDB store of proposed mapping changes against moto server,
//! through the real SDK client: ids, reads, listing by status (newest
//! first), and the conditional settle that lets one of two concurrent
//! approvals win.
//!
//! Run: `source scripts/moto.sh && moto_start && cargo test -p
//! timepost-tests --test aws_pending; moto_stop`.

use std::sync::Arc;

use axum::Extension;
use chrono::{TimeZone, Utc};
use timepost::aws::DynamoStore;
use timepost::impact::{EntryImpact, ImpactPreview, LineView, Outcome};
use timepost::mapping::{MappingChange, MappingRow, MappingTable};
use timepost::ports::MappingStore;
use timepost::ports::{PendingChanges, ProposalStatus, ProposedChange, StoreError};
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

fn proposal(key: &str, status: ProposalStatus) -> ProposedChange {
    let line = LineView {
        tier: "regular".into(),
        minutes: 60,
        account: "5000-labour".into(),
        party: "employee E-100".into(),
        customer: Some("C-ACME".into()),
        service_item: Some("SVC-DEV".into()),
        class: None,
        department: None,
        payroll_item: Some("PI-REG".into()),
    };
    let date = "2026-03-03".parse().expect("date");
    ProposedChange {
        id: 0,
        change: MappingChange {
            seq: 0,
            table: MappingTable::Project,
            key: key.into(),
            before: Some(MappingRow::new(MappingTable::Project, key, "C-ACME")),
            after: Some(MappingRow::new(MappingTable::Project, key, "C-NEW")),
            changed_by: "ann".into(),
            changed_at: Utc
                .with_ymd_and_hms(2026, 3, 9, 12, 0, 0)
                .single()
                .expect("instant"),
            reason: "client renamed".into(),
        },
        further: vec![],
        preview: ImpactPreview {
            from: "2026-03-01".parse().expect("date"),
            to: "2026-03-31".parse().expect("date"),
            mapping_version: 31,
            entries_checked: 4,
            changed: vec![EntryImpact {
                key: "toggl:555:1".into(),
                work_date: date,
                worker: "Ann".into(),
                project: Some(key.into()),
                before: Outcome::Postable {
                    lines: vec![line.clone()],
                },
                after: Outcome::Postable {
                    lines: vec![LineView {
                        customer: Some("C-NEW".into()),
                        ..line
                    }],
                },
                differs: vec!["customer".into()],
            }],
            entries_replayed: 9,
            entries_affected: 3,
            entries_in_reach: 5,
        },
        status,
        needs_approval: status == ProposalStatus::Pending,
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        applied_seq: None,
    }
}

#[tokio::test]
async fn proposals_round_trip_with_their_preview() {
    let Some(s) = store().await else { return };
    let a = s
        .propose(proposal("p-acme-web", ProposalStatus::Pending))
        .await
        .expect("propose");
    let b = s
        .propose(proposal("p-globex-erp", ProposalStatus::Applied))
        .await
        .expect("propose");
    assert!(a.id >= 1 && b.id > a.id, "{} {}", a.id, b.id);
    let read = s.proposal(a.id).await.expect("read").expect("stored");
    assert_eq!(read, a);
    assert_eq!(read.preview.changed[0].differs, ["customer"]);
    assert_eq!(s.proposal(b.id + 100).await.expect("read"), None);
    let pending = s
        .proposals(Some(ProposalStatus::Pending))
        .await
        .expect("list");
    assert_eq!(pending, vec![a.clone()]);
    let all: Vec<u64> = s
        .proposals(None)
        .await
        .expect("list")
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(all, vec![b.id, a.id], "newest first");
}

#[tokio::test]
async fn settle_applies_once_and_names_a_missing_proposal() {
    let Some(s) = store().await else { return };
    let p = s
        .propose(proposal("p-acme-web", ProposalStatus::Pending))
        .await
        .expect("propose");
    // Two admins approve at once: exactly one settle wins.
    let mut approved = p.clone();
    approved.status = ProposalStatus::Applied;
    approved.decided_by = Some("bob".into());
    approved.applied_seq = Some(32);
    let mut rejected = p.clone();
    rejected.status = ProposalStatus::Rejected;
    rejected.decided_by = Some("cat".into());
    let (x, y) = tokio::join!(
        s.settle(&approved, ProposalStatus::Pending),
        s.settle(&rejected, ProposalStatus::Pending)
    );
    assert!(x.is_ok() != y.is_ok(), "one wins: {x:?} {y:?}");
    let loser = if x.is_ok() { y } else { x };
    assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");
    let stored = s.proposal(p.id).await.expect("read").expect("stored");
    assert!(stored == approved || stored == rejected);
    // It left the pending list (the item is re-read, not the index).
    assert!(s
        .proposals(Some(ProposalStatus::Pending))
        .await
        .expect("list")
        .is_empty());
    let listed = s.proposals(Some(stored.status)).await.expect("list");
    assert_eq!(listed, vec![stored.clone()]);
    // A follow-up write expecting the settled status succeeds.
    let mut later = stored.clone();
    later.decision_reason = Some("noted".into());
    s.settle(&later, stored.status).await.expect("settle again");
    let mut ghost = p.clone();
    ghost.id = p.id + 1000;
    let missing = s.settle(&ghost, ProposalStatus::Pending).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
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
