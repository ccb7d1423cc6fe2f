//! Clockify webhooks: the bare time entry (no envelope), the event kind in the
//! `Clockify-Webhook-Event-Type` header.
//!
//! Entry fields read: `id`, `workspaceId`, `userId` (or `user.id`),
//! `user{name,email,settings.timeZone}` (or `userName`/`userEmail`),
//! `description`, `billable`,
//! `timeInterval{start,end,duration}`, `projectId`/`project{id,name,clientId,
//! clientName}`, `taskId`/`task{id,name}`, `tags[].name` (else `tagIds`),
//! `hourlyRate{amount (minor units),currency}`, and `lastUpdated`/`updatedAt`
//! when present. Everything else (`customFieldValues`, `costRate`, `isLocked`,
//! `type`, profile pictures, …) is dropped.
//!
//! Events: NEW_TIME_ENTRY, TIME_ENTRY_UPDATED, TIMER_STOPPED and
//! TIME_ENTRY_RESTORED → the entry; TIME_ENTRY_DELETED → the entry with
//! `deleted`; NEW_TIMER_STARTED → the running entry (`end = None`);
//! APPROVAL_REQUEST_STATUS_UPDATED → [`Event::Approval`]; anything else
//! (including TIME_ENTRY_SPLIT and TIME_ENTRY_BATCH_DELETED, whose payloads
//! are undocumented) → [`Event::Ignored`] with the reason. Without an event
//! type header a body with a `dateRange` (or an `approvalRequest`) and no
//! `timeInterval` is taken as an approval, anything else as an entry update.
//!
//! Assumptions that could not be confirmed from the vendor's documentation:
//! - `hourlyRate` is `{amount, currency}` with the amount in cents; some
//!   third-party type definitions show a bare number. A bare number carries no
//!   currency, so it is ignored (rate `None`) rather than guessed.
//! - `end: null` means the timer runs; the entry then has `end = None` and
//!   `duration_secs` from `timeInterval.duration` if given, else 0.
//! - `APPROVAL_REQUEST_STATUS_UPDATED` sends the approval request itself
//!   (`{id, workspaceId, dateRange{start,end}, owner{userId,userName,timeZone},
//!   creator{userId,…}, status{state,note,updatedAt,…}}`); a body wrapped as
//!   `{"approvalRequest": {…}}` (the shape of the approvals API) is accepted
//!   too. The user is `owner.userId`, else `creator.userId`. `state`:
//!   APPROVED → Approved, REJECTED → Rejected, PENDING and WITHDRAWN_* →
//!   Pending (the time is, at that point, not approved); other states are
//!   ignored. See [`approval_dates`] for how `dateRange` becomes dates.
//! - Clockify sends no event id: `Parsed::event_id` is always `None`.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::util::{
    check_len, is_midnight, kind, parse_instant, parse_iso_duration, parse_json, parse_tz,
    secs_between, Obj,
};
use super::{Event, ParseContext, ParseError, Parsed};
use crate::model::{
    local_date, ApprovalStatus, Currency, EntryKey, Money, NormalisedEntry, Origin, Ref, Source,
    Version, Worker,
};

/// What a delivery is, from its event type header (and, without one, its shape).
enum Kind {
    Upsert,
    Deleted,
    TimerStarted,
    Approval,
    Ignored(String),
}

fn classify(event_type: Option<&str>, root: &Map<String, Value>) -> Kind {
    let Some(raw) = event_type else {
        // No header (e.g. a saved replay): an approval request has a
        // `dateRange`, a time entry a `timeInterval`.
        let looks_like_approval = root.contains_key("approvalRequest")
            || (root.contains_key("dateRange") && !root.contains_key("timeInterval"));
        return if looks_like_approval {
            Kind::Approval
        } else {
            Kind::Upsert
        };
    };
    match raw.trim().to_ascii_uppercase().as_str() {
        "NEW_TIME_ENTRY" | "TIME_ENTRY_UPDATED" | "TIMER_STOPPED" | "TIME_ENTRY_RESTORED" => {
            Kind::Upsert
        }
        "TIME_ENTRY_DELETED" => Kind::Deleted,
        "NEW_TIMER_STARTED" => Kind::TimerStarted,
        "APPROVAL_REQUEST_STATUS_UPDATED" => Kind::Approval,
        "NEW_APPROVAL_REQUEST" => Kind::Ignored(
            "Clockify NEW_APPROVAL_REQUEST: a submission changes nothing until it is approved or rejected"
                .into(),
        ),
        other => Kind::Ignored(format!(
            "Clockify event `{}` is not a time entry or approval event",
            super::util::clip(other)
        )),
    }
}

