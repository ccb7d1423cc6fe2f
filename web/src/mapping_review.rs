//! The mapping change review pages and JSON API: the impact preview (every
//! stored entry replayed against the current and the proposed mappings,
//! those of a period listed), the pending proposals, approve and reject.
//! The workflow itself (what counts, who may approve, applying) is
//! `crate::review`, shared with the inline fix and the CLI; this module
//! renders it and re-checks held entries after a change applies.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal};
use super::console::{back_to, redrive, PageError};
use super::extract::{ApiJson, ApiQuery};
use super::html::{csrf_field, esc, page};
use super::mappings::{parse_row, recheck};
use super::{ApiError, AppState};
use crate::impact::{self, ImpactPreview, Outcome};
use crate::mapping::MappingChange;
use crate::pipeline::fmt_minutes;
use crate::ports::{PendingChanges, ProposalStatus, ProposedChange};
use crate::review::{draft, Period, Saved};

/// Rows a preview page lists (the JSON has them all).
const MAX_ROWS: usize = 500;

impl From<crate::review::ReviewError> for PageError {
    fn from(e: crate::review::ReviewError) -> Self {
        PageError(e.into())
    }
}

fn bad(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::bad_request(message, Some(field.into()))
}

/// The answer of the JSON API to a save: 200 with the change (and its kept
/// preview), or 202 with the proposal waiting for a second admin.
pub(super) fn answer(saved: Saved) -> Response {
    match saved {
        Saved::Unchanged => Json(json!({ "changed": false, "change": null })).into_response(),
        Saved::Applied { changes, proposal } => Json(json!({
            "changed": true,
            "change": changes.first(),
            "proposal": proposal.as_ref().map(|p| p.id),
            "preview": proposal.map(|p| p.preview),
        }))
        .into_response(),
        Saved::Pending(p) => (
            StatusCode::ACCEPTED,
            Json(json!({ "changed": false, "pending": p })),
        )
            .into_response(),
    }
}

