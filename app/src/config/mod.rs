//! `timepost.toml`: where the store lives, how the server listens, the rules,
//! and which ledger to post to. A mistake is reported with the file, line and
//! field, and nothing starts.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub mod alerts;
pub mod ledgers;
pub mod oidc;
pub mod reconcile;
pub mod retention;

use crate::rules::Rules;
use ledgers::Chart;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub intake: IntakeConfig,
    pub rules: Rules,
    #[serde(default)]
    pub ledger: LedgerConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub schedules: Schedules,
    /// Who may use the console and the admin API, with which role.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// `[reconcile]`: tolerances of `timepost reconcile`.
    #[serde(default)]
    pub reconcile: reconcile::ReconcileConfig,
    /// `[retention]`: archive periods, how long snapshots and live entries
    /// are kept, legal hold. Absent: `archive` commands use the defaults
    /// and `serve` runs no archive schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<retention::RetentionConfig>,
    /// `[alerts]`: alert rules and where notices go (`crate::alerts`).
    #[serde(default)]
    pub alerts: alerts::AlertsConfig,
    /// `[exports]`: the period's CSVs for finance on a schedule. Absent:
    /// no scheduled export (`timepost export period` still works).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<alerts::ExportsConfig>,
}

/// `[console]`: the console's users (`[[console.users]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default)]
    pub users: Vec<ConsoleUser>,
    /// How long a console sign-in lasts, in minutes.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
    /// A mapping change whose impact preview touches more entries than
    /// this waits for a second admin's approval; 0 = every console change
    /// does.
    #[serde(default = "default_mapping_approval_threshold")]
    pub mapping_approval_threshold: u64,
    /// The address people open the console at, when it is not the bind
    /// address (a TLS-terminating proxy in front). `https://…` makes every
    /// console cookie `Secure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Believe the `X-Forwarded-Proto` header of the proxy in front (set
    /// only when such a proxy sets it and is the only way in): a request it
    /// marks `https` gets `Secure` cookies.
    #[serde(default)]
    pub trust_forwarded_proto: bool,
    /// Failed bearer tokens or sign-ins one client may make before each
    /// further attempt waits (1 s, doubling, at most 15 min); all clients
    /// together may make ten times as many (see `timepost_web::throttle`).
    #[serde(default = "default_failed_tokens_per_client")]
    pub failed_tokens_per_client: u32,
    /// `[console.oidc]`: browser sign-in through an OpenID Connect provider
    /// (a Cognito user pool's hosted UI); see `crate::oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<oidc::OidcConfig>,
}

/// Failures a client may make before it waits (the default of
/// `[console] failed_tokens_per_client`; `timepost_web::throttle`).
pub const DEFAULT_FAILED_TOKENS_PER_CLIENT: u32 = 5;

fn default_failed_tokens_per_client() -> u32 {
    DEFAULT_FAILED_TOKENS_PER_CLIENT
}

fn default_session_minutes() -> u64 {
    480
}

fn default_mapping_approval_threshold() -> u64 {
    25
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            session_minutes: default_session_minutes(),
            mapping_approval_threshold: default_mapping_approval_threshold(),
            public_url: None,
            trust_forwarded_proto: false,
            failed_tokens_per_client: default_failed_tokens_per_client(),
            oidc: None,
        }
    }
}

/// One console user: a name, a role and a hash of their token (the token
/// itself is never stored). `token_hmac` is keyed with the server's
/// `token_key` secret (see `timepost_web::tokens`); `token_sha256`, unkeyed, is
/// what older configs hold: still accepted, warned about at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    pub name: String,
    pub role: crate::identity::Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hmac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}

