//! Xero Projects: postings become project time entries
//! (`POST /projects.xro/2.0/Projects/{projectId}/Time`), in whole minutes.
//!
//! Mapping: the line's customer is the Xero project id, the party id is the
//! Xero user id, the service item is the task id. An overtime line whose
//! payroll item is set is logged against that task instead (a task carrying
//! the overtime rate — Xero Projects has no earnings rates of its own).
//! Xero keeps no sync token: timepost stores a digest of what it sent.
//! A record id is `projectId/timeEntryId`, since every URL needs both.
//!
//! Every call carries `xero-tenant-id` and an `Idempotency-Key` derived from
//! the request's key (entry identity + version), the line and the action.
//! A DELETE answered 404 is taken as done (a retry after a lost answer).

// `LedgerError` is the port's error type and carries the exception inline.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::transport::{HttpCall, HttpReply, Transport};
use super::{Ledger, LedgerError, LedgerOp, LedgerRequest, PostingLine, RecordRef};
use crate::exceptions::{Exception, ExceptionCode};

/// Xero's limits on one time entry, in minutes.
pub const MIN_MINUTES: i64 = 1;
pub const MAX_MINUTES: i64 = 59_940;

#[derive(Debug, Clone)]
pub struct XeroSettings {
    pub tenant_id: String,
    /// `https://api.xero.com/projects.xro/2.0` (tests: a fake).
    pub api_base: String,
}

/// The `TimeEntryCreateOrUpdate` body of the Projects API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeEntryBody {
    pub user_id: String,
    pub task_id: String,
    pub date_utc: String,
    pub duration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeEntryReply {
    time_entry_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        tier: String,
        digest: String,
    },
    Update {
        tier: String,
        id: String,
        digest: String,
    },
    Delete,
}

/// One planned call.
#[derive(Debug, Clone)]
pub struct XeroCall {
    pub call: HttpCall,
    pub action: Action,
}

fn refuse(code: ExceptionCode, msg: String) -> LedgerError {
    LedgerError::Rejected(Exception::new(code, msg))
}

/// The body for one line, checked against what Xero accepts.
pub fn body_for(line: &PostingLine) -> Result<(String, TimeEntryBody), LedgerError> {
    let project = line.customer.clone().ok_or_else(|| {
        refuse(
            ExceptionCode::LedgerValidation,
            "Xero time needs a project: map the tracker project to a Xero project id.".into(),
        )
    })?;
    let task = match (&line.payroll_item, line.tier.as_str()) {
        (Some(p), tier) if tier != "regular" => Some(p.clone()),
        _ => line.service_item.clone(),
    }
    .ok_or_else(|| {
        refuse(
            ExceptionCode::LedgerValidation,
            "Xero time needs a task: map a service item (or the tier's payroll item) to a Xero task id.".into(),
        )
    })?;
    if !(MIN_MINUTES..=MAX_MINUTES).contains(&line.minutes) {
        return Err(refuse(
            ExceptionCode::LedgerValidation,
            format!(
                "Xero takes between {MIN_MINUTES} and {MAX_MINUTES} minutes in one time entry, not {}.",
                line.minutes
            ),
        ));
    }
    Ok((
        project,
        TimeEntryBody {
            user_id: line.party.id().to_string(),
            task_id: task,
            date_utc: format!("{}T00:00:00Z", line.txn_date.format("%Y-%m-%d")),
            duration: line.minutes,
            description: Some(line.description.clone()).filter(|d| !d.is_empty()),
        },
    ))
}

fn digest(b: &TimeEntryBody) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(b).unwrap_or_default());
    hex::encode(&h.finalize()[..6])
}

/// Builds Xero calls without sending them (also what dry-run prints).
#[derive(Debug, Clone)]
pub struct XeroRequests {
    pub settings: XeroSettings,
}

