//! QuickBooks Online: postings become `TimeActivity` records, sent through
//! the batch endpoint (`POST /v3/company/{realm}/batch`).
//!
//! - Employee time names `EmployeeRef` (`NameOf: Employee`), contractor time
//!   `VendorRef` (`NameOf: Vendor`); customer/job, service item, class,
//!   department and payroll item (overtime tiers carry their own) come from
//!   the posting line; billable lines carry `HourlyRate` and need a
//!   customer (checked before sending, as QBO would refuse them).
//! - Updates are sparse (`"sparse": true`) and carry only the fields
//!   timepost owns (those [`TimeActivity::from_line`] fills) with the
//!   record's `SyncToken`, so what others set in QuickBooks (`Taxable`,
//!   `CostRate`, `ProjectRef`, links) survives: a full update would reset
//!   every field it omits (VENDOR-FACTS, QuickBooks Online, corrected). The
//!   price: a reference the new line no longer names (a class taken off
//!   the mapping) is not cleared.
//!   Deletes are batch `delete` items with `Id` + `SyncToken`.
//! - Before an update or delete the records are read (`query … where Id
//!   in (…)`): one QuickBooks marks `HasBeenBilled` is invoiced time, and
//!   the change is refused before anything is sent (`LEDGER_RECORD_LOCKED`).
//! - The company's `Preferences` are read once per connection and kept
//!   ([`CompanyPrefs`]): a class or location (department) is sent only
//!   where the company tracks them, else the line is refused naming the
//!   setting; a billable rate is sent only in the company's home currency
//!   (`CurrencyPrefs.HomeCurrency`; a TimeActivity has no currency), else
//!   refused. Whether the company has QuickBooks Payroll is not in its
//!   preferences, so `[ledger.qbo] payroll` says it: pay types
//!   (`PayrollItemRef`) are sent only then.
//! - Faults come in three shapes (see [`super::qbo_faults`]); a 401 / 403
//!   names the host it came from and asks whether the company is a
//!   sandbox one (`[ledger.qbo] environment`).
//! - Every batch call carries `requestid`: a single request's own
//!   idempotency key (36 characters, from entry identity + version), or for
//!   a batch of several requests a digest of theirs, so a call retried after a
//!   crash is answered with the original result instead of new records.
//! - A 200 that carries a `Fault` is an error; faults map to exceptions in
//!   [`super::qbo_faults`].
//! - Every TimeActivity created or rewritten carries its fingerprint in
//!   `Description` ([`LedgerRequest::marked_description`], within QBO's
//!   4000 characters), so [`QboLedger`]'s `read_books` can find it again:
//!   `GET /v3/company/{realm}/query` with `select * from TimeActivity where
//!   TxnDate >= … and TxnDate <= … STARTPOSITION n MAXRESULTS 1000`, paged
//!   until a short page, through the same transport (OAuth, rate limiter) as
//!   the writes. Only `TxnDate` goes into the query: Intuit's TimeActivity
//!   reference marks `Id`, `TxnDate` and `MetaData` times filterable, not
//!   `EmployeeRef`, `VendorRef` or `CustomerRef`, so parties and customers
//!   are filtered here.

// `LedgerError` is the port's error type and carries the exception inline.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::books::{fingerprint_of, unmarked, BookQuery, BookRecord};
use super::cloud::QboEnvironment;
use super::qbo_faults::Fault;
use super::transport::{host_of, url_encode, HttpCall, HttpReply, Transport};
use super::{Ledger, LedgerError, LedgerOp, LedgerRequest, Party, PostingLine, RecordRef};
use crate::exceptions::{Exception, ExceptionCode};

pub use crate::config::ledgers::MAX_BATCH_LIMIT;

/// `Description`'s limit on a TimeActivity, in characters.
pub const MAX_DESCRIPTION: usize = 4000;

/// Records per `query` page (`MAXRESULTS`; QBO returns at most 1000).
pub const QUERY_PAGE: usize = 1000;

#[derive(Debug, Clone)]
pub struct QboSettings {
    pub realm_id: String,
    /// `https://quickbooks.api.intuit.com` (sandbox:
    /// `https://sandbox-quickbooks.api.intuit.com`; tests: a fake).
    pub api_base: String,
    /// Which kind of company `realm_id` is (named in 401 / 403 exceptions).
    pub environment: QboEnvironment,
    /// The company has QuickBooks Payroll: pay types are sent.
    pub payroll: bool,
    pub minor_version: u32,
    /// Items per batch call (default 10; at most 30).
    pub max_batch: usize,
}

/// `{"value": id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub value: String,
}

fn r(id: &Option<String>) -> Option<Ref> {
    id.as_ref().map(|v| Ref { value: v.clone() })
}

/// A QBO TimeActivity as sent (create, full update, or the `Id` +
/// `SyncToken` of a delete).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeActivity {
    /// `true` on an update: fields not sent keep their value
    /// (IntuitBaseTypes.xsd `IntuitEntity` attribute `sparse`).
    #[serde(rename = "sparse", skip_serializing_if = "Option::is_none")]
    pub sparse: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_of: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employee_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payroll_item_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billable_status: Option<&'static str>,
    /// A JSON number written from the decimal's own digits (never a float).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_rate: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A decimal as a JSON number, digit for digit.
pub fn decimal_number(d: rust_decimal::Decimal) -> Result<Box<RawValue>, LedgerError> {
    RawValue::from_string(d.normalize().to_string())
        .map_err(|e| LedgerError::Transient(format!("cannot encode {d}: {e}")))
}

