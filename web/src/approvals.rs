//! Approvals: entries awaiting approval grouped by week then employee, bulk
//! approve / reject, and "approve all of this employee's week". Acting goes
//! through `crate::app::approvals` (one `QueueMessage::Approval` per
//! contiguous run of the selected dates per user-week; a selection that
//! would also sweep in an unselected entry of the same user on the same day
//! is refused with 409 rather than widened).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal};
use super::console::{back_to, hours, parse_key, PageError};
use super::extract::ApiJson;
use super::html::{csrf_field, esc, page};
use super::{ApiError, AppState};
use crate::model::{ApprovalStatus, EntryKey};
use crate::ports::WorkerWeek;
use crate::state::{EntryState, Status};

fn parse_decision(d: &str) -> Result<ApprovalStatus, ApiError> {
    match d.trim() {
        "approve" => Ok(ApprovalStatus::Approved),
        "reject" => Ok(ApprovalStatus::Rejected),
        other => Err(ApiError::bad_request(
            format!("`decision` must be `approve` or `reject`, not `{other}`"),
            Some("decision".into()),
        )),
    }
}

/// Approve or reject `keys` (`crate::app::approvals`). Returns how many
/// messages were queued.
pub async fn decide(
    s: &AppState,
    who: &Principal,
    keys: &[EntryKey],
    status: ApprovalStatus,
) -> Result<usize, ApiError> {
    let (entries, queue, audit) = (s.entries.as_ref(), s.queue.as_ref(), s.audit.as_ref());
    Ok(crate::app::approvals::decide(entries, queue, audit, &who.actor(), keys, status).await?)
}

/// The approvals page's query: a notice, and where the listing goes on
/// (`super::listing`).
#[derive(serde::Deserialize)]
pub struct ApprovalsQuery {
    notice: Option<String>,
    after: Option<String>,
}

fn worker(st: &EntryState) -> &str {
    let w = &st.entry.worker;
    w.name
        .as_deref()
        .or(w.email.as_deref())
        .unwrap_or(&w.tracker_user_id)
}

