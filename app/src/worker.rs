//! The queue worker: receive a batch, hand each message to the engine, and
//! settle the message by the outcome — delete it, retry it later, or park it
//! in the dead-letter queue with the reason. Only that message's own
//! failure affects it (the partial-batch contract of SQS).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::engine::{backoff, Engine, EngineError, Outcome};
use crate::exceptions::Exception;
use crate::ports::{EntryStore, Queue, QueueMessage, Received, StoreResult};
use crate::state::{EntryState, Status};

pub use crate::engine::new_batch_id;

/// How soon a message that found its entry or week held by another worker
/// is tried again.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);

/// What became of one message.
#[derive(Debug, Clone)]
pub enum Settled {
    Done(Vec<Outcome>),
    Retry(String),
    /// Put back without using up a retry (it waited on another worker).
    Requeued(String),
    DeadLettered(String),
}

/// Process one received message and settle it on the queue.
pub async fn settle(
    engine: &Engine,
    queue: &dyn Queue,
    r: &Received,
    batch_id: &str,
) -> StoreResult<Settled> {
    let span = tracing::info_span!("message", id = %r.id, receive = r.receive_count);
    let _g = span.enter();
    match engine.handle(&r.message, batch_id).await {
        Ok(outcomes) => {
            let own = own_key(&r.message);
            let failed = outcomes.iter().find(|o| {
                !o.sibling
                    && Some(&o.key) == own.as_ref()
                    && o.status == Status::Exception
                    && o.ignored.is_none()
            });
            if let Some(o) = failed {
                let reason = o
                    .reason
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                let code = o.reason.as_ref().map(|e| e.code.as_str());
                queue.dead_letter(&r.receipt, &reason, code).await?;
                return Ok(Settled::DeadLettered(reason));
            }
            queue.delete(&r.receipt).await?;
            Ok(Settled::Done(outcomes))
        }
        Err(EngineError::Busy(key)) => {
            // Waiting on another worker is not a failure: it never uses up
            // the message's retries (a crashed worker's claims lapse or are
            // taken over, and the message goes through then).
            let why = format!(
                "{} is being processed by another worker",
                crate::week_claim::describe_claim(&key)
            );
            tracing::debug!(reason = %why, "busy; will retry");
            queue.retry_uncounted(&r.receipt, BUSY_RETRY).await?;
            Ok(Settled::Requeued(why))
        }
        Err(e) => {
            let exhausted = r.receive_count >= engine.settings.max_receives;
            if exhausted {
                let exc = Exception::retries_exhausted(r.receive_count, &e);
                park(engine.entries.as_ref(), &r.message, &exc).await?;
                queue
                    .dead_letter(&r.receipt, &exc.message, Some(exc.code.as_str()))
                    .await?;
                return Ok(Settled::DeadLettered(exc.message));
            }
            let delay = match &e {
                EngineError::Busy(_) => BUSY_RETRY,
                EngineError::LedgerUnavailable { error, .. } => {
                    backoff(&engine.settings, r.receive_count, error)
                }
                EngineError::Store(_) | EngineError::Books(_) => Duration::from_secs(1),
            };
            tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, "will retry");
            queue.retry_later(&r.receipt, delay).await?;
            Ok(Settled::Retry(e.to_string()))
        }
    }
}

fn own_key(m: &QueueMessage) -> Option<crate::model::EntryKey> {
    match m {
        QueueMessage::Entry { entry, .. } => Some(entry.key.clone()),
        QueueMessage::Redrive { key, .. } => Some(key.clone()),
        QueueMessage::Approval { .. } => None,
    }
}

/// Record an entry whose message is parked so it is visible as an exception
/// (never silently lost), keeping what the ledger already holds for it.
async fn park(entries: &dyn EntryStore, m: &QueueMessage, exc: &Exception) -> StoreResult<()> {
    if let QueueMessage::Approval {
        source,
        workspace,
        user_id,
        from,
        to,
        status,
        by,
    } = m
    {
        return park_approval(
            entries,
            (source, workspace, user_id),
            (*from, *to),
            *status,
            by,
            exc,
        )
        .await;
    }
    let Some(key) = own_key(m) else { return Ok(()) };
    let now = Utc::now();
    let mut state = match (entries.get(&key).await?, m) {
        (Some(mut s), QueueMessage::Entry { entry, .. }) => {
            if entry.version > s.entry.version {
                s.entry = (**entry).clone();
            }
            s
        }
        (Some(s), _) => s,
        (None, QueueMessage::Entry { entry, .. }) => EntryState::new((**entry).clone(), now),
        (None, _) => return Ok(()),
    };
    state.set_status(Status::Exception, now);
    state.reason = Some(exc.clone());
    entries.put(&state).await.map(|_| ())
}

