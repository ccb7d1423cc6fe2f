//! What timepost remembers about each entry: the newest version seen, where
//! it stands, and what the ledger holds for it. Keyed by entry identity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::exceptions::Exception;
use crate::ledger::{PostingLine, RecordRef};
use crate::model::{NormalisedEntry, Version};

/// The one visible state every entry ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In the books.
    Posted,
    /// Waiting for a manager's approval before it may reach the books.
    AwaitingApproval,
    /// Parked until a missing mapping exists; posts by itself afterwards.
    Held,
    /// Could not be posted; finance must act (see the reason) and redrive.
    Exception,
    /// Deleted in the tracker; whatever of it was in the books is removed.
    Voided,
    /// Not postable, nothing to do (a running timer, zero time).
    Ignored,
}

impl Status {
    pub const ALL: &'static [Status] = &[
        Status::Posted,
        Status::AwaitingApproval,
        Status::Held,
        Status::Exception,
        Status::Voided,
        Status::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Posted => "posted",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Held => "held",
            Status::Exception => "exception",
            Status::Voided => "voided",
            Status::Ignored => "ignored",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}`"))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who routed an entry to the holding account, when, and the reason it
/// could not post normally at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingRoute {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Exception>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryState {
    /// The newest version of the entry seen so far.
    pub entry: NormalisedEntry,
    /// Private: it changes only through [`EntryState::set_status`], which
    /// records the transition.
    status: Status,
    /// Content hash of the version a manager approved last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_hash: Option<String>,
    /// What the ledger holds for this entry now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordRef>,
    /// The lines those records were posted with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub posted_lines: Vec<PostingLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_version: Option<Version>,
    /// Why the entry is held or an exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Exception>,
    /// A short note for the other states (why it waits or was ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The import batch that last changed the ledger for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Set when someone routed the entry to the holding account: from then
    /// on it posts there (`pipeline::holding_decision`) whatever the
    /// mappings say, so the routing is idempotent and survives redrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<HoldingRoute>,
    /// When the entry last became an exception or held (for the time to
    /// resolve KPI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_since: Option<DateTime<Utc>>,
    /// When it last left exception / held for the books, a discard or a
    /// void.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it first reached the books (posting latency = this minus
    /// `first_seen_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency counter; the store refuses a stale write.
    pub revision: u64,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EntryState {
    pub fn new(entry: NormalisedEntry, now: DateTime<Utc>) -> Self {
        Self {
            entry,
            status: Status::Ignored,
            approved_hash: None,
            records: Vec::new(),
            posted_lines: Vec::new(),
            posted_version: None,
            reason: None,
            note: None,
            batch_id: None,
            holding: None,
            open_since: None,
            resolved_at: None,
            posted_at: None,
            revision: 0,
            first_seen_at: now,
            updated_at: now,
        }
    }

    /// Where the entry stands.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Move to `status` at `now`, recording the transition (the open and
    /// resolved times the KPIs read). Every status change, the engine's
    /// included, goes through here: the field is private.
    pub fn set_status(&mut self, status: Status, now: DateTime<Utc>) {
        let before = self.status;
        self.status = status;
        self.updated_at = now;
        self.note_transition(before, now);
    }

    /// Record the timestamps of a status change from `before` at `now`.
    fn note_transition(&mut self, before: Status, now: DateTime<Utc>) {
        let open = |s: Status| matches!(s, Status::Exception | Status::Held);
        if open(self.status) && !open(before) {
            self.open_since = Some(now);
            self.resolved_at = None;
        }
        if open(before)
            && matches!(
                self.status,
                Status::Posted | Status::Ignored | Status::Voided
            )
        {
            self.resolved_at = Some(now);
        }
        if self.status == Status::Posted && self.posted_at.is_none() {
            self.posted_at = Some(now);
        }
    }

    /// Total minutes now in the books for this entry.
    pub fn posted_minutes(&self) -> i64 {
        self.posted_lines.iter().map(|l| l.minutes).sum()
    }
}

#[cfg(test)]
mod set_status_tests {
    use super::*;

    fn state() -> EntryState {
        let entry: NormalisedEntry = serde_json::from_value(serde_json::json!({
            "key": {"source": "toggl", "workspace": "1", "id": "1"},
            "version": {"updated_at": "2026-03-02T00:00:00Z", "content_hash": "h"},
            "worker": {"tracker_user_id": "u"}, "time_zone": "UTC", "work_date": "2026-03-02",
            "duration_secs": 3600, "billable": false, "approval": "approved", "origin": "web"
        }))
        .expect("entry");
        EntryState::new(entry, Utc::now())
    }

    #[test]
    fn every_status_change_records_when_it_opened_and_resolved() {
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::minutes(90);
        let mut s = state();
        s.set_status(Status::Exception, t0);
        assert_eq!(
            (s.open_since, s.resolved_at, s.updated_at),
            (Some(t0), None, t0)
        );
        // Exception → held stays open from the first moment.
        s.set_status(Status::Held, t1);
        assert_eq!(s.open_since, Some(t0));
        s.set_status(Status::Posted, t1);
        assert_eq!((s.resolved_at, s.posted_at), (Some(t1), Some(t1)));
        // A later posted → ignored move resolves nothing new.
        s.set_status(Status::Ignored, t1 + chrono::Duration::minutes(5));
        assert_eq!(s.resolved_at, Some(t1));
    }
}
