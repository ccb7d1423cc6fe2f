//! One entry in detail: the entry as timepost received and normalised it,
//! what the books hold for it, and the decision trace — the same pure
//! decision the engine makes (`pipeline::plan_week` + `decide_current`), re-run
//! with the current mappings and rules and a recording tracer, so a
//! bookkeeper reads which rules and mapping rows applied and why it did not
//! post. Also the inline fix of a missing mapping from the exceptions page.
//!
//! The trace is computed, never stored: it always explains what a redrive
//! would do now. The tracker's raw payload is not kept (sources turn it into
//! the normalised entry at intake), so the normalised entry is the original
//! shown.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Serialize;

use super::auth::{self, Principal};
use super::console::{back_to, field, parse_key, redrive, PageError};
use super::html::{csrf_field, esc, page};
use super::{ApiError, AppState};
use crate::mapping::MappingTable;
use crate::model::{EntryKey, NormalisedEntry};
use crate::pipeline::{self, fmt_minutes, Decision};
use crate::ports::{JournalRecord, WorkerWeek};
use crate::review::Saved;
use crate::state::EntryState;
use timepost_core::ledger::{Party, PostingLine};

/// The decision trace of one entry, as the API returns it.
#[derive(Debug, Serialize)]
pub struct EntryTrace {
    /// The stored state: the newest version as received (normalised), its
    /// status and reason, and what the books hold.
    pub state: EntryState,
    /// Whether the tracker's raw payload is kept (it is not: intake keeps
    /// the normalised entry only).
    pub raw_payload_kept: bool,
    /// The mappings version the trace was computed against.
    pub mappings_version: u64,
    /// What a redrive would do now, in words.
    pub decision: String,
    /// The rules and mapping rows that applied, in order.
    pub steps: Vec<String>,
    /// The lines a redrive would post now (empty unless it would post).
    pub lines: Vec<PostingLine>,
    /// Every ledger operation made for this entry, oldest first.
    pub journal: Vec<JournalRecord>,
}

/// Re-run the decision for `key` against the current mappings and rules.
pub async fn trace(s: &AppState, key: &EntryKey) -> Result<EntryTrace, ApiError> {
    let state = s
        .entries
        .get(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no entry {key}")))?;
    let mappings = s.engine.mappings_now().await?;
    let rules = s.engine.rules.as_ref();
    let week = s.entries.week(&WorkerWeek::of(&state.entry)).await?;
    let mut refs: Vec<&NormalisedEntry> = week
        .iter()
        .map(|w| &w.entry)
        .filter(|e| e.key != *key)
        .collect();
    refs.push(&state.entry);
    let plan = pipeline::plan_week(&refs, &mappings, rules);
    let mut steps: Vec<String> = vec![format!(
        "worker-week of {}: {} entr{} of this worker re-planned together",
        state.entry.week_start(),
        refs.len(),
        if refs.len() == 1 { "y" } else { "ies" }
    )];
    // The engine's own decision, holding override included, in words.
    let decision = pipeline::decide_current(&state, plan.get(key), &mappings, rules, &mut steps);
    let (words, lines) = describe(&decision);
    let journal = s.engine.journal.by_entry(key).await?;
    Ok(EntryTrace {
        raw_payload_kept: false,
        mappings_version: mappings.version,
        decision: words,
        steps,
        lines,
        journal,
        state,
    })
}

fn total(lines: &[PostingLine]) -> String {
    fmt_minutes(crate::money::sum_i64(lines.iter().map(|l| l.minutes)))
}

/// A decision in a bookkeeper's words, with the lines it would post.
fn describe(d: &Decision) -> (String, Vec<PostingLine>) {
    match d {
        Decision::Ignore(r) => (format!("Nothing to post: {}.", r.describe()), Vec::new()),
        Decision::Post(l) => (
            format!(
                "Would post {} line{} ({}) to the books.",
                l.len(),
                if l.len() == 1 { "" } else { "s" },
                total(l)
            ),
            l.clone(),
        ),
        Decision::Update(l) => (
            format!(
                "Would replace what the books hold with {} line{} ({}).",
                l.len(),
                if l.len() == 1 { "" } else { "s" },
                total(l)
            ),
            l.clone(),
        ),
        Decision::Unchanged => (
            "The books already hold exactly these lines; nothing to do.".into(),
            Vec::new(),
        ),
        Decision::Void => ("Would remove this entry from the books.".into(), Vec::new()),
        Decision::AwaitApproval(why) => (format!("Waits for approval: {why}."), Vec::new()),
        Decision::Hold(e) => (
            format!("Held until a mapping exists: {}", e.message),
            Vec::new(),
        ),
        Decision::Exception(e) => (format!("Exception {}: {}", e.code, e.message), Vec::new()),
    }
}

/// `GET /api/entries/{key}/trace`.
pub async fn api_trace(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    Ok(Json(trace(&s, &key).await?).into_response())
}

/// A path segment or query value, percent-encoded.
pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The link to an entry's detail page.
pub(super) fn detail_href(key: &EntryKey) -> String {
    format!("/console/exceptions/{}", urlencode(&key.to_string()))
}

fn line_row(l: &PostingLine) -> String {
    let party = match &l.party {
        Party::Employee { id } => format!("employee {id}"),
        Party::Vendor { id, .. } => format!("vendor {id}"),
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&l.tier),
        esc(&party),
        l.txn_date,
        esc(&fmt_minutes(l.minutes)),
        esc(&opt(&l.customer)),
        esc(&opt(&l.service_item)),
        esc(&opt(&l.payroll_item)),
        esc(&l.account),
        esc(&l.hourly_rate.as_ref().map(ToString::to_string).unwrap_or_else(|| "—".into())),
    )
}

