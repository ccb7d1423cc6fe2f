//! The pure evaluation, rule by rule, and the alert-state plan.

use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;

use super::deliver::{digest_due, plan};
use super::*;
use crate::exceptions::{Exception, ExceptionCode};
use crate::model::*;
use crate::ports::AlertState;
use crate::state::{EntryState, Status};
use timepost_core::ledger::PostingLine;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_default()
}

/// Wed 2026-03-04 09:00–10:00 UTC, one hour, posted, Ann on Acme.
fn state(id: &str) -> EntryState {
    let entry = NormalisedEntry {
        key: EntryKey::new(Source::Harvest, "acct", id),
        version: Version {
            updated_at: at("2026-03-04T10:00:00Z"),
            content_hash: format!("h{id}"),
        },
        worker: Worker {
            tracker_user_id: "u1".into(),
            email: None,
            name: Some("Ann".into()),
            kind: None,
            form_1099: None,
        },
        time_zone: chrono_tz::UTC,
        work_date: NaiveDate::from_ymd_opt(2026, 3, 4).unwrap_or_default(),
        start: Some(at("2026-03-04T09:00:00Z")),
        end: Some(at("2026-03-04T10:00:00Z")),
        duration_secs: 3600,
        project: Some(Ref::new("p1", Some("Acme".into()))),
        client: None,
        task: None,
        tags: vec![],
        billable: false,
        rate: None,
        notes: String::new(),
        approval: ApprovalStatus::Approved,
        attachments: vec![],
        origin: Origin::Web,
        deleted: false,
        already_rounded: false,
    };
    let mut s = EntryState::new(entry, at("2026-03-04T10:00:00Z"));
    s.set_status(Status::Posted, s.updated_at);
    s
}

fn with_times(mut s: EntryState, start: &str, end: &str) -> EntryState {
    s.entry.start = Some(at(start));
    s.entry.end = Some(at(end));
    s.entry.duration_secs = (at(end) - at(start)).num_seconds();
    s.entry.work_date = at(start).date_naive();
    s
}

fn line(minutes: i64) -> PostingLine {
    PostingLine {
        minutes,
        ..serde_json::from_value(serde_json::json!({
            "tier": "regular", "party": {"kind": "employee", "id": "e1"},
            "txn_date": "2026-03-04", "minutes": 0, "account": "labour", "billable": false, "description": "work"
        }))
        .unwrap_or_else(|e| panic!("line: {e}"))
    }
}

fn now() -> DateTime<Utc> {
    at("2026-03-05T12:00:00Z")
}

fn quiet() -> AlertsConfig {
    // Only the rule under test is on.
    AlertsConfig {
        max_entry_hours: 0.0,
        work_days: vec![],
        earliest_hour: 0,
        latest_hour: 24,
        max_week_hours: 0.0,
        large_edit_hours: 0.0,
        closed_period: false,
        duplicates: false,
        exception_age_days: 0,
        unmapped_work: false,
        dead_letters: false,
        reconcile_breaks: false,
        token_warn_days: 14,
        silence_factor: 0.0,
        ..AlertsConfig::default()
    }
}

fn keys(c: &[Condition]) -> Vec<String> {
    c.iter().map(|c| c.key.clone()).collect()
}

fn recent(states: Vec<EntryState>) -> Snapshot {
    Snapshot {
        recent: states,
        ..Snapshot::default()
    }
}

#[test]
fn a_quiet_snapshot_raises_nothing() {
    let snap = recent(vec![state("1")]);
    assert!(evaluate(&snap, &AlertsConfig::default(), now()).is_empty());
}

#[test]
fn long_entry() {
    let rules = AlertsConfig {
        max_entry_hours: 12.0,
        ..quiet()
    };
    let long = with_times(state("1"), "2026-03-04T00:00:00Z", "2026-03-04T13:00:00Z");
    let ok = with_times(state("2"), "2026-03-04T00:00:00Z", "2026-03-04T12:00:00Z");
    let c = evaluate(&recent(vec![long, ok]), &rules, now());
    assert_eq!(keys(&c), vec!["long_entry:harvest:acct:1"]);
    assert!(c[0].said.contains("13.0 hours"), "{}", c[0].said);
    assert_eq!(c[0].link, "/console/exceptions/harvest%3Aacct%3A1");
}