impl ConsoleUser {
    /// The sentence logged at start for a user whose token is kept as an
    /// unkeyed SHA-256 (None when it is keyed).
    pub fn unkeyed_warning(&self) -> Option<String> {
        self.token_hmac.is_none().then(|| {
            format!(
                "console user `{}` has `token_sha256`, an unkeyed hash: anyone with a copy of \
                 timepost.toml can test guesses of the token offline. Issue a new token with \
                 `timepost token new --user {} --role {}` and replace the user's token_sha256 \
                 line with the token_hmac line it prints (or, knowing the token, \
                 `timepost token hash`)",
                self.name,
                self.name,
                self.role.as_str()
            )
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file (relative paths are relative to the config file).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    #[serde(default = "default_archive_dir")]
    pub archive_dir: PathBuf,
    /// Local secrets file; must be mode 0600.
    #[serde(default = "default_secrets")]
    pub secrets_file: PathBuf,
    /// A store kept as it is (what `archive restore` writes): `serve` runs
    /// no queue worker and no schedules on it, so nothing re-evaluates the
    /// archived entries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

fn default_store_path() -> PathBuf {
    PathBuf::from(".timepost/timepost.sqlite")
}
fn default_archive_dir() -> PathBuf {
    PathBuf::from(".timepost/archive")
}
fn default_secrets() -> PathBuf {
    PathBuf::from(".timepost/secrets.toml")
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
            archive_dir: default_archive_dir(),
            secrets_file: default_secrets(),
            read_only: false,
        }
    }
}

/// `[server]`: where `timepost serve` listens, the limits that keep a slow
/// or idle client from starving it, and how long a stop may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Connections served at once; further ones wait in the listen backlog
    /// until one closes. Keep it under the process's file-descriptor limit.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A request's headers must arrive within this many seconds of the
    /// client starting it (or of the connection becoming ready for the
    /// next one); otherwise the connection is closed.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// A request's body must arrive within this many seconds of its
    /// headers; otherwise the answer is 408 and the connection is closed.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
    /// A connection with no request in progress and no bytes moving for
    /// this many seconds is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C: how long to wait for the message in hand and
    /// the requests in progress before exiting anyway (the queue keeps
    /// whatever was not finished).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

fn default_bind() -> String {
    "127.0.0.1:8787".into()
}
fn default_max_connections() -> usize {
    512
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_body_read_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_shutdown_grace() -> u64 {
    10
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            max_connections: default_max_connections(),
            header_read_timeout_secs: default_header_read_timeout(),
            body_read_timeout_secs: default_body_read_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            shutdown_grace_secs: default_shutdown_grace(),
        }
    }
}

impl ServerConfig {
    /// The first setting that cannot work, as (dotted field, message).
    fn problem(&self) -> Option<(String, String)> {
        if self.max_connections == 0 {
            return Some(("server.max_connections".into(), "must be at least 1".into()));
        }
        for (field, v) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("shutdown_grace_secs", self.shutdown_grace_secs),
        ] {
            if v == 0 {
                return Some((format!("server.{field}"), "must be at least 1".into()));
            }
        }
        None
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Time zone for workers whose mapping names none.
    #[serde(default = "default_tz")]
    pub default_time_zone: Tz,
    /// Harvest: post `rounded_hours` instead of `hours`.
    #[serde(default)]
    pub harvest_use_rounded: bool,
    /// Column names of a generic CSV export (`timepost ingest --source
    /// csv`), for files that are not Clockify, Toggl or Harvest exports.
    #[serde(default)]
    pub csv_columns: crate::sources::csv_import::CsvColumns,
    /// `[intake.harvest]`: poll a Harvest account (no section, no poller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harvest: Option<HarvestPollConfig>,
    /// `[intake.toggl_poll]`: poll Toggl Track's API (a fallback to its
    /// webhooks; no section, no poller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toggl_poll: Option<TogglPollConfig>,
}

/// `[intake.harvest]`: the Harvest poller (API v2; Harvest has no webhooks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarvestPollConfig {
    /// The `Harvest-Account-Id`; also the entries' workspace.
    pub account_id: String,
    #[serde(default = "default_harvest_url")]
    pub base_url: String,
    /// Entries per page (Harvest allows up to 2000).
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// Days (back from today) re-listed on every poll to find deleted
    /// entries; 0 turns deletion detection off.
    #[serde(default = "default_lookback")]
    pub lookback_days: u32,
    /// Pace requests at this many per 15 s (Harvest's limit is 100).
    #[serde(default = "default_harvest_rate")]
    pub requests_per_15s: u32,
    /// Name of the secret holding the personal access token.
    #[serde(default = "default_harvest_secret")]
    pub token_secret: String,
    /// Harvest asks for an application name and a contact address.
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Without a watermark (first poll), list entries updated this many
    /// days back.
    #[serde(default = "default_first_poll")]
    pub first_poll_days: u32,
    /// Attempts at one request before the run fails (watermark untouched).
    #[serde(default = "default_poll_attempts")]
    pub max_attempts: u32,
    /// Longest `Retry-After` honoured inside a run; a longer one fails the
    /// run (the next scheduled run resumes from the same watermark).
    #[serde(default = "default_poll_max_wait")]
    pub max_wait_secs: u64,
    /// Exponential backoff for 5xx and network failures, in ms.
    #[serde(default = "default_poll_backoff_base")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_poll_backoff_cap")]
    pub backoff_cap_ms: u64,
    /// The watermark is set this many seconds before the newest change
    /// seen, so a change saved during the poll is listed again next time
    /// (duplicates are harmless).
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
    /// Timeout of one HTTP request, in seconds.
    #[serde(default = "default_poll_timeout")]
    pub timeout_secs: u64,
    /// The account's currency (ISO 4217), for billable rates whose client's
    /// currency cannot be read. A time entry names only its client's id and
    /// name; the poller reads each client's `currency` (`GET
    /// /v2/clients/{id}`, which needs an Administrator or a Manager allowed
    /// to edit clients) and caches it. Harvest's company endpoint has no
    /// currency, so without this setting such a rate is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<crate::model::Currency>,
}

