//! The AWS adapters (behind the `aws` feature): DynamoDB for every store,
//! SQS for the ingest queue and its dead-letter queue, S3 for archives and
//! reports, Secrets Manager for webhook secrets and OAuth tokens. Each
//! implements the traits of [`crate::ports`], so the engine, the worker and
//! the HTTP router run unchanged on them.
//!
//! Clients come from [`sdk_config`]: the standard AWS environment
//! (region, credentials, and `AWS_ENDPOINT_URL`, which the tests point at
//! moto server).

pub mod dynamo;
pub mod dynamo_pending;
pub mod init_error;
pub mod ratelimit;
pub mod s3;
pub mod secrets;
pub mod settings;
#[cfg(feature = "sns")]
pub mod sns;
pub mod sqs;
pub mod stack;

pub use dynamo::DynamoStore;
pub use ratelimit::DynamoPacer;
pub use s3::S3Archive;
pub use secrets::SecretsManagerStore;
pub use settings::AwsSettings;
pub use sqs::SqsQueue;
#[cfg(feature = "stack")]
pub use stack::AwsStack;
pub use stack::{AwsClients, AwsPorts};

use crate::ports::StoreError;

/// The SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_defaults().load().await
}

/// The SDK's configuration loader with its one HTTPS client: rustls on
/// ring, the crypto back-end of every other TLS client here (ledgers,
/// trackers, SMTP), so the binaries link one back-end. Every SDK client
/// is built from what this loads (`sdk_config`, the tests' moto config).
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// A storage failure from any SDK error, with the service's own message
/// (never a secret value: the SDK does not echo request bodies).
pub(crate) fn backend<E>(what: &str, e: E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let detail = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
    StoreError::Backend(format!("{what}: {detail}"))
}
