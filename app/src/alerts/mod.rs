//! Alerts: conditions finance should hear about, found by a PURE
//! evaluation ([`evaluate`]: a plain data [`Snapshot`] + the `[alerts]`
//! rules + now → the set of active [`Condition`]s) kept apart from the I/O
//! that gathers the snapshot ([`gather`]) and from delivery ([`deliver`]:
//! alert state, once per condition, the daily digest, the [`Notifier`]s).
//!
//! Every condition has a stable key (the same situation gives the same key
//! on every pass, so it fires once until it clears), a bookkeeper's
//! sentence, the console page that resolves it, and, for unmapped work, the
//! project owner's e-mail when `[alerts] project_owners` names one.
//!
//! [`Notifier`]: crate::ports::Notifier

pub use crate::config::alerts as config;
pub mod deliver;
pub mod gather;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use config::AlertsConfig;

use crate::exceptions::ExceptionCode;
use crate::ports::DeadLetter;
use crate::reconcile::RunSummary;
use crate::state::{EntryState, Status};

/// Which rule raised a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    LongEntry,
    OddHours,
    WeeklyOvertime,
    LargeEdit,
    ClosedPeriod,
    Duplicate,
    OldExceptions,
    UnmappedWork,
    DeadLetters,
    ReconcileBreaks,
    TokenExpiry,
    TokenRefused,
    SilentSource,
    PollerFailing,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::LongEntry => "long_entry",
            Rule::OddHours => "odd_hours",
            Rule::WeeklyOvertime => "weekly_overtime",
            Rule::LargeEdit => "large_edit",
            Rule::ClosedPeriod => "closed_period",
            Rule::Duplicate => "duplicate",
            Rule::OldExceptions => "old_exceptions",
            Rule::UnmappedWork => "unmapped_work",
            Rule::DeadLetters => "dead_letters",
            Rule::ReconcileBreaks => "reconcile_breaks",
            Rule::TokenExpiry => "token_expiry",
            Rule::TokenRefused => "token_refused",
            Rule::SilentSource => "silent_source",
            Rule::PollerFailing => "poller_failing",
        }
    }
}

/// One active alert condition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Condition {
    /// Stable: the same situation gives the same key on every pass.
    pub key: String,
    pub rule: Rule,
    /// What is wrong, in a bookkeeper's words.
    pub said: String,
    /// The console page that resolves it (a path under the console; the
    /// notifier prefixes the configured console address).
    pub link: String,
    /// Who else should hear about it (a project owner's e-mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What the store says about a ledger's refresh token (see
/// `timepost_core::ledger::tokens::TokenState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// `qbo` or `xero`.
    pub ledger: String,
    /// When the current refresh token was last exchanged successfully (its
    /// lifetime starts again then).
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The expiry the vendor announced for it, when it announces one.
    pub expires_at: Option<DateTime<Utc>>,
    /// The last refusal of the refresh token, if it has not worked since.
    pub refused: Option<(DateTime<Utc>, String)>,
}

/// When a poller last succeeded and last failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollerHealth {
    pub source: String,
    pub last_ok: Option<DateTime<Utc>>,
    pub last_failed: Option<DateTime<Utc>>,
}

/// Everything evaluation reads: plain data, gathered by [`gather`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Entries worked in the look-back window (bounded by `max_entries`).
    pub recent: Vec<EntryState>,
    /// Entries in exception or held (bounded), oldest first.
    pub open: Vec<EntryState>,
    /// Parked messages (bounded) and whether more exist than were read.
    pub dead_letters: Vec<DeadLetter>,
    pub dead_letters_more: bool,
    /// The newest stored reconciliation run.
    pub latest_run: Option<RunSummary>,
    pub tokens: Vec<TokenInfo>,
    pub pollers: Vec<PollerHealth>,
}

fn hours(secs: i64) -> String {
    let h = secs as f64 / 3600.0;
    format!("{h:.1}")
}

fn who(e: &EntryState) -> String {
    let w = &e.entry.worker;
    w.name
        .clone()
        .or_else(|| w.email.clone())
        .unwrap_or_else(|| w.tracker_user_id.clone())
}

fn project(e: &EntryState) -> String {
    match &e.entry.project {
        Some(p) => p.name.clone().unwrap_or_else(|| p.id.clone()),
        None => "no project".into(),
    }
}

fn detail(e: &EntryState) -> String {
    let key = e.entry.key.to_string();
    let enc: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/console/exceptions/{enc}")
}

