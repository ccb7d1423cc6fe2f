//! The DynamoDB store of proposed mapping changes against moto server,
//! through the real SDK client: ids, reads, listing by status (newest
//! first), and the conditional settle that lets one of two concurrent
//! approvals win.
//!
//! Run: `source scripts/moto.sh && moto_start && cargo test -p
//! timepost-tests --test aws_pending; moto_stop`.

use chrono::{TimeZone, Utc};
use timepost::aws::DynamoStore;
use timepost::impact::{EntryImpact, ImpactPreview, LineView, Outcome};
use timepost::mapping::{MappingChange, MappingRow, MappingTable};
use timepost::ports::{PendingChanges, ProposalStatus, ProposedChange, StoreError};
use timepost_tests::moto::{sdk_config, unique};

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
