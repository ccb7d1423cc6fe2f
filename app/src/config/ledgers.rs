//! `[ledger.qbo]`, `[ledger.xero]` and the sandbox's `[ledger.chart]`: what
//! the ledger adapters (`crate::ledger`) are built from.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The most items QBO takes in one batch call (its docs say 10 and 30).
pub const MAX_BATCH_LIMIT: usize = 30;

fn d_qbo_token() -> String {
    "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer".into()
}
fn d_minor() -> u32 {
    75
}
fn d_batch() -> usize {
    10
}
fn d_qbo_prefix() -> String {
    "qbo".into()
}
fn d_timeout() -> u64 {
    30
}
fn d_xero_api() -> String {
    "https://api.xero.com/projects.xro/2.0".into()
}
fn d_xero_accounting() -> String {
    "https://api.xero.com/api.xro/2.0".into()
}
fn d_xero_token() -> String {
    "https://identity.xero.com/connect/token".into()
}
fn d_xero_prefix() -> String {
    "xero".into()
}
fn d_minute_ms() -> u64 {
    60_000
}

/// Which of Intuit's hosts serves the company (VENDOR-FACTS, QuickBooks
/// Online, "Hosts", corrected): a sandbox company is served only at
/// `sandbox-quickbooks.api.intuit.com`, a real one only at
/// `quickbooks.api.intuit.com`; the OAuth token endpoint is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QboEnvironment {
    Sandbox,
    Production,
}

impl QboEnvironment {
    pub fn api_base(self) -> &'static str {
        match self {
            QboEnvironment::Sandbox => "https://sandbox-quickbooks.api.intuit.com",
            QboEnvironment::Production => "https://quickbooks.api.intuit.com",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QboEnvironment::Sandbox => "sandbox",
            QboEnvironment::Production => "production",
        }
    }
}

/// `[ledger.qbo]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QboConfig {
    /// The company (realm) id.
    pub realm_id: String,
    /// `sandbox` or `production` (required): selects the API host.
    pub environment: QboEnvironment,
    /// Whether the company has QuickBooks Payroll (required). Pay types
    /// (`PayrollItemRef`) exist only there, and the company's
    /// `Preferences` do not say (Finance.xsd `Preferences` has no payroll
    /// element), so the admin states it. Without payroll no pay type is
    /// sent and overtime is never held for want of one.
    pub payroll: bool,
    /// Another API host than `environment`'s (a test fake); unset in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    #[serde(default = "d_qbo_token")]
    pub token_url: String,
    #[serde(default = "d_minor")]
    pub minor_version: u32,
    /// Items per batch call: 10 by default, at most 30.
    #[serde(default = "d_batch")]
    pub max_batch: usize,
    #[serde(default = "d_qbo_prefix")]
    pub secret_prefix: String,
    #[serde(default = "d_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub limits: QboLimits,
}

/// QBO's published limits per company (VENDOR-FACTS, QuickBooks Online,
/// "Limits", corrected): 500 requests a minute, **each batch item counting
/// as one request**; 40 batch requests a minute; 10 concurrent requests. No
/// per-second limit is published, so none is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QboLimits {
    #[serde(default = "qbo_per_minute")]
    pub requests_per_minute: u32,
    #[serde(default = "qbo_batches")]
    pub batches_per_minute: u32,
    #[serde(default = "qbo_concurrent")]
    pub concurrent: u32,
    /// Length of a "minute": 60000 in production; shorter against a fake
    /// that compresses time.
    #[serde(default = "d_minute_ms")]
    pub minute_ms: u64,
}
fn qbo_per_minute() -> u32 {
    500
}
fn qbo_batches() -> u32 {
    40
}
fn qbo_concurrent() -> u32 {
    10
}

impl Default for QboLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: qbo_per_minute(),
            batches_per_minute: qbo_batches(),
            concurrent: qbo_concurrent(),
            minute_ms: d_minute_ms(),
        }
    }
}

/// `[ledger.xero]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XeroConfig {
    pub tenant_id: String,
    #[serde(default = "d_xero_api")]
    pub api_base: String,
    /// The Accounting API, read once per connection for the organisation's
    /// time zone (`GET /Organisation` → `Timezone`).
    #[serde(default = "d_xero_accounting")]
    pub accounting_base: String,
    /// The organisation's time zone (IANA name). Optional: without it the
    /// organisation's own is read from Xero; with it nothing is read and
    /// dry-run dates time entries as the real run does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<chrono_tz::Tz>,
    #[serde(default = "d_xero_token")]
    pub token_url: String,
    #[serde(default = "d_xero_prefix")]
    pub secret_prefix: String,
    #[serde(default = "d_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub limits: XeroLimits,
}

/// Xero's published limits per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XeroLimits {
    #[serde(default = "xero_per_minute")]
    pub calls_per_minute: u32,
    #[serde(default = "xero_per_day")]
    pub calls_per_day: u32,
    #[serde(default = "xero_concurrent")]
    pub concurrent: u32,
    #[serde(default = "d_minute_ms")]
    pub minute_ms: u64,
}
fn xero_per_minute() -> u32 {
    60
}
fn xero_per_day() -> u32 {
    5000
}
fn xero_concurrent() -> u32 {
    5
}

impl Default for XeroLimits {
    fn default() -> Self {
        Self {
            calls_per_minute: xero_per_minute(),
            calls_per_day: xero_per_day(),
            concurrent: xero_concurrent(),
            minute_ms: d_minute_ms(),
        }
    }
}

/// What is wrong with a cloud ledger's settings, as (field, message).
pub fn problem(
    kind: &str,
    qbo: Option<&QboConfig>,
    xero: Option<&XeroConfig>,
) -> Option<(String, String)> {
    match kind {
        "qbo" => match qbo {
            None => Some((
                "ledger.qbo".into(),
                "ledger.kind = \"qbo\" needs a [ledger.qbo] table with realm_id, environment and payroll".into(),
            )),
            Some(q) if q.max_batch == 0 || q.max_batch > MAX_BATCH_LIMIT => Some((
                "ledger.qbo.max_batch".into(),
                format!("must be between 1 and {MAX_BATCH_LIMIT}"),
            )),
            Some(q) if q.realm_id.trim().is_empty() => {
                Some(("ledger.qbo.realm_id".into(), "must not be empty".into()))
            }
            _ => None,
        },
        "xero" => match xero {
            None => Some((
                "ledger.xero".into(),
                "ledger.kind = \"xero\" needs a [ledger.xero] table with tenant_id".into(),
            )),
            Some(x) if x.tenant_id.trim().is_empty() => {
                Some(("ledger.xero.tenant_id".into(), "must not be empty".into()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// What the sandbox company's books contain. Anything not listed does not
/// exist, exactly like a real company file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    #[serde(default)]
    pub accounts: BTreeSet<String>,
    #[serde(default)]
    pub customers: BTreeSet<String>,
    #[serde(default)]
    pub items: BTreeSet<String>,
    #[serde(default)]
    pub employees: BTreeSet<String>,
    #[serde(default)]
    pub vendors: BTreeSet<String>,
    #[serde(default)]
    pub classes: BTreeSet<String>,
    #[serde(default)]
    pub departments: BTreeSet<String>,
    #[serde(default)]
    pub payroll_items: BTreeSet<String>,
}
