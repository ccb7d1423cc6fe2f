//! SQS: the ingest queue and its dead-letter queue.
//!
//! SQS cannot look a message up by receipt handle, yet [`Queue::dead_letter`]
//! must copy the original body to the DLQ. Every message this handle hands
//! out (by [`Queue::receive`], or [`SqsQueue::adopt`] for the records of a
//! Lambda SQS event) is therefore remembered by receipt until it is settled
//! (deleted, retried or parked). Parking a receipt this handle never saw is
//! refused with `NotFound` rather than deleting a body it cannot copy.

mod batch;
mod dlq;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::Utc;

use super::backend;
use crate::ports::*;

pub use batch::{MAX_ENTRIES, MAX_REQUEST_BYTES};
pub use dlq::Parked;

/// The DLQ keeps parked messages for 14 days, SQS's maximum retention.
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;
/// The exception code of a body that does not parse as a [`QueueMessage`]
/// (the same as the local queue's).
pub const MALFORMED_CODE: &str = "UNREADABLE_MESSAGE";
/// How often entries SQS reports as `Failed` are sent again.
const SEND_ATTEMPTS: u32 = 4;

/// One message as SQS delivered it (a `ReceiveMessage` result or a record
/// of a Lambda SQS event), before its body is parsed.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
    pub receive_count: u32,
}

/// What this handle remembers of a message it handed out, until settled.
#[derive(Debug, Clone)]
struct Inflight {
    id: String,
    body: String,
    receive_count: u32,
}