/// `[intake.toggl_poll]`: the Toggl Track poller, reading every user's
/// time of one workspace through the Reports API v3 detailed search. The
/// token must be a workspace admin's: `/me/time_entries` would return only
/// the token user's own time, and the Reports API shows other users' time
/// only to admins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TogglPollConfig {
    #[serde(default = "default_toggl_url")]
    pub base_url: String,
    /// The workspace id to read (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Days (back from today) listed on every poll: changes and deletions
    /// of entries dated in this window are found.
    #[serde(default = "default_lookback")]
    pub lookback_days: u32,
    /// Rows per report page.
    #[serde(default = "default_toggl_page_size")]
    pub page_size: u32,
    /// Pace requests at this many per hour (Toggl allows 30–600 by plan).
    #[serde(default = "default_toggl_rate")]
    pub requests_per_hour: u32,
    /// Name of the secret holding the API token.
    #[serde(default = "default_toggl_secret")]
    pub token_secret: String,
    /// Without a watermark (first poll), ask for entries modified this many
    /// days back.
    #[serde(default = "default_first_poll")]
    pub first_poll_days: u32,
    /// Attempts at one request before the run fails (watermark untouched).
    #[serde(default = "default_poll_attempts")]
    pub max_attempts: u32,
    /// Longest `Retry-After` honoured inside a run; a longer one fails the
    /// run (the next scheduled run resumes from the same watermark).
    #[serde(default = "default_poll_max_wait")]
    pub max_wait_secs: u64,
    /// Exponential backoff for 5xx and network failures, in ms.
    #[serde(default = "default_poll_backoff_base")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_poll_backoff_cap")]
    pub backoff_cap_ms: u64,
    /// The watermark is set this many seconds before the newest change
    /// seen, so a change saved during the poll is listed again next time
    /// (duplicates are harmless).
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
    /// Timeout of one HTTP request, in seconds.
    #[serde(default = "default_poll_timeout")]
    pub timeout_secs: u64,
}

/// How a poller retries one request (from the fields of its section): 429
/// waits for `Retry-After` (at most `max_wait_secs`, else the run gives up),
/// 5xx and network failures back off exponentially (capped); after
/// `max_attempts` the run fails and the watermark stays where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRetry {
    pub max_attempts: u32,
    pub max_wait_secs: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    pub overlap_secs: u64,
    pub timeout_secs: u64,
}