fn lines_table(lines: &[PostingLine]) -> String {
    let mut out = String::from(
        "<table class=\"lines\"><thead><tr><th>Tier</th><th>Paid to</th><th>Date</th><th>Time</th>\
         <th>Customer</th><th>Service item</th><th>Payroll item</th><th>Account</th><th>Rate</th></tr></thead><tbody>",
    );
    for l in lines {
        out.push_str(&line_row(l));
    }
    out.push_str("</tbody></table>");
    out
}

/// The inline "add the missing mapping" form for an open item whose reason
/// names a missing mapping row, when the caller may use it; else nothing.
pub(super) fn fix_form(who: &Principal, st: &EntryState) -> String {
    if !auth::may(who.role, "POST", "/console/exceptions/fix-mapping") {
        return String::new();
    }
    let Some(m) = st.reason.as_ref().and_then(|r| r.missing_mapping.as_ref()) else {
        return String::new();
    };
    if m.key.is_empty() || m.table.parse::<MappingTable>().is_err() {
        return String::new();
    }
    format!(
        "<form class=\"inline fix-mapping\" method=\"post\" action=\"/console/exceptions/fix-mapping\">{csrf}\
         <input type=\"hidden\" name=\"table\" value=\"{t}\"><input type=\"hidden\" name=\"key\" value=\"{k}\">\
         <label><code>{t}</code> <code>{k}</code> → <input type=\"text\" name=\"target\" placeholder=\"maps to (id in the books)\" required></label>\
         <input type=\"text\" name=\"reason\" placeholder=\"reason\" required>\
         <button type=\"submit\">Add mapping and redrive</button></form>",
        csrf = csrf_field(who),
        t = esc(&m.table),
        k = esc(&m.key),
    )
}