#[derive(Clone)]
pub struct SqsQueue {
    pub(crate) client: aws_sdk_sqs::Client,
    pub(crate) queue_url: String,
    pub(crate) dlq_url: String,
    inflight: Arc<Mutex<HashMap<String, Inflight>>>,
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
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The ingest queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The dead-letter queue's URL.
    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// Create `name` and `name-dlq` (tests, local emulators; the SAM
    /// template declares the deployed pair): the DLQ retains 14 days, the
    /// ingest queue's redrive policy moves a message there after
    /// `max_receive_count` receives. Returns `(queue_url, dlq_url)`.
    pub async fn create_queues(
        client: &aws_sdk_sqs::Client,
        name: &str,
        max_receive_count: u32,
    ) -> StoreResult<(String, String)> {
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            )
            .send()
            .await
            .map_err(|e| backend("sqs create dead-letter queue", e))?;
        let dlq_url = dlq
            .queue_url()
            .ok_or_else(|| StoreError::Backend("sqs create queue: no url returned".into()))?
            .to_string();
        let attrs = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| backend("sqs get dead-letter queue arn", e))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .ok_or_else(|| StoreError::Backend("sqs: dead-letter queue has no arn".into()))?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        let queue = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .map_err(|e| backend("sqs create queue", e))?;
        let queue_url = queue
            .queue_url()
            .ok_or_else(|| StoreError::Backend("sqs create queue: no url returned".into()))?
            .to_string();
        Ok((queue_url, dlq_url))
    }

    /// Take over a message delivered by other means (a record of the sync
    /// Lambda's SQS event) so it can be settled through this handle: parsed
    /// into a [`Received`], or, when its body does not parse, parked in the
    /// DLQ with code `UNREADABLE_MESSAGE` (then `None`: nothing to process).
    pub async fn adopt(&self, raw: RawMessage) -> StoreResult<Option<Received>> {
        let parsed = serde_json::from_str::<QueueMessage>(&raw.body);
        self.remember(&raw);
        match parsed {
            Ok(message) => Ok(Some(Received {
                id: raw.id,
                receipt: raw.receipt,
                message,
                receive_count: raw.receive_count,
            })),
            Err(e) => {
                tracing::warn!(id = %raw.id, "unreadable queue message parked");
                self.dead_letter(
                    &raw.receipt,
                    &format!("The queued message cannot be read by this version: {e}."),
                    Some(MALFORMED_CODE),
                )
                .await?;
                Ok(None)
            }
        }
    }

    fn remember(&self, raw: &RawMessage) {
        self.inflight_map().insert(
            raw.receipt.clone(),
            Inflight {
                id: raw.id.clone(),
                body: raw.body.clone(),
                receive_count: raw.receive_count,
            },
        );
    }

    fn forget(&self, receipt: &str) {
        self.inflight_map().remove(receipt);
    }

    fn inflight_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Inflight>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send `bodies` (with per-message attributes) to `url`, in requests SQS
    /// accepts, retrying entries it reports as failed. Returns the message
    /// ids in input order, or an error when any body was not stored.
    pub(crate) async fn send_bodies(
        &self,
        url: &str,
        bodies: &[(String, Vec<(&'static str, String)>)],
    ) -> StoreResult<Vec<String>> {
        let sizes: Vec<usize> = bodies
            .iter()
            .map(|(b, attrs)| {
                b.len()
                    + attrs
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + "String".len())
                        .sum::<usize>()
            })
            .collect();
        let mut ids: Vec<Option<String>> = vec![None; bodies.len()];
        for range in batch::chunks(&sizes) {
            let mut pending: Vec<usize> = range.collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let mut req = self.client.send_message_batch().queue_url(url);
                for &i in &pending {
                    let (body, attrs) = &bodies[i];
                    let mut entry = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body);
                    for (k, v) in attrs {
                        entry = entry.message_attributes(*k, string_attr(v)?);
                    }
                    req = req.entries(entry.build().map_err(|e| backend("sqs batch entry", e))?);
                }
                let out = req
                    .send()
                    .await
                    .map_err(|e| backend("sqs send message batch", e))?;
                for ok in out.successful() {
                    if let Ok(i) = ok.id().parse::<usize>() {
                        if let Some(slot) = ids.get_mut(i) {
                            *slot = Some(ok.message_id().to_string());
                        }
                    }
                }
                pending.retain(|i| ids[*i].is_none());
                if pending.is_empty() {
                    break;
                }
                attempt += 1;
                let failed = out.failed();
                let sender_fault = failed.iter().any(|f| f.sender_fault());
                if attempt >= SEND_ATTEMPTS || sender_fault {
                    let why = failed
                        .first()
                        .map(|f| format!("{} {}", f.code(), f.message().unwrap_or("")))
                        .unwrap_or_else(|| "no answer for the entry".into());
                    return Err(StoreError::Backend(format!(
                        "sqs did not store {} of {} messages after {attempt} attempt(s): {}",
                        pending.len(),
                        bodies.len(),
                        why.trim()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
        ids.into_iter()
            .map(|id| id.ok_or_else(|| StoreError::Backend("sqs: a message id is missing".into())))
            .collect()
    }
}

fn string_attr(v: &str) -> StoreResult<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| backend("sqs message attribute", e))
}

/// Whole seconds for an SQS duration field, capped at SQS's 12 hours.
fn secs(d: Duration) -> i32 {
    d.as_secs().min(12 * 3600) as i32
}

fn receive_count(m: &aws_sdk_sqs::types::Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn raw(m: &aws_sdk_sqs::types::Message) -> Option<RawMessage> {
    Some(RawMessage {
        id: m.message_id()?.to_string(),
        receipt: m.receipt_handle()?.to_string(),
        body: m.body().unwrap_or_default().to_string(),
        receive_count: receive_count(m),
    })
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, messages: &[QueueMessage]) -> StoreResult<Vec<String>> {
        let bodies = messages
            .iter()
            .map(|m| {
                serde_json::to_string(m)
                    .map(|b| (b, Vec::new()))
                    .map_err(|e| StoreError::Backend(format!("encode queue message: {e}")))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.send_bodies(&self.queue_url, &bodies).await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>> {
        let mut out = Vec::new();
        while out.len() < max {
            let want = (max - out.len()).min(MAX_ENTRIES) as i32;
            let got = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(want)
                .visibility_timeout(secs(visibility))
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| backend("sqs receive message", e))?;
            let messages = got.messages();
            let mut new = 0;
            for m in messages {
                let Some(raw) = raw(m) else { continue };
                // A message received again within this call (a short
                // visibility, or a standard queue's duplicate delivery) is
                // returned once, with the newest receipt: SQS only honours
                // the most recent one.
                if let Some(seen) = out.iter_mut().find(|r: &&mut Received| r.id == raw.id) {
                    self.forget(&seen.receipt);
                    self.remember(&raw);
                    seen.receipt = raw.receipt;
                    seen.receive_count = raw.receive_count;
                    continue;
                }
                new += 1;
                if let Some(r) = self.adopt(raw).await? {
                    out.push(r);
                }
            }
            if new == 0 {
                break;
            }
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> StoreResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| backend("sqs delete message", e))?;
        self.forget(receipt);
        Ok(())
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(delay))
            .send()
            .await
            .map_err(|e| backend("sqs change message visibility", e))?;
        self.forget(receipt);
        Ok(())
    }

    /// SQS counts every receive and cannot un-count one, so a message that
    /// only waited on another worker is put back as a fresh copy (delayed
    /// by `delay`, at most SQS's 15 minutes) and the received one deleted.
    /// In that order: a crash between the two leaves a duplicate delivery
    /// (the engine ignores it), never a loss.
    async fn retry_uncounted(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let Some(m) = self.inflight_map().get(receipt).cloned() else {
            return self.retry_later(receipt, delay).await;
        };
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&m.body)
            .delay_seconds(secs(delay).min(900))
            .send()
            .await
            .map_err(|e| backend("sqs send message (uncounted retry)", e))?;
        self.delete(receipt).await
    }

    /// Copy the body to the DLQ with the reason, then delete it from the
    /// ingest queue. In that order: a crash between the two leaves a
    /// duplicate (the engine is idempotent), never a loss.
    async fn dead_letter(
        &self,
        receipt: &str,
        reason: &str,
        code: Option<&str>,
    ) -> StoreResult<()> {
        let Some(m) = self.inflight_map().get(receipt).cloned() else {
            return Err(StoreError::NotFound(format!(
                "message with receipt {receipt} (not received through this queue handle)"
            )));
        };
        let mut attrs = vec![
            ("reason", reason.to_string()),
            ("receive_count", m.receive_count.to_string()),
            ("parked_at", Utc::now().to_rfc3339()),
            ("source_message_id", m.id.clone()),
        ];
        if let Some(code) = code {
            attrs.push(("code", code.to_string()));
        }
        self.send_bodies(&self.dlq_url, &[(m.body, attrs)]).await?;
        self.delete(receipt).await
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        dlq::list(self, limit).await
    }

    async fn redrive(&self, id: &str) -> StoreResult<()> {
        let done = dlq::redrive_ids(self, Some(&[id.to_string()])).await?;
        if done.is_empty() {
            return Err(StoreError::NotFound(format!("dead letter {id}")));
        }
        Ok(())
    }

    async fn depth(&self) -> StoreResult<usize> {
        self.count(&self.queue_url).await
    }

    async fn dead_letter_count(&self) -> StoreResult<usize> {
        self.count(&self.dlq_url).await
    }
}

impl SqsQueue {
    /// The messages of the queue at `url`, visible, in flight or delayed
    /// (SQS's approximate counts: one `GetQueueAttributes`).
    async fn count(&self, url: &str) -> StoreResult<usize> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| backend("sqs get queue attributes", e))?;
        let attrs = out.attributes();
        let get = |name: QueueAttributeName| {
            attrs
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        Ok(get(QueueAttributeName::ApproximateNumberOfMessages)
            + get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            + get(QueueAttributeName::ApproximateNumberOfMessagesDelayed))
    }
}

impl SqsQueue {
    /// Redrive the dead letters whose DLQ message id (or original ingest
    /// message id) is in `ids`; returns the ids redriven. Ids not found are
    /// simply absent from the answer.
    pub async fn redrive_selected(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        dlq::redrive_ids(self, Some(ids)).await
    }

    /// Up to `limit` parked messages as stored, unreadable bodies included
    /// (what [`Queue::dead_letters`] leaves out), without consuming them.
    pub async fn parked(&self, limit: usize) -> StoreResult<Vec<Parked>> {
        dlq::list_raw(self, limit).await
    }

    /// Redrive every dead letter visible now; returns their ids.
    pub async fn redrive_all(&self) -> StoreResult<Vec<String>> {
        dlq::redrive_ids(self, None).await
    }
}
