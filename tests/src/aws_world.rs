//! Provision what the SAM template would create (table, queues, bucket, the
//! sandbox rules config and mappings) on whatever endpoint the SDK config
//! names (moto server), for the end-to-end test and the measurement tools.

use timepost::aws::{AwsSettings, DynamoStore, S3Archive, SqsQueue};
use timepost::ports::{Archive, MappingStore};

/// The sandbox config without manager approval (entries post as they
/// arrive), as most AWS tests and measurements want it.
pub fn config_without_approval() -> String {
    timepost::demo::CONFIG.replace("required = true", "required = false")
}

/// The rules config `config` (TOML text) and the sandbox mappings on fresh
/// resources named `name`; returns the settings a function would read from
/// its environment.
pub async fn provision(
    sdk: &aws_config::SdkConfig,
    name: &str,
    config: &str,
) -> anyhow::Result<AwsSettings> {
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
        archive_bucket: name.to_string(),
        secret_prefix: format!("{name}/"),
        s3_path_style: true,
        config_key: "config/timepost.toml".into(),
        ledger: None,
    };
    archive
        .put(&settings.config_key, config.as_bytes().to_vec())
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
            "TIMEPOST_ARCHIVE_BUCKET".into(),
            settings.archive_bucket.clone(),
        ),
        (
            "TIMEPOST_SECRET_PREFIX".into(),
            settings.secret_prefix.clone(),
        ),
        ("TIMEPOST_S3_PATH_STYLE".into(), "true".into()),
        ("TIMEPOST_CONFIG_KEY".into(), settings.config_key.clone()),
    ]
}

/// One `ReceiveMessage` on `queue_url` (up to 10 messages), shaped as the
/// SQS event Lambda's event source hands the sync function.
pub async fn receive_event(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> anyhow::Result<aws_lambda_events::event::sqs::SqsEvent> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(60)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await?;
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    for m in out.messages.unwrap_or_default() {
        let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
        record.message_id = m.message_id;
        record.receipt_handle = m.receipt_handle;
        record.body = m.body;
        record.attributes = m
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect();
        record.event_source = Some("aws:sqs".into());
        event.records.push(record);
    }
    Ok(event)
}
