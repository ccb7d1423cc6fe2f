//! Assemble the AWS runtime: the same engine, worker and router as the
//! local stack, on DynamoDB, SQS, S3 and Secrets Manager. What every Lambda
//! function builds once per instance (at init) and what
//! `timepost --backend aws` uses.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError, LedgerKind};
#[cfg(feature = "stack")]
use crate::engine::Engine;
#[cfg(feature = "stack")]
use crate::ledger::sandbox::SandboxLedger;
#[cfg(feature = "stack")]
use crate::local::SqliteStore;
use crate::ports::{Archive, StoreError};
#[cfg(feature = "stack")]
use timepost_core::ledger::Ledger;

use super::settings::MissingSetting;
use super::{AwsSettings, DynamoStore, S3Archive, SecretsManagerStore, SqsQueue};

/// How long a secret is trusted before it is read again (a 401 re-reads it
/// at once).
pub const SECRETS_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum AwsStackError {
    #[error(transparent)]
    Setting(#[from] MissingSetting),
    #[error(
        "the rules config is missing: upload your timepost.toml to s3://{bucket}/{key} \
         (see docs/deploy.md)"
    )]
    MissingConfig { bucket: String, key: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the rules config s3://{bucket}/{key} is not UTF-8 text")]
    ConfigEncoding { bucket: String, key: String },
    #[error("cannot read the rules config: {0}")]
    Store(#[from] StoreError),
    #[error("TIMEPOST_LEDGER is `{0}`: expected sandbox, qbo or xero")]
    LedgerKind(String),
    #[error("cannot set up the ledger: {0}")]
    Ledger(String),
}

/// One client per service.
#[derive(Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    pub fn from_sdk(sdk: &aws_config::SdkConfig, s3_path_style: bool) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: S3Archive::client(sdk, s3_path_style),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
        }
    }
}

/// The stack's rules, stores, queue, archive and secrets, without a ledger
/// client or an engine: what the webhook and poller functions run on (they
/// only receive and enqueue), and what [`AwsStack`] adds those two to.
pub struct AwsPorts {
    pub settings: AwsSettings,
    pub config: Config,
    pub store: Arc<DynamoStore>,
    pub queue: Arc<SqsQueue>,
    pub archive: Arc<S3Archive>,
    pub secrets: Arc<SecretsManagerStore>,
}

impl AwsPorts {
    /// The ports the environment names (what a function does at init):
    /// settings from `TIMEPOST_*`, the rules config from the bucket.
    pub async fn from_env() -> Result<Self, AwsStackError> {
        let sdk = super::sdk_config().await;
        let settings = AwsSettings::from_env()?;
        let clients = AwsClients::from_sdk(&sdk, settings.s3_path_style);
        Self::connect_with(clients, settings, None).await
    }

    /// Like [`AwsPorts::from_env`], starting on the newest version of the
    /// rules file that loads when the current one does not (the webhook:
    /// see [`load_last_good_config`]). The fallback, when taken, is
    /// returned for the caller to log.
    pub async fn from_env_last_good() -> Result<(Self, Option<ConfigFallback>), AwsStackError> {
        let sdk = super::sdk_config().await;
        let settings = AwsSettings::from_env()?;
        let clients = AwsClients::from_sdk(&sdk, settings.s3_path_style);
        Self::connect_last_good_with(clients, settings).await
    }

    /// [`AwsPorts::connect_with`] on the last rules file that loads.
    pub async fn connect_last_good_with(
        clients: AwsClients,
        settings: AwsSettings,
    ) -> Result<(Self, Option<ConfigFallback>), AwsStackError> {
        let archive = S3Archive::new(clients.s3.clone(), &settings.bucket);
        let (config, fallback) = load_last_good_config(&archive, &settings).await?;
        let ports = Self::connect_with(clients, settings, Some(config)).await?;
        Ok((ports, fallback))
    }