impl TimeActivity {
    pub fn from_line(line: &PostingLine) -> Result<Self, LedgerError> {
        let (name_of, employee_ref, vendor_ref) = match &line.party {
            Party::Employee { id } => ("Employee", Some(Ref { value: id.clone() }), None),
            Party::Vendor { id, .. } => ("Vendor", None, Some(Ref { value: id.clone() })),
        };
        let hourly_rate = match (&line.hourly_rate, line.billable) {
            (Some(rate), true) => Some(decimal_number(rate.amount)?),
            _ => None,
        };
        Ok(Self {
            name_of: Some(name_of),
            employee_ref,
            vendor_ref,
            txn_date: Some(line.txn_date),
            hours: Some(line.minutes / 60),
            minutes: Some(line.minutes % 60),
            customer_ref: r(&line.customer),
            item_ref: r(&line.service_item),
            class_ref: r(&line.class),
            department_ref: r(&line.department),
            payroll_item_ref: r(&line.payroll_item),
            billable_status: Some(if line.billable {
                "Billable"
            } else {
                "NotBillable"
            }),
            hourly_rate,
            description: Some(line.description.clone()).filter(|d| !d.is_empty()),
            ..Default::default()
        })
    }

    /// The body `request` sends for `line`: [`from_line`](Self::from_line)
    /// with the fingerprint marker in `Description`.
    pub fn for_request(request: &LedgerRequest, line: &PostingLine) -> Result<Self, LedgerError> {
        let mut body = Self::from_line(line)?;
        body.description =
            Some(request.marked_description(line, MAX_DESCRIPTION)).filter(|d| !d.is_empty());
        Ok(body)
    }
}

/// One item of a batch call.
#[derive(Debug, Clone, Serialize)]
pub struct BatchItem {
    #[serde(rename = "bId")]
    pub b_id: String,
    pub operation: &'static str,
    #[serde(rename = "TimeActivity", skip_serializing_if = "Option::is_none")]
    pub time_activity: Option<TimeActivity>,
    #[serde(rename = "JournalEntry", skip_serializing_if = "Option::is_none")]
    pub journal_entry: Option<super::journal_entry::JournalEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchRequest {
    #[serde(rename = "BatchItemRequest")]
    pub items: Vec<BatchItem>,
}

#[derive(Debug, Default, Deserialize)]
struct BatchResponse {
    #[serde(rename = "BatchItemResponse", default)]
    items: Vec<BatchItemResponse>,
}

#[derive(Debug, Deserialize)]
struct BatchItemResponse {
    #[serde(rename = "bId", default)]
    b_id: String,
    #[serde(rename = "Fault", default)]
    fault: Option<Fault>,
    #[serde(rename = "TimeActivity", default)]
    time_activity: Option<EntityIds>,
    #[serde(rename = "JournalEntry", default)]
    journal_entry: Option<EntityIds>,
}

#[derive(Debug, Deserialize)]
struct EntityIds {
    #[serde(rename = "Id", default)]
    id: Option<String>,
    #[serde(rename = "SyncToken", default)]
    sync_token: Option<String>,
}

/// One planned batch item of one request.
#[derive(Debug, Clone)]
struct Planned {
    operation: &'static str,
    tier: String,
    body: TimeActivity,
}

/// What the company allows, from its `Preferences` (Finance.xsd
/// `Preferences`: `AccountingInfoPrefs.ClassTrackingPerTxn` /
/// `ClassTrackingPerTxnLine`, `TrackDepartments`,
/// `CurrencyPrefs.HomeCurrency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyPrefs {
    /// "Track classes" is on (per transaction or per line).
    pub class_tracking: bool,
    /// "Track locations" (departments) is on.
    pub department_tracking: bool,
    /// The home currency code; `HourlyRate` is in it.
    pub home_currency: Option<String>,
}

