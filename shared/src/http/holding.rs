//! "Route to the holding account": finance sends an exception (one, a
//! selection, or every open entry of a reason) to the configured suspense
//! account instead of waiting for its fix. The routing is recorded on the
//! entry state (`EntryState::holding`) under the entry's claim and audited;
//! the entry is then redriven through the queue, and the engine posts it to
//! the holding account (`pipeline::holding_decision`) with its usual
//! idempotency key, so it reaches the books exactly once however often it
//! is routed or redriven. Without `rules.holding_account` the action is not
//! offered and the server answers 409.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal};
use super::console::{audit_record, back_to, open_items, parse_key, redrive, PageError};
use super::html::{csrf_field, esc};
use super::{ApiError, AppState};
use crate::exceptions::ExceptionCode;
use crate::model::EntryKey;
use crate::state::{HoldingRoute, Status};

/// The holding account, when routing is configured.
pub(super) fn account(s: &AppState) -> Option<&str> {
    s.engine.rules.holding_account.as_deref()
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no holding account is configured (set `holding_account` under [rules] in timepost.toml), so entries cannot be routed to one",
    )
}

/// Which entries: the given keys, or every open entry of `code`.
async fn select(
    s: &AppState,
    keys: Vec<String>,
    code: Option<&str>,
) -> Result<Vec<EntryKey>, ApiError> {
    let keys: Vec<String> = keys
        .into_iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    match (
        keys.is_empty(),
        code.map(str::trim).filter(|c| !c.is_empty()),
    ) {
        (false, None) => keys.iter().map(|k| parse_key(k)).collect(),
        (true, Some(code)) => {
            let code: ExceptionCode = code
                .parse()
                .map_err(|e: String| ApiError::bad_request(e, Some("code".into())))?;
            Ok(open_items(s)
                .await?
                .remove(&Some(code))
                .unwrap_or_default()
                .into_iter()
                .map(|st| st.entry.key)
                .collect())
        }
        (false, Some(_)) => Err(ApiError::bad_request(
            "give either entries or a code, not both",
            Some("code".into()),
        )),
        (true, None) => Err(ApiError::bad_request(
            "give the entries (`key` / `entries`) or a reason `code`",
            Some("entries".into()),
        )),
    }
}

/// Route `keys` to the holding account. Every entry is checked first
/// (exists: else 404; open, i.e. exception or held: else 409), so a bad
/// selection changes nothing; then each is marked under its claim, audited
/// (`route_holding`), and redriven. Returns how many were routed.
pub async fn route(
    s: &AppState,
    who: &Principal,
    keys: &[EntryKey],
    scope: &str,
) -> Result<usize, ApiError> {
    let Some(account) = account(s).map(str::to_string) else {
        return Err(not_configured());
    };
    for key in keys {
        let st = s
            .entries
            .get(key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no entry {key}")))?;
        if !matches!(st.status, Status::Exception | Status::Held) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "entry {key} is {}; only exceptions and held entries can be routed to the holding account",
                    st.status
                ),
            ));
        }
    }
    const OWNER: &str = "console-holding";
    let mut routed = Vec::with_capacity(keys.len());
    for key in keys {
        if !s.entries.claim(key, OWNER, Duration::from_secs(30)).await? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "entry {key} is being processed; {} entr{} routed before it, try again in a moment",
                    routed.len(),
                    if routed.len() == 1 { "y was" } else { "ies were" }
                ),
            ));
        }
        let result = async {
            let mut st = s
                .entries
                .get(key)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no entry {key}")))?;
            if st.holding.is_some() {
                return Ok(false);
            }
            let was = st
                .reason
                .as_ref()
                .map(|r| r.code.as_str())
                .unwrap_or("no reason");
            let detail = format!("to {account} ({scope}); was {} ({was})", st.status);
            st.holding = Some(HoldingRoute {
                by: who.name.clone(),
                at: Utc::now(),
                reason: st.reason.clone(),
            });
            s.entries.put(&st).await?;
            s.audit
                .record(audit_record(who, "route_holding", Some(key), detail))
                .await?;
            Ok::<_, ApiError>(true)
        }
        .await;
        if let Err(e) = s.entries.release(key, OWNER).await {
            tracing::warn!(entry = %key, error = %e, "could not release claim");
        }
        if result? {
            routed.push(key.clone());
        }
    }
    // Redrive every selected entry (an already-routed one that has not
    // posted yet is retried; one that has posted is left unchanged).
    redrive(s, who, keys, "after routing to the holding account").await?;
    Ok(routed.len())
}

/// The per-row button, when routing is configured and allowed.
pub(super) fn row_form(s: &AppState, who: &Principal, key: &EntryKey) -> String {
    if account(s).is_none() || !auth::may(who.role, "POST", "/console/exceptions/holding") {
        return String::new();
    }
    format!(
        "<form class=\"inline holding\" method=\"post\" action=\"/console/exceptions/holding\">{}\
         <input type=\"hidden\" name=\"key\" value=\"{}\"><button class=\"secondary\" type=\"submit\">To holding</button></form>",
        csrf_field(who),
        esc(&key.to_string())
    )
}

/// The per-reason button.
pub(super) fn group_form(s: &AppState, who: &Principal, code: &str) -> String {
    let Some(acct) = account(s) else {
        return String::new();
    };
    if !auth::may(who.role, "POST", "/console/exceptions/holding") {
        return String::new();
    }
    format!(
        "<form class=\"inline holding-all\" method=\"post\" action=\"/console/exceptions/holding\">{}\
         <input type=\"hidden\" name=\"code\" value=\"{}\">\
         <button class=\"secondary\" type=\"submit\">Route all of this reason to holding ({})</button></form>",
        csrf_field(who),
        esc(code),
        esc(acct)
    )
}

/// `POST /console/exceptions/holding`: `key` (one or repeated) or `code`.
pub async fn page_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let keys: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "key")
        .map(|(_, v)| v.clone())
        .collect();
    let code = form
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.as_str());
    let scope = if code.is_some() {
        "all of a reason"
    } else {
        "selected"
    };
    let keys = select(&s, keys, code).await?;
    let n = route(&s, &who, &keys, scope).await?;
    Ok(back_to(
        "/console/exceptions",
        &format!(
            "{n} entr{} routed to the holding account; posting through the queue.",
            if n == 1 { "y" } else { "ies" }
        ),
    ))
}

#[derive(Deserialize)]
pub struct HoldingBody {
    #[serde(default)]
    entries: Vec<String>,
    code: Option<String>,
}

/// `POST /api/holding`: `{"entries": [keys]}` or `{"code": "..."}`.
pub async fn api_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<Json<HoldingBody>>,
) -> Result<Response, ApiError> {
    let Json(b) = body
        .ok_or_else(|| ApiError::bad_request("a JSON body is required", Some("entries".into())))?;
    let scope = if b.code.is_some() {
        "all of a reason"
    } else {
        "selected"
    };
    let keys = select(&s, b.entries, b.code.as_deref()).await?;
    let n = route(&s, &who, &keys, scope).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "routed": n,
            "entries": keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "account": account(&s),
        })),
    )
        .into_response())
}
