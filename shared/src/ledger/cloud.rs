//! Configuration of the cloud ledgers (`[ledger.qbo]`, `[ledger.xero]` in
//! `timepost.toml`) and their assembly: HTTP client, OAuth tokens from the
//! secrets store, the company's rate limiter, the adapter.
//!
//! Secrets (in the secrets file or Secrets Manager), named by `secret_prefix`
//! (default `qbo` / `xero`): `<prefix>_client_id`, `<prefix>_client_secret`,
//! `<prefix>_refresh_token` (what the admin stores once) and
//! `<prefix>_oauth_state` (the rotated tokens timepost maintains).

// `LedgerError` is the port's error type and carries the exception inline.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::oauth::{OAuthSettings, TokenManager};
use super::qbo::{QboLedger, QboRequests, QboSettings, MAX_BATCH_LIMIT};
use super::ratelimit::{Limits, Rate, RateLimiter, SharedPacer};
use super::transport::{http_client, HttpCall, Transport};
use super::xero::{XeroLedger, XeroRequests, XeroSettings};
use super::{Ledger, LedgerError, LedgerRequest};
use crate::ports::Secrets;

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

impl QboLimits {
    /// Every write timepost makes to QBO is a batch call: it costs one
    /// request per item against the per-minute allowance and one against
    /// the batch allowance. A read (`query`, `preferences`) costs one
    /// request and no batch.
    pub fn limits(&self) -> Limits {
        let minute = Duration::from_millis(self.minute_ms.max(1));
        Limits {
            rates: vec![
                Rate::per_item(self.requests_per_minute, minute),
                Rate::per_batch(self.batches_per_minute, minute),
            ],
            concurrent: self.concurrent,
            per_day: None,
            minute,
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

impl XeroLimits {
    pub fn limits(&self) -> Limits {
        let minute = Duration::from_millis(self.minute_ms.max(1));
        Limits {
            rates: vec![Rate::new(self.calls_per_minute, minute)],
            concurrent: self.concurrent,
            per_day: Some(self.calls_per_day),
            minute,
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

fn transport(
    timeout_secs: u64,
    oauth: OAuthSettings,
    limits: Limits,
    secrets: Arc<dyn Secrets>,
    common_headers: Vec<(String, String)>,
    pacer: Option<(Arc<dyn SharedPacer>, String)>,
) -> Result<Arc<Transport>, LedgerError> {
    let http = http_client(Duration::from_secs(timeout_secs.max(1)))?;
    let default_pause = limits.minute;
    let mut limiter = RateLimiter::new(limits);
    if let Some((pacer, key)) = pacer {
        limiter = limiter.with_shared(pacer, key);
    }
    Ok(Arc::new(Transport {
        tokens: Arc::new(TokenManager::new(http.clone(), oauth, secrets)),
        limiter: Arc::new(limiter),
        http,
        common_headers,
        default_pause,
        counts: Default::default(),
    }))
}

impl QboConfig {
    pub fn settings(&self) -> QboSettings {
        QboSettings {
            realm_id: self.realm_id.clone(),
            api_base: self
                .api_base
                .clone()
                .unwrap_or_else(|| self.environment.api_base().to_string()),
            environment: self.environment,
            payroll: self.payroll,
            minor_version: self.minor_version,
            max_batch: self.max_batch,
        }
    }

    pub fn connect(&self, secrets: Arc<dyn Secrets>) -> Result<QboLedger, LedgerError> {
        self.connect_paced(secrets, None)
    }

    /// [`connect`](Self::connect), pacing through `pacer` (shared by every
    /// instance) under the key `qbo:<realm_id>` when given.
    pub fn connect_paced(
        &self,
        secrets: Arc<dyn Secrets>,
        pacer: Option<Arc<dyn SharedPacer>>,
    ) -> Result<QboLedger, LedgerError> {
        let oauth = OAuthSettings::with_prefix(&self.secret_prefix, &self.token_url);
        let t = transport(
            self.timeout_secs,
            oauth,
            self.limits.limits(),
            secrets,
            Vec::new(),
            pacer.map(|p| (p, format!("qbo:{}", self.realm_id))),
        )?;
        Ok(QboLedger::new(self.settings(), t))
    }
}

impl XeroConfig {
    pub fn settings(&self) -> XeroSettings {
        XeroSettings {
            tenant_id: self.tenant_id.clone(),
            api_base: self.api_base.clone(),
            accounting_base: self.accounting_base.clone(),
            time_zone: self.time_zone,
        }
    }

    pub fn connect(&self, secrets: Arc<dyn Secrets>) -> Result<XeroLedger, LedgerError> {
        self.connect_paced(secrets, None)
    }

    /// [`connect`](Self::connect), pacing through `pacer` (shared by every
    /// instance) under the key `xero:<tenant_id>` when given.
    pub fn connect_paced(
        &self,
        secrets: Arc<dyn Secrets>,
        pacer: Option<Arc<dyn SharedPacer>>,
    ) -> Result<XeroLedger, LedgerError> {
        let oauth = OAuthSettings::with_prefix(&self.secret_prefix, &self.token_url);
        // The tenant header is added per call by the request builder.
        let t = transport(
            self.timeout_secs,
            oauth,
            self.limits.limits(),
            secrets,
            Vec::new(),
            pacer.map(|p| (p, format!("xero:{}", self.tenant_id))),
        )?;
        Ok(XeroLedger::new(self.settings(), t))
    }
}

/// Renders the HTTP calls an adapter would make for one request, without
/// sending anything (dry-run).
pub type Planner = Arc<dyn Fn(&LedgerRequest) -> Result<Vec<HttpCall>, LedgerError> + Send + Sync>;

pub fn qbo_planner(cfg: &QboConfig) -> Planner {
    let r = QboRequests {
        settings: cfg.settings(),
    };
    Arc::new(move |req| {
        // Dry-run plans offline: the company's preferences are not read.
        let (batches, errors) = r.plan_batches(std::slice::from_ref(req), r.offline());
        if let Some(Some(e)) = errors.into_iter().next() {
            return Err(e);
        }
        Ok(batches.into_iter().map(|b| b.call).collect())
    })
}

pub fn xero_planner(cfg: &XeroConfig) -> Planner {
    let r = XeroRequests {
        settings: cfg.settings(),
    };
    Arc::new(move |req| Ok(r.plan(req)?.into_iter().map(|c| c.call).collect()))
}

/// The connected ledger for a config kind.
pub fn connect(
    kind: &str,
    qbo: Option<&QboConfig>,
    xero: Option<&XeroConfig>,
    secrets: Arc<dyn Secrets>,
) -> Result<Arc<dyn Ledger>, LedgerError> {
    connect_paced(kind, qbo, xero, secrets, None)
}

/// [`connect`], pacing through a shared pacer when given (the AWS stack
/// passes its DynamoDB pacer so every `sync` instance shares one budget).
pub fn connect_paced(
    kind: &str,
    qbo: Option<&QboConfig>,
    xero: Option<&XeroConfig>,
    secrets: Arc<dyn Secrets>,
    pacer: Option<Arc<dyn SharedPacer>>,
) -> Result<Arc<dyn Ledger>, LedgerError> {
    let missing = |what: &str| LedgerError::Transient(format!("[ledger.{what}] is not configured"));
    match kind {
        "qbo" => Ok(Arc::new(
            qbo.ok_or_else(|| missing("qbo"))?
                .connect_paced(secrets, pacer)?,
        )),
        "xero" => Ok(Arc::new(
            xero.ok_or_else(|| missing("xero"))?
                .connect_paced(secrets, pacer)?,
        )),
        other => Err(LedgerError::Transient(format!(
            "no cloud ledger named {other}"
        ))),
    }
}