/// A parked approval: the entries it was to settle (still waiting for
/// approval in its range) become exceptions that say which approval could
/// not be applied and why, so none waits with no reason shown. Redriving
/// the parked message applies the approval.
async fn park_approval(
    entries: &dyn EntryStore,
    (source, workspace, user_id): (&crate::model::Source, &str, &str),
    (from, to): (chrono::NaiveDate, chrono::NaiveDate),
    status: crate::model::ApprovalStatus,
    by: &str,
    exc: &Exception,
) -> StoreResult<()> {
    let now = Utc::now();
    let (lo, hi) = (from.min(to), from.max(to));
    for ww in crate::ports::WorkerWeek::spanning(*source, workspace, user_id, lo, hi) {
        for mut st in entries.week(&ww).await? {
            let d = st.entry.work_date;
            if d < lo || d > hi || st.status() != Status::AwaitingApproval {
                continue;
            }
            st.set_status(Status::Exception, now);
            st.reason = Some(Exception::new(
                exc.code,
                format!(
                    "The {} of this time by {by} ({lo} to {hi}) could not be applied: {}",
                    match status {
                        crate::model::ApprovalStatus::Approved => "approval",
                        crate::model::ApprovalStatus::Rejected => "rejection",
                        _ => "approval decision",
                    },
                    exc.message
                ),
            ));
            entries.put(&st).await?;
        }
    }
    Ok(())
}

/// Process until the queue holds nothing visible. Returns every outcome.
/// Used by `demo`, `ingest` and tests; `serve` uses [`run`].
pub async fn drain(engine: &Engine, queue: &dyn Queue) -> StoreResult<Vec<Outcome>> {
    let mut all = Vec::new();
    loop {
        let batch = queue
            .receive(
                engine.settings.batch_size,
                Duration::from_secs(engine.settings.visibility_secs),
            )
            .await?;
        if batch.is_empty() {
            return Ok(all);
        }
        let batch_id = new_batch_id();
        for r in &batch {
            if let Settled::Done(o) = settle(engine, queue, r, &batch_id).await? {
                all.extend(o);
            }
        }
    }
}

/// Drain the queue, waiting out retry delays, until it is empty or
/// `deadline` passes. For commands that must finish the job they started.
pub async fn drain_all(
    engine: &Engine,
    queue: &dyn Queue,
    deadline: Duration,
) -> StoreResult<Vec<Outcome>> {
    let start = std::time::Instant::now();
    let mut all = drain(engine, queue).await?;
    while queue.depth().await? > 0 && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        all.extend(drain(engine, queue).await?);
    }
    Ok(all)
}

/// The long-running worker loop of `timepost serve`. A stop (`shutdown`
/// turning true) is honoured between messages: the message in hand is
/// finished, the rest of its batch is handed back to the queue at once, and
/// nothing more is received. The queue is durable, so what is left waits
/// for the next start.
pub async fn run(
    engine: Arc<Engine>,
    queue: Arc<dyn Queue>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let idle = Duration::from_millis(250);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match batch_until_stopped(&engine, queue.as_ref(), &shutdown).await {
            // Something was there: look again at once.
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "worker: queue failure"),
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Receive one batch and settle its messages one by one, checking `stop`
/// before each. Returns how many messages were received.
async fn batch_until_stopped(
    engine: &Engine,
    queue: &dyn Queue,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> StoreResult<usize> {
    let batch = queue
        .receive(
            engine.settings.batch_size,
            Duration::from_secs(engine.settings.visibility_secs),
        )
        .await?;
    let batch_id = new_batch_id();
    for (i, r) in batch.iter().enumerate() {
        if *stop.borrow() {
            // Not started: visible again now rather than after the
            // visibility timeout.
            for rest in &batch[i..] {
                queue.retry_later(&rest.receipt, Duration::ZERO).await?;
            }
            tracing::info!(
                returned = batch.len() - i,
                "worker stopping: unstarted messages handed back to the queue"
            );
            break;
        }
        settle(engine, queue, r, &batch_id).await?;
    }
    Ok(batch.len())
}
