//! Browser sign-in through an OpenID provider (`[console.oidc]`, or the
//! stack's Cognito user pool): `/auth/login` sends the browser to the
//! provider with PKCE, state and nonce kept in a short-lived signed cookie;
//! `/auth/callback` checks the state, exchanges the code, verifies the ID
//! token and maps its role claim (see [`crate::oidc`]), then starts the
//! console's own session and audits the sign-in; `/auth/logout` ends the
//! session and the provider's. These routes are outside the `/console`
//! guard: they are how a browser gets a session.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{OriginalUri, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::{self, Principal, SESSION_COOKIE};
use super::html::{esc, page};
use super::AppState;
use crate::oidc::{Flow, OidcConfig, OidcError, Provider};
use crate::ports::Secrets;

/// The cookie carrying a sign-in in progress (state, nonce, PKCE verifier).
pub const FLOW_COOKIE: &str = "tp_oidc";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", get(logout))
}

/// The provider `[console.oidc]` configures, its client id (and secret)
/// read from the secrets store where the settings name secrets. A
/// redirect URL left unset defaults to `<public_url>/auth/callback`.
pub async fn provider(
    config: &OidcConfig,
    public_url: Option<&str>,
    secrets: &dyn Secrets,
    flow_key: Vec<u8>,
) -> Result<Arc<Provider>, OidcError> {
    let mut config = config.clone();
    if config.redirect_url.is_none() {
        config.redirect_url =
            public_url.map(|u| format!("{}/auth/callback", u.trim().trim_end_matches('/')));
    }
    Ok(Arc::new(
        Provider::resolve(config, secrets, flow_key).await?,
    ))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `scheme://host` the browser reached this server at: the request URI's
/// when absolute (Lambda's adapter builds it from API Gateway's domain),
/// else the `Host` header with https when the request came over HTTPS.
fn origin(s: &AppState, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) {
        return Some(format!("{scheme}://{auth}"));
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if s.sessions.secure_attr(headers, None).is_empty() {
        "http"
    } else {
        "https"
    };
    Some(format!("{scheme}://{host}"))
}

fn flow_cookie(s: &AppState, headers: &HeaderMap, uri: &Uri, value: &str, max_age: u64) -> String {
    // Lax, not Strict: the provider sends the browser back with a
    // top-level GET from its own site, which must carry this cookie.
    format!(
        "{FLOW_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age={max_age}{}",
        s.sessions.secure_attr(headers, uri.scheme_str())
    )
}

/// A refused sign-in: the reason in words, nothing signed in.
fn refused(e: &OidcError) -> Response {
    let body = format!(
        "<p class=\"error\">{}</p><p>Nobody was signed in. \
         <a href=\"/auth/login\">Try again</a> · <a href=\"/console/login\">Sign in with an access token</a></p>",
        esc(&e.to_string())
    );
    (oidc_status(e), page("Sign-in refused", None, &body)).into_response()
}

/// The HTTP status the callback answers with: 401 for a token naming
/// nobody, 403 for a user without a console role, 502 when the provider
/// failed, 400 otherwise.
pub fn oidc_status(e: &OidcError) -> StatusCode {
    match e {
        OidcError::NotConfigured => StatusCode::NOT_FOUND,
        OidcError::Provider(_) => StatusCode::BAD_GATEWAY,
        OidcError::Identity(e) => crate::auth::identity_status(e),
        OidcError::Refused { .. } => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let Some(p) = s.oidc() else {
        return refused(&OidcError::NotConfigured);
    };
    let redirect =
        match p.config().redirect_url.clone() {
            Some(u) => u,
            None => match origin(&s, &headers, &uri) {
                Some(o) => format!("{o}/auth/callback"),
                None => return refused(&OidcError::Provider(
                    "this request names no host to come back to; set [console.oidc] redirect_url"
                        .into(),
                )),
            },
        };
    match p.begin(&redirect, unix_now()).await {
        Ok((flow, url)) => {
            let cookie = flow_cookie(
                &s,
                &headers,
                &uri,
                &flow.seal(p.flow_key()),
                crate::oidc::FLOW_SECS,
            );
            (
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, url)],
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "browser sign-in cannot start");
            refused(&e)
        }
    }
}

async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(p) = s.oidc() else {
        return refused(&OidcError::NotConfigured);
    };
    let now = unix_now();
    // The flow is single-use: its cookie is cleared whatever the outcome.
    let clear = flow_cookie(&s, &headers, &uri, "", 0);
    let result =
        match auth::cookie(&headers, FLOW_COOKIE).and_then(|c| Flow::open(c, p.flow_key(), now)) {
            None => Err(OidcError::NoFlow),
            Some(flow) => p.finish(&flow, &params, now).await,
        };
    let who = match result {
        Ok((who, _claims)) => who,
        Err(e) => {
            tracing::warn!(error = %e, "browser sign-in refused");
            let mut r = refused(&e);
            if let Ok(v) = header::HeaderValue::from_str(&clear) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            return r;
        }
    };
    let principal = Principal {
        name: who.who.clone(),
        role: who.role,
        csrf: None,
        named: true,
    };
    let record = super::console::audit_record(
        &principal,
        "sign-in",
        None,
        format!(
            "signed in with {} ({})",
            p.config().provider_name,
            p.config().issuer
        ),
    );
    if let Err(e) = s.audit.record(record).await {
        tracing::error!(error = %e, "sign-in not audited; refused");
        let body = "<p class=\"error\">The sign-in could not be recorded in the audit log \
                    (storage is unavailable), so nobody was signed in. Try again shortly.</p>";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            page("Sign-in refused", None, body),
        )
            .into_response();
    }
    tracing::info!(user = %principal.name, role = principal.role.as_str(), "browser sign-in");
    let id = match s.sessions.create(&principal).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "console session not stored; sign-in refused");
            let body = "<p class=\"error\">The sign-in could not be stored (storage is \
                        unavailable), so nobody was signed in. Try again shortly.</p>";
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                page("Sign-in refused", None, body),
            )
                .into_response();
        }
    };
    let session = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        s.sessions.ttl().as_secs(),
        s.sessions.secure_attr(&headers, uri.scheme_str())
    );
    // A page that moves on by itself rather than a redirect: the browser
    // arrived here from the provider's site, and a redirect in that same
    // navigation would not send the new SameSite=Strict session cookie.
    let body = format!(
        "<p class=\"notice\">Signed in as {} ({}).</p><p><a href=\"/console\">Continue to the console</a></p>",
        esc(&principal.name),
        principal.role.as_str()
    );
    let html = page("Signed in", None, &body).0.replacen(
        "<meta charset=\"utf-8\">",
        "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url=/console\">",
        1,
    );
    let mut r = (StatusCode::OK, axum::response::Html(html)).into_response();
    for c in [session, clear] {
        if let Ok(v) = header::HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// Where the browser goes after signing out: the provider's logout (which
/// comes back to the console's sign-in page) or that page itself.
pub(super) async fn after_logout(s: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    let fallback = "/console/login".to_string();
    let Some(p) = s.oidc() else {
        return fallback;
    };
    let Some(origin) = origin(s, headers, uri) else {
        return fallback;
    };
    p.logout_url(&format!("{origin}/console/login"))
        .await
        .unwrap_or(fallback)
}

async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
        s.sessions.remove(id).await;
    }
    let to = after_logout(&s, &headers, &uri).await;
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!(
                    "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
                    s.sessions.secure_attr(&headers, uri.scheme_str())
                ),
            ),
            (header::LOCATION, to),
        ],
    )
        .into_response()
}