impl CompanyPrefs {
    /// From the answer to `GET …/preferences`: `{"Preferences": {…}}`.
    pub fn from_answer(v: &serde_json::Value) -> Option<Self> {
        let p = v.get("Preferences")?;
        let flag = |group: &str, name: &str| {
            p.get(group)
                .and_then(|g| g.get(name))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        Some(Self {
            class_tracking: flag("AccountingInfoPrefs", "ClassTrackingPerTxn")
                || flag("AccountingInfoPrefs", "ClassTrackingPerTxnLine"),
            department_tracking: flag("AccountingInfoPrefs", "TrackDepartments"),
            home_currency: p
                .get("CurrencyPrefs")
                .and_then(|c| c.get("HomeCurrency"))
                .and_then(|h| h.get("value"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
        })
    }
}

/// What planning knows of the company: whether it has payroll, and its
/// preferences when they were read (dry-run plans without them).
#[derive(Debug, Clone, Copy)]
pub struct Company<'a> {
    pub payroll: bool,
    pub prefs: Option<&'a CompanyPrefs>,
}

/// Check what the company's settings would not let QuickBooks record.
pub fn check_company(line: &PostingLine, prefs: &CompanyPrefs) -> Result<(), LedgerError> {
    let refuse =
        |code: ExceptionCode, msg: String| Err(LedgerError::Rejected(Exception::new(code, msg)));
    if let Some(class) = &line.class {
        if !prefs.class_tracking {
            return refuse(
                ExceptionCode::LedgerCompanySetting,
                format!(
                    "This time is mapped to class {class}, but class tracking is off in the QuickBooks company (Settings → Account and settings → Advanced → Categories → Track classes)."
                ),
            );
        }
    }
    if let Some(dept) = &line.department {
        if !prefs.department_tracking {
            return refuse(
                ExceptionCode::LedgerCompanySetting,
                format!(
                    "This time is mapped to location {dept}, but location tracking is off in the QuickBooks company (Settings → Account and settings → Advanced → Categories → Track locations)."
                ),
            );
        }
    }
    if let Some(rate) = line.hourly_rate.as_ref().filter(|_| line.billable) {
        let currency = rate.currency.to_string();
        match prefs.home_currency.as_deref() {
            Some(home) if home.eq_ignore_ascii_case(&currency) => {}
            Some(home) => {
                return refuse(
                    ExceptionCode::LedgerForeignCurrency,
                    format!(
                        "The billable rate {} {currency} is not in the company's home currency {home}; QuickBooks keeps a time record's rate in {home} only and does not convert it.",
                        rate.amount
                    ),
                )
            }
            None => {
                return refuse(
                    ExceptionCode::LedgerForeignCurrency,
                    format!(
                        "QuickBooks did not say the company's home currency, so timepost cannot tell whether the billable rate in {currency} may be sent."
                    ),
                )
            }
        }
    }
    Ok(())
}

/// Check what QBO would refuse, before anything is sent.
pub fn validate(line: &PostingLine) -> Result<(), LedgerError> {
    let refuse = |msg: String| {
        Err(LedgerError::Rejected(Exception::new(
            ExceptionCode::LedgerValidation,
            msg,
        )))
    };
    if line.minutes <= 0 {
        return refuse(format!(
            "A time record needs a positive duration, not {} minutes.",
            line.minutes
        ));
    }
    if line.billable && line.customer.is_none() {
        return refuse("Billable time needs a customer (CustomerRef) in QuickBooks.".into());
    }
    if line.billable && line.hourly_rate.is_none() {
        return refuse("Billable time needs an hourly rate (HourlyRate) in QuickBooks.".into());
    }
    if line.description.chars().count() > crate::pipeline::MAX_DESCRIPTION_CHARS {
        return refuse("The description is longer than QuickBooks' 4000 characters.".into());
    }
    Ok(())
}

fn plan(req: &LedgerRequest, company: Company<'_>) -> Result<Vec<Planned>, LedgerError> {
    let body = |l: &PostingLine| -> Result<TimeActivity, LedgerError> {
        validate(l)?;
        if let Some(prefs) = company.prefs {
            check_company(l, prefs)?;
        }
        let mut body = TimeActivity::for_request(req, l)?;
        if !company.payroll {
            body.payroll_item_ref = None;
        }
        Ok(body)
    };
    let create = |l: &PostingLine| -> Result<Planned, LedgerError> {
        Ok(Planned {
            operation: "create",
            tier: l.tier.clone(),
            body: body(l)?,
        })
    };
    let delete = |rec: &RecordRef| Planned {
        operation: "delete",
        tier: rec.tier.clone(),
        body: TimeActivity {
            id: Some(rec.id.clone()),
            sync_token: Some(rec.sync_token.clone()),
            ..Default::default()
        },
    };
    match &req.op {
        LedgerOp::Create { lines } => lines.iter().map(create).collect(),
        LedgerOp::Update { records, lines } => {
            let mut out = Vec::new();
            for l in lines {
                match records.iter().find(|r| r.tier == l.tier) {
                    Some(rec) => {
                        let mut body = body(l)?;
                        body.sparse = Some(true);
                        body.id = Some(rec.id.clone());
                        body.sync_token = Some(rec.sync_token.clone());
                        out.push(Planned {
                            operation: "update",
                            tier: l.tier.clone(),
                            body,
                        });
                    }
                    None => out.push(create(l)?),
                }
            }
            for rec in records
                .iter()
                .filter(|r| !lines.iter().any(|l| l.tier == r.tier))
            {
                out.push(delete(rec));
            }
            Ok(out)
        }
        LedgerOp::Delete { records } => Ok(records.iter().map(delete).collect()),
    }
}

/// The `requestid` of a batch call: the request's own key when alone, else
/// a digest of every key in it (36 characters).
pub fn batch_request_id(reqs: &[&LedgerRequest]) -> String {
    if let [one] = reqs {
        return one.idempotency_key.chars().take(36).collect();
    }
    let mut h = Sha256::new();
    for r in reqs {
        h.update(r.idempotency_key.as_bytes());
        h.update(b",");
    }
    format!("tp-{}", &hex::encode(h.finalize())[..33])
}

/// Builds QBO calls without sending them (also what dry-run prints).
#[derive(Debug, Clone)]
pub struct QboRequests {
    pub settings: QboSettings,
}

/// A batch call and, per item, which request and tier it serves.
pub struct PlannedBatch {
    pub call: HttpCall,
    /// (index into the requests, tier, operation) per item, in call order.
    items: Vec<(usize, String, &'static str)>,
    requests: Vec<usize>,
}

impl QboRequests {
    pub fn batch_url(&self, request_id: &str) -> String {
        format!(
            "{}/v3/company/{}/batch?requestid={}&minorversion={}",
            self.settings.api_base.trim_end_matches('/'),
            self.settings.realm_id,
            request_id,
            self.settings.minor_version
        )
    }

    /// The `query` that reads one page of the TimeActivities dated `from`
    /// ..= `to`, starting at `start` (1-based).
    pub fn query_call(&self, from: NaiveDate, to: NaiveDate, start: usize) -> HttpCall {
        let select = format!(
            "select * from TimeActivity where TxnDate >= '{}' and TxnDate <= '{}' STARTPOSITION {start} MAXRESULTS {QUERY_PAGE}",
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d"),
        );
        self.select_call(&select)
    }

    /// The `query` that reads the TimeActivities with these ids (Intuit,
    /// "Query operations and syntax": `IN` on `Id`).
    pub fn ids_call(&self, ids: &[String]) -> HttpCall {
        let list: Vec<String> = ids
            .iter()
            .map(|id| format!("'{}'", id.replace('\\', "\\\\").replace('\'', "\\'")))
            .collect();
        let select = format!(
            "select * from TimeActivity where Id in ({}) MAXRESULTS {QUERY_PAGE}",
            list.join(", ")
        );
        self.select_call(&select)
    }

    /// A `GET …/query` of `select` (Intuit, "Query operations and syntax").
    fn select_call(&self, select: &str) -> HttpCall {
        HttpCall::new(
            "GET",
            format!(
                "{}/v3/company/{}/query?query={}&minorversion={}",
                self.settings.api_base.trim_end_matches('/'),
                self.settings.realm_id,
                url_encode(select),
                self.settings.minor_version
            ),
        )
    }

    /// `GET /v3/company/{realm}/preferences`: the company's preferences.
    pub fn preferences_call(&self) -> HttpCall {
        HttpCall::new(
            "GET",
            format!(
                "{}/v3/company/{}/preferences?minorversion={}",
                self.settings.api_base.trim_end_matches('/'),
                self.settings.realm_id,
                self.settings.minor_version
            ),
        )
    }

    pub fn batch_call(
        &self,
        request_id: &str,
        body: &BatchRequest,
    ) -> Result<HttpCall, LedgerError> {
        Ok(HttpCall::new("POST", self.batch_url(request_id))
            .json(body)?
            .batch_of(body.items.len()))
    }

    /// The company as far as planning without a connection knows it (the
    /// dry-run): its payroll setting, no preferences.
    pub fn offline(&self) -> Company<'static> {
        Company {
            payroll: self.settings.payroll,
            prefs: None,
        }
    }

    /// Group requests into batch calls of at most `max_batch` items (a
    /// request's items never straddle two calls). A request that cannot be
    /// planned gets its error in the returned vector.
    pub fn plan_batches(
        &self,
        reqs: &[LedgerRequest],
        company: Company<'_>,
    ) -> (Vec<PlannedBatch>, Vec<Option<LedgerError>>) {
        let max = self.settings.max_batch.clamp(1, MAX_BATCH_LIMIT);
        let mut errors: Vec<Option<LedgerError>> = vec![None; reqs.len()];
        let mut groups: Vec<Vec<(usize, Vec<Planned>)>> = Vec::new();
        let mut size = 0;
        for (i, req) in reqs.iter().enumerate() {
            let items = match plan(req, company) {
                Ok(items) => items,
                Err(e) => {
                    errors[i] = Some(e);
                    continue;
                }
            };
            if groups.is_empty() || size + items.len() > max {
                groups.push(Vec::new());
                size = 0;
            }
            size += items.len();
            if let Some(g) = groups.last_mut() {
                g.push((i, items));
            }
        }
        let mut batches = Vec::new();
        for g in groups {
            let members: Vec<&LedgerRequest> = g.iter().map(|(i, _)| &reqs[*i]).collect();
            let request_id = batch_request_id(&members);
            let mut body = BatchRequest { items: Vec::new() };
            let mut items = Vec::new();
            for (i, planned) in &g {
                for (j, p) in planned.iter().enumerate() {
                    body.items.push(BatchItem {
                        b_id: format!("{i}-{j}"),
                        operation: p.operation,
                        time_activity: Some(p.body.clone()),
                        journal_entry: None,
                    });
                    items.push((*i, p.tier.clone(), p.operation));
                }
            }
            match self.batch_call(&request_id, &body) {
                Ok(call) => batches.push(PlannedBatch {
                    call,
                    items,
                    requests: g.iter().map(|(i, _)| *i).collect(),
                }),
                Err(e) => {
                    for (i, _) in &g {
                        errors[*i] = Some(e.clone());
                    }
                }
            }
        }
        (batches, errors)
    }
}

/// The QuickBooks Online ledger.
pub struct QboLedger {
    pub requests: QboRequests,
    pub transport: Arc<Transport>,
    /// The company's preferences, read once per connection.
    prefs: tokio::sync::Mutex<Option<CompanyPrefs>>,
}

type Outcome = Result<Vec<RecordRef>, LedgerError>;

impl QboLedger {
    pub fn new(settings: QboSettings, transport: Arc<Transport>) -> Self {
        Self {
            requests: QboRequests { settings },
            transport,
            prefs: tokio::sync::Mutex::new(None),
        }
    }

    /// The company's preferences: read on first use, then kept for the
    /// connection (a failed read is tried again next time).
    pub async fn company_prefs(&self) -> Result<CompanyPrefs, LedgerError> {
        let mut held = self.prefs.lock().await;
        if let Some(p) = held.as_ref() {
            return Ok(p.clone());
        }
        let reply = self
            .transport
            .send(&self.requests.preferences_call())
            .await?;
        refused(&reply, &self.requests.settings)?;
        let prefs = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .as_ref()
            .and_then(CompanyPrefs::from_answer)
            .ok_or_else(|| {
                LedgerError::Transient("QuickBooks answered the preferences unreadably".into())
            })?;
        *held = Some(prefs.clone());
        Ok(prefs)
    }

    /// The ids among `ids` QuickBooks marks `HasBeenBilled`.
    async fn billed(&self, ids: &[String]) -> Result<Vec<String>, LedgerError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(QUERY_PAGE) {
            let call = self.requests.ids_call(chunk);
            let page =
                interpret_query(&self.transport.send(&call).await?, &self.requests.settings)?;
            for v in &page {
                let rec = book_record(v)?;
                if rec.locked {
                    out.push(rec.id);
                }
            }
        }
        Ok(out)
    }

    /// Refuse, before sending, every update or delete of a record
    /// QuickBooks marks `HasBeenBilled`: `Some(error)` per such request.
    async fn refuse_billed(&self, reqs: &[LedgerRequest]) -> Vec<Option<LedgerError>> {
        let touched = |r: &LedgerRequest| -> Vec<String> {
            match &r.op {
                LedgerOp::Create { .. } => Vec::new(),
                LedgerOp::Update { records, .. } | LedgerOp::Delete { records } => {
                    records.iter().map(|rec| rec.id.clone()).collect()
                }
            }
        };
        let mut ids: Vec<String> = reqs.iter().flat_map(touched).collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return vec![None; reqs.len()];
        }
        let billed = match self.billed(&ids).await {
            Ok(b) => b,
            Err(e) => {
                return reqs
                    .iter()
                    .map(|r| (!touched(r).is_empty()).then(|| e.clone()))
                    .collect()
            }
        };
        reqs.iter()
            .map(|r| {
                let locked: Vec<String> = touched(r)
                    .into_iter()
                    .filter(|id| billed.contains(id))
                    .collect();
                (!locked.is_empty()).then(|| {
                    LedgerError::Rejected(Exception::new(
                        ExceptionCode::LedgerRecordLocked,
                        format!(
                            "QuickBooks shows time record {} as billed (HasBeenBilled: it is on an invoice), so timepost did not change or remove it. Finance: if the books must follow the tracker, edit or credit the invoice in QuickBooks so the time is no longer billed, then redrive; otherwise dismiss this exception.",
                            locked.join(", ")
                        ),
                    ))
                })
            })
            .collect()
    }

