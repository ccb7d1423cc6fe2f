//! Toggl Track: webhook v1 event envelopes and the API v9 time entry list.
//!
//! Envelope: `event_id`, `created_at`, `creator_id`, `subscription_id`,
//! `timestamp`, `metadata{action, model, event_user_id, workspace_id, …}`,
//! `payload` (the entry). The subscription's PING carries `payload: "ping"`
//! and, while the subscription is not validated, a top-level
//! `validation_code` (and `validation_code_url` for asynchronous validation).
//!
//! Entry fields read: `id`, `workspace_id`|`wid`, `user_id`|`uid`,
//! `project_id`|`pid` (+ `project_name` when the API was asked for `meta`),
//! `client_id`/`client_name` (meta), `task_id`|`tid` (+ `task_name`),
//! `billable`, `start`, `stop`, `duration`, `description`, `tags`
//! (else `tag_ids`), `at`, `server_deleted_at`. Everything else is dropped.
//! Toggl rates live on projects, not entries: `rate` is always `None`.
//!
//! Assumptions that could not be confirmed from the vendor's documentation:
//! - a `deleted` event's payload may be partial; if it lacks `start` the
//!   entry has no start/end and its work date is the local date of `at`
//!   (else the envelope's `timestamp`/`created_at`, else `received_at`); if it
//!   lacks the user, `metadata.event_user_id` stands in.
//! - `metadata.action` other than created/updated/deleted is ignored.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::clockify::make_ref;
use super::util::{check_len, clip, kind, parse_json, secs_between, Obj};
use super::{Event, ParseContext, ParseError, Parsed};
use crate::model::{
    local_date, ApprovalStatus, EntryKey, NormalisedEntry, Origin, Source, Version, Worker,
};

/// Parse one webhook delivery.
pub fn parse(body: &[u8], ctx: &ParseContext) -> Result<Parsed, ParseError> {
    let v = parse_json(body)?;
    envelope(&v, ctx, None, "")
}

/// Parse one envelope or a JSON array of them (saved replays). Errors carry
/// the array position.
pub fn parse_many(body: &[u8], ctx: &ParseContext) -> Result<Vec<Parsed>, ParseError> {
    let v = parse_json(body)?;
    match &v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| envelope(item, ctx, Some(i), &format!("[{i}].")))
            .collect(),
        other => Ok(vec![envelope(other, ctx, None, "")?]),
    }
}

