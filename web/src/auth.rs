//! Who is calling and what they may do: the five roles, the configured
//! users (`[[console.users]]`, tokens kept only as a keyed hash, see
//! [`super::tokens`]), failed attempts throttled ([`super::throttle`]), the `admin_token`
//! secret (an admin), sign-in sessions with their CSRF token, and the one
//! permission table every `/api` and `/console` route is checked against.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{html, secret_list, secret_names, ApiError, AppState};
use crate::config::ConsoleUser;
pub use crate::identity::{identity_from_claims, Identity, IdentityError, Role};
use crate::ports::{SessionStore, StoreResult, StoredSession};

use Role::*;

const EVERYONE: &[Role] = &[Admin, Manager, Finance, Auditor, Viewer];
const READERS: &[Role] = &[Admin, Finance, Auditor];
const FIXERS: &[Role] = &[Admin, Finance];
const APPROVERS: &[Role] = &[Admin, Manager];
const NOT_VIEWERS: &[Role] = &[Admin, Manager, Finance, Auditor];
const ADMINS: &[Role] = &[Admin];

/// The permission table: every guarded route (method, path pattern with
/// `{param}` segments) and the roles allowed on it. A path under `/api` or
/// `/console` that is not listed here is refused (404), so a route added to
/// the router without a row here cannot be reached.
pub const ROUTES: &[(&str, &str, &[Role])] = &[
    ("GET", "/api/report", EVERYONE),
    ("GET", "/api/entries", EVERYONE),
    ("GET", "/api/entries/{key}", EVERYONE),
    ("GET", "/api/entries/{key}/trace", EVERYONE),
    ("POST", "/api/entries/{key}/redrive", FIXERS),
    ("POST", "/api/entries/{key}/discard", FIXERS),
    ("GET", "/api/dead-letters", READERS),
    ("POST", "/api/dead-letters/{id}/redrive", FIXERS),
    ("GET", "/api/mappings", EVERYONE),
    ("GET", "/api/mappings/history", READERS),
    ("GET", "/api/exception-codes", EVERYONE),
    ("GET", "/api/audit", READERS),
    ("GET", "/api/approvals", EVERYONE),
    ("POST", "/api/approvals", APPROVERS),
    ("POST", "/api/mappings", ADMINS),
    ("POST", "/api/mappings/revert", ADMINS),
    ("GET", "/console", EVERYONE),
    ("GET", "/console/exceptions", EVERYONE),
    ("GET", "/console/exceptions.csv", EVERYONE),
    ("GET", "/console/hours-by-project.csv", EVERYONE),
    ("POST", "/console/exceptions/redrive", FIXERS),
    ("POST", "/console/exceptions/discard", FIXERS),
    ("GET", "/console/exceptions/{key}", EVERYONE),
    // Adds only a row an open entry is missing (never changes one), through
    // review: above the threshold it waits for an admin's approval.
    ("POST", "/console/exceptions/fix-mapping", FIXERS),
    ("POST", "/console/exceptions/holding", FIXERS),
    ("POST", "/api/holding", FIXERS),
    ("POST", "/console/logout", EVERYONE),
    ("GET", "/console/approvals", EVERYONE),
    ("POST", "/console/approvals", APPROVERS),
    ("GET", "/console/mappings", NOT_VIEWERS),
    ("POST", "/console/mappings", ADMINS),
    ("GET", "/console/mappings/history", NOT_VIEWERS),
    ("POST", "/console/mappings/revert", ADMINS),
    // Mapping change review: previews and proposals are read by those who
    // read the books; admins propose (through the saves above; finance
    // only through the inline fix), and only admins approve or reject.
    ("GET", "/api/mappings/preview", READERS),
    ("GET", "/api/mappings/pending", READERS),
    ("GET", "/api/mappings/pending/{id}", READERS),
    ("POST", "/api/mappings/pending/{id}/approve", ADMINS),
    ("POST", "/api/mappings/pending/{id}/reject", ADMINS),
    ("GET", "/console/mappings/preview", READERS),
    ("GET", "/console/mappings/pending/{id}", READERS),
    ("POST", "/console/mappings/pending/{id}/approve", ADMINS),
    ("POST", "/console/mappings/pending/{id}/reject", ADMINS),
    // Reconciliation: those who read the books see the runs and breaks;
    // those who work the exceptions resolve breaks and run one.
    ("GET", "/api/reconciliation/runs", READERS),
    ("GET", "/api/reconciliation/runs/{seq}/breaks", READERS),
    ("POST", "/api/reconciliation/breaks/{id}/resolve", FIXERS),
    ("POST", "/api/reconciliation/run", FIXERS),
    ("GET", "/api/reconciliation/kpi", READERS),
    ("GET", "/console/reconciliation", READERS),
    ("GET", "/console/reconciliation.csv", READERS),
    ("POST", "/console/reconciliation/resolve", FIXERS),
    ("POST", "/console/reconciliation/run", FIXERS),
    // Archives: those who read the books list, verify (audited; nothing
    // in the archive changes) and download period snapshots.
    ("GET", "/api/archives", READERS),
    ("POST", "/api/archives/verify", READERS),
    ("GET", "/console/archives", READERS),
    ("GET", "/console/archives.csv", READERS),
    ("POST", "/console/archives/verify", READERS),
    (
        "GET",
        "/console/archives/{period}/{revision}/{file}",
        READERS,
    ),
];

