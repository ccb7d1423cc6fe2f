//! Mapping administration: every table's rows, add / change / remove one
//! row with a required reason, a row's history (who, when, why, before →
//! after) and "revert to this version", which applies a change's `before`
//! as a new change. Every change goes through `MappingStore::apply` (one
//! transaction), is audited, and is followed by `Engine::recheck_held` so
//! held entries post by themselves.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal};
use super::console::{audit_record, back_to, PageError};
use super::html::{csrf_field, esc, page};
use super::{ApiError, AppState};
use crate::mapping::{csv_io, MappingChange, MappingRow, MappingTable};

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

/// Apply one change (after = None removes) in one transaction, audit it,
/// and re-check held entries. Returns None when nothing would change.
pub(super) async fn change(
    s: &AppState,
    who: &Principal,
    table: MappingTable,
    key: &str,
    after: Option<MappingRow>,
    reason: &str,
    action: &str,
) -> Result<Option<MappingChange>, ApiError> {
    let current = s.mappings.snapshot().await?;
    let key = crate::mapping::table::normalise_key(key);
    let before = current.get(table, &key).cloned();
    if before.is_none() && after.is_none() {
        return Err(ApiError::not_found(format!("no {table} mapping `{key}`")));
    }
    if before == after {
        return Ok(None);
    }
    let c = MappingChange {
        seq: 0,
        table,
        key: key.clone(),
        before,
        after,
        changed_by: who.name.clone(),
        changed_at: Utc::now(),
        reason: reason.to_string(),
    };
    let applied = s.mappings.apply(vec![c]).await?;
    let c = applied
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::unavailable("the change was not recorded"))?;
    s.audit
        .record(audit_record(
            who,
            action,
            None,
            format!("#{} {}: {reason}", c.seq, c.describe()),
        ))
        .await?;
    if let Err(e) = s.engine.recheck_held(&crate::worker::new_batch_id()).await {
        tracing::warn!(error = %e, "re-check of held entries after a mapping change failed");
    }
    Ok(Some(c))
}

/// Set (`remove` false) or remove one row.
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
) -> Result<Option<MappingChange>, ApiError> {
    let table = parse_table(table)?;
    let key = required(key, "key")?;
    let reason = required(reason, "reason")?;
    if remove {
        return change(s, who, table, &key, None, &reason, "mapping_remove").await;
    }
    let mut row = MappingRow::new(table, &key, &required(target, "target")?);
    row.attrs = parse_attrs(attrs.unwrap_or(""))?;
    csv_io::validate_attrs(&row).map_err(|m| bad(m, "attrs"))?;
    change(s, who, table, &key, Some(row), &reason, "mapping_set").await
}

/// Apply change `seq`'s `before` as a new change.
async fn revert(
    s: &AppState,
    who: &Principal,
    seq: Option<&str>,
    reason: Option<&str>,
) -> Result<Option<MappingChange>, ApiError> {
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
    if old.before.is_none()
        && s.mappings
            .snapshot()
            .await?
            .get(old.table, &old.key)
            .is_none()
    {
        return Ok(None);
    }
    change(
        s,
        who,
        old.table,
        &old.key,
        old.before,
        &reason,
        "mapping_revert",
    )
    .await
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
             <button class=\"secondary\" type=\"submit\" name=\"remove\" value=\"1\">Remove</button></form></section>",
            csrf = csrf_field(&who)
        ));
    }
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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
    let mut body = String::new();
    if let Some(n) = q.notice.as_deref().filter(|n| !n.is_empty()) {
        body.push_str(&format!("<p class=\"notice\">{}</p>", esc(n)));
    }
    body.push_str(&format!(
        "<p>{} change(s), newest first. <a href=\"/console/mappings\">All mappings</a></p>\
         <table><thead><tr><th>#</th><th>Row</th><th>Who</th><th>When</th><th>Why</th><th>Before → after</th><th></th></tr></thead><tbody>",
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
             <td>{b} → {a}</td><td>{action}</td></tr>",
            seq = c.seq,
            t = c.table,
            k = esc(&c.key),
            w = esc(&c.changed_by),
            at = c.changed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            why = esc(&c.reason),
            b = describe_row(c.before.as_ref()),
            a = describe_row(c.after.as_ref()),
        ));
    }
    body.push_str("</tbody></table>");
    Ok(page("Mapping history", Some(&who), &body).into_response())
}

fn notice(c: &Option<MappingChange>) -> String {
    match c {
        Some(c) => format!("Change #{} saved: {}", c.seq, c.describe()),
        None => "Nothing to change: the row is already so.".into(),
    }
}

pub async fn page_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let g = |n: &str| f.get(n).map(String::as_str);
    let c = set_row(
        &s,
        &who,
        g("table"),
        g("key"),
        g("target"),
        g("attrs"),
        g("remove").is_some_and(|v| !v.is_empty()),
        g("reason"),
    )
    .await?;
    Ok(back_to("/console/mappings", &notice(&c)))
}

pub async fn revert_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let c = revert(
        &s,
        &who,
        f.get("seq").map(String::as_str),
        f.get("reason").map(String::as_str),
    )
    .await?;
    Ok(back_to("/console/mappings/history", &notice(&c)))
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
}

fn answer(c: Option<MappingChange>) -> Response {
    Json(json!({ "changed": c.is_some(), "change": c })).into_response()
}

pub async fn api_set(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<Json<SetBody>>,
) -> Result<Response, ApiError> {
    let Json(b) = body.ok_or_else(|| bad("a JSON body is required", "table"))?;
    let attrs: Vec<String> = b.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let c = set_row(
        &s,
        &who,
        b.table.as_deref(),
        b.key.as_deref(),
        b.target.as_deref(),
        Some(&attrs.join(";")),
        b.remove,
        b.reason.as_deref(),
    )
    .await?;
    Ok(answer(c))
}

#[derive(Deserialize)]
pub struct RevertBody {
    seq: Option<u64>,
    reason: Option<String>,
}

pub async fn api_revert(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<Json<RevertBody>>,
) -> Result<Response, ApiError> {
    let Json(b) = body.ok_or_else(|| bad("a JSON body is required", "seq"))?;
    let seq = b.seq.map(|n| n.to_string());
    let c = revert(&s, &who, seq.as_deref(), b.reason.as_deref()).await?;
    Ok(answer(c))
}
