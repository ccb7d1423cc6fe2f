//! Reconciliation on a schedule: what `timepost serve` runs every
//! `[reconcile] schedule_secs` (`crate::schedules::run_reconcile`) and the
//! AWS `reconcile` function runs on its EventBridge schedule.
//!
//! Each run reconciles two periods: the last closed Monday–Sunday week
//! (the one finance signs off) and the current week (so a break shows up
//! while the week is still being worked). Each period is compared with a
//! fresh tracker listing when the config sets up a poller for it
//! (`[intake.harvest]`, `[intake.toggl_poll]`), and stored as
//! `timepost reconcile` stores a run. A period that fails (the books or
//! the tracker cannot be read) stores nothing and is reported; the other
//! period is still reconciled.

use chrono::NaiveDate;
use serde::Serialize;

use super::gather::{ListTrackers, ReconcileError, Reconciler};
use super::{Period, RunSummary};

/// The last closed week and the current week of `today` (Monday–Sunday).
pub fn scheduled_periods(today: NaiveDate) -> [Period; 2] {
    let this = crate::model::week_start(today);
    let last = Period {
        from: this - chrono::Duration::days(7),
        to: this - chrono::Duration::days(1),
    };
    let current = Period {
        from: this,
        to: this + chrono::Duration::days(6),
    };
    [last, current]
}

/// What one period's scheduled run did.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodOutcome {
    pub period: Period,
    /// The stored run (its `seq`, counts per class, breaks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSummary>,
    /// Why nothing was stored for the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PeriodOutcome {
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Reconcile each of `periods` (listing the trackers first when
/// `listing` is given), storing one run per period; `by` is kept with
/// each run.
pub async fn run_periods(
    rec: &Reconciler,
    listing: Option<&dyn ListTrackers>,
    periods: &[Period],
    by: &str,
) -> Vec<PeriodOutcome> {
    let mut out = Vec::with_capacity(periods.len());
    for period in periods {
        let outcome = match one(rec, listing, period, by).await {
            Ok(run) => PeriodOutcome {
                period: *period,
                run: Some(run),
                error: None,
            },
            Err(e) => {
                tracing::error!(period = %period, error = %e, "scheduled reconciliation failed");
                PeriodOutcome {
                    period: *period,
                    run: None,
                    error: Some(e.to_string()),
                }
            }
        };
        out.push(outcome);
    }
    out
}

async fn one(
    rec: &Reconciler,
    listing: Option<&dyn ListTrackers>,
    period: &Period,
    by: &str,
) -> Result<RunSummary, ReconcileError> {
    let listed = match listing {
        Some(l) => l.list(period).await.map_err(ReconcileError::Tracker)?,
        None => None,
    };
    Ok(rec.run(period, listed.as_ref(), by).await?.summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn the_schedule_reconciles_the_last_closed_week_and_the_current_one() {
        // Wednesday 2026-03-11: last week 02..08, this week 09..15.
        let [last, current] = scheduled_periods(d("2026-03-11"));
        assert_eq!((last.from, last.to), (d("2026-03-02"), d("2026-03-08")));
        assert_eq!(
            (current.from, current.to),
            (d("2026-03-09"), d("2026-03-15"))
        );
        // On a Monday the week just ended is the closed one.
        let [last, current] = scheduled_periods(d("2026-03-09"));
        assert_eq!((last.from, last.to), (d("2026-03-02"), d("2026-03-08")));
        assert_eq!(current.from, d("2026-03-09"));
        // On a Sunday the current week ends that day.
        let [last, current] = scheduled_periods(d("2026-03-15"));
        assert_eq!(last.to, d("2026-03-08"));
        assert_eq!(current.to, d("2026-03-15"));
        // The closed week is what `--period week` means.
        assert_eq!(Period::parse("week", d("2026-03-11")), Ok(last));
    }
}
