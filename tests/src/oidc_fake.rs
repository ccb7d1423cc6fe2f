//! A fake OpenID provider shaped like an Amazon Cognito user pool with a
//! hosted-UI domain: a discovery document, a JWKS with real RSA keys
//! generated at start, an authorization endpoint with a tiny sign-in form,
//! a token endpoint that checks PKCE and issues RS256-signed ID tokens
//! carrying the user's `custom:timepost_role`, and the logout endpoint.
//!
//! It behaves as documented in:
//! - OpenID Connect Core 1.0 (<https://openid.net/specs/openid-connect-core-1_0.html>),
//!   cited as "Core §…";
//! - OpenID Connect Discovery 1.0 (<https://openid.net/specs/openid-connect-discovery-1_0.html>);
//! - RFC 6749 (OAuth 2.0) and RFC 7636 (PKCE);
//! - Amazon Cognito's user pool endpoint reference:
//!   authorize (<https://docs.aws.amazon.com/cognito/latest/developerguide/authorization-endpoint.html>),
//!   token (<https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html>),
//!   logout (<https://docs.aws.amazon.com/cognito/latest/developerguide/logout-endpoint.html>),
//!   ID token (<https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-id-token.html>),
//!   endpoints (<https://docs.aws.amazon.com/cognito/latest/developerguide/federation-endpoints.html>).
//!
//! Tests change the next ID token it issues ([`Tamper`]) to prove the
//! console refuses each kind of bad token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The user pool id in the issuer's path, as Cognito's issuer
/// `https://cognito-idp.<region>.amazonaws.com/<pool id>` has.
pub const POOL: &str = "us-east-1_FAKEPOOL";

/// One RSA signing key: its PKCS#1 DER (to sign) and its JWK (to publish).
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    der: Vec<u8>,
    pub jwk: Value,
}

fn make_key(kid: &str) -> TestKey {
    // 2048 bits: what Cognito uses, and the least RS256 verifiers accept.
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
        .unwrap_or_else(|e| panic!("cannot generate an RSA key: {e}"));
    let der = key
        .to_pkcs1_der()
        .unwrap_or_else(|e| panic!("cannot encode the RSA key: {e}"))
        .as_bytes()
        .to_vec();
    let jwk = json!({
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    });
    TestKey {
        kid: kid.to_string(),
        der,
        jwk,
    }
}

/// Three keys, generated once per test process (RSA generation is slow in
/// a debug build): the published one, one published after a rotation, and
/// one never published.
fn keys() -> &'static [TestKey; 3] {
    static KEYS: OnceLock<[TestKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let a = std::thread::spawn(|| make_key("key-1"));
        let b = std::thread::spawn(|| make_key("key-2"));
        let c = make_key("never-published");
        [
            a.join().unwrap_or_else(|_| panic!("key generation")),
            b.join().unwrap_or_else(|_| panic!("key generation")),
            c,
        ]
    })
}

/// A user of the pool.
#[derive(Debug, Clone)]
pub struct FakeUser {
    pub username: String,
    pub email: String,
    /// `custom:timepost_role`; None: the attribute is not set, so the ID
    /// token has no such claim.
    pub role: Option<String>,
}

/// What to do to the next ID token issued (once).
#[derive(Debug, Clone, PartialEq)]
pub enum Tamper {
    /// Another `nonce`.
    Nonce(String),
    /// Another `aud` (a token for another app client).
    Audience(String),
    /// `exp` an hour ago.
    Expired,
    /// Signed with a key that is not the one its `kid` names.
    BadSignature,
    /// Signed with a key the JWKS does not publish.
    UnknownKid,
    /// Another `iss`.
    Issuer(String),
    /// Cognito's `token_use` of an access token.
    AccessTokenUse,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
    username: String,
    used: bool,
    issued: std::time::Instant,
}

struct Inner {
    issuer: String,
    base: String,
    client_id: String,
    callback_urls: Vec<String>,
    logout_urls: Vec<String>,
    users: Vec<FakeUser>,
    codes: HashMap<String, Grant>,
    /// Index into [`keys`] of the key signing now; keys `0..=current` are
    /// published.
    current: usize,
    tamper: Option<Tamper>,
    jwks_fetches: u32,
    token_requests: u32,
    logouts: u32,
}