    async fn run_batch(
        &self,
        batch: PlannedBatch,
        reqs: &[LedgerRequest],
    ) -> Vec<(usize, Outcome)> {
        let reply = self.transport.send(&batch.call).await;
        let parsed = reply.and_then(|r| interpret(&r, &self.requests.settings));
        let per_item = match parsed {
            Ok(items) => items,
            Err(e) => {
                return batch
                    .requests
                    .iter()
                    .map(|i| (*i, Err(e.clone())))
                    .collect();
            }
        };
        let mut by_bid: HashMap<String, BatchItemResponse> =
            per_item.into_iter().map(|r| (r.b_id.clone(), r)).collect();
        let mut out = Vec::new();
        let mut orphans = Vec::new();
        for &i in &batch.requests {
            let mut records = Vec::new();
            let mut created = Vec::new();
            let mut error = None;
            for (j, (_, tier, op)) in batch.items.iter().filter(|(r, _, _)| *r == i).enumerate() {
                let item = by_bid.remove(&format!("{i}-{j}"));
                match item {
                    Some(BatchItemResponse { fault: Some(f), .. }) => {
                        error.get_or_insert(f.into_error());
                    }
                    Some(BatchItemResponse {
                        time_activity: Some(ids),
                        ..
                    }) if *op != "delete" => match (ids.id, ids.sync_token) {
                        (Some(id), Some(token)) => {
                            if *op == "create" {
                                created.push((id.clone(), token.clone()));
                            }
                            records.push(RecordRef {
                                id,
                                sync_token: token,
                                tier: tier.clone(),
                            });
                        }
                        _ => {
                            error.get_or_insert(missing("an Id and SyncToken"));
                        }
                    },
                    Some(_) if *op == "delete" => {}
                    _ => {
                        error.get_or_insert(missing(&format!("item {i}-{j}")));
                    }
                }
            }
            match error {
                None => out.push((i, Ok(records))),
                Some(e) => {
                    if matches!(reqs[i].op, LedgerOp::Create { .. }) {
                        orphans.extend(created);
                    }
                    out.push((i, Err(e)));
                }
            }
        }
        if !orphans.is_empty() {
            self.compensate(orphans).await;
        }
        out
    }

