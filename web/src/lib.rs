//! The one HTTP router: tracker webhooks, the admin API and its OpenAPI
//! document, the console pages, and health. `timepost serve` runs it on a
//! tokio listener; the Lambda functions run the same router under
//! `lambda_http`. Every `/api` and `/console` route passes `auth::guard`;
//! `/auth/*` is browser sign-in through an OpenID provider ([`signin`]).
//!
//! Feature `console` (a default of this crate, which the workspace's
//! dependency turns off, so the CLI, the admin function and the tests name
//! it) holds everything but the webhooks: the admin API, the console pages, sign-in,
//! the permission table and the OpenAPI document, and [`router`]. Without
//! it the crate is [`webhook_router`] and its [`WebhookState`]: the webhook
//! function builds it so.
//!
//! The router's state is built from a composition root: [`AppState::local`]
//! on the local stack, `AppState::aws` / `WebhookState::aws` on the AWS one
//! (feature `aws`). Handlers call the application services
//! (`timepost::app`, `timepost::review`) and never write a store themselves
//! where a service exists.
//!
//! **May depend on:** `timepost-shared` (the composition roots, the
//! adapters it re-exports, the application layer and the core beneath),
//! axum and the crypto crates of the console's tokens. **Depended on by:**
//! the CLI (`timepost serve`) and the webhook and admin functions; no
//! library crate depends on this one.

// The modules of the layers beneath, under the paths this code names
// (`crate::engine`, `crate::ports`, …).
#[cfg(feature = "aws")]
use timepost::aws;
#[cfg(feature = "console")]
use timepost::{
    aggregates, archive, csv_out, engine, exceptions, identity, impact, kpis, mapping, model,
    money, oidc, period_report, pipeline, reconcile, report, stack, state, summary,
};
use timepost::{app, config, intake, ports, review, sources};

#[cfg(feature = "console")]
mod admin;
#[cfg(feature = "console")]
mod approvals;
#[cfg(feature = "console")]
mod archives;
#[cfg(feature = "console")]
pub use archives::Archives;
#[cfg(feature = "console")]
pub mod auth;
#[cfg(feature = "console")]
mod console;
#[cfg(feature = "console")]
mod dashboard;
#[cfg(feature = "console")]
mod entry_detail;
#[cfg(feature = "console")]
mod extract;
#[cfg(feature = "console")]
mod holding;
#[cfg(feature = "console")]
pub mod html;
#[cfg(feature = "console")]
mod listing;
#[cfg(feature = "console")]
mod mapping_review;
#[cfg(feature = "console")]
mod mappings;
#[cfg(feature = "console")]
mod openapi;
#[cfg(feature = "console")]
mod reconciliation;
#[cfg(feature = "console")]
pub mod signin;
#[cfg(feature = "console")]
pub mod throttle;
#[cfg(feature = "console")]
pub mod tokens;
mod webhooks;

#[cfg(feature = "console")]
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

#[cfg(feature = "console")]
use crate::app::recheck::RecheckMode;
#[cfg(feature = "console")]
use crate::config::{ConsoleUser, IntakeConfig};
#[cfg(feature = "console")]
use crate::engine::Engine;
use crate::ports::Secrets;
#[cfg(feature = "console")]
use crate::ports::{AuditLog, EntryStore, MappingStore, PendingChanges, Queue};
#[cfg(feature = "console")]
use crate::stack::Stack;
#[cfg(feature = "console")]
use timepost_core::ledger::Ledger;
pub use webhooks::{ParseContextCache, WebhookState};

/// Largest request body accepted (webhooks included): 1 MiB, as SQS.
pub const MAX_BODY: usize = 1024 * 1024;