/// Routes anyone may reach: the sign-in form itself.
pub const PUBLIC: &[(&str, &str)] = &[("GET", "/console/login"), ("POST", "/console/login")];

fn matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.split('/');
    let mut q = path.split('/');
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.starts_with('{') && a.ends_with('}') => {
                if b.is_empty() {
                    return false;
                }
            }
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The roles allowed on `method path`, or None when the route is not in the
/// table.
pub fn allowed_roles(method: &str, path: &str) -> Option<&'static [Role]> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && matches(p, path))
        .map(|(_, _, r)| *r)
}

/// Whether `role` may use `method path`.
pub fn may(role: Role, method: &str, path: &str) -> bool {
    allowed_roles(method, path).is_some_and(|r| r.contains(&role))
}

/// The caller, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The session's CSRF token when signed in through the form; None for a
    /// bearer token (no ambient credential, so no CSRF to fear).
    pub csrf: Option<String>,
    /// True when the credential is one person's (a configured user's
    /// token, or an identity the hosting layer verified); false for the
    /// shared `admin_token`, which names nobody and so can neither approve
    /// a mapping change nor propose one that needs review.
    pub named: bool,
}

impl Principal {
    /// The caller as the review workflow sees it.
    pub fn actor(&self) -> crate::review::Actor {
        crate::review::Actor {
            name: self.name.clone(),
            role: self.role.as_str().to_string(),
            person: self.named,
        }
    }
}

/// The HTTP status for claims that name no console user: 401 when they
/// name nobody, 403 when they carry no console role.
pub fn identity_status(e: &IdentityError) -> StatusCode {
    match e {
        IdentityError::NoSubject => StatusCode::UNAUTHORIZED,
        IdentityError::NoRole(_) | IdentityError::UnknownRole { .. } => StatusCode::FORBIDDEN,
    }
}

pub const SESSION_COOKIE: &str = "tp_session";

struct Session {
    name: String,
    role: Role,
    named: bool,
    csrf: String,
    expires: Instant,
}

/// Sign-in sessions, with the key of the sign-in form's CSRF tokens and
/// the cookie policy. Kept in this process's memory (a restart signs
/// everyone out) unless a shared [`SessionStore`] is given: the admin
/// function keeps them in DynamoDB, so a browser's requests may reach any
/// of its instances and a sign-out ends the session on all of them.
pub struct Sessions {
    map: std::sync::Mutex<HashMap<String, Session>>,
    shared: Option<std::sync::Arc<dyn SessionStore>>,
    ttl: Duration,
    /// Signs the pre-session CSRF tokens of the sign-in form (random per
    /// process: a restart only makes an open sign-in form stale).
    login_key: [u8; 32],
    cookies: CookiePolicy,
    /// Failed sign-ins and bearer tokens, per client and for all accounts.
    throttle: super::throttle::Throttle,
}

