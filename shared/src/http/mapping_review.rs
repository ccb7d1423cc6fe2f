//! Review of console mapping changes: the impact preview (the stored
//! entries of a period replayed against the current and the proposed
//! mappings, `crate::impact`), saved with every change; changes touching
//! more entries than `[console] mapping_approval_threshold` wait as
//! proposals (`PendingChanges`) until a second admin approves (applied in
//! one transaction, then held entries are re-checked) or rejects them.
//! Approving is refused to the proposer (403) and when the mappings moved
//! since the preview (409: the preview no longer says what would happen).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal};
use super::console::{audit_record, back_to, PageError};
use super::extract::{ApiJson, ApiQuery};
use super::html::{csrf_field, esc, page};
use super::mappings::{commit, draft, parse_row, recheck};
use super::{ApiError, AppState};
use crate::impact::{self, ImpactPreview, Outcome};
use crate::mapping::{MappingChange, Mappings};
use crate::pipeline::{self, fmt_minutes, EntryPlan, NoTrace};
use crate::ports::{PendingChanges, ProposalStatus, ProposedChange};
use crate::state::EntryState;

/// How far back a preview looks when no `from` is given.
const DEFAULT_DAYS: i64 = 30;
/// The longest period one preview replays.
const MAX_DAYS: i64 = 366;
/// Rows a preview page lists (the JSON has them all).
const MAX_ROWS: usize = 500;

fn bad(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::bad_request(message, Some(field.into()))
}

/// The work dates a preview replays.
#[derive(Debug, Clone, Copy)]
pub(super) struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// `from` / `to` as given (YYYY-MM-DD); `to` defaults to today, `from`
    /// to 30 days before `to`. A bad date is a 400 naming the field.
    pub(super) fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, ApiError> {
        let date = |v: Option<&str>, name: &str| -> Result<Option<NaiveDate>, ApiError> {
            match v.map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| {
                    bad(
                        format!("`{name}` must be a date as YYYY-MM-DD, not `{v}`"),
                        name,
                    )
                }),
            }
        };
        let to_given = date(to, "to")?;
        let from_given = date(from, "from")?;
        let to = to_given.unwrap_or_else(|| Utc::now().date_naive());
        let from = from_given.unwrap_or(to - Duration::days(DEFAULT_DAYS));
        if from > to {
            return Err(bad(format!("`from` ({from}) is after `to` ({to})"), "from"));
        }
        if (to - from).num_days() > MAX_DAYS {
            return Err(bad(
                format!("a preview covers at most {MAX_DAYS} days; narrow `from`"),
                "from",
            ));
        }
        Ok(Self { from, to })
    }
}

/// The impact of `c` on the entries of `period`: decided exactly as the
/// engine decides (re-evaluation plus the holding-account override).
pub(super) async fn preview_of(
    s: &AppState,
    current: &Mappings,
    c: &MappingChange,
    period: Period,
) -> Result<ImpactPreview, ApiError> {
    let mut proposed = current.clone();
    crate::mapping::change::apply(&mut proposed, std::slice::from_ref(c));
    let entries = s.entries.all().await?;
    let engine = s.engine.clone();
    let decide = move |st: &EntryState, plan: Option<&EntryPlan>, m: &Mappings| {
        let d = pipeline::reevaluate(&st.entry, plan, m, &engine.rules, Some(st), &mut NoTrace);
        engine.holding_override(st, plan, m, d)
    };
    Ok(impact::preview(
        &entries,
        period.from,
        period.to,
        current,
        &proposed,
        &s.engine.rules,
        &decide,
    ))
}

fn needs_approval(s: &AppState, p: &ImpactPreview) -> bool {
    let t = s.review().threshold;
    t == 0 || p.changed_count() as u64 > t
}

/// What saving a change did.
pub(super) enum Saved {
    /// The row is already so.
    Unchanged,
    /// Applied at once (the proposal records its preview, when kept).
    Applied {
        change: Box<MappingChange>,
        proposal: Option<Box<ProposedChange>>,
    },
    /// Waiting for a second admin.
    Pending(Box<ProposedChange>),
}

