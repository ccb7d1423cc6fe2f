//! The `archive` function: an EventBridge Scheduler schedule (daily by
//! default) → the archive pass `timepost archive run` makes, on the
//! deployed stack's ports: every period with entries that is past the
//! grace window gets a snapshot under `archive/` in the archive bucket
//! (`TIMEPOST_ARCHIVE_BUCKET`); an unchanged period writes nothing, a
//! changed one a new revision. Both outcomes are audited by the pass.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use timepost::archive::snapshot::{self, PeriodRun, RunOutcome, Sources};
use timepost::archive::{ArchiveError, Period};
use timepost::aws::AwsStack;

/// The schedule's `Input` (`{}`): every closed period. A manual invocation
/// may name one period (`{"period": "2026-03"}`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveInput {
    #[serde(default)]
    pub period: Option<String>,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveSummary {
    /// Periods archived for the first time (revision 1 written).
    pub written: usize,
    /// Periods archived before whose data changed: a new revision written.
    pub new_revisions: usize,
    /// Periods archived before and unchanged since: nothing written.
    pub unchanged: usize,
    /// Periods still inside the grace window.
    pub in_grace: usize,
    /// Periods whose live entries were purged after archiving.
    pub purged: usize,
    /// Every period, with its outcome.
    pub periods: Vec<PeriodRun>,
}

impl ArchiveSummary {
    fn of(periods: Vec<PeriodRun>) -> Self {
        let mut s = Self::default();
        for p in &periods {
            match p.outcome {
                RunOutcome::Written { revision: 1, .. } => s.written += 1,
                RunOutcome::Written { .. } => s.new_revisions += 1,
                RunOutcome::Unchanged { .. } => s.unchanged += 1,
                RunOutcome::InGrace { .. } => s.in_grace += 1,
                RunOutcome::Purged { .. } => s.purged += 1,
            }
        }
        s.periods = periods;
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveFnError {
    #[error("the archive run was given period `{period}`, which is not a period: {error}")]
    Period {
        period: String,
        #[source]
        error: ArchiveError,
    },
    #[error(
        "archive run failed (periods archived before the failure keep their snapshots; \
         the next run continues from there): {0}"
    )]
    Run(#[source] ArchiveError),
}

/// What Lambda shows for a failed invocation: `errorType` names the case
/// (`timepost.<Case>`, stable for alarms and log filters) instead of the
/// runtime's default, the Rust type name of a boxed error; `errorMessage`
/// is the sentence above.
impl From<ArchiveFnError> for lambda_runtime::Diagnostic {
    fn from(e: ArchiveFnError) -> Self {
        let case = match &e {
            ArchiveFnError::Period { .. } => "NotAPeriod",
            ArchiveFnError::Run(_) => "ArchiveRunFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: format!("timepost.{case}"),
            error_message: e.to_string(),
        }
    }
}

/// Run the archive pass at `now` on `stack`.
pub async fn handle(
    stack: &AwsStack,
    input: ArchiveInput,
    now: DateTime<Utc>,
) -> Result<ArchiveSummary, ArchiveFnError> {
    let period = match input.period {
        Some(p) => {
            Some(Period::parse(&p).map_err(|error| ArchiveFnError::Period { period: p, error })?)
        }
        None => None,
    };
    let src = Sources {
        entries: stack.store.as_ref(),
        journal: stack.store.as_ref(),
        mappings: stack.store.as_ref(),
        audit: stack.store.as_ref(),
        pending: stack.store.as_ref(),
        queue: stack.queue.as_ref(),
        ledger: stack.ledger.as_ref(),
        rules_toml: snapshot::rules_toml(&stack.config).map_err(ArchiveFnError::Run)?,
    };
    let retention = stack.config.retention.clone().unwrap_or_default();
    let archive = stack.snapshots();
    let runs = snapshot::run(&src, &archive, period, &retention, now.date_naive(), now)
        .await
        .map_err(ArchiveFnError::Run)?;
    Ok(ArchiveSummary::of(runs))
}

#[cfg(test)]
mod diagnostic_tests {
    use super::*;

    #[test]
    fn lambda_is_told_the_case_and_the_sentence() {
        let d = lambda_runtime::Diagnostic::from(ArchiveFnError::Period {
            period: "2026-13".into(),
            error: ArchiveError::Input("not a month".into()),
        });
        assert_eq!(d.error_type, "timepost.NotAPeriod");
        assert!(d.error_message.contains("`2026-13`"), "{}", d.error_message);
    }
}