/// Secret names in the secrets store.
pub mod secret_names {
    /// Toggl subscription secrets (several, separated by whitespace or
    /// commas, while rotating).
    pub const TOGGL: &str = "toggl_webhook_secret";
    /// Clockify webhook tokens (several while rotating).
    pub const CLOCKIFY: &str = "clockify_webhook_secret";
    /// Bearer token of the admin API.
    pub const ADMIN: &str = "admin_token";
    /// The key of the console users' `token_hmac` (several while rotating).
    pub const TOKEN_KEY: &str = "token_key";
}

#[cfg(feature = "console")]
/// What every route of the router works on: the ports and engine
/// ([`Inner`], reached through `Deref`), the mapping review's settings, and
/// the parts a deployment may or may not offer. The webhook routes see only
/// [`WebhookState`], a view of it (`FromRef`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    review: Arc<Review>,
    /// Browser sign-in through an OpenID provider, when configured.
    oidc: Option<Arc<crate::oidc::Provider>>,
    /// Where reconciliation runs are kept, when this state offers the
    /// Reconciliation page ([`AppState::with_reconcile`]).
    reconcile: Option<Arc<Reconcile>>,
    /// The snapshot archive the Archives page reads, when offered
    /// ([`AppState::with_archives`]).
    archives: Option<Arc<archives::Archives>>,
    /// The webhook routes' view: the same queue, secrets and mappings.
    webhooks: WebhookState,
}

#[cfg(feature = "console")]
impl axum::extract::FromRef<AppState> for WebhookState {
    fn from_ref(s: &AppState) -> Self {
        s.webhooks.clone()
    }
}

#[cfg(feature = "console")]
/// What the Reconciliation page and its API work on: the store of runs,
/// the tolerances, and whether a re-post converges the week in the
/// request (locally, as `timepost reconcile resolve --repost` does).
pub struct Reconcile {
    pub store: Arc<dyn crate::reconcile::ReconcileStore>,
    pub config: crate::reconcile::ReconcileConfig,
    pub converge_now: bool,
}

#[cfg(feature = "console")]
/// How console mapping changes are reviewed: where proposals (with their
/// impact previews) are kept, and how many touched entries make a change
/// wait for a second admin. Kept apart from [`Inner`] so a stack that
/// builds `Inner` need not know about it: without a store
/// ([`AppState::new`] alone), small changes apply and large ones are
/// refused rather than applied unreviewed.
pub struct Review {
    pub pending: Option<Arc<dyn PendingChanges>>,
    /// `[console] mapping_approval_threshold`.
    pub threshold: u64,
    /// Where the held entries an applied change can release are re-checked:
    /// in the request locally, queued for the sync function on a deployed
    /// stack ([`AppState::with_recheck`]).
    pub recheck: RecheckMode,
}

#[cfg(feature = "console")]
pub struct Inner {
    pub engine: Arc<Engine>,
    pub queue: Arc<dyn Queue>,
    pub entries: Arc<dyn EntryStore>,
    pub mappings: Arc<dyn MappingStore>,
    pub secrets: Arc<dyn Secrets>,
    pub ledger: Arc<dyn Ledger>,
    pub intake: IntakeConfig,
    pub audit: Arc<dyn AuditLog>,
    /// Console users from `[[console.users]]` (the `admin_token` secret is
    /// an admin besides).
    pub users: Vec<ConsoleUser>,
    pub sessions: auth::Sessions,
}

#[cfg(feature = "console")]
impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

#[cfg(feature = "console")]
impl AppState {
    pub fn new(inner: Inner) -> Self {
        let threshold = crate::config::ConsoleConfig::default().mapping_approval_threshold;
        let webhooks = WebhookState::new(
            inner.queue.clone(),
            inner.secrets.clone(),
            inner.mappings.clone(),
            inner.intake.clone(),
        );
        Self {
            inner: Arc::new(inner),
            review: Arc::new(Review {
                pending: None,
                threshold,
                recheck: RecheckMode::InProcess,
            }),
            oidc: None,
            reconcile: None,
            archives: None,
            webhooks,
        }
    }