/// Re-check held entries when a save applied; pass it on.
pub(super) async fn after_save(s: &AppState, by: &str, saved: Saved) -> Saved {
    if let Saved::Applied { changes, .. } = &saved {
        recheck(s, by, changes).await;
    }
    saved
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

fn store(s: &AppState) -> Result<&dyn PendingChanges, ApiError> {
    s.review()
        .pending
        .as_deref()
        .ok_or_else(|| ApiError::unavailable("this deployment keeps no pending mapping changes"))
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.trim()
        .parse()
        .map_err(|_| bad(format!("`{id}` is not a proposal number"), "id"))
}

/// Approve proposal `id` (`crate::review`: a named admin other than the
/// proposer), then re-check held entries and redrive the open entries
/// still missing a row it added (exceptions, e.g. after an inline fix that
/// needed review).
async fn approve(s: &AppState, who: &Principal, id: u64) -> Result<Vec<MappingChange>, ApiError> {
    let review = s.mapping_review();
    let done = review.approve(&who.actor(), id).await?;
    recheck(s, &who.name, &done.changes).await;
    let added: Vec<_> = done
        .changes
        .iter()
        .filter(|c| c.before.is_none() && c.after.is_some())
        .map(|c| (c.table, c.key.clone()))
        .collect();
    let keys = review.open_entries_missing_any(&added).await?;
    if !keys.is_empty() {
        redrive(s, who, &keys, &format!("after approving proposal #{id}")).await?;
    }
    Ok(done.changes)
}

// ---- rendering ----

fn line_html(l: &impact::LineView) -> String {
    let mut parts = vec![
        format!("{} {}", esc(&l.tier), fmt_minutes(l.minutes)),
        format!("account {}", esc(&l.account)),
        esc(&l.party),
    ];
    let opt = |name: &str, v: &Option<String>| v.as_ref().map(|v| format!("{name} {}", esc(v)));
    parts.extend(
        [
            opt("customer", &l.customer),
            opt("item", &l.service_item),
            opt("class", &l.class),
            opt("department", &l.department),
            opt("payroll item", &l.payroll_item),
        ]
        .into_iter()
        .flatten(),
    );
    format!("<div class=\"line\">{}</div>", parts.join(" · "))
}

fn outcome_html(o: &Outcome) -> String {
    match o {
        Outcome::Postable { lines } if lines.is_empty() => "<em>posts nothing</em>".into(),
        Outcome::Postable { lines } => lines.iter().map(line_html).collect(),
        Outcome::Held { code, message } => {
            format!(
                "<strong>held</strong> <code>{}</code>: {}",
                esc(code),
                esc(message)
            )
        }
        Outcome::Exception { code, message } => format!(
            "<strong>exception</strong> <code>{}</code>: {}",
            esc(code),
            esc(message)
        ),
        Outcome::AwaitingApproval { why } => {
            format!("<strong>awaiting approval</strong>: {}", esc(why))
        }
        Outcome::NotPosted { why } => format!("<strong>not posted</strong>: {}", esc(why)),
    }
}

/// The preview as HTML: counts, then every listed entry that would change.
pub(super) fn preview_html(p: &ImpactPreview) -> String {
    let mut h = format!(
        "<p class=\"preview-summary\">Against mapping version {v}, this change can affect up to <strong data-reach=\"{r}\">{r}</strong> stored entr{pr} \
         of any date and state: those that use the rows it changes (every entry, for a GL account, payroll item or <code>*</code> row). \
         That number decides whether a second admin must approve it. \
         Of the <strong>{checked}</strong> entr{pc} dated {from} to {to} that the change can touch (replayed with their worker-weeks), \
         <strong data-changed=\"{n}\">{n}</strong> would post differently, {m} of them moving between held / exception / postable.</p>",
        r = p.in_reach(),
        pr = plural(p.in_reach()),
        checked = p.entries_checked,
        pc = plural(p.entries_checked),
        from = p.from,
        to = p.to,
        v = p.mapping_version,
        n = p.changed_count(),
        m = p.moved_count(),
    );
    if p.changed.is_empty() {
        return h;
    }
    h.push_str(
        "<table class=\"preview\"><thead><tr><th>Date</th><th>Entry</th><th>Worker</th><th>Project</th>\
         <th>What differs</th><th>Before</th><th>After</th></tr></thead><tbody>",
    );
    for c in p.changed.iter().take(MAX_ROWS) {
        h.push_str(&format!(
            "<tr data-key=\"{k}\"><td>{d}</td><td><code>{k}</code></td><td>{w}</td><td>{pr}</td><td>{diff}</td><td>{b}</td><td>{a}</td></tr>",
            k = esc(&c.key),
            d = c.work_date,
            w = esc(&c.worker),
            pr = esc(c.project.as_deref().unwrap_or("")),
            diff = esc(&c.differs.join(", ")),
            b = outcome_html(&c.before),
            a = outcome_html(&c.after),
        ));
    }
    h.push_str("</tbody></table>");
    if p.changed.len() > MAX_ROWS {
        h.push_str(&format!(
            "<p>The first {MAX_ROWS} of {} are listed; <code>GET /api/mappings/preview</code> returns them all.</p>",
            p.changed.len()
        ));
    }
    h
}

fn status_words(p: &ProposedChange) -> String {
    match p.status {
        ProposalStatus::Pending => "waiting for a second admin".into(),
        ProposalStatus::Applied => match (&p.decided_by, p.applied_seq) {
            (Some(by), Some(seq)) => {
                format!("approved by {} and applied as change #{seq}", esc(by))
            }
            (Some(by), None) => format!("approved by {}", esc(by)),
            (None, Some(seq)) => format!("applied at once as change #{seq}"),
            (None, None) => "applied".into(),
        },
        ProposalStatus::Rejected => format!(
            "rejected by {}: {}",
            esc(p.decided_by.as_deref().unwrap_or("?")),
            esc(p.decision_reason.as_deref().unwrap_or(""))
        ),
    }
}

/// The pending proposals as a section of the mappings page (for the roles
/// that may read them).
pub(super) async fn pending_section(s: &AppState, who: &Principal) -> Result<String, ApiError> {
    if !auth::may(who.role, "GET", "/console/mappings/pending/1") {
        return Ok(String::new());
    }
    let Some(store) = s.review().pending.as_ref() else {
        return Ok(String::new());
    };
    let list = store.proposals(Some(ProposalStatus::Pending)).await?;
    let version = s.mappings.version().await?;
    let mut h = format!(
        "<section class=\"group\" id=\"pending\"><h2>Changes waiting for a second admin · {}</h2>",
        list.len()
    );
    if list.is_empty() {
        h.push_str("<p>None.</p></section>");
        return Ok(h);
    }
    h.push_str("<table><thead><tr><th>#</th><th>Change</th><th>Proposed by</th><th>When</th><th>Why</th><th>Entries it can affect</th><th></th></tr></thead><tbody>");
    for p in &list {
        h.push_str(&format!(
            "<tr data-proposal=\"{id}\"><td>{id}</td><td>{c}</td><td>{w}</td><td>{at}</td><td>{why}</td><td>{n}</td>\
             <td><a href=\"/console/mappings/pending/{id}\">preview and decide</a></td></tr>",
            id = p.id,
            c = esc(&p.describe()),
            w = esc(&p.change.changed_by),
            at = p.change.changed_at.format("%Y-%m-%d %H:%M UTC"),
            why = esc(&p.change.reason),
            n = if p.preview.mapping_version == version {
                p.preview.in_reach().to_string()
            } else {
                format!(
                    "{} <em class=\"stale\">(mappings changed since: preview again)</em>",
                    p.preview.in_reach()
                )
            },
        ));
    }
    h.push_str("</tbody></table></section>");
    Ok(h)
}

/// Change seq → (proposal id, entries its preview showed changing), for
/// the history page.
pub(super) async fn previews_by_seq(s: &AppState) -> Result<HashMap<u64, (u64, usize)>, ApiError> {
    let Some(store) = s.review().pending.as_ref() else {
        return Ok(HashMap::new());
    };
    Ok(store
        .proposals(Some(ProposalStatus::Applied))
        .await?
        .into_iter()
        .filter_map(|p| p.applied_seq.map(|seq| (seq, (p.id, p.preview.in_reach()))))
        .collect())
}

// ---- handlers ----

/// `table`, `key`, `target`, `attrs`, `remove`, `from`, `to`.
type Fields = BTreeMap<String, String>;

async fn preview_request(
    s: &AppState,
    who: &Principal,
    f: &Fields,
) -> Result<(Period, Option<(MappingChange, ImpactPreview)>), ApiError> {
    let g = |n: &str| f.get(n).map(String::as_str);
    let (table, key, after) = parse_row(
        g("table"),
        g("key"),
        g("target"),
        g("attrs"),
        g("remove").is_some_and(|v| !v.is_empty() && v != "false"),
    )?;
    let period = Period::parse(g("from"), g("to"))?;
    let current = s.mappings.snapshot().await?;
    let Some(c) = draft(
        &current,
        &who.name,
        table,
        &key,
        after,
        g("reason").unwrap_or(""),
    )?
    else {
        return Ok((period, None));
    };
    let p = s
        .mapping_review()
        .preview(&current, std::slice::from_ref(&c), Some(period))
        .await?;
    Ok((period, Some((c, p))))
}

/// `GET /console/mappings/preview`: what a change would do, and (admins)
/// the form that saves it with this preview.
pub async fn preview_page(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(f): Query<Fields>,
) -> Result<Response, PageError> {
    render_preview(&s, &who, &f).await
}

/// The preview page for the change `f` describes (also what the edit
/// form's "Preview impact" button shows).
pub(super) async fn render_preview(
    s: &AppState,
    who: &Principal,
    f: &Fields,
) -> Result<Response, PageError> {
    let (s, who, f) = (s.clone(), who.clone(), f.clone());
    let (period, found) = preview_request(&s, &who, &f).await?;
    let mut body = String::from("<p><a href=\"/console/mappings\">All mappings</a></p>");
    let Some((c, p)) = found else {
        body.push_str("<p class=\"notice\">Nothing would change: the row is already so.</p>");
        return Ok(page("Mapping change preview", Some(&who), &body).into_response());
    };
    body.push_str(&format!("<h2>{}</h2>", esc(&c.describe())));
    body.push_str(&format!(
        "<form method=\"get\" action=\"/console/mappings/preview\">{hidden}\
         <label>From <input type=\"date\" name=\"from\" value=\"{from}\"></label> \
         <label>To <input type=\"date\" name=\"to\" value=\"{to}\"></label> \
         <button class=\"secondary\" type=\"submit\">Preview this period</button></form>",
        hidden = hidden_fields(&f, &["table", "key", "target", "attrs", "remove"]),
        from = period.from,
        to = period.to,
    ));
    body.push_str(&preview_html(&p));
    if auth::may(who.role, "POST", "/console/mappings") {
        let needs = s.mapping_review().needs_review(&p);
        let what = if needs {
            format!(
                "This change can affect up to {} stored entr{}, more than {}: saving it stores it with this preview for a second admin's approval.",
                p.in_reach(),
                plural(p.in_reach()),
                s.review().threshold,
            )
        } else {
            "Saving applies it at once and keeps this preview with it.".to_string()
        };
        body.push_str(&format!(
            "<section class=\"group\"><p>{what}</p><form method=\"post\" action=\"/console/mappings\">{csrf}{hidden}\
             <input type=\"hidden\" name=\"from\" value=\"{from}\"><input type=\"hidden\" name=\"to\" value=\"{to}\">\
             <input type=\"text\" name=\"reason\" placeholder=\"reason (required)\" value=\"{reason}\" required> \
             <button type=\"submit\">{label}</button></form></section>",
            csrf = csrf_field(&who),
            hidden = hidden_fields(&f, &["table", "key", "target", "attrs", "remove"]),
            from = period.from,
            to = period.to,
            reason = esc(f.get("reason").map(String::as_str).unwrap_or("")),
            label = if needs { "Propose for approval" } else { "Save" },
        ));
    }
    Ok(page("Mapping change preview", Some(&who), &body).into_response())
}

fn hidden_fields(f: &Fields, names: &[&str]) -> String {
    names
        .iter()
        .filter_map(|n| {
            f.get(*n)
                .map(|v| format!("<input type=\"hidden\" name=\"{n}\" value=\"{}\">", esc(v)))
        })
        .collect()
}

/// `GET /api/mappings/preview`: the preview as JSON.
pub async fn api_preview(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiQuery(f): ApiQuery<Fields>,
) -> Result<Response, ApiError> {
    let (period, found) = preview_request(&s, &who, &f).await?;
    Ok(Json(match found {
        None => json!({ "changed": false, "from": period.from, "to": period.to }),
        Some((c, p)) => json!({
            "changed": true,
            "change": c,
            "entries_in_reach": p.in_reach(),
            "entries_changed": p.changed_count(),
            "entries_moved": p.moved_count(),
            "needs_approval": s.mapping_review().needs_review(&p),
            "threshold": s.review().threshold,
            "preview": p,
        }),
    })
    .into_response())
}

/// `GET /console/mappings/pending/{id}`: one proposal with its preview,
/// and (admins, while pending) approve / reject.
pub async fn proposal_page(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let p = store(&s)?
        .proposal(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no mapping change proposal #{id}")))?;
    let mut body = format!(
        "<p><a href=\"/console/mappings\">All mappings</a> · <a href=\"/console/mappings/history\">History</a></p>\
         <h2>#{id}: {c}</h2><p>Proposed by {w} on {at}: {why}</p><p class=\"status\" data-status=\"{st}\">Status: {words}.</p>",
        c = esc(&p.describe()),
        w = esc(&p.change.changed_by),
        at = p.change.changed_at.format("%Y-%m-%d %H:%M UTC"),
        why = esc(&p.change.reason),
        st = p.status.as_str(),
        words = status_words(&p),
    );
    if p.status == ProposalStatus::Pending
        && auth::may(who.role, "POST", "/console/mappings/pending/1/approve")
    {
        let actor = who.actor();
        let approve = if actor.is(&p.change.changed_by) {
            "<p>You proposed this change: another admin must approve it.</p>".to_string()
        } else if !actor.is_named() {
            "<p>The shared admin token names nobody, so it cannot approve: sign in with your own token to approve. It may reject.</p>".to_string()
        } else {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/console/mappings/pending/{id}/approve\">{}\
                 <button type=\"submit\">Approve and apply</button></form> ",
                csrf_field(&who)
            )
        };
        body.push_str(&format!(
            "<section class=\"group\">{approve}<form class=\"inline\" method=\"post\" action=\"/console/mappings/pending/{id}/reject\">{}\
             <input type=\"text\" name=\"reason\" placeholder=\"reason (required)\" required> \
             <button class=\"secondary\" type=\"submit\">Reject</button></form></section>",
            csrf_field(&who)
        ));
    }
    body.push_str(&preview_html(&p.preview));
    Ok(page("Mapping change", Some(&who), &body).into_response())
}

pub async fn approve_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let c = approve(&s, &who, id).await?;
    let what = match c.as_slice() {
        [c] => format!("change #{}: {}", c.seq, c.describe()),
        all => format!(
            "{} changes from #{}",
            all.len(),
            all.first().map(|c| c.seq).unwrap_or_default()
        ),
    };
    Ok(back_to(
        "/console/mappings",
        &format!("Proposal #{id} approved and applied as {what}"),
    ))
}

