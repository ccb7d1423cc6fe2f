//! Re-checking held entries after a mapping change. Where it runs is the
//! stack's choice ([`RecheckMode`]), not the caller's: on a deployed stack
//! the books are only ever written by the sync function, so the admin
//! function and the CLI queue one redrive per entry instead of posting in
//! the request; locally (`timepost serve`, the CLI on its SQLite store) the
//! engine re-evaluates them in this process.

use crate::engine::{Engine, EngineError, Outcome};
use crate::mapping::MappingChange;
use crate::ports::{Queue, QueueMessage};
use crate::state::Status;

/// Where a re-check of held entries runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecheckMode {
    /// The engine re-evaluates them here and now (the local stack).
    InProcess,
    /// One redrive per entry goes on the ingest queue for the stack's sync
    /// function (a deployed stack).
    Queue,
}

/// What re-checking the held entries did.
#[derive(Debug)]
pub enum Recheck {
    /// The engine re-evaluated them in this process.
    Done(Vec<Outcome>),
    /// One redrive per held entry was queued for the sync function.
    Queued(usize),
}

impl Recheck {
    /// How many held entries reached the books (in process) or were queued.
    pub fn describe(&self) -> String {
        match self {
            Recheck::Done(out) => {
                let posted = out.iter().filter(|o| o.status == Status::Posted).count();
                format!("{posted} held entr{} now posted", plural(posted))
            }
            Recheck::Queued(n) => format!(
                "{n} held entr{} queued for a re-check by the deployed sync function",
                plural(*n)
            ),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

/// Re-check the held entries `changes` (applied) can release
/// ([`crate::engine::held_released_by`]); `by` names who made the change
/// on the queued redrives.
pub async fn held_for(
    engine: &Engine,
    queue: &dyn Queue,
    mode: RecheckMode,
    by: &str,
    changes: &[MappingChange],
) -> Result<Recheck, EngineError> {
    match mode {
        RecheckMode::InProcess => Ok(Recheck::Done(
            engine
                .recheck_held_for(changes, &crate::engine::new_batch_id())
                .await?,
        )),
        RecheckMode::Queue => {
            let held = crate::engine::held_released_by(engine.entries.as_ref(), changes).await?;
            enqueue(queue, by, held.into_keys()).await
        }
    }
}

/// Re-check every held entry (`timepost redrive --held`).
pub async fn all_held(
    engine: &Engine,
    queue: &dyn Queue,
    mode: RecheckMode,
    by: &str,
) -> Result<Recheck, EngineError> {
    match mode {
        RecheckMode::InProcess => Ok(Recheck::Done(
            engine.recheck_held(&crate::engine::new_batch_id()).await?,
        )),
        RecheckMode::Queue => {
            let held = engine.entries.by_status(Status::Held, 100_000).await?;
            enqueue(queue, by, held.into_iter().map(|s| s.entry.key)).await
        }
    }
}

async fn enqueue(
    queue: &dyn Queue,
    by: &str,
    keys: impl Iterator<Item = crate::model::EntryKey>,
) -> Result<Recheck, EngineError> {
    let messages: Vec<QueueMessage> = keys
        .map(|key| QueueMessage::Redrive {
            key,
            by: by.to_string(),
        })
        .collect();
    let n = messages.len();
    for batch in crate::intake::batches(messages) {
        queue.send_batch(&batch).await?;
    }
    Ok(Recheck::Queued(n))
}
