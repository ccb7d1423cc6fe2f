//! Approve or reject time awaiting approval. An approval travels as
//! `QueueMessage::Approval`, which the engine applies to every entry of
//! that user in the message's date range; so the range is restricted to
//! exactly the selected dates (one message per contiguous run of dates per
//! user-week), and a selection that would also sweep in an unselected entry
//! of the same user on the same day is refused rather than widened.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::entries::audit_record;
use crate::model::{ApprovalStatus, EntryKey, WorkerWeek};
use crate::ports::{AuditLog, EntryStore, Queue, QueueMessage, StoreError};
use crate::review::Actor;
use crate::state::Status;

/// Why a decision on time was refused (nothing was queued).
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("select at least one entry")]
    NothingSelected,
    #[error("no entry {0}")]
    NotFound(EntryKey),
    #[error("entry {key} is {status}, not awaiting approval")]
    NotWaiting { key: EntryKey, status: Status },
    #[error("entry {key} of the same person on {date} is not selected, and approvals apply to a whole day: select it too")]
    DayNotWhole { key: EntryKey, date: NaiveDate },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Split sorted dates into contiguous runs `(first, last)`.
pub fn runs(dates: &BTreeSet<NaiveDate>) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for d in dates {
        match out.last_mut() {
            Some((_, last)) if *last + chrono::Duration::days(1) == *d => *last = *d,
            _ => out.push((*d, *d)),
        }
    }
    out
}

/// Approve or reject `keys` (each must be awaiting approval). Returns how
/// many messages were queued. Audited per entry.
pub async fn decide(
    entries: &dyn EntryStore,
    queue: &dyn Queue,
    audit: &dyn AuditLog,
    who: &Actor,
    keys: &[EntryKey],
    status: ApprovalStatus,
) -> Result<usize, ApprovalError> {
    if keys.is_empty() {
        return Err(ApprovalError::NothingSelected);
    }
    let mut weeks: BTreeMap<WorkerWeek, BTreeSet<NaiveDate>> = BTreeMap::new();
    let selected: BTreeSet<&EntryKey> = keys.iter().collect();
    for k in &selected {
        let st = entries
            .get(k)
            .await?
            .ok_or_else(|| ApprovalError::NotFound((*k).clone()))?;
        if st.status() != Status::AwaitingApproval {
            return Err(ApprovalError::NotWaiting {
                key: (*k).clone(),
                status: st.status(),
            });
        }
        weeks
            .entry(WorkerWeek::of(&st.entry))
            .or_default()
            .insert(st.entry.work_date);
    }
    // An Approval message applies to every entry of the user on its dates:
    // refuse rather than change an entry nobody selected.
    for (ww, dates) in &weeks {
        for other in entries.week(ww).await? {
            let e = &other.entry;
            if dates.contains(&e.work_date)
                && !selected.contains(&e.key)
                && !e.deleted
                && e.approval != status
            {
                return Err(ApprovalError::DayNotWhole {
                    key: e.key.clone(),
                    date: e.work_date,
                });
            }
        }
    }
    let mut messages = Vec::new();
    for (ww, dates) in &weeks {
        for (from, to) in runs(dates) {
            messages.push(QueueMessage::Approval {
                source: ww.source,
                workspace: ww.workspace.clone(),
                user_id: ww.user_id.clone(),
                from,
                to,
                status,
                by: who.name.clone(),
            });
        }
    }
    let n = messages.len();
    for batch in crate::intake::batches(messages) {
        queue.send_batch(&batch).await?;
    }
    let action = match status {
        ApprovalStatus::Approved => "approve",
        _ => "reject",
    };
    for k in &selected {
        audit
            .record(audit_record(
                who,
                action,
                Some(*k),
                format!("{n} approval message(s) queued"),
            ))
            .await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_split_into_contiguous_runs() {
        let d = |n| NaiveDate::from_ymd_opt(2026, 3, n).unwrap();
        let set: BTreeSet<_> = [d(2), d(3), d(5), d(6), d(7)].into_iter().collect();
        assert_eq!(runs(&set), vec![(d(2), d(3)), (d(5), d(7))]);
        assert!(runs(&BTreeSet::new()).is_empty());
    }
}