#[test]
fn odd_days_and_hours() {
    let rules = AlertsConfig {
        work_days: AlertsConfig::default().work_days,
        earliest_hour: 5,
        latest_hour: 23,
        ..quiet()
    };
    let saturday = with_times(state("sat"), "2026-03-07T10:00:00Z", "2026-03-07T11:00:00Z");
    let early = with_times(
        state("early"),
        "2026-03-04T03:00:00Z",
        "2026-03-04T04:00:00Z",
    );
    let late = with_times(
        state("late"),
        "2026-03-04T22:00:00Z",
        "2026-03-04T23:30:00Z",
    );
    let normal = state("ok");
    let c = evaluate(&recent(vec![saturday, early, late, normal]), &rules, now());
    assert_eq!(
        keys(&c),
        vec![
            "odd_hours:harvest:acct:early",
            "odd_hours:harvest:acct:late",
            "odd_hours:harvest:acct:sat"
        ]
    );
    assert!(c[2].said.contains("Saturday"), "{}", c[2].said);
}

#[test]
fn odd_hours_are_read_in_the_workers_time_zone() {
    let rules = AlertsConfig {
        earliest_hour: 5,
        ..quiet()
    };
    // 03:00 UTC is 12:00 in Tokyo.
    let mut s = with_times(state("t"), "2026-03-04T03:00:00Z", "2026-03-04T04:00:00Z");
    s.entry.time_zone = chrono_tz::Asia::Tokyo;
    assert!(evaluate(&recent(vec![s]), &rules, now()).is_empty());
}

#[test]
fn weekly_overtime() {
    let rules = AlertsConfig {
        max_week_hours: 20.0,
        ..quiet()
    };
    let days = ["02", "03", "04", "05", "06"];
    let mut states: Vec<EntryState> = days
        .iter()
        .map(|d| {
            with_times(
                state(d),
                &format!("2026-03-{d}T08:00:00Z"),
                &format!("2026-03-{d}T12:30:00Z"),
            )
        })
        .collect();
    // 5 × 4.5 h = 22.5 h > 20.
    let c = evaluate(&recent(states.clone()), &rules, now());
    assert_eq!(keys(&c), vec!["weekly_overtime:harvest:acct:u1:2026-03-02"]);
    states.pop();
    assert!(evaluate(&recent(states), &rules, now()).is_empty());
}

#[test]
fn large_edit_after_posting() {
    let rules = AlertsConfig {
        large_edit_hours: 2.0,
        ..quiet()
    };
    let mut edited = with_times(state("1"), "2026-03-04T08:00:00Z", "2026-03-04T12:00:00Z");
    edited.posted_lines = vec![line(60)];
    let mut small = with_times(state("2"), "2026-03-04T08:00:00Z", "2026-03-04T10:00:00Z");
    small.posted_lines = vec![line(60)];
    let c = evaluate(&recent(vec![edited, small]), &rules, now());
    assert_eq!(keys(&c), vec!["large_edit:harvest:acct:1:h1"]);
}

#[test]
fn entry_in_a_closed_period() {
    let rules = AlertsConfig {
        closed_period: true,
        ..quiet()
    };
    let mut s = state("1");
    s.set_status(Status::Exception, s.updated_at);
    s.reason = Some(Exception::new(ExceptionCode::PeriodClosed, "closed"));
    let mut other = state("2");
    other.set_status(Status::Exception, other.updated_at);
    other.reason = Some(Exception::new(ExceptionCode::LedgerRejected, "no"));
    let snap = Snapshot {
        open: vec![s, other],
        ..Snapshot::default()
    };
    assert_eq!(
        keys(&evaluate(&snap, &rules, now())),
        vec!["closed_period:harvest:acct:1"]
    );
}

#[test]
fn suspected_duplicate() {
    let rules = AlertsConfig {
        duplicates: true,
        ..quiet()
    };
    let a = state("a");
    let b = state("b");
    let c2 = with_times(state("c"), "2026-03-04T11:00:00Z", "2026-03-04T12:00:00Z");
    let c = evaluate(&recent(vec![a, b, c2]), &rules, now());
    assert_eq!(keys(&c), vec!["duplicate:harvest:acct:a+harvest:acct:b"]);
}

#[test]
fn old_exceptions() {
    let rules = AlertsConfig {
        exception_age_days: 3,
        ..quiet()
    };
    let mut old = state("1");
    old.set_status(Status::Exception, old.updated_at);
    old.open_since = Some(at("2026-03-01T00:00:00Z"));
    let mut fresh = state("2");
    fresh.set_status(Status::Exception, fresh.updated_at);
    fresh.open_since = Some(at("2026-03-05T00:00:00Z"));
    let snap = Snapshot {
        open: vec![old, fresh.clone()],
        ..Snapshot::default()
    };
    let c = evaluate(&snap, &rules, now());
    assert_eq!(keys(&c), vec!["old_exceptions"]);
    assert!(c[0].said.starts_with("1 exception"), "{}", c[0].said);
    let snap = Snapshot {
        open: vec![fresh],
        ..Snapshot::default()
    };
    assert!(evaluate(&snap, &rules, now()).is_empty());
}

