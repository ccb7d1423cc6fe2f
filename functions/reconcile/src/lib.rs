//! The `reconcile` function: an EventBridge Scheduler schedule (daily by
//! default) → the scheduled reconciliation `timepost serve` runs locally
//! (`timepost::reconcile::scheduled`), on the deployed stack's ports: the
//! last closed week and the current one, each compared with a fresh
//! Harvest / Toggl listing when the rules config sets up that poller (its
//! token from Secrets Manager), with what timepost holds (DynamoDB) and
//! with the books read back (QuickBooks or Xero), and stored as a run in
//! the table, where the console's Reconciliation page and
//! `timepost --backend aws reconcile history` read it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use timepost::aws::AwsStack;
use timepost::poll::TrackerListing;
use timepost::reconcile::gather::ListTrackers;
use timepost::reconcile::gather::Reconciler;
use timepost::reconcile::scheduled::{run_periods, scheduled_periods, PeriodOutcome};
use timepost::reconcile::Period;

/// The schedule's `Input` (`{}`): the last closed week and the current
/// one. A manual invocation may name one period (`{"period": "month"}`,
/// `{"period": "2026-03-01..2026-03-31"}`) and leave the tracker's
/// listing out (`"no_listing": true`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileInput {
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub no_listing: bool,
}

/// What one invocation did.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileSummary {
    /// Runs stored.
    pub runs: usize,
    /// Counted breaks over the stored runs.
    pub breaks: usize,
    /// Every period, with its stored run or why nothing was stored.
    pub periods: Vec<PeriodOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileFnError {
    #[error("the reconcile function was given period `{period}`: {error}")]
    Period { period: String, error: String },
    #[error(
        "reconciliation failed for {failed} of {of} period(s) (the others are stored): {errors}"
    )]
    Failed {
        failed: usize,
        of: usize,
        errors: String,
        summary: Box<ReconcileSummary>,
    },
}

/// What Lambda shows for a failed invocation: `errorType` names the case
/// (`timepost.<Case>`, stable for alarms and log filters) instead of the
/// runtime's default, the Rust type name of a boxed error; `errorMessage`
/// is the sentence above.
impl From<ReconcileFnError> for lambda_runtime::Diagnostic {
    fn from(e: ReconcileFnError) -> Self {
        let case = match &e {
            ReconcileFnError::Period { .. } => "NotAPeriod",
            ReconcileFnError::Failed { .. } => "ReconcileFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: format!("timepost.{case}"),
            error_message: e.to_string(),
        }
    }
}

/// Reconcile on `stack` at `now`; runs are stored as the schedule's.
pub async fn handle(
    stack: &AwsStack,
    input: ReconcileInput,
    now: DateTime<Utc>,
) -> Result<ReconcileSummary, ReconcileFnError> {
    let today = now.date_naive();
    let periods: Vec<Period> = match &input.period {
        Some(p) => vec![
            Period::parse(p, today).map_err(|error| ReconcileFnError::Period {
                period: p.clone(),
                error,
            })?,
        ],
        None => scheduled_periods(today).to_vec(),
    };
    let rec = Reconciler {
        entries: stack.store.clone(),
        ledger: stack.ledger.clone(),
        store: stack.store.clone(),
        config: stack.config.reconcile.clone(),
    };
    let ports = stack.poll_ports();
    let listing = TrackerListing {
        intake: &stack.config.intake,
        ports: &ports,
    };
    let listing = (!input.no_listing).then_some(&listing as &dyn ListTrackers);
    let outcomes = run_periods(&rec, listing, &periods, timepost::schedules::RECONCILE_BY).await;
    let summary = ReconcileSummary {
        runs: outcomes.iter().filter(|o| o.run.is_some()).count(),
        breaks: outcomes
            .iter()
            .filter_map(|o| o.run.as_ref())
            .map(|r| r.breaks)
            .sum(),
        periods: outcomes,
    };
    let errors: Vec<String> = summary
        .periods
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| format!("{}: {e}", o.period)))
        .collect();
    if errors.is_empty() {
        Ok(summary)
    } else {
        Err(ReconcileFnError::Failed {
            failed: errors.len(),
            of: summary.periods.len(),
            errors: errors.join("; "),
            summary: Box::new(summary),
        })
    }
}

#[cfg(test)]
mod diagnostic_tests {
    use super::*;

    #[test]
    fn lambda_is_told_the_case_and_the_sentence() {
        let d = lambda_runtime::Diagnostic::from(ReconcileFnError::Period {
            period: "2026-13".into(),
            error: "not a month".into(),
        });
        assert_eq!(d.error_type, "timepost.NotAPeriod");
        assert!(d.error_message.contains("`2026-13`"), "{}", d.error_message);
    }
}
