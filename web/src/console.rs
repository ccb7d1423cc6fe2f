//! The console: server-rendered pages over the same state as the admin API.
//! Sign-in (`/console/login`), the exceptions page grouped by reason with
//! redrive (one entry or a whole reason) and discard-with-reason. Every
//! action goes through [`redrive`] / [`discard`], which the JSON API uses
//! too, and is written to the audit log.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{OriginalUri, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};

use super::auth::{self, Principal, LOGIN_COOKIE, SESSION_COOKIE};
use super::html::{csrf_field, esc, page};
use super::{ApiError, AppState};
use crate::exceptions::ExceptionCode;
use crate::model::EntryKey;
use crate::ports::{AuditRecord, StoreError};
use crate::state::{EntryState, Status};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(super::dashboard::home))
        .route(
            "/hours-by-project.csv",
            get(super::dashboard::hours_by_project_csv),
        )
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/exceptions", get(exceptions))
        .route("/exceptions.csv", get(exceptions_csv))
        .route("/exceptions/redrive", post(redrive_form))
        .route("/exceptions/discard", post(discard_form))
        .route(
            "/exceptions/fix-mapping",
            post(super::entry_detail::fix_mapping_post),
        )
        .route("/exceptions/{key}", get(super::entry_detail::page_get))
        .route("/exceptions/holding", post(super::holding::page_post))
        .route(
            "/mappings",
            get(super::mappings::page_get).post(super::mappings::page_post),
        )
        .route("/mappings/history", get(super::mappings::history_page))
        .route("/mappings/revert", post(super::mappings::revert_post))
        .route(
            "/mappings/preview",
            get(super::mapping_review::preview_page),
        )
        .route(
            "/mappings/pending/{id}",
            get(super::mapping_review::proposal_page),
        )
        .route(
            "/mappings/pending/{id}/approve",
            post(super::mapping_review::approve_post),
        )
        .route(
            "/mappings/pending/{id}/reject",
            post(super::mapping_review::reject_post),
        )
        .route(
            "/approvals",
            get(super::approvals::page_get).post(super::approvals::page_post),
        )
        .route("/reconciliation", get(super::reconciliation::page_get))
        .route("/reconciliation.csv", get(super::reconciliation::csv))
        .route(
            "/reconciliation/resolve",
            post(super::reconciliation::resolve_post),
        )
        .route("/reconciliation/run", post(super::reconciliation::run_post))
        .route("/archives", get(super::archives::page_get))
        .route("/archives.csv", get(super::archives::csv))
        .route("/archives/verify", post(super::archives::verify_post))
        .route(
            "/archives/{period}/{revision}/{file}",
            get(super::archives::download),
        )
}

/// An error shown as a console page.
pub(super) struct PageError(pub(super) ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut body = format!("<p class=\"error\">{}", esc(&e.message));
        if let Some(f) = &e.field {
            body.push_str(&format!(" (field <code>{}</code>)", esc(f)));
        }
        body.push_str("</p><p><a href=\"/console/exceptions\">Back to the exceptions</a></p>");
        let title = e.status.canonical_reason().unwrap_or("Error");
        (e.status, page(title, None, &body)).into_response()
    }
}