/// Parse one Clockify webhook delivery.
pub fn parse(
    body: &[u8],
    event_type: Option<&str>,
    ctx: &ParseContext,
) -> Result<Parsed, ParseError> {
    let v = parse_json(body)?;
    parse_value(&v, event_type, ctx, None, "")
}

/// Whether a saved body (one delivery or a JSON array of them) holds a time
/// entry, whose kind only the `Clockify-Webhook-Event-Type` header says: the
/// body of a deletion is the same bare entry as that of a new or updated
/// one (Clockify webhooks send the entry itself, no envelope; see
/// `shared/VENDOR-FACTS.md`, "Clockify"). Read without its event type, such
/// a body cannot be told apart from an edit, so `timepost ingest` refuses
/// it without `--event`. Approval requests (a `dateRange` or an
/// `approvalRequest`, no `timeInterval`) are not ambiguous. Unreadable JSON
/// answers `false` (the parse reports it).
pub fn kind_is_ambiguous(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let ambiguous = |v: &Value| match v {
        Value::Object(root) => matches!(classify(None, root), Kind::Upsert),
        _ => false,
    };
    match &v {
        Value::Array(items) => items.iter().any(ambiguous),
        other => ambiguous(other),
    }
}

/// Parse one delivery or a JSON array of them (saved replays for `timepost
/// ingest`); every element is taken to be of `event_type`. Errors carry the
/// array position.
pub fn parse_many(
    body: &[u8],
    event_type: Option<&str>,
    ctx: &ParseContext,
) -> Result<Vec<Parsed>, ParseError> {
    let v = parse_json(body)?;
    match &v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_value(item, event_type, ctx, Some(i), &format!("[{i}].")))
            .collect(),
        other => Ok(vec![parse_value(other, event_type, ctx, None, "")?]),
    }
}

fn parse_value(
    v: &Value,
    event_type: Option<&str>,
    ctx: &ParseContext,
    pos: Option<usize>,
    path: &str,
) -> Result<Parsed, ParseError> {
    let Value::Object(root) = v else {
        let name = if path.is_empty() {
            "$".to_string()
        } else {
            path.trim_end_matches('.').to_string()
        };
        return Err(ParseError::new(
            pos,
            name,
            format!("expected a JSON object, found {}", kind(v)),
        ));
    };
    let obj = Obj::new(root, path, pos);
    let event = match classify(event_type, root) {
        Kind::Upsert => Event::Entries {
            entries: vec![entry(obj, false, false, ctx)?],
        },
        Kind::Deleted => Event::Entries {
            entries: vec![entry(obj, true, false, ctx)?],
        },
        Kind::TimerStarted => Event::Entries {
            entries: vec![entry(obj, false, true, ctx)?],
        },
        Kind::Approval => approval(obj, ctx)?,
        Kind::Ignored(reason) => Event::Ignored { reason },
    };
    Ok(Parsed {
        event_id: None,
        event,
    })
}