pub async fn page_get(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ApprovalsQuery>,
) -> Result<Response, PageError> {
    use super::listing::{self, PAGE_ROWS};
    let (list, next) = listing::page(
        s.entries.as_ref(),
        Status::AwaitingApproval,
        q.after.as_deref(),
        "after",
        PAGE_ROWS,
    )
    .await?;
    let total = listing::totals(s.entries.as_ref())
        .await?
        .get(&Status::AwaitingApproval)
        .copied()
        .unwrap_or(0);
    let paged = q.after.is_some() || next.is_some();
    let can_act = auth::may(who.role, "POST", "/console/approvals");
    // week → worker-week → entries
    let mut groups: BTreeMap<NaiveDate, BTreeMap<WorkerWeek, Vec<&EntryState>>> = BTreeMap::new();
    for st in &list {
        let ww = WorkerWeek::of(&st.entry);
        groups
            .entry(ww.week_start)
            .or_default()
            .entry(ww)
            .or_default()
            .push(st);
    }
    let mut body = String::new();
    if let Some(n) = q.notice.as_deref().filter(|n| !n.is_empty()) {
        body.push_str(&format!("<p class=\"notice\">{}</p>", esc(n)));
    }
    body.push_str(&format!(
        "<p>{total} entr{} awaiting approval.{}</p>",
        if total == 1 { "y" } else { "ies" },
        if paged {
            format!(
                " This page lists {}, the oldest first ({PAGE_ROWS} at most).",
                list.len()
            )
        } else {
            String::new()
        }
    ));
    if can_act {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/console/approvals\">{}",
            csrf_field(&who)
        ));
    }
    for (week, people) in &groups {
        body.push_str(&format!("<section class=\"group\"><h2>Week of {week}</h2>"));
        for items in people.values() {
            let total = crate::money::sum_i64(items.iter().map(|st| st.entry.duration_secs));
            body.push_str(&format!(
                "<h3>{} · {} h</h3>",
                esc(worker(items[0])),
                hours(total)
            ));
            if can_act {
                body.push_str(&format!(
                    "<p><button type=\"submit\" name=\"all_week\" value=\"{}\">Approve all of this employee's week</button></p>",
                    esc(&items[0].entry.key.to_string())
                ));
            }
            body.push_str(
                "<table><thead><tr><th></th><th>Entry</th><th>Date</th><th>Project</th><th>Hours</th><th>Note</th></tr></thead><tbody>",
            );
            for st in items {
                let e = &st.entry;
                let key = e.key.to_string();
                let project = e
                    .project
                    .as_ref()
                    .map(|p| p.label().to_string())
                    .unwrap_or_else(|| "—".into());
                let check = if can_act {
                    format!(
                        "<input type=\"checkbox\" name=\"key\" value=\"{}\">",
                        esc(&key)
                    )
                } else {
                    String::new()
                };
                body.push_str(&format!(
                    "<tr data-key=\"{k}\"><td>{check}</td><td><code>{k}</code></td><td>{d}</td><td>{p}</td><td class=\"num\">{h}</td><td>{n}</td></tr>",
                    k = esc(&key),
                    d = e.work_date,
                    p = esc(&project),
                    h = hours(e.duration_secs),
                    n = esc(st.note.as_deref().unwrap_or("")),
                ));
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</section>");
    }
    if can_act {
        body.push_str(
            "<p><button type=\"submit\" name=\"decision\" value=\"approve\">Approve selected</button> \
             <button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"reject\">Reject selected</button></p></form>",
        );
    }
    if next.is_some() {
        body.push_str(&format!(
            "<p class=\"paging\"><a class=\"next\" href=\"/console/approvals{}\">Next page</a> · \
             <a href=\"/console/approvals\">First page</a></p>",
            esc(&listing::next_query(&[("after", &next)]))
        ));
    } else if q.after.is_some() {
        body.push_str("<p class=\"paging\"><a href=\"/console/approvals\">First page</a></p>");
    }
    Ok(page("Approvals", Some(&who), &body).into_response())
}

pub async fn page_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let get = |n: &str| {
        form.iter()
            .find(|(k, v)| k == n && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    };
    let (keys, status) = if let Some(any) = get("all_week") {
        let key = parse_key(any)?;
        let st = s
            .entries
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no entry {key}")))?;
        let ww = WorkerWeek::of(&st.entry);
        let keys: Vec<EntryKey> = s
            .entries
            .week(&ww)
            .await?
            .into_iter()
            .filter(|o| o.status() == Status::AwaitingApproval)
            .map(|o| o.entry.key)
            .collect();
        (keys, ApprovalStatus::Approved)
    } else {
        let status = parse_decision(get("decision").ok_or_else(|| {
            ApiError::bad_request("`decision` is required", Some("decision".into()))
        })?)?;
        let keys = form
            .iter()
            .filter(|(k, _)| k == "key")
            .map(|(_, v)| parse_key(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(
                ApiError::bad_request("select at least one entry", Some("key".into())).into(),
            );
        }
        (keys, status)
    };
    let n = decide(&s, &who, &keys, status).await?;
    let verb = if status == ApprovalStatus::Approved {
        "Approval"
    } else {
        "Rejection"
    };
    Ok(back_to(
        "/console/approvals",
        &format!(
            "{verb} of {} entr{} queued ({n} message(s)).",
            keys.len(),
            if keys.len() == 1 { "y" } else { "ies" }
        ),
    ))
}

#[derive(Deserialize)]
pub struct ApiBody {
    entries: Option<Vec<String>>,
    decision: Option<String>,
}

/// `GET /api/approvals`: one page of the entries awaiting approval, oldest
/// first, after `<updated_at>|<key>` of the previous page's last entry.
#[derive(serde::Deserialize)]
pub struct ApiListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

pub async fn api_list(
    State(s): State<AppState>,
    super::extract::ApiQuery(q): super::extract::ApiQuery<ApiListQuery>,
) -> Result<Response, ApiError> {
    let page = super::listing::api_page(
        s.entries.as_ref(),
        Status::AwaitingApproval,
        q.after.as_deref(),
        q.limit,
    )
    .await?;
    Ok(Json(page).into_response())
}

pub async fn api_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<ApiJson<ApiBody>>,
) -> Result<Response, ApiError> {
    let Some(ApiJson(b)) = body else {
        return Err(ApiError::bad_request(
            "a JSON body {\"entries\": [...], \"decision\": \"approve\"|\"reject\"} is required",
            Some("entries".into()),
        ));
    };
    let entries = b
        .entries
        .ok_or_else(|| ApiError::bad_request("`entries` is required", Some("entries".into())))?;
    let status = parse_decision(b.decision.as_deref().ok_or_else(|| {
        ApiError::bad_request("`decision` is required", Some("decision".into()))
    })?)?;
    let keys = entries
        .iter()
        .map(|k| {
            k.parse::<EntryKey>()
                .map_err(|e| ApiError::bad_request(e, Some("entries".into())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n = decide(&s, &who, &keys, status).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "entries": entries, "decision": b.decision, "messages": n })),
    )
        .into_response())
}