    /// A create request that failed half-way leaves records behind: delete
    /// them so a failed posting holds nothing in the books.
    async fn compensate(&self, orphans: Vec<(String, String)>) {
        let body = BatchRequest {
            items: orphans
                .iter()
                .enumerate()
                .map(|(n, (id, token))| BatchItem {
                    b_id: format!("c-{n}"),
                    operation: "delete",
                    time_activity: Some(TimeActivity {
                        id: Some(id.clone()),
                        sync_token: Some(token.clone()),
                        ..Default::default()
                    }),
                    journal_entry: None,
                })
                .collect(),
        };
        let mut h = Sha256::new();
        for (id, token) in &orphans {
            h.update(format!("{id}:{token},"));
        }
        let rid = format!("tc-{}", &hex::encode(h.finalize())[..33]);
        let result = match self.requests.batch_call(&rid, &body) {
            Ok(call) => self
                .transport
                .send(&call)
                .await
                .and_then(|r| interpret(&r, &self.requests.settings)),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(records = ?orphans.iter().map(|o| &o.0).collect::<Vec<_>>(), error = %e,
                "could not remove the records of a half-failed posting; remove them by hand");
        }
    }

    /// Send one journal entry (the labour-cost accrual) as a batch item.
    pub async fn post_journal_entry(
        &self,
        entry: &super::journal_entry::JournalEntry,
        request_id: &str,
    ) -> Result<RecordRef, LedgerError> {
        let call = self
            .requests
            .batch_call(request_id, &journal_batch(entry))?;
        let items = interpret(&self.transport.send(&call).await?, &self.requests.settings)?;
        let item = items
            .into_iter()
            .next()
            .ok_or_else(|| missing("the journal entry"))?;
        if let Some(f) = item.fault {
            return Err(f.into_error());
        }
        match item.journal_entry {
            Some(EntityIds {
                id: Some(id),
                sync_token: Some(sync_token),
            }) => Ok(RecordRef {
                id,
                sync_token,
                tier: "accrual".into(),
            }),
            _ => Err(missing("the journal entry's Id")),
        }
    }
}

/// The batch body of one journal-entry create.
pub fn journal_batch(entry: &super::journal_entry::JournalEntry) -> BatchRequest {
    BatchRequest {
        items: vec![BatchItem {
            b_id: "je-0".into(),
            operation: "create",
            time_activity: None,
            journal_entry: Some(entry.clone()),
        }],
    }
}

fn missing(what: &str) -> LedgerError {
    LedgerError::Rejected(Exception::new(
        ExceptionCode::LedgerRejected,
        format!("QuickBooks answered the batch without {what}."),
    ))
}

/// Sort a reply: a whole-call Fault (even with HTTP 200) is an error;
/// otherwise the per-item answers.
fn interpret(
    reply: &HttpReply,
    settings: &QboSettings,
) -> Result<Vec<BatchItemResponse>, LedgerError> {
    refused(reply, settings)?;
    let parsed: Option<BatchResponse> = serde_json::from_slice(&reply.body).ok();
    parsed.map(|p| p.items).ok_or_else(unreadable)
}

fn unreadable() -> LedgerError {
    LedgerError::Transient("QuickBooks answered with unreadable JSON".into())
}