macro_rules! poll_retry {
    ($t:ty) => {
        impl $t {
            pub fn retry(&self) -> PollRetry {
                PollRetry {
                    max_attempts: self.max_attempts,
                    max_wait_secs: self.max_wait_secs,
                    backoff_base_ms: self.backoff_base_ms,
                    backoff_cap_ms: self.backoff_cap_ms,
                    overlap_secs: self.overlap_secs,
                    timeout_secs: self.timeout_secs,
                }
            }
        }
    };
}
poll_retry!(HarvestPollConfig);
poll_retry!(TogglPollConfig);

fn default_harvest_url() -> String {
    "https://api.harvestapp.com".into()
}
fn default_per_page() -> u32 {
    2000
}
fn default_lookback() -> u32 {
    30
}
fn default_harvest_rate() -> u32 {
    100
}
fn default_harvest_secret() -> String {
    "harvest_token".into()
}
fn default_user_agent() -> String {
    concat!("timepost/", env!("CARGO_PKG_VERSION")).into()
}
fn default_first_poll() -> u32 {
    30
}
fn default_toggl_url() -> String {
    "https://api.track.toggl.com".into()
}
fn default_toggl_rate() -> u32 {
    30
}
fn default_toggl_page_size() -> u32 {
    50
}
fn default_toggl_secret() -> String {
    "toggl_token".into()
}
fn default_poll_attempts() -> u32 {
    5
}
fn default_poll_max_wait() -> u64 {
    120
}
fn default_poll_backoff_base() -> u64 {
    500
}
fn default_poll_backoff_cap() -> u64 {
    30_000
}
fn default_overlap() -> u64 {
    60
}
fn default_poll_timeout() -> u64 {
    30
}

fn default_tz() -> Tz {
    Tz::UTC
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            default_time_zone: default_tz(),
            harvest_use_rounded: false,
            csv_columns: Default::default(),
            harvest: None,
            toggl_poll: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    #[default]
    Sandbox,
    /// QuickBooks Online (`[ledger.qbo]`).
    Qbo,
    /// Xero Projects (`[ledger.xero]`).
    Xero,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Sandbox => "sandbox",
            LedgerKind::Qbo => "qbo",
            LedgerKind::Xero => "xero",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    #[serde(default)]
    pub kind: LedgerKind,
    /// The sandbox company's chart: what exists in its books.
    #[serde(default)]
    pub sandbox: Chart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qbo: Option<ledgers::QboConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xero: Option<ledgers::XeroConfig>,
}

