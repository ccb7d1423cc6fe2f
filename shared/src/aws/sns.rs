//! The SNS topic as a [`Notifier`]: one `Publish` per notice (subject and
//! text). E-mail subscribers get the subject as the mail's subject, which
//! SNS limits to 100 ASCII characters without line breaks ("Publish",
//! Amazon SNS API Reference: `Subject`); it is cut to fit here.

use async_trait::async_trait;

use crate::ports::{Notice, Notifier, NotifyError};

pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// A subject SNS accepts: printable ASCII, no line breaks, at most 100.
pub fn subject(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    clean.trim().chars().take(100).collect()
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn channel(&self) -> &'static str {
        "sns"
    }

    async fn notify(&self, n: &Notice) -> Result<(), NotifyError> {
        let mut text = n.text.clone();
        if !n.extra_to.is_empty() {
            text.push_str(&format!("\nFor: {}", n.extra_to.join(", ")));
        }
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&n.subject))
            .message(text)
            .send()
            .await
            .map_err(|e| NotifyError {
                channel: "sns",
                message: aws_sdk_sns::error::DisplayErrorContext(e).to_string(),
            })?;
        Ok(())
    }
}
