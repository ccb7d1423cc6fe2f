//! The Toggl Track API poller: `GET /api/v9/me/time_entries?since=<unix>`
//! (entries modified since then, deleted ones included, in one answer),
//! HTTP Basic `<token>:api_token`, paced at `requests_per_hour`.
//!
//! Not confirmed from Toggl's documentation: how far back `since` may reach
//! (keep `first_poll_days` modest) and whether the answer is ever cut short;
//! an entry missed that way arrives with its next edit or through webhooks.

use std::time::Duration;

use chrono::Utc;

use super::{
    enqueue_and_advance, parse_context, secret, Auth, Fetcher, PollError, PollPorts, PollReport,
};
use crate::config::{IntakeConfig, TogglPollConfig};
use crate::ledger::ratelimit::Rate;
use crate::sources::toggl::parse_api_entries;

pub struct TogglPoller {
    cfg: TogglPollConfig,
    intake: IntakeConfig,
    fetch: Fetcher,
}

impl TogglPoller {
    pub fn new(cfg: TogglPollConfig, intake: IntakeConfig) -> Result<Self, PollError> {
        let fetch = Fetcher::new(
            Rate::new(cfg.requests_per_hour.max(1), Duration::from_secs(3600)),
            cfg.retry(),
        )?;
        Ok(Self { cfg, intake, fetch })
    }

    /// `toggl:<workspace>` (`toggl:me` when every workspace is polled).
    pub fn watermark_name(&self) -> String {
        format!("toggl:{}", self.cfg.workspace.as_deref().unwrap_or("me"))
    }

    pub async fn run(&self, ports: &PollPorts) -> Result<PollReport, PollError> {
        let name = self.watermark_name();
        let mut report = PollReport {
            source: "toggl".into(),
            watermark_name: name.clone(),
            ..Default::default()
        };
        let token = secret(ports, &self.cfg.token_secret).await?;
        let ctx = parse_context(ports, &self.intake).await?;
        let before = ports.watermarks.get_watermark(&name).await?;
        report.watermark_before = before;
        let since = before.unwrap_or_else(|| {
            Utc::now() - chrono::Duration::days(i64::from(self.cfg.first_poll_days))
        });
        let url = format!(
            "{}/api/v9/me/time_entries?since={}",
            self.cfg.base_url.trim_end_matches('/'),
            since.timestamp()
        );
        let reply = self
            .fetch
            .get(
                &url,
                &[("Accept", "application/json")],
                &Auth::Basic(&token, "api_token"),
                false,
                &mut report,
            )
            .await?;
        report.pages = 1;
        let mut entries =
            parse_api_entries(&reply.body, &ctx).map_err(|source| PollError::Parse {
                what: "Toggl time entries".into(),
                source,
            })?;
        if let Some(ws) = &self.cfg.workspace {
            entries.retain(|e| &e.key.workspace == ws);
        }
        report.fetched = entries.len();
        let overlap = Duration::from_secs(self.cfg.overlap_secs);
        let (n, after) = enqueue_and_advance(ports, &name, since, before, entries, overlap).await?;
        report.enqueued = n;
        report.watermark_after = after;
        tracing::info!(watermark = ?after, enqueued = n, "poll: toggl done");
        Ok(report)
    }
}