    /// Connect to the resources `settings` names, with clients built by the
    /// caller (the cost measurement adds a request-counting interceptor to
    /// each). `config` is used as given when present (tests, the CLI with a
    /// local file); otherwise it is read from `s3://<bucket>/<config_key>`.
    pub async fn connect_with(
        clients: AwsClients,
        settings: AwsSettings,
        config: Option<Config>,
    ) -> Result<Self, AwsStackError> {
        let archive = Arc::new(S3Archive::new(clients.s3, &settings.bucket));
        let mut config = match config {
            Some(c) => c,
            None => load_config(archive.as_ref(), &settings).await?,
        };
        if let Some(kind) = &settings.ledger {
            config.ledger.kind = match kind.as_str() {
                "sandbox" => LedgerKind::Sandbox,
                "qbo" => LedgerKind::Qbo,
                "xero" => LedgerKind::Xero,
                other => return Err(AwsStackError::LedgerKind(other.to_string())),
            };
        }
        let store = Arc::new(DynamoStore::new(clients.dynamodb, &settings.table));
        let queue = Arc::new(SqsQueue::new(
            clients.sqs,
            &settings.queue_url,
            &settings.dlq_url,
        ));
        let secrets = Arc::new(SecretsManagerStore::new(
            clients.secrets,
            &settings.secret_prefix,
            SECRETS_TTL,
        ));
        Ok(Self {
            settings,
            config,
            store,
            queue,
            archive,
            secrets,
        })
    }

