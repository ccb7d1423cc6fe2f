//! OAuth 2 access tokens for one company (QBO realm, Xero tenant), refreshed
//! before they expire, with refresh-token rotation persisted through the
//! [`Secrets`] port.
//!
//! - One refresh at a time per company: the refresh runs under a tokio
//!   mutex, and whoever waited on it finds the fresh token afterwards.
//! - Rotation is stored as one JSON value (one atomic secrets write) that
//!   keeps the previous refresh token next to the new one until a call with
//!   the new access token succeeds. If the server refuses the new one, the
//!   previous one is tried.
//! - A lost refresh response changes nothing stored: the next attempt sends
//!   the same refresh token again, which both vendors accept for a while.
//! - Token values never reach a log line or an error message.

// `LedgerError` is the port's error type and carries the exception inline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use tokio::time::Instant;

use super::LedgerError;
use crate::exceptions::{Exception, ExceptionCode};
use crate::ports::Secrets;

/// Where the client and tokens live.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub token_url: String,
    /// Secret names: OAuth client id and secret, the refresh token the admin
    /// stored, and the state timepost maintains (rotation).
    pub client_id_secret: String,
    pub client_secret_secret: String,
    pub refresh_token_secret: String,
    pub state_secret: String,
    /// Refresh this long before the access token expires.
    pub refresh_before: Duration,
}

impl OAuthSettings {
    /// Conventional names under a prefix (`qbo`, `xero`).
    pub fn with_prefix(prefix: &str, token_url: impl Into<String>) -> Self {
        Self {
            token_url: token_url.into(),
            client_id_secret: format!("{prefix}_client_id"),
            client_secret_secret: format!("{prefix}_client_secret"),
            refresh_token_secret: format!("{prefix}_refresh_token"),
            state_secret: format!("{prefix}_oauth_state"),
            refresh_before: Duration::from_secs(120),
        }
    }
}

pub use timepost_core::ledger::tokens::{Refusal, TokenState};

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Seconds the refresh token stays valid (QuickBooks sends it; see the
    /// Intuit OAuth FAQ, "What are refresh token and access token
    /// durations?").
    #[serde(default)]
    x_refresh_token_expires_in: Option<u64>,
}

#[derive(Clone)]
struct Access {
    token: String,
    expires_at: Instant,
}

enum RefreshError {
    /// The server refused this refresh token (invalid_grant and the like).
    Refused(String),
    Other(LedgerError),
}

/// Access tokens for one company.
pub struct TokenManager {
    http: reqwest::Client,
    settings: OAuthSettings,
    secrets: Arc<dyn Secrets>,
    access: tokio::sync::Mutex<Option<Access>>,
    unconfirmed: AtomicBool,
    refreshes: std::sync::atomic::AtomicU64,
}

fn not_authorised(detail: String) -> LedgerError {
    LedgerError::Rejected(Exception::new(ExceptionCode::LedgerNotAuthorised, detail))
}

fn store_failure(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Transient(format!("secrets store: {e}"))
}

impl TokenManager {
    pub fn new(http: reqwest::Client, settings: OAuthSettings, secrets: Arc<dyn Secrets>) -> Self {
        Self {
            http,
            settings,
            secrets,
            access: tokio::sync::Mutex::new(None),
            unconfirmed: AtomicBool::new(false),
            refreshes: Default::default(),
        }
    }

    /// How many refreshes this manager performed (tests, metrics).
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A valid access token, refreshing first when it is missing or about
    /// to expire.
    pub async fn access_token(&self) -> Result<String, LedgerError> {
        let mut guard = self.access.lock().await;
        if let Some(a) = guard.as_ref() {
            if a.expires_at > Instant::now() + self.settings.refresh_before {
                return Ok(a.token.clone());
            }
        }
        let fresh = self.refresh().await?;
        let token = fresh.token.clone();
        *guard = Some(fresh);
        Ok(token)
    }