impl LedgerConfig {
    /// The books are a QuickBooks company without payroll
    /// (`[ledger.qbo] payroll = false`): see `Rules::no_payroll`.
    pub fn has_no_payroll(&self) -> bool {
        matches!(self.kind, LedgerKind::Qbo) && self.qbo.as_ref().is_some_and(|q| !q.payroll)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Messages taken from the queue at once.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Deliveries before a message that keeps failing goes to the DLQ.
    #[serde(default = "default_max_receives")]
    pub max_receives: u32,
    /// Attempts at one ledger call inside one delivery.
    #[serde(default = "default_attempts")]
    pub ledger_attempts: u32,
    /// Base and cap of the exponential backoff with full jitter, in ms.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_cap")]
    pub backoff_cap_ms: u64,
    /// How long a received message stays invisible, in seconds.
    #[serde(default = "default_visibility")]
    pub visibility_secs: u64,
}

fn default_batch() -> usize {
    10
}
fn default_max_receives() -> u32 {
    5
}
fn default_attempts() -> u32 {
    3
}
fn default_backoff_base() -> u64 {
    200
}
fn default_backoff_cap() -> u64 {
    20_000
}
fn default_visibility() -> u64 {
    60
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: default_batch(),
            max_receives: default_max_receives(),
            ledger_attempts: default_attempts(),
            backoff_base_ms: default_backoff_base(),
            backoff_cap_ms: default_backoff_cap(),
            visibility_secs: default_visibility(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedules {
    /// How often held entries are re-checked against the mappings.
    #[serde(default = "default_recheck")]
    pub held_recheck_secs: u64,
    /// How often `timepost serve` polls Harvest (`[intake.harvest]`).
    #[serde(default = "default_harvest_poll")]
    pub harvest_poll_secs: u64,
    /// How often `timepost serve` polls Toggl (`[intake.toggl_poll]`).
    #[serde(default = "default_toggl_poll")]
    pub toggl_poll_secs: u64,
    /// How often `timepost serve` runs the archive when `[retention]` is
    /// set (default daily).
    #[serde(default = "default_archive_every")]
    pub archive_secs: u64,
}

fn default_archive_every() -> u64 {
    86_400
}

fn default_recheck() -> u64 {
    300
}
fn default_harvest_poll() -> u64 {
    300
}
fn default_toggl_poll() -> u64 {
    900
}

impl Default for Schedules {
    fn default() -> Self {
        Self {
            held_recheck_secs: default_recheck(),
            harvest_poll_secs: default_harvest_poll(),
            toggl_poll_secs: default_toggl_poll(),
            archive_secs: default_archive_every(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    #[error("{file}, line {line}{}: {message}", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
    Invalid {
        file: String,
        line: usize,
        field: Option<String>,
        message: String,
    },
}

impl Config {
    /// Read and validate a config file; relative paths in it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.store.path,
            &mut cfg.store.archive_dir,
            &mut cfg.store.secrets_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(x) = cfg.exports.as_mut().filter(|x| x.dir.is_relative()) {
            x.dir = base.join(&x.dir);
        }
        Ok(cfg)
    }

    /// Parse config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            let message = e.message().trim().to_string();
            ConfigError::Invalid {
                file: file.to_string(),
                line,
                field: if message.starts_with("unknown field")
                    || message.starts_with("missing field")
                {
                    field_of(&message).map(|f| dotted(text, line, &f))
                } else {
                    key_at(text, line).or_else(|| field_of(&message))
                },
                message,
            }
        })?;
        let problems = cfg.rules.currency.problems();
        if let Some(p) = problems.first() {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, "rates"),
                field: Some("rules.currency.rates".into()),
                message: p.clone(),
            });
        }
        if cfg.rules.rounding.increment_minutes == 0 {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, "increment_minutes"),
                field: Some("rules.rounding.increment_minutes".into()),
                message: "must be at least 1".into(),
            });
        }
        let l = &cfg.ledger;
        if let Some((field, message)) =
            ledgers::problem(l.kind.as_str(), l.qbo.as_ref(), l.xero.as_ref())
        {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, field.rsplit('.').next().unwrap_or("ledger")),
                field: Some(field),
                message,
            });
        }
        cfg.rules.no_payroll = cfg.ledger.has_no_payroll();
        let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        for u in &cfg.console.users {
            let problem = match (&u.token_hmac, &u.token_sha256) {
                (Some(h), None) if hex64(h) => None,
                (None, Some(h)) if hex64(h) => None,
                (Some(_), None) => Some((
                    "token_hmac",
                    "token_hmac must be 64 hex digits (what `timepost token new` or `timepost token hash` prints)",
                )),
                (None, Some(_)) => Some((
                    "token_sha256",
                    "token_sha256 must be 64 hex digits (the SHA-256 of the token)",
                )),
                (Some(_), Some(_)) => Some((
                    "token_sha256",
                    "has both token_hmac and token_sha256; keep only token_hmac",
                )),
                (None, None) => Some((
                    "name",
                    "has no token: add the token_hmac line `timepost token new` prints",
                )),
            };
            if let Some((field, message)) = problem {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    line: line_of(text, field),
                    field: Some(format!("console.users.{field}")),
                    message: format!("user `{}`: {message}", u.name),
                });
            }
        }
        if let Some((field, message)) = cfg.server.problem() {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, field.rsplit('.').next().unwrap_or("server")),
                field: Some(field),
                message,
            });
        }
        if let Some(u) = &cfg.console.public_url {
            let lower = u.trim().to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    line: line_of(text, "public_url"),
                    field: Some("console.public_url".into()),
                    message: "must start with https:// (or http://)".into(),
                });
            }
        }
        if let Some((field, message)) = cfg.console.oidc.as_ref().and_then(|o| o.problem()) {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, field),
                field: Some(format!("console.oidc.{field}")),
                message,
            });
        }
        if let Some((field, message)) = poll_problem(&cfg.intake) {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, field.rsplit('.').next().unwrap_or("intake")),
                field: Some(field),
                message,
            });
        }
        if let Some((field, message)) = cfg.rules.bounds.problem() {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, field.rsplit('.').next().unwrap_or("bounds")),
                field: Some(field),
                message,
            });
        }
        if let Some(j) = &cfg.rules.default_jurisdiction {
            if !cfg.rules.overtime.contains_key(j) {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    line: line_of(text, "default_jurisdiction"),
                    field: Some("rules.default_jurisdiction".into()),
                    message: format!("no overtime policy named `{j}` under [rules.overtime]"),
                });
            }
        }
        Ok(cfg)
    }
}

