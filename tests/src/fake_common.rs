//! What the fake QBO and Xero servers share: injectable faults, sliding
//! window rate limits, the OAuth token endpoint with rotating refresh
//! tokens, and serving on 127.0.0.1:0.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// A fault the next matching request meets.
#[derive(Debug, Clone, PartialEq)]
pub enum Inject {
    /// Answer this status before doing anything.
    StatusBefore(u16),
    /// Do the work (records created), then answer this status.
    StatusAfter(u16),
    /// Do the work, then hold the answer this long (the client times out).
    TimeoutAfter(Duration),
    /// Do the work, then drop the connection mid-answer.
    DropAfter,
    /// Answer 200 with an error body (QBO: a whole-request Fault) and do nothing.
    ErrorIn200,
    /// Answer 429 with this `Retry-After` (seconds) and do nothing.
    Throttle(Option<f64>),
    /// Forget every access token (the next call gets 401).
    ExpireTokens,
}

/// A response whose body fails after the headers: the client sees the
/// connection drop after the server did the work.
pub fn dropped_connection() -> Response {
    let stream = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"partial\":")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "dropped",
        )),
    ]);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `limit` calls in any `window`, counted as a sliding log.
#[derive(Debug)]
pub struct Window {
    pub limit: u32,
    pub window: Duration,
    log: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            log: VecDeque::new(),
        }
    }

    /// Count a call now, or say how long until one would fit.
    pub fn hit(&mut self, now: Instant) -> Result<(), Duration> {
        while self
            .log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.log.pop_front();
        }
        if self.log.len() as u32 >= self.limit {
            let oldest = self.log.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        self.log.push_back(now);
        Ok(())
    }

    pub fn remaining(&mut self, now: Instant) -> u32 {
        while self
            .log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.log.pop_front();
        }
        self.limit.saturating_sub(self.log.len() as u32)
    }

    /// Count `n` calls now (a batch of `n` items), or say how long until
    /// all `n` would fit; nothing is counted then.
    pub fn hit_n(&mut self, now: Instant, n: u32) -> Result<(), Duration> {
        let left = self.remaining(now);
        if n > self.limit {
            return Err(self.window);
        }
        if left < n {
            // The oldest calls that must leave first.
            let must_leave = (n - left) as usize;
            let t = self.log.get(must_leave - 1).copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(t)));
        }
        for _ in 0..n {
            self.log.push_back(now);
        }
        Ok(())
    }
}

/// The OAuth side of a fake: one client, rotating refresh tokens, access
/// tokens with a lifetime.
#[derive(Debug)]
pub struct OAuthFake {
    pub client_id: String,
    pub client_secret: String,
    pub valid_refresh: HashSet<String>,
    pub access: HashMap<String, Instant>,
    pub access_ttl: Duration,
    /// Rotate the refresh token on every refresh (both vendors may).
    pub rotate: bool,
    /// Keep a replaced refresh token usable (Xero: ~30 min grace).
    pub keep_replaced: bool,
    pub refresh_calls: u64,
    /// Lose the answer of the next refresh after rotating.
    pub drop_next_refresh: bool,
}

impl OAuthFake {
    pub fn new(refresh_token: &str) -> Self {
        Self {
            client_id: "client-id".into(),
            client_secret: "client-secret".into(),
            valid_refresh: HashSet::from([refresh_token.to_string()]),
            access: HashMap::new(),
            access_ttl: Duration::from_secs(3600),
            rotate: true,
            keep_replaced: true,
            refresh_calls: 0,
            drop_next_refresh: false,
        }
    }

    /// Check `Authorization: Bearer …`.
    pub fn authorised(&self, h: &HeaderMap) -> bool {
        let Some(token) = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.access
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }

    /// The token endpoint: form body, HTTP Basic client authentication.
    pub fn token(&mut self, h: &HeaderMap, form: &HashMap<String, String>) -> Response {
        use base64_lite::decode;
        self.refresh_calls += 1;
        let basic = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(decode);
        if basic.as_deref() != Some(&format!("{}:{}", self.client_id, self.client_secret)) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        let rt = form.get("refresh_token").cloned().unwrap_or_default();
        if form.get("grant_type").map(String::as_str) != Some("refresh_token")
            || !self.valid_refresh.contains(&rt)
        {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "invalid_grant"})),
            )
                .into_response();
        }
        let access = format!("at-{}", uuid::Uuid::new_v4().simple());
        self.access
            .insert(access.clone(), Instant::now() + self.access_ttl);
        let next = if self.rotate {
            let n = format!("rt-{}", uuid::Uuid::new_v4().simple());
            if !self.keep_replaced {
                self.valid_refresh.remove(&rt);
            }
            self.valid_refresh.insert(n.clone());
            n
        } else {
            rt
        };
        if std::mem::take(&mut self.drop_next_refresh) {
            return dropped_connection();
        }
        axum::Json(serde_json::json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.access_ttl.as_secs(),
            "refresh_token": next,
            "x_refresh_token_expires_in": 8_640_000
        }))
        .into_response()
    }
}

/// Serve `app` on 127.0.0.1:0; the server stops when the handle drops.
pub async fn serve(app: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, handle)
}

/// Parse an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decode HTTP Basic credentials (`user:password`).
pub fn decode_basic(b64: &str) -> Option<String> {
    base64_lite::decode(b64)
}

/// A tiny base64 decoder for HTTP Basic credentials (no extra crate).
mod base64_lite {
    pub fn decode(s: &str) -> Option<String> {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.trim().bytes().filter(|c| *c != b'=') {
            let v = A.iter().position(|a| *a == c)? as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        String::from_utf8(out).ok()
    }
}

/// Store a tracker entry as a vendor would on save: its modification stamp
/// (`field`, e.g. Harvest `updated_at`, Toggl `at`) becomes now, and always
/// later than the stamp it had before.
pub fn store_with_later_stamp(
    entries: &mut std::collections::BTreeMap<u64, serde_json::Value>,
    mut entry: serde_json::Value,
    field: &str,
    vendor: &str,
) {
    use chrono::{DateTime, SecondsFormat, Utc};
    let Some(id) = entry["id"].as_u64() else {
        panic!("{vendor} fake: entry without a numeric id: {entry}");
    };
    let prev = entries
        .get(&id)
        .and_then(|e| e[field].as_str())
        .and_then(|t| t.parse::<DateTime<Utc>>().ok());
    let mut now = Utc::now();
    if let Some(p) = prev {
        now = now.max(p + chrono::Duration::seconds(1));
    }
    entry[field] = serde_json::json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
    entries.insert(id, entry);
}
