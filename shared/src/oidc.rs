//! Browser sign-in to the console through an OpenID Connect provider (an
//! Amazon Cognito user pool's hosted UI, or any OIDC provider): the
//! authorization-code flow with PKCE (RFC 7636), ID-token verification
//! (OpenID Connect Core 1.0 §3.1.3.7) against the provider's published keys,
//! and the role claim mapped to a console [`Role`](crate::identity::Role).
//!
//! The pure parts (PKCE, the signed flow cookie, the claim checks, URL
//! building) are functions of their inputs; [`Provider`] does the I/O
//! (discovery document, JWKS cache refreshed on an unknown `kid`, the token
//! endpoint) with the same HTTP client as the ledgers. The console routes
//! that use them are in `timepost_web::signin`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::identity::{identity_from_claims, Identity, IdentityError};

pub use crate::config::oidc::{OidcConfig, DEFAULT_ROLE_CLAIM};

/// Seconds of clock difference allowed on `exp`, `iat` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

/// How long a started sign-in (the flow cookie) stays valid.
pub const FLOW_SECS: u64 = 600;

/// Why a browser sign-in did not sign anyone in. Each message is shown on
/// the console's refusal page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("browser sign-in is not configured on this server ([console.oidc])")]
    NotConfigured,
    #[error("the sign-in provider could not be reached or answered badly: {0}")]
    Provider(String),
    #[error("the sign-in provider refused the sign-in: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    #[error("this sign-in was not started here, or took longer than 10 minutes; start again from the sign-in page")]
    NoFlow,
    #[error("the sign-in's state does not match the one this browser started; start again from the sign-in page")]
    StateMismatch,
    #[error("the provider sent no authorization code")]
    NoCode,
    #[error("the provider's token endpoint refused the code: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    BadToken(String),
    #[error("the ID token is signed with key `{0}`, which the provider does not publish")]
    UnknownKey(String),
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token was issued by `{got}`, not by the configured provider `{want}`")]
    WrongIssuer { got: String, want: String },
    #[error(
        "the ID token was issued for another application (audience {0}), not this console's client"
    )]
    WrongAudience(String),
    #[error("the ID token's nonce does not match this sign-in (a replayed or injected token)")]
    NonceMismatch,
    #[error("the token is a Cognito `{0}` token, not an ID token")]
    NotIdToken(String),
    #[error("{0}")]
    Identity(IdentityError),
}

/// A fresh PKCE `code_verifier` (RFC 7636 §4.1: 43–128 unreserved
/// characters; 64 hex digits from two random UUIDs, 244 random bits).
pub fn pkce_verifier() -> String {
    random_hex()
}

/// The S256 `code_challenge` of a verifier (RFC 7636 §4.2:
/// BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), no padding).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// One sign-in in progress, kept in the browser in a signed cookie between
/// `/auth/login` and `/auth/callback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// The redirect URI sent to the authorization endpoint (the token
    /// request must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// Unix seconds after which the flow is refused.
    pub expires: u64,
}

impl Flow {
    /// A new flow with random state, nonce and verifier, valid
    /// [`FLOW_SECS`] from `now`.
    pub fn start(redirect_uri: &str, now: u64) -> Self {
        Self {
            state: random_hex(),
            nonce: random_hex(),
            verifier: pkce_verifier(),
            redirect_uri: redirect_uri.to_string(),
            expires: now.saturating_add(FLOW_SECS),
        }
    }

    fn mac(key: &[u8], payload: &str) -> Vec<u8> {
        // HMAC accepts a key of any length; an empty MAC never matches.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
            return Vec::new();
        };
        mac.update(b"oidc-flow|");
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The cookie value: base64url(JSON).base64url(HMAC-SHA256).
    pub fn seal(&self, key: &[u8]) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = URL_SAFE_NO_PAD.encode(Self::mac(key, &payload));
        format!("{payload}.{mac}")
    }

    /// The flow a cookie carries when this server signed it and it has not
    /// expired at `now`.
    pub fn open(cookie: &str, key: &[u8], now: u64) -> Option<Flow> {
        let (payload, mac) = cookie.split_once('.')?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let want = Self::mac(key, payload);
        if want.is_empty() || !bool::from(given.as_slice().ct_eq(&want)) {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let flow: Flow = serde_json::from_slice(&json).ok()?;
        (flow.expires >= now).then_some(flow)
    }

    /// Check the callback's `state` against this flow.
    pub fn check_state(&self, state: Option<&str>) -> Result<(), OidcError> {
        match state {
            Some(s) if bool::from(s.as_bytes().ct_eq(self.state.as_bytes())) => Ok(()),
            _ => Err(OidcError::StateMismatch),
        }
    }
}

