//! Getting parsed entries onto the ingest queue: the parse context from
//! config and mappings, and batching within the queue's limits (SQS: 10
//! messages and 1 MiB per batch). Used by the webhook handlers, the pollers
//! and `timepost ingest` alike, so every path enqueues the same way.

use chrono::Utc;

use crate::config::IntakeConfig;
use crate::mapping::{MappingTable, Mappings};
use crate::model::NormalisedEntry;
use crate::ports::{Queue, QueueMessage, StoreResult};
use crate::sources::ParseContext;

/// Most messages in one send (the SQS `SendMessageBatch` limit).
pub const MAX_BATCH_MESSAGES: usize = 10;
/// Most bytes in one send (the SQS batch payload limit), with headroom.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024 - 16 * 1024;

/// The parse context: default time zone from config, per-user time zones
/// from the employee and vendor mappings.
pub fn parse_context(intake: &IntakeConfig, mappings: &Mappings) -> ParseContext {
    let mut ctx = ParseContext::new(intake.default_time_zone);
    ctx.harvest_use_rounded = intake.harvest_use_rounded;
    // A saved Harvest listing names only its clients' ids and names: its
    // rates are in the account's currency when one is configured.
    ctx.harvest_account_currency = intake.harvest.as_ref().and_then(|h| h.currency.clone());
    for row in mappings.rows() {
        if matches!(row.table, MappingTable::Employee | MappingTable::Vendor) {
            if let Some(tz) = row.attr("time_zone").and_then(|t| t.parse().ok()) {
                ctx.user_tz.insert(row.key.clone(), tz);
            }
        }
    }
    ctx
}

/// Split messages into sends that respect the queue's batch limits.
pub fn batches(messages: Vec<QueueMessage>) -> Vec<Vec<QueueMessage>> {
    let mut out: Vec<Vec<QueueMessage>> = Vec::new();
    let mut size = 0;
    for m in messages {
        let len = serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(0);
        let full = out
            .last()
            .is_none_or(|b| b.len() >= MAX_BATCH_MESSAGES || size + len > MAX_BATCH_BYTES);
        if full {
            out.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(b) = out.last_mut() {
            b.push(m);
        }
    }
    out
}

/// How many sends [`send_all`] keeps in flight. The local queue commits
/// the sends waiting at the moment together (one fsync for all), so a
/// large import is on disk in a few hundred commits rather than one per
/// ten messages; SQS takes the sends in parallel.
pub const SENDS_IN_FLIGHT: usize = 64;

/// Send every batch, up to [`SENDS_IN_FLIGHT`] at once, in order. Each
/// batch is durable when its send returns, as with one send at a time; on
/// the first failure the rest are not sent.
pub async fn send_all(queue: &dyn Queue, batches: &[Vec<QueueMessage>]) -> StoreResult<()> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    stream::iter(batches.iter().map(|b| queue.send_batch(b)))
        .buffered(SENDS_IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// What a parsed tracker event asks of timepost.
pub enum Intake {
    /// Messages to enqueue.
    Enqueue(Vec<QueueMessage>),
    /// A subscription validation ping: answer with this code.
    Ping(Option<String>),
    /// Nothing to do, and why.
    Ignored(String),
}

/// Turn a parsed event into what to enqueue. `via` names the path it came
/// by (for the approval's audit line).
pub fn intake(event: crate::sources::Event, via: &str) -> Intake {
    use crate::sources::Event;
    let now = Utc::now();
    match event {
        Event::Entries { entries } => Intake::Enqueue(
            entries
                .into_iter()
                .map(|e| QueueMessage::Entry {
                    entry: Box::new(e),
                    received_at: now,
                })
                .collect(),
        ),
        Event::Approval {
            source,
            workspace,
            user_id,
            from,
            to,
            status,
        } => Intake::Enqueue(vec![QueueMessage::Approval {
            source,
            workspace,
            user_id,
            from,
            to,
            status,
            by: format!("{source} approval event via {via}"),
        }]),
        Event::Ping { validation_code } => Intake::Ping(validation_code),
        Event::Ignored { reason } => Intake::Ignored(reason),
    }
}

/// Enqueue entries durably, in batches. Returns how many were enqueued.
pub async fn enqueue_entries(
    queue: &dyn Queue,
    entries: Vec<NormalisedEntry>,
) -> StoreResult<usize> {
    let now = Utc::now();
    let messages: Vec<QueueMessage> = entries
        .into_iter()
        .map(|e| QueueMessage::Entry {
            entry: Box::new(e),
            received_at: now,
        })
        .collect();
    let n = messages.len();
    for batch in batches(messages) {
        queue.send_batch(&batch).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn entry(i: usize, notes_len: usize) -> NormalisedEntry {
        NormalisedEntry {
            key: EntryKey::new(Source::Csv, "w", i.to_string()),
            version: Version {
                updated_at: Utc::now(),
                content_hash: String::new(),
            },
            worker: Worker {
                tracker_user_id: "u".into(),
                email: None,
                name: None,
                kind: None,
                form_1099: None,
            },
            time_zone: chrono_tz::UTC,
            work_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            start: None,
            end: None,
            duration_secs: 60,
            project: None,
            client: None,
            task: None,
            tags: vec![],
            billable: false,
            rate: None,
            notes: "x".repeat(notes_len),
            approval: ApprovalStatus::Approved,
            attachments: vec![],
            origin: Origin::Import,
            deleted: false,
            already_rounded: false,
        }
    }

    #[test]
    fn batches_respect_count_and_size_limits() {
        let msgs = |n, len| {
            (0..n)
                .map(|i| QueueMessage::Entry {
                    entry: Box::new(entry(i, len)),
                    received_at: Utc::now(),
                })
                .collect::<Vec<_>>()
        };
        let b = batches(msgs(25, 10));
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
        let b = batches(msgs(5, 300_000));
        assert!(
            b.iter().all(|x| x.len() <= 3),
            "{:?}",
            b.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 5);
    }
}
