//! The Archives page and `/api/archives` (auditor, finance, admin): every
//! stored period snapshot with its counts, manifest hash, revision,
//! storage class, retention and last verification; a Verify action (the
//! checks `timepost archive verify` makes, audited with the signed-in
//! user); the snapshot's files to download, byte for byte as stored (so
//! their SHA-256 can be checked against the manifest), and the list as
//! CSV. Reading only: nothing here writes to the archive.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;

use super::auth::{self, Principal};
use super::console::{back_to, csv_download, PageError};
use super::extract::ApiJson;
use super::html::{csrf_field, esc, page};
use super::{ApiError, AppState};
use crate::archive::status::{self, ArchiveRow, Temperature};
use crate::archive::verify::VerifyReport;
use crate::archive::{ArchiveError, Period};

/// What the Archives page works on: the snapshot archive (the local
/// `archive_dir`, or `archive/` in the stack's archive bucket) and the
/// retention rules (when a snapshot expires).
pub struct Archives {
    pub archive: std::sync::Arc<dyn crate::ports::Archive>,
    pub retention: crate::archive::RetentionConfig,
}

fn offered(s: &AppState) -> Result<&Archives, ApiError> {
    s.archives().ok_or_else(|| {
        ApiError::unavailable("archives are not offered by this server; use `timepost archive`")
    })
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Input(m) => Self::bad_request(m, Some("period".into())),
            ArchiveError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "archive read failed");
                Self::unavailable(other.to_string())
            }
        }
    }
}

/// A period label as given (`2026-03`, `2026-W10`), checked: 400 naming
/// `period` when it is not one.
fn parse_period(text: &str) -> Result<String, ApiError> {
    let p = Period::parse(text.trim())
        .map_err(|e| ApiError::bad_request(e.to_string(), Some("period".into())))?;
    Ok(p.label())
}

async fn rows(s: &AppState, a: &Archives) -> Result<Vec<ArchiveRow>, ApiError> {
    Ok(status::rows(
        a.archive.as_ref(),
        s.audit.as_ref(),
        &a.retention,
        chrono::Utc::now().date_naive(),
    )
    .await?)
}

fn storage_text(r: &ArchiveRow) -> String {
    match (&r.storage_class, r.temperature) {
        (None, _) => "local directory".into(),
        (Some(c), Temperature::Hot) => esc(c),
        (Some(c), Temperature::ColdInstant) => {
            format!(
                "{} <span class=\"status\">cold, read at once</span>",
                esc(c)
            )
        }
        (Some(c), Temperature::ColdRestoreFirst) => format!(
            "{} <span class=\"status\">cold: needs a restore request before it can be read</span>",
            esc(c)
        ),
    }
}

fn verify_text(r: &ArchiveRow) -> String {
    match &r.last_verify {
        None => "not verified yet".into(),
        Some(v) => format!(
            "<span class=\"status\">{}</span> {} by {}<br><span class=\"hint\">{}</span>",
            if v.ok { "ok" } else { "FAILED" },
            v.at.format("%Y-%m-%d %H:%M UTC"),
            esc(&v.who),
            esc(&v.detail)
        ),
    }
}

fn verify_form(who: &Principal, period: Option<&str>, label: &str) -> String {
    let field = period
        .map(|p| {
            format!(
                "<input type=\"hidden\" name=\"period\" value=\"{}\">",
                esc(p)
            )
        })
        .unwrap_or_default();
    format!(
        "<form class=\"inline\" method=\"post\" action=\"/console/archives/verify\">{}{field}\
         <button type=\"submit\">{label}</button></form>",
        csrf_field(who)
    )
}