    /// The stores a poll run uses.
    #[cfg(feature = "clients")]
    pub fn poll_ports(&self) -> crate::poll::PollPorts {
        crate::poll::PollPorts {
            watermarks: self.store.clone(),
            entries: self.store.clone(),
            queue: self.queue.clone(),
            mappings: self.store.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// Where period snapshots live: `archive/` in the bucket
    /// `TIMEPOST_ARCHIVE_BUCKET` names (the stack's bucket by default).
    pub fn snapshots(&self) -> crate::archive::Prefixed<S3Archive> {
        snapshot_archive(self.archive.client.clone(), &self.settings)
    }
}

/// The AWS runtime of one deployed stack: its [`AwsPorts`] (reached
/// through `Deref`: `stack.store`, `stack.config`, ...), the ledger client
/// and the engine.
#[cfg(feature = "stack")]
pub struct AwsStack {
    pub ports: AwsPorts,
    pub ledger: Arc<dyn Ledger>,
    pub engine: Arc<Engine>,
}

#[cfg(feature = "stack")]
impl std::ops::Deref for AwsStack {
    type Target = AwsPorts;
    fn deref(&self) -> &AwsPorts {
        &self.ports
    }
}

#[cfg(feature = "stack")]
impl AwsStack {
    /// The stack the environment names (what a Lambda function does at
    /// init): settings from `TIMEPOST_*`, the rules config from the bucket.
    pub async fn from_env() -> Result<Self, AwsStackError> {
        Self::on(AwsPorts::from_env().await?)
    }

    /// [`AwsStack::connect`] on the last rules file that loads.
    pub async fn connect_last_good(
        sdk: &aws_config::SdkConfig,
        settings: AwsSettings,
    ) -> Result<(Self, Option<ConfigFallback>), AwsStackError> {
        let clients = AwsClients::from_sdk(sdk, settings.s3_path_style);
        let (ports, fallback) = AwsPorts::connect_last_good_with(clients, settings).await?;
        Ok((Self::on(ports)?, fallback))
    }

    /// Connect to the resources `settings` names. `config` is used as given
    /// when present (tests, the CLI with a local file); otherwise it is read
    /// from `s3://<bucket>/<config_key>`.
    pub async fn connect(
        sdk: &aws_config::SdkConfig,
        settings: AwsSettings,
        config: Option<Config>,
    ) -> Result<Self, AwsStackError> {
        let clients = AwsClients::from_sdk(sdk, settings.s3_path_style);
        Self::connect_with(clients, settings, config).await
    }

    /// Like [`AwsStack::connect`], with clients built by the caller (the
    /// cost measurement adds a request-counting interceptor to each).
    pub async fn connect_with(
        clients: AwsClients,
        settings: AwsSettings,
        config: Option<Config>,
    ) -> Result<Self, AwsStackError> {
        Self::on(AwsPorts::connect_with(clients, settings, config).await?)
    }

    /// The ledger client `ports.config` names and the engine, on `ports`.
    pub fn on(ports: AwsPorts) -> Result<Self, AwsStackError> {
        let config = &ports.config;
        let secrets = ports.secrets.clone();
        let store = ports.store.clone();
        // Every instance paces its ledger calls through one DynamoDB item
        // per company, so the company's limit holds across instances.
        let pacer: Arc<dyn crate::net::ratelimit::SharedPacer> = Arc::new(super::DynamoPacer::new(
            store.client.clone(),
            &ports.settings.table,
        ));
        let ledger: Arc<dyn Ledger> = match config.ledger.kind {
            LedgerKind::Sandbox => Arc::new(sandbox_ledger(config)?),
            kind => crate::ledger::cloud::connect_paced(
                kind.as_str(),
                config.ledger.qbo.as_ref(),
                config.ledger.xero.as_ref(),
                secrets.clone(),
                Some(pacer),
            )
            .map_err(|e| AwsStackError::Ledger(e.to_string()))?,
        };
        let engine = Arc::new(Engine::new(
            store.clone(),
            store.clone(),
            store.clone(),
            ledger.clone(),
            config.rules.clone(),
            config.worker.clone(),
        ));
        Ok(Self {
            ports,
            ledger,
            engine,
        })
    }
}

/// The snapshot archive of `settings` on `client`: `archive/` in the
/// archive bucket.
pub fn snapshot_archive(
    client: aws_sdk_s3::Client,
    settings: &AwsSettings,
) -> crate::archive::Prefixed<S3Archive> {
    crate::archive::Prefixed {
        inner: S3Archive::new(client, &settings.archive_bucket),
        prefix: "archive/".into(),
    }
}

/// Read and parse the rules config from the bucket.
pub async fn load_config(
    archive: &dyn Archive,
    settings: &AwsSettings,
) -> Result<Config, AwsStackError> {
    let missing = || AwsStackError::MissingConfig {
        bucket: settings.bucket.clone(),
        key: settings.config_key.clone(),
    };
    let bytes = archive
        .get(&settings.config_key)
        .await?
        .ok_or_else(missing)?;
    let text = String::from_utf8(bytes).map_err(|_| AwsStackError::ConfigEncoding {
        bucket: settings.bucket.clone(),
        key: settings.config_key.clone(),
    })?;
    let location = format!("s3://{}/{}", settings.bucket, settings.config_key);
    Ok(Config::parse(&text, &location)?)
}

/// How many earlier versions of the rules file the webhook tries when the
/// current one does not parse.
const LAST_GOOD_VERSIONS: usize = 20;

/// The rules file a function started on when the current one is broken.
#[derive(Debug, Clone)]
pub struct ConfigFallback {
    /// Why the current rules file was refused (the parser's sentence).
    pub current_error: String,
    /// The S3 version used instead, and when it was uploaded.
    pub version_id: String,
    pub uploaded_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Display for ConfigFallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the rules config does not load ({}); started on the last version that does \
             (S3 version {}",
            self.current_error, self.version_id
        )?;
        if let Some(at) = self.uploaded_at {
            write!(f, ", uploaded {}", at.format("%Y-%m-%d %H:%M UTC"))?;
        }
        write!(
            f,
            "). Deliveries are still accepted and queued; nothing is posted until the \
             file is fixed"
        )
    }
}

/// Read the rules config, or — when the current file exists but does not
/// load — the newest earlier version of it that does (the bucket is
/// versioned). The webhook starts this way so a broken upload never turns
/// tracker deliveries away: what it needs (sources, signing secrets, time
/// zones) rarely changes, and the sync function holds every message back
/// until the current file loads. A missing file, or no version that
/// loads, is the current file's error.
pub async fn load_last_good_config(
    archive: &S3Archive,
    settings: &AwsSettings,
) -> Result<(Config, Option<ConfigFallback>), AwsStackError> {
    let current_error = match load_config(archive, settings).await {
        Ok(config) => return Ok((config, None)),
        Err(e @ (AwsStackError::Config(_) | AwsStackError::ConfigEncoding { .. })) => e,
        Err(e) => return Err(e),
    };
    let versions = archive
        .versions(&settings.config_key, LAST_GOOD_VERSIONS)
        .await?;
    let location = format!("s3://{}/{}", settings.bucket, settings.config_key);
    for v in versions.iter().filter(|v| !v.is_latest) {
        let Some(bytes) = archive
            .get_version(&settings.config_key, &v.version_id)
            .await?
        else {
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if let Ok(config) = Config::parse(&text, &location) {
            return Ok((
                config,
                Some(ConfigFallback {
                    current_error: current_error.to_string(),
                    version_id: v.version_id.clone(),
                    uploaded_at: v.last_modified,
                }),
            ));
        }
    }
    Err(current_error)
}

/// The sandbox ledger in AWS keeps its books in the instance's temporary
/// directory: it checks every posting against the configured chart exactly
/// as locally, but its books last only as long as the instance. Deploy with
/// `qbo` or `xero` for real books.
#[cfg(feature = "stack")]
fn sandbox_ledger(config: &Config) -> Result<SandboxLedger, AwsStackError> {
    let path = std::env::temp_dir().join(format!(
        "timepost-sandbox-{}.sqlite",
        uuid::Uuid::new_v4().simple()
    ));
    let books = SqliteStore::open(&path).map_err(|e| AwsStackError::Ledger(e.to_string()))?;
    Ok(SandboxLedger::new(books, config.ledger.sandbox.clone()))
}
