//! The KPI "reconciliation time": how long after a period ends the books
//! first agree with it — from the period's end (midnight UTC after its
//! last day) to the start of the first stored run of that period with zero
//! (counted) breaks. Pure: measured from the stored [`RunSummary`]s and a
//! `now`, no I/O.
//!
//! A period whose runs after its end all found breaks is "not yet"
//! reconciled: no figure is given for it, and it does not enter the
//! median. Runs made while the period was still open (the schedule's
//! current week) do not count: a week cannot be signed off before it ends.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Period, RunSummary};

/// Where one period stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// The period has not ended yet at `now`.
    Open,
    /// Ended, and no run since its end found zero breaks.
    NotYet {
        /// Runs of the period stored after its end.
        runs_since_end: usize,
        /// Counted breaks of the newest of them.
        #[serde(skip_serializing_if = "Option::is_none")]
        open_breaks: Option<usize>,
    },
    /// The first run after the end with zero breaks.
    Reconciled {
        run: u64,
        at: DateTime<Utc>,
        /// Period end → that run, in whole minutes.
        minutes: i64,
    },
}

/// One period's reconciliation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodTime {
    pub period: Period,
    /// Midnight UTC after the period's last day.
    pub ended_at: DateTime<Utc>,
    #[serde(flatten)]
    pub standing: Standing,
}

impl PeriodTime {
    pub fn minutes(&self) -> Option<i64> {
        match self.standing {
            Standing::Reconciled { minutes, .. } => Some(minutes),
            _ => None,
        }
    }

    /// The figure in words: a duration, "not yet" or "period not over".
    pub fn text(&self) -> String {
        match &self.standing {
            Standing::Open => "period not over".into(),
            Standing::NotYet { .. } => "not yet".into(),
            Standing::Reconciled { minutes, .. } => duration_text(*minutes),
        }
    }
}