impl XeroRequests {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base.trim_end_matches('/'))
    }

    fn key(req: &LedgerRequest, n: usize, what: &str) -> String {
        format!("{}:{n}:{what}", req.idempotency_key)
    }

    fn with_headers(&self, call: HttpCall, key: String) -> HttpCall {
        call.header("xero-tenant-id", self.settings.tenant_id.clone())
            .header("Idempotency-Key", key)
    }

    /// Every call one request needs, in order.
    pub fn plan(&self, req: &LedgerRequest) -> Result<Vec<XeroCall>, LedgerError> {
        let mut out = Vec::new();
        let create =
            |n: usize, l: &PostingLine, out: &mut Vec<XeroCall>| -> Result<(), LedgerError> {
                let (project, body) = body_for(l)?;
                let call = HttpCall::new("POST", self.url(&format!("/Projects/{project}/Time")))
                    .json(&body)?;
                out.push(XeroCall {
                    call: self.with_headers(call, Self::key(req, n, "create")),
                    action: Action::Create {
                        tier: l.tier.clone(),
                        digest: digest(&body),
                    },
                });
                Ok(())
            };
        let delete = |n: usize, rec: &RecordRef, out: &mut Vec<XeroCall>| {
            let call = HttpCall::new(
                "DELETE",
                self.url(&format!(
                    "/Projects/{}/Time/{}",
                    project_of(&rec.id),
                    entry_of(&rec.id)
                )),
            );
            out.push(XeroCall {
                call: self.with_headers(call, Self::key(req, n, "delete")),
                action: Action::Delete,
            });
        };
        match &req.op {
            LedgerOp::Create { lines } => {
                for (n, l) in lines.iter().enumerate() {
                    create(n, l, &mut out)?;
                }
            }
            LedgerOp::Update { records, lines } => {
                for (n, l) in lines.iter().enumerate() {
                    let (project, body) = body_for(l)?;
                    match records.iter().find(|r| r.tier == l.tier) {
                        // Same project: update in place.
                        Some(rec) if project_of(&rec.id) == project => {
                            let call = HttpCall::new(
                                "PUT",
                                self.url(&format!(
                                    "/Projects/{project}/Time/{}",
                                    entry_of(&rec.id)
                                )),
                            )
                            .json(&body)?;
                            out.push(XeroCall {
                                call: self.with_headers(call, Self::key(req, n, "update")),
                                action: Action::Update {
                                    tier: l.tier.clone(),
                                    id: rec.id.clone(),
                                    digest: digest(&body),
                                },
                            });
                        }
                        // A time entry cannot move between projects.
                        Some(rec) => {
                            delete(n, rec, &mut out);
                            create(n, l, &mut out)?;
                        }
                        None => create(n, l, &mut out)?,
                    }
                }
                let extra = records
                    .iter()
                    .filter(|r| !lines.iter().any(|l| l.tier == r.tier));
                for (n, rec) in extra.enumerate() {
                    delete(lines.len() + n, rec, &mut out);
                }
            }
            LedgerOp::Delete { records } => {
                for (n, rec) in records.iter().enumerate() {
                    delete(n, rec, &mut out);
                }
            }
        }
        Ok(out)
    }
}

pub fn project_of(id: &str) -> &str {
    id.split_once('/').map_or("", |(p, _)| p)
}

pub fn entry_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, e)| e)
}

/// The Xero Projects ledger.
pub struct XeroLedger {
    pub requests: XeroRequests,
    pub transport: Arc<Transport>,
}

impl XeroLedger {
    pub fn new(settings: XeroSettings, transport: Arc<Transport>) -> Self {
        Self {
            requests: XeroRequests { settings },
            transport,
        }
    }
}

/// A 4xx from Xero as an exception (its `message` kept verbatim).
fn rejection(reply: &HttpReply) -> LedgerError {
    let text = String::from_utf8_lossy(&reply.body);
    let message = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    let lower = message.to_ascii_lowercase();
    let (code, sentence) = match reply.status {
        401 | 403 => (
            ExceptionCode::LedgerNotAuthorised,
            "Xero refused timepost's access to this organisation.".to_string(),
        ),
        404 => (
            ExceptionCode::LedgerUnknownReference,
            "Xero has no project, task or time entry with an id this posting names.".to_string(),
        ),
        _ if lower.contains("locked") || lower.contains("invoiced") => (
            ExceptionCode::LedgerRecordLocked,
            "Xero says the time entry is locked or invoiced.".to_string(),
        ),
        _ => (
            ExceptionCode::LedgerValidation,
            format!(
                "Xero refused the time entry: {}.",
                message.trim_end_matches('.')
            ),
        ),
    };
    LedgerError::Rejected(
        Exception::new(code, sentence)
            .with_vendor_message(format!("Xero HTTP {}: {message}", reply.status)),
    )
}

#[async_trait]
impl Ledger for XeroLedger {
    fn name(&self) -> &str {
        "xero"
    }

    async fn apply(&self, request: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError> {
        let calls = self.requests.plan(request)?;
        let mut records = Vec::new();
        for c in calls {
            let reply = self.transport.send(&c.call).await?;
            let ok = (200..300).contains(&reply.status);
            match c.action {
                Action::Delete if ok || reply.status == 404 => {}
                Action::Delete => return Err(rejection(&reply)),
                _ if !ok => return Err(rejection(&reply)),
                Action::Create { tier, digest } => {
                    let parsed: Option<TimeEntryReply> = serde_json::from_slice(&reply.body).ok();
                    let Some(id) = parsed.and_then(|p| p.time_entry_id) else {
                        // A 200 without the created entry is an error body.
                        return Err(rejection(&HttpReply {
                            status: 400,
                            ..reply
                        }));
                    };
                    let project = c
                        .call
                        .url
                        .split("/Projects/")
                        .nth(1)
                        .and_then(|s| s.split('/').next())
                        .unwrap_or("");
                    records.push(RecordRef {
                        id: format!("{project}/{id}"),
                        sync_token: digest,
                        tier,
                    });
                }
                Action::Update { tier, id, digest } => records.push(RecordRef {
                    id,
                    sync_token: digest,
                    tier,
                }),
            }
        }
        Ok(records)
    }
}
