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
//!
//! Dates: `dateUtc` is an instant, shown in the organisation's time zone
//! (Xero Projects API, `TimeEntry.dateUtc`; VENDOR-FACTS.md "Xero"). A
//! line's work date is sent as the start of that date in the organisation's
//! zone, as UTC ([`xero_timezone::date_utc`]), so it reads as that date in
//! Xero whatever side of UTC the organisation is on; listed entries read
//! back in the same zone. The zone is `[ledger.xero] time_zone` when set,
//! else the organisation's own (`GET /api.xro/2.0/Organisation` →
//! `Timezone`, read once per connection and cached).
//!
//! Chargeable time: whether time is invoiceable, and at what rate, is set
//! on the Xero task (`Task.chargeType` TIME | FIXED | NON_CHARGEABLE), not
//! on the time entry (VENDOR-FACTS.md "Xero"). Before anything is sent,
//! each line's task is looked up (`GET /Projects/{projectId}/Tasks`, once
//! per project and connection): non-billable time on a chargeable task, or
//! billable time on a NON_CHARGEABLE one, is refused with the mapping to
//! fix (a `service_item` row's `non_billable` attribute names the task for
//! non-billable time).
//!
//! Every time entry created or rewritten carries its fingerprint in
//! `description` ([`LedgerRequest::marked_description`]), and
//! [`XeroLedger`]'s `read_books` lists the entries back
//! (`GET /Projects/{projectId}/Time` with `dateAfterUtc`, `dateBeforeUtc`,
//! `page`, `pageSize`, following `pagination.pageCount`) through the same
//! transport (OAuth, tenant header, rate limiter) as the writes.
//!
//! The Projects API has no change feed (no "modified since" on time
//! entries), so [`XeroLedger`] keeps the port's default
//! [`Ledger::book_changes`]: the scheduled pass over the books reads them
//! with `read_books` instead.

// `LedgerError` is the port's error type and carries the exception inline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::books::{fingerprint_of, unmarked, BookQuery, BookRecord};
use super::transport::{url_encode, HttpCall, HttpReply, Transport};
use super::xero_timezone;
use super::{Ledger, LedgerError, LedgerOp, LedgerRequest, Party, PostingLine, RecordRef};
use crate::exceptions::{Exception, ExceptionCode};

/// Xero's limits on one time entry, in minutes.
pub const MIN_MINUTES: i64 = 1;
pub const MAX_MINUTES: i64 = 59_940;

/// The longest `description` timepost sends. The Projects API publishes no
/// limit; timepost keeps to the 4000 characters it allows everywhere.
pub const MAX_DESCRIPTION: usize = crate::pipeline::MAX_DESCRIPTION_CHARS;

/// Items per page of a list (`pageSize`: the Projects API takes 1..=500).
pub const PAGE_SIZE: u32 = 500;