/// When `period` ends: midnight UTC after its last day.
pub fn period_end(period: &Period) -> DateTime<Utc> {
    let next = period.to + Duration::days(1);
    next.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The reconciliation time of every period `runs` hold, newest period
/// (by its last day) first. `runs` may come in any order.
pub fn reconciliation_times(runs: &[RunSummary], now: DateTime<Utc>) -> Vec<PeriodTime> {
    let mut by_period: BTreeMap<(chrono::NaiveDate, chrono::NaiveDate), Vec<&RunSummary>> =
        BTreeMap::new();
    for r in runs {
        by_period
            .entry((r.period.to, r.period.from))
            .or_default()
            .push(r);
    }
    let mut out: Vec<PeriodTime> = by_period
        .into_values()
        .map(|mut rs| {
            rs.sort_by_key(|r| (r.started_at, r.seq));
            let period = rs[0].period;
            let ended_at = period_end(&period);
            let after: Vec<&&RunSummary> = rs.iter().filter(|r| r.started_at >= ended_at).collect();
            let standing = if now < ended_at {
                Standing::Open
            } else if let Some(r) = after.iter().find(|r| r.agrees()) {
                Standing::Reconciled {
                    run: r.seq,
                    at: r.started_at,
                    minutes: (r.started_at - ended_at).num_minutes(),
                }
            } else {
                Standing::NotYet {
                    runs_since_end: after.len(),
                    open_breaks: after.last().map(|r| r.breaks),
                }
            };
            PeriodTime {
                period,
                ended_at,
                standing,
            }
        })
        .collect();
    out.reverse();
    out
}

/// The median reconciliation time, in minutes, of the periods that were
/// reconciled (the lower middle of an even count); `None` when none was.
pub fn median_minutes(times: &[PeriodTime]) -> Option<i64> {
    let mut m: Vec<i64> = times.iter().filter_map(PeriodTime::minutes).collect();
    if m.is_empty() {
        return None;
    }
    m.sort_unstable();
    Some(m[(m.len() - 1) / 2])
}

/// Minutes as `45 min`, `5 h 20 min`, `2 d 3 h`.
pub fn duration_text(minutes: i64) -> String {
    let m = minutes.max(0);
    match m {
        0..=59 => format!("{m} min"),
        60..=1439 => format!("{} h {} min", m / 60, m % 60),
        _ => format!("{} d {} h", m / 1440, (m % 1440) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn week(from: u32) -> Period {
        Period {
            from: chrono::NaiveDate::from_ymd_opt(2026, 3, from).expect("date"),
            to: chrono::NaiveDate::from_ymd_opt(2026, 3, from + 6).expect("date"),
        }
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn run(seq: u64, period: Period, started_at: DateTime<Utc>, breaks: usize) -> RunSummary {
        RunSummary {
            seq,
            period,
            ledger: "qbo".into(),
            started_at,
            duration_ms: 5,
            counts: BTreeMap::new(),
            breaks,
            info: 0,
            dismissed: 0,
            ledger_reads: 1,
            tracker: "received".into(),
            by: "schedule".into(),
        }
    }

    #[test]
    fn the_time_runs_from_the_period_end_to_the_first_run_with_zero_breaks() {
        let w = week(2); // 2026-03-02..08, ends 2026-03-09 00:00 UTC
        let runs = vec![
            // While the week was open: agrees, but does not count.
            run(1, w, at(5, 6), 0),
            // After the end: two breaks, then agreeing 26 h after the end,
            // and again later (only the first counts).
            run(2, w, at(9, 6), 2),
            run(4, w, at(11, 6), 0),
            run(3, w, at(10, 2), 0),
        ];
        let t = reconciliation_times(&runs, at(20, 0));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].ended_at, at(9, 0));
        assert_eq!(
            t[0].standing,
            Standing::Reconciled {
                run: 3,
                at: at(10, 2),
                minutes: 26 * 60
            }
        );
        assert_eq!(t[0].text(), "1 d 2 h");
        assert_eq!(median_minutes(&t), Some(26 * 60));
    }

    #[test]
    fn a_period_never_reconciled_to_zero_is_not_yet_and_has_no_figure() {
        let (a, b, c) = (week(2), week(9), week(16));
        let runs = vec![
            run(1, a, at(5, 6), 0),
            run(2, a, at(9, 6), 3),
            run(3, a, at(12, 6), 1),
            run(4, b, at(16, 1), 0),
            // The current week: runs while open.
            run(5, c, at(18, 1), 4),
        ];
        let t = reconciliation_times(&runs, at(18, 12));
        let periods: Vec<Period> = t.iter().map(|p| p.period).collect();
        assert_eq!(periods, vec![c, b, a], "newest period first");
        assert_eq!(t[0].standing, Standing::Open);
        assert_eq!(t[0].text(), "period not over");
        assert_eq!(t[1].minutes(), Some(60));
        assert_eq!(
            t[2].standing,
            Standing::NotYet {
                runs_since_end: 2,
                open_breaks: Some(1)
            }
        );
        assert_eq!(t[2].text(), "not yet");
        assert_eq!(t[2].minutes(), None);
        // Only the reconciled period enters the median.
        assert_eq!(median_minutes(&t), Some(60));
        // A period ended with no run since: not yet, nothing open counted.
        let t = reconciliation_times(&[run(1, a, at(5, 6), 0)], at(20, 0));
        assert_eq!(
            t[0].standing,
            Standing::NotYet {
                runs_since_end: 0,
                open_breaks: None
            }
        );
        assert_eq!(median_minutes(&t), None);
        assert!(reconciliation_times(&[], at(20, 0)).is_empty());
    }

    #[test]
    fn the_median_takes_the_lower_middle_and_durations_read_as_words() {
        let runs = vec![
            run(1, week(2), at(9, 1), 0),
            run(2, week(9), at(16, 3), 0),
            run(3, week(16), at(23, 10), 0),
            run(4, week(23), at(30, 20), 0),
        ];
        let t = reconciliation_times(&runs, at(31, 0));
        assert_eq!(median_minutes(&t), Some(180));
        assert_eq!(duration_text(0), "0 min");
        assert_eq!(duration_text(59), "59 min");
        assert_eq!(duration_text(320), "5 h 20 min");
        assert_eq!(duration_text(3 * 1440 + 61), "3 d 1 h");
        let json = serde_json::to_value(&t[0]).expect("json");
        assert_eq!(json["state"], "reconciled");
        assert_eq!(json["minutes"], 20 * 60);
    }
}