    /// Offer the Reconciliation page and `/api/reconciliation` over
    /// `store` (without it they answer 503: not offered here).
    pub fn with_reconcile(self, reconcile: Reconcile) -> Self {
        Self {
            reconcile: Some(Arc::new(reconcile)),
            ..self
        }
    }

    /// Offer the Archives page and `/api/archives` over `archives` (without
    /// it they answer 503: not offered here).
    pub fn with_archives(self, archives: archives::Archives) -> Self {
        Self {
            archives: Some(Arc::new(archives)),
            ..self
        }
    }

    /// The snapshot archive, when offered.
    pub fn archives(&self) -> Option<&archives::Archives> {
        self.archives.as_deref()
    }

    /// The reconciliation store, when offered.
    pub fn reconcile(&self) -> Option<&Reconcile> {
        self.reconcile.as_deref()
    }

    /// Offer browser sign-in through `provider` (`/auth/login`,
    /// `/auth/callback`, `/auth/logout`; see [`signin`]).
    pub fn with_oidc(self, provider: Arc<crate::oidc::Provider>) -> Self {
        Self {
            oidc: Some(provider),
            ..self
        }
    }

    /// The OpenID provider of browser sign-in, if configured.
    pub fn oidc(&self) -> Option<&crate::oidc::Provider> {
        self.oidc.as_deref()
    }

    /// Keep console mapping changes and their previews in `pending`; a
    /// change touching more than `threshold` entries waits for a second
    /// admin (0: every change does).
    pub fn with_review(self, pending: Arc<dyn PendingChanges>, threshold: u64) -> Self {
        let review = Review {
            pending: Some(pending),
            threshold,
            recheck: self.review.recheck,
        };
        Self {
            review: Arc::new(review),
            ..self
        }
    }

    /// Re-check held entries after an applied mapping change as `mode`
    /// says (a deployed admin function queues them: only the sync function
    /// writes the books).
    pub fn with_recheck(self, mode: RecheckMode) -> Self {
        let review = Review {
            pending: self.review.pending.clone(),
            threshold: self.review.threshold,
            recheck: mode,
        };
        Self {
            review: Arc::new(review),
            ..self
        }
    }

    pub fn review(&self) -> &Review {
        &self.review
    }

    /// The mapping change review workflow on this state's ports.
    pub fn mapping_review(&self) -> crate::review::MappingReview<'_> {
        crate::review::MappingReview {
            entries: self.entries.as_ref(),
            mappings: self.mappings.as_ref(),
            audit: self.audit.as_ref(),
            pending: self.review.pending.as_deref(),
            engine: self.engine.as_ref(),
            threshold: self.review.threshold,
        }
    }

    /// The outcome report of the store as it stands.
    pub async fn report(&self) -> Result<crate::report::Report, ApiError> {
        crate::report::collect(
            self.entries.as_ref(),
            self.ledger.as_ref(),
            self.queue.as_ref(),
            self.engine.counters.snapshot(),
            &[],
        )
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))
    }

    /// The router's state on a stack: its stores, queue, secrets, ledger
    /// and engine; console sessions shared through the stack's session
    /// store when it has one; mapping changes above the threshold kept for
    /// a second admin; the held entries a change releases re-checked where
    /// the stack says (in process locally, queued for the sync function on
    /// a deployed stack, which never writes the books in a request); the
    /// Reconciliation page, where a re-post converges the week at once
    /// locally and by the sync function's sweep when deployed; the
    /// Archives page on the stack's snapshots.
    pub fn of(stack: &Stack) -> Self {
        let console = &stack.config.console;
        let mut sessions =
            auth::Sessions::new(std::time::Duration::from_secs(console.session_minutes * 60))
                .with_cookies(auth::CookiePolicy::from_config(console))
                .with_throttle(throttle::Throttle::from_config(console));
        if let Some(shared) = &stack.sessions {
            // A browser's requests may reach any instance.
            sessions = sessions.with_store(shared.clone());
        }
        Self::new(Inner {
            engine: stack.engine.clone(),
            queue: stack.queue.clone(),
            entries: stack.entries.clone(),
            mappings: stack.mappings.clone(),
            secrets: stack.secrets.clone(),
            ledger: stack.ledger.clone(),
            intake: stack.config.intake.clone(),
            audit: stack.audit.clone(),
            users: console.users.clone(),
            sessions,
        })
        .with_review(stack.pending.clone(), console.mapping_approval_threshold)
        .with_recheck(stack.recheck_mode())
        .with_reconcile(Reconcile {
            store: stack.reconcile.clone(),
            config: stack.config.reconcile.clone(),
            converge_now: !stack.deployed(),
        })
        .with_archives(Archives {
            archive: stack.snapshots.clone(),
            retention: stack.config.retention.clone().unwrap_or_default(),
        })
    }

    /// State for the local stack ([`AppState::of`] its [`Stack`]).
    pub fn local(stack: &crate::stack::LocalStack) -> Self {
        Self::of(&Stack::from(stack))
    }

    /// State for a deployed stack (the admin function): [`AppState::of`]
    /// its [`Stack`].
    #[cfg(feature = "aws")]
    pub fn aws(stack: &crate::aws::AwsStack) -> Self {
        Self::of(&Stack::from(stack))
    }
}

