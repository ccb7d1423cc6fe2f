//! Mapping administration: every table's rows, add / change / remove one
//! row with a required reason, a row's history (who, when, why, before →
//! after) and "revert to this version", which applies a change's `before`
//! as a new change. Every change goes through `crate::review` (previewed
//! over every stored entry, applied in one `MappingStore::apply` and
//! audited, or left for a second admin), and one that applied is followed
//! by a re-check of the held entries it can release (`crate::app::recheck`:
//! in the request locally, queued for the sync function on a deployed
//! stack), so they post by themselves.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::auth::{self, Principal};
use super::console::{back_to, PageError};
use super::entry_detail::urlencode;
use super::extract::ApiJson;
use super::html::{csrf_field, esc, page};
use super::mapping_review::{self as review, after_save};
use super::{ApiError, AppState};
use crate::mapping::{csv_io, MappingRow, MappingTable};
use crate::review::{draft, Period, Saved};

fn bad(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::bad_request(message, Some(field.into()))
}

fn required(v: Option<&str>, name: &str) -> Result<String, ApiError> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| bad(format!("`{name}` is required"), name))
}

fn parse_table(t: Option<&str>) -> Result<MappingTable, ApiError> {
    required(t, "table")?
        .parse()
        .map_err(|e: String| bad(e, "table"))
}

/// `name=value;name=value`.
fn parse_attrs(a: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for pair in a.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("`{pair}` is not name=value"), "attrs"))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Re-check the held entries `changes` (applied) can release, where the
/// stack says (`crate::app::recheck`: here locally, queued for the sync
/// function on a deployed stack); a failure is logged (the change stands
/// and the scheduled re-check of every held entry catches up).
pub(super) async fn recheck(s: &AppState, by: &str, changes: &[crate::mapping::MappingChange]) {
    let mode = s.review().recheck;
    match crate::app::recheck::held_for(&s.engine, s.queue.as_ref(), mode, by, changes).await {
        Ok(done) => {
            tracing::info!(outcome = %done.describe(), "held entries re-checked after a mapping change")
        }
        Err(e) => {
            tracing::warn!(error = %e, "re-check of held entries after a mapping change failed")
        }
    }
}

/// The row a form or JSON body describes: its table, key, and the row
/// after the change (None = remove).
pub(super) fn parse_row(
    table: Option<&str>,
    key: Option<&str>,
    target: Option<&str>,
    attrs: Option<&str>,
    remove: bool,
) -> Result<(MappingTable, String, Option<MappingRow>), ApiError> {
    let table = parse_table(table)?;
    let key = required(key, "key")?;
    if remove {
        return Ok((table, key, None));
    }
    let mut row = MappingRow::new(table, &key, &required(target, "target")?);
    row.attrs = parse_attrs(attrs.unwrap_or(""))?;
    csv_io::validate_attrs(&row).map_err(|m| bad(m, "attrs"))?;
    Ok((table, key, Some(row)))
}

/// Set (`remove` false) or remove one row, through review: counted over
/// every stored entry (`period` only limits the list), then applied or left
/// pending for a second admin.
#[allow(clippy::too_many_arguments)] // the row's fields, as given by a form or JSON
async fn set_row(
    s: &AppState,
    who: &Principal,
    table: Option<&str>,
    key: Option<&str>,
    target: Option<&str>,
    attrs: Option<&str>,
    remove: bool,
    reason: Option<&str>,
    period: Period,
) -> Result<Saved, ApiError> {
    let (table, key, after) = parse_row(table, key, target, attrs, remove)?;
    let reason = required(reason, "reason")?;
    let action = if remove {
        "mapping_remove"
    } else {
        "mapping_set"
    };
    let current = s.mappings.snapshot().await?;
    let c = draft(&current, &who.name, table, &key, after, &reason)?;
    let saved = s
        .mapping_review()
        .save(
            &who.actor(),
            None,
            &current,
            c.into_iter().collect(),
            action,
            Some(period),
        )
        .await?;
    Ok(after_save(s, &who.name, saved).await)
}

/// Apply change `seq`'s `before` as a new change (through review).
async fn revert(
    s: &AppState,
    who: &Principal,
    seq: Option<&str>,
    reason: Option<&str>,
    period: Period,
) -> Result<Saved, ApiError> {
    let seq: u64 = required(seq, "seq")?
        .parse()
        .map_err(|_| bad("`seq` must be a change number", "seq"))?;
    let reason = required(reason, "reason")?;
    let old = s
        .mappings
        .history(None, None)
        .await?
        .into_iter()
        .find(|c| c.seq == seq)
        .ok_or_else(|| ApiError::not_found(format!("no mapping change #{seq}")))?;
    let reason = format!("revert of #{seq}: {reason}");
    let current = s.mappings.snapshot().await?;
    if old.before.is_none() && current.get(old.table, &old.key).is_none() {
        return Ok(Saved::Unchanged);
    }
    let c = draft(
        &current, &who.name, old.table, &old.key, old.before, &reason,
    )?;
    let saved = s
        .mapping_review()
        .save(
            &who.actor(),
            None,
            &current,
            c.into_iter().collect(),
            "mapping_revert",
            Some(period),
        )
        .await?;
    Ok(after_save(s, &who.name, saved).await)
}

