//! The Toggl Track poller: every user's time of one workspace, through the
//! Reports API v3 detailed search.
//!
//! Why not `GET /api/v9/me/time_entries`: "the requests are scoped with the
//! user whose API token is used" (Toggl API, "Time entries"), so it returns
//! only the token user's own time. The Reports API reads a whole workspace
//! — every user's entries — for a workspace admin ("private reports can
//! only be accessed by the report's owner or workspace admin", Toggl
//! Reports API, "Overview"): the token must be a **workspace admin**'s.
//!
//! One run: `POST /reports/api/v3/workspace/{workspace_id}/search/time_entries`
//! with `start_date` = today − `lookback_days` (further back on the first
//! run: `first_poll_days`) and `end_date` = tomorrow (UTC), `page_size`;
//! further pages by passing the answer's `X-Next-ID` / `X-Next-Row-Number`
//! headers back as `first_id` / `first_row_number` (Toggl Reports API,
//! "Detailed reports": "Supports pagination via X-Next-ID and
//! X-Next-Row-Number headers"), until an answer has none. HTTP Basic
//! `<token>:api_token`, paced at `requests_per_hour`.
//!
//! Changes: every listed entry whose `at` (last modified) is at or after
//! the watermark is enqueued (the engine ignores versions it has seen).
//! Deletions, which a report does not list, are found as for Harvest: the
//! entries timepost holds for the workspace with a work date in the window,
//! not deleted already and missing from the listing, are searched for by id
//! (`time_entry_ids`, over the past year): found → it moved out of the
//! window, that version is enqueued; not found → a deleted version is
//! enqueued. A run that fails part-way moves no watermark and finds no
//! deletions.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde_json::{json, Value};

use super::{
    parse_context, secret, store_watermark, Auth, Fetcher, PollError, PollPorts, PollReport,
};
use crate::config::{IntakeConfig, TogglPollConfig};
use crate::intake;
use crate::model::{NormalisedEntry, Source};
use crate::net::ratelimit::Rate;
use crate::sources::toggl::parse_report_rows;
use crate::sources::ParseContext;
use crate::state::Status;

/// A listing that has not ended after this many pages is refused.
const MAX_PAGES: u32 = 10_000;

