//! Harvest API v2 `GET /v2/time_entries` pages (Harvest has no webhooks).
//!
//! Page fields read: `time_entries`, `links.next`, `total_pages`.
//! Entry fields read: `id`, `spent_date` (the local work date, as is),
//! `hours` / `rounded_hours` (decimal hours), `notes`, `is_closed`
//! (approved), `is_running`, `billable`, `billable_rate`, `user{id,name}`,
//! `client{id,name}`, `project{id,name}`, `task{id,name}`,
//! `started_time` / `ended_time` (local clock times such as `8:00am`),
//! `updated_at`. Everything else (`cost_rate`, `invoice`, `external_reference`,
//! …) is dropped.
//!
//! Harvest entries do not name their account: the workspace is
//! [`ParseContext::harvest_account_id`] (`"default"` when unset). Deletions are
//! never reported by Harvest; they are found by comparing listings elsewhere.
//!
//! `duration_secs` is `round(hours × 3600)` (half away from zero), even when
//! start and end clock times are known: those have minute resolution and
//! Harvest's hours are what it bills.
//!
//! Currency: a time entry's `client` holds only `id` and `name` (Harvest API
//! v2, "Time Entries" → "The time entry object": "An object containing the
//! id and name of the associated client"; the documented example has no
//! currency), so the currency of `billable_rate` is the client's
//! (`GET /v2/clients/{id}` → `currency`, which the poller fetches and hands
//! in as [`ParseContext::harvest_client_currency`]), else the account's
//! ([`ParseContext::harvest_account_currency`]). When neither is known the
//! rate is left out (money is never guessed) and the entry still parses:
//! the rules then treat it as time without a tracker rate.
//!
//! One bad entry in a page does not fail the page: [`parse_page`] lists it
//! in [`HarvestPage::rejected`] with its reason (and whatever identifies
//! it), so a poll moves on and the entry is shown as an exception.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;

use super::clockify::make_ref;
use super::util::{clip, hours_to_secs, kind, parse_json, parse_local_time, resolve_local, Obj};
use super::{ParseContext, ParseError};
use crate::model::{
    ApprovalStatus, EntryKey, Money, NormalisedEntry, Origin, Source, Version, Worker,
};

/// One page of `GET /v2/time_entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarvestPage {
    pub entries: Vec<NormalisedEntry>,
    /// `links.next`: the URL of the next page, `None` on the last one.
    pub next: Option<String>,
    pub total_pages: Option<u32>,
    /// Entries of the page that could not be read, with the reason.
    pub rejected: Vec<Rejected>,
}

/// A time entry of a page that could not be read: what identifies it (as
/// far as it can be read) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub work_date: Option<NaiveDate>,
    pub updated_at: Option<DateTime<Utc>>,
    pub error: ParseError,
}

