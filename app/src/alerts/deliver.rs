//! One alert pass: gather → evaluate → update the alert state → notify.
//!
//! - A condition fires ONCE: a new key gets a state (first fired, last
//!   seen); while later passes still find it only `last_seen` moves. When a
//!   pass no longer finds it, it is marked cleared; if it returns, it fires
//!   again as a new occurrence.
//! - A notice counts as sent when every notifier accepted it; a condition
//!   whose notice failed stays pending and is retried on the next pass.
//! - Digest mode: pending alerts wait for the daily digest (one message,
//!   at `digest_hour` local time, once a day; the time of the last digest
//!   is the watermark [`DIGEST_MARK`]).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use super::gather::{gather, Sources};
use super::{evaluate, Condition};
use crate::config::Config;
use crate::ports::{AlertState, AlertStore, Notice, Notifier, StoreResult, WatermarkStore};

/// The watermark holding when the last digest went out.
pub const DIGEST_MARK: &str = "alerts:digest";

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// Every active condition.
    pub conditions: Vec<Condition>,
    /// Keys that started in this pass.
    pub fired: Vec<String>,
    /// Keys that cleared in this pass.
    pub cleared: Vec<String>,
    /// Notices sent (one per alert, or one digest).
    pub notices: usize,
    /// Alerts those notices covered.
    pub alerts_sent: usize,
    /// Delivery failures (`channel: message`).
    pub failures: Vec<String>,
}

/// The alert state after a pass found `conditions`: the states to write,
/// with the keys that fired and cleared. Pure.
pub fn plan(
    active: &[AlertState],
    conditions: &[Condition],
    now: DateTime<Utc>,
) -> (Vec<AlertState>, Vec<String>, Vec<String>) {
    let mut writes = Vec::new();
    let mut fired = Vec::new();
    let mut cleared = Vec::new();
    for c in conditions {
        match active.iter().find(|s| s.key == c.key) {
            Some(s) => {
                let mut s = s.clone();
                s.last_seen = now;
                s.said = c.said.clone();
                s.owner = c.owner.clone();
                writes.push(s);
            }
            None => {
                fired.push(c.key.clone());
                writes.push(AlertState {
                    key: c.key.clone(),
                    rule: c.rule.as_str().to_string(),
                    said: c.said.clone(),
                    link: c.link.clone(),
                    owner: c.owner.clone(),
                    first_fired: now,
                    last_seen: now,
                    notified: None,
                    cleared: None,
                });
            }
        }
    }
    for s in active {
        if !conditions.iter().any(|c| c.key == s.key) {
            let mut s = s.clone();
            s.cleared = Some(now);
            cleared.push(s.key.clone());
            writes.push(s);
        }
    }
    (writes, fired, cleared)
}

/// Is the daily digest due at `now` (local `hour` in `tz` passed today, and
/// the last one went out before that)?
pub fn digest_due(
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    hour: u32,
) -> bool {
    let local = now.with_timezone(&tz);
    let Some(at) = local
        .date_naive()
        .and_hms_opt(hour.min(23), 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
    else {
        return false;
    };
    now >= at && last.is_none_or(|l| l < at)
}

/// The console address alert links start with.
pub fn console_base(config: &Config) -> String {
    config
        .alerts
        .console_url
        .clone()
        .or_else(|| config.console.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", config.server.bind))
        .trim_end_matches('/')
        .to_string()
}

fn alert_notice(s: &AlertState, base: &str) -> Notice {
    Notice {
        subject: format!("timepost alert: {}", s.rule.replace('_', " ")),
        text: format!("{}\nResolve it here: {base}{}", s.said, s.link),
        extra_to: s.owner.iter().cloned().collect(),
    }
}

fn digest_notice(states: &[&AlertState], base: &str) -> Notice {
    let mut text = format!("{} alert(s) since the last digest:\n", states.len());
    let mut extra: Vec<String> = Vec::new();
    for s in states {
        text.push_str(&format!("\n- {}\n  {base}{}\n", s.said, s.link));
        if let Some(o) = &s.owner {
            if !extra.contains(o) {
                extra.push(o.clone());
            }
        }
    }
    Notice {
        subject: format!("timepost daily digest: {} alert(s)", states.len()),
        text,
        extra_to: extra,
    }
}

/// Send `n` through every notifier; the failures.
pub async fn broadcast(notifiers: &[Arc<dyn Notifier>], n: &Notice) -> Vec<String> {
    let mut failures = Vec::new();
    for x in notifiers {
        if let Err(e) = x.notify(n).await {
            tracing::warn!(channel = x.channel(), error = %e.message, "alerts: notice not delivered");
            failures.push(e.to_string());
        }
    }
    failures
}

/// What a pass works on.
pub struct Pass<'a> {
    pub sources: Sources<'a>,
    pub alerts: &'a dyn AlertStore,
    pub watermarks: &'a dyn WatermarkStore,
    pub notifiers: &'a [Arc<dyn Notifier>],
}

impl Pass<'_> {
    /// Gather and evaluate only (what `timepost alerts check` shows).
    pub async fn check(&self, config: &Config, now: DateTime<Utc>) -> StoreResult<Vec<Condition>> {
        let snap = gather(&self.sources, config, now).await?;
        Ok(evaluate(&snap, &config.alerts, now))
    }

    /// A full pass: state and notices. `force_digest` sends the digest now
    /// whatever the hour (digest mode).
    pub async fn run(
        &self,
        config: &Config,
        now: DateTime<Utc>,
        force_digest: bool,
    ) -> StoreResult<PassReport> {
        let conditions = self.check(config, now).await?;
        let active = self.alerts.active_alerts().await?;
        let (writes, fired, cleared) = plan(&active, &conditions, now);
        for s in &writes {
            self.alerts.put_alert(s).await?;
        }
        let mut report = PassReport {
            conditions,
            fired,
            cleared,
            ..PassReport::default()
        };
        let pending: Vec<&AlertState> = writes
            .iter()
            .filter(|s| s.cleared.is_none() && s.notified.is_none())
            .collect();
        if pending.is_empty() || self.notifiers.is_empty() {
            return Ok(report);
        }
        let base = console_base(config);
        let rules = &config.alerts;
        if rules.digest {
            let last = self.watermarks.get_watermark(DIGEST_MARK).await?;
            if !force_digest && !digest_due(last, now, rules.time_zone, rules.digest_hour) {
                return Ok(report);
            }
            let failures = broadcast(self.notifiers, &digest_notice(&pending, &base)).await;
            report.notices = 1;
            if failures.is_empty() {
                for s in &pending {
                    let mut s = (*s).clone();
                    s.notified = Some(now);
                    self.alerts.put_alert(&s).await?;
                }
                report.alerts_sent = pending.len();
                self.watermarks.set_watermark(DIGEST_MARK, now).await?;
            }
            report.failures = failures;
        } else {
            for s in pending {
                let failures = broadcast(self.notifiers, &alert_notice(s, &base)).await;
                report.notices += 1;
                if failures.is_empty() {
                    let mut s = s.clone();
                    s.notified = Some(now);
                    self.alerts.put_alert(&s).await?;
                    report.alerts_sent += 1;
                }
                report.failures.extend(failures);
            }
        }
        Ok(report)
    }
}