#[cfg(feature = "console")]
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/webhooks/clockify", post(webhooks::clockify))
        .route("/webhooks/toggl", post(webhooks::toggl))
        .route("/openapi.json", get(openapi::document))
        .nest("/api", admin::routes())
        .nest("/console", console::routes())
        .nest("/auth", signin::routes())
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    with_limits(routes).with_state(state)
}

/// The body limits and the headers every response of either router gets.
fn with_limits<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_oversized))
        .layer(middleware::from_fn(security_headers))
}

/// The webhook function's router: health and the tracker webhooks, with
/// the same body limits and headers as `router`, and nothing else;
/// anything else is 404. The webhook function builds this crate without
/// its `console` feature, so it does not compile the console or the admin
/// API at all.
pub fn webhook_router(state: WebhookState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/webhooks/clockify", post(webhooks::clockify))
        .route("/webhooks/toggl", post(webhooks::toggl));
    with_limits(routes).with_state(state)
}

/// A body declared larger than [`MAX_BODY`] is refused (413) before a
/// byte of it is read; one sent without a length is cut off at
/// `MAX_BODY` by `DefaultBodyLimit`.
async fn refuse_oversized(req: axum::extract::Request, next: middleware::Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY as u64) {
        tracing::warn!(
            declared = n,
            path = req.uri().path(),
            "request refused: body too large"
        );
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is {n} bytes; at most {MAX_BODY} are accepted"),
        )
        .into_response();
    }
    next.run(req).await
}