/// The error a reply is, if it is one: its `Fault` in any of QBO's three
/// shapes (even with HTTP 200), or its status. A 401 / 403 names the host
/// and asks whether the company is a sandbox one.
fn refused(reply: &HttpReply, settings: &QboSettings) -> Result<(), LedgerError> {
    let fault = Fault::parse(&reply.body);
    if matches!(reply.status, 401 | 403) {
        let host = host_of(&settings.api_base);
        let other = match settings.environment {
            QboEnvironment::Sandbox => "production",
            QboEnvironment::Production => "sandbox",
        };
        let mut exc = Exception::new(
            ExceptionCode::LedgerNotAuthorised,
            format!(
                "QuickBooks refused timepost's access to company {} at {host} (HTTP {}). Is it a {} company? `[ledger.qbo] environment = \"{}\"` reaches only those; a {other} company answers like this there.",
                settings.realm_id,
                reply.status,
                settings.environment.as_str(),
                settings.environment.as_str(),
            ),
        );
        if let Some(f) = fault {
            exc = exc.with_vendor_message(f.vendor_message());
        }
        return Err(LedgerError::Rejected(exc));
    }
    if let Some(f) = fault {
        return Err(f.into_error());
    }
    match reply.status {
        200..=299 => Ok(()),
        s => Err(LedgerError::Rejected(
            Exception::new(
                ExceptionCode::LedgerRejected,
                format!("QuickBooks refused the request (HTTP {s})."),
            )
            .with_vendor_message(
                String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(500)
                    .collect::<String>(),
            ),
        )),
    }
}

/// `query`'s answer: `{"QueryResponse": {"TimeActivity": […],
/// "startPosition", "maxResults"}, "time"}`; no `TimeActivity` key when
/// nothing matched; a `Fault` beside or inside `QueryResponse` on error
/// (IntuitRestServiceDef.xsd, `IntuitResponse` and `QueryResponse`).
#[derive(Debug, Default, Deserialize)]
struct QueryEnvelope {
    #[serde(rename = "QueryResponse", default)]
    response: Option<QueryResponse>,
}

#[derive(Debug, Default, Deserialize)]
struct QueryResponse {
    #[serde(rename = "TimeActivity", default)]
    items: Vec<serde_json::Value>,
}

/// The TimeActivities of one `query` page, as QBO sent them.
fn interpret_query(
    reply: &HttpReply,
    settings: &QboSettings,
) -> Result<Vec<serde_json::Value>, LedgerError> {
    refused(reply, settings)?;
    let parsed: Option<QueryEnvelope> = serde_json::from_slice(&reply.body).ok();
    let parsed = parsed.ok_or_else(unreadable)?;
    Ok(parsed.response.map(|r| r.items).unwrap_or_default())
}

/// An integer QBO sent as a number or as a numeric string.
fn int(v: &serde_json::Value, field: &str) -> Option<i64> {
    match v.get(field)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text<'a>(v: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    v.get(field)?.as_str()
}

fn ref_value(v: &serde_json::Value, field: &str) -> Option<String> {
    v.get(field)?.get("value")?.as_str().map(str::to_string)
}

/// One TimeActivity as the books hold it. Its duration is `Hours` +
/// `Minutes`, or `EndTime` − `StartTime` less the break; `HasBeenBilled`
/// locks it (QBO refuses to change billed time), and both `Billable` and
/// `HasBeenBilled` count as billable. Time of an "other name"
/// (`OtherNameRef`) has no party.
pub fn book_record(v: &serde_json::Value) -> Result<BookRecord, LedgerError> {
    let bad = |what: &str| {
        LedgerError::Transient(format!(
            "QuickBooks answered a TimeActivity without {what}: {}",
            v.to_string().chars().take(300).collect::<String>()
        ))
    };
    let id = text(v, "Id").ok_or_else(|| bad("an Id"))?.to_string();
    let start = text(v, "StartTime").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let end = text(v, "EndTime").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let txn_date = text(v, "TxnDate")
        .and_then(|d| d.get(..10))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .or_else(|| start.map(|s| s.date_naive()))
        .ok_or_else(|| bad("a TxnDate"))?;
    let minutes = match (int(v, "Hours"), int(v, "Minutes"), start, end) {
        (h, m, _, _) if h.is_some() || m.is_some() => h.unwrap_or(0) * 60 + m.unwrap_or(0),
        (_, _, Some(s), Some(e)) => {
            let pause =
                int(v, "BreakHours").unwrap_or(0) * 60 + int(v, "BreakMinutes").unwrap_or(0);
            (e - s).num_minutes() - pause
        }
        _ => return Err(bad("Hours, Minutes or StartTime and EndTime")),
    };
    let party = match (ref_value(v, "EmployeeRef"), ref_value(v, "VendorRef")) {
        (Some(id), _) => Some(Party::Employee { id }),
        (None, Some(id)) => Some(Party::Vendor {
            id,
            form_1099: None,
        }),
        _ => None,
    };
    let status = text(v, "BillableStatus");
    let description = text(v, "Description").unwrap_or("");
    Ok(BookRecord {
        id,
        sync_token: text(v, "SyncToken").unwrap_or("").to_string(),
        fingerprint: fingerprint_of(description).map(str::to_string),
        txn_date,
        party,
        minutes,
        customer: ref_value(v, "CustomerRef"),
        billable: status.map(|s| matches!(s, "Billable" | "HasBeenBilled")),
        service_item: ref_value(v, "ItemRef"),
        hourly_rate: v
            .get("HourlyRate")
            .and_then(|r| r.as_number().map(|n| n.to_string()))
            .and_then(|r| r.parse().ok()),
        description: unmarked(description).to_string(),
        locked: status == Some("HasBeenBilled"),
    })
}

#[async_trait]
impl Ledger for QboLedger {
    fn name(&self) -> &str {
        "qbo"
    }