pub async fn page_get(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let a = offered(&s)?;
    let rows = rows(&s, a).await?;
    let can_verify = auth::may(who.role, "POST", "/console/archives/verify");
    let mut body = String::new();
    if let Some(n) = q.get("notice").filter(|n| !n.is_empty()) {
        body.push_str(&format!("<p class=\"notice\">{}</p>", esc(n)));
    }
    body.push_str(
        "<p class=\"hint\">Period snapshots written by <code>timepost archive run</code> \
         (the format is documented in <code>docs/archive-format.md</code>). Verify re-hashes \
         every file against its manifest, the manifest against its recorded hash, and the chain \
         of manifests from period to period; each verification is recorded in the audit log. \
         Downloads are the stored bytes: their SHA-256 is the manifest's.</p>",
    );
    body.push_str(&format!(
        "<p><a href=\"/console/archives.csv\">Download this list (CSV)</a>{}</p>",
        if can_verify && !rows.is_empty() {
            format!(" {}", verify_form(&who, None, "Verify every snapshot"))
        } else {
            String::new()
        }
    ));
    if rows.is_empty() {
        body.push_str("<p>No snapshot yet (<code>timepost archive run</code> writes them once a period is past its grace window).</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>Period</th><th>Rev</th><th>Written (UTC)</th><th>Entries</th><th>Journal</th><th>Audit</th><th class=\"num\">Bytes</th><th>Manifest SHA-256</th><th>Storage</th><th>Keep until</th><th>Verification</th><th></th></tr></thead><tbody>",
        );
        for r in &rows {
            let l = &r.listed;
            let count = |k: &str| l.counts.get(k).copied().unwrap_or(0);
            let retention = format!(
                "{}{}{}",
                l.expires.map(|d| d.to_string()).unwrap_or_default(),
                if l.expired {
                    " <span class=\"status\">expired: listed for deletion</span>"
                } else {
                    ""
                },
                l.purged
                    .as_ref()
                    .map(|p| format!(
                        "<br><span class=\"hint\">live entries purged {}</span>",
                        p.at.date_naive()
                    ))
                    .unwrap_or_default()
            );
            body.push_str(&format!(
                "<tr data-period=\"{p}\" data-revision=\"{n}\"><td>{p}</td><td class=\"num\">{n}</td><td>{w}</td>\
                 <td class=\"num\">{e}</td><td class=\"num\">{j}</td><td class=\"num\">{au}</td><td class=\"num\">{b}</td>\
                 <td><code title=\"{sha}\">{short}</code></td><td>{st}</td><td>{ret}</td><td>{v}</td><td>{act}</td></tr>",
                p = esc(&l.period),
                n = l.revision,
                w = l
                    .created_at
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
                e = count("entries"),
                j = count("journal"),
                au = count("audit"),
                b = l.bytes,
                sha = esc(&l.manifest_sha256),
                short = esc(l.manifest_sha256.get(..16).unwrap_or("(none)")),
                st = storage_text(r),
                ret = retention,
                v = verify_text(r),
                act = if can_verify {
                    verify_form(&who, Some(&l.period), "Verify")
                } else {
                    String::new()
                },
            ));
        }
        body.push_str("</tbody></table>");
        body.push_str("<section class=\"group\"><h2>Files</h2>");
        for r in &rows {
            let l = &r.listed;
            body.push_str(&format!(
                "<h3>{} revision {}</h3><table><thead><tr><th>File</th><th class=\"num\">Bytes</th><th>SHA-256</th></tr></thead><tbody>",
                esc(&l.period),
                l.revision
            ));
            let link = |name: &str| {
                format!(
                    "<a href=\"/console/archives/{}/{}/{}\">{}</a>",
                    super::entry_detail::urlencode(&l.period),
                    l.revision,
                    super::entry_detail::urlencode(name),
                    esc(name)
                )
            };
            for name in [
                crate::archive::format::MANIFEST,
                crate::archive::format::MANIFEST_SHA,
            ] {
                body.push_str(&format!(
                    "<tr><td>{}</td><td></td><td></td></tr>",
                    link(name)
                ));
            }
            for (name, f) in &r.files {
                body.push_str(&format!(
                    "<tr><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
                    link(name),
                    f.bytes,
                    esc(&f.sha256)
                ));
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</section>");
    }
    Ok(page("Archives", Some(&who), &body).into_response())
}

/// The list as CSV (one row per stored revision).
pub async fn csv(State(s): State<AppState>) -> Result<Response, PageError> {
    use crate::csv_out::{Cell, SafeCsv};
    let a = offered(&s)?;
    let rows = rows(&s, a).await?;
    let mut w = SafeCsv::new(Vec::new());
    let csv_err = |e: csv::Error| ApiError::unavailable(format!("cannot write CSV: {e}"));
    w.header(&[
        "period",
        "revision",
        "created_at",
        "entries",
        "journal",
        "audit",
        "bytes",
        "manifest_sha256",
        "storage_class",
        "keep_until",
        "expired",
        "purged_at",
        "last_verified_at",
        "last_verified_by",
        "last_verify_ok",
    ])
    .map_err(csv_err)?;
    for r in &rows {
        let l = &r.listed;
        let count = |k: &str| l.counts.get(k).copied().unwrap_or(0).to_string();
        let (e, j, au) = (count("entries"), count("journal"), count("audit"));
        let rev = l.revision.to_string();
        let bytes = l.bytes.to_string();
        let created = l.created_at.map(|t| t.to_rfc3339()).unwrap_or_default();
        let expires = l.expires.map(|d| d.to_string()).unwrap_or_default();
        let purged = l
            .purged
            .as_ref()
            .map(|p| p.at.to_rfc3339())
            .unwrap_or_default();
        let (vat, vby, vok) = match &r.last_verify {
            Some(v) => (
                v.at.to_rfc3339(),
                v.who.clone(),
                if v.ok { "yes" } else { "no" }.to_string(),
            ),
            None => Default::default(),
        };
        w.row(&[
            Cell::Text(&l.period),
            Cell::Number(&rev),
            Cell::Text(&created),
            Cell::Number(&e),
            Cell::Number(&j),
            Cell::Number(&au),
            Cell::Number(&bytes),
            Cell::Text(&l.manifest_sha256),
            Cell::Text(r.storage_class.as_deref().unwrap_or("local directory")),
            Cell::Text(&expires),
            Cell::Text(if l.expired { "yes" } else { "no" }),
            Cell::Text(&purged),
            Cell::Text(&vat),
            Cell::Text(&vby),
            Cell::Text(&vok),
        ])
        .map_err(csv_err)?;
    }
    Ok(csv_download(w, "timepost-archives.csv")?)
}

/// One file of a snapshot, byte for byte.
pub async fn download(
    State(s): State<AppState>,
    Path((period, revision, file)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let a = offered(&s)?;
    let label = parse_period(&period)?;
    let revision: u32 = revision.trim().parse().map_err(|_| {
        ApiError::bad_request(
            format!("`{revision}` is not a revision number"),
            Some("revision".into()),
        )
    })?;
    let bytes = status::snapshot_file(a.archive.as_ref(), &label, revision, &file)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no file `{file}` in the snapshot of {label} revision {revision}"
            ))
        })?;
    let kind = if file.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else if file.ends_with(".json") {
        "application/json"
    } else if file.ends_with(".gz") {
        "application/gzip"
    } else {
        "text/plain; charset=utf-8"
    };
    // Only names listed in the manifest get here; quote marks cannot reach
    // the header from them, but keep the name to safe characters anyway.
    let safe: String = format!("timepost-{label}-rev{revision}-{file}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn notice(report: &VerifyReport) -> String {
    if report.checked.is_empty() && report.problems.is_empty() {
        return "No snapshot to verify.".into();
    }
    if report.ok() {
        return format!(
            "Verified {} snapshot(s): every file matches its manifest and the chain holds.",
            report.checked.len()
        );
    }
    let mut shown: Vec<String> = report
        .problems
        .iter()
        .take(10)
        .map(|p| format!("{}: {}", p.key, p.what))
        .collect();
    if report.problems.len() > 10 {
        shown.push(format!("and {} more", report.problems.len() - 10));
    }
    format!(
        "Verification FAILED ({} problem(s)): {}",
        report.problems.len(),
        shown.join("; ")
    )
}

