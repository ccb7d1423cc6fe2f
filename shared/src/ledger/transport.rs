//! The HTTP side every cloud ledger adapter shares: one planned call
//! ([`HttpCall`], also what `sync --dry-run` prints), sent within the
//! company's rate limits with a fresh OAuth token, and the answer sorted into
//! what the engine understands: 429 → [`LedgerError::RateLimited`] (with
//! `Retry-After`), 5xx / timeouts / dropped connections →
//! [`LedgerError::Transient`], 401 → one refresh and one retry. 4xx bodies go
//! back to the adapter, which turns them into exceptions.

// `LedgerError` is the port's error type and carries the exception inline.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::oauth::TokenManager;
use super::LedgerError;
use crate::net::ratelimit::{Cost, RateLimiter};
pub use crate::net::{http_client, retry_after};

/// One HTTP request an adapter would send. `body` is the exact JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    /// Headers besides `Authorization` (added when sent, never shown).
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// What the call costs against the company's rate limits (items of a
    /// batch count one each).
    #[serde(skip)]
    pub cost: Cost,
}

impl HttpCall {
    pub fn new(method: &str, url: String) -> Self {
        Self {
            method: method.to_string(),
            url,
            headers: vec![("Accept".into(), "application/json".into())],
            body: None,
            cost: Cost::ONE,
        }
    }

    /// The call is a batch of `items` items.
    pub fn batch_of(mut self, items: usize) -> Self {
        self.cost = Cost::batch(items);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn json<T: Serialize>(mut self, body: &T) -> Result<Self, LedgerError> {
        let text = serde_json::to_string_pretty(body)
            .map_err(|e| LedgerError::Transient(format!("cannot encode request: {e}")))?;
        self.headers
            .push(("Content-Type".into(), "application/json".into()));
        self.body = Some(text);
        Ok(self)
    }

    /// The request as text: method, URL, headers (the bearer token
    /// redacted) and the JSON body.
    pub fn render(&self) -> String {
        let mut out = format!("{} {}\n", self.method, self.url);
        let _ = writeln!(out, "Authorization: Bearer <redacted>");
        for (k, v) in &self.headers {
            let _ = writeln!(out, "{k}: {v}");
        }
        if let Some(b) = &self.body {
            let _ = writeln!(out, "\n{b}");
        }
        out
    }
}

/// What came back (any status the transport did not handle itself).
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header_u32(&self, name: &str) -> Option<u32> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// How many HTTP requests a transport has sent, reads (`GET`: QBO
/// `query`, Xero time lists) apart from writes (every other method: QBO
/// batch calls, Xero `POST` / `PUT` / `DELETE`). Every request
/// attempted counts, whatever came back (a 401 answered by a refresh and a
/// retry is two); token refreshes are not counted here (see
/// [`TokenManager::refresh_count`]). Vendors meter reads apart (QBO's
/// monthly read quota), so callers can budget them.
#[derive(Debug, Default)]
pub struct CallCounts {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl CallCounts {
    fn count(&self, method: &str) {
        let c = if method.eq_ignore_ascii_case("GET") {
            &self.reads
        } else {
            &self.writes
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `GET` requests sent.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Requests of any other method sent.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Sends calls for one company.
pub struct Transport {
    pub http: reqwest::Client,
    pub tokens: Arc<TokenManager>,
    pub limiter: Arc<RateLimiter>,
    /// Extra headers every call carries (`xero-tenant-id`).
    pub common_headers: Vec<(String, String)>,
    /// How long to hold everyone after a 429 without `Retry-After`.
    pub default_pause: Duration,
    /// Requests sent, reads apart from writes.
    pub counts: CallCounts,
}

impl Transport {
    /// Send one call: wait for a rate-limit slot, attach the token, and on
    /// 401 refresh once and try once more.
    pub async fn send(&self, call: &HttpCall) -> Result<HttpReply, LedgerError> {
        let mut retried_auth = false;
        loop {
            let slot = self.limiter.acquire_cost(call.cost).await?;
            let token = self.tokens.access_token().await?;
            let reply = self.send_once(call, &token).await;
            drop(slot);
            let reply = reply?;
            self.limiter.observe_remaining(
                reply.header_u32("x-minlimit-remaining"),
                reply.header_u32("x-daylimit-remaining"),
                reply.header_u32("x-appminlimit-remaining"),
            );
            match reply.status {
                401 if !retried_auth => {
                    tracing::info!(url = %call.url, "401: refreshing the access token once");
                    self.tokens.invalidate(&token).await;
                    retried_auth = true;
                }
                429 => {
                    let after = retry_after(&reply.headers);
                    self.limiter
                        .pause_everywhere(after.unwrap_or(self.default_pause))
                        .await;
                    tracing::warn!(url = %call.url, ?after, "429 from the accounting API");
                    return Err(LedgerError::RateLimited(after));
                }
                s if s >= 500 => {
                    return Err(LedgerError::Transient(format!(
                        "{} answered {s}",
                        host_of(&call.url)
                    )))
                }
                s => {
                    if (200..300).contains(&s) {
                        self.tokens.confirm().await?;
                    }
                    return Ok(reply);
                }
            }
        }
    }

    async fn send_once(&self, call: &HttpCall, token: &str) -> Result<HttpReply, LedgerError> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|_| LedgerError::Transient(format!("bad method {}", call.method)))?;
        let mut req = self.http.request(method, &call.url).bearer_auth(token);
        for (k, v) in self.common_headers.iter().chain(&call.headers) {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = &call.body {
            req = req.body(b.clone());
        }
        self.counts.count(&call.method);
        let transient = |what: &str, e: reqwest::Error| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "connection failed"
            };
            LedgerError::Transient(format!(
                "{what} {} {kind}: {}",
                host_of(&call.url),
                e.without_url()
            ))
        };
        let resp = req.send().await.map_err(|e| transient("request to", e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transient("answer from", e))?
            .to_vec();
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }
}

/// Percent-encode a query parameter's value (everything but RFC 3986's
/// unreserved characters).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The host of a URL (`https://host/path` → `host`).
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}