/// A running fake provider.
#[derive(Clone)]
pub struct FakeOidc {
    /// The issuer URL (`http://localhost:<port>/<pool>`).
    pub issuer: String,
    /// The hosted-UI domain's base (`http://localhost:<port>`).
    pub base: String,
    pub addr: SocketAddr,
    pub client_id: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeOidc {
    /// Start a provider on 127.0.0.1, named `localhost` in its URLs (so a
    /// console on `127.0.0.1` is another site, as a real provider is),
    /// with one public app client `client_id` whose callback and sign-out
    /// URLs are given, and these users.
    pub async fn start(
        client_id: &str,
        callback_urls: &[String],
        logout_urls: &[String],
        users: Vec<FakeUser>,
    ) -> FakeOidc {
        let _ = keys();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"));
        let base = format!("http://localhost:{}", addr.port());
        let issuer = format!("{base}/{POOL}");
        let inner = Arc::new(Mutex::new(Inner {
            issuer: issuer.clone(),
            base: base.clone(),
            client_id: client_id.to_string(),
            callback_urls: callback_urls.to_vec(),
            logout_urls: logout_urls.to_vec(),
            users,
            codes: HashMap::new(),
            current: 0,
            tamper: None,
            jwks_fetches: 0,
            token_requests: 0,
            logouts: 0,
        }));
        let app = Router::new()
            .route(
                &format!("/{POOL}/.well-known/openid-configuration"),
                get(discovery),
            )
            .route(&format!("/{POOL}/.well-known/jwks.json"), get(jwks))
            .route("/oauth2/authorize", get(authorize))
            .route("/login", post(login))
            .route("/oauth2/token", post(token))
            .route("/logout", get(logout))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOidc {
            issuer,
            base,
            addr,
            client_id: client_id.to_string(),
            inner,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register another callback URL and sign-out URL with the app client
    /// (for a console whose port is known only once it started).
    pub fn register(&self, callback_url: &str, logout_url: &str) {
        let mut g = self.lock();
        g.callback_urls.push(callback_url.to_string());
        g.logout_urls.push(logout_url.to_string());
    }

    /// Change the next ID token issued.
    pub fn tamper_next(&self, t: Tamper) {
        self.lock().tamper = Some(t);
    }

    /// Rotate the signing key: the next key is published and signs from
    /// now on (Cognito publishes its keys at the JWKS URL; a verifier finds
    /// the one a token's `kid` names there).
    pub fn rotate(&self) {
        let mut g = self.lock();
        g.current = (g.current + 1).min(1);
    }

    pub fn jwks_fetches(&self) -> u32 {
        self.lock().jwks_fetches
    }

    pub fn token_requests(&self) -> u32 {
        self.lock().token_requests
    }

    pub fn logouts(&self) -> u32 {
        self.lock().logouts
    }

    /// What the sign-in form posts for `username`, given the authorization
    /// request URL the console sent the browser to: the form's fields as a
    /// client without a browser sends them.
    pub fn form_for(authorize_url: &str, username: &str) -> Vec<(String, String)> {
        let query = authorize_url
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        vec![
            ("request".into(), query),
            ("username".into(), username.into()),
        ]
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Discovery 1.0 §3 / §4.2: the metadata at
/// `<issuer>/.well-known/openid-configuration`, `issuer` exactly the
/// issuer. Cognito serves it at the `cognito-idp` address and names its
/// domain's `/oauth2/authorize` and `/oauth2/token` (federation endpoints
/// page); it names no `end_session_endpoint` (its `/logout` takes
/// Cognito's own parameters).
async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let g = lock(&s);
    Json(json!({
        "issuer": g.issuer,
        "authorization_endpoint": format!("{}/oauth2/authorize", g.base),
        "token_endpoint": format!("{}/oauth2/token", g.base),
        "userinfo_endpoint": format!("{}/oauth2/userInfo", g.base),
        "jwks_uri": format!("{}/.well-known/jwks.json", g.issuer),
        "response_types_supported": ["code", "token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

/// The JWKS (RFC 7517): the published public keys, each with its `kid`.
async fn jwks(State(s): State<Shared>) -> Json<Value> {
    let mut g = lock(&s);
    g.jwks_fetches += 1;
    let published: Vec<Value> = keys()[..=g.current].iter().map(|k| k.jwk.clone()).collect();
    Json(json!({ "keys": published }))
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><title>Error</title><h1>Sign-in error</h1><p id=\"error\">{}</p>",
            timepost_web::html::esc(message)
        )),
    )
        .into_response()
}

/// The authorization request's problems, checked as Cognito's authorize
/// endpoint does: a known `client_id`, `response_type=code`, a
/// `redirect_uri` registered for the client (an unregistered one is never
/// redirected to: Core §3.1.2.6 / RFC 6749 §4.1.2.1, so the error is shown
/// here), `openid` in `scope` for an ID token (Core §3.1.2.1), and with
/// PKCE the `S256` method (Cognito accepts only S256).
fn check_authorize(g: &Inner, q: &HashMap<String, String>) -> Result<(), String> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != g.client_id {
        return Err(format!("unknown client_id `{}`", get("client_id")));
    }
    if !g.callback_urls.iter().any(|u| u == get("redirect_uri")) {
        return Err(format!(
            "redirect_mismatch: `{}` is not a callback URL of this app client",
            get("redirect_uri")
        ));
    }
    if get("response_type") != "code" {
        return Err("unsupported_response_type".into());
    }
    if !get("scope").split(' ').any(|s| s == "openid") {
        return Err("invalid_scope: openid is required for an ID token".into());
    }
    if q.contains_key("code_challenge") && get("code_challenge_method") != "S256" {
        return Err("invalid_request: code_challenge_method must be S256".into());
    }
    Ok(())
}

/// The hosted UI's sign-in page: a tiny form (username), carrying the
/// authorization request along.
async fn authorize(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let g = lock(&s);
    if let Err(e) = check_authorize(&g, &q) {
        return error_page(StatusCode::BAD_REQUEST, &e);
    }
    let users: Vec<String> = g
        .users
        .iter()
        .map(|u| format!("<li>{}</li>", timepost_web::html::esc(&u.username)))
        .collect();
    let esc = timepost_web::html::esc;
    Html(format!(
        "<!doctype html><html><head><title>Sign in · fake user pool</title></head><body>\
         <h1>Sign in</h1><form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"request\" value=\"{}\">\
         <label>Username <input type=\"text\" name=\"username\" id=\"username\"></label>\
         <button type=\"submit\" id=\"signin\">Sign in</button></form>\
         <p>Users:</p><ul>{}</ul></body></html>",
        esc(&raw.unwrap_or_default()),
        users.join("")
    ))
    .into_response()
}

fn random() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The form's answer: an unknown user sees the form's error; a known one
/// is sent back to the client's `redirect_uri` with `code` and the
/// request's `state` unchanged (RFC 6749 §4.1.2, Core §3.1.2.5).
async fn login(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let raw = form.get("request").cloned().unwrap_or_default();
    let q: HashMap<String, String> = reqwest::Url::parse(&format!("http://x/?{raw}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let mut g = lock(&s);
    if let Err(e) = check_authorize(&g, &q) {
        return error_page(StatusCode::BAD_REQUEST, &e);
    }
    let username = form.get("username").map(|u| u.trim()).unwrap_or("");
    let Some(user) = g
        .users
        .iter()
        .find(|u| u.username == username || u.email == username)
        .cloned()
    else {
        return error_page(StatusCode::OK, "Incorrect username or password.");
    };
    let code = random();
    g.codes.insert(
        code.clone(),
        Grant {
            client_id: q["client_id"].clone(),
            redirect_uri: q["redirect_uri"].clone(),
            challenge: q.get("code_challenge").cloned(),
            nonce: q.get("nonce").cloned(),
            username: user.username,
            used: false,
            issued: std::time::Instant::now(),
        },
    );
    let mut back = match reqwest::Url::parse(&q["redirect_uri"]) {
        Ok(u) => u,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.get("state") {
        back.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(back.as_str()).into_response()
}

/// RFC 6749 §5.2's error answer.
fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The token endpoint (RFC 6749 §4.1.3, Core §3.1.3): an authorization
/// code is good once and for 5 minutes (Cognito's token endpoint page:
/// "The authorization code is valid for five minutes" and can be used
/// once; RFC 6749 §4.1.2), only for the client and `redirect_uri` it was
/// issued to, and with PKCE only with the `code_verifier` whose S256 hash
/// is the challenge (RFC 7636 §4.6). Cognito answers `invalid_grant` for
/// all of these. The ID token is RS256-signed with the current key; its
/// claims are Cognito's (`token_use: id`, `cognito:username`, `email`,
/// custom attributes as `custom:<name>`), with the request's `nonce`.
async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut g = lock(&s);
    g.token_requests += 1;
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "authorization_code" {
        return token_error("unsupported_grant_type", "only authorization_code");
    }
    // A public client names itself in the body; a confidential one with
    // HTTP Basic (`client_secret_basic`).
    let basic_client = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(c, _)| c.to_string()));
    let client_id = basic_client.unwrap_or_else(|| get("client_id").to_string());
    if client_id != g.client_id {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let code = get("code").to_string();
    let Some(grant) = g.codes.get_mut(&code) else {
        return token_error("invalid_grant", "unknown authorization code");
    };
    if grant.used {
        return token_error("invalid_grant", "the authorization code was already used");
    }
    grant.used = true;
    if grant.issued.elapsed() > std::time::Duration::from_secs(300) {
        return token_error("invalid_grant", "the authorization code expired");
    }
    if grant.client_id != client_id {
        return token_error("invalid_grant", "the code was issued to another client");
    }
    if grant.redirect_uri != get("redirect_uri") {
        return token_error("invalid_grant", "redirect_uri differs from the request's");
    }
    if let Some(challenge) = &grant.challenge {
        let got = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
        if &got != challenge {
            return token_error("invalid_grant", "code_verifier does not match");
        }
    }
    let nonce = grant.nonce.clone();
    let username = grant.username.clone();
    let Some(user) = g.users.iter().find(|u| u.username == username).cloned() else {
        return token_error("invalid_grant", "the user no longer exists");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = json!({
        "sub": format!("sub-{}", user.username),
        "aud": g.client_id,
        "iss": g.issuer,
        "token_use": "id",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "cognito:username": user.username,
        "email": user.email,
        "email_verified": true,
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(r) = &user.role {
        claims["custom:timepost_role"] = json!(r);
    }
    let mut signer = &keys()[g.current];
    let mut kid = signer.kid.clone();
    match g.tamper.take() {
        Some(Tamper::Nonce(n)) => claims["nonce"] = json!(n),
        Some(Tamper::Audience(a)) => claims["aud"] = json!(a),
        Some(Tamper::Expired) => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
        }
        Some(Tamper::BadSignature) => signer = &keys()[2],
        Some(Tamper::UnknownKid) => {
            signer = &keys()[2];
            kid = signer.kid.clone();
        }
        Some(Tamper::Issuer(i)) => claims["iss"] = json!(i),
        Some(Tamper::AccessTokenUse) => claims["token_use"] = json!("access"),
        None => {}
    }
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid);
    let id_token = match jsonwebtoken::encode(&h, &claims, &EncodingKey::from_rsa_der(&signer.der))
    {
        Ok(t) => t,
        Err(e) => return token_error("server_error", &e.to_string()),
    };
    Json(json!({
        "id_token": id_token,
        "access_token": random(),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
    .into_response()
}

/// Cognito's logout endpoint: `client_id` and a `logout_uri` that is one of
/// the client's sign-out URLs; ends the hosted UI's session and redirects
/// there (logout endpoint page). Anything else is an error page.
async fn logout(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut g = lock(&s);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != g.client_id {
        return error_page(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    let to = get("logout_uri").to_string();
    if !g.logout_urls.contains(&to) {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("`{to}` is not a sign-out URL of this app client"),
        );
    }
    g.logouts += 1;
    Redirect::to(&to).into_response()
}