/// The parts of the discovery document used (OpenID Connect Discovery 1.0
/// §3).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// The authorization request URL (OpenID Connect Core 1.0 §3.1.2.1 with
/// RFC 7636's `code_challenge`).
pub fn authorize_url(
    endpoint: &str,
    config: &OidcConfig,
    client_id: &str,
    flow: &Flow,
) -> Result<String, OidcError> {
    let mut scopes: Vec<&str> = vec!["openid"];
    scopes.extend(
        config
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "openid"),
    );
    let scope = scopes.join(" ");
    let challenge = pkce_challenge(&flow.verifier);
    let url = reqwest::Url::parse_with_params(
        endpoint,
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", flow.redirect_uri.as_str()),
            ("scope", scope.as_str()),
            ("state", flow.state.as_str()),
            ("nonce", flow.nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| OidcError::Provider(format!("authorization endpoint `{endpoint}`: {e}")))?;
    Ok(url.to_string())
}

/// Where sign-out sends the browser: the configured logout URL (Cognito's
/// logout endpoint takes `client_id` and `logout_uri`), else the
/// discovery document's `end_session_endpoint` (OpenID Connect
/// RP-Initiated Logout 1.0: `client_id`, `post_logout_redirect_uri`), else
/// None (the console's own sign-in page).
pub fn logout_url(
    config: &OidcConfig,
    discovery: Option<&Discovery>,
    client_id: &str,
    back_to: &str,
) -> Option<String> {
    if let Some(u) = &config.logout_url {
        return reqwest::Url::parse_with_params(
            u,
            [("client_id", client_id), ("logout_uri", back_to)],
        )
        .ok()
        .map(|u| u.to_string());
    }
    let end = discovery?.end_session_endpoint.as_deref()?;
    reqwest::Url::parse_with_params(
        end,
        [
            ("client_id", client_id),
            ("post_logout_redirect_uri", back_to),
        ],
    )
    .ok()
    .map(|u| u.to_string())
}

/// What an ID token must say to sign someone in.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds now (`iat` may not be later than this plus the leeway).
    pub now: u64,
}

/// The `kid` an ID token's header names, after checking it is an RS256
/// JWT (the algorithm Cognito signs with, and the one OpenID Connect
/// requires providers to support, Core 1.0 §15.1).
pub fn token_kid(id_token: &str) -> Result<String, OidcError> {
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|e| OidcError::BadToken(format!("not a JWT: {e}")))?;
    if header.alg != Algorithm::RS256 {
        return Err(OidcError::BadToken(format!(
            "signed with {:?}; only RS256 is accepted",
            header.alg
        )));
    }
    header
        .kid
        .ok_or_else(|| OidcError::BadToken("the token names no signing key (kid)".into()))
}

/// Verify an ID token against the provider's keys and the expectations
/// (OpenID Connect Core 1.0 §3.1.3.7): RS256 signature by the key its
/// `kid` names; `iss`; `aud` contains the client (and `azp` is the client
/// when there are several audiences); `exp` not passed and `iat` not in
/// the future (with [`LEEWAY_SECS`]); `nonce` is this flow's; Cognito's
/// `token_use`, when present, is `id`. Returns the claims.
pub fn verify_id_token(
    id_token: &str,
    keys: &JwkSet,
    expect: &Expect<'_>,
) -> Result<serde_json::Value, OidcError> {
    let kid = token_kid(id_token)?;
    let jwk = keys.find(&kid).ok_or(OidcError::UnknownKey(kid))?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| OidcError::Provider(format!("the provider's key is unusable: {e}")))?;
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v.set_issuer(&[expect.issuer]);
    v.set_audience(&[expect.client_id]);
    let data = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => OidcError::Expired,
            K::InvalidIssuer => OidcError::WrongIssuer {
                got: claim_str(id_token, "iss"),
                want: expect.issuer.to_string(),
            },
            K::InvalidAudience => OidcError::WrongAudience(claim_str(id_token, "aud")),
            K::InvalidSignature => {
                OidcError::BadToken("its signature does not verify with the provider's key".into())
            }
            K::MissingRequiredClaim(c) => OidcError::BadToken(format!("it has no `{c}` claim")),
            K::ImmatureSignature => OidcError::BadToken("it is not valid yet (nbf)".into()),
            other => OidcError::BadToken(format!("{other:?}")),
        }
    })?;
    let claims = data.claims;
    let iat = claims
        .get("iat")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| OidcError::BadToken("its `iat` is not a number".into()))?;
    if iat > expect.now.saturating_add(LEEWAY_SECS) {
        return Err(OidcError::BadToken(
            "it was issued in the future (iat)".into(),
        ));
    }
    if let Some(serde_json::Value::Array(auds)) = claims.get("aud") {
        if auds.len() > 1
            && claims.get("azp").and_then(serde_json::Value::as_str) != Some(expect.client_id)
        {
            return Err(OidcError::WrongAudience(format!(
                "{} without azp naming this client",
                serde_json::Value::Array(auds.clone())
            )));
        }
    }
    let nonce = claims.get("nonce").and_then(serde_json::Value::as_str);
    if !nonce.is_some_and(|n| bool::from(n.as_bytes().ct_eq(expect.nonce.as_bytes()))) {
        return Err(OidcError::NonceMismatch);
    }
    if let Some(use_) = claims.get("token_use").and_then(serde_json::Value::as_str) {
        if use_ != "id" {
            return Err(OidcError::NotIdToken(use_.to_string()));
        }
    }
    Ok(claims)
}

