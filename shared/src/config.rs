//! `timepost.toml`: where the store lives, how the server listens, the rules,
//! and which ledger to post to. A mistake is reported with the file, line and
//! field, and nothing starts.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ledger::sandbox::Chart;
use crate::rules::Rules;

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
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_bind")]
    pub bind: String,
}

fn default_bind() -> String {
    "127.0.0.1:8787".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
        }
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
    pub qbo: Option<crate::ledger::cloud::QboConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xero: Option<crate::ledger::cloud::XeroConfig>,
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
}

fn default_recheck() -> u64 {
    300
}

impl Default for Schedules {
    fn default() -> Self {
        Self {
            held_recheck_secs: default_recheck(),
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
        Ok(cfg)
    }

    /// Parse config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
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
            crate::ledger::cloud::problem(l.kind.as_str(), l.qbo.as_ref(), l.xero.as_ref())
        {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: line_of(text, field.rsplit('.').next().unwrap_or("ledger")),
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