pub(super) fn field<'a>(
    form: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a str, ApiError> {
    form.get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` is required"), Some(name.into())))
}

async fn login_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    fresh_login_page(&s, &headers, &uri, StatusCode::OK, None)
}

/// The sign-in form with a new CSRF token, set in its cookie too (signed
/// double submit: a cross-site page can neither read the cookie nor mint
/// a token this server signed, so it cannot sign a victim in as someone
/// else).
fn fresh_login_page(
    s: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let token = s.sessions.login_token();
    let mut r = login_page(s, status, error, &token);
    let cookie = format!(
        "{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console/login; Max-Age=3600{}",
        s.sessions.secure_attr(headers, uri.scheme_str())
    );
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn login_page(s: &AppState, status: StatusCode, error: Option<&str>, csrf: &str) -> Response {
    let err = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    // With a sign-in provider configured, people sign in there; the token
    // form stays for the bootstrap admin token and configured users.
    let provider = s
        .oidc()
        .map(|p| {
            format!(
                "<p><a class=\"signin-provider\" href=\"/auth/login\">Sign in with {}</a></p>\
                 <p class=\"hint\">Or with an access token:</p>",
                esc(&p.config().provider_name)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "{err}{provider}<form method=\"post\" action=\"/console/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><label>Access token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label></p>\
         <p><button type=\"submit\">Sign in</button></p></form>",
        esc(csrf)
    );
    (status, page("Sign in", None, &body)).into_response()
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    client: Option<Extension<super::throttle::ClientAddr>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    // A browser says where a request comes from: a sign-in posted from
    // another site is refused outright.
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let csrf = form.get("csrf").map(String::as_str);
    if matches!(fetch_site, "cross-site" | "same-site")
        || !s
            .sessions
            .check_login_token(auth::cookie(&headers, LOGIN_COOKIE), csrf)
    {
        tracing::warn!(
            fetch_site,
            "sign-in refused: CSRF token missing, stale or forged"
        );
        return fresh_login_page(
            &s,
            &headers,
            &uri,
            StatusCode::FORBIDDEN,
            Some(
                "This sign-in form expired or did not come from this server; sign in again below.",
            ),
        );
    }
    let csrf = csrf.unwrap_or_default();
    let token = match field(&form, "token") {
        Ok(t) => t,
        Err(e) => {
            return login_page(
                &s,
                e.status,
                Some("Enter your access token (field `token`)."),
                csrf,
            )
        }
    };
    let client = client.map(|Extension(c)| c.0);
    let who = match auth::check_token_throttled(&s, client, "sign-in", token).await {
        Ok(who) => who,
        Err(auth::AuthFailure::Invalid) => {
            return login_page(
                &s,
                StatusCode::UNAUTHORIZED,
                Some("That token is not valid."),
                csrf,
            )
        }
        Err(auth::AuthFailure::Throttled(wait)) => {
            let secs = auth::retry_after_secs(wait);
            let mut r = login_page(
                &s,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "Too many failed sign-in attempts. Try again in {secs} seconds; each further failure doubles the wait."
                )),
                csrf,
            );
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
    };
    let id = match s.sessions.create(&who).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "console session not stored; sign-in refused");
            return login_page(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(
                    "The sign-in could not be stored (storage is unavailable); try again shortly.",
                ),
                csrf,
            );
        }
    };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        s.sessions.ttl().as_secs(),
        s.sessions.secure_attr(&headers, uri.scheme_str())
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/console".to_string()),
        ],
    )
        .into_response()
}

async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
        s.sessions.remove(id).await;
    }
    let clear = format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        s.sessions.secure_attr(&headers, uri.scheme_str())
    );
    if s.oidc().is_some() {
        // Signed out here; the provider's own session ends at its logout
        // endpoint. A page that moves on by itself, not a redirect: the
        // sign-out form may post only to this server (CSP form-action),
        // and a browser applies that to where a redirect leads too.
        let to = super::signin::after_logout(&s, &headers, &uri).await;
        let body = format!(
            "<p class=\"notice\">You are signed out of timepost.</p><p><a href=\"{}\">Continue</a></p>",
            esc(&to)
        );
        let html = page("Signed out", None, &body).0.replacen(
            "<meta charset=\"utf-8\">",
            &format!(
                "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={}\">",
                esc(&to)
            ),
            1,
        );
        return (
            StatusCode::OK,
            [(header::SET_COOKIE, clear)],
            axum::response::Html(html),
        )
            .into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, clear),
            (header::LOCATION, "/console/login".to_string()),
        ],
    )
        .into_response()
}

type Groups = BTreeMap<Option<ExceptionCode>, Vec<EntryState>>;

/// `states` grouped by reason code; entries without a reason come last
/// under None.
fn by_reason(states: impl IntoIterator<Item = EntryState>, groups: &mut Groups) {
    for st in states {
        groups
            .entry(st.reason.as_ref().map(|r| r.code))
            .or_default()
            .push(st);
    }
}

/// Every entry that could not be posted (exceptions and held), grouped by
/// reason code, each status read to its end a page at a time: what a bulk
/// action over a reason and the CSV act on.
pub async fn open_items(s: &AppState) -> Result<Groups, StoreError> {
    let mut groups = Groups::new();
    for status in [Status::Exception, Status::Held] {
        by_reason(
            crate::ports::status_states(s.entries.as_ref(), status).await?,
            &mut groups,
        );
    }
    Ok(groups)
}

/// The exceptions page's query: a notice, and where each status's listing
/// goes on (`super::listing`).
#[derive(serde::Deserialize)]
struct ExceptionsQuery {
    notice: Option<String>,
    after_exception: Option<String>,
    after_held: Option<String>,
}

pub(super) fn hours(secs: i64) -> String {
    format!("{:.2}", secs as f64 / 3600.0)
}

fn row(s: &AppState, st: &EntryState, who: &Principal, can_fix: bool) -> String {
    let e = &st.entry;
    let worker = e
        .worker
        .name
        .as_deref()
        .or(e.worker.email.as_deref())
        .unwrap_or(&e.worker.tracker_user_id);
    let project = e
        .project
        .as_ref()
        .map(|p| p.name.clone().unwrap_or_else(|| p.id.clone()))
        .unwrap_or_else(|| "—".into());
    let (message, vendor) = match &st.reason {
        Some(r) => (
            r.message.as_str(),
            r.vendor_message
                .as_deref()
                .map(|v| format!("<div class=\"vendor\">Accounting system: {}</div>", esc(v)))
                .unwrap_or_default(),
        ),
        None => (st.note.as_deref().unwrap_or(""), String::new()),
    };
    let key = e.key.to_string();
    let actions = if can_fix {
        format!(
            "<form class=\"inline redrive\" method=\"post\" action=\"/console/exceptions/redrive\">{csrf}\
             <input type=\"hidden\" name=\"key\" value=\"{k}\"><button type=\"submit\">Redrive</button></form> \
             <form class=\"inline discard\" method=\"post\" action=\"/console/exceptions/discard\">{csrf}\
             <input type=\"hidden\" name=\"key\" value=\"{k}\">\
             <input type=\"text\" name=\"reason\" placeholder=\"reason to discard\" required>\
             <button class=\"secondary\" type=\"submit\">Discard</button></form>",
            csrf = csrf_field(who),
            k = esc(&key),
        )
    } else {
        String::new()
    };
    format!(
        "<tr data-key=\"{k}\"><td><a class=\"detail\" href=\"{href}\"><code>{k}</code></a> <span class=\"status\">{status}</span></td><td>{w}</td><td>{d}</td>\
         <td class=\"num\">{h}</td><td>{p}</td><td>{m}{vendor}</td><td>{actions}{fix}{hold}</td></tr>",
        k = esc(&key),
        href = esc(&super::entry_detail::detail_href(&e.key)),
        fix = super::entry_detail::fix_form(who, st),
        hold = if st.holding.is_some() {
            String::new()
        } else {
            super::holding::row_form(s, who, &e.key)
        },
        status = st.status().as_str(),
        w = esc(worker),
        d = e.work_date,
        h = hours(e.duration_secs),
        p = esc(&project),
        m = esc(message),
    )
}

async fn exceptions(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ExceptionsQuery>,
) -> Result<Response, PageError> {
    use super::listing::{self, PAGE_ROWS};
    let mut groups = Groups::new();
    let mut next = Vec::new();
    for (status, after, field) in [
        (Status::Exception, &q.after_exception, "after_exception"),
        (Status::Held, &q.after_held, "after_held"),
    ] {
        let (list, more) = listing::page(
            s.entries.as_ref(),
            status,
            after.as_deref(),
            field,
            PAGE_ROWS,
        )
        .await?;
        by_reason(list, &mut groups);
        next.push((field, more));
    }
    let can_fix = auth::may(who.role, "POST", "/console/exceptions/redrive");
    let mut body = String::new();
    if let Some(n) = q.notice.as_deref().filter(|n| !n.is_empty()) {
        body.push_str(&format!("<p class=\"notice\">{}</p>", esc(n)));
    }
    let totals = listing::totals(s.entries.as_ref()).await?;
    let count = |st: Status| totals.get(&st).copied().unwrap_or(0);
    let total = count(Status::Exception) + count(Status::Held);
    let shown: usize = groups.values().map(Vec::len).sum();
    let first = q.after_exception.is_none() && q.after_held.is_none();
    let paged = !first || next.iter().any(|(_, n)| n.is_some());
    body.push_str(&format!(
        "<p>{total} entr{} could not be posted. <a href=\"/console/exceptions.csv\">Download as CSV</a></p>",
        if total == 1 { "y" } else { "ies" }
    ));
    if paged {
        body.push_str(&format!(
            "<p class=\"paging\">This page lists {shown} of them, the oldest first ({PAGE_ROWS} of each status at most).</p>"
        ));
    }
    for (code, items) in &groups {
        let (name, title, hint) = match code {
            Some(c) => (c.as_str(), c.title(), c.fix_hint()),
            None => ("NO_REASON", "No reason was recorded.", "Redrive the entry."),
        };
        body.push_str(&format!(
            "<section class=\"group\" id=\"{n}\"><h2><code>{n}</code> · {c} entr{y}{here}</h2>\
             <p>{t}</p><p class=\"hint\">Fix: {h}</p>",
            n = esc(name),
            c = items.len(),
            y = if items.len() == 1 { "y" } else { "ies" },
            here = if paged { " on this page" } else { "" },
            t = esc(title),
            h = esc(hint),
        ));
        if can_fix && code.is_some() {
            body.push_str(&format!(
                "<form class=\"inline redrive-all\" method=\"post\" action=\"/console/exceptions/redrive\">{}\
                 <input type=\"hidden\" name=\"code\" value=\"{}\">\
                 <button type=\"submit\">Redrive all of this reason</button></form>",
                csrf_field(&who),
                esc(name)
            ));
            body.push_str(&super::holding::group_form(&s, &who, name));
        }
        body.push_str(
            "<table><thead><tr><th>Entry</th><th>Worker</th><th>Date</th><th>Hours</th>\
             <th>Project</th><th>Why</th><th></th></tr></thead><tbody>",
        );
        for st in items {
            body.push_str(&row(&s, st, &who, can_fix));
        }
        body.push_str("</tbody></table></section>");
    }
    if next.iter().any(|(_, n)| n.is_some()) {
        let parts: Vec<(&str, &Option<String>)> = next.iter().map(|(f, n)| (*f, n)).collect();
        body.push_str(&format!(
            "<p class=\"paging\"><a class=\"next\" href=\"/console/exceptions{}\">Next page</a> · \
             <a href=\"/console/exceptions\">First page</a></p>",
            esc(&listing::next_query(&parts))
        ));
    } else if !first {
        body.push_str("<p class=\"paging\"><a href=\"/console/exceptions\">First page</a></p>");
    }
    Ok(page("Exceptions", Some(&who), &body).into_response())
}

pub(super) fn audit_record(
    who: &Principal,
    action: &str,
    entry: Option<&EntryKey>,
    detail: String,
) -> AuditRecord {
    crate::app::entries::audit_record(&who.actor(), action, entry, detail)
}

/// Put entries back through the queue, audited (`crate::app::entries`).
pub async fn redrive(
    s: &AppState,
    who: &Principal,
    keys: &[EntryKey],
    detail: &str,
) -> Result<(), ApiError> {
    let (queue, audit) = (s.queue.as_ref(), s.audit.as_ref());
    Ok(crate::app::entries::redrive(queue, audit, &who.actor(), keys, detail).await?)
}

/// Discard an exception or held entry, audited (`crate::app::entries`).
pub async fn discard(
    s: &AppState,
    who: &Principal,
    key: &EntryKey,
    reason: &str,
) -> Result<(), ApiError> {
    let (entries, audit) = (s.entries.as_ref(), s.audit.as_ref());
    Ok(crate::app::entries::discard(entries, audit, &who.actor(), key, reason).await?)
}

pub(super) fn parse_key(key: &str) -> Result<EntryKey, ApiError> {
    key.parse()
        .map_err(|e: String| ApiError::bad_request(e, Some("key".into())))
}

fn back(notice: &str) -> Response {
    back_to("/console/exceptions", notice)
}

/// A redirect to `page` showing `notice`.
pub(super) fn back_to(page: &str, notice: &str) -> Response {
    let q: String = notice
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    Redirect::to(&format!("{page}?notice={q}")).into_response()
}

async fn redrive_form(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    if let Some(key) = form.get("key").filter(|k| !k.trim().is_empty()) {
        let key = parse_key(key.trim())?;
        if s.entries.get(&key).await?.is_none() {
            return Err(ApiError::not_found(format!("no entry {key}")).into());
        }
        redrive(&s, &who, std::slice::from_ref(&key), "one entry").await?;
        return Ok(back(&format!("Redrive of {key} queued.")));
    }
    let code: ExceptionCode = field(&form, "code")
        .map_err(|_| {
            ApiError::bad_request(
                "give `key` (one entry) or `code` (a whole reason)",
                Some("key".into()),
            )
        })?
        .parse()
        .map_err(|e: String| ApiError::bad_request(e, Some("code".into())))?;
    let keys: Vec<EntryKey> = open_items(&s)
        .await?
        .remove(&Some(code))
        .unwrap_or_default()
        .into_iter()
        .map(|st| st.entry.key)
        .collect();
    redrive(&s, &who, &keys, &format!("all of {code}")).await?;
    Ok(back(&format!(
        "Redrive of {} {code} entries queued.",
        keys.len()
    )))
}

async fn discard_form(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let key = parse_key(field(&form, "key")?)?;
    let reason = field(&form, "reason")?;
    discard(&s, &who, &key, reason).await?;
    Ok(back(&format!("{key} discarded.")))
}

/// Finish a CSV writer as a download named `filename`.
pub fn csv_download(
    w: crate::csv_out::SafeCsv<Vec<u8>>,
    filename: &str,
) -> Result<Response, ApiError> {
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::unavailable(format!("cannot write CSV: {e}")))?;
    let disposition = format!("attachment; filename=\"{filename}\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// The exceptions table as CSV, one row per entry, grouped by reason.
async fn exceptions_csv(State(s): State<AppState>) -> Result<Response, PageError> {
    use crate::csv_out::{Cell, SafeCsv};
    let mut w = SafeCsv::new(Vec::new());
    let csv_err = |e: csv::Error| ApiError::unavailable(format!("cannot write CSV: {e}"));
    w.header(&[
        "code",
        "status",
        "entry",
        "worker",
        "date",
        "hours",
        "project",
        "message",
        "vendor_message",
        "fix_hint",
    ])
    .map_err(csv_err)?;
    for (code, items) in open_items(&s).await? {
        for st in items {
            let e = &st.entry;
            let r = st.reason.as_ref();
            let key = e.key.to_string();
            let date = e.work_date.to_string();
            let h = hours(e.duration_secs);
            let project = e
                .project
                .as_ref()
                .map(|p| p.name.clone().unwrap_or_else(|| p.id.clone()))
                .unwrap_or_default();
            w.row(&[
                Cell::Text(code.map(|c| c.as_str()).unwrap_or("")),
                Cell::Text(st.status().as_str()),
                Cell::Text(&key),
                Cell::Text(
                    e.worker
                        .name
                        .as_deref()
                        .or(e.worker.email.as_deref())
                        .unwrap_or(&e.worker.tracker_user_id),
                ),
                Cell::Text(&date),
                Cell::Number(&h),
                Cell::Text(&project),
                Cell::Text(r.map(|r| r.message.as_str()).unwrap_or("")),
                Cell::Text(r.and_then(|r| r.vendor_message.as_deref()).unwrap_or("")),
                Cell::Text(r.map(|r| r.fix_hint.as_str()).unwrap_or("")),
            ])
            .map_err(csv_err)?;
        }
    }
    Ok(csv_download(w, "timepost-exceptions.csv")?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formula_cells_are_defused() {
        // The CSV exports' cells go through the one shared rule.
        let cell = crate::csv_out::defuse;
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("Proj;=1+1"), "'Proj;=1+1");
    }
}