/// A reference from an id and/or a name; a name alone doubles as the id.
pub(crate) fn make_ref(id: Option<String>, name: Option<String>) -> Option<Ref> {
    match (id, name) {
        (Some(id), name) => Some(Ref::new(id, name)),
        (None, Some(name)) => Some(Ref::new(name.clone(), Some(name))),
        (None, None) => None,
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn entry(
    obj: Obj<'_>,
    deleted: bool,
    running: bool,
    ctx: &ParseContext,
) -> Result<NormalisedEntry, ParseError> {
    let id = obj.req_id("id")?;
    let workspace = obj.req_id("workspaceId")?;

    let user_path = format!("{}user.", obj.path);
    let user = obj
        .object("user")?
        .map(|m| Obj::new(m, &user_path, obj.pos));
    let user_id = match obj.id("userId")? {
        Some(u) => u,
        None => match user {
            Some(u) => u.id("id")?,
            None => None,
        }
        .ok_or_else(|| obj.err("userId", "required field is missing"))?,
    };
    let name = match user {
        Some(u) => non_empty(u.name_str("name")?),
        None => None,
    }
    .or(non_empty(obj.name_str("userName")?));
    let email = match user {
        Some(u) => non_empty(u.name_str("email")?),
        None => None,
    }
    .or(non_empty(obj.name_str("userEmail")?));

    let ti_path = format!("{}timeInterval.", obj.path);
    let ti = obj
        .object("timeInterval")?
        .map(|m| Obj::new(m, &ti_path, obj.pos))
        .ok_or_else(|| obj.err("timeInterval", "required field is missing"))?;
    let start = ti
        .instant("start")?
        .ok_or_else(|| ti.err("start", "required field is missing"))?;
    let end = if running { None } else { ti.instant("end")? };
    let duration_secs = match end {
        Some(end) => {
            secs_between(start, end).ok_or_else(|| ti.err("end", "ends before it starts"))?
        }
        None => match ti.get("duration") {
            None => 0,
            Some(Value::String(s)) => parse_iso_duration(s).ok_or_else(|| {
                ti.err(
                    "duration",
                    format!("`{}` is not an ISO-8601 duration", super::util::clip(s)),
                )
            })?,
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|s| *s >= 0)
                .ok_or_else(|| ti.err("duration", "expected whole non-negative seconds"))?,
            Some(v) => {
                return Err(ti.err(
                    "duration",
                    format!("expected an ISO-8601 duration, found {}", kind(v)),
                ))
            }
        },
    };

    let updated_at: DateTime<Utc> = match obj.instant("lastUpdated")? {
        Some(t) => t,
        None => match obj.instant("updatedAt")? {
            Some(t) => t,
            None => ctx.received_at.or(end).unwrap_or(start),
        },
    };

    // Project, client, task.
    let project_path = format!("{}project.", obj.path);
    let project_obj = obj
        .object("project")?
        .map(|m| Obj::new(m, &project_path, obj.pos));
    let (project_id, project_name, client_id, client_name) = match project_obj {
        Some(p) => (
            p.id("id")?,
            non_empty(p.name_str("name")?),
            p.id("clientId")?,
            non_empty(p.name_str("clientName")?),
        ),
        None => (None, None, None, None),
    };
    let project = make_ref(
        project_id.or(obj.id("projectId")?),
        project_name.or(non_empty(obj.name_str("projectName")?)),
    );
    let client = make_ref(
        client_id.or(obj.id("clientId")?),
        client_name.or(non_empty(obj.name_str("clientName")?)),
    );
    let task_path = format!("{}task.", obj.path);
    let task_obj = obj
        .object("task")?
        .map(|m| Obj::new(m, &task_path, obj.pos));
    let (task_id, task_name) = match task_obj {
        Some(t) => (t.id("id")?, non_empty(t.name_str("name")?)),
        None => (None, None),
    };
    let task = make_ref(task_id.or(obj.id("taskId")?), task_name);

    let tags = tags(obj)?;
    let rate = rate(obj)?;
    // The worker's time zone: the mapping's when it sets one, else the
    // worker's own Clockify setting (`user.settings.timeZone`, an IANA
    // name), else the default. The work date, week and overtime follow.
    let settings_tz = match user {
        Some(u) => {
            let settings_path = format!("{}settings.", u.path);
            match u.object("settings")? {
                Some(m) => Obj::new(m, &settings_path, obj.pos)
                    .str("timeZone")?
                    .and_then(parse_tz),
                None => None,
            }
        }
        None => None,
    };
    let tz = ctx
        .mapped_tz(&user_id)
        .or(settings_tz)
        .unwrap_or(ctx.default_tz);

    let entry = NormalisedEntry {
        key: EntryKey::new(Source::Clockify, workspace, id),
        version: Version {
            updated_at,
            content_hash: String::new(),
        },
        worker: Worker {
            tracker_user_id: user_id,
            email,
            name,
            kind: None,
            form_1099: None,
        },
        time_zone: tz,
        work_date: local_date(start, tz),
        start: Some(start),
        end,
        duration_secs,
        project,
        client,
        task,
        tags,
        billable: obj.bool("billable")?.unwrap_or(false),
        rate,
        notes: obj
            .notes_str("description")?
            .unwrap_or_default()
            .to_string(),
        approval: ApprovalStatus::Unknown,
        attachments: Vec::new(),
        origin: Origin::Web,
        deleted,
        already_rounded: false,
    };
    Ok(entry.seal())
}

/// Tag names from `tags[].name`, else the ids in `tagIds`.
fn tags(obj: Obj<'_>) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    if let Some(items) = obj.array("tags")? {
        for (i, t) in items.iter().enumerate() {
            let name = match t {
                Value::String(s) => Some(s.as_str()),
                Value::Object(m) => match m.get("name") {
                    Some(Value::String(s)) => Some(s.as_str()),
                    None | Some(Value::Null) => None,
                    Some(v) => {
                        return Err(obj.err(
                            &format!("tags[{i}].name"),
                            format!("expected a string, found {}", kind(v)),
                        ))
                    }
                },
                Value::Null => None,
                v => {
                    return Err(obj.err(
                        &format!("tags[{i}]"),
                        format!("expected a tag object, found {}", kind(v)),
                    ))
                }
            };
            if let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) {
                check_len(&obj, &format!("tags[{i}]"), n, super::MAX_NAME_CHARS)?;
                out.push(n.to_string());
            }
        }
    }
    if out.is_empty() {
        if let Some(ids) = obj.array("tagIds")? {
            for (i, t) in ids.iter().enumerate() {
                match t {
                    Value::String(s) if !s.trim().is_empty() => {
                        check_len(
                            &obj,
                            &format!("tagIds[{i}]"),
                            s.trim(),
                            super::MAX_NAME_CHARS,
                        )?;
                        out.push(s.trim().to_string())
                    }
                    Value::Number(n) => out.push(n.to_string()),
                    Value::String(_) | Value::Null => {}
                    v => {
                        return Err(obj.err(
                            &format!("tagIds[{i}]"),
                            format!("expected an id, found {}", kind(v)),
                        ))
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `hourlyRate{amount, currency}`, the amount in minor units (cents).
fn rate(obj: Obj<'_>) -> Result<Option<Money>, ParseError> {
    let m = match obj.get("hourlyRate") {
        None => return Ok(None),
        // A bare number has no currency: not guessed (see the module docs).
        Some(Value::Number(_)) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(obj.err(
                "hourlyRate",
                format!("expected an object, found {}", kind(v)),
            ))
        }
    };
    let path = format!("{}hourlyRate.", obj.path);
    let r = Obj::new(m, &path, obj.pos);
    let Some(amount) = r.decimal("amount")? else {
        return Ok(None);
    };
    let currency: Currency = r
        .str("currency")?
        .ok_or_else(|| r.err("currency", "a rate needs its currency"))?
        .parse()
        .map_err(|e: String| r.err("currency", e))?;
    let money = match amount.to_i64().filter(|_| amount.fract().is_zero()) {
        Some(minor) => Money::from_minor(minor, currency),
        None => Money::new(
            amount
                .checked_div(Decimal::from(100))
                .ok_or_else(|| r.err("amount", "out of range"))?,
            currency,
        ),
    };
    Ok(Some(money))
}

fn approval(obj: Obj<'_>, ctx: &ParseContext) -> Result<Event, ParseError> {
    let inner_path = format!("{}approvalRequest.", obj.path);
    let req = match obj.object("approvalRequest")? {
        Some(m) => Obj::new(m, &inner_path, obj.pos),
        None => obj,
    };
    let workspace = match req.id("workspaceId")? {
        Some(w) => w,
        None => obj.req_id("workspaceId")?,
    };

    let owner_path = format!("{}owner.", req.path);
    let owner = req
        .object("owner")?
        .map(|m| Obj::new(m, &owner_path, req.pos));
    let creator_path = format!("{}creator.", req.path);
    let creator = req
        .object("creator")?
        .map(|m| Obj::new(m, &creator_path, req.pos));
    let mut user_id = None;
    if let Some(o) = owner {
        user_id = o.id("userId")?;
    }
    if user_id.is_none() {
        if let Some(c) = creator {
            user_id = c.id("userId")?;
        }
    }
    let user_id = match user_id {
        Some(u) => u,
        None => req
            .id("userId")?
            .ok_or_else(|| req.err("owner.userId", "required field is missing"))?,
    };

    let state = match req.get("status") {
        Some(Value::Object(m)) => {
            let status_path = format!("{}status.", req.path);
            let s = Obj::new(m, &status_path, req.pos);
            s.str("state")?
                .ok_or_else(|| s.err("state", "required field is missing"))?
                .to_string()
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(req.err("status", format!("expected an object, found {}", kind(v)))),
        None => return Err(req.err("status.state", "required field is missing")),
    };
    let status = match state.trim().to_ascii_uppercase().as_str() {
        "APPROVED" => ApprovalStatus::Approved,
        "REJECTED" => ApprovalStatus::Rejected,
        "PENDING" | "WITHDRAWN_SUBMISSION" | "WITHDRAWN_APPROVAL" => ApprovalStatus::Pending,
        other => {
            return Ok(Event::Ignored {
                reason: format!(
                    "Clockify approval state `{}` is not one timepost acts on",
                    super::util::clip(other)
                ),
            })
        }
    };

    // As for entries: the mapping's time zone, else the owner's, else the
    // default, so an approval covers the dates its entries fall on.
    let mut tz = ctx.mapped_tz(&user_id);
    if let Some(o) = owner {
        for key in ["timeZone", "timezone"] {
            if tz.is_none() {
                tz = o.str(key)?.and_then(parse_tz);
            }
        }
    }
    let tz = tz.unwrap_or(ctx.default_tz);

    let range_path = format!("{}dateRange.", req.path);
    let range = req
        .object("dateRange")?
        .map(|m| Obj::new(m, &range_path, req.pos))
        .ok_or_else(|| req.err("dateRange", "required field is missing"))?;
    let start = range
        .str("start")?
        .ok_or_else(|| range.err("start", "required field is missing"))?;
    let end = range
        .str("end")?
        .ok_or_else(|| range.err("end", "required field is missing"))?;
    let (from, to) = approval_dates(start, end, tz).ok_or_else(|| {
        range.err(
            "start",
            "dateRange bounds must be dates or RFC 3339 instants",
        )
    })?;
    Ok(Event::Approval {
        source: Source::Clockify,
        workspace,
        user_id,
        from,
        to,
        status,
    })
}

/// The inclusive local dates of an approval `dateRange`.
///
/// Clockify's documentation types the bounds as date-times without saying in
/// which zone a period's days are cut. Both readings are handled: a bound is
/// read in the owner's time zone if it falls on a day boundary there, else in
/// UTC if it falls on one there (dates encoded as UTC midnight), else as its
/// local date in the owner's zone. An end at 23:59:59(.999) is inclusive; an
/// end at exactly midnight is exclusive (the day before). Plain `YYYY-MM-DD`
/// bounds are taken as they are.
pub fn approval_dates(start: &str, end: &str, tz: Tz) -> Option<(NaiveDate, NaiveDate)> {
    let from = bound(start, tz, false)?;
    let to = bound(end, tz, true)?;
    Some((from, to.max(from)))
}

fn bound(s: &str, tz: Tz, is_end: bool) -> Option<NaiveDate> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Some(d);
    }
    let instant = parse_instant(s)?;
    let local = instant.with_timezone(&tz).naive_local();
    let last_second = NaiveTime::from_hms_opt(23, 59, 59)?;
    for cand in [local, instant.naive_utc()] {
        if is_end {
            if cand.time() >= last_second {
                return Some(cand.date());
            }
            if is_midnight(cand.time()) {
                return cand.date().pred_opt();
            }
        } else if is_midnight(cand.time()) {
            return Some(cand.date());
        }
    }
    Some(local.date())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_ENTRY: &str = include_str!("../../../tests/fixtures/clockify/new_time_entry.json");
    const RUNNING: &str = include_str!("../../../tests/fixtures/clockify/timer_started.json");
    const DELETED: &str = include_str!("../../../tests/fixtures/clockify/time_entry_deleted.json");
    const NUMERIC_IDS: &str = include_str!("../../../tests/fixtures/clockify/numeric_ids.json");
    const APPROVAL: &str =
        include_str!("../../../tests/fixtures/clockify/approval_status_updated.json");
    const APPROVAL_UTC: &str =
        include_str!("../../../tests/fixtures/clockify/approval_utc_dates.json");
    const REPLAY: &str = include_str!("../../../tests/fixtures/clockify/replay_array.json");
    const NEW_PROJECT: &str = include_str!("../../../tests/fixtures/clockify/new_project.json");
    const NO_END_DURATION: &str =
        include_str!("../../../tests/fixtures/clockify/duration_only.json");

    #[test]
    fn a_time_entry_without_its_event_type_is_ambiguous() {
        let entry = br#"{"id":"e1","workspaceId":"w","userId":"u","timeInterval":{"start":"2026-03-02T09:00:00Z","end":"2026-03-02T10:00:00Z"}}"#;
        assert!(kind_is_ambiguous(entry));
        let list = format!("[{}]", String::from_utf8_lossy(entry));
        assert!(kind_is_ambiguous(list.as_bytes()));
        let approval = br#"{"id":"a1","workspaceId":"w","dateRange":{"start":"2026-03-02T00:00:00Z","end":"2026-03-08T23:59:59Z"},"owner":{"userId":"u"},"status":{"state":"APPROVED"}}"#;
        assert!(!kind_is_ambiguous(approval));
        assert!(!kind_is_ambiguous(b"not json"));
    }

    /// Issue 11, point 12: mapping → `user.settings.timeZone` → default.
    #[test]
    fn time_zone_from_mapping_else_user_settings_else_default() {
        let mut v: Value = serde_json::from_str(NEW_ENTRY).unwrap();
        v["user"]["settings"] =
            serde_json::json!({"timeZone": "Asia/Tokyo", "weekStart": "MONDAY"});
        let body = serde_json::to_vec(&v).unwrap();
        // 2026-03-02T23:30Z is Tuesday 3 March in Tokyo, Monday 2 March in UTC.
        let e = one(parse(
            &body,
            Some("NEW_TIME_ENTRY"),
            &ParseContext::new(chrono_tz::UTC),
        )
        .unwrap());
        assert_eq!(e.time_zone, chrono_tz::Asia::Tokyo);
        assert_eq!(e.work_date, NaiveDate::from_ymd_opt(2026, 3, 3).unwrap());
        // The mapping's time zone wins over the worker's own setting.
        let e = one(parse(&body, Some("NEW_TIME_ENTRY"), &ctx()).unwrap());
        assert_eq!(e.time_zone, chrono_tz::America::New_York);
        assert_eq!(e.work_date, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        // No setting, no mapping: the default.
        let e = one(parse(
            NEW_ENTRY.as_bytes(),
            Some("NEW_TIME_ENTRY"),
            &ParseContext::new(chrono_tz::Asia::Tokyo),
        )
        .unwrap());
        assert_eq!(e.time_zone, chrono_tz::Asia::Tokyo);
        let e = one(parse(
            NEW_ENTRY.as_bytes(),
            Some("NEW_TIME_ENTRY"),
            &ParseContext::new(chrono_tz::UTC),
        )
        .unwrap());
        assert_eq!(e.work_date, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        // An unknown zone name in the settings falls back to the default.
        v["user"]["settings"]["timeZone"] = "Mars/Olympus".into();
        let body = serde_json::to_vec(&v).unwrap();
        let e = one(parse(
            &body,
            Some("NEW_TIME_ENTRY"),
            &ParseContext::new(chrono_tz::UTC),
        )
        .unwrap());
        assert_eq!(e.time_zone, chrono_tz::UTC);
    }

    fn ctx() -> ParseContext {
        let mut c = ParseContext::new(chrono_tz::UTC);
        c.user_tz.insert(
            "5e4117fe8c2d3a2b0bb8d1f1".into(),
            chrono_tz::America::New_York,
        );
        c
    }

    fn one(p: Parsed) -> NormalisedEntry {
        match p.event {
            Event::Entries { mut entries } if entries.len() == 1 => entries.remove(0),
            other => panic!("expected one entry, got {other:?}"),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn new_time_entry() {
        let p = parse(NEW_ENTRY.as_bytes(), Some("NEW_TIME_ENTRY"), &ctx()).unwrap();
        assert_eq!(p.event_id, None);
        let e = one(p);
        assert_eq!(
            e.key,
            EntryKey::new(
                Source::Clockify,
                "5e4117fe8c2d3a2b0bb8d1aa",
                "64f1a0c2b5e2a31f9c0d1e01"
            )
        );
        assert_eq!(e.worker.tracker_user_id, "5e4117fe8c2d3a2b0bb8d1f1");
        assert_eq!(e.worker.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(e.worker.email.as_deref(), Some("ada@example.com"));
        assert_eq!(e.time_zone, chrono_tz::America::New_York);
        assert_eq!(e.start, Some(t("2026-03-02T23:30:00Z")));
        assert_eq!(e.end, Some(t("2026-03-03T02:24:00Z")));
        assert_eq!(e.duration_secs, 2 * 3600 + 54 * 60);
        // 23:30 UTC is 18:30 in New York: still the 2nd there.
        assert_eq!(e.work_date, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        assert_eq!(e.project.as_ref().unwrap().id, "64f1a0c2b5e2a31f9c0d0001");
        assert_eq!(
            e.project.as_ref().unwrap().name.as_deref(),
            Some("Website relaunch")
        );
        assert_eq!(e.client.as_ref().unwrap().id, "64f1a0c2b5e2a31f9c0d0002");
        assert_eq!(
            e.client.as_ref().unwrap().name.as_deref(),
            Some("Acme Corp")
        );
        assert_eq!(e.task.as_ref().unwrap().name.as_deref(), Some("Design"));
        assert_eq!(e.tags, ["frontend", "urgent"]);
        assert!(e.billable);
        let rate = e.rate.as_ref().unwrap();
        assert_eq!(rate.amount, Decimal::new(12550, 2));
        assert_eq!(rate.currency.as_str(), "USD");
        assert_eq!(e.notes, "Landing page mock-ups");
        assert_eq!(e.approval, ApprovalStatus::Unknown);
        assert_eq!(e.origin, Origin::Web);
        assert!(!e.deleted);
        // No modification time in the body and no received_at: the end.
        assert_eq!(e.version.updated_at, t("2026-03-03T02:24:00Z"));
        assert_eq!(e.version.content_hash, e.compute_content_hash());
    }

    #[test]
    fn received_at_is_the_version_when_the_body_has_none() {
        let mut c = ctx();
        c.received_at = Some(t("2026-03-04T09:00:00Z"));
        let e = one(parse(NEW_ENTRY.as_bytes(), Some("TIME_ENTRY_UPDATED"), &c).unwrap());
        assert_eq!(e.version.updated_at, t("2026-03-04T09:00:00Z"));
    }

    #[test]
    fn running_timer_has_no_end() {
        let e = one(parse(RUNNING.as_bytes(), Some("NEW_TIMER_STARTED"), &ctx()).unwrap());
        assert_eq!(e.end, None);
        assert_eq!(e.duration_secs, 0);
        assert!(e.is_running());
        assert_eq!(e.rate, None);
        assert_eq!(e.tags, ["tag-id-1"]);
    }

    #[test]
    fn deleted_entry() {
        let e = one(parse(DELETED.as_bytes(), Some("TIME_ENTRY_DELETED"), &ctx()).unwrap());
        assert!(e.deleted);
        assert!(!e.is_running());
    }

    #[test]
    fn numeric_ids_and_minor_units() {
        let e = one(parse(NUMERIC_IDS.as_bytes(), None, &ctx()).unwrap());
        assert_eq!(e.key.id, "1234567");
        assert_eq!(e.key.workspace, "42");
        assert_eq!(e.worker.tracker_user_id, "7");
        assert_eq!(e.task.as_ref().unwrap().id, "99");
        assert_eq!(e.rate.as_ref().unwrap().amount, Decimal::new(5000, 2));
        assert_eq!(e.rate.as_ref().unwrap().currency.as_str(), "EUR");
        assert_eq!(e.version.updated_at, t("2026-03-05T12:00:00Z"));
    }

    #[test]
    fn iso_duration_when_there_is_no_end() {
        let e = one(parse(NO_END_DURATION.as_bytes(), Some("NEW_TIME_ENTRY"), &ctx()).unwrap());
        assert_eq!(e.end, None);
        assert_eq!(e.duration_secs, 3600 + 30 * 60 + 15);
    }

    #[test]
    fn unknown_event_is_ignored() {
        let p = parse(NEW_PROJECT.as_bytes(), Some("NEW_PROJECT"), &ctx()).unwrap();
        assert!(matches!(p.event, Event::Ignored { .. }));
        let p = parse(NEW_PROJECT.as_bytes(), Some("new_approval_request"), &ctx()).unwrap();
        assert!(matches!(p.event, Event::Ignored { .. }));
        let p = parse(b"{}", Some("SOMETHING_NEW"), &ctx()).unwrap();
        assert!(matches!(p.event, Event::Ignored { .. }));
    }

    #[test]
    fn approval_event() {
        let p = parse(
            APPROVAL.as_bytes(),
            Some("APPROVAL_REQUEST_STATUS_UPDATED"),
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            p.event,
            Event::Approval {
                source: Source::Clockify,
                workspace: "5e4117fe8c2d3a2b0bb8d1aa".into(),
                user_id: "5e4117fe8c2d3a2b0bb8d1f1".into(),
                from: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
                to: NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(),
                status: ApprovalStatus::Approved,
            }
        );
        // Without the header the shape still says approval.
        let p2 = parse(APPROVAL.as_bytes(), None, &ctx()).unwrap();
        assert_eq!(p2.event, p.event);
    }

    #[test]
    fn approval_with_utc_encoded_dates_and_wrapper() {
        let p = parse(
            APPROVAL_UTC.as_bytes(),
            Some("APPROVAL_REQUEST_STATUS_UPDATED"),
            &ctx(),
        )
        .unwrap();
        match p.event {
            Event::Approval {
                from, to, status, ..
            } => {
                assert_eq!(from, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
                assert_eq!(to, NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
                assert_eq!(status, ApprovalStatus::Rejected);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn approval_dates_readings() {
        let ny = chrono_tz::America::New_York;
        let d = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        // Real instants of local midnights in New York, exclusive end.
        assert_eq!(
            approval_dates("2026-03-02T05:00:00Z", "2026-03-09T04:00:00Z", ny),
            Some((d(3, 2), d(3, 8)))
        );
        // Dates encoded as UTC, inclusive end.
        assert_eq!(
            approval_dates("2026-03-02T00:00:00Z", "2026-03-08T23:59:59.999Z", ny),
            Some((d(3, 2), d(3, 8)))
        );
        assert_eq!(
            approval_dates("2026-03-02", "2026-03-08", ny),
            Some((d(3, 2), d(3, 8)))
        );
        assert_eq!(approval_dates("soon", "later", ny), None);
    }

    #[test]
    fn replay_array_positions() {
        let ps = parse_many(REPLAY.as_bytes(), Some("TIME_ENTRY_UPDATED"), &ctx()).unwrap();
        assert_eq!(ps.len(), 2);
        let bad = r#"[{"id":"a","workspaceId":"w","userId":"u","timeInterval":{"start":"2026-03-02T10:00:00Z","end":null}},
                      {"id":"b","workspaceId":"w","userId":"u","timeInterval":{}}]"#;
        let e = parse_many(bad.as_bytes(), None, &ctx()).unwrap_err();
        assert_eq!(e.position, Some(1));
        assert_eq!(e.field, "[1].timeInterval.start");
        assert_eq!(
            e.to_string(),
            "at 1: [1].timeInterval.start: required field is missing"
        );
        // A single object is accepted too.
        assert_eq!(
            parse_many(NEW_ENTRY.as_bytes(), None, &ctx())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(b"{not json", None, &ctx()).unwrap_err();
        assert_eq!(e.field, "$");
        assert!(e.message.contains("malformed JSON"));
        let e = parse(
            br#"{"workspaceId":"w","userId":"u","timeInterval":{"start":"2026-03-02T10:00:00Z"}}"#,
            None,
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(e.field, "id");
        let e = parse(
            br#"{"id":"a","workspaceId":"w","userId":"u","timeInterval":{"start":"yesterday"}}"#,
            None,
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(e.field, "timeInterval.start");
        let e = parse(br#"{"id":"a","workspaceId":"w","userId":"u","timeInterval":{"start":"2026-03-02T10:00:00Z","end":"2026-03-02T09:00:00Z"}}"#, None, &ctx()).unwrap_err();
        assert_eq!(e.field, "timeInterval.end");
        let e = parse(br#"{"id":"a","workspaceId":"w","userId":"u","timeInterval":{"start":"2026-03-02T10:00:00Z"},"hourlyRate":{"amount":100}}"#, None, &ctx()).unwrap_err();
        assert_eq!(e.field, "hourlyRate.currency");
        let e = parse(b"[1]", None, &ctx()).unwrap_err();
        assert_eq!(e.field, "$");
    }
}
