//! What finance does to open entries and parked messages, whoever asks (a
//! console page, the JSON API, the CLI): redrive entries through the queue,
//! put a dead letter back, discard an entry with a reason. Each action is
//! audited under the [`Actor`] who took it.

use std::time::Duration;

use chrono::Utc;

use crate::model::EntryKey;
use crate::ports::{AuditLog, AuditRecord, EntryStore, Queue, QueueMessage, StoreError};
use crate::review::Actor;
use crate::state::Status;

/// Why an action on an entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryActionError {
    #[error("no entry {0}")]
    NotFound(EntryKey),
    #[error("entry {0} is being processed; try again in a moment")]
    Busy(EntryKey),
    #[error("entry {key} is {status}; only exceptions and held entries can be discarded")]
    NotOpen { key: EntryKey, status: Status },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The audit record of `who` doing `action` (on `entry`) now.
pub fn audit_record(
    who: &Actor,
    action: &str,
    entry: Option<&EntryKey>,
    detail: String,
) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at: Utc::now(),
        who: who.name.clone(),
        role: who.role.clone(),
        action: action.to_string(),
        entry: entry.map(|k| k.to_string()),
        detail,
    }
}

/// Put entries back through the queue (the engine re-evaluates each one's
/// current version under its claim, so each changes the books at most
/// once), and audit each under `detail` (what the redrive was for).
pub async fn redrive(
    queue: &dyn Queue,
    audit: &dyn AuditLog,
    who: &Actor,
    keys: &[EntryKey],
    detail: &str,
) -> Result<(), StoreError> {
    let messages: Vec<_> = keys
        .iter()
        .map(|k| QueueMessage::Redrive {
            key: k.clone(),
            by: who.name.clone(),
        })
        .collect();
    for batch in crate::intake::batches(messages) {
        queue.send_batch(&batch).await?;
    }
    for k in keys {
        audit
            .record(audit_record(who, "redrive", Some(k), detail.to_string()))
            .await?;
    }
    Ok(())
}

/// [`redrive`] of one stored entry; an unknown key is refused.
pub async fn redrive_entry(
    entries: &dyn EntryStore,
    queue: &dyn Queue,
    audit: &dyn AuditLog,
    who: &Actor,
    key: &EntryKey,
    detail: &str,
) -> Result<(), EntryActionError> {
    if entries.get(key).await?.is_none() {
        return Err(EntryActionError::NotFound(key.clone()));
    }
    Ok(redrive(queue, audit, who, std::slice::from_ref(key), detail).await?)
}

/// Put one dead letter back on the ingest queue, audited.
pub async fn redrive_dead_letter(
    queue: &dyn Queue,
    audit: &dyn AuditLog,
    who: &Actor,
    id: &str,
) -> Result<(), StoreError> {
    queue.redrive(id).await?;
    audit
        .record(audit_record(
            who,
            "redrive_dead_letter",
            None,
            format!("dead letter {id} put back on the ingest queue"),
        ))
        .await?;
    Ok(())
}

/// Discard an exception or held entry: it becomes `ignored` with the
/// reason in its note (the transition recorded for the KPIs), under the
/// entry's claim, and the discard is audited.
pub async fn discard(
    entries: &dyn EntryStore,
    audit: &dyn AuditLog,
    who: &Actor,
    key: &EntryKey,
    reason: &str,
) -> Result<(), EntryActionError> {
    const OWNER: &str = "console-discard";
    if !entries.claim(key, OWNER, Duration::from_secs(30)).await? {
        return Err(EntryActionError::Busy(key.clone()));
    }
    let result = async {
        let mut st = entries
            .get(key)
            .await?
            .ok_or_else(|| EntryActionError::NotFound(key.clone()))?;
        if !matches!(st.status(), Status::Exception | Status::Held) {
            return Err(EntryActionError::NotOpen {
                key: key.clone(),
                status: st.status(),
            });
        }
        let was = st
            .reason
            .as_ref()
            .map(|r| r.code.as_str())
            .unwrap_or("no reason");
        let detail = format!("was {} ({was}): {reason}", st.status());
        st.set_status(Status::Ignored, Utc::now());
        st.note = Some(format!("discarded by {}: {reason}", who.name));
        st.reason = None;
        entries.put(&st).await?;
        audit
            .record(audit_record(who, "discard", Some(key), detail))
            .await?;
        Ok(())
    }
    .await;
    if let Err(e) = entries.release(key, OWNER).await {
        tracing::warn!(entry = %key, error = %e, "could not release claim");
    }
    result
}