/// `GET /console/exceptions/{key}`: the entry, its books, and the trace.
pub async fn page_get(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Response, PageError> {
    let key = parse_key(&key)?;
    let t = trace(&s, &key).await?;
    let st = &t.state;
    let e = &st.entry;
    let mut body = String::new();
    body.push_str(&format!(
        "<p><a href=\"/console/exceptions\">← Exceptions</a></p>\
         <section class=\"group\"><h2>Where it stands</h2><p><span class=\"status\">{}</span> {}</p>",
        st.status().as_str(),
        esc(&st
            .reason
            .as_ref()
            .map(|r| format!("{}: {}", r.code, r.message))
            .or_else(|| st.note.clone())
            .unwrap_or_default()),
    ));
    if let Some(r) = &st.reason {
        body.push_str(&format!("<p class=\"hint\">Fix: {}</p>", esc(&r.fix_hint)));
        if let Some(v) = &r.vendor_message {
            body.push_str(&format!(
                "<p class=\"vendor\">Accounting system: {}</p>",
                esc(v)
            ));
        }
    }
    body.push_str(&fix_form(&who, st));
    body.push_str("</section>");

    body.push_str(&format!(
        "<section class=\"group trace\"><h2>Decision trace</h2>\
         <p>Re-run now against mappings version {} and the configured rules:</p><ol>",
        t.mappings_version
    ));
    for step in &t.steps {
        body.push_str(&format!("<li>{}</li>", esc(step)));
    }
    body.push_str(&format!(
        "</ol><p class=\"decision\"><strong>{}</strong></p>",
        esc(&t.decision)
    ));
    if !t.lines.is_empty() {
        body.push_str(&lines_table(&t.lines));
    }
    body.push_str("</section>");

    body.push_str("<section class=\"group\"><h2>In the books</h2>");
    if st.posted_lines.is_empty() {
        body.push_str("<p>Nothing of this entry is in the books.</p>");
    } else {
        body.push_str(&format!(
            "<p>Version {} posted as {}.</p>",
            esc(&st
                .posted_version
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()),
            esc(&st
                .records
                .iter()
                .map(|r| format!("record {} ({})", r.id, r.tier))
                .collect::<Vec<_>>()
                .join(", "))
        ));
        body.push_str(&lines_table(&st.posted_lines));
    }
    if !t.journal.is_empty() {
        body.push_str("<h3>Ledger operations</h3><ul>");
        for j in &t.journal {
            body.push_str(&format!(
                "<li>{} · {} of version {} ({} min) in batch <code>{}</code></li>",
                j.at.format("%Y-%m-%d %H:%M:%S UTC"),
                esc(&j.operation),
                esc(&j.version.to_string()),
                crate::money::sum_i64(j.lines.iter().map(|l| l.minutes)),
                esc(&j.batch_id)
            ));
        }
        body.push_str("</ul>");
    }
    body.push_str("</section>");

    let pretty = serde_json::to_string_pretty(e).unwrap_or_default();
    body.push_str(&format!(
        "<section class=\"group original\"><h2>The entry as received</h2>\
         <p>From {} workspace <code>{}</code>, tracker id <code>{}</code>; first seen {}, last changed here {}. \
         The tracker's raw payload is not kept: this is the entry as timepost read it.</p>\
         <pre>{}</pre></section>",
        e.key.source,
        esc(&e.key.workspace),
        esc(&e.key.id),
        st.first_seen_at.format("%Y-%m-%d %H:%M:%S UTC"),
        st.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        esc(&pretty)
    ));
    Ok(page(&format!("Entry {key}"), Some(&who), &body).into_response())
}

/// `POST /console/exceptions/fix-mapping`: add the one missing mapping row
/// an open (held or exception) entry names, through the same review as any
/// change (`crate::review`: counted over every stored entry; under the
/// threshold it applies, above it it waits as a proposal for an admin).
/// Never changes an existing row (409: that is the mappings page, for
/// admins), and refuses a row no open entry is missing (403). Once applied,
/// held entries are re-checked and every open entry missing the row is
/// redriven.
pub async fn fix_mapping_post(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let table: MappingTable = field(&form, "table")?
        .parse()
        .map_err(|e: String| ApiError::bad_request(e, Some("table".into())))?;
    let key = field(&form, "key")?;
    let target = field(&form, "target")?;
    let reason = field(&form, "reason")?;
    let (saved, keys) = s
        .mapping_review()
        .add_missing_row(&who.actor(), table, key, target, reason)
        .await?;
    let key = crate::mapping::table::normalise_key(key);
    let notice = match &saved {
        Saved::Pending(p) => format!(
            "{table} `{key}` → {target} can affect up to {} stored entr{}, more than allowed without review: it waits as proposal #{} for an admin's approval; the {} open entr{} missing it stay as they are until then.",
            p.preview.in_reach(),
            plural(p.preview.in_reach()),
            p.id,
            keys.len(),
            plural(keys.len()),
        ),
        Saved::Applied { changes, .. } => {
            super::mappings::recheck(&s, &who.name, changes).await;
            redrive(&s, &who, &keys, &format!("after adding {table} `{key}`")).await?;
            format!(
                "Change #{}: {table} `{key}` now maps to {target}; {} entr{} redriven.",
                changes.first().map(|c| c.seq).unwrap_or_default(),
                keys.len(),
                plural(keys.len()),
            )
        }
        Saved::Unchanged => saved.notice(),
    };
    Ok(back_to("/console/exceptions", &notice))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}
