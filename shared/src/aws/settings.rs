//! Where the deployed stack's resources are: read from the environment the
//! SAM template gives every function (and that `timepost --backend aws`
//! reads too).

/// Resource names of one deployed stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// DynamoDB table holding every store (`TIMEPOST_TABLE`).
    pub table: String,
    /// The ingest queue (`TIMEPOST_QUEUE_URL`).
    pub queue_url: String,
    /// Its dead-letter queue (`TIMEPOST_DLQ_URL`).
    pub dlq_url: String,
    /// The stack's bucket: the rules file and reports (`TIMEPOST_BUCKET`).
    pub bucket: String,
    /// Where period snapshots are written, under `archive/`
    /// (`TIMEPOST_ARCHIVE_BUCKET`, default the stack's bucket): the
    /// template names a dedicated Object Lock bucket when `ArchiveLockMode`
    /// is set, so a default retention never locks the rules file.
    pub archive_bucket: String,
    /// Prefix of every secret name (`TIMEPOST_SECRET_PREFIX`, default
    /// `timepost/`): the secret `toggl_webhook_secret` is read from
    /// `timepost/toggl_webhook_secret`.
    pub secret_prefix: String,
    /// Path-style S3 addressing, for emulators (`TIMEPOST_S3_PATH_STYLE`).
    pub s3_path_style: bool,
    /// Key of the rules config (`timepost.toml`) in the bucket
    /// (`TIMEPOST_CONFIG_KEY`, default `config/timepost.toml`).
    pub config_key: String,
    /// The ledger to post to, overriding the config's `[ledger] kind`
    /// (`TIMEPOST_LEDGER`: the template's `LedgerKind` parameter).
    pub ledger: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is not set; it names a resource of the deployed stack (see docs/deploy.md)")]
pub struct MissingSetting(pub &'static str);

impl AwsSettings {
    pub fn from_env() -> Result<Self, MissingSetting> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read the settings through `get` (the environment, or a test's map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, MissingSetting> {
        let need = |k: &'static str| get(k).filter(|v| !v.is_empty()).ok_or(MissingSetting(k));
        let table = need("TIMEPOST_TABLE")?;
        let queue_url = need("TIMEPOST_QUEUE_URL")?;
        let dlq_url = need("TIMEPOST_DLQ_URL")?;
        let bucket = need("TIMEPOST_BUCKET")?;
        Ok(Self {
            table,
            queue_url,
            dlq_url,
            archive_bucket: get("TIMEPOST_ARCHIVE_BUCKET")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| bucket.clone()),
            bucket,
            secret_prefix: get("TIMEPOST_SECRET_PREFIX").unwrap_or_else(|| "timepost/".into()),
            s3_path_style: get("TIMEPOST_S3_PATH_STYLE")
                .map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
                .unwrap_or(false),
            config_key: get("TIMEPOST_CONFIG_KEY")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "config/timepost.toml".into()),
            ledger: get("TIMEPOST_LEDGER").filter(|v| !v.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_the_missing_variable() {
        let env: HashMap<&str, &str> = [("TIMEPOST_TABLE", "t")].into();
        let err = AwsSettings::from_lookup(|k| env.get(k).map(|v| v.to_string()))
            .expect_err("queue url missing");
        assert!(err.to_string().contains("TIMEPOST_QUEUE_URL"), "{err}");
    }

    #[test]
    fn defaults_the_prefix_and_addressing() {
        let env: HashMap<&str, &str> = [
            ("TIMEPOST_TABLE", "t"),
            ("TIMEPOST_QUEUE_URL", "q"),
            ("TIMEPOST_DLQ_URL", "d"),
            ("TIMEPOST_BUCKET", "b"),
        ]
        .into();
        let s = AwsSettings::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("settings");
        assert_eq!(s.secret_prefix, "timepost/");
        assert!(!s.s3_path_style);
        assert_eq!(s.config_key, "config/timepost.toml");
        assert_eq!(s.ledger, None);
        assert_eq!(s.archive_bucket, "b");
    }

    #[test]
    fn snapshots_go_to_the_archive_bucket_the_environment_names() {
        let env: HashMap<&str, &str> = [
            ("TIMEPOST_TABLE", "t"),
            ("TIMEPOST_QUEUE_URL", "q"),
            ("TIMEPOST_DLQ_URL", "d"),
            ("TIMEPOST_BUCKET", "b"),
            ("TIMEPOST_ARCHIVE_BUCKET", "locked"),
        ]
        .into();
        let s = AwsSettings::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("settings");
        assert_eq!(s.bucket, "b");
        assert_eq!(s.archive_bucket, "locked");
    }
}
