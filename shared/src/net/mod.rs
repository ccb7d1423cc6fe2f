//! What every outbound HTTP caller shares — the ledger adapters, the
//! tracker pollers, the OIDC provider, the alert webhooks: the client
//! (rustls, timeouts, user agent), `Retry-After`, and the [`ratelimit`]er
//! that keeps a vendor's published limits.

pub mod ratelimit;

#[cfg(feature = "clients")]
use std::time::Duration;

#[cfg(feature = "clients")]
use timepost_core::ledger::LedgerError;

/// An HTTP client for the vendors' APIs: rustls, request timeout.
#[cfg(feature = "clients")]
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, LedgerError> {
    // reqwest is built without a bundled crypto provider; install ring's
    // once per process (a second install is refused, which is fine).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("timepost/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LedgerError::Transient(format!("cannot build the HTTP client: {e}")))
}

/// `Retry-After` in seconds (the HTTP-date form is rare here; treated as
/// absent).
#[cfg(feature = "clients")]
pub fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim().to_string();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}