/// Parse the API v9 `GET /me/time_entries?since=` response: an array of
/// entries, deleted ones (`server_deleted_at` set) included.
pub fn parse_api_entries(
    body: &[u8],
    ctx: &ParseContext,
) -> Result<Vec<NormalisedEntry>, ParseError> {
    let v = parse_json(body)?;
    let Value::Array(items) = &v else {
        return Err(ParseError::new(
            None,
            "$",
            format!("expected an array of time entries, found {}", kind(&v)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("[{i}].");
            let m = as_object(item, Some(i), &path)?;
            entry(
                Obj::new(m, &path, Some(i)),
                false,
                &Fallbacks::default(),
                ctx,
            )
        })
        .collect()
}

/// Parse one page of the Reports API v3 detailed search (`POST
/// /reports/api/v3/workspace/{workspace_id}/search/time_entries`): an array
/// of rows, each a user / project / task / description group (`user_id`,
/// `username`, `project_id`, `task_id`, `billable`, `description`,
/// `tag_ids`, …) holding its `time_entries` (`id`, `seconds`, `start`,
/// `stop`, `at`). Each time entry becomes one entry of `workspace`, read
/// exactly as the API v9 entry of the same fields would be, so a webhook
/// and a poll of one version agree (the row's `username` is not read: a v9
/// entry carries no name either). The report lists entries that exist:
/// deletions are found by the poller, not here.
pub fn parse_report_rows(
    body: &[u8],
    workspace: &str,
    ctx: &ParseContext,
) -> Result<Vec<NormalisedEntry>, ParseError> {
    let v = parse_json(body)?;
    let Value::Array(rows) = &v else {
        return Err(ParseError::new(
            None,
            "$",
            format!("expected an array of report rows, found {}", kind(&v)),
        ));
    };
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let path = format!("[{i}].");
        let r = as_object(row, Some(i), &path)?;
        let Some(Value::Array(items)) = r.get("time_entries") else {
            return Err(ParseError::new(
                Some(i),
                format!("{path}time_entries"),
                "required field is missing",
            ));
        };
        for (j, te) in items.iter().enumerate() {
            let te_path = format!("{path}time_entries[{j}].");
            let t = as_object(te, Some(i), &te_path)?;
            // The v9 shape of this entry: the row's fields, the item's own.
            let mut m = Map::new();
            for k in [
                "user_id",
                "project_id",
                "task_id",
                "billable",
                "description",
                "tag_ids",
            ] {
                if let Some(v) = r.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
            for k in ["id", "start", "stop", "at"] {
                if let Some(v) = t.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
            if let Some(sec) = t.get("seconds") {
                m.insert("duration".into(), sec.clone());
            }
            m.insert("workspace_id".into(), Value::String(workspace.to_string()));
            let e = entry(
                Obj::new(&m, &te_path, Some(i)),
                false,
                &Fallbacks::default(),
                ctx,
            )?;
            out.push(e);
        }
    }
    Ok(out)
}

fn as_object<'a>(
    v: &'a Value,
    pos: Option<usize>,
    path: &str,
) -> Result<&'a Map<String, Value>, ParseError> {
    match v {
        Value::Object(m) => Ok(m),
        other => {
            let name = if path.is_empty() {
                "$".to_string()
            } else {
                path.trim_end_matches('.').to_string()
            };
            Err(ParseError::new(
                pos,
                name,
                format!("expected a JSON object, found {}", kind(other)),
            ))
        }
    }
}

/// What the envelope knows that a (partial) payload may not.
#[derive(Default)]
struct Fallbacks {
    workspace: Option<String>,
    user: Option<String>,
    when: Option<DateTime<Utc>>,
}

fn envelope(
    v: &Value,
    ctx: &ParseContext,
    pos: Option<usize>,
    path: &str,
) -> Result<Parsed, ParseError> {
    let root = Obj::new(as_object(v, pos, path)?, path, pos);
    let event_id = root.id("event_id")?;
    let validation_code = root.id("validation_code")?;

    let payload = root.get("payload");
    let is_ping = matches!(payload, Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("ping"))
        || (validation_code.is_some() && !matches!(payload, Some(Value::Object(_))));
    if is_ping {
        return Ok(Parsed {
            event_id,
            event: Event::Ping { validation_code },
        });
    }

    let meta_path = format!("{path}metadata.");
    let meta = root
        .object("metadata")?
        .map(|m| Obj::new(m, &meta_path, pos))
        .ok_or_else(|| root.err("metadata", "required field is missing"))?;
    let model = meta.str("model")?.unwrap_or_default();
    if !model.eq_ignore_ascii_case("time_entry") {
        return Ok(Parsed {
            event_id,
            event: Event::Ignored {
                reason: format!(
                    "Toggl event for model `{}` is not a time entry",
                    clip(model)
                ),
            },
        });
    }
    let action = meta
        .str("action")?
        .ok_or_else(|| meta.err("action", "required field is missing"))?;
    let deleted = match action.trim().to_ascii_lowercase().as_str() {
        "created" | "updated" => false,
        "deleted" => true,
        other => {
            return Ok(Parsed {
                event_id,
                event: Event::Ignored {
                    reason: format!("Toggl time entry action `{}` is not handled", clip(other)),
                },
            })
        }
    };
    let payload_path = format!("{path}payload.");
    let payload = root
        .object("payload")?
        .map(|m| Obj::new(m, &payload_path, pos))
        .ok_or_else(|| root.err("payload", "required field is missing"))?;
    let fallbacks = Fallbacks {
        workspace: meta.id("workspace_id")?,
        user: if deleted {
            meta.id("event_user_id")?
        } else {
            None
        },
        when: match root.instant("timestamp")? {
            Some(t) => Some(t),
            None => root.instant("created_at")?,
        },
    };
    let e = entry(payload, deleted, &fallbacks, ctx)?;
    Ok(Parsed {
        event_id,
        event: Event::Entries { entries: vec![e] },
    })
}

fn first_id(obj: Obj<'_>, keys: &[&str]) -> Result<Option<String>, ParseError> {
    for k in keys {
        if let Some(v) = obj.id(k)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn entry(
    obj: Obj<'_>,
    deleted_event: bool,
    fb: &Fallbacks,
    ctx: &ParseContext,
) -> Result<NormalisedEntry, ParseError> {
    let id = obj.req_id("id")?;
    let workspace = match first_id(obj, &["workspace_id", "wid"])? {
        Some(w) => w,
        None => fb
            .workspace
            .clone()
            .ok_or_else(|| obj.err("workspace_id", "required field is missing"))?,
    };
    let user_id = match first_id(obj, &["user_id", "uid"])? {
        Some(u) => u,
        None => fb
            .user
            .clone()
            .ok_or_else(|| obj.err("user_id", "required field is missing"))?,
    };
    let server_deleted = obj.instant("server_deleted_at")?;
    let deleted = deleted_event || server_deleted.is_some();
    let at = obj.instant("at")?;

    let start = obj.instant("start")?;
    if start.is_none() && !deleted {
        return Err(obj.err("start", "required field is missing"));
    }
    let stop = obj.instant("stop")?;
    let duration_field = match obj.get("duration") {
        None => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| obj.err("duration", "expected whole seconds"))?,
        ),
        Some(v) => {
            return Err(obj.err(
                "duration",
                format!("expected a number of seconds, found {}", kind(v)),
            ))
        }
    };
    // A negative duration (or no stop) is a running timer.
    let running = duration_field.is_some_and(|d| d < 0);
    let end = if running { None } else { stop };
    let duration_secs = match (start, end) {
        (Some(s), Some(e)) => {
            secs_between(s, e).ok_or_else(|| obj.err("stop", "ends before it starts"))?
        }
        _ => duration_field.filter(|d| *d >= 0).unwrap_or(0),
    };

    let tz = ctx.tz_for(&user_id);
    let date_source = start
        .or(at)
        .or(server_deleted)
        .or(fb.when)
        .or(ctx.received_at)
        .ok_or_else(|| obj.err("start", "required field is missing"))?;
    let updated_at = at
        .or(server_deleted)
        .or(fb.when)
        .or(ctx.received_at)
        .or(end)
        .unwrap_or(date_source);

    let project = make_ref(
        first_id(obj, &["project_id", "pid"])?,
        non_empty(obj.name_str("project_name")?),
    );
    let client = make_ref(
        obj.id("client_id")?,
        non_empty(obj.name_str("client_name")?),
    );
    let task = make_ref(
        first_id(obj, &["task_id", "tid"])?,
        non_empty(obj.name_str("task_name")?),
    );

    let mut tags = Vec::new();
    if let Some(items) = obj.array("tags")? {
        for (i, t) in items.iter().enumerate() {
            match t {
                Value::String(s) if !s.trim().is_empty() => {
                    check_len(&obj, &format!("tags[{i}]"), s.trim(), super::MAX_NAME_CHARS)?;
                    tags.push(s.trim().to_string())
                }
                Value::String(_) | Value::Null => {}
                v => {
                    return Err(obj.err(
                        &format!("tags[{i}]"),
                        format!("expected a tag name, found {}", kind(v)),
                    ))
                }
            }
        }
    }
    if tags.is_empty() {
        if let Some(items) = obj.array("tag_ids")? {
            for (i, t) in items.iter().enumerate() {
                match t {
                    Value::Number(n) => tags.push(n.to_string()),
                    Value::String(s) if !s.trim().is_empty() => {
                        check_len(
                            &obj,
                            &format!("tag_ids[{i}]"),
                            s.trim(),
                            super::MAX_NAME_CHARS,
                        )?;
                        tags.push(s.trim().to_string())
                    }
                    Value::String(_) | Value::Null => {}
                    v => {
                        return Err(obj.err(
                            &format!("tag_ids[{i}]"),
                            format!("expected an id, found {}", kind(v)),
                        ))
                    }
                }
            }
        }
    }

    let entry = NormalisedEntry {
        key: EntryKey::new(Source::Toggl, workspace, id),
        version: Version {
            updated_at,
            content_hash: String::new(),
        },
        worker: Worker {
            tracker_user_id: user_id,
            email: None,
            name: None,
            kind: None,
            form_1099: None,
        },
        time_zone: tz,
        work_date: local_date(date_source, tz),
        start,
        end,
        duration_secs,
        project,
        client,
        task,
        tags,
        billable: obj.bool("billable")?.unwrap_or(false),
        rate: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    const CREATED: &str = include_str!("../../../tests/fixtures/toggl/time_entry_created.json");
    const RUNNING: &str = include_str!("../../../tests/fixtures/toggl/time_entry_running.json");
    const DELETED: &str = include_str!("../../../tests/fixtures/toggl/time_entry_deleted.json");
    const PING: &str = include_str!("../../../tests/fixtures/toggl/ping.json");
    const PROJECT: &str = include_str!("../../../tests/fixtures/toggl/project_created.json");
    const API: &str = include_str!("../../../tests/fixtures/toggl/api_time_entries.json");

    /// Issue 11, point 14: a detailed-report page (Reports API v3) reads as
    /// the v9 entries of the same fields.
    #[test]
    fn report_rows_read_as_api_entries() {
        let rows = br#"[{"user_id":4001,"username":"Kim","project_id":5001,"task_id":null,
            "billable":true,"description":"Review","tag_ids":[],"hourly_rate_in_cents":null,
            "billable_amount_in_cents":null,"currency":"USD","row_number":1,
            "time_entries":[{"id":11,"seconds":1800,"start":"2026-03-02T17:00:00Z",
              "stop":"2026-03-02T17:30:00Z","at":"2026-03-02T18:00:00Z","at_tz":"2026-03-02T18:00:00Z"}]}]"#;
        let got = parse_report_rows(rows, "777", &ctx()).unwrap();
        let api = br#"[{"id":11,"workspace_id":777,"user_id":4001,"project_id":5001,"task_id":null,
            "billable":true,"start":"2026-03-02T17:00:00Z","stop":"2026-03-02T17:30:00Z",
            "duration":1800,"description":"Review","tag_ids":[],"at":"2026-03-02T18:00:00Z"}]"#;
        assert_eq!(got, parse_api_entries(api, &ctx()).unwrap());
        assert_eq!(got[0].duration_secs, 1800);
        let e = parse_report_rows(br#"[{"user_id":1}]"#, "777", &ctx()).unwrap_err();
        assert_eq!(e.field, "[0].time_entries");
    }

    fn ctx() -> ParseContext {
        let mut c = ParseContext::new(chrono_tz::UTC);
        c.user_tz.insert("6".into(), chrono_tz::Europe::Berlin);
        c
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn one(p: Parsed) -> NormalisedEntry {
        match p.event {
            Event::Entries { mut entries } if entries.len() == 1 => entries.remove(0),
            other => panic!("expected one entry, got {other:?}"),
        }
    }

    #[test]
    fn created_entry() {
        let p = parse(CREATED.as_bytes(), &ctx()).unwrap();
        assert_eq!(p.event_id.as_deref(), Some("1718191241023098"));
        let e = one(p);
        assert_eq!(e.key, EntryKey::new(Source::Toggl, "1234567", "3456789012"));
        assert_eq!(e.worker.tracker_user_id, "6");
        assert_eq!(e.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(e.start, Some(t("2026-03-02T23:15:00Z")));
        assert_eq!(e.end, Some(t("2026-03-03T01:00:00Z")));
        assert_eq!(e.duration_secs, 6300);
        // 23:15 UTC is 00:15 on the 3rd in Berlin.
        assert_eq!(e.work_date, NaiveDate::from_ymd_opt(2026, 3, 3).unwrap());
        assert_eq!(e.project.as_ref().unwrap().id, "202020");
        assert_eq!(e.task.as_ref().unwrap().id, "303030");
        assert_eq!(e.tags, ["client-work", "meeting"]);
        assert!(e.billable);
        assert_eq!(e.rate, None);
        assert_eq!(e.notes, "Sprint planning");
        assert_eq!(e.version.updated_at, t("2026-03-03T01:00:05Z"));
        assert!(!e.deleted);
    }

    #[test]
    fn running_entry_has_negative_duration_and_null_stop() {
        let e = one(parse(RUNNING.as_bytes(), &ctx()).unwrap());
        assert_eq!(e.end, None);
        assert_eq!(e.duration_secs, 0);
        assert!(e.is_running());
    }

    #[test]
    fn deleted_entry() {
        let e = one(parse(DELETED.as_bytes(), &ctx()).unwrap());
        assert!(e.deleted);
        assert_eq!(e.key.id, "3456789012");
    }

    #[test]
    fn ping_carries_the_validation_code() {
        let p = parse(PING.as_bytes(), &ctx()).unwrap();
        assert_eq!(p.event_id.as_deref(), Some("0"));
        assert_eq!(
            p.event,
            Event::Ping {
                validation_code: Some("c1f0d5b2-8a77-4f6c-9d2e-1b3a5c7e9f01".into())
            }
        );
        // A ping without a code (already validated subscription).
        let p = parse(br#"{"event_id":0,"payload":"ping","metadata":{}}"#, &ctx()).unwrap();
        assert_eq!(
            p.event,
            Event::Ping {
                validation_code: None
            }
        );
    }

    #[test]
    fn other_models_are_ignored() {
        let p = parse(PROJECT.as_bytes(), &ctx()).unwrap();
        assert!(matches!(p.event, Event::Ignored { .. }));
        assert!(p.event_id.is_some());
    }

    #[test]
    fn api_entries() {
        let es = parse_api_entries(API.as_bytes(), &ctx()).unwrap();
        assert_eq!(es.len(), 3);
        assert!(!es[0].deleted);
        assert_eq!(es[0].duration_secs, 5400);
        assert_eq!(es[0].key.workspace, "1234567");
        assert_eq!(
            es[0].project.as_ref().unwrap().name.as_deref(),
            Some("Internal")
        );
        assert!(es[1].deleted, "server_deleted_at set");
        assert!(es[2].is_running());
        let err = parse_api_entries(br#"[{"id":1,"wid":2,"uid":3,"start":"2026-03-02T10:00:00Z"},{"id":1,"wid":2,"uid":3}]"#, &ctx()).unwrap_err();
        assert_eq!(err.position, Some(1));
        assert_eq!(err.field, "[1].start");
    }

    #[test]
    fn parse_many_takes_an_array() {
        let body = format!("[{CREATED},{PING},{DELETED}]");
        let ps = parse_many(body.as_bytes(), &ctx()).unwrap();
        assert_eq!(ps.len(), 3);
        assert!(matches!(ps[1].event, Event::Ping { .. }));
        let bad = format!("[{CREATED},{{\"event_id\":9,\"metadata\":{{\"model\":\"time_entry\",\"action\":\"updated\"}},\"payload\":{{\"id\":1,\"workspace_id\":2,\"user_id\":3,\"start\":\"never\"}}}}]");
        let e = parse_many(bad.as_bytes(), &ctx()).unwrap_err();
        assert_eq!(e.position, Some(1));
        assert_eq!(e.field, "[1].payload.start");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(b"", &ctx()).unwrap_err();
        assert_eq!(e.field, "$");
        let e = parse(br#"{"event_id":1,"metadata":{"model":"time_entry","action":"created"},"payload":{"workspace_id":1,"user_id":2,"start":"2026-03-02T10:00:00Z"}}"#, &ctx()).unwrap_err();
        assert_eq!(e.field, "payload.id");
        let e = parse(br#"{"event_id":1,"metadata":{"model":"time_entry","action":"created"},"payload":{"id":5,"workspace_id":1,"start":"2026-03-02T10:00:00Z"}}"#, &ctx()).unwrap_err();
        assert_eq!(e.field, "payload.user_id");
        let e = parse(br#"{"event_id":1,"metadata":{"model":"time_entry","action":"created"},"payload":{"id":5,"workspace_id":1,"user_id":2,"start":"2026-03-02T10:00:00Z","stop":"2026-03-02T09:00:00Z","duration":5}}"#, &ctx()).unwrap_err();
        assert_eq!(e.field, "payload.stop");
    }
}