fn row_attrs(r: &MappingRow) -> String {
    r.attrs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn describe_row(r: Option<&MappingRow>) -> String {
    match r {
        Some(r) if r.attrs.is_empty() => esc(&r.target),
        Some(r) => format!("{} <small>{}</small>", esc(&r.target), esc(&row_attrs(r))),
        None => "<em>none</em>".into(),
    }
}

#[derive(Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
    table: Option<String>,
    key: Option<String>,
}

pub async fn page_get(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let can_edit = auth::may(who.role, "POST", "/console/mappings");
    let m = s.mappings.snapshot().await?;
    let mut body = String::new();
    if let Some(n) = q.notice.as_deref().filter(|n| !n.is_empty()) {
        body.push_str(&format!("<p class=\"notice\">{}</p>", esc(n)));
    }
    body.push_str(&format!(
        "<p>{} mapping rows at version {}. <a href=\"/console/mappings/history\">Full history</a></p>",
        m.len(),
        m.version
    ));
    if can_edit {
        let options: String = MappingTable::ALL
            .iter()
            .map(|t| format!("<option>{t}</option>"))
            .collect();
        body.push_str(&format!(
            "<section class=\"group\"><h2>Add or change a row</h2>\
             <form method=\"post\" action=\"/console/mappings\">{csrf}\
             <select name=\"table\">{options}</select> \
             <input type=\"text\" name=\"key\" placeholder=\"key\" required> \
             <input type=\"text\" name=\"target\" placeholder=\"target\"> \
             <input type=\"text\" name=\"attrs\" placeholder=\"name=value;…\"> \
             <input type=\"text\" name=\"reason\" placeholder=\"reason (required)\" required> \
             <button type=\"submit\">Save</button> \
             <button class=\"secondary\" type=\"submit\" name=\"remove\" value=\"1\">Remove</button><br>\
             List the impact on work dates <input type=\"date\" name=\"from\" aria-label=\"from\"> to \
             <input type=\"date\" name=\"to\" aria-label=\"to\"> (default: the last 30 days) \
             <button class=\"secondary\" type=\"submit\" name=\"preview\" value=\"1\" formnovalidate>Preview impact</button></form>\
             <p>Saving replays every stored entry the change can touch (those using the row's key, with their worker-weeks; every entry for a GL account, payroll item or <code>*</code> row) against the change, whatever its date; a change touching more than {threshold} entr{pl} waits for a second admin. The dates only choose which of them are listed.</p></section>",
            csrf = csrf_field(&who),
            threshold = s.review().threshold,
            pl = if s.review().threshold == 1 { "y" } else { "ies" },
        ));
    }
    body.push_str(&review::pending_section(&s, &who).await?);
    for t in MappingTable::ALL {
        let rows: Vec<_> = m.rows().into_iter().filter(|r| r.table == *t).collect();
        if rows.is_empty() {
            continue;
        }
        body.push_str(&format!(
            "<section class=\"group\" id=\"{t}\"><h2><code>{t}</code> · {} rows</h2>\
             <table><thead><tr><th>Key</th><th>Target</th><th>Attributes</th><th></th></tr></thead><tbody>",
            rows.len()
        ));
        for r in rows {
            body.push_str(&format!(
                "<tr><td><code>{k}</code></td><td>{tg}</td><td>{a}</td>\
                 <td><a href=\"/console/mappings/history?table={t}&amp;key={ku}\">history</a></td></tr>",
                k = esc(&r.key),
                tg = esc(&r.target),
                a = esc(&row_attrs(r)),
                ku = esc(&urlencode(&r.key)),
            ));
        }
        body.push_str("</tbody></table></section>");
    }
    Ok(page("Mappings", Some(&who), &body).into_response())
}