/// A claim of an unverified token, for an error message only.
fn claim_str(token: &str, name: &str) -> String {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c.get(name).cloned())
        .map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_else(|| "none".into())
}

/// The console identity verified claims grant (see
/// [`identity_from_claims`]).
pub fn identity(claims: &serde_json::Value, role_claim: &str) -> Result<Identity, OidcError> {
    identity_from_claims(claims, role_claim).map_err(OidcError::Identity)
}

/// The token endpoint's answer (OpenID Connect Core 1.0 §3.1.3.3).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub id_token: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
}

/// One OpenID provider as this server uses it: settings, the HTTP client,
/// the discovery document (read once) and the keys (read when a token
/// names a key not yet known).
pub struct Provider {
    config: OidcConfig,
    client_id: String,
    client_secret: Option<String>,
    http: reqwest::Client,
    discovery: tokio::sync::Mutex<Option<Arc<Discovery>>>,
    keys: tokio::sync::Mutex<Option<Arc<JwkSet>>>,
    /// Signs the flow cookie. The same in every instance that serves the
    /// console (in AWS: derived from the `token_key` secret), so a
    /// callback may reach another instance than the one that started it.
    flow_key: Vec<u8>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider with a resolved client id (and secret, for a
    /// confidential client) and the key that signs flow cookies.
    pub fn new(
        config: OidcConfig,
        client_id: String,
        client_secret: Option<String>,
        flow_key: Vec<u8>,
    ) -> Result<Self, OidcError> {
        let http = crate::net::http_client(Duration::from_secs(10))
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        Ok(Self {
            config,
            client_id,
            client_secret,
            http,
            discovery: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(None),
            flow_key,
        })
    }

    /// Resolve the client id and secret from the secrets store where the
    /// settings name secrets, then build the provider.
    pub async fn resolve(
        config: OidcConfig,
        secrets: &dyn crate::ports::Secrets,
        flow_key: Vec<u8>,
    ) -> Result<Self, OidcError> {
        let read = |name: String| async move {
            secrets
                .get(&name)
                .await
                .map_err(|e| OidcError::Provider(format!("cannot read secret `{name}`: {e}")))?
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    OidcError::Provider(format!("the secret `{name}` is missing or empty"))
                })
        };
        let client_id = match &config.client_id_secret {
            Some(name) if config.client_id.trim().is_empty() => read(name.clone()).await?,
            _ => config.client_id.trim().to_string(),
        };
        let client_secret = match &config.client_secret_name {
            Some(name) => Some(read(name.clone()).await?),
            None => None,
        };
        Self::new(config, client_id, client_secret, flow_key)
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn flow_key(&self) -> &[u8] {
        &self.flow_key
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("GET {url}: {e}")))?;
        let status = r.status();
        if !status.is_success() {
            return Err(OidcError::Provider(format!("GET {url} answered {status}")));
        }
        r.json::<T>()
            .await
            .map_err(|e| OidcError::Provider(format!("GET {url}: not the expected JSON: {e}")))
    }

    /// The discovery document, read once
    /// (`<issuer>/.well-known/openid-configuration`); its `issuer` must be
    /// the configured one exactly (Discovery 1.0 §4.3).
    pub async fn discovery(&self) -> Result<Arc<Discovery>, OidcError> {
        let mut slot = self.discovery.lock().await;
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url).await?;
        if d.issuer != self.config.issuer {
            return Err(OidcError::Provider(format!(
                "the discovery document names issuer `{}`, not the configured `{}`",
                d.issuer, self.config.issuer
            )));
        }
        let d = Arc::new(d);
        *slot = Some(d.clone());
        Ok(d)
    }

    /// The discovery document if it was read already (sign-out does not
    /// wait for the provider).
    pub async fn discovery_if_known(&self) -> Option<Arc<Discovery>> {
        self.discovery.lock().await.clone()
    }

    /// Read the discovery document and the signing keys now (what
    /// `timepost --backend aws doctor` checks): the sign-in endpoint and
    /// how many keys the provider publishes.
    pub async fn check(&self) -> Result<(String, usize), OidcError> {
        let d = self.discovery().await?;
        let keys = self.fetch_keys().await?;
        Ok((d.authorization_endpoint.clone(), keys.keys.len()))
    }

    async fn fetch_keys(&self) -> Result<Arc<JwkSet>, OidcError> {
        let d = self.discovery().await?;
        let keys: JwkSet = self.get_json(&d.jwks_uri).await?;
        let keys = Arc::new(keys);
        *self.keys.lock().await = Some(keys.clone());
        Ok(keys)
    }

    /// The provider's keys: the cached set, read again when the token
    /// names a key it lacks (the provider rotated its keys).
    async fn keys_for(&self, kid: &str) -> Result<Arc<JwkSet>, OidcError> {
        let cached = self.keys.lock().await.clone();
        match cached {
            Some(k) if k.find(kid).is_some() => Ok(k),
            _ => self.fetch_keys().await,
        }
    }

    /// Start a sign-in: the flow to keep in the browser and the URL of the
    /// provider's authorization endpoint to send it to.
    pub async fn begin(&self, redirect_uri: &str, now: u64) -> Result<(Flow, String), OidcError> {
        let d = self.discovery().await?;
        let flow = Flow::start(redirect_uri, now);
        let url = authorize_url(
            &d.authorization_endpoint,
            &self.config,
            &self.client_id,
            &flow,
        )?;
        Ok((flow, url))
    }

    /// Finish a sign-in: check the callback's parameters against the flow,
    /// exchange the code (with the PKCE verifier) and verify the ID token.
    /// Returns the identity it grants and the verified claims.
    pub async fn finish(
        &self,
        flow: &Flow,
        params: &HashMap<String, String>,
        now: u64,
    ) -> Result<(Identity, serde_json::Value), OidcError> {
        flow.check_state(params.get("state").map(String::as_str))?;
        if let Some(error) = params.get("error") {
            return Err(OidcError::Refused {
                error: error.clone(),
                description: params.get("error_description").cloned(),
            });
        }
        let code = params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or(OidcError::NoCode)?;
        let tokens = self.exchange(code, flow).await?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| OidcError::Exchange("the answer carries no id_token".into()))?;
        let kid = token_kid(&id_token)?;
        let keys = self.keys_for(&kid).await?;
        let claims = verify_id_token(
            &id_token,
            &keys,
            &Expect {
                issuer: &self.config.issuer,
                client_id: &self.client_id,
                nonce: &flow.nonce,
                now,
            },
        )?;
        let who = identity(&claims, &self.config.role_claim)?;
        Ok((who, claims))
    }

    /// The token request (RFC 6749 §4.1.3 with RFC 7636 §4.5's
    /// `code_verifier`); a confidential client authenticates with HTTP
    /// Basic (`client_secret_basic`, what Cognito's token endpoint takes).
    async fn exchange(&self, code: &str, flow: &Flow) -> Result<TokenResponse, OidcError> {
        let d = self.discovery().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", flow.redirect_uri.as_str()),
            ("client_id", self.client_id.as_str()),
            ("code_verifier", flow.verifier.as_str()),
        ];
        let mut req = self.http.post(&d.token_endpoint).form(&form);
        if let Some(secret) = &self.client_secret {
            req = req.basic_auth(&self.client_id, Some(secret));
        }
        let r = req
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("POST {}: {e}", d.token_endpoint)))?;
        let status = r.status();
        let body = r
            .text()
            .await
            .map_err(|e| OidcError::Provider(format!("POST {}: {e}", d.token_endpoint)))?;
        if !status.is_success() {
            // RFC 6749 §5.2: {"error": "...", "error_description": "..."}.
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let error = v
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown error");
            let desc = v
                .get("error_description")
                .and_then(serde_json::Value::as_str)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(OidcError::Exchange(format!("{status}: {error}{desc}")));
        }
        serde_json::from_str(&body)
            .map_err(|e| OidcError::Exchange(format!("the answer is not a token response: {e}")))
    }

    /// Where sign-out sends the browser (see [`logout_url`]).
    pub async fn logout_url(&self, back_to: &str) -> Option<String> {
        let d = self.discovery_if_known().await;
        logout_url(&self.config, d.as_deref(), &self.client_id, back_to)
    }
}