#[derive(Debug, Clone)]
pub struct XeroSettings {
    pub tenant_id: String,
    /// `https://api.xero.com/projects.xro/2.0` (tests: a fake).
    pub api_base: String,
    /// `https://api.xero.com/api.xro/2.0`: the Accounting API, read for the
    /// organisation's time zone.
    pub accounting_base: String,
    /// The organisation's time zone when configured (then the
    /// `Organisation` endpoint is not read).
    pub time_zone: Option<Tz>,
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

/// The body `request` sends for `line`: [`body_for`] with the fingerprint
/// marker in `description`.
pub fn body_for_request(
    request: &LedgerRequest,
    line: &PostingLine,
    tz: Tz,
) -> Result<(String, TimeEntryBody), LedgerError> {
    let (project, mut body) = body_for(line, tz)?;
    body.description =
        Some(request.marked_description(line, MAX_DESCRIPTION)).filter(|d| !d.is_empty());
    Ok((project, body))
}

/// The body for one line, checked against what Xero accepts; `tz` is the
/// organisation's time zone (`dateUtc` is the work date's start there).
pub fn body_for(line: &PostingLine, tz: Tz) -> Result<(String, TimeEntryBody), LedgerError> {
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
            date_utc: xero_timezone::date_utc(line.txn_date, tz),
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

    /// Every call one request needs, in order, dated in the configured
    /// time zone (UTC when none is configured: what a planner without a
    /// connection can know). [`XeroLedger`] plans with the organisation's.
    pub fn plan(&self, req: &LedgerRequest) -> Result<Vec<XeroCall>, LedgerError> {
        self.plan_in(req, self.settings.time_zone.unwrap_or(Tz::UTC))
    }

    /// Every call one request needs, in order, dates in `tz`.
    pub fn plan_in(&self, req: &LedgerRequest, tz: Tz) -> Result<Vec<XeroCall>, LedgerError> {
        let mut out = Vec::new();
        let create =
            |n: usize, l: &PostingLine, out: &mut Vec<XeroCall>| -> Result<(), LedgerError> {
                let (project, body) = body_for_request(req, l, tz)?;
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
                    let (project, body) = body_for_request(req, l, tz)?;
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

impl XeroRequests {
    /// One page of `project`'s time entries dated `from` ..= `to` in `tz`
    /// (the organisation's zone: from the start of `from` there to the
    /// second before the start of the day after `to`).
    pub fn time_list_call(
        &self,
        project: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        page: u32,
        tz: Tz,
    ) -> HttpCall {
        let utc = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let after = xero_timezone::start_of_day(from, tz);
        let before = to
            .succ_opt()
            .map(|d| xero_timezone::start_of_day(d, tz) - chrono::Duration::seconds(1))
            .unwrap_or(after);
        let url = self.url(&format!(
            "/Projects/{project}/Time?dateAfterUtc={}&dateBeforeUtc={}&page={page}&pageSize={PAGE_SIZE}",
            url_encode(&utc(after)),
            url_encode(&utc(before)),
        ));
        HttpCall::new("GET", url).header("xero-tenant-id", self.settings.tenant_id.clone())
    }

    /// `GET /api.xro/2.0/Organisation` (Accounting API): the organisation,
    /// whose `Timezone` dates the time entries.
    pub fn organisation_call(&self) -> HttpCall {
        HttpCall::new(
            "GET",
            format!(
                "{}/Organisation",
                self.settings.accounting_base.trim_end_matches('/')
            ),
        )
        .header("xero-tenant-id", self.settings.tenant_id.clone())
        .header("Accept", "application/json".to_string())
    }

    /// One page of `project`'s tasks (`GET /Projects/{projectId}/Tasks`).
    pub fn tasks_call(&self, project: &str, page: u32) -> HttpCall {
        HttpCall::new(
            "GET",
            self.url(&format!(
                "/Projects/{project}/Tasks?page={page}&pageSize={PAGE_SIZE}"
            )),
        )
        .header("xero-tenant-id", self.settings.tenant_id.clone())
    }

    /// One page of the organisation's projects (no `states` filter).
    pub fn projects_call(&self, page: u32) -> HttpCall {
        HttpCall::new(
            "GET",
            self.url(&format!("/Projects?page={page}&pageSize={PAGE_SIZE}")),
        )
        .header("xero-tenant-id", self.settings.tenant_id.clone())
    }
}

/// `pagination` of a list answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    #[serde(default)]
    page_count: Option<u32>,
}

/// A list answer (`TimeEntries`, `Projects`): `pagination` and `items`.
#[derive(Debug, Deserialize)]
struct Listing<T> {
    #[serde(default)]
    pagination: Option<Pagination>,
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

impl<T> Listing<T> {
    /// Whether a page follows page `page`: as `pagination.pageCount` says,
    /// or (without it) when this page was full.
    fn more_after(&self, page: u32) -> bool {
        match self.pagination.as_ref().and_then(|p| p.page_count) {
            Some(count) => page < count,
            None => self.items.len() >= PAGE_SIZE as usize,
        }
    }
}

/// A `Task` as listed: its id and `chargeType`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskItem {
    task_id: String,
    #[serde(default)]
    charge_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectItem {
    project_id: String,
}

/// A `TimeEntry` as listed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeEntryItem {
    time_entry_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    date_utc: Option<String>,
    #[serde(default)]
    duration: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// One listed time entry as a book record. Its id is `projectId/timeEntryId`
/// (as [`RecordRef`]s are); its date is the date `dateUtc` reads as in the
/// organisation's zone `tz` (as Xero's screens show it); its `sync_token` is the digest of its fields as
/// a body, so it equals the `RecordRef`'s while the entry is as timepost
/// wrote it. `INVOICED` and `LOCKED` entries are locked. Whether time is
/// chargeable is set on its task, so `billable` is unknown (`None`).
fn time_record(project: &str, e: TimeEntryItem, tz: Tz) -> Result<BookRecord, LedgerError> {
    let date_utc = e.date_utc.unwrap_or_default();
    let txn_date = chrono::DateTime::parse_from_rfc3339(&date_utc)
        .map(|d| xero_timezone::local_date(d.with_timezone(&chrono::Utc), tz))
        .ok()
        .or_else(|| {
            date_utc
                .get(..10)
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        })
        .ok_or_else(|| {
            LedgerError::Transient(format!(
                "Xero listed time entry {} without a readable dateUtc ({date_utc:?})",
                e.time_entry_id
            ))
        })?;
    let project = e
        .project_id
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| project.to_string());
    let minutes = e.duration.unwrap_or(0);
    let service_item = e.task_id.clone().filter(|t| !t.is_empty());
    let sync_token = digest(&TimeEntryBody {
        user_id: e.user_id.clone().unwrap_or_default(),
        task_id: e.task_id.unwrap_or_default(),
        date_utc,
        duration: minutes,
        description: e.description.clone(),
    });
    let description = e.description.unwrap_or_default();
    Ok(BookRecord {
        id: format!("{project}/{}", e.time_entry_id),
        sync_token,
        fingerprint: fingerprint_of(&description).map(str::to_string),
        txn_date,
        party: e.user_id.map(|id| Party::Employee { id }),
        minutes,
        customer: Some(project),
        billable: None,
        service_item,
        hourly_rate: None,
        description: unmarked(&description).to_string(),
        locked: matches!(e.status.as_deref(), Some("INVOICED" | "LOCKED")),
    })
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
    /// The organisation's time zone, once read (per connection).
    org_tz: OnceLock<Tz>,
    /// Each project's tasks → `chargeType`, once read (per connection).
    charge_types: Mutex<HashMap<String, HashMap<String, String>>>,
}

/// `GET /Organisation`'s answer: `Organisations[0].Timezone`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Organisations {
    #[serde(default)]
    organisations: Vec<OrganisationItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OrganisationItem {
    #[serde(default)]
    timezone: Option<String>,
}

impl XeroLedger {
    pub fn new(settings: XeroSettings, transport: Arc<Transport>) -> Self {
        let org_tz = OnceLock::new();
        if let Some(tz) = settings.time_zone {
            let _ = org_tz.set(tz);
        }
        Self {
            requests: XeroRequests { settings },
            transport,
            org_tz,
            charge_types: Mutex::new(HashMap::new()),
        }
    }

    /// `task`'s `chargeType` in `project` (`None`: not a task of the
    /// project; Xero answers for that itself).
    async fn charge_type(&self, project: &str, task: &str) -> Result<Option<String>, LedgerError> {
        let cached = self
            .charge_types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(project)
            .map(|t| t.get(task).cloned());
        if let Some(ct) = cached {
            return Ok(ct);
        }
        let mut tasks = HashMap::new();
        let mut page = 1;
        loop {
            let listing: Listing<TaskItem> =
                self.list(&self.requests.tasks_call(project, page)).await?;
            let more = listing.more_after(page) && !listing.items.is_empty();
            for t in listing.items {
                tasks.insert(t.task_id, t.charge_type.unwrap_or_default());
            }
            if !more {
                break;
            }
            page += 1;
        }
        let ct = tasks.get(task).cloned();
        self.charge_types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project.to_string(), tasks);
        Ok(ct)
    }

    /// Refuse, before anything is sent, a line whose billability the
    /// task's `chargeType` contradicts.
    async fn check_chargeable(&self, request: &LedgerRequest, tz: Tz) -> Result<(), LedgerError> {
        let lines = match &request.op {
            LedgerOp::Create { lines } | LedgerOp::Update { lines, .. } => lines,
            LedgerOp::Delete { .. } => return Ok(()),
        };
        for line in lines {
            let (project, body) = body_for(line, tz)?;
            let Some(ct) = self.charge_type(&project, &body.task_id).await? else {
                continue;
            };
            let task = &body.task_id;
            let where_ = if line.tier == "regular" {
                "the `service_item` mapping row of this work".to_string()
            } else {
                format!("the `payroll_item` mapping row of tier `{}`", line.tier)
            };
            if !line.billable && ct != "NON_CHARGEABLE" {
                return Err(refuse(
                    ExceptionCode::LedgerValidation,
                    format!(
                        "This time is not billable, but Xero task {task} is chargeable ({ct}), so it would become invoiceable. Map a NON_CHARGEABLE task for non-billable time: add `non_billable=<task id>` to the attributes of {where_}, then redrive."
                    ),
                ));
            }
            if line.billable && ct == "NON_CHARGEABLE" {
                return Err(refuse(
                    ExceptionCode::LedgerValidation,
                    format!(
                        "This time is billable, but Xero task {task} is NON_CHARGEABLE, so it would never be invoiced. Point {where_} at a chargeable task (chargeType TIME), then redrive."
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The organisation's time zone: `[ledger.xero] time_zone`, else read
    /// once from `GET /Organisation` (`Timezone`) and kept. A zone timepost
    /// cannot translate is refused with the setting to use instead.
    pub async fn organisation_time_zone(&self) -> Result<Tz, LedgerError> {
        if let Some(tz) = self.org_tz.get() {
            return Ok(*tz);
        }
        let reply = self
            .transport
            .send(&self.requests.organisation_call())
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(rejection(&reply));
        }
        let org: Organisations = serde_json::from_slice(&reply.body).map_err(|e| {
            LedgerError::Transient(format!(
                "Xero answered the Organisation request with unreadable JSON: {e}"
            ))
        })?;
        let name = org
            .organisations
            .into_iter()
            .next()
            .and_then(|o| o.timezone)
            .unwrap_or_default();
        let tz = xero_timezone::iana(&name).ok_or_else(|| {
            refuse(
                ExceptionCode::LedgerValidation,
                format!(
                    "Xero says the organisation's time zone is `{name}`, which timepost cannot translate; set `[ledger.xero] time_zone` to its IANA name (e.g. \"Pacific/Auckland\"), then redrive."
                ),
            )
        })?;
        let _ = self.org_tz.set(tz);
        Ok(tz)
    }

    /// One list page, parsed; a non-2xx answer is the error it means.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        call: &HttpCall,
    ) -> Result<Listing<T>, LedgerError> {
        let reply = self.transport.send(call).await?;
        if !(200..300).contains(&reply.status) {
            return Err(rejection(&reply));
        }
        serde_json::from_slice(&reply.body).map_err(|e| {
            LedgerError::Transient(format!("Xero answered a list with unreadable JSON: {e}"))
        })
    }

    /// Every project of the organisation (`GET /Projects`, all pages).
    pub async fn project_ids(&self) -> Result<Vec<String>, LedgerError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let listing: Listing<ProjectItem> =
                self.list(&self.requests.projects_call(page)).await?;
            let more = listing.more_after(page) && !listing.items.is_empty();
            out.extend(listing.items.into_iter().map(|p| p.project_id));
            if !more {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// `project`'s time entries in `query`'s scope, every page.
    async fn project_time(
        &self,
        project: &str,
        query: &BookQuery,
        out: &mut Vec<BookRecord>,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<(), LedgerError> {
        let tz = self.organisation_time_zone().await?;
        let mut page = 1;
        loop {
            let call = self
                .requests
                .time_list_call(project, query.from, query.to, page, tz);
            let listing: Listing<TimeEntryItem> = self.list(&call).await?;
            let more = listing.more_after(page) && !listing.items.is_empty();
            for item in listing.items {
                let rec = time_record(project, item, tz)?;
                if query.covers(rec.txn_date, rec.party.as_ref(), rec.customer.as_deref())
                    && seen.insert(rec.id.clone())
                {
                    out.push(rec);
                }
            }
            if !more {
                return Ok(());
            }
            page += 1;
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
        let tz = self.organisation_time_zone().await?;
        let calls = self.requests.plan_in(request, tz)?;
        self.check_chargeable(request, tz).await?;
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

    /// The time entries of `query`'s customers — each a Xero project id, as
    /// a posting line's customer is — dated within its range, every page
    /// of each (`pagination.pageCount`), narrowed to its parties here.
    ///
    /// A query that names no customers reads **every project of the
    /// organisation**: `GET /Projects` (all pages, no `states` filter),
    /// then each project's time — one call per page of projects plus at
    /// least one per project. Each page is one read call
    /// ([`Transport::counts`](super::transport::Transport::counts)).
    async fn read_books(&self, query: &BookQuery) -> Result<Option<Vec<BookRecord>>, LedgerError> {
        let mut out = Vec::new();
        if query.from > query.to {
            return Ok(Some(out));
        }
        let projects = if query.customers.is_empty() {
            self.project_ids().await?
        } else {
            let mut p = query.customers.clone();
            p.sort();
            p.dedup();
            p
        };
        let mut seen = std::collections::HashSet::new();
        for project in &projects {
            self.project_time(project, query, &mut out, &mut seen)
                .await?;
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: serde_json::Value) -> TimeEntryItem {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_listed_time_entry_reads_back_as_a_book_record() {
        let fp = super::super::books::fingerprint("i-1", "regular");
        let body = TimeEntryBody {
            user_id: "u-1".into(),
            task_id: "t-1".into(),
            date_utc: "2026-03-02T00:00:00Z".into(),
            duration: 95,
            description: Some(super::super::books::mark("Deploy", &fp, MAX_DESCRIPTION)),
        };
        let mut v = serde_json::to_value(&body).unwrap_or_default();
        v["timeEntryId"] = "e-1".into();
        v["projectId"] = "p-1".into();
        v["status"] = "INVOICED".into();
        let r = time_record("p-1", item(v), Tz::UTC).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.id, "p-1/e-1");
        assert_eq!(
            r.sync_token,
            digest(&body),
            "unchanged since timepost wrote it"
        );
        assert_eq!(r.fingerprint.as_deref(), Some(fp.as_str()));
        assert_eq!(r.description, "Deploy");
        assert_eq!(r.txn_date.to_string(), "2026-03-02");
        assert_eq!((r.minutes, r.locked, r.billable), (95, true, None));
        assert_eq!(r.party, Some(Party::Employee { id: "u-1".into() }));
        assert_eq!(r.customer.as_deref(), Some("p-1"));

        let active = time_record(
            "p-1",
            item(
                serde_json::json!({"timeEntryId": "e-2", "dateUtc": "2026-03-02T15:00:00Z",
                "duration": 5, "status": "ACTIVE"}),
            ),
            Tz::UTC,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!active.locked && active.fingerprint.is_none());
        assert!(time_record(
            "p-1",
            item(serde_json::json!({"timeEntryId": "e-3"})),
            Tz::UTC
        )
        .is_err());
        // Read in the organisation's zone: 11:00Z on 1 March is 2 March in
        // Auckland, 05:00Z on 2 March is 2 March in New York.
        let at = |d: &str, tz: Tz| {
            time_record(
                "p-1",
                item(serde_json::json!({"timeEntryId": "e-4", "dateUtc": d, "duration": 5})),
                tz,
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .txn_date
            .to_string()
        };
        assert_eq!(
            at("2026-03-01T11:00:00Z", chrono_tz::Pacific::Auckland),
            "2026-03-02"
        );
        assert_eq!(
            at("2026-03-02T05:00:00Z", chrono_tz::America::New_York),
            "2026-03-02"
        );
        assert_eq!(at("2026-03-02T05:00:00Z", Tz::UTC), "2026-03-02");
    }
}