pub async fn reject_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let p = s
        .mapping_review()
        .reject(&who.actor(), id, f.get("reason").map(String::as_str))
        .await?;
    Ok(back_to(
        "/console/mappings",
        &format!("Proposal #{id} rejected: {} stays unchanged.", p.describe()),
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

/// `GET /api/mappings/pending`: proposals (pending unless `status` says
/// `applied`, `rejected` or `all`), newest first.
pub async fn api_list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref().map(str::trim) {
        None | Some("") | Some("pending") => Some(ProposalStatus::Pending),
        Some("all") => None,
        Some(other) => Some(
            ProposalStatus::ALL
                .iter()
                .copied()
                .find(|st| st.as_str() == other)
                .ok_or_else(|| {
                    bad(
                        format!("unknown status `{other}` (pending, applied, rejected or all)"),
                        "status",
                    )
                })?,
        ),
    };
    Ok(Json(store(&s)?.proposals(status).await?).into_response())
}

pub async fn api_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let p = store(&s)?
        .proposal(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no mapping change proposal #{id}")))?;
    Ok(Json(p).into_response())
}

pub async fn api_approve(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let c = approve(&s, &who, id).await?;
    Ok(Json(json!({ "approved": id, "change": c.first(), "changes": c })).into_response())
}

#[derive(Deserialize)]
pub struct RejectBody {
    reason: Option<String>,
}

pub async fn api_reject(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<ApiJson<RejectBody>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let reason = body.and_then(|ApiJson(b)| b.reason);
    let p = s
        .mapping_review()
        .reject(&who.actor(), id, reason.as_deref())
        .await?;
    Ok(Json(json!({ "rejected": id, "proposal": p })).into_response())
}
