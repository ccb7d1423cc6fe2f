//! `[alerts]` and `[exports]` in `timepost.toml`. Every field is optional;
//! the defaults are written beside each one (and in docs/finance.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A day of the week, as written in the config (`mon` … `sun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub fn of(d: chrono::Weekday) -> Self {
        match d {
            chrono::Weekday::Mon => Day::Mon,
            chrono::Weekday::Tue => Day::Tue,
            chrono::Weekday::Wed => Day::Wed,
            chrono::Weekday::Thu => Day::Thu,
            chrono::Weekday::Fri => Day::Fri,
            chrono::Weekday::Sat => Day::Sat,
            chrono::Weekday::Sun => Day::Sun,
        }
    }
}

/// How a connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which must succeed (587).
    #[default]
    Starttls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// `[alerts.smtp]`: e-mail through an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The sender (`timepost <alerts@example.com>`).
    pub from: String,
    /// Who gets every alert.
    pub to: Vec<String>,
    /// Secret names (in the secrets file / Secrets Manager) of the SMTP
    /// login, when the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// Give up on one message after this many seconds (default 30).
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_smtp_timeout() -> u64 {
    30
}

/// `[alerts]`: the rules and where notices go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often `timepost serve` runs the alert pass (default 900 s).
    pub every_secs: u64,
    /// Group pending alerts into one message a day at `digest_hour`
    /// instead of sending each as it fires (default false).
    pub digest: bool,
    /// The local hour (in `time_zone`) the digest goes out (default 8).
    pub digest_hour: u32,
    /// Time zone of working hours and of the digest (default UTC).
    pub time_zone: Tz,
    /// The console's address, prefixed to each alert's link (default: the
    /// `[console] public_url`, else `http://` + the bind address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// Days of work dates the high-risk checks look back (default 14).
    pub lookback_days: u32,
    /// At most this many entries are read per pass (default 5000).
    pub max_entries: usize,
    /// Tracker workspaces to watch (`harvest:123456`, `clockify:ws1`), in
    /// addition to the configured pollers' and those of open entries.
    pub workspaces: Vec<String>,
    /// One entry longer than this many hours (default 12; 0 = off).
    pub max_entry_hours: f64,
    /// Work on another day is implausible (default mon–fri; empty = any).
    pub work_days: Vec<Day>,
    /// Work starting before this local hour is implausible (default 5).
    pub earliest_hour: u32,
    /// Work ending after this local hour is implausible (default 23;
    /// 24 = off).
    pub latest_hour: u32,
    /// A worker's week above this many hours (default 50; 0 = off).
    pub max_week_hours: f64,
    /// A posted entry changed by at least this many hours (default 2;
    /// 0 = off).
    pub large_edit_hours: f64,
    /// Alert on entries refused because their period is closed (default on).
    pub closed_period: bool,
    /// Alert on suspected duplicates (default on).
    pub duplicates: bool,
    /// Exceptions older than this many days (default 3; 0 = off).
    pub exception_age_days: u32,
    /// Alert on held work that waits for a mapping (default on).
    pub unmapped_work: bool,
    /// The owner's e-mail per tracker project (id or name): unmapped-work
    /// alerts for the project go to them too.
    pub project_owners: BTreeMap<String, String>,
    /// Alert on a non-empty dead-letter queue (default on).
    pub dead_letters: bool,
    /// Alert on breaks in the newest reconciliation run (default on).
    pub reconcile_breaks: bool,
    /// Warn this many days before the ledger's refresh token lapses
    /// (default 14).
    pub token_warn_days: u32,
    /// Refresh-token lifetimes after their last use: QuickBooks up to 100
    /// days (../shared/VENDOR-FACTS.md, QuickBooks Online, "OAuth 2"),
    /// Xero 60 ("Unused refresh tokens expire after 60 days", Xero
    /// developer FAQ, developer.xero.com/faq/oauth2).
    pub qbo_refresh_days: u32,
    pub xero_refresh_days: u32,
    /// Working hours, for the silent-source check (default 8 to 18 on
    /// `work_days`).
    pub work_start_hour: u32,
    pub work_end_hour: u32,
    /// A source is silent when the working time since its last arrival
    /// passes this many times its longest gap in the window (default 3;
    /// 0 = off) …
    pub silence_factor: f64,
    /// … and at least this many working hours (default 4) …
    pub silence_min_hours: f64,
    /// … once it has this many arrivals to learn from (default 10).
    pub silence_min_arrivals: usize,
    /// Slack / Teams-compatible webhook (JSON with a `text` field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Secret holding the webhook URL instead (it carries a token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            every_secs: 900,
            digest: false,
            digest_hour: 8,
            time_zone: Tz::UTC,
            console_url: None,
            lookback_days: 14,
            max_entries: 5000,
            workspaces: Vec::new(),
            max_entry_hours: 12.0,
            work_days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            earliest_hour: 5,
            latest_hour: 23,
            max_week_hours: 50.0,
            large_edit_hours: 2.0,
            closed_period: true,
            duplicates: true,
            exception_age_days: 3,
            unmapped_work: true,
            project_owners: BTreeMap::new(),
            dead_letters: true,
            reconcile_breaks: true,
            token_warn_days: 14,
            qbo_refresh_days: 100,
            xero_refresh_days: 60,
            work_start_hour: 8,
            work_end_hour: 18,
            silence_factor: 3.0,
            silence_min_hours: 4.0,
            silence_min_arrivals: 10,
            webhook_url: None,
            webhook_url_secret: None,
            smtp: None,
        }
    }
}

/// Which period a scheduled export covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportPeriod {
    Week,
    #[default]
    Month,
}

/// `[exports]`: the period's CSVs for finance, on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportsConfig {
    /// Where local exports go, one folder per period (default `exports`).
    pub dir: PathBuf,
    /// The last closed week or month is exported once (default month).
    pub period: ExportPeriod,
    /// How often `timepost serve` checks for a period to export (default
    /// 3600 s).
    pub every_secs: u64,
    /// Send a notice through the alert notifiers when written (default on).
    pub notify: bool,
}

impl Default for ExportsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("exports"),
            period: ExportPeriod::Month,
            every_secs: 3600,
            notify: true,
        }
    }
}