/// Entries that count as work (not voided, ignored or deleted).
fn live(e: &EntryState) -> bool {
    !e.entry.deleted && !matches!(e.status(), Status::Voided | Status::Ignored)
}

fn secs_of_hours(h: f64) -> i64 {
    if !h.is_finite() || h <= 0.0 {
        return 0;
    }
    (h * 3600.0).min(i64::MAX as f64 / 2.0) as i64
}

/// The active conditions of `snap` under `rules` at `now`, sorted by key,
/// one per key. Pure: no I/O, no clock.
pub fn evaluate(snap: &Snapshot, rules: &AlertsConfig, now: DateTime<Utc>) -> Vec<Condition> {
    let mut out: BTreeMap<String, Condition> = BTreeMap::new();
    let mut add = |c: Condition| {
        out.entry(c.key.clone()).or_insert(c);
    };
    // The same entry may be in both lists; look at each once.
    let mut seen = BTreeSet::new();
    let entries: Vec<&EntryState> = snap
        .recent
        .iter()
        .chain(snap.open.iter())
        .filter(|e| seen.insert(e.entry.key.to_string()))
        .collect();
    let tz = rules.time_zone;

    for e in entries.iter().copied().filter(|e| live(e)) {
        let key = e.entry.key.to_string();
        // Longer than N hours.
        let max = secs_of_hours(rules.max_entry_hours);
        if max > 0 && e.entry.duration_secs > max {
            add(Condition {
                key: format!("long_entry:{key}"),
                rule: Rule::LongEntry,
                said: format!(
                    "{} logged {} hours in one entry on {} ({}), more than the {} hours the alert rules call plausible; most often a timer left running.",
                    who(e), hours(e.entry.duration_secs), e.entry.work_date, project(e), rules.max_entry_hours
                ),
                link: detail(e),
                owner: None,
            });
        }
        // Work on implausible days or hours (the worker's own time zone).
        if let Some(why) = odd_time(e, rules) {
            add(Condition {
                key: format!("odd_hours:{key}"),
                rule: Rule::OddHours,
                said: format!(
                    "{} recorded work {} ({}, {}): check the entry is real and dated right.",
                    who(e),
                    why,
                    e.entry.work_date,
                    project(e)
                ),
                link: detail(e),
                owner: None,
            });
        }
        // A large edit after posting: the books hold one duration, the
        // tracker now says another.
        let edit = secs_of_hours(rules.large_edit_hours);
        if edit > 0 && !e.posted_lines.is_empty() {
            let posted: i64 = e
                .posted_lines
                .iter()
                .fold(0i64, |a, l| a.saturating_add(l.minutes.saturating_mul(60)));
            let diff = e
                .entry
                .duration_secs
                .saturating_sub(posted)
                .saturating_abs();
            if diff >= edit {
                add(Condition {
                    key: format!("large_edit:{key}:{}", e.entry.version.content_hash),
                    rule: Rule::LargeEdit,
                    said: format!(
                        "{}'s entry of {} ({}) was changed by {} hours after it was posted (books: {} h, tracker now: {} h); make sure the change was meant before it reaches the books.",
                        who(e), e.entry.work_date, project(e), hours(diff), hours(posted), hours(e.entry.duration_secs)
                    ),
                    link: detail(e),
                    owner: None,
                });
            }
        }
        // An entry in a closed period.
        if rules.closed_period
            && e.status() == Status::Exception
            && e.reason.as_ref().map(|r| r.code) == Some(ExceptionCode::PeriodClosed)
        {
            add(Condition {
                key: format!("closed_period:{key}"),
                rule: Rule::ClosedPeriod,
                said: format!(
                    "{}'s time on {} ({}) falls in an accounting period that is closed in the books, so it is not posted.",
                    who(e), e.entry.work_date, project(e)
                ),
                link: detail(e),
                owner: None,
            });
        }
    }

    // Weekly overtime above N hours, per worker-week.
    let week_max = secs_of_hours(rules.max_week_hours);
    if week_max > 0 {
        let mut weeks: BTreeMap<(String, String, String, NaiveDate), (i64, String)> =
            BTreeMap::new();
        for e in entries.iter().filter(|e| live(e)) {
            let k = (
                e.entry.key.source.as_str().to_string(),
                e.entry.key.workspace.clone(),
                e.entry.worker.tracker_user_id.clone(),
                e.entry.week_start(),
            );
            let slot = weeks.entry(k).or_insert((0, who(e)));
            slot.0 = slot.0.saturating_add(e.entry.duration_secs.max(0));
        }
        for ((src, ws, user, week), (secs, name)) in weeks {
            if secs > week_max {
                add(Condition {
                    key: format!("weekly_overtime:{src}:{ws}:{user}:{week}"),
                    rule: Rule::WeeklyOvertime,
                    said: format!(
                        "{name} logged {} hours in the week of {week}, more than the {} hours the alert rules allow before someone looks.",
                        hours(secs), rules.max_week_hours
                    ),
                    link: "/console/approvals".into(),
                    owner: None,
                });
            }
        }
    }

    // A suspected duplicate: same person, day, project, duration and start
    // under two different entry ids.
    if rules.duplicates {
        let mut groups: BTreeMap<String, Vec<&EntryState>> = BTreeMap::new();
        for e in entries
            .iter()
            .copied()
            .filter(|e| live(e) && e.entry.duration_secs > 0)
        {
            let fp = format!(
                "{}|{}|{}|{}|{}|{}|{}",
                e.entry.key.source.as_str(),
                e.entry.key.workspace,
                e.entry.worker.tracker_user_id,
                e.entry.work_date,
                e.entry
                    .project
                    .as_ref()
                    .map(|p| p.id.as_str())
                    .unwrap_or(""),
                e.entry.duration_secs,
                e.entry.start.map(|s| s.to_rfc3339()).unwrap_or_default()
            );
            groups.entry(fp).or_default().push(e);
        }
        for group in groups.values().filter(|g| g.len() > 1) {
            let mut keys: Vec<String> = group.iter().map(|e| e.entry.key.to_string()).collect();
            keys.sort();
            let e = group[0];
            add(Condition {
                key: format!("duplicate:{}", keys.join("+")),
                rule: Rule::Duplicate,
                said: format!(
                    "{} has {} entries of {} hours on {} for {} with the same start: probably the same work recorded twice ({}). Delete the copy in the tracker.",
                    who(e), keys.len(), hours(e.entry.duration_secs), e.entry.work_date, project(e), keys.join(", ")
                ),
                link: detail(e),
                owner: None,
            });
        }
    }

    // Exceptions older than N days: one condition for all of them.
    if rules.exception_age_days > 0 {
        let limit = TimeDelta::try_days(i64::from(rules.exception_age_days))
            .and_then(|d| now.checked_sub_signed(d));
        if let Some(limit) = limit {
            let old: Vec<&EntryState> = snap
                .open
                .iter()
                .filter(|e| e.status() == Status::Exception)
                .filter(|e| e.open_since.unwrap_or(e.updated_at) <= limit)
                .collect();
            if let Some(oldest) = old
                .iter()
                .map(|e| e.open_since.unwrap_or(e.updated_at))
                .min()
            {
                add(Condition {
                    key: "old_exceptions".into(),
                    rule: Rule::OldExceptions,
                    said: format!(
                        "{} exception(s) have waited more than {} days for finance (the oldest since {}); they are not in the books.",
                        old.len(), rules.exception_age_days, oldest.date_naive()
                    ),
                    link: "/console/exceptions".into(),
                    owner: None,
                });
            }
        }
    }

    // Unmapped work, per project, to the project's owner when named.
    if rules.unmapped_work {
        let mut by_project: BTreeMap<String, (String, usize, i64)> = BTreeMap::new();
        for e in snap.open.iter().filter(|e| {
            matches!(e.status(), Status::Held | Status::Exception)
                && e.reason.as_ref().is_some_and(|r| unmapped(r.code))
        }) {
            let id = e
                .entry
                .project
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default();
            let slot = by_project.entry(id).or_insert((project(e), 0, 0));
            slot.1 += 1;
            slot.2 = slot.2.saturating_add(e.entry.duration_secs.max(0));
        }
        for (id, (name, n, secs)) in by_project {
            let owner = rules
                .project_owners
                .get(&id)
                .or_else(|| rules.project_owners.get(&name))
                .cloned();
            add(Condition {
                key: format!("unmapped_work:{id}"),
                rule: Rule::UnmappedWork,
                said: format!(
                    "{n} entr{} ({} hours) on project {name} wait for a mapping (person, project, service item or account) before they can reach the books.",
                    if n == 1 { "y" } else { "ies" }, hours(secs)
                ),
                link: "/console/mappings".into(),
                owner,
            });
        }
    }

    // A non-empty dead-letter queue.
    if rules.dead_letters && !snap.dead_letters.is_empty() {
        let n = snap.dead_letters.len();
        add(Condition {
            key: "dead_letters".into(),
            rule: Rule::DeadLetters,
            said: format!(
                "{}{n} message(s) could not be processed and wait in the dead-letter queue; the time in them is not in the books.",
                if snap.dead_letters_more { "At least " } else { "" }
            ),
            link: "/console/exceptions".into(),
            owner: None,
        });
    }

    // Reconciliation breaks in the newest stored run.
    if rules.reconcile_breaks {
        if let Some(run) = snap.latest_run.as_ref().filter(|r| r.breaks > 0) {
            add(Condition {
                key: format!("reconcile_breaks:{}..{}", run.period.from, run.period.to),
                rule: Rule::ReconcileBreaks,
                said: format!(
                    "The books and timepost disagree for {} to {}: the reconciliation of {} found {} break(s).",
                    run.period.from, run.period.to, run.started_at.date_naive(), run.breaks
                ),
                link: "/console/reconciliation".into(),
                owner: None,
            });
        }
    }

    // The ledger's refresh token: close to expiry, or refused.
    for t in &snap.tokens {
        if let Some((at, code)) = &t.refused {
            add(Condition {
                key: format!("token_refused:{}", t.ledger),
                rule: Rule::TokenRefused,
                said: format!(
                    "{} refused timepost's refresh token on {} ({code}): nothing reaches the books until an admin reconnects the company and stores the new refresh token.",
                    crate::reconcile::ledger_words(&t.ledger), at.date_naive()
                ),
                link: "/console/exceptions".into(),
                owner: None,
            });
        }
        if let Some(expires) = token_expiry(t, rules) {
            let warn = TimeDelta::try_days(i64::from(rules.token_warn_days));
            let due = warn.and_then(|w| expires.checked_sub_signed(w));
            if due.is_some_and(|d| now >= d) {
                add(Condition {
                    key: format!("token_expiry:{}", t.ledger),
                    rule: Rule::TokenExpiry,
                    said: format!(
                        "timepost's refresh token for {} expires on {} unless timepost uses it before then; if it lapses, an admin must reconnect the company.",
                        crate::reconcile::ledger_words(&t.ledger), expires.date_naive()
                    ),
                    link: "/console/".into(),
                    owner: None,
                });
            }
        }
    }

    // A failing poller.
    for p in &snap.pollers {
        let failing = match (p.last_failed, p.last_ok) {
            (Some(f), Some(ok)) => f > ok,
            (Some(_), None) => true,
            _ => false,
        };
        if failing {
            add(Condition {
                key: format!("poller_failing:{}", p.source),
                rule: Rule::PollerFailing,
                said: format!(
                    "The {} poller's last run failed ({}){}: new and changed time is not coming in from {}.",
                    p.source,
                    p.last_failed.map(|f| f.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default(),
                    p.last_ok.map(|o| format!(", last success {}", o.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default(),
                    p.source
                ),
                link: "/console/".into(),
                owner: None,
            });
        }
    }

    // A source silent for longer than its usual gap, in working hours.
    if rules.silence_factor.is_finite() && rules.silence_factor > 0.0 {
        let mut arrivals: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
        for e in &snap.recent {
            arrivals
                .entry(e.entry.key.source.as_str().to_string())
                .or_default()
                .push(e.first_seen_at);
        }
        for (source, mut times) in arrivals {
            times.sort();
            times.dedup();
            if times.len() < rules.silence_min_arrivals.max(2) {
                continue;
            }
            let usual = times
                .windows(2)
                .map(|w| working_secs(w[0], w[1], tz, rules))
                .max()
                .unwrap_or(0);
            let last = times[times.len() - 1];
            if last > now {
                continue;
            }
            let silent = working_secs(last, now, tz, rules);
            let limit = ((usual as f64) * rules.silence_factor)
                .max(secs_of_hours(rules.silence_min_hours) as f64);
            if silent as f64 > limit {
                add(Condition {
                    key: format!("silent_source:{source}:{}", last.timestamp()),
                    rule: Rule::SilentSource,
                    said: format!(
                        "Nothing has arrived from {source} for {} working hours (since {}), longer than its usual gap of {} working hours: check the webhook or the poller.",
                        hours(silent), last.format("%Y-%m-%d %H:%M UTC"), hours(usual)
                    ),
                    link: "/console/".into(),
                    owner: None,
                });
            }
        }
    }

    out.into_values().collect()
}

fn unmapped(code: ExceptionCode) -> bool {
    matches!(
        code,
        ExceptionCode::UnmappedEmployee
            | ExceptionCode::UnmappedProject
            | ExceptionCode::UnmappedServiceItem
            | ExceptionCode::UnmappedPayrollItem
            | ExceptionCode::UnmappedGlAccount
    )
}

/// When the refresh token lapses: the vendor's announced expiry, or its
/// lifetime after the last successful refresh (QuickBooks 100 days, Xero
/// 60: `[alerts] qbo_refresh_days` / `xero_refresh_days`), whichever is
/// sooner.
pub fn token_expiry(t: &TokenInfo, rules: &AlertsConfig) -> Option<DateTime<Utc>> {
    let days = match t.ledger.as_str() {
        "qbo" => rules.qbo_refresh_days,
        "xero" => rules.xero_refresh_days,
        _ => 0,
    };
    let by_age = t.refreshed_at.and_then(|r| {
        TimeDelta::try_days(i64::from(days))
            .filter(|_| days > 0)
            .and_then(|d| r.checked_add_signed(d))
    });
    match (by_age, t.expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Why the entry's time is implausible, if it is: a day outside
/// `work_days`, or a start before `earliest_hour` / an end after
/// `latest_hour` in the entry's own time zone.
fn odd_time(e: &EntryState, rules: &AlertsConfig) -> Option<String> {
    let day = e.entry.work_date.weekday();
    if !rules.work_days.is_empty() && !rules.work_days.contains(&config::Day::of(day)) {
        return Some(format!("on a {}", day_name(day)));
    }
    let tz = e.entry.time_zone;
    if let Some(start) = e.entry.start {
        let h = start.with_timezone(&tz).hour();
        if h < rules.earliest_hour {
            return Some(format!("starting at {:02}:00 local time", h));
        }
    }
    if let Some(end) = e.entry.end {
        let local = end.with_timezone(&tz);
        let late = local.hour() > rules.latest_hour
            || (local.hour() == rules.latest_hour && local.minute() > 0);
        if rules.latest_hour < 24 && late && local.date_naive() == e.entry.work_date {
            return Some(format!(
                "until {:02}:{:02} local time",
                local.hour(),
                local.minute()
            ));
        }
        if local.date_naive() > e.entry.work_date && rules.latest_hour < 24 {
            return Some("past midnight".into());
        }
    }
    None
}

fn day_name(d: chrono::Weekday) -> &'static str {
    match d {
        chrono::Weekday::Mon => "Monday",
        chrono::Weekday::Tue => "Tuesday",
        chrono::Weekday::Wed => "Wednesday",
        chrono::Weekday::Thu => "Thursday",
        chrono::Weekday::Fri => "Friday",
        chrono::Weekday::Sat => "Saturday",
        chrono::Weekday::Sun => "Sunday",
    }
}

/// Seconds of working time (a `work_days` day, `work_start_hour` to
/// `work_end_hour` in `tz`) between `a` and `b`. Looks at most 366 days.
pub fn working_secs(a: DateTime<Utc>, b: DateTime<Utc>, tz: Tz, rules: &AlertsConfig) -> i64 {
    if b <= a {
        return 0;
    }
    let (h0, h1) = (
        rules.work_start_hour.min(24),
        rules.work_end_hour.clamp(rules.work_start_hour.min(24), 24),
    );
    let mut total = 0i64;
    let mut day = a.with_timezone(&tz).date_naive();
    let last = b.with_timezone(&tz).date_naive();
    for _ in 0..=366 {
        if day > last {
            break;
        }
        let works =
            rules.work_days.is_empty() || rules.work_days.contains(&config::Day::of(day.weekday()));
        if works {
            let at = |h: u32| {
                let t = if h >= 24 {
                    day.succ_opt()?.and_hms_opt(0, 0, 0)?
                } else {
                    day.and_hms_opt(h, 0, 0)?
                };
                t.and_local_timezone(tz)
                    .earliest()
                    .map(|x| x.with_timezone(&Utc))
            };
            if let (Some(s), Some(e)) = (at(h0), at(h1)) {
                let lo = s.max(a);
                let hi = e.min(b);
                if hi > lo {
                    total = total.saturating_add((hi - lo).num_seconds());
                }
            }
        }
        match day.succ_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    total
}

#[cfg(test)]
mod tests;