pub async fn history_page(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let table = match q.table.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => Some(parse_table(Some(t))?),
        None => None,
    };
    let key = q.key.as_deref().filter(|k| !k.trim().is_empty());
    let mut list = s.mappings.history(table, key).await?;
    list.reverse();
    let can_revert = auth::may(who.role, "POST", "/console/mappings/revert");
    let previews = if auth::may(who.role, "GET", "/console/mappings/pending/1") {
        review::previews_by_seq(&s).await?
    } else {
        Default::default()
    };
    let mut body = String::new();
    if let Some(n) = q.notice.as_deref().filter(|n| !n.is_empty()) {
        body.push_str(&format!("<p class=\"notice\">{}</p>", esc(n)));
    }
    body.push_str(&format!(
        "<p>{} change(s), newest first. <a href=\"/console/mappings\">All mappings</a></p>\
         <table><thead><tr><th>#</th><th>Row</th><th>Who</th><th>When</th><th>Why</th><th>Before → after</th><th>Preview</th><th></th></tr></thead><tbody>",
        list.len()
    ));
    for c in &list {
        let action = if can_revert {
            format!(
                "<form class=\"inline revert\" method=\"post\" action=\"/console/mappings/revert\">{}\
                 <input type=\"hidden\" name=\"seq\" value=\"{}\">\
                 <input type=\"text\" name=\"reason\" placeholder=\"reason\" required>\
                 <button type=\"submit\">Revert to this version</button></form>",
                csrf_field(&who),
                c.seq
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr data-seq=\"{seq}\"><td>{seq}</td><td><code>{t}</code> <code>{k}</code></td><td>{w}</td><td>{at}</td><td>{why}</td>\
             <td>{b} → {a}</td><td>{preview}</td><td>{action}</td></tr>",
            seq = c.seq,
            t = c.table,
            k = esc(&c.key),
            w = esc(&c.changed_by),
            at = c.changed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            why = esc(&c.reason),
            b = describe_row(c.before.as_ref()),
            a = describe_row(c.after.as_ref()),
            preview = previews
                .get(&c.seq)
                .map(|(id, n)| format!(
                    "<a href=\"/console/mappings/pending/{id}\">up to {n} entr{} affected</a>",
                    if *n == 1 { "y" } else { "ies" }
                ))
                .unwrap_or_default(),
        ));
    }
    body.push_str("</tbody></table>");
    Ok(page("Mapping history", Some(&who), &body).into_response())
}

pub async fn page_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let g = |n: &str| f.get(n).map(String::as_str);
    if g("preview").is_some_and(|v| !v.is_empty()) {
        // "Preview impact" on the edit form: show, save nothing.
        return review::render_preview(&s, &who, &f).await;
    }
    let period = Period::parse(g("from"), g("to"))?;
    let saved = set_row(
        &s,
        &who,
        g("table"),
        g("key"),
        g("target"),
        g("attrs"),
        g("remove").is_some_and(|v| !v.is_empty()),
        g("reason"),
        period,
    )
    .await?;
    Ok(back_to("/console/mappings", &saved.notice()))
}

pub async fn revert_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let g = |n: &str| f.get(n).map(String::as_str);
    let period = Period::parse(g("from"), g("to"))?;
    let saved = revert(&s, &who, g("seq"), g("reason"), period).await?;
    Ok(back_to("/console/mappings/history", &saved.notice()))
}

#[derive(Deserialize)]
pub struct SetBody {
    table: Option<String>,
    key: Option<String>,
    target: Option<String>,
    #[serde(default)]
    attrs: BTreeMap<String, String>,
    #[serde(default)]
    remove: bool,
    reason: Option<String>,
    /// The work dates whose affected entries the preview lists (default
    /// the last 30 days); review counts every stored entry regardless.
    from: Option<String>,
    to: Option<String>,
}

pub async fn api_set(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<ApiJson<SetBody>>,
) -> Result<Response, ApiError> {
    let ApiJson(b) = body.ok_or_else(|| bad("a JSON body is required", "table"))?;
    let period = Period::parse(b.from.as_deref(), b.to.as_deref())?;
    let attrs: Vec<String> = b.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let saved = set_row(
        &s,
        &who,
        b.table.as_deref(),
        b.key.as_deref(),
        b.target.as_deref(),
        Some(&attrs.join(";")),
        b.remove,
        b.reason.as_deref(),
        period,
    )
    .await?;
    Ok(review::answer(saved))
}

#[derive(Deserialize)]
pub struct RevertBody {
    seq: Option<u64>,
    reason: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub async fn api_revert(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<ApiJson<RevertBody>>,
) -> Result<Response, ApiError> {
    let ApiJson(b) = body.ok_or_else(|| bad("a JSON body is required", "seq"))?;
    let period = Period::parse(b.from.as_deref(), b.to.as_deref())?;
    let seq = b.seq.map(|n| n.to_string());
    let saved = revert(&s, &who, seq.as_deref(), b.reason.as_deref(), period).await?;
    Ok(review::answer(saved))
}
