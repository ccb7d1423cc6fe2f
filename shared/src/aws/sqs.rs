//! SQS: the ingest queue and its dead-letter queue.
//! SKELETON: the implementation lands with the SQS adapter work.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::*;

#[derive(Clone)]
pub struct SqsQueue {
    pub(crate) client: aws_sdk_sqs::Client,
    pub(crate) queue_url: String,
    pub(crate) dlq_url: String,
}

impl SqsQueue {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dlq_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, _messages: &[QueueMessage]) -> StoreResult<Vec<String>> {
        todo!()
    }
    async fn receive(&self, _max: usize, _visibility: Duration) -> StoreResult<Vec<Received>> {
        todo!()
    }
    async fn delete(&self, _receipt: &str) -> StoreResult<()> {
        todo!()
    }
    async fn retry_later(&self, _receipt: &str, _delay: Duration) -> StoreResult<()> {
        todo!()
    }
    async fn dead_letter(
        &self,
        _receipt: &str,
        _reason: &str,
        _code: Option<&str>,
    ) -> StoreResult<()> {
        todo!()
    }
    async fn dead_letters(&self, _limit: usize) -> StoreResult<Vec<DeadLetter>> {
        todo!()
    }
    async fn redrive(&self, _id: &str) -> StoreResult<()> {
        todo!()
    }
    async fn depth(&self) -> StoreResult<usize> {
        todo!()
    }
}