#[test]
fn unmapped_work_goes_to_the_project_owner() {
    let mut rules = AlertsConfig {
        unmapped_work: true,
        ..quiet()
    };
    rules
        .project_owners
        .insert("Acme".into(), "owner@example.com".into());
    let mut s = state("1");
    s.set_status(Status::Held, s.updated_at);
    s.reason = Some(Exception::new(ExceptionCode::UnmappedProject, "p1"));
    let snap = Snapshot {
        open: vec![s],
        ..Snapshot::default()
    };
    let c = evaluate(&snap, &rules, now());
    assert_eq!(keys(&c), vec!["unmapped_work:p1"]);
    assert_eq!(c[0].owner.as_deref(), Some("owner@example.com"));
    assert_eq!(c[0].link, "/console/mappings");
}

#[test]
fn dead_letters() {
    let rules = AlertsConfig {
        dead_letters: true,
        ..quiet()
    };
    let dl: crate::ports::DeadLetter = serde_json::from_value(serde_json::json!({
        "id": "d1", "message": {"type": "redrive", "key": {"source": "harvest", "workspace": "acct", "id": "1"}, "by": "t"}, "reason": "bad",
        "code": null, "receive_count": 3, "parked_at": "2026-03-04T00:00:00Z"
    }))
    .unwrap_or_else(|e| panic!("dead letter: {e}"));
    let snap = Snapshot {
        dead_letters: vec![dl],
        dead_letters_more: true,
        ..Snapshot::default()
    };
    let c = evaluate(&snap, &rules, now());
    assert_eq!(keys(&c), vec!["dead_letters"]);
    assert!(c[0].said.starts_with("At least 1"), "{}", c[0].said);
    assert!(evaluate(&Snapshot::default(), &rules, now()).is_empty());
}

fn run(breaks: usize) -> crate::reconcile::RunSummary {
    crate::reconcile::RunSummary {
        seq: 4,
        period: crate::reconcile::Period {
            from: NaiveDate::from_ymd_opt(2026, 2, 23).unwrap_or_default(),
            to: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
        },
        ledger: "qbo".into(),
        started_at: at("2026-03-02T06:00:00Z"),
        duration_ms: 1,
        counts: Default::default(),
        breaks,
        info: 0,
        dismissed: 0,
        ledger_reads: 1,
        tracker: "received".into(),
        by: "test".into(),
    }
}

#[test]
fn reconciliation_breaks() {
    let rules = AlertsConfig {
        reconcile_breaks: true,
        ..quiet()
    };
    let snap = Snapshot {
        latest_run: Some(run(2)),
        ..Snapshot::default()
    };
    let c = evaluate(&snap, &rules, now());
    assert_eq!(keys(&c), vec!["reconcile_breaks:2026-02-23..2026-03-01"]);
    let snap = Snapshot {
        latest_run: Some(run(0)),
        ..Snapshot::default()
    };
    assert!(evaluate(&snap, &rules, now()).is_empty());
}

#[test]
fn refresh_token_close_to_expiry_by_vendor_lifetime() {
    let rules = quiet();
    // Xero: 60 days after the last refresh; warned 14 days before.
    let token = |refreshed: &str| TokenInfo {
        ledger: "xero".into(),
        refreshed_at: Some(at(refreshed)),
        expires_at: None,
        refused: None,
    };
    let near = Snapshot {
        tokens: vec![token("2026-01-15T00:00:00Z")], // lapses 2026-03-16
        ..Snapshot::default()
    };
    let c = evaluate(&near, &rules, now());
    assert_eq!(keys(&c), vec!["token_expiry:xero"]);
    assert!(c[0].said.contains("2026-03-16"), "{}", c[0].said);
    let far = Snapshot {
        tokens: vec![token("2026-02-01T00:00:00Z")], // lapses 2026-04-02
        ..Snapshot::default()
    };
    assert!(evaluate(&far, &rules, now()).is_empty());
    // QuickBooks: 100 days.
    let qbo = TokenInfo {
        ledger: "qbo".into(),
        ..token("2025-12-01T00:00:00Z") // lapses 2026-03-11
    };
    assert_eq!(
        token_expiry(&qbo, &rules).map(|d| d.date_naive().to_string()),
        Some("2026-03-11".into())
    );
    // An announced expiry that is sooner wins.
    let announced = TokenInfo {
        expires_at: Some(at("2026-03-10T00:00:00Z")),
        ..token("2026-03-01T00:00:00Z")
    };
    assert_eq!(
        token_expiry(&announced, &rules),
        Some(at("2026-03-10T00:00:00Z"))
    );
}

