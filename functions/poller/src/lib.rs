//! The `poller` function: an EventBridge Scheduler schedule whose `Input`
//! names the source (`{"source": "harvest"}`) → list what changed since the
//! watermark (DynamoDB) → enqueue on SQS → advance the watermark, only
//! after the enqueue succeeded (the poll module's rule: a failed enqueue
//! leaves the watermark where it was, so the next run lists the same
//! changes again and nothing is lost).

use serde::Deserialize;
use timepost::aws::AwsPorts;
use timepost::poll::{PollError, PollReport, Poller};

/// The schedule's `Input`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PollInput {
    /// `harvest` or `toggl`.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PollFnError {
    #[error(
        "the schedule names source `{0}`, which this stack's config does not poll: \
         configure [intake.harvest] or [intake.toggl_poll], or fix the schedule's Input"
    )]
    NotConfigured(String),
    #[error("{source} poll failed (watermark unchanged): {error}")]
    Poll {
        source: String,
        #[source]
        error: PollError,
    },
}

/// What Lambda shows for a failed invocation: `errorType` names the case
/// (`timepost.<Case>`, stable for alarms and log filters) instead of the
/// runtime's default, the Rust type name of a boxed error; `errorMessage`
/// is the sentence above.
impl From<PollFnError> for lambda_runtime::Diagnostic {
    fn from(e: PollFnError) -> Self {
        let case = match &e {
            PollFnError::NotConfigured(_) => "SourceNotPolled",
            PollFnError::Poll { .. } => "PollFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: format!("timepost.{case}"),
            error_message: e.to_string(),
        }
    }
}

/// Run one poll for the source the schedule names.
pub async fn handle(stack: &AwsPorts, input: PollInput) -> Result<PollReport, PollFnError> {
    let poll_error = |error| PollFnError::Poll {
        source: input.source.clone(),
        error,
    };
    let poller = Poller::for_source(&input.source, &stack.config.intake)
        .map_err(poll_error)?
        .ok_or_else(|| PollFnError::NotConfigured(input.source.clone()))?;
    let ports = stack.poll_ports();
    let r = poller.run(&ports).await;
    // The failing-poller alert reads these marks.
    if let Err(e) = timepost::alerts::gather::record_poll(
        ports.watermarks.as_ref(),
        &input.source,
        r.is_ok(),
        chrono::Utc::now(),
    )
    .await
    {
        tracing::warn!(source = %input.source, error = %e, "cannot record the poll outcome");
    }
    r.map_err(poll_error)
}

#[cfg(test)]
mod diagnostic_tests {
    use super::*;

    #[test]
    fn lambda_is_told_the_case_and_the_sentence() {
        let d = lambda_runtime::Diagnostic::from(PollFnError::NotConfigured("harvest".into()));
        assert_eq!(d.error_type, "timepost.SourceNotPolled");
        assert!(
            d.error_message.contains("source `harvest`"),
            "{}",
            d.error_message
        );
    }
}