impl Saved {
    pub(super) fn notice(&self) -> String {
        match self {
            Saved::Unchanged => "Nothing to change: the row is already so.".into(),
            Saved::Applied { change, proposal } => {
                let n = proposal
                    .as_ref()
                    .map(|p| {
                        format!(
                            " The preview showed {} entr{} posting differently.",
                            p.preview.changed_count(),
                            plural(p.preview.changed_count())
                        )
                    })
                    .unwrap_or_default();
                format!("Change #{} saved: {}.{n}", change.seq, change.describe())
            }
            Saved::Pending(p) => format!(
                "Change {} touches {} entr{}, more than allowed without review: it waits as proposal #{} for a second admin's approval.",
                p.change.describe(),
                p.preview.changed_count(),
                plural(p.preview.changed_count()),
                p.id
            ),
        }
    }

    pub(super) fn answer(self) -> Response {
        match self {
            Saved::Unchanged => Json(json!({ "changed": false, "change": null })).into_response(),
            Saved::Applied { change, proposal } => Json(json!({
                "changed": true,
                "change": change,
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

/// Save drafted change `c` (None: nothing to change) after previewing it
/// over `period`: applied at once when few enough entries change, else
/// stored as a proposal for a second admin.
pub(super) async fn save(
    s: &AppState,
    who: &Principal,
    current: &Mappings,
    c: Option<MappingChange>,
    action: &str,
    period: Period,
) -> Result<Saved, ApiError> {
    let Some(c) = c else {
        return Ok(Saved::Unchanged);
    };
    let preview = preview_of(s, current, &c, period).await?;
    let needs = needs_approval(s, &preview);
    let n = preview.changed_count();
    let mut proposal = ProposedChange {
        id: 0,
        change: c.clone(),
        preview,
        status: ProposalStatus::Pending,
        needs_approval: needs,
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        applied_seq: None,
    };
    let Some(pending) = s.review().pending.as_ref() else {
        if needs {
            return Err(ApiError::unavailable(format!(
                "this change touches {n} entries, so it needs a second admin's approval, but this deployment keeps no pending mapping changes; nothing was changed"
            )));
        }
        let change = commit(
            s,
            who,
            c,
            action,
            &format!(" (preview: {n} entries change)"),
        )
        .await?;
        return Ok(Saved::Applied {
            change: Box::new(change),
            proposal: None,
        });
    };
    if needs {
        let p = pending.propose(proposal).await?;
        s.audit
            .record(audit_record(
                who,
                "mapping_propose",
                None,
                format!(
                    "proposal #{} {}: touches {n} entries ({} to {}), waits for a second admin: {}",
                    p.id,
                    p.change.describe(),
                    p.preview.from,
                    p.preview.to,
                    p.change.reason
                ),
            ))
            .await?;
        return Ok(Saved::Pending(Box::new(p)));
    }
    let change = commit(
        s,
        who,
        c,
        action,
        &format!(" (preview: {n} entries change)"),
    )
    .await?;
    proposal.status = ProposalStatus::Applied;
    proposal.applied_seq = Some(change.seq);
    proposal.decided_at = Some(change.changed_at);
    let proposal = match pending.propose(proposal).await {
        Ok(p) => Some(Box::new(p)),
        Err(e) => {
            // The change stands; only the record of its preview is lost.
            tracing::warn!(error = %e, seq = change.seq, "could not keep the preview of a mapping change");
            None
        }
    };
    Ok(Saved::Applied {
        change: Box::new(change),
        proposal,
    })
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.trim()
        .parse()
        .map_err(|_| bad(format!("`{id}` is not a proposal number"), "id"))
}

async fn pending_proposal(s: &AppState, id: u64) -> Result<ProposedChange, ApiError> {
    let p = store(s)?
        .proposal(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no mapping change proposal #{id}")))?;
    if p.status != ProposalStatus::Pending {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "mapping change proposal #{id} is already {}",
                p.status.as_str()
            ),
        ));
    }
    Ok(p)
}

/// Approve proposal `id`: a second admin, on the mappings it was previewed
/// against; applied in one transaction, audited, then held entries are
/// re-checked as after any save.
async fn approve(s: &AppState, who: &Principal, id: u64) -> Result<MappingChange, ApiError> {
    let store = store(s)?;
    let mut p = pending_proposal(s, id).await?;
    let proposer = p.change.changed_by.clone();
    if proposer == who.name {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("You proposed mapping change #{id}; another admin must approve it."),
        ));
    }
    let now_version = s.mappings.version().await?;
    if now_version != p.preview.mapping_version {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "The mappings changed since proposal #{id} was previewed (version {} then, {now_version} now), so its preview may no longer be right. Preview the change again and propose it anew; reject this one.",
                p.preview.mapping_version
            ),
        ));
    }
    // Settling first makes two concurrent approvals apply it once.
    p.status = ProposalStatus::Applied;
    p.decided_by = Some(who.name.clone());
    p.decided_at = Some(Utc::now());
    store.settle(&p, ProposalStatus::Pending).await?;
    let mut c = p.change.clone();
    c.changed_at = Utc::now();
    c.reason = format!("{} (approved by {}, proposal #{id})", c.reason, who.name);
    let c = match s.mappings.apply(vec![c]).await {
        Ok(applied) => applied.into_iter().next(),
        Err(e) => {
            p.status = ProposalStatus::Pending;
            p.decided_by = None;
            p.decided_at = None;
            if let Err(e2) = store.settle(&p, ProposalStatus::Applied).await {
                tracing::error!(error = %e2, id, "could not return a failed approval to pending");
            }
            return Err(e.into());
        }
    }
    .ok_or_else(|| ApiError::unavailable("the change was not recorded"))?;
    p.applied_seq = Some(c.seq);
    if let Err(e) = store.settle(&p, ProposalStatus::Applied).await {
        tracing::warn!(error = %e, id, seq = c.seq, "could not record the applied change on its proposal");
    }
    s.audit
        .record(audit_record(
            who,
            "mapping_approve",
            None,
            format!(
                "proposal #{id} by {proposer} applied as #{} {}: {}",
                c.seq,
                c.describe(),
                p.change.reason
            ),
        ))
        .await?;
    recheck(s).await;
    Ok(c)
}