#[test]
fn refresh_token_refused() {
    let snap = Snapshot {
        tokens: vec![TokenInfo {
            ledger: "qbo".into(),
            refreshed_at: Some(now()),
            expires_at: None,
            refused: Some((at("2026-03-05T11:00:00Z"), "invalid_grant".into())),
        }],
        ..Snapshot::default()
    };
    let c = evaluate(&snap, &quiet(), now());
    assert_eq!(keys(&c), vec!["token_refused:qbo"]);
    assert!(c[0].said.contains("invalid_grant"), "{}", c[0].said);
}

#[test]
fn failing_poller() {
    let h = |ok: Option<&str>, failed: Option<&str>| PollerHealth {
        source: "harvest".into(),
        last_ok: ok.map(at),
        last_failed: failed.map(at),
    };
    let snap = |p| Snapshot {
        pollers: vec![p],
        ..Snapshot::default()
    };
    let failing = snap(h(
        Some("2026-03-05T10:00:00Z"),
        Some("2026-03-05T11:00:00Z"),
    ));
    assert_eq!(
        keys(&evaluate(&failing, &quiet(), now())),
        vec!["poller_failing:harvest"]
    );
    let recovered = snap(h(
        Some("2026-03-05T11:30:00Z"),
        Some("2026-03-05T11:00:00Z"),
    ));
    assert!(evaluate(&recovered, &quiet(), now()).is_empty());
    let never_ok = snap(h(None, Some("2026-03-05T11:00:00Z")));
    assert_eq!(evaluate(&never_ok, &quiet(), now()).len(), 1);
}

#[test]
fn silent_source_in_working_hours() {
    let rules = AlertsConfig {
        work_days: AlertsConfig::default().work_days,
        silence_factor: 3.0,
        silence_min_hours: 4.0,
        silence_min_arrivals: 5,
        ..quiet()
    };
    // An arrival every working hour on Monday 2026-03-02, 09:00–13:00.
    let arrivals: Vec<EntryState> = (9..14)
        .map(|h| {
            let mut s = state(&format!("a{h}"));
            s.first_seen_at = at(&format!("2026-03-02T{h:02}:00:00Z"));
            s
        })
        .collect();
    let snap = recent(arrivals);
    // Monday 17:00: 4 working hours of silence, not more than 4.
    assert!(evaluate(&snap, &rules, at("2026-03-02T17:00:00Z")).is_empty());
    // Saturday: still only Monday's 5 working hours.
    assert!(evaluate(&snap, &rules, at("2026-03-07T12:00:00Z")).len() == 1);
    // Tuesday 10:00: 5 + 2 = 7 working hours > max(3 × 1 h, 4 h).
    let c = evaluate(&snap, &rules, at("2026-03-03T10:00:00Z"));
    assert_eq!(c.len(), 1);
    assert!(
        c[0].key.starts_with("silent_source:harvest:"),
        "{}",
        c[0].key
    );
    // Too few arrivals to learn the usual gap: nothing.
    let few = recent(snap.recent[..3].to_vec());
    assert!(evaluate(&few, &rules, at("2026-03-03T10:00:00Z")).is_empty());
}

#[test]
fn working_seconds_skip_nights_and_weekends() {
    let rules = AlertsConfig::default();
    let tz = chrono_tz::UTC;
    // Friday 17:00 → Monday 09:00: 1 h Friday + 1 h Monday.
    assert_eq!(
        working_secs(
            at("2026-03-06T17:00:00Z"),
            at("2026-03-09T09:00:00Z"),
            tz,
            &rules
        ),
        7200
    );
    assert_eq!(
        working_secs(
            at("2026-03-09T09:00:00Z"),
            at("2026-03-06T17:00:00Z"),
            tz,
            &rules
        ),
        0
    );
}

fn astate(key: &str, notified: bool) -> AlertState {
    AlertState {
        key: key.into(),
        rule: "dead_letters".into(),
        said: "x".into(),
        link: "/console/".into(),
        owner: None,
        first_fired: at("2026-03-05T00:00:00Z"),
        last_seen: at("2026-03-05T00:00:00Z"),
        notified: notified.then(|| at("2026-03-05T00:00:00Z")),
        cleared: None,
    }
}

fn cond(key: &str) -> Condition {
    Condition {
        key: key.into(),
        rule: Rule::DeadLetters,
        said: "x".into(),
        link: "/console/".into(),
        owner: None,
    }
}

