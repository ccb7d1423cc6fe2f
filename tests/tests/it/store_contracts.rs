//! The port contracts of `timepost_tests::contracts`, run against the
//! local adapter: a real SQLite file. `aws_dynamo` runs the same contracts
//! against DynamoDB on moto and `aws_sqs` the queue's against SQS on moto,
//! so the local and AWS adapters answer every port the same. (SQLite keeps
//! no console sessions: the `SessionStore` contract runs on DynamoDB only.)

use timepost::local::SqliteStore;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("contracts.sqlite")).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn put_is_conditional_on_the_revision() {
    let (_d, s) = store();
    timepost_tests::contracts::entry_store_revisions(&s).await;
}

#[tokio::test]
async fn week_status_all_and_date_queries() {
    let (_d, s) = store();
    timepost_tests::contracts::entry_store_queries(&s).await;
}

#[tokio::test]
async fn claims_expire_and_only_the_owner_releases() {
    let (_d, s) = store();
    timepost_tests::contracts::entry_claims(&s).await;
}

#[tokio::test]
async fn watermarks_round_trip() {
    let (_d, s) = store();
    timepost_tests::contracts::watermarks(&s).await;
}

#[tokio::test]
async fn audit_log_lists_newest_first() {
    let (_d, s) = store();
    timepost_tests::contracts::audit_log(&s).await;
}

#[tokio::test]
async fn mapping_changes_are_numbered_folded_and_logged_on_sqlite() {
    let (_d, s) = store();
    timepost_tests::contracts::mapping_store(&s).await;
}

#[tokio::test]
async fn pending_changes_contract_on_sqlite() {
    let (_d, s) = store();
    timepost_tests::contracts::pending_changes(&s).await;
}

#[tokio::test]
async fn alert_states_are_replaced_cleared_and_listed_on_sqlite() {
    let (_d, s) = store();
    timepost_tests::contracts::alert_store(&s).await;
}

#[tokio::test]
async fn queue_contract_on_sqlite() {
    let (_d, s) = store();
    timepost_tests::contracts::queue(&s).await;
}