async fn verify(
    s: &AppState,
    who: &Principal,
    period: Option<String>,
) -> Result<VerifyReport, ApiError> {
    let a = offered(s)?;
    let period = match period.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(parse_period(p)?),
        None => None,
    };
    let report = status::verify_as(
        a.archive.as_ref(),
        s.audit.as_ref(),
        period.as_deref(),
        &who.name,
        who.role.as_str(),
    )
    .await?;
    if let Some(p) = &period {
        if report.checked.is_empty() {
            return Err(ApiError::not_found(format!("no snapshot of {p}")));
        }
    }
    Ok(report)
}

pub async fn verify_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let report = verify(&s, &who, form.get("period").cloned()).await?;
    Ok(back_to("/console/archives", &notice(&report)))
}

pub async fn api_list(State(s): State<AppState>) -> Result<Response, ApiError> {
    let a = offered(&s)?;
    Ok(Json(rows(&s, a).await?).into_response())
}

#[derive(Deserialize)]
pub struct VerifyBody {
    period: Option<String>,
}

pub async fn api_verify(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Option<ApiJson<VerifyBody>>,
) -> Result<Response, ApiError> {
    let period = body.and_then(|ApiJson(b)| b.period);
    let report = verify(&s, &who, period).await?;
    Ok(Json(serde_json::json!({
        "ok": report.ok(),
        "checked": report.checked,
        "problems": report.problems,
    }))
    .into_response())
}
