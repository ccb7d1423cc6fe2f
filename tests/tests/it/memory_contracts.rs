//! The port contracts of `timepost_tests::contracts`, run against the
//! in-memory adapter (`timepost_tests::memory::MemoryStore`), each on a
//! fresh store: the third adapter beside SQLite (`store_contracts`) and
//! DynamoDB / SQS on moto (`aws_dynamo`, `aws_sqs`).

use timepost_tests::contracts;
use timepost_tests::memory::MemoryStore;

#[tokio::test]
async fn journal_intents_in_memory() {
    contracts::journal_intents(&MemoryStore::new()).await;
}

#[tokio::test]
async fn reconcile_store_in_memory() {
    contracts::reconcile_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn entry_store_revisions_in_memory() {
    contracts::entry_store_revisions(&MemoryStore::new()).await;
}

#[tokio::test]
async fn entry_store_queries_in_memory() {
    contracts::entry_store_queries(&MemoryStore::new()).await;
}

#[tokio::test]
async fn entry_claims_in_memory() {
    contracts::entry_claims(&MemoryStore::new()).await;
}

#[tokio::test]
async fn watermarks_in_memory() {
    contracts::watermarks(&MemoryStore::new()).await;
}

#[tokio::test]
async fn audit_log_in_memory() {
    contracts::audit_log(&MemoryStore::new()).await;
}

#[tokio::test]
async fn mapping_store_in_memory() {
    contracts::mapping_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn pending_changes_in_memory() {
    contracts::pending_changes(&MemoryStore::new()).await;
}

#[tokio::test]
async fn session_store_in_memory() {
    contracts::session_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn alert_store_in_memory() {
    contracts::alert_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn queue_in_memory() {
    contracts::queue(&MemoryStore::new()).await;
}