    /// The server refused `token` (401): forget it, unless someone already
    /// replaced it, so the next [`access_token`](Self::access_token) refreshes once.
    pub async fn invalidate(&self, token: &str) {
        let mut guard = self.access.lock().await;
        if guard.as_ref().is_some_and(|a| a.token == token) {
            *guard = None;
        }
    }

    /// A call with the current access token succeeded: the rotated refresh
    /// token works, so the previous one can go.
    pub async fn confirm(&self) -> Result<(), LedgerError> {
        if !self.unconfirmed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let _guard = self.access.lock().await;
        if let Some(mut st) = self.load().await? {
            if st.previous.take().is_some() {
                self.store(&st).await?;
            }
        }
        Ok(())
    }

    async fn load(&self) -> Result<Option<TokenState>, LedgerError> {
        let s = &self.settings;
        if let Some(json) = self
            .secrets
            .get(&s.state_secret)
            .await
            .map_err(store_failure)?
        {
            if let Ok(st) = serde_json::from_str::<TokenState>(&json) {
                // After a refusal, a refresh token the admin stored anew
                // (a reconnect) replaces the refused one.
                if st.refused.is_some() {
                    if let Some(stored) = self
                        .secrets
                        .get(&s.refresh_token_secret)
                        .await
                        .map_err(store_failure)?
                    {
                        let stored = stored.trim().to_string();
                        if !stored.is_empty()
                            && stored != st.current
                            && st.previous.as_ref() != Some(&stored)
                        {
                            return Ok(Some(TokenState::fresh(stored)));
                        }
                    }
                }
                return Ok(Some(st));
            }
        }
        Ok(self
            .secrets
            .get(&s.refresh_token_secret)
            .await
            .map_err(store_failure)?
            .map(|current| TokenState::fresh(current.trim().to_string())))
    }

    async fn store(&self, st: &TokenState) -> Result<(), LedgerError> {
        let json = serde_json::to_string(st).map_err(store_failure)?;
        self.secrets
            .put(&self.settings.state_secret, &json)
            .await
            .map_err(store_failure)
    }

    async fn refresh(&self) -> Result<Access, LedgerError> {
        let s = &self.settings;
        let get = |name: String| async move {
            self.secrets
                .get(&name)
                .await
                .map_err(store_failure)?
                .ok_or_else(|| not_authorised(format!("The secrets store has no `{name}`.")))
        };
        let client_id = get(s.client_id_secret.clone()).await?;
        let client_secret = get(s.client_secret_secret.clone()).await?;
        let state = self.load().await?.ok_or_else(|| {
            not_authorised(format!(
                "The secrets store has no refresh token (`{}`).",
                s.refresh_token_secret
            ))
        })?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let (state, used, resp) = match self.exchange(&client_id, &client_secret, &state).await {
            Ok((used, resp)) => (state, used, resp),
            Err(RefreshError::Refused(why)) => {
                // Another instance (a parallel Lambda) may have rotated the
                // refresh token and written it back while our secrets store
                // served a cached copy: re-read past the cache, and try once
                // more only if the stored tokens differ from those refused.
                for name in [&s.state_secret, &s.refresh_token_secret] {
                    self.secrets.refresh(name).await.map_err(store_failure)?;
                }
                match self.load().await? {
                    Some(reread) if !reread.same_tokens(&state) => {
                        match self.exchange(&client_id, &client_secret, &reread).await {
                            Ok((used, resp)) => (reread, used, resp),
                            Err(RefreshError::Refused(why)) => {
                                return Err(self.note_refusal(reread, why).await)
                            }
                            Err(RefreshError::Other(e)) => return Err(e),
                        }
                    }
                    Some(reread) => return Err(self.note_refusal(reread, why).await),
                    None => return Err(refused(why)),
                }
            }
            Err(RefreshError::Other(e)) => return Err(e),
        };
        let now = Utc::now();
        let refresh_expires_at = resp
            .x_refresh_token_expires_in
            .and_then(|secs| chrono::TimeDelta::try_seconds(i64::try_from(secs).ok()?))
            .and_then(|d| now.checked_add_signed(d));
        let mut next = match resp.refresh_token.clone().filter(|t| !t.is_empty()) {
            Some(new) if new != used => TokenState {
                previous: Some(used),
                ..TokenState::fresh(new)
            },
            _ => TokenState {
                previous: state.previous.clone(),
                ..TokenState::fresh(used)
            },
        };
        next.refreshed_at = Some(now);
        next.refresh_expires_at = refresh_expires_at.or(state.refresh_expires_at);
        // Written when the tokens change, a refusal is over, or the last
        // success on record is a day old (what the expiry alert reads).
        let stale = state
            .refreshed_at
            .is_none_or(|at| now.signed_duration_since(at) > chrono::TimeDelta::days(1));
        if !next.same_tokens(&state) || state.refused.is_some() || stale {
            // Stored before the new access token is used: a crash from here
            // on finds the new refresh token (and the old one beside it).
            self.store(&next).await?;
        }
        self.unconfirmed
            .store(next.previous.is_some(), Ordering::Release);
        tracing::info!(token_url = %s.token_url, rotated = next.previous.is_some(), "oauth: access token refreshed");
        Ok(Access {
            token: resp.access_token,
            expires_at: Instant::now() + Duration::from_secs(resp.expires_in.unwrap_or(1800)),
        })
    }

