//! Reaching moto server for the AWS adapter tests.
//!
//! `scripts/test.sh` starts moto server and exports `AWS_ENDPOINT_URL`
//! (to run one test by hand: `source scripts/moto.sh && moto_start`). Without
//! it a test is skipped with a message, except under `CI=true`, where a
//! missing moto fails the test: CI must never pass by skipping.

use std::sync::atomic::{AtomicU64, Ordering};

/// The SDK config pointing at moto, or `None` (after saying why) when no
/// moto is running and this is not CI.
pub async fn sdk_config() -> Option<aws_config::SdkConfig> {
    let endpoint = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(e) if !e.is_empty() => e,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "AWS_ENDPOINT_URL is not set under CI=true: the AWS adapter tests need moto \
                     server (scripts/test.sh starts it)"
                );
            }
            eprintln!(
                "skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, or \
                 `source scripts/moto.sh && moto_start`)"
            );
            return None;
        }
    };
    let creds =
        aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "moto");
    Some(
        timepost::aws::sdk_defaults()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .load()
            .await,
    )
}

/// A resource name no other test (or earlier run against the same moto)
/// uses: `prefix-<pid>-<n>-<random>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