/// When the console's cookies carry `Secure` (sent over HTTPS only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookiePolicy {
    /// `[console] public_url` is `https://…`: the console is always reached
    /// over HTTPS (a TLS-terminating proxy in front of `timepost serve`),
    /// so every cookie is `Secure`.
    pub always_secure: bool,
    /// `[console] trust_forwarded_proto`: believe `X-Forwarded-Proto:
    /// https` from the proxy in front (only when that proxy sets it and
    /// nothing else can reach the server).
    pub trust_forwarded_proto: bool,
}

impl CookiePolicy {
    pub fn from_config(c: &crate::config::ConsoleConfig) -> Self {
        Self {
            always_secure: c
                .public_url
                .as_deref()
                .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://")),
            trust_forwarded_proto: c.trust_forwarded_proto,
        }
    }

    /// Does a request arrive over HTTPS? `scheme` is the request URI's
    /// scheme when it has one (absolute-form URIs, as Lambda's adapter
    /// builds them from API Gateway, which only serves HTTPS).
    pub fn secure(&self, headers: &HeaderMap, scheme: Option<&str>) -> bool {
        self.always_secure
            || scheme.is_some_and(|s| s.eq_ignore_ascii_case("https"))
            || (self.trust_forwarded_proto
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")))
    }
}

/// How long a sign-in form's CSRF token is good for.
const LOGIN_TOKEN_SECS: u64 = 3600;

/// The cookie carrying the sign-in form's CSRF token (double submit).
pub const LOGIN_COOKIE: &str = "tp_login";

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        let mut login_key = [0u8; 32];
        login_key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        login_key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            map: std::sync::Mutex::new(HashMap::new()),
            shared: None,
            ttl,
            login_key,
            cookies: CookiePolicy::default(),
            throttle: super::throttle::Throttle::default(),
        }
    }

    /// Sessions whose failed credential checks are counted by `throttle`
    /// (tests give it a clock they step).
    pub fn with_throttle(mut self, throttle: super::throttle::Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// The failed-credential throttle.
    pub fn throttle(&self) -> &super::throttle::Throttle {
        &self.throttle
    }

    /// Sessions kept in `store`, shared by every instance that uses it.
    pub fn with_store(mut self, store: std::sync::Arc<dyn SessionStore>) -> Self {
        self.shared = Some(store);
        self
    }

    /// Sessions whose cookies follow `policy`.
    pub fn with_cookies(mut self, policy: CookiePolicy) -> Self {
        self.cookies = policy;
        self
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The `; Secure` attribute for a cookie set in answer to this
    /// request, when it came over HTTPS (see [`CookiePolicy`]).
    pub fn secure_attr(&self, headers: &HeaderMap, scheme: Option<&str>) -> &'static str {
        if self.cookies.secure(headers, scheme) {
            "; Secure"
        } else {
            ""
        }
    }

    fn login_mac(&self, nonce: &str, expires: u64) -> String {
        use hmac::{Hmac, Mac};
        // HMAC takes a key of any length; an empty MAC never matches.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.login_key) else {
            return String::new();
        };
        mac.update(format!("login-csrf|{nonce}|{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A fresh CSRF token for the sign-in form: `nonce.expiry.mac`, signed
    /// with this process's key. The same value goes in the
    /// [`LOGIN_COOKIE`] cookie and the form's hidden `csrf` field.
    pub fn login_token(&self) -> String {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let expires = unix_now().saturating_add(LOGIN_TOKEN_SECS);
        let mac = self.login_mac(&nonce, expires);
        format!("{nonce}.{expires}.{mac}")
    }

    /// Does a sign-in POST carry the same token in its cookie and its form,
    /// signed here and not expired?
    pub fn check_login_token(&self, cookie: Option<&str>, field: Option<&str>) -> bool {
        let (Some(cookie), Some(field)) = (cookie, field) else {
            return false;
        };
        if !bool::from(cookie.as_bytes().ct_eq(field.as_bytes())) {
            return false;
        }
        let mut parts = field.splitn(3, '.');
        let (Some(nonce), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expires) = expires.parse::<u64>() else {
            return false;
        };
        let want = self.login_mac(nonce, expires);
        !want.is_empty()
            && bool::from(want.as_bytes().ct_eq(mac.as_bytes()))
            && expires >= unix_now()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a session for `who` (as its token identified them); returns
    /// its id (the cookie value). Fails only when the shared store does.
    pub async fn create(&self, who: &Principal) -> StoreResult<String> {
        let id = random_token();
        let csrf = random_token();
        if let Some(store) = &self.shared {
            let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::hours(8));
            let session = StoredSession {
                name: who.name.clone(),
                role: who.role.as_str().to_string(),
                named: who.named,
                csrf,
                expires_at: chrono::Utc::now() + ttl,
            };
            store.put_session(&sha256_hex(&id), &session).await?;
            return Ok(id);
        }
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        map.insert(
            id.clone(),
            Session {
                name: who.name.clone(),
                role: who.role,
                named: who.named,
                csrf,
                expires: now + self.ttl,
            },
        );
        Ok(id)
    }

    /// The signed-in principal of session `id`, if it is live. A shared
    /// store that cannot be read signs nobody in (logged).
    pub async fn get(&self, id: &str) -> Option<Principal> {
        if let Some(store) = &self.shared {
            let found = match store.session(&sha256_hex(id)).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the console session");
                    None
                }
            };
            return found
                .filter(|s| s.expires_at > chrono::Utc::now())
                .and_then(|s| {
                    Some(Principal {
                        role: s.role.parse().ok()?,
                        name: s.name,
                        csrf: Some(s.csrf),
                        named: s.named,
                    })
                });
        }
        let map = self.lock();
        map.get(id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| Principal {
                name: s.name.clone(),
                role: s.role,
                csrf: Some(s.csrf.clone()),
                named: s.named,
            })
    }

    /// End session `id` (on every instance, with a shared store).
    pub async fn remove(&self, id: &str) {
        if let Some(store) = &self.shared {
            if let Err(e) = store.delete_session(&sha256_hex(id)).await {
                tracing::error!(error = %e, "cannot delete the console session");
            }
            return;
        }
        self.lock().remove(id);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Hex SHA-256 of a token, as written in `token_sha256`.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The user a token belongs to (a configured user is a named person; the
/// `admin_token` is an admin named `admin` who is nobody in particular).
/// A user's `token_hmac` is compared with the HMAC of the token under the
/// `token_key` secret; an older `token_sha256` with its SHA-256. Every
/// comparison is constant-time and every candidate is compared, so timing
/// tells nothing about which one matched. The CSRF token is None (a
/// session adds its own).
pub async fn check_token(
    state: &AppState,
    users: &[ConsoleUser],
    token: &str,
) -> Option<Principal> {
    if token.is_empty() {
        return None;
    }
    let digest = Sha256::digest(token.as_bytes());
    let keyed: Vec<Vec<u8>> = secret_list(state.secrets.as_ref(), secret_names::TOKEN_KEY)
        .await
        .iter()
        .map(|k| super::tokens::hmac_bytes(k, token))
        .collect();
    let mut found = None;
    for u in users {
        let hit = match (&u.token_hmac, &u.token_sha256) {
            (Some(h), _) => {
                let want = hex::decode(h).unwrap_or_default();
                // Every key while one is being rotated.
                keyed.iter().fold(false, |hit, mac| {
                    hit | (!want.is_empty() && bool::from(want.as_slice().ct_eq(mac)))
                })
            }
            (None, Some(h)) => {
                let want = hex::decode(h).unwrap_or_default();
                bool::from(want.as_slice().ct_eq(digest.as_slice()))
            }
            (None, None) => false,
        };
        if hit && found.is_none() {
            found = Some(Principal {
                name: u.name.clone(),
                role: u.role,
                csrf: None,
                named: true,
            });
        }
    }
    let mut admin = false;
    for t in secret_list(state.secrets.as_ref(), secret_names::ADMIN).await {
        // A weak admin token is never accepted (`serve` refuses to start
        // with one; a deployed stack logs why it is ignored).
        if let Err(e) = super::tokens::check_strength(&t) {
            tracing::error!("the admin_token secret is ignored: {e}");
            continue;
        }
        admin |= bool::from(t.as_bytes().ct_eq(token.as_bytes()));
    }
    found.or(admin.then(|| Principal {
        name: "admin".to_string(),
        role: Role::Admin,
        csrf: None,
        named: false,
    }))
}

/// Why a request carries no usable credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential, or one that is not valid (401).
    Invalid,
    /// Too many failed attempts from this client or overall: try again
    /// after this long (429 with `Retry-After`).
    Throttled(Duration),
}

/// Check a token someone presented (a bearer token or the sign-in form),
/// through the throttle: a client (or all clients) that failed too often
/// is refused before the token is looked at; a failure is counted and
/// logged (the client and the scope that engaged, never the token).
pub async fn check_token_throttled(
    state: &AppState,
    client: Option<std::net::IpAddr>,
    via: &str,
    token: &str,
) -> Result<Principal, AuthFailure> {
    let throttle = state.sessions.throttle();
    if let Err((scope, wait)) = throttle.check(client) {
        tracing::warn!(
            via,
            client = ?client,
            scope = %scope.describe(),
            retry_after_secs = wait.as_secs().max(1),
            "credential refused unchecked: too many failed attempts"
        );
        return Err(AuthFailure::Throttled(wait));
    }
    if let Some(who) = check_token(state, &state.users, token).await {
        return Ok(who);
    }
    match throttle.fail(client) {
        Some((scope, wait)) => tracing::warn!(
            via,
            client = ?client,
            scope = %scope.describe(),
            backoff_secs = wait.as_secs().max(1),
            "invalid credential; further attempts wait"
        ),
        None => tracing::info!(via, client = ?client, "invalid credential"),
    }
    Err(AuthFailure::Invalid)
}

/// The seconds of a `Retry-After` header for a wait (rounded up, at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The caller: an [`Identity`] the hosting layer vouched for, else a bearer
/// token (checked through the throttle, see [`check_token_throttled`]),
/// else a session cookie.
pub async fn authenticate(
    state: &AppState,
    identity: Option<&Identity>,
    client: Option<std::net::IpAddr>,
    headers: &HeaderMap,
) -> Result<Principal, AuthFailure> {
    if let Some(id) = identity {
        return Ok(Principal {
            name: id.who.clone(),
            role: id.role,
            csrf: None,
            named: !id.who.trim().is_empty(),
        });
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        return check_token_throttled(state, client, "bearer", token.trim()).await;
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(id) => state.sessions.get(id).await.ok_or(AuthFailure::Invalid),
        None => Err(AuthFailure::Invalid),
    }
}

/// A refusal in the caller's language: JSON for the API, a page for the
/// console.
fn refuse(path: &str, status: StatusCode, message: String) -> Response {
    if path.starts_with("/console") {
        let body = format!(
            "<p>{}</p><p><a href=\"/console/login\">Sign in</a> · <a href=\"/console/exceptions\">Exceptions</a></p>",
            html::esc(&message)
        );
        (
            status,
            html::page(status.canonical_reason().unwrap_or("Error"), None, &body),
        )
            .into_response()
    } else {
        ApiError::new(status, message).into_response()
    }
}

/// 429 with `Retry-After` after too many failed credentials.
pub fn too_many(path: &str, wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    let mut r = refuse(
        path,
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many failed sign-in attempts; try again in {secs} s (each further failure doubles the wait)"
        ),
    );
    if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The value of form field `name` in an urlencoded body (CSRF tokens are
/// hex, so no decoding is needed to compare them).
fn form_field<'a>(body: &'a [u8], name: &str) -> Option<&'a [u8]> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        (kv.next() == Some(name.as_bytes())).then(|| kv.next().unwrap_or(b""))
    })
}

