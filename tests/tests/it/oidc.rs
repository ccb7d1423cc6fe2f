//! Browser sign-in through an OpenID provider, without a browser: the
//! router (as `timepost serve` and the admin function serve it) against the
//! fake Cognito-like provider of `timepost_tests::oidc_fake`, driven with
//! plain HTTP requests that carry the cookies a browser would. A finance
//! user signs in and gets a console session with the finance role; every
//! kind of bad callback or bad ID token is refused with its reason and no
//! session.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use timepost::oidc::OidcConfig;
use timepost::ports::AuditLog;
use timepost_tests::kit::sandbox_stack;
use timepost_tests::oidc_fake::{FakeOidc, FakeUser, Tamper};
use timepost_web::{router, signin, AppState};

const CLIENT: &str = "console-client";

struct World {
    _dir: tempfile::TempDir,
    base: String,
    fake: FakeOidc,
    http: reqwest::Client,
    stack: timepost::stack::LocalStack,
}

fn users() -> Vec<FakeUser> {
    let u = |name: &str, role: Option<&str>| FakeUser {
        username: name.to_string(),
        email: format!("{name}@example.com"),
        role: role.map(str::to_string),
    };
    vec![
        u("fran", Some("finance")),
        u("ada", Some("admin")),
        u("nobody", None),
        u("odd", Some("superuser")),
    ]
}

async fn world() -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("dir");
    let stack = sandbox_stack(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let fake = FakeOidc::start(
        CLIENT,
        &[format!("{base}/auth/callback")],
        &[format!("{base}/console/login")],
        users(),
    )
    .await;
    let logout = format!("{}/logout", fake.base);
    let config = OidcConfig::with_env(None, |k| match k {
        "TIMEPOST_OIDC_ISSUER" => Some(fake.issuer.clone()),
        "TIMEPOST_OIDC_CLIENT_ID" => Some(CLIENT.to_string()),
        "TIMEPOST_OIDC_PROVIDER_NAME" => Some("Fake pool".to_string()),
        "TIMEPOST_OIDC_LOGOUT_URL" => Some(logout.clone()),
        _ => None,
    })
    .expect("configured");
    assert!(config.problem().is_none(), "{:?}", config.problem());
    let provider = signin::provider(
        &config,
        None,
        stack.secrets.as_ref(),
        timepost::oidc::random_flow_key(),
    )
    .await
    .expect("provider");
    let app = router(AppState::local(&stack).with_oidc(provider));
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    World {
        _dir: dir,
        base,
        fake,
        http,
        stack,
    }
}

/// `name=value` of the `Set-Cookie` for `name`, if any.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_string()
}

impl World {
    /// `/auth/login`: the flow cookie and the provider URL it sends to.
    async fn start(&self) -> (String, String) {
        let r = self
            .http
            .get(format!("{}/auth/login", self.base))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(&r, "tp_oidc").expect("a flow cookie");
        let set = r
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        (cookie, location(&r))
    }

    /// The provider's form, as `username`: the callback URL it sends to.
    async fn provider_sign_in(&self, authorize: &str, username: &str) -> String {
        assert!(authorize.starts_with(&self.fake.base), "{authorize}");
        let page = self.http.get(authorize).send().await.expect("authorize");
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page
            .text()
            .await
            .expect("page")
            .contains("name=\"username\""));
        let r = self
            .http
            .post(format!("{}/login", self.fake.base))
            .form(&FakeOidc::form_for(authorize, username))
            .send()
            .await
            .expect("provider login");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
        let back = location(&r);
        assert!(
            back.starts_with(&format!("{}/auth/callback?", self.base)),
            "{back}"
        );
        back
    }

    async fn callback(&self, url: &str, flow_cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(url);
        if let Some(c) = flow_cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.expect("callback")
    }

    /// A whole sign-in as `username`: the callback's answer.
    async fn sign_in(&self, username: &str) -> reqwest::Response {
        let (cookie, authorize) = self.start().await;
        let back = self.provider_sign_in(&authorize, username).await;
        self.callback(&back, Some(&cookie)).await
    }

    async fn get(&self, path: &str, session: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, session)
            .send()
            .await
            .expect("get")
    }
}