/// How far back an entry missing from the window is searched for by id.
const MOVED_SEARCH_DAYS: i64 = 365;

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

    fn workspace(&self) -> &str {
        self.cfg.workspace.as_deref().unwrap_or("")
    }

    /// `toggl:<workspace>`.
    pub fn watermark_name(&self) -> String {
        format!("toggl:{}", self.workspace())
    }

    fn url(&self) -> String {
        format!(
            "{}/reports/api/v3/workspace/{}/search/time_entries",
            self.cfg.base_url.trim_end_matches('/'),
            self.workspace()
        )
    }

    /// Every entry a search finds, following the pagination headers.
    async fn search(
        &self,
        mut body: Value,
        token: &str,
        ctx: &ParseContext,
        report: &mut PollReport,
    ) -> Result<(Vec<NormalisedEntry>, u32), PollError> {
        let url = self.url();
        let mut out = Vec::new();
        let mut pages = 0u32;
        loop {
            let reply = self
                .fetch
                .post_json(
                    &url,
                    &body,
                    &[("Accept", "application/json")],
                    &Auth::Basic(token, "api_token"),
                    report,
                )
                .await?;
            pages += 1;
            out.extend(
                parse_report_rows(&reply.body, self.workspace(), ctx).map_err(|source| {
                    PollError::Parse {
                        what: format!("Toggl detailed report page {pages}"),
                        source,
                    }
                })?,
            );
            let header = |name: &str| -> Option<i64> {
                reply
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
            };
            match (header("x-next-id"), header("x-next-row-number")) {
                (Some(id), Some(row)) => {
                    if pages >= MAX_PAGES
                        || (body["first_id"] == id && body["first_row_number"] == row)
                    {
                        return Err(PollError::Protocol(format!(
                            "pagination does not end (page {pages}, next id {id})"
                        )));
                    }
                    body["first_id"] = json!(id);
                    body["first_row_number"] = json!(row);
                }
                _ => return Ok((out, pages)),
            }
        }
    }

    fn window_body(&self, from: NaiveDate, to: NaiveDate) -> Value {
        json!({
            "start_date": from.to_string(),
            "end_date": to.to_string(),
            "page_size": self.cfg.page_size,
        })
    }

    /// Every entry of the workspace the Reports API lists with a date in
    /// `from..=to` (`start_date` / `end_date`, as the look-back window is
    /// read). Nothing is enqueued and no watermark moves: what
    /// reconciliation compares with what timepost received.
    pub async fn list_period(
        &self,
        ports: &PollPorts,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(Vec<NormalisedEntry>, PollReport), PollError> {
        let mut report = PollReport {
            source: "toggl".into(),
            ..Default::default()
        };
        let token = secret(ports, &self.cfg.token_secret).await?;
        let ctx = parse_context(ports, &self.intake).await?;
        let (listed, pages) = self
            .search(self.window_body(from, to), &token, &ctx, &mut report)
            .await?;
        report.pages = pages;
        report.fetched = listed.len();
        Ok((listed, report))
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
        let now = Utc::now();
        let since = before
            .unwrap_or_else(|| now - chrono::Duration::days(i64::from(self.cfg.first_poll_days)));
        let today = now.date_naive();
        let back = if before.is_none() {
            self.cfg.lookback_days.max(self.cfg.first_poll_days)
        } else {
            self.cfg.lookback_days
        };
        let from = today - chrono::Duration::days(i64::from(back));
        let to = today + chrono::Duration::days(1);

        // 1. The window, every user's entries; the changed ones enqueued.
        let (listed, pages) = self
            .search(self.window_body(from, to), &token, &ctx, &mut report)
            .await?;
        report.pages = pages;
        let ids: HashSet<String> = listed.iter().map(|e| e.key.id.clone()).collect();
        let changed: Vec<NormalisedEntry> = listed
            .into_iter()
            .filter(|e| e.version.updated_at >= since)
            .collect();
        report.fetched = changed.len();
        let mut newest = changed.iter().map(|e| e.version.updated_at).max();
        report.enqueued = intake::enqueue_entries(ports.queue.as_ref(), changed)
            .await
            .map_err(PollError::Enqueue)?;

        // 2. Deletions: held entries of the window the report no longer lists.
        let known = ports
            .entries
            .by_source_dates(Source::Toggl, self.workspace(), from, to)
            .await?;
        let missing: Vec<NormalisedEntry> = known
            .into_iter()
            .filter(|s| {
                !s.entry.deleted && s.status() != Status::Voided && !ids.contains(&s.entry.key.id)
            })
            .map(|s| s.entry)
            .collect();
        if !missing.is_empty() {
            let numeric: Vec<Value> = missing
                .iter()
                .filter_map(|e| e.key.id.parse::<i64>().ok().map(Value::from))
                .collect();
            let mut body = self.window_body(today - chrono::Duration::days(MOVED_SEARCH_DAYS), to);
            body["time_entry_ids"] = Value::Array(numeric);
            let (found, _) = self.search(body, &token, &ctx, &mut report).await?;
            let found_ids: HashSet<String> = found.iter().map(|e| e.key.id.clone()).collect();
            let mut out: Vec<NormalisedEntry> = found;
            for mut e in missing {
                if found_ids.contains(&e.key.id) {
                    continue;
                }
                e.deleted = true;
                e.version.updated_at = now.max(e.version.updated_at + chrono::Duration::seconds(1));
                tracing::info!(key = %e.key, "poll: toggl entry deleted");
                report.deleted += 1;
                out.push(e.seal());
            }
            newest = newest.max(
                out.iter()
                    .filter(|e| !e.deleted)
                    .map(|e| e.version.updated_at)
                    .max(),
            );
            report.enqueued += intake::enqueue_entries(ports.queue.as_ref(), out)
                .await
                .map_err(PollError::Enqueue)?;
        }

        // 3. Only now the watermark moves.
        let overlap = Duration::from_secs(self.cfg.overlap_secs);
        report.watermark_after =
            store_watermark(ports, &name, since, before, newest, overlap).await?;
        tracing::info!(
            watermark = ?report.watermark_after,
            enqueued = report.enqueued,
            deleted = report.deleted,
            "poll: toggl done"
        );
        Ok(report)
    }
}
