//! "Route to the holding account": finance sends an exception (one, a
//! selection, or every open entry of a reason) to the configured suspense
//! account instead of waiting for its fix. The pages, forms and JSON API;
//! the workflow is `crate::app::holding` (recorded under the entry's claim,
//! audited, redriven; posted once). Without `rules.holding_account` the
//! action is not offered and the server answers 409.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal};
use super::console::{back_to, open_items, parse_key, PageError};
use super::html::{csrf_field, esc};
use super::{ApiError, AppState};
use crate::exceptions::ExceptionCode;
use crate::model::EntryKey;

/// The holding account, when routing is configured.
pub(super) fn account(s: &AppState) -> Option<&str> {
    s.engine.rules.holding_account.as_deref()
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

/// Route `keys` to the holding account (`crate::app::holding`).
pub async fn route(
    s: &AppState,
    who: &Principal,
    keys: &[EntryKey],
    scope: &str,
) -> Result<usize, ApiError> {
    let (entries, queue, audit) = (s.entries.as_ref(), s.queue.as_ref(), s.audit.as_ref());
    let account = account(s);
    Ok(
        crate::app::holding::route(entries, queue, audit, account, &who.actor(), keys, scope)
            .await?,
    )
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