/// The Content-Security-Policy of every response. The console is
/// server-rendered HTML with no script at all, so none may run
/// (`default-src 'none'`); its one stylesheet is inline and bars are sized
/// by `style` attributes (`style-src 'unsafe-inline'`, styles only); forms
/// post to this server only; no page may be framed (clickjacking) or
/// rebase its links. `connect-src 'self'` only matters to a script, and no
/// page script can run; it lets the browser tests' injected WebDriver
/// scripts `fetch` this server as a forged same-origin post would.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Browser hardening on every response (console pages, API, webhooks):
/// the CSP above, no MIME sniffing, no referrer leaving the console (entry
/// keys and names are in its URLs), no framing for older browsers either.
async fn security_headers(req: axum::extract::Request, next: middleware::Next) -> Response {
    use axum::http::header::{self, HeaderValue};
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn healthz(axum::extract::State(s): axum::extract::State<WebhookState>) -> Response {
    match s.queue.depth().await {
        Ok(depth) => Json(json!({"status": "ok", "queue_depth": depth})).into_response(),
        Err(e) => ApiError::unavailable(format!("store unavailable: {e}")).into_response(),
    }
}

/// A JSON error: `{"error": "...", "field": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }
    pub fn bad_request(message: impl Into<String>, field: Option<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field,
        }
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "missing or invalid credentials")
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::app::entries::EntryActionError> for ApiError {
    fn from(e: crate::app::entries::EntryActionError) -> Self {
        use crate::app::entries::EntryActionError as E;
        match e {
            E::NotFound(_) => Self::not_found(e.to_string()),
            E::Busy(_) | E::NotOpen { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::app::holding::HoldingError> for ApiError {
    fn from(e: crate::app::holding::HoldingError) -> Self {
        use crate::app::holding::HoldingError as E;
        match e {
            E::NotFound(_) => Self::not_found(e.to_string()),
            E::NotConfigured | E::NotOpen { .. } | E::Busy { .. } => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::app::approvals::ApprovalError> for ApiError {
    fn from(e: crate::app::approvals::ApprovalError) -> Self {
        use crate::app::approvals::ApprovalError as E;
        match e {
            E::NothingSelected => Self::bad_request(e.to_string(), Some("entries".into())),
            E::NotFound(_) => Self::not_found(e.to_string()),
            E::NotWaiting { .. } | E::DayNotWhole { .. } => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::ports::StoreError> for ApiError {
    fn from(e: crate::ports::StoreError) -> Self {
        match e {
            crate::ports::StoreError::NotFound(w) => Self::not_found(format!("not found: {w}")),
            crate::ports::StoreError::Conflict(w) => Self::new(
                StatusCode::CONFLICT,
                format!("{w} was changed meanwhile; reload and try again"),
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                Self::unavailable("storage is unavailable; nothing was changed")
            }
        }
    }
}

impl From<crate::review::ReviewError> for ApiError {
    fn from(e: crate::review::ReviewError) -> Self {
        use crate::review::ReviewError as E;
        match e {
            E::Invalid { message, field } => Self::bad_request(message, field),
            E::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, m),
            E::NotFound(m) => Self::not_found(m),
            E::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            E::Unavailable(m) => Self::unavailable(m),
            E::Store(e) => e.into(),
        }
    }
}

/// The secrets under `name`, split for rotation (whitespace or commas).
pub async fn secret_list(secrets: &dyn Secrets, name: &str) -> Vec<String> {
    match secrets.get(name).await {
        Ok(Some(v)) => v
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::error!(secret = name, error = %e, "cannot read secret");
            Vec::new()
        }
    }
}

#[cfg(feature = "console")]
/// The `token_key` secret (the key of the console users' `token_hmac`),
/// created on first need. Returns the key in use (the first, while
/// several are listed for a rotation) and whether it was just created.
pub async fn ensure_token_key(
    secrets: &dyn Secrets,
) -> Result<(String, bool), crate::ports::StoreError> {
    if let Some(k) = secret_list(secrets, secret_names::TOKEN_KEY)
        .await
        .into_iter()
        .next()
    {
        return Ok((k, false));
    }
    let key = tokens::generate_key();
    secrets.put(secret_names::TOKEN_KEY, &key).await?;
    Ok((key, true))
}

#[cfg(feature = "console")]
/// The refusal of the first `admin_token` too weak to be a credential.
pub async fn weak_admin_token(secrets: &dyn Secrets) -> Option<tokens::WeakToken> {
    secret_list(secrets, secret_names::ADMIN)
        .await
        .iter()
        .find_map(|t| tokens::check_strength(t).err())
}

#[cfg(feature = "console")]
/// Create an admin token on first start. Returns it when it was created.
pub async fn ensure_admin_token(
    secrets: &dyn Secrets,
) -> Result<Option<String>, crate::ports::StoreError> {
    if secrets.get(secret_names::ADMIN).await?.is_some() {
        return Ok(None);
    }
    let token = format!(
        "tpa_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    secrets.put(secret_names::ADMIN, &token).await?;
    Ok(Some(token))
}
