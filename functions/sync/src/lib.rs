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
//!
//! An instance whose rules file is missing or invalid still starts
//! ([`Instance`]): it logs the reason and hands every message back to the
//! ingest queue as a fresh copy delayed by [`HOLD_DELAY`], so a broken
//! rules file never spends the messages' receive counts and SQS never
//! drains the queue into the dead-letter queue. Each invocation tries the
//! rules file again, so a fixed file takes effect without a redeploy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use timepost::aws::sqs::RawMessage;
use timepost::aws::{AwsClients, AwsSettings, AwsStack};
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
    /// Handed back unprocessed because the stack could not start (a
    /// missing or invalid rules file), their receive counts untouched.
    pub held: usize,
}

/// How long a message handed back while the stack cannot start waits
/// before it is offered again (SQS allows at most 15 minutes).
pub const HOLD_DELAY: Duration = Duration::from_secs(300);

/// One sync function instance: the stack once it could be built from the
/// rules file, and what it needs to hand messages back until then.
pub struct Instance {
    sdk: aws_config::SdkConfig,
    settings: AwsSettings,
    sqs: aws_sdk_sqs::Client,
    stack: tokio::sync::Mutex<Option<Arc<AwsStack>>>,
    hold_delay: Duration,
}

impl Instance {
    /// Start: build the stack if the rules file allows it, else log why
    /// (the sentence, e.g. where to upload the rules file) and start
    /// anyway, holding messages back.
    pub async fn start(sdk: aws_config::SdkConfig, settings: AwsSettings) -> Self {
        let sqs = AwsClients::from_sdk(&sdk, settings.s3_path_style).sqs;
        let instance = Self {
            sdk,
            settings,
            sqs,
            stack: tokio::sync::Mutex::new(None),
            hold_delay: HOLD_DELAY,
        };
        if let Err(e) = instance.stack().await {
            tracing::error!(
                error = %e,
                "the sync function cannot post yet: queued entries are held back, not consumed, until this is fixed"
            );
        }
        instance
    }

    /// The same instance handing messages back after `delay` instead of
    /// [`HOLD_DELAY`] (tests).
    pub fn with_hold_delay(mut self, delay: Duration) -> Self {
        self.hold_delay = delay;
        self
    }

    /// The stack, built now if it was not yet.
    pub async fn stack(&self) -> Result<Arc<AwsStack>, timepost::aws::stack::AwsStackError> {
        let mut slot = self.stack.lock().await;
        if let Some(stack) = slot.as_ref() {
            return Ok(stack.clone());
        }
        let stack = Arc::new(AwsStack::connect(&self.sdk, self.settings.clone(), None).await?);
        // The sweep after each batch also reads what changed in the books
        // outside timepost (at most every `books_watch::BOOKS_EVERY`).
        stack
            .engine
            .watch_books(stack.store.clone(), stack.store.clone());
        *slot = Some(stack.clone());
        Ok(stack)
    }

    /// Handle one SQS event: as [`handle`] when the stack is up, else hand
    /// every message back (see [`hold`]).
    pub async fn invoke(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> (SqsBatchResponse, Summary) {
        match self.stack().await {
            Ok(stack) => handle(&stack, event, deadline).await,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    messages = event.records.len(),
                    "the sync function cannot post: messages handed back to the queue, their receive counts untouched"
                );
                hold(&self.sqs, &self.settings.queue_url, event, self.hold_delay).await
            }
        }
    }
}

/// Hand every message of `event` back to the queue at `queue_url` as a
/// fresh copy delayed by `delay`, then delete the one received. In that
/// order: a failure between the two leaves a duplicate (the engine posts
/// an entry once), never a loss. A copy that cannot be sent is reported
/// as a batch item failure, so SQS offers it again.
pub async fn hold(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    event: SqsEvent,
    delay: Duration,
) -> (SqsBatchResponse, Summary) {
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    for record in event.records {
        let Some(id) = record.message_id else {
            continue;
        };
        let sent = sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(record.body.unwrap_or_default())
            .delay_seconds(delay.as_secs().min(900) as i32)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::error!(message_id = %id, error = %e, "could not hand the message back");
            summary.retried += 1;
            failures.push(id);
            continue;
        }
        let receipt = record.receipt_handle.unwrap_or_default();
        if let Err(e) = sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            // The copy is queued; this one comes back after its visibility
            // timeout and is handed back (or posted) again, harmlessly.
            tracing::warn!(message_id = %id, error = %e, "handed back, but the original could not be deleted");
        }
        summary.held += 1;
    }
    (batch_response(failures), summary)
}

fn batch_response(failures: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
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
    (batch_response(failures), summary)
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
