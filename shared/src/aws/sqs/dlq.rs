//! Reading and redriving the dead-letter queue.
//!
//! SQS has no "peek" and no "get by message id": the only way to see a
//! message is to receive it, which hides it for the visibility timeout and
//! bumps its receive count. Listing and redrive therefore receive the DLQ
//! with a short hold ([`HOLD`]), keep what they received hidden until they
//! are done (so the next receive returns other messages), de-duplicate by
//! message id (a standard queue may deliver a message twice), and finally
//! make the held messages visible again with `ChangeMessageVisibility 0`.
//! Consequences, documented for the console: two listings at the same time
//! may each see part of the DLQ; a redrive of a message another listing
//! holds at that moment answers "not found" (try again); and a listing of a
//! very deep DLQ reads it all (bounded by `limit`).

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName};
use chrono::{DateTime, TimeZone, Utc};

use super::{SqsQueue, MAX_ENTRIES};
use crate::aws::backend;
use crate::ports::{DeadLetter, QueueMessage, StoreResult};

/// How long a listing or redrive keeps DLQ messages hidden at most (should
/// it crash before releasing them, they reappear by themselves after this).
const HOLD: Duration = Duration::from_secs(30);
/// Long-poll wait of a DLQ receive: with a wait, SQS consults every server,
/// so an empty answer really means "nothing visible" (a short poll samples).
const WAIT_SECS: i32 = 1;

/// A message in the DLQ as stored, body unparsed (an `UNREADABLE_MESSAGE`
/// body is shown to finance too, even though it is no [`QueueMessage`]).
#[derive(Debug, Clone)]
pub struct Parked {
    /// The DLQ message id (what [`crate::ports::Queue::redrive`] takes).
    pub id: String,
    /// The ingest queue's message id, when parked by `dead_letter`.
    pub source_message_id: Option<String>,
    pub body: String,
    pub reason: String,
    pub code: Option<String>,
    pub receive_count: u32,
    pub parked_at: DateTime<Utc>,
}

/// Why a message moved by the queue's own redrive policy is in the DLQ
/// (it carries no reason attribute).
const POLICY_REASON: &str =
    "Moved to the dead-letter queue by the queue's redrive policy after repeated failed receives.";

struct Got {
    receipt: String,
    parked: Parked,
    sent_at_ms: i64,
}

async fn receive(q: &SqsQueue, want: usize) -> StoreResult<Vec<Got>> {
    let out = q
        .client
        .receive_message()
        .queue_url(&q.dlq_url)
        .max_number_of_messages(want.clamp(1, MAX_ENTRIES) as i32)
        .visibility_timeout(HOLD.as_secs() as i32)
        .wait_time_seconds(WAIT_SECS)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .send()
        .await
        .map_err(|e| backend("sqs receive dead letters", e))?;
    let mut got = Vec::new();
    for m in out.messages() {
        let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
            continue;
        };
        let attr = |k: &str| {
            m.message_attributes()
                .and_then(|a| a.get(k))
                .and_then(|v| v.string_value())
                .map(str::to_string)
        };
        let sys = |k: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&k)).cloned();
        let sent_at_ms = sys(MessageSystemAttributeName::SentTimestamp)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        let parked_at = attr("parked_at")
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|d| d.with_timezone(&Utc))
            .or_else(|| Utc.timestamp_millis_opt(sent_at_ms).single())
            .unwrap_or_default();
        let receive_count = attr("receive_count")
            .or_else(|| sys(MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        got.push(Got {
            receipt: receipt.to_string(),
            sent_at_ms,
            parked: Parked {
                id: id.to_string(),
                source_message_id: attr("source_message_id"),
                body: m.body().unwrap_or_default().to_string(),
                reason: attr("reason").unwrap_or_else(|| POLICY_REASON.to_string()),
                code: attr("code"),
                receive_count,
                parked_at,
            },
        });
    }
    Ok(got)
}

/// Make held DLQ messages visible again, ten per request.
async fn release(q: &SqsQueue, receipts: &[String]) -> StoreResult<()> {
    for chunk in receipts.chunks(MAX_ENTRIES) {
        let mut req = q
            .client
            .change_message_visibility_batch()
            .queue_url(&q.dlq_url);
        for (i, r) in chunk.iter().enumerate() {
            req = req.entries(
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| backend("sqs visibility entry", e))?,
            );
        }
        req.send()
            .await
            .map_err(|e| backend("sqs release dead letters", e))?;
    }
    Ok(())
}