/// Reject proposal `id` with a reason; the mappings stay as they are.
async fn reject(
    s: &AppState,
    who: &Principal,
    id: u64,
    reason: Option<&str>,
) -> Result<ProposedChange, ApiError> {
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad("`reason` is required", "reason"))?
        .to_string();
    let store = store(s)?;
    let mut p = pending_proposal(s, id).await?;
    p.status = ProposalStatus::Rejected;
    p.decided_by = Some(who.name.clone());
    p.decided_at = Some(Utc::now());
    p.decision_reason = Some(reason.clone());
    store.settle(&p, ProposalStatus::Pending).await?;
    s.audit
        .record(audit_record(
            who,
            "mapping_reject",
            None,
            format!(
                "proposal #{id} by {} ({}) rejected: {reason}",
                p.change.changed_by,
                p.change.describe()
            ),
        ))
        .await?;
    Ok(p)
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

/// The preview as HTML: counts, then every entry that would change.
pub(super) fn preview_html(p: &ImpactPreview) -> String {
    let mut h = format!(
        "<p class=\"preview-summary\">Replayed <strong>{checked}</strong> entr{pc} dated {from} to {to} against mapping version {v}: \
         <strong data-changed=\"{n}\">{n}</strong> entr{pn} would post differently, {m} of them moving between held / exception / postable.</p>",
        checked = p.entries_checked,
        pc = plural(p.entries_checked),
        from = p.from,
        to = p.to,
        v = p.mapping_version,
        n = p.changed_count(),
        pn = plural(p.changed_count()),
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
    h.push_str("<table><thead><tr><th>#</th><th>Change</th><th>Proposed by</th><th>When</th><th>Why</th><th>Entries affected</th><th></th></tr></thead><tbody>");
    for p in &list {
        h.push_str(&format!(
            "<tr data-proposal=\"{id}\"><td>{id}</td><td>{c}</td><td>{w}</td><td>{at}</td><td>{why}</td><td>{n}</td>\
             <td><a href=\"/console/mappings/pending/{id}\">preview and decide</a></td></tr>",
            id = p.id,
            c = esc(&p.change.describe()),
            w = esc(&p.change.changed_by),
            at = p.change.changed_at.format("%Y-%m-%d %H:%M UTC"),
            why = esc(&p.change.reason),
            n = if p.preview.mapping_version == version {
                p.preview.changed_count().to_string()
            } else {
                format!(
                    "{} <em class=\"stale\">(mappings changed since: preview again)</em>",
                    p.preview.changed_count()
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
        .filter_map(|p| {
            p.applied_seq
                .map(|seq| (seq, (p.id, p.preview.changed_count())))
        })
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
    let Some(c) = draft(&current, who, table, &key, after, g("reason").unwrap_or(""))? else {
        return Ok((period, None));
    };
    let p = preview_of(s, &current, &c, period).await?;
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
        let needs = needs_approval(&s, &p);
        let what = if needs {
            format!(
                "This change touches more than {} entr{}: saving it stores it with this preview for a second admin's approval.",
                s.review().threshold,
                plural(s.review().threshold as usize)
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
            "entries_changed": p.changed_count(),
            "entries_moved": p.moved_count(),
            "needs_approval": needs_approval(&s, &p),
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
        c = esc(&p.change.describe()),
        w = esc(&p.change.changed_by),
        at = p.change.changed_at.format("%Y-%m-%d %H:%M UTC"),
        why = esc(&p.change.reason),
        st = p.status.as_str(),
        words = status_words(&p),
    );
    if p.status == ProposalStatus::Pending
        && auth::may(who.role, "POST", "/console/mappings/pending/1/approve")
    {
        let own = p.change.changed_by == who.name;
        let approve = if own {
            "<p>You proposed this change: another admin must approve it.</p>".to_string()
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
    Ok(back_to(
        "/console/mappings",
        &format!(
            "Proposal #{id} approved and applied as change #{}: {}",
            c.seq,
            c.describe()
        ),
    ))
}

pub async fn reject_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let p = reject(&s, &who, id, f.get("reason").map(String::as_str)).await?;
    Ok(back_to(
        "/console/mappings",
        &format!(
            "Proposal #{id} rejected: {} stays unchanged.",
            p.change.describe()
        ),
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
    Ok(Json(json!({ "approved": id, "change": c })).into_response())
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
    let p = reject(&s, &who, id, reason.as_deref()).await?;
    Ok(Json(json!({ "rejected": id, "proposal": p })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn periods_parse_and_bad_ones_name_their_field() {
        let p = Period::parse(Some("2026-03-01"), Some("2026-03-31")).expect("period");
        assert_eq!((p.from, p.to), (d("2026-03-01"), d("2026-03-31")));
        let p = Period::parse(None, Some("2026-03-31")).expect("period");
        assert_eq!(p.from, d("2026-03-01"), "30 days back by default");
        let p = Period::parse(Some(" "), Some("2026-03-31")).expect("blank is absent");
        assert_eq!(p.from, d("2026-03-01"));
        for (from, to, field) in [
            (Some("2026-02-30"), Some("2026-03-31"), "from"),
            (Some("2026-03-01"), Some("31/03/2026"), "to"),
            (Some("2026-04-01"), Some("2026-03-31"), "from"),
            (Some("2024-01-01"), Some("2026-03-31"), "from"),
        ] {
            let e = Period::parse(from, to).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(
                e.field.as_deref(),
                Some(field),
                "{from:?} {to:?}: {}",
                e.message
            );
        }
    }
}