/// The first thing wrong with the poller sections, as (dotted field, message).
fn poll_problem(intake: &IntakeConfig) -> Option<(String, String)> {
    let url_ok = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    let retry = |section: &str, r: &PollRetry| -> Option<(String, String)> {
        if r.max_attempts == 0 {
            return Some((
                format!("{section}.max_attempts"),
                "must be at least 1".into(),
            ));
        }
        if r.timeout_secs == 0 {
            return Some((
                format!("{section}.timeout_secs"),
                "must be at least 1".into(),
            ));
        }
        None
    };
    if let Some(h) = &intake.harvest {
        let s = "intake.harvest";
        if h.account_id.trim().is_empty() {
            return Some((format!("{s}.account_id"), "must not be empty".into()));
        }
        if !url_ok(&h.base_url) {
            return Some((
                format!("{s}.base_url"),
                "must start with https:// (or http://)".into(),
            ));
        }
        if !(1..=2000).contains(&h.per_page) {
            return Some((format!("{s}.per_page"), "must be between 1 and 2000".into()));
        }
        if h.requests_per_15s == 0 {
            return Some((format!("{s}.requests_per_15s"), "must be at least 1".into()));
        }
        if h.user_agent.trim().is_empty() {
            return Some((
                format!("{s}.user_agent"),
                "must not be empty (Harvest refuses requests without one)".into(),
            ));
        }
        if let Some(p) = retry(s, &h.retry()) {
            return Some(p);
        }
    }
    if let Some(t) = &intake.toggl_poll {
        let s = "intake.toggl_poll";
        if t.workspace.as_deref().is_none_or(|w| w.trim().is_empty()) {
            return Some((
                format!("{s}.workspace"),
                "must name the workspace id to read (the Reports API reads one workspace; the token must be a workspace admin's)".into(),
            ));
        }
        if !(1..=1000).contains(&t.page_size) {
            return Some((
                format!("{s}.page_size"),
                "must be between 1 and 1000".into(),
            ));
        }
        if !url_ok(&t.base_url) {
            return Some((
                format!("{s}.base_url"),
                "must start with https:// (or http://)".into(),
            ));
        }
        if t.requests_per_hour == 0 {
            return Some((
                format!("{s}.requests_per_hour"),
                "must be at least 1".into(),
            ));
        }
        if let Some(p) = retry(s, &t.retry()) {
            return Some(p);
        }
    }
    None
}

/// `unknown field `x`` / `missing field `x`` → `x`.
fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

/// The dotted key assigned on a line (`rules.rounding.mode`), for errors
/// about a value.
fn key_at(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (k, _) = l.split_once('=')?;
    Some(dotted(text, line, k.trim()))
}