    async fn apply(&self, request: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError> {
        self.apply_many(std::slice::from_ref(request))
            .await
            .pop()
            .unwrap_or_else(|| Err(LedgerError::Transient("no result".into())))
    }

    /// Reads the company's preferences (once per connection) and the
    /// records an update or delete would touch (refusing billed ones), then
    /// sends the rest in batches.
    async fn apply_many(&self, reqs: &[LedgerRequest]) -> Vec<Result<Vec<RecordRef>, LedgerError>> {
        let prefs = match self.company_prefs().await {
            Ok(p) => p,
            Err(e) => return reqs.iter().map(|_| Err(e.clone())).collect(),
        };
        let company = Company {
            payroll: self.requests.settings.payroll,
            prefs: Some(&prefs),
        };
        let locked = self.refuse_billed(reqs).await;
        // Plan only what is not refused; refused requests keep their error.
        let open: Vec<usize> = (0..reqs.len()).filter(|i| locked[*i].is_none()).collect();
        let sendable: Vec<LedgerRequest> = open.iter().map(|i| reqs[*i].clone()).collect();
        let (batches, errors) = self.requests.plan_batches(&sendable, company);
        let mut results: Vec<Outcome> = locked
            .into_iter()
            .map(|e| e.map_or_else(|| Err(LedgerError::Transient("not sent".into())), Err))
            .collect();
        for (k, e) in errors.into_iter().enumerate() {
            if let Some(e) = e {
                results[open[k]] = Err(e);
            }
        }
        let runs = batches.into_iter().map(|b| self.run_batch(b, &sendable));
        for (k, outcome) in futures_util::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
        {
            results[open[k]] = outcome;
        }
        results
    }

    /// QuickBooks has no change feed for time: Intuit's "Change data
    /// capture operation" page
    /// (<https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/change-data-capture>)
    /// lists `TimeActivity` among the entities the CDC operation cannot be
    /// used for (with JournalCode, TaxAgency, TaxCode and TaxRate), so
    /// `GET …/cdc?entities=TimeActivity` is not sent. The scheduled pass
    /// reads the books by `TxnDate` ([`Ledger::read_books`]) instead.
    async fn book_changes(
        &self,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<super::books::BookChanges, LedgerError> {
        Ok(super::books::BookChanges::ReadBooks {
            why: "QuickBooks' change data capture does not cover time activities (Intuit lists TimeActivity among the entities CDC cannot be used for), so timepost reads the time records by date instead".into(),
        })
    }

    /// Every TimeActivity dated within `query`'s range, paged by
    /// `STARTPOSITION` / `MAXRESULTS 1000` until a page comes back short,
    /// then narrowed to `query`'s parties and customers here (QBO cannot
    /// filter on them). Each page is one read call
    /// ([`Transport::counts`](super::transport::Transport::counts)). A
    /// record seen on two pages (the books changed while paging) is kept
    /// once.
    async fn read_books(&self, query: &BookQuery) -> Result<Option<Vec<BookRecord>>, LedgerError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        if query.from > query.to {
            return Ok(Some(out));
        }
        let mut start = 1;
        loop {
            let call = self.requests.query_call(query.from, query.to, start);
            let page =
                interpret_query(&self.transport.send(&call).await?, &self.requests.settings)?;
            for v in &page {
                let rec = book_record(v)?;
                if query.covers(rec.txn_date, rec.party.as_ref(), rec.customer.as_deref())
                    && seen.insert(rec.id.clone())
                {
                    out.push(rec);
                }
            }
            if page.len() < QUERY_PAGE {
                break;
            }
            start += page.len();
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_time_activity_reads_back_as_a_book_record() {
        let fp = super::super::books::fingerprint("i-1", "regular");
        let desc = super::super::books::mark("Design review", &fp, MAX_DESCRIPTION);
        let r = book_record(&json!({
            "Id": "101", "SyncToken": "3", "TxnDate": "2026-03-02", "NameOf": "Employee",
            "EmployeeRef": {"value": "E-100", "name": "Ada"}, "CustomerRef": {"value": "C-ACME"},
            "Hours": 8, "Minutes": 5, "BillableStatus": "HasBeenBilled", "Description": desc
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.id.as_str(), r.sync_token.as_str()), ("101", "3"));
        assert_eq!(r.fingerprint.as_deref(), Some(fp.as_str()));
        assert_eq!(r.description, "Design review");
        assert_eq!(r.minutes, 485);
        assert_eq!(r.party, Some(Party::Employee { id: "E-100".into() }));
        assert_eq!(r.customer.as_deref(), Some("C-ACME"));
        assert_eq!((r.billable, r.locked), (Some(true), true));

        // Start and end times less the break; a vendor; someone else's text.
        let r = book_record(&json!({
            "Id": "102", "SyncToken": "0", "TxnDate": "2026-03-03", "NameOf": "Vendor",
            "VendorRef": {"value": "V-200"}, "StartTime": "2026-03-03T08:00:00-08:00",
            "EndTime": "2026-03-03T12:30:00-08:00", "BreakHours": 0, "BreakMinutes": 30,
            "BillableStatus": "NotBillable", "Description": "keyed in QBO"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.minutes, 240);
        assert!(matches!(r.party, Some(Party::Vendor { ref id, .. }) if id == "V-200"));
        assert_eq!((r.billable, r.locked), (Some(false), false));
        assert_eq!(
            (r.fingerprint, r.description.as_str()),
            (None, "keyed in QBO")
        );

        assert!(book_record(&json!({"Id": "103", "TxnDate": "2026-03-03"})).is_err());
    }

    fn settings(environment: QboEnvironment) -> QboSettings {
        QboSettings {
            realm_id: "9130".into(),
            api_base: environment.api_base().into(),
            environment,
            payroll: false,
            minor_version: 75,
            max_batch: 10,
        }
    }

    #[test]
    fn an_empty_query_answer_is_no_records_and_a_fault_is_an_error() {
        let reply = |status: u16, v: serde_json::Value| HttpReply {
            status,
            headers: Default::default(),
            body: v.to_string().into_bytes(),
        };
        let s = settings(QboEnvironment::Production);
        let empty = interpret_query(&reply(200, json!({"QueryResponse": {}, "time": "t"})), &s);
        assert!(empty.unwrap_or_else(|e| panic!("{e}")).is_empty());
        let fault = json!({"Error": [{"Message": "Error parsing query", "code": "4000"}], "type": "ValidationFault"});
        assert!(matches!(
            interpret_query(&reply(400, json!({"Fault": fault.clone()})), &s),
            Err(LedgerError::Rejected(_))
        ));
        assert!(
            interpret_query(&reply(200, json!({"QueryResponse": {"Fault": fault}})), &s).is_err()
        );
    }

    #[test]
    fn a_refused_access_names_the_host_and_asks_about_the_sandbox() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="t"><Fault type="AuthenticationFault"><Error code="100"><Message>General Authentication Error</Message><Detail>AuthenticationErrorGeneral: SRV-110-Authentication Failure , statusCode: 401</Detail></Error></Fault></IntuitResponse>"#;
        let reply = HttpReply {
            status: 401,
            headers: Default::default(),
            body: xml.to_vec(),
        };
        let Err(LedgerError::Rejected(e)) =
            interpret(&reply, &settings(QboEnvironment::Production))
        else {
            panic!("not refused");
        };
        assert_eq!(e.code, ExceptionCode::LedgerNotAuthorised);
        assert!(
            e.message.contains("quickbooks.api.intuit.com") && e.message.contains("production"),
            "{}",
            e.message
        );
        assert!(e.message.contains("sandbox company"), "{}", e.message);
        let v = e.vendor_message.unwrap_or_default();
        assert!(
            v.contains("General Authentication Error") && v.contains("SRV-110"),
            "{v}"
        );
        let lower = br#"{"fault":{"error":[{"message":"message=AuthorizationFailed; errorCode=003100; statusCode=403","detail":null,"code":"3100","element":null}],"type":"SERVICE"},"time":1543012192555}"#;
        let reply = HttpReply {
            status: 403,
            headers: Default::default(),
            body: lower.to_vec(),
        };
        let Err(LedgerError::Rejected(e)) = interpret(&reply, &settings(QboEnvironment::Sandbox))
        else {
            panic!("not refused");
        };
        assert!(
            e.message.contains("sandbox-quickbooks.api.intuit.com"),
            "{}",
            e.message
        );
        assert!(e
            .vendor_message
            .unwrap_or_default()
            .contains("AuthorizationFailed"));
    }

    #[test]
    fn preferences_decide_class_location_and_currency() {
        let prefs = CompanyPrefs::from_answer(&json!({"Preferences": {
            "AccountingInfoPrefs": {"TrackDepartments": false, "ClassTrackingPerTxnLine": true},
            "CurrencyPrefs": {"HomeCurrency": {"value": "USD"}, "MultiCurrencyEnabled": false}
        }}))
        .unwrap_or_else(|| panic!("no prefs"));
        assert!(prefs.class_tracking && !prefs.department_tracking);
        let code = |r: Result<(), LedgerError>| match r {
            Err(LedgerError::Rejected(e)) => Some((e.code, e.message)),
            _ => None,
        };
        let mut l = PostingLine {
            tier: "regular".into(),
            party: Party::Employee { id: "55".into() },
            txn_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default(),
            minutes: 60,
            customer: Some("58".into()),
            service_item: None,
            class: Some("5000000000000001".into()),
            department: None,
            payroll_item: None,
            account: "80".into(),
            billable: true,
            hourly_rate: Some(crate::model::Money::new(
                rust_decimal::Decimal::new(15000, 2),
                "USD".parse().unwrap_or_else(|e: String| panic!("{e}")),
            )),
            original_rate: None,
            fx_rate: None,
            fx_date: None,
            description: "x".into(),
        };
        assert!(check_company(&l, &prefs).is_ok());
        l.department = Some("1".into());
        let (c, m) = code(check_company(&l, &prefs)).unwrap_or_else(|| panic!("allowed"));
        assert_eq!(c, ExceptionCode::LedgerCompanySetting);
        assert!(m.contains("Track locations"), "{m}");
        l.department = None;
        l.hourly_rate = Some(crate::model::Money::new(
            rust_decimal::Decimal::new(140, 0),
            "EUR".parse().unwrap_or_else(|e: String| panic!("{e}")),
        ));
        let (c, m) = code(check_company(&l, &prefs)).unwrap_or_else(|| panic!("allowed"));
        assert_eq!(c, ExceptionCode::LedgerForeignCurrency);
        assert!(m.contains("EUR") && m.contains("USD"), "{m}");
        l.billable = false;
        assert!(
            check_company(&l, &prefs).is_ok(),
            "a non-billable rate is not sent"
        );
        let off = CompanyPrefs {
            class_tracking: false,
            ..prefs
        };
        let (_, m) = code(check_company(&l, &off)).unwrap_or_else(|| panic!("allowed"));
        assert!(m.contains("Track classes"), "{m}");
    }

    #[test]
    fn the_query_reads_only_by_date_and_is_url_encoded() {
        let mut s = settings(QboEnvironment::Production);
        s.api_base = "https://q.example/".into();
        let r = QboRequests { settings: s };
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default();
        let call = r.query_call(d("2026-03-01"), d("2026-03-31"), 1001);
        assert_eq!(call.method, "GET");
        assert_eq!(
            call.url,
            "https://q.example/v3/company/9130/query?query=select%20%2A%20from%20TimeActivity%20where%20TxnDate%20%3E%3D%20%272026-03-01%27%20and%20TxnDate%20%3C%3D%20%272026-03-31%27%20STARTPOSITION%201001%20MAXRESULTS%201000&minorversion=75"
        );
    }
}