/// The ids of the clients of a page's entries that carry a `billable_rate`
/// (whose currency the poller must know). Unreadable parts are skipped.
pub fn rate_client_ids(body: &[u8]) -> Vec<String> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let Some(Value::Array(items)) = m.get("time_entries") else {
        return out;
    };
    for item in items {
        if item.get("billable_rate").is_none_or(Value::is_null) {
            continue;
        }
        let id = match item.get("client").and_then(|c| c.get("id")) {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => continue,
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn rejected(obj: Obj<'_>, error: ParseError) -> Rejected {
    let user_path = format!("{}user.", obj.path);
    Rejected {
        id: obj.id("id").ok().flatten(),
        user_id: child(obj, "user", &user_path)
            .ok()
            .flatten()
            .and_then(|u| u.id("id").ok().flatten()),
        work_date: obj
            .str("spent_date")
            .ok()
            .flatten()
            .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()),
        updated_at: obj.instant("updated_at").ok().flatten(),
        error,
    }
}

/// Parse one page of the time entry list.
pub fn parse_page(body: &[u8], ctx: &ParseContext) -> Result<HarvestPage, ParseError> {
    let v = parse_json(body)?;
    let Value::Object(m) = &v else {
        return Err(ParseError::new(
            None,
            "$",
            format!("expected a page object, found {}", kind(&v)),
        ));
    };
    page(Obj::new(m, "", None), ctx)
}

/// Parse a saved listing: a page, a JSON array of entries and/or pages, or a
/// single entry. Errors carry the array position (the element's index; for
/// entries inside a page, the entry's index within that page).
pub fn parse_many(body: &[u8], ctx: &ParseContext) -> Result<Vec<NormalisedEntry>, ParseError> {
    let v = parse_json(body)?;
    match &v {
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("[{i}].");
                let Value::Object(m) = item else {
                    return Err(ParseError::new(
                        Some(i),
                        format!("[{i}]"),
                        format!("expected an object, found {}", kind(item)),
                    ));
                };
                let obj = Obj::new(m, &path, Some(i));
                if obj.map.contains_key("time_entries") {
                    out.extend(strict(page(obj, ctx)?)?);
                } else {
                    out.push(entry(obj, ctx)?);
                }
            }
            Ok(out)
        }
        Value::Object(m) => {
            let obj = Obj::new(m, "", None);
            if obj.map.contains_key("time_entries") {
                strict(page(obj, ctx)?)
            } else {
                Ok(vec![entry(obj, ctx)?])
            }
        }
        other => Err(ParseError::new(
            None,
            "$",
            format!(
                "expected a page, an entry or an array, found {}",
                kind(other)
            ),
        )),
    }
}

/// A saved listing is read whole or not at all: its first bad entry is the
/// error.
fn strict(p: HarvestPage) -> Result<Vec<NormalisedEntry>, ParseError> {
    match p.rejected.into_iter().next() {
        Some(r) => Err(r.error),
        None => Ok(p.entries),
    }
}

fn page(obj: Obj<'_>, ctx: &ParseContext) -> Result<HarvestPage, ParseError> {
    let items = obj
        .array("time_entries")?
        .ok_or_else(|| obj.err("time_entries", "required field is missing"))?;
    let mut entries = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}time_entries[{i}].", obj.path);
        let Value::Object(m) = item else {
            bad.push(Rejected {
                id: None,
                user_id: None,
                work_date: None,
                updated_at: None,
                error: ParseError::new(
                    Some(i),
                    format!("{}time_entries[{i}]", obj.path),
                    format!("expected an object, found {}", kind(item)),
                ),
            });
            continue;
        };
        let o = Obj::new(m, &path, Some(i));
        match entry(o, ctx) {
            Ok(e) => entries.push(e),
            Err(error) => bad.push(rejected(o, error)),
        }
    }
    let links_path = format!("{}links.", obj.path);
    let next = match obj.object("links")? {
        Some(m) => Obj::new(m, &links_path, obj.pos)
            .str("next")?
            .map(str::to_string),
        None => None,
    };
    let total_pages = match obj.get("total_pages") {
        None => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| obj.err("total_pages", "expected a page count"))?,
        ),
        Some(v) => {
            return Err(obj.err(
                "total_pages",
                format!("expected a number, found {}", kind(v)),
            ))
        }
    };
    Ok(HarvestPage {
        entries,
        next,
        total_pages,
        rejected: bad,
    })
}

