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

use super::oauth::{OAuthSettings, TokenManager};
use super::qbo::{QboLedger, QboRequests, QboSettings};
use super::transport::{http_client, HttpCall, Transport};
use super::xero::{XeroLedger, XeroRequests, XeroSettings};
use super::{Ledger, LedgerError, LedgerRequest};
use crate::net::ratelimit::{Limits, Rate, RateLimiter, SharedPacer};
use crate::ports::Secrets;

pub use crate::config::ledgers::{
    problem, QboConfig, QboEnvironment, QboLimits, XeroConfig, XeroLimits,
};

/// A vendor's published limits as the rate limiter keeps them.
pub trait VendorLimits {
    fn limits(&self) -> Limits;
}

impl VendorLimits for QboLimits {
    /// Every write timepost makes to QBO is a batch call: it costs one
    /// request per item against the per-minute allowance and one against
    /// the batch allowance. A read (`query`, `preferences`) costs one
    /// request and no batch.
    fn limits(&self) -> Limits {
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

impl VendorLimits for XeroLimits {
    fn limits(&self) -> Limits {
        let minute = Duration::from_millis(self.minute_ms.max(1));
        Limits {
            rates: vec![Rate::new(self.calls_per_minute, minute)],
            concurrent: self.concurrent,
            per_day: Some(self.calls_per_day),
            minute,
        }
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

/// A cloud ledger's settings, connected: its adapter on an HTTP transport
/// with OAuth tokens from the secrets store and the vendor's rate limits.
pub trait Connect {
    type Settings;
    type Ledger;

    /// What the adapter is built with (also what dry-run plans with).
    fn settings(&self) -> Self::Settings;

    fn connect(&self, secrets: Arc<dyn Secrets>) -> Result<Self::Ledger, LedgerError> {
        self.connect_paced(secrets, None)
    }

    /// [`connect`](Self::connect), pacing through `pacer` (shared by every
    /// instance) under the company's key (`qbo:<realm_id>`,
    /// `xero:<tenant_id>`) when given.
    fn connect_paced(
        &self,
        secrets: Arc<dyn Secrets>,
        pacer: Option<Arc<dyn SharedPacer>>,
    ) -> Result<Self::Ledger, LedgerError>;
}

impl Connect for QboConfig {
    type Settings = QboSettings;
    type Ledger = QboLedger;

    fn settings(&self) -> QboSettings {
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

    fn connect_paced(
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

impl Connect for XeroConfig {
    type Settings = XeroSettings;
    type Ledger = XeroLedger;

    fn settings(&self) -> XeroSettings {
        XeroSettings {
            tenant_id: self.tenant_id.clone(),
            api_base: self.api_base.clone(),
            accounting_base: self.accounting_base.clone(),
            time_zone: self.time_zone,
        }
    }

    fn connect_paced(
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