/// A refused callback: its status, its page names `reason`, and no
/// session cookie was set.
async fn assert_refused(r: reqwest::Response, status: StatusCode, reason: &str) {
    assert_eq!(r.status(), status);
    assert!(
        set_cookie(&r, "tp_session").is_none(),
        "a refused sign-in set a session"
    );
    // The single-use flow cookie is cleared.
    assert_eq!(set_cookie(&r, "tp_oidc").as_deref(), Some("tp_oidc="));
    let html = r.text().await.expect("body");
    assert!(html.contains("Sign-in refused"), "{html}");
    assert!(html.contains(reason), "wanted `{reason}` in {html}");
}

#[tokio::test]
async fn a_console_page_opened_unsigned_goes_to_the_provider_with_pkce() {
    let w = world().await;
    let r = w
        .http
        .get(format!("{}/console/exceptions", w.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/auth/login");
    let (_, authorize) = w.start().await;
    let url = reqwest::Url::parse(&authorize).expect("url");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/oauth2/authorize");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["redirect_uri"], format!("{}/auth/callback", w.base));
    assert!(q["state"].len() >= 32 && q["nonce"].len() >= 32);
    // The API is not a browser's: still a 401 in JSON.
    let r = w
        .http
        .get(format!("{}/api/entries", w.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The sign-in page offers the provider.
    let page = w
        .http
        .get(format!("{}/console/login", w.base))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("href=\"/auth/login\">Sign in with Fake pool</a>"),
        "{page}"
    );
}

#[tokio::test]
async fn finance_signs_in_gets_a_finance_session_and_the_sign_in_is_audited() {
    let w = world().await;
    let r = w.sign_in("fran").await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = set_cookie(&r, "tp_session").expect("a session");
    assert_eq!(set_cookie(&r, "tp_oidc").as_deref(), Some("tp_oidc="));
    let html = r.text().await.expect("body");
    assert!(
        html.contains("Signed in as fran@example.com (finance)"),
        "{html}"
    );
    assert!(html.contains("http-equiv=\"refresh\" content=\"0;url=/console\""));

    let page = w.get("/console/exceptions", &session).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert!(html.contains("fran@example.com · finance"), "{html}");
    // Finance may not save mappings (admins only), CSRF token and all.
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF field")
        .to_string();
    let r = w
        .http
        .post(format!("{}/console/mappings", w.base))
        .header(COOKIE, &session)
        .form(&[("csrf", csrf.as_str()), ("kind", "employee")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("fran@example.com (role finance) may not POST /console/mappings"));

    let audit = w.stack.store.recent(10).await.expect("audit");
    let rec = audit
        .iter()
        .find(|a| a.action == "sign-in")
        .expect("sign-in audited");
    assert_eq!(
        (rec.who.as_str(), rec.role.as_str()),
        ("fran@example.com", "finance")
    );
    assert!(rec.detail.contains(&w.fake.issuer), "{}", rec.detail);
}

#[tokio::test]
async fn sign_out_ends_the_session_and_the_providers() {
    let w = world().await;
    let r = w.sign_in("ada").await;
    let session = set_cookie(&r, "tp_session").expect("a session");
    assert_eq!(w.get("/console", &session).await.status(), StatusCode::OK);
    let r = w.get("/auth/logout", &session).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(set_cookie(&r, "tp_session").as_deref(), Some("tp_session="));
    let to = location(&r);
    assert!(to.starts_with(&format!("{}/logout?", w.fake.base)), "{to}");
    let back = w.http.get(&to).send().await.expect("provider logout");
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&back), format!("{}/console/login", w.base));
    assert_eq!(w.fake.logouts(), 1);
    // The old session is gone: the console asks to sign in again.
    let r = w.get("/console", &session).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/auth/login");
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused() {
    let w = world().await;
    let (cookie, authorize) = w.start().await;
    let back = w.provider_sign_in(&authorize, "fran").await;
    let mut url = reqwest::Url::parse(&back).expect("url");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    url.query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "forged-state");
    let r = w.callback(url.as_str(), Some(&cookie)).await;
    assert_refused(r, StatusCode::BAD_REQUEST, "state does not match").await;
    // The code was never exchanged.
    assert_eq!(w.fake.token_requests(), 0);
}

#[tokio::test]
async fn a_callback_without_the_flow_cookie_is_refused() {
    let w = world().await;
    let (_cookie, authorize) = w.start().await;
    let back = w.provider_sign_in(&authorize, "fran").await;
    let r = w.callback(&back, None).await;
    assert_refused(r, StatusCode::BAD_REQUEST, "was not started here").await;
    // A flow cookie this server did not sign is no better.
    let r = w.callback(&back, Some("tp_oidc=eyJ9.AAAA")).await;
    assert_refused(r, StatusCode::BAD_REQUEST, "was not started here").await;
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let w = world().await;
    let (cookie, authorize) = w.start().await;
    let back = w.provider_sign_in(&authorize, "fran").await;
    let first = w.callback(&back, Some(&cookie)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = w.callback(&back, Some(&cookie)).await;
    assert_refused(again, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn the_provider_refusing_is_shown() {
    let w = world().await;
    let (cookie, authorize) = w.start().await;
    let state = reqwest::Url::parse(&authorize)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let url = format!(
        "{}/auth/callback?error=access_denied&error_description=User+cancelled&state={state}",
        w.base
    );
    let r = w.callback(&url, Some(&cookie)).await;
    assert_refused(r, StatusCode::FORBIDDEN, "access_denied (User cancelled)").await;
}

/// Sign in as fran with the next ID token tampered: refused with `reason`.
async fn refused_token(t: Tamper, status: StatusCode, reason: &str) -> World {
    let w = world().await;
    w.fake.tamper_next(t);
    let r = w.sign_in("fran").await;
    assert_refused(r, status, reason).await;
    w
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    refused_token(
        Tamper::Nonce("someone-elses".into()),
        StatusCode::BAD_REQUEST,
        "nonce does not match",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_for_another_client_is_refused() {
    refused_token(
        Tamper::Audience("another-client".into()),
        StatusCode::BAD_REQUEST,
        "issued for another application (audience another-client)",
    )
    .await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    refused_token(Tamper::Expired, StatusCode::BAD_REQUEST, "has expired").await;
}

#[tokio::test]
async fn an_id_token_with_a_bad_signature_is_refused() {
    refused_token(
        Tamper::BadSignature,
        StatusCode::BAD_REQUEST,
        "signature does not verify",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    refused_token(
        Tamper::Issuer("https://evil.example.com".into()),
        StatusCode::BAD_REQUEST,
        "issued by `https://evil.example.com`",
    )
    .await;
}

#[tokio::test]
async fn an_access_token_in_place_of_the_id_token_is_refused() {
    refused_token(
        Tamper::AccessTokenUse,
        StatusCode::BAD_REQUEST,
        "Cognito `access` token, not an ID token",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_signed_with_an_unpublished_key_is_refused_after_a_fresh_look() {
    let w = refused_token(
        Tamper::UnknownKid,
        StatusCode::BAD_REQUEST,
        "signed with key `never-published`, which the provider does not publish",
    )
    .await;
    assert_eq!(w.fake.jwks_fetches(), 1);
    // With the keys cached, an unknown key is looked for again.
    assert_eq!(w.sign_in("fran").await.status(), StatusCode::OK);
    w.fake.tamper_next(Tamper::UnknownKid);
    let r = w.sign_in("fran").await;
    assert_refused(r, StatusCode::BAD_REQUEST, "does not publish").await;
    assert_eq!(w.fake.jwks_fetches(), 2);
}

#[tokio::test]
async fn rotated_keys_are_fetched_when_a_token_names_one() {
    let w = world().await;
    assert_eq!(w.sign_in("fran").await.status(), StatusCode::OK);
    assert_eq!(w.fake.jwks_fetches(), 1);
    assert_eq!(w.sign_in("fran").await.status(), StatusCode::OK);
    assert_eq!(w.fake.jwks_fetches(), 1, "the keys are cached");
    w.fake.rotate();
    assert_eq!(w.sign_in("fran").await.status(), StatusCode::OK);
    assert_eq!(w.fake.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_user_without_a_console_role_is_refused_in_words() {
    let w = world().await;
    let r = w.sign_in("nobody").await;
    assert_refused(
        r,
        StatusCode::FORBIDDEN,
        "carries no `custom:timepost_role` claim, so it grants no console role",
    )
    .await;
    let r = w.sign_in("odd").await;
    assert_refused(r, StatusCode::FORBIDDEN, "names no console role").await;
    let audit = w.stack.store.recent(10).await.expect("audit");
    assert!(audit.iter().all(|a| a.action != "sign-in"));
}
