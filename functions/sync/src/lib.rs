//! The `sync` function: an SQS batch → decide → post → record, answered
//! with a partial batch response naming only the messages to retry.
//!
//! Each message is settled by [`timepost::worker::settle`], exactly as the
//! local worker does: done → deleted; a business exception (unmapped,
//! refused by the ledger) → recorded on the entry and moved to the DLQ with
//! its reason, so it is not retried forever; a transient failure → made
//! visible again after a back-off and reported as a batch item failure.
//! Messages are handled one at a time, so one instance has at most one
//! ledger call in flight (the event source's maximum concurrency then caps
//! the company's concurrent calls).

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use timepost::aws::sqs::RawMessage;
use timepost::aws::AwsStack;
use timepost::worker::{new_batch_id, settle, Settled};

/// Stop starting new messages when less than this is left before the
/// function's deadline: the rest are handed back for another invocation.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// What one invocation did, for its log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub done: usize,
    pub dead_lettered: usize,
    pub retried: usize,
    pub requeued: usize,
    pub deferred: usize,
    /// Crash leftovers settled after the batch (`Engine::sweep`).
    pub swept: usize,
}

/// Handle one SQS event. `deadline` is when the invocation must have
/// answered (from the Lambda context); `None` means no limit (tests).
pub async fn handle(
    stack: &AwsStack,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> (SqsBatchResponse, Summary) {
    let batch_id = new_batch_id();
    let mut failures = Vec::new();
    let mut summary = Summary::default();
    for record in event.records {
        let Some(id) = record.message_id.clone() else {
            // Real SQS always sends an id; without one the message cannot
            // be named in the response, so it is left to the visibility
            // timeout (never reported as done).
            tracing::error!("SQS record without a message id: left for redelivery");
            continue;
        };
        let late =
            deadline.is_some_and(|d| d.saturating_duration_since(Instant::now()) < DEADLINE_MARGIN);
        if late {
            summary.deferred += 1;
            failures.push(id);
            continue;
        }
        match process(stack, &batch_id, &id, record).await {
            Ok(Settled::Done(_)) => summary.done += 1,
            // Waited on another worker: already put back as a fresh copy
            // (its receive count untouched), so not a batch item failure.
            Ok(Settled::Requeued(why)) => {
                tracing::info!(message_id = %id, reason = %why, "requeued");
                summary.requeued += 1;
            }
            Ok(Settled::DeadLettered(_)) => summary.dead_lettered += 1,
            Ok(Settled::Retry(why)) => {
                tracing::warn!(message_id = %id, reason = %why, "retry later");
                summary.retried += 1;
                failures.push(id);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "could not settle the message");
                summary.retried += 1;
                failures.push(id);
            }
        }
    }
    // Settle what crashed or cut-short invocations left (open intents,
    // dirty worker-weeks) while time remains: a few reads when there is
    // nothing to do.
    let time_left =
        deadline.is_none_or(|d| d.saturating_duration_since(Instant::now()) > DEADLINE_MARGIN * 2);
    if time_left {
        match stack.engine.sweep(&batch_id).await {
            Ok(r) => summary.swept = r.intents + r.weeks,
            Err(e) => tracing::warn!(error = %e, "sweep after the batch failed"),
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    (response, summary)
}

async fn process(
    stack: &AwsStack,
    batch_id: &str,
    id: &str,
    record: SqsMessage,
) -> Result<Settled, timepost::ports::StoreError> {
    let raw = RawMessage {
        id: id.to_string(),
        receipt: record.receipt_handle.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    };
    // The queue handle adopts the message so it can settle it; a body that
    // is not a timepost message is parked in the DLQ unread (`None`).
    match stack.queue.adopt(raw).await? {
        Some(received) => settle(&stack.engine, stack.queue.as_ref(), &received, batch_id).await,
        None => Ok(Settled::DeadLettered(
            "the queue message is not a timepost message".into(),
        )),
    }
}