    /// Exchange the current refresh token, or the previous one when the
    /// current is refused (a rotation not yet confirmed). Returns the token
    /// used and the answer.
    async fn exchange(
        &self,
        client_id: &str,
        client_secret: &str,
        state: &TokenState,
    ) -> Result<(String, TokenResponse), RefreshError> {
        match self.call(client_id, client_secret, &state.current).await {
            Ok(r) => Ok((state.current.clone(), r)),
            Err(RefreshError::Refused(why)) => match &state.previous {
                Some(prev) => {
                    let r = self.call(client_id, client_secret, prev).await?;
                    Ok((prev.clone(), r))
                }
                None => Err(RefreshError::Refused(why)),
            },
            Err(e) => Err(e),
        }
    }

    async fn call(
        &self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> Result<TokenResponse, RefreshError> {
        let resp = self
            .http
            .post(&self.settings.token_url)
            .basic_auth(client_id, Some(client_secret))
            .header("Accept", "application/json")
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .map_err(|e| {
                RefreshError::Other(LedgerError::Transient(format!(
                    "token endpoint unreachable: {}",
                    e.without_url()
                )))
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            RefreshError::Other(LedgerError::Transient(format!(
                "token response lost: {}",
                e.without_url()
            )))
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|_| {
                RefreshError::Other(LedgerError::Transient(
                    "token endpoint answered without an access token".into(),
                ))
            });
        }
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(RefreshError::Other(LedgerError::Transient(format!(
                "token endpoint answered {status}"
            ))));
        }
        // 400/401: the grant or the client was refused. Keep only the
        // error code, never the body (it may echo the token).
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| status.to_string());
        Err(RefreshError::Refused(code))
    }
}

impl TokenManager {
    /// Keep the refusal in the state secret for the alert pass (a failure
    /// to write it is logged: the refusal itself is what the caller gets).
    async fn note_refusal(&self, mut state: TokenState, why: String) -> LedgerError {
        state.refused = Some(Refusal {
            at: Utc::now(),
            code: why.clone(),
        });
        if let Err(e) = self.store(&state).await {
            tracing::warn!(error = %e, "oauth: cannot record the refused refresh token");
        }
        refused(why)
    }
}

fn refused(why: String) -> LedgerError {
    not_authorised(format!(
        "The accounting system refused timepost's refresh token ({why})."
    ))
}