/// The guard on every `/api` and `/console` route: authenticate, look the
/// route up in [`ROUTES`], refuse a role without the right (403), and on a
/// form POST from a signed-in session require the session's CSRF token.
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let guarded = path == "/console"
        || path.starts_with("/console/")
        || path == "/api"
        || path.starts_with("/api/");
    if !guarded || PUBLIC.iter().any(|(m, p)| *m == method && *p == path) {
        return next.run(req).await;
    }
    let Some(roles) = allowed_roles(&method, &path) else {
        // A known path with another method is 405 naming the methods it
        // takes; an unknown path is 404.
        let allow: Vec<&str> = ROUTES
            .iter()
            .map(|(m, p, _)| (*m, *p))
            .chain(PUBLIC.iter().copied())
            .filter(|(_, p)| matches(p, &path))
            .map(|(m, _)| m)
            .collect();
        if allow.is_empty() {
            return refuse(
                &path,
                StatusCode::NOT_FOUND,
                format!("no route {method} {path}"),
            );
        }
        let allow = allow.join(", ");
        let mut r = refuse(
            &path,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}; it takes {allow}"),
        );
        if let Ok(v) = header::HeaderValue::from_str(&allow) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    };
    let client = req
        .extensions()
        .get::<super::throttle::ClientAddr>()
        .map(|c| c.0);
    let who = match authenticate(
        &s,
        req.extensions().get::<Identity>(),
        client,
        req.headers(),
    )
    .await
    {
        Ok(who) => who,
        // A browser opening a console page unsigned, with a sign-in
        // provider configured, is sent to sign in there.
        Err(AuthFailure::Invalid)
            if s.oidc().is_some() && method == "GET" && path.starts_with("/console") =>
        {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "/auth/login")]).into_response();
        }
        Err(AuthFailure::Invalid) => {
            return refuse(
                &path,
                StatusCode::UNAUTHORIZED,
                "missing or invalid credentials".into(),
            )
        }
        Err(AuthFailure::Throttled(wait)) => return too_many(&path, wait),
    };
    if !roles.contains(&who.role) {
        return refuse(
            &path,
            StatusCode::FORBIDDEN,
            format!(
                "{} (role {}) may not {method} {path}",
                who.name,
                who.role.as_str()
            ),
        );
    }
    let mut req = req;
    if req.method() == Method::POST {
        if let Some(csrf) = who.csrf.clone() {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, super::MAX_BODY).await else {
                return refuse(
                    &path,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request too large".into(),
                );
            };
            let given = form_field(&bytes, "csrf").unwrap_or(b"");
            if !bool::from(given.ct_eq(csrf.as_bytes())) {
                return refuse(
                    &path,
                    StatusCode::FORBIDDEN,
                    "the form's CSRF token is missing or does not match your session; reload the page and try again".into(),
                );
            }
            req = Request::from_parts(parts, Body::from(bytes));
        }
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("/api/entries/{key}", "/api/entries/toggl:1:2"));
        assert!(!matches("/api/entries/{key}", "/api/entries/"));
        assert!(!matches("/api/entries/{key}", "/api/entries/a/b"));
        assert!(!matches("/api/entries", "/api/entries/a"));
        assert!(matches(
            "/api/entries/{key}/redrive",
            "/api/entries/k/redrive"
        ));
    }

    #[test]
    fn table_answers_by_role() {
        assert!(may(Role::Finance, "POST", "/console/exceptions/redrive"));
        assert!(!may(Role::Viewer, "POST", "/console/exceptions/redrive"));
        assert!(!may(Role::Auditor, "POST", "/api/entries/k/redrive"));
        assert!(may(Role::Viewer, "GET", "/console/exceptions"));
        assert!(allowed_roles("DELETE", "/api/report").is_none());
    }

    #[test]
    fn form_fields_and_cookies_are_found() {
        assert_eq!(form_field(b"a=1&csrf=abc&b=2", "csrf"), Some(&b"abc"[..]));
        assert_eq!(form_field(b"csrfx=1", "csrf"), None);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "x=1; tp_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
    }

    #[test]
    fn identity_from_claims_reads_user_and_role() {
        let c =
            serde_json::json!({"sub": "u-1", "email": "ann@example.com", "custom:role": "Finance"});
        assert_eq!(
            identity_from_claims(&c, "custom:role"),
            Ok(Identity {
                who: "ann@example.com".into(),
                role: Role::Finance
            })
        );
        // HTTP API JWT authorizers render list claims as `[a b]`.
        let c = serde_json::json!({"sub": "u-2", "cognito:groups": "[staff viewer admin]"});
        let id = identity_from_claims(&c, "cognito:groups").expect("identity");
        assert_eq!((id.who.as_str(), id.role), ("u-2", Role::Admin));
        let c = serde_json::json!({"sub": "u-3", "groups": ["staff", "auditor"]});
        assert_eq!(
            identity_from_claims(&c, "groups").map(|i| i.role),
            Ok(Role::Auditor)
        );
    }

    #[test]
    fn identity_from_claims_refuses_unknown_or_missing_roles() {
        let c = serde_json::json!({"sub": "u-1", "role": "superuser"});
        let e = identity_from_claims(&c, "role").expect_err("unknown role");
        assert!(matches!(e, IdentityError::UnknownRole { .. }));
        assert_eq!(identity_status(&e), StatusCode::FORBIDDEN);
        let e = identity_from_claims(&c, "custom:role").expect_err("no role claim");
        assert_eq!(e, IdentityError::NoRole("custom:role".into()));
        assert_eq!(identity_status(&e), StatusCode::FORBIDDEN);
        let e = identity_from_claims(&serde_json::json!({"role": "admin"}), "role")
            .expect_err("no subject");
        assert_eq!(e, IdentityError::NoSubject);
        assert_eq!(identity_status(&e), StatusCode::UNAUTHORIZED);
        let c = serde_json::json!({"sub": "  ", "email": "", "role": "admin"});
        assert_eq!(
            identity_from_claims(&c, "role"),
            Err(IdentityError::NoSubject)
        );
    }

    #[test]
    fn login_tokens_are_signed_double_submit_tokens() {
        let s = Sessions::new(Duration::from_secs(60));
        let t = s.login_token();
        assert!(s.check_login_token(Some(&t), Some(&t)));
        assert!(!s.check_login_token(None, Some(&t)));
        assert!(!s.check_login_token(Some(&t), None));
        let other = s.login_token();
        assert!(!s.check_login_token(Some(&t), Some(&other)));
        // Forged (wrong key) or altered tokens are refused.
        let forged = Sessions::new(Duration::from_secs(60)).login_token();
        assert!(!s.check_login_token(Some(&forged), Some(&forged)));
        let (head, _) = t.rsplit_once('.').unwrap();
        let altered = format!("{head}.{}", "0".repeat(64));
        assert!(!s.check_login_token(Some(&altered), Some(&altered)));
        // Expired.
        let nonce = "n";
        let old = format!("{nonce}.1.{}", s.login_mac(nonce, 1));
        assert!(!s.check_login_token(Some(&old), Some(&old)));
    }

    #[test]
    fn cookies_are_secure_over_https_only() {
        let mut h = HeaderMap::new();
        let plain = CookiePolicy::default();
        assert!(!plain.secure(&h, None));
        assert!(plain.secure(&h, Some("https")));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(!plain.secure(&h, None), "not trusted unless configured");
        let proxied = CookiePolicy {
            trust_forwarded_proto: true,
            ..CookiePolicy::default()
        };
        assert!(proxied.secure(&h, None));
        let public = CookiePolicy {
            always_secure: true,
            ..CookiePolicy::default()
        };
        assert!(public.secure(&HeaderMap::new(), None));
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