/// Up to `limit` parked messages, without consuming them.
pub async fn list_raw(q: &SqsQueue, limit: usize) -> StoreResult<Vec<Parked>> {
    let mut held = Vec::new();
    let result = collect(q, limit, &mut held).await;
    let released = release(q, &held).await;
    let out = result?;
    released?;
    Ok(out)
}

async fn collect(q: &SqsQueue, limit: usize, held: &mut Vec<String>) -> StoreResult<Vec<Parked>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() < limit {
        let got = receive(q, limit - out.len()).await?;
        if got.is_empty() {
            break;
        }
        let mut new = 0;
        for g in got {
            held.push(g.receipt);
            if seen.insert(g.parked.id.clone()) && out.len() < limit {
                new += 1;
                out.push(g.parked);
            }
        }
        if new == 0 {
            break;
        }
    }
    out.sort_by(|a, b| a.parked_at.cmp(&b.parked_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// The parked messages that are [`QueueMessage`]s, as the port shows them.
pub async fn list(q: &SqsQueue, limit: usize) -> StoreResult<Vec<DeadLetter>> {
    Ok(list_raw(q, limit)
        .await?
        .into_iter()
        .filter_map(|p| {
            let message = serde_json::from_str::<QueueMessage>(&p.body).ok()?;
            Some(DeadLetter {
                id: p.id,
                message,
                reason: p.reason,
                code: p.code,
                receive_count: p.receive_count,
                parked_at: p.parked_at,
            })
        })
        .collect())
}

/// Redrive the dead letters whose DLQ id or source id is in `ids` (every
/// one parked before this call when `None`): send each body back to the
/// ingest queue, then delete it from the DLQ (a crash between leaves a
/// duplicate, never a loss). Returns the DLQ ids redriven.
pub async fn redrive_ids(q: &SqsQueue, ids: Option<&[String]>) -> StoreResult<Vec<String>> {
    let mut held = Vec::new();
    let result = redrive_inner(q, ids, &mut held).await;
    let released = release(q, &held).await;
    let out = result?;
    released?;
    Ok(out)
}

async fn redrive_inner(
    q: &SqsQueue,
    ids: Option<&[String]>,
    held: &mut Vec<String>,
) -> StoreResult<Vec<String>> {
    // Only what was parked before the call: a message parked again while a
    // "redrive all" runs waits for the next one (and the loop ends).
    let started_ms = Utc::now().timestamp_millis();
    let wanted: Option<HashSet<&str>> = ids.map(|ids| ids.iter().map(String::as_str).collect());
    let mut matched: HashSet<String> = HashSet::new();
    let mut seen = HashSet::new();
    let mut done = Vec::new();
    loop {
        if let Some(w) = &wanted {
            if matched.len() >= w.len() {
                break;
            }
        }
        let got = receive(q, MAX_ENTRIES).await?;
        if got.is_empty() {
            break;
        }
        let mut new = 0;
        for g in got {
            if !seen.insert(g.parked.id.clone()) {
                held.push(g.receipt);
                continue;
            }
            new += 1;
            let hit = match &wanted {
                Some(w) => [
                    Some(g.parked.id.as_str()),
                    g.parked.source_message_id.as_deref(),
                ]
                .into_iter()
                .flatten()
                .find(|id| w.contains(id))
                .map(str::to_string),
                None => (g.sent_at_ms <= started_ms).then(|| g.parked.id.clone()),
            };
            let Some(key) = hit else {
                held.push(g.receipt);
                continue;
            };
            q.send_bodies(&q.queue_url, &[(g.parked.body.clone(), Vec::new())])
                .await?;
            q.client
                .delete_message()
                .queue_url(&q.dlq_url)
                .receipt_handle(&g.receipt)
                .send()
                .await
                .map_err(|e| backend("sqs delete dead letter", e))?;
            matched.insert(key);
            done.push(g.parked.id);
        }
        if new == 0 {
            break;
        }
    }
    Ok(done)
}