/// `key` prefixed with the `[table]` header in force at `line`.
fn dotted(text: &str, line: usize, key: &str) -> String {
    let header = text
        .lines()
        .take(line)
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .map(|h| h.trim_matches(['[', ']']).trim().to_string())
        })
        .last();
    match header {
        Some(h) if !h.is_empty() => format!("{h}.{key}"),
        _ => key.to_string(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[rules.currency]\nhome = \"USD\"\n";

    #[test]
    fn minimal_config_has_safe_defaults() {
        let c = Config::parse(MIN, "t.toml").unwrap();
        assert!(c.rules.approval.required);
        assert_eq!(c.worker.max_receives, 5);
        assert_eq!(c.server.bind, "127.0.0.1:8787");
        assert_eq!(c.server.max_connections, 512);
        assert_eq!(c.server.header_read_timeout_secs, 10);
        assert_eq!(c.server.shutdown_grace_secs, 10);
    }

    #[test]
    fn console_oidc_is_read_with_defaults_and_checked() {
        let c = Config::parse(
            &format!(
                "{MIN}[console.oidc]\nissuer = \"https://idp.example.com/pool\"\nclient_id = \"c1\"\n"
            ),
            "t.toml",
        )
        .unwrap();
        let o = c.console.oidc.expect("oidc");
        assert_eq!(o.role_claim, "custom:timepost_role");
        assert_eq!(o.scopes, ["openid", "email", "profile"]);
        let e = Config::parse(
            &format!(
                "{MIN}[console.oidc]\nissuer = \"http://idp.example.com\"\nclient_id = \"c1\"\n"
            ),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("console.oidc.issuer") && e.contains("https://"),
            "{e}"
        );
        let e = Config::parse(
            &format!("{MIN}[console.oidc]\nissuer = \"https://idp.example.com\"\n"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("client_id"), "{e}");
    }

    #[test]
    fn console_users_carry_exactly_one_well_formed_hash() {
        let hex = "ab".repeat(32);
        let user = |lines: &str| {
            format!("{MIN}[[console.users]]\nname = \"fran\"\nrole = \"finance\"\n{lines}")
        };
        let c = Config::parse(&user(&format!("token_hmac = \"{hex}\"\n")), "t.toml").unwrap();
        assert!(c.console.users[0].unkeyed_warning().is_none());
        // The older unkeyed hash is accepted, with a warning saying what to do.
        let c = Config::parse(&user(&format!("token_sha256 = \"{hex}\"\n")), "t.toml").unwrap();
        let w = c.console.users[0].unkeyed_warning().expect("warned");
        assert!(
            w.contains("timepost token new --user fran --role finance"),
            "{w}"
        );
        for (lines, says) in [
            (
                format!("token_hmac = \"{hex}\"\ntoken_sha256 = \"{hex}\"\n"),
                "keep only token_hmac",
            ),
            (String::new(), "has no token"),
            (
                "token_hmac = \"xyz\"\n".to_string(),
                "token_hmac must be 64 hex digits",
            ),
        ] {
            let e = Config::parse(&user(&lines), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("user `fran`") && e.contains(says), "{e}");
        }
    }

    #[test]
    fn server_limits_must_be_positive() {
        let bad = format!("{MIN}[server]\nmax_connections = 0\n");
        let e = Config::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(e.contains("`server.max_connections`"), "{e}");
        let bad = format!("{MIN}[server]\nidle_timeout_secs = 0\n");
        let e = Config::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("line 4") && e.contains("`server.idle_timeout_secs`"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = format!("{MIN}[rules.rounding]\nincrement_minutes = 15\nmode = \"sideways\"\n");
        let e = Config::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("t.toml, line 5, field `rules.rounding.mode`"),
            "{e}"
        );
        let bad = format!("{MIN}[rules.rounding]\nincrement = 15\n");
        let e = Config::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("line 4") && e.contains("`rules.rounding.increment`"),
            "{e}"
        );
        let e = Config::parse("[rules]\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("currency"), "{e}");
    }
}
