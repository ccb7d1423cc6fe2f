//! The dry-run ledger: renders, with the configured adapter's own request
//! builder, the exact HTTP calls each request would make, records them, and
//! answers as the ledger would (made-up record ids) without sending
//! anything. `timepost sync --dry-run` runs the engine against it on a copy
//! of the store.

// `LedgerError` is the port's error type and carries the exception inline.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;

use super::cloud::Planner;
use super::transport::HttpCall;
use super::{Ledger, LedgerError, LedgerOp, LedgerRequest, RecordRef};

/// One request and the calls it would make.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub entry: String,
    pub operation: &'static str,
    pub idempotency_key: String,
    /// What the engine asked for (shown for the sandbox, which has no HTTP).
    pub op: LedgerOp,
    /// Empty for the sandbox, which is not reached over HTTP.
    pub calls: Vec<HttpCall>,
    /// Why the adapter would refuse it before sending, if it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

pub struct RecordingLedger {
    name: String,
    planner: Option<Planner>,
    recorded: Mutex<Vec<Recorded>>,
    next_id: Mutex<u64>,
}

impl RecordingLedger {
    /// `planner` is `None` for a ledger without HTTP (the sandbox).
    pub fn new(name: &str, planner: Option<Planner>) -> Self {
        Self {
            name: name.to_string(),
            planner,
            recorded: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
        }
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A made-up record for `line`, in the shape the ledger's ids have:
    /// Xero's are `projectId/timeEntryId` (every URL needs both), so a
    /// later update or delete of it in the same dry run renders as the real
    /// `PUT` / `DELETE …/Projects/{projectId}/Time/{timeEntryId}` would.
    fn fresh(&self, line: &super::PostingLine) -> RecordRef {
        let mut n = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        let id = match (self.name.as_str(), line.customer.as_deref()) {
            ("xero", Some(project)) => format!("{project}/dry-run-{n}"),
            _ => format!("dry-run-{n}"),
        };
        RecordRef {
            id,
            sync_token: "0".into(),
            tier: line.tier.clone(),
        }
    }

    /// Whether an update keeps `record` for `line` (Xero: a time entry
    /// cannot move between projects; it is deleted and created anew).
    fn keeps(&self, record: &RecordRef, line: &super::PostingLine) -> bool {
        self.name != "xero" || line.customer.as_deref() == Some(super::xero::project_of(&record.id))
    }
}

#[async_trait]
impl Ledger for RecordingLedger {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(&self, request: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError> {
        let planned = match &self.planner {
            Some(p) => p(request),
            None => Ok(Vec::new()),
        };
        let (calls, refused) = match planned {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Recorded {
                entry: request.key.to_string(),
                operation: request.op.name(),
                idempotency_key: request.idempotency_key.clone(),
                op: request.op.clone(),
                calls,
                refused: refused.as_ref().map(|e| e.to_string()),
            });
        if let Some(e) = refused {
            return Err(e);
        }
        Ok(match &request.op {
            LedgerOp::Create { lines } => lines.iter().map(|l| self.fresh(l)).collect(),
            LedgerOp::Update { records, lines } => lines
                .iter()
                .map(|l| match records.iter().find(|r| r.tier == l.tier) {
                    Some(r) if self.keeps(r, l) => RecordRef {
                        sync_token: format!("{}+1", r.sync_token),
                        ..r.clone()
                    },
                    _ => self.fresh(l),
                })
                .collect(),
            LedgerOp::Delete { .. } => Vec::new(),
        })
    }
}