/// A flow key derived from a secret shared by every instance (the
/// `token_key` secret): HMAC-SHA256(secret, "timepost oidc flow").
pub fn derive_flow_key(secret: &str) -> Vec<u8> {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(b"timepost oidc flow");
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes a key of any length; should it not, a key of this
        // instance still signs (sign-ins then return to it).
        Err(_) => random_flow_key(),
    }
}

/// A random flow key, for one process (`timepost serve`).
pub fn random_flow_key() -> Vec<u8> {
    let mut k = Vec::with_capacity(32);
    k.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    k.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        OidcConfig::with_env(None, |k| {
            match k {
                "TIMEPOST_OIDC_ISSUER" => Some("https://idp.example.com/pool"),
                "TIMEPOST_OIDC_CLIENT_ID" => Some("client-1"),
                _ => None,
            }
            .map(str::to_string)
        })
        .expect("configured")
    }

    #[test]
    fn pkce_challenge_is_rfc7636s_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = pkce_verifier();
        assert!((43..=128).contains(&v.len()));
        assert_ne!(v, pkce_verifier());
    }

    #[test]
    fn flow_cookies_are_signed_and_expire() {
        let key = random_flow_key();
        let f = Flow::start("https://c.example.com/auth/callback", 1_000);
        let sealed = f.seal(&key);
        assert_eq!(Flow::open(&sealed, &key, 1_000), Some(f.clone()));
        assert_eq!(Flow::open(&sealed, &key, 1_000 + FLOW_SECS + 1), None);
        assert_eq!(Flow::open(&sealed, &random_flow_key(), 1_000), None);
        let (payload, _) = sealed.split_once('.').expect("two parts");
        let forged = format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(Flow::open(&forged, &key, 1_000), None);
        assert!(f.check_state(Some(&f.state)).is_ok());
        assert_eq!(f.check_state(Some("x")), Err(OidcError::StateMismatch));
        assert_eq!(f.check_state(None), Err(OidcError::StateMismatch));
    }

    #[test]
    fn authorize_url_carries_pkce_state_and_nonce() {
        let c = config();
        let f = Flow::start("https://c.example.com/auth/callback", 0);
        let u =
            authorize_url("https://idp.example.com/authorize", &c, "client-1", &f).expect("url");
        let u = reqwest::Url::parse(&u).expect("parses");
        let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "client-1");
        assert_eq!(q["redirect_uri"], "https://c.example.com/auth/callback");
        assert_eq!(q["scope"], "openid email profile");
        assert_eq!(q["state"], f.state);
        assert_eq!(q["nonce"], f.nonce);
        assert_eq!(q["code_challenge"], pkce_challenge(&f.verifier));
        assert_eq!(q["code_challenge_method"], "S256");
    }

    #[test]
    fn env_overrides_and_checks() {
        assert!(OidcConfig::with_env(None, |_| None).is_none());
        let c = config();
        assert_eq!(c.role_claim, DEFAULT_ROLE_CLAIM);
        assert!(c.problem().is_none());
        let mut bad = c.clone();
        bad.issuer = "http://idp.example.com".into();
        assert_eq!(bad.problem().map(|p| p.0), Some("issuer"));
        bad.issuer = "http://127.0.0.1:9000".into();
        assert!(bad.problem().is_none());
        // A stack that created no pool and names no client: no sign-in.
        let none = OidcConfig::with_env(None, |k| {
            (k == "TIMEPOST_OIDC_ISSUER").then(|| "https://idp.example.com".to_string())
        });
        assert!(none.is_none());
    }

    #[test]
    fn logout_goes_to_the_configured_or_discovered_endpoint() {
        let mut c = config();
        assert_eq!(logout_url(&c, None, "c1", "https://x/console/login"), None);
        let d = Discovery {
            issuer: c.issuer.clone(),
            authorization_endpoint: "https://idp/a".into(),
            token_endpoint: "https://idp/t".into(),
            jwks_uri: "https://idp/k".into(),
            end_session_endpoint: Some("https://idp/end".into()),
        };
        assert_eq!(
            logout_url(&c, Some(&d), "c1", "https://x/").as_deref(),
            Some("https://idp/end?client_id=c1&post_logout_redirect_uri=https%3A%2F%2Fx%2F")
        );
        c.logout_url = Some("https://dom.auth.us-east-1.amazoncognito.com/logout".into());
        assert_eq!(
            logout_url(&c, Some(&d), "c1", "https://x/").as_deref(),
            Some("https://dom.auth.us-east-1.amazoncognito.com/logout?client_id=c1&logout_uri=https%3A%2F%2Fx%2F")
        );
    }
}
