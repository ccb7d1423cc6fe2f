//! The `alerts` function: an EventBridge Scheduler schedule whose `Input`
//! names the task.
//!
//! - `{"task": "alerts"}`: one alert pass (`timepost::alerts`): gather the
//!   snapshot from DynamoDB, SQS (the dead-letter queue) and Secrets
//!   Manager (the ledger's token state), evaluate the `[alerts]` rules,
//!   keep the alert state in the table, and notify once per condition
//!   through the stack's SNS topic (`TIMEPOST_ALERT_TOPIC_ARN`) and the
//!   configured webhook / SMTP.
//! - `{"task": "export"}`: the finance export of the last closed period
//!   (`[exports] period`, default month) to `exports/` in the stack's
//!   bucket, once, followed by a notice.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timepost::alerts::deliver::{Pass, PassReport};
use timepost::alerts::gather::Sources;
use timepost::aws::sns::SnsNotifier;
use timepost::aws::{AwsStack, S3Archive};
use timepost::exports::Written;
use timepost::ports::Notifier;

/// The schedule's `Input`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub task: Task,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Alerts,
    Export,
}

/// What a run did.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Output {
    Alerts(PassReport),
    Export(Option<Written>),
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsFnError {
    #[error("alert pass failed: {0}")]
    Store(#[from] timepost::ports::StoreError),
    #[error("export failed: {0}")]
    Export(#[from] timepost::exports::ExportError),
    #[error("notifier: {0}")]
    Notifier(#[from] timepost::ports::NotifyError),
}

/// What Lambda shows for a failed invocation: `errorType` names the case
/// (`timepost.<Case>`, stable for alarms and log filters) instead of the
/// runtime's default, the Rust type name of a boxed error; `errorMessage`
/// is the sentence above.
impl From<AlertsFnError> for lambda_runtime::Diagnostic {
    fn from(e: AlertsFnError) -> Self {
        let case = match &e {
            AlertsFnError::Store(_) => "AlertPassFailed",
            AlertsFnError::Export(_) => "ExportFailed",
            AlertsFnError::Notifier(_) => "NotifierFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: format!("timepost.{case}"),
            error_message: e.to_string(),
        }
    }
}

/// What the function holds between invocations.
pub struct AlertsFn {
    pub stack: AwsStack,
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// The stack's bucket (exports go under `exports/`).
    pub bucket: S3Archive,
}

/// The key prefix of exports in the bucket.
pub const EXPORTS: &str = "exports/";

impl AlertsFn {
    /// The stack, its notifiers (the SNS topic when `topic_arn` is given,
    /// then `[alerts]`'s webhook and SMTP) and its bucket.
    pub async fn new(
        stack: AwsStack,
        sdk: &aws_config::SdkConfig,
        topic_arn: Option<String>,
    ) -> Result<Self, AlertsFnError> {
        let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
        if let Some(arn) = topic_arn.filter(|a| !a.is_empty()) {
            notifiers.push(Arc::new(SnsNotifier::new(
                aws_sdk_sns::Client::new(sdk),
                arn,
            )));
        }
        notifiers.extend(
            timepost::notify::from_config(&stack.config.alerts, stack.secrets.as_ref()).await?,
        );
        let bucket = S3Archive::new(
            S3Archive::client(sdk, stack.settings.s3_path_style),
            &stack.settings.bucket,
        );
        Ok(Self {
            stack,
            notifiers,
            bucket,
        })
    }

    pub async fn handle(&self, input: TaskInput) -> Result<Output, AlertsFnError> {
        let s = &self.stack;
        let now = chrono::Utc::now();
        match input.task {
            Task::Alerts => {
                let pass = Pass {
                    sources: Sources {
                        entries: s.store.as_ref(),
                        queue: s.queue.as_ref(),
                        reconcile: s.store.as_ref(),
                        watermarks: s.store.as_ref(),
                        secrets: s.secrets.as_ref(),
                    },
                    alerts: s.store.as_ref(),
                    watermarks: s.store.as_ref(),
                    notifiers: &self.notifiers,
                };
                Ok(Output::Alerts(pass.run(&s.config, now, false).await?))
            }
            Task::Export => {
                let cfg = s.config.exports.clone().unwrap_or_default();
                Ok(Output::Export(
                    timepost::exports::scheduled(
                        s.store.as_ref(),
                        s.store.as_ref(),
                        &self.bucket,
                        EXPORTS,
                        &cfg,
                        &self.notifiers,
                        now.date_naive(),
                    )
                    .await?,
                ))
            }
        }
    }
}

#[cfg(test)]
mod diagnostic_tests {
    use super::*;

    #[test]
    fn lambda_is_told_the_case_and_the_sentence() {
        let d = lambda_runtime::Diagnostic::from(AlertsFnError::Store(
            timepost::ports::StoreError::Backend("table gone".into()),
        ));
        assert_eq!(d.error_type, "timepost.AlertPassFailed");
        assert!(
            d.error_message.contains("table gone"),
            "{}",
            d.error_message
        );
    }
}