fn child<'a>(obj: Obj<'a>, key: &str, path: &'a str) -> Result<Option<Obj<'a>>, ParseError> {
    Ok(obj.object(key)?.map(|m| Obj::new(m, path, obj.pos)))
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn entry(obj: Obj<'_>, ctx: &ParseContext) -> Result<NormalisedEntry, ParseError> {
    let id = obj.req_id("id")?;
    let user_path = format!("{}user.", obj.path);
    let user = child(obj, "user", &user_path)?
        .ok_or_else(|| obj.err("user.id", "required field is missing"))?;
    let user_id = user.req_id("id")?;
    let user_name = non_empty(user.name_str("name")?);

    let spent = obj
        .str("spent_date")?
        .ok_or_else(|| obj.err("spent_date", "required field is missing"))?;
    let work_date = NaiveDate::parse_from_str(spent.trim(), "%Y-%m-%d").map_err(|_| {
        obj.err(
            "spent_date",
            format!("`{}` is not a YYYY-MM-DD date", clip(spent)),
        )
    })?;

    let (hours_key, hours, already_rounded) =
        match (ctx.harvest_use_rounded, obj.decimal("rounded_hours")?) {
            (true, Some(r)) => ("rounded_hours", r, true),
            _ => (
                "hours",
                obj.decimal("hours")?
                    .ok_or_else(|| obj.err("hours", "required field is missing"))?,
                false,
            ),
        };
    if hours.is_sign_negative() && !hours.is_zero() {
        return Err(obj.err(hours_key, "hours cannot be negative"));
    }
    let duration_secs =
        hours_to_secs(hours).ok_or_else(|| obj.err(hours_key, "hours out of range"))?;

    let updated_at = obj
        .instant("updated_at")?
        .ok_or_else(|| obj.err("updated_at", "required field is missing"))?;

    let tz = ctx.tz_for(&user_id);
    let running = obj.bool("is_running")?.unwrap_or(false);
    let local_instant = |key: &str| -> Result<Option<DateTime<Utc>>, ParseError> {
        match obj.str(key)?.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => {
                let time = parse_local_time(s)
                    .ok_or_else(|| obj.err(key, format!("`{}` is not a clock time", clip(s))))?;
                resolve_local(work_date.and_time(time), tz)
                    .map(Some)
                    .ok_or_else(|| obj.err(key, "no such local time"))
            }
        }
    };
    let start = local_instant("started_time")?;
    let mut end = if running {
        None
    } else {
        local_instant("ended_time")?
    };
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            // Past midnight: the end is on the next day.
            end = e.checked_add_signed(Duration::days(1));
        }
    }

    let client_path = format!("{}client.", obj.path);
    let client_obj = child(obj, "client", &client_path)?;
    let project_path = format!("{}project.", obj.path);
    let project_obj = child(obj, "project", &project_path)?;
    let task_path = format!("{}task.", obj.path);
    let task_obj = child(obj, "task", &task_path)?;
    let as_ref = |o: Option<Obj<'_>>| -> Result<Option<crate::model::Ref>, ParseError> {
        match o {
            None => Ok(None),
            Some(o) => Ok(make_ref(o.id("id")?, non_empty(o.name_str("name")?))),
        }
    };

    // The currency of `billable_rate`: the client's, else the account's;
    // unknown → no rate (never guessed, never a parse failure).
    let client_id = match client_obj {
        Some(c) => c.id("id")?,
        None => None,
    };
    let currency = client_id
        .as_ref()
        .and_then(|id| ctx.harvest_client_currency.get(id))
        .or(ctx.harvest_account_currency.as_ref());
    let rate = match (obj.decimal("billable_rate")?, currency) {
        (Some(amount), Some(currency)) => Some(Money::new(amount.normalize(), currency.clone())),
        _ => None,
    };

    let approval = if obj.bool("is_closed")?.unwrap_or(false) {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Pending
    };

    let entry = NormalisedEntry {
        key: EntryKey::new(Source::Harvest, ctx.harvest_workspace(), id),
        version: Version {
            updated_at,
            content_hash: String::new(),
        },
        worker: Worker {
            tracker_user_id: user_id,
            email: None,
            name: user_name,
            kind: None,
            form_1099: None,
        },
        time_zone: tz,
        work_date,
        start,
        end,
        duration_secs,
        project: as_ref(project_obj)?,
        client: as_ref(client_obj)?,
        task: as_ref(task_obj)?,
        tags: Vec::new(),
        billable: obj.bool("billable")?.unwrap_or(false),
        rate,
        notes: obj.notes_str("notes")?.unwrap_or_default().to_string(),
        approval,
        attachments: Vec::new(),
        origin: Origin::Web,
        deleted: false,
        already_rounded,
    };
    Ok(entry.seal())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    const PAGE: &str = include_str!("../../../tests/fixtures/harvest/time_entries_page.json");
    const LAST: &str = include_str!("../../../tests/fixtures/harvest/time_entries_last_page.json");

    fn ctx() -> ParseContext {
        let mut c = ParseContext::new(chrono_tz::America::Chicago);
        c.harvest_account_id = Some("987654".into());
        // As the poller fetches it: GET /v2/clients/5735776 → currency.
        c.harvest_client_currency
            .insert("5735776".into(), "USD".parse().unwrap());
        c
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn page_of_entries() {
        let p = parse_page(PAGE.as_bytes(), &ctx()).unwrap();
        assert_eq!(p.total_pages, Some(2));
        assert_eq!(
            p.next.as_deref(),
            Some("https://api.harvestapp.com/v2/time_entries?cursor=eyJhZnRlciI6eyJpZCI6NjM2NzA5MzU1fX0&per_page=2000")
        );
        assert_eq!(p.entries.len(), 3);
        let e = &p.entries[0];
        assert_eq!(e.key, EntryKey::new(Source::Harvest, "987654", "636709355"));
        assert_eq!(e.worker.tracker_user_id, "1782959");
        assert_eq!(e.worker.name.as_deref(), Some("Kim Allen"));
        assert_eq!(e.work_date, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        assert_eq!(e.duration_secs, 5400);
        assert!(!e.already_rounded);
        assert_eq!(e.start, Some(t("2026-03-02T14:00:00Z")));
        assert_eq!(e.end, Some(t("2026-03-02T15:30:00Z")));
        assert_eq!(e.approval, ApprovalStatus::Approved);
        assert_eq!(e.rate.as_ref().unwrap().amount, Decimal::new(1000, 1));
        assert_eq!(e.rate.as_ref().unwrap().currency.as_str(), "USD");
        assert_eq!(e.client.as_ref().unwrap().name.as_deref(), Some("ABC Ltd"));
        assert_eq!(e.project.as_ref().unwrap().id, "14307913");
        assert_eq!(
            e.task.as_ref().unwrap().name.as_deref(),
            Some("Programming")
        );
        assert_eq!(e.notes, "Adding CSS styling");
        assert_eq!(e.version.updated_at, t("2026-03-02T16:01:23Z"));
        // No clock times, not closed, no rate.
        let e = &p.entries[1];
        assert_eq!(e.start, None);
        assert_eq!(e.approval, ApprovalStatus::Pending);
        assert_eq!(e.rate, None);
        assert_eq!(e.duration_secs, 4680); // 1.3 h
                                           // Running timer.
        let e = &p.entries[2];
        assert!(e.is_running());
    }

    #[test]
    fn rounded_hours_when_configured() {
        let mut c = ctx();
        c.harvest_use_rounded = true;
        let p = parse_page(PAGE.as_bytes(), &c).unwrap();
        assert_eq!(p.entries[1].duration_secs, 5400); // rounded_hours 1.5
        assert!(p.entries[1].already_rounded);
    }

    #[test]
    fn last_page_and_default_workspace() {
        let p = parse_page(LAST.as_bytes(), &ParseContext::new(chrono_tz::UTC)).unwrap();
        assert_eq!(p.next, None);
        assert_eq!(p.entries[0].key.workspace, "default");
        // Ended past midnight.
        let e = &p.entries[0];
        assert_eq!(e.end.unwrap() - e.start.unwrap(), Duration::hours(2));
    }

    #[test]
    fn parse_many_shapes() {
        assert_eq!(parse_many(PAGE.as_bytes(), &ctx()).unwrap().len(), 3);
        let arr = format!("[{PAGE},{LAST}]");
        assert_eq!(parse_many(arr.as_bytes(), &ctx()).unwrap().len(), 4);
        let v: serde_json::Value = serde_json::from_str(PAGE).unwrap();
        let entries = serde_json::to_string(&v["time_entries"]).unwrap();
        assert_eq!(parse_many(entries.as_bytes(), &ctx()).unwrap().len(), 3);
        let single = serde_json::to_string(&v["time_entries"][0]).unwrap();
        assert_eq!(parse_many(single.as_bytes(), &ctx()).unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_page(b"{\"time_entries\": [", &ctx()).unwrap_err();
        assert_eq!(e.field, "$");
        let one = |body: &[u8]| {
            let p = parse_page(body, &ctx()).unwrap();
            assert!(p.entries.is_empty());
            assert_eq!(p.rejected.len(), 1);
            p.rejected.into_iter().next().unwrap()
        };
        let r = one(br#"{"time_entries":[{"id":1,"user":{"id":2},"spent_date":"2026-03-02","updated_at":"2026-03-02T10:00:00Z"}]}"#);
        assert_eq!(r.error.field, "time_entries[0].hours");
        assert_eq!(r.error.position, Some(0));
        assert_eq!(r.id.as_deref(), Some("1"));
        assert_eq!(r.user_id.as_deref(), Some("2"));
        assert_eq!(r.updated_at, Some(t("2026-03-02T10:00:00Z")));
        let r = one(br#"{"time_entries":[{"id":1,"user":{"id":2},"spent_date":"03/02/2026","hours":1,"updated_at":"2026-03-02T10:00:00Z"}]}"#);
        assert_eq!(r.error.field, "time_entries[0].spent_date");
        assert_eq!(r.work_date, None);
        let r = one(br#"{"time_entries":[{"id":1,"user":{"id":2},"spent_date":"2026-03-02","hours":-1,"updated_at":"2026-03-02T10:00:00Z"}]}"#);
        assert_eq!(r.error.field, "time_entries[0].hours");
        assert_eq!(r.work_date, NaiveDate::from_ymd_opt(2026, 3, 2));
        // A saved listing is strict: the bad entry is the error.
        let e = parse_many(br#"{"time_entries":[{"id":1,"user":{"id":2},"spent_date":"2026-03-02","hours":-1,"updated_at":"2026-03-02T10:00:00Z"}]}"#, &ctx()).unwrap_err();
        assert_eq!(e.field, "time_entries[0].hours");
    }

    #[test]
    fn one_bad_entry_does_not_fail_the_page() {
        let mut v: serde_json::Value = serde_json::from_str(PAGE).unwrap();
        v["time_entries"][1]["hours"] = serde_json::json!("lots");
        let body = serde_json::to_vec(&v).unwrap();
        let p = parse_page(&body, &ctx()).unwrap();
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].id.as_deref(), Some("636708723"));
        assert_eq!(p.rejected[0].error.field, "time_entries[1].hours");
        assert!(p.next.is_some());
    }

    #[test]
    fn rate_currency_comes_from_the_client_else_the_account_else_none() {
        // The documented entry shape: `client` has id and name only.
        let body = br#"{"time_entries":[{"id":1,"user":{"id":2},"spent_date":"2026-03-02","hours":1,"billable":true,"billable_rate":100.0,"client":{"id":5735774,"name":"ABC Corp"},"updated_at":"2026-03-02T10:00:00Z"}]}"#;
        assert_eq!(rate_client_ids(body), vec!["5735774".to_string()]);
        // Unknown currency: the entry parses, without a rate.
        let p = parse_page(body, &ctx()).unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.entries[0].rate, None);
        assert!(p.entries[0].billable);
        // The account's currency.
        let mut c = ctx();
        c.harvest_account_currency = Some("GBP".parse().unwrap());
        let e = &parse_page(body, &c).unwrap().entries[0];
        assert_eq!(e.rate.as_ref().unwrap().currency.as_str(), "GBP");
        // The client's own currency wins.
        c.harvest_client_currency
            .insert("5735774".into(), "EUR".parse().unwrap());
        let e = &parse_page(body, &c).unwrap().entries[0];
        assert_eq!(e.rate.as_ref().unwrap().currency.as_str(), "EUR");
        assert_eq!(e.rate.as_ref().unwrap().amount, Decimal::new(100, 0));
        // Entries without a rate need no currency.
        assert!(rate_client_ids(PAGE.as_bytes()).contains(&"5735776".to_string()));
        assert_eq!(rate_client_ids(b"not json"), Vec::<String>::new());
    }
}
