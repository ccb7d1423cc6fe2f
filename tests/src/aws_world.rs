//! Provision what the SAM template would create (table, queues, bucket, the
//! sandbox rules config and mappings) on whatever endpoint the SDK config
//! names (moto server), for the end-to-end test and the measurement tools.

use timepost::aws::{AwsSettings, DynamoStore, S3Archive, SqsQueue};
use timepost::ports::{Archive, MappingStore};

/// The sandbox config and mappings on fresh resources named `name`;
/// returns the settings a function would read from its environment.
pub async fn provision(sdk: &aws_config::SdkConfig, name: &str) -> anyhow::Result<AwsSettings> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), name);
    store.create_table().await?;
    let rows = timepost::mapping::csv_io::read(timepost::demo::MAPPINGS.as_bytes())?;
    let changes = timepost::mapping::diff(
        &store.snapshot().await?,
        &rows,
        false,
        "provision",
        chrono::Utc::now(),
        "sandbox mappings",
    );
    store.apply(changes).await?;
    let (queue_url, dlq_url) =
        SqsQueue::create_queues(&aws_sdk_sqs::Client::new(sdk), name, 5).await?;
    let archive = S3Archive::new(S3Archive::client(sdk, true), name);
    archive.create_bucket().await?;
    let settings = AwsSettings {
        table: name.to_string(),
        queue_url,
        dlq_url,
        bucket: name.to_string(),
        secret_prefix: format!("{name}/"),
        s3_path_style: true,
        config_key: "config/timepost.toml".into(),
        ledger: None,
    };
    archive
        .put(
            &settings.config_key,
            timepost::demo::CONFIG.as_bytes().to_vec(),
        )
        .await?;
    Ok(settings)
}

/// The environment the SAM template gives a function for `settings`.
pub fn environment(settings: &AwsSettings) -> Vec<(String, String)> {
    vec![
        ("TIMEPOST_TABLE".into(), settings.table.clone()),
        ("TIMEPOST_QUEUE_URL".into(), settings.queue_url.clone()),
        ("TIMEPOST_DLQ_URL".into(), settings.dlq_url.clone()),
        ("TIMEPOST_BUCKET".into(), settings.bucket.clone()),
        (
            "TIMEPOST_SECRET_PREFIX".into(),
            settings.secret_prefix.clone(),
        ),
        ("TIMEPOST_S3_PATH_STYLE".into(), "true".into()),
        ("TIMEPOST_CONFIG_KEY".into(), settings.config_key.clone()),
    ]
}