#[test]
fn plan_fires_new_keeps_seen_and_clears_gone() {
    let active = vec![astate("a", true), astate("b", true)];
    let (writes, fired, cleared) = plan(&active, &[cond("a"), cond("c")], now());
    assert_eq!(fired, vec!["c"]);
    assert_eq!(cleared, vec!["b"]);
    let a = writes
        .iter()
        .find(|s| s.key == "a")
        .unwrap_or_else(|| panic!("a"));
    assert_eq!(a.last_seen, now());
    assert!(a.notified.is_some(), "a stays notified: no second notice");
    let c = writes
        .iter()
        .find(|s| s.key == "c")
        .unwrap_or_else(|| panic!("c"));
    assert!(c.notified.is_none() && c.cleared.is_none());
    let b = writes
        .iter()
        .find(|s| s.key == "b")
        .unwrap_or_else(|| panic!("b"));
    assert_eq!(b.cleared, Some(now()));
}

#[test]
fn digest_is_due_once_a_day_after_its_hour() {
    let tz = chrono_tz::Europe::Berlin;
    // 08:00 Berlin is 07:00 UTC in March.
    assert!(!digest_due(None, at("2026-03-05T06:59:00Z"), tz, 8));
    assert!(digest_due(None, at("2026-03-05T07:00:00Z"), tz, 8));
    assert!(!digest_due(
        Some(at("2026-03-05T07:05:00Z")),
        at("2026-03-05T12:00:00Z"),
        tz,
        8
    ));
    assert!(digest_due(
        Some(at("2026-03-04T07:05:00Z")),
        at("2026-03-05T12:00:00Z"),
        tz,
        8
    ));
}

fn arb_state() -> impl Strategy<Value = EntryState> {
    (
        any::<i64>(),
        -1_000_000i64..1_000_000,
        0u32..7,
        proptest::option::of(any::<i64>()),
        0usize..6,
        proptest::collection::vec(any::<i64>(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(dur, day, status, start, id, lines, deleted)| {
            let mut s = state(&id.to_string());
            s.entry.duration_secs = dur;
            s.entry.work_date = NaiveDate::from_ymd_opt(2026, 3, 4)
                .and_then(|d| d.checked_add_signed(chrono::TimeDelta::days(day)))
                .unwrap_or_default();
            s.entry.start = start.and_then(|t| DateTime::from_timestamp(t % 8_000_000_000_000, 0));
            s.entry.end = s.entry.start.and_then(|t| {
                t.checked_add_signed(chrono::TimeDelta::try_seconds(dur % 1_000_000_000)?)
            });
            s.set_status(
                Status::ALL[(status as usize) % Status::ALL.len()],
                s.updated_at,
            );
            s.posted_lines = lines.into_iter().map(line).collect();
            s.entry.deleted = deleted;
            s.open_since = start.and_then(|t| DateTime::from_timestamp(t % 8_000_000_000_000, 0));
            s.first_seen_at = s.open_since.unwrap_or_default();
            s
        })
}

proptest! {
    #[test]
    fn evaluation_never_panics(
        states in proptest::collection::vec(arb_state(), 0..12),
        max_entry in -1e9f64..1e9,
        week in -1e9f64..1e9,
        factor in -5.0f64..1e6,
        age in any::<u32>(),
        warn in any::<u32>(),
        hours in (0u32..30, 0u32..30, 0u32..30, 0u32..30),
        refreshed in proptest::option::of(any::<i64>()),
        now_secs in -8_000_000_000_000i64..8_000_000_000_000,
    ) {
        let rules = AlertsConfig {
            max_entry_hours: max_entry,
            max_week_hours: week,
            large_edit_hours: max_entry,
            silence_factor: factor,
            silence_min_arrivals: 2,
            exception_age_days: age,
            token_warn_days: warn,
            qbo_refresh_days: age,
            earliest_hour: hours.0,
            latest_hour: hours.1,
            work_start_hour: hours.2,
            work_end_hour: hours.3,
            ..AlertsConfig::default()
        };
        let now = DateTime::from_timestamp(now_secs, 0).unwrap_or_default();
        let snap = Snapshot {
            recent: states.clone(),
            open: states,
            latest_run: Some(run(1)),
            tokens: vec![TokenInfo {
                ledger: "qbo".into(),
                refreshed_at: refreshed.and_then(|t| DateTime::from_timestamp(t % 8_000_000_000_000, 0)),
                expires_at: None,
                refused: None,
            }],
            ..Snapshot::default()
        };
        let c = evaluate(&snap, &rules, now);
        let mut sorted = keys(&c);
        sorted.dedup();
        prop_assert_eq!(sorted.len(), c.len());
    }
}
