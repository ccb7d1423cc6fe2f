//! The Harvest API v2 poller.
//!
//! Changes: `GET /v2/time_entries?updated_since=<watermark>&per_page=N`,
//! following `links.next` (cursor pagination) to the last page. Headers:
//! `Authorization: Bearer <token>`, `Harvest-Account-Id`, `User-Agent`.
//! Paced at `requests_per_15s` (Harvest allows 100 per 15 s).
//!
//! Deletions: Harvest reports none. Each run re-lists the look-back window
//! (`from` = today − `lookback_days`, `to` = tomorrow, UTC, so every time
//! zone's today is inside; a full listing, not `updated_since`) and compares
//! it with the entries timepost holds for the account whose work date is in
//! the window and that are not deleted already. An entry missing from the
//! listing and not seen in this run's changes is looked up by id
//! (`GET /v2/time_entries/{id}`): 404 means deleted, and a deleted version
//! (same key, `deleted = true`, `updated_at` = now) is enqueued; an answer
//! means it moved out of the window, and that version is enqueued instead.
//! A listing that fails part-way finds no deletions at all, and the run
//! fails without moving the watermark (what it enqueued before is listed
//! again next time).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use super::{
    parse_context, secret, store_watermark, Auth, Fetcher, PollError, PollPorts, PollReport,
};
use crate::config::{HarvestPollConfig, IntakeConfig};
use crate::intake;
use crate::ledger::ratelimit::Rate;
use crate::model::{NormalisedEntry, Source};
use crate::sources::harvest::{parse_many, parse_page};
use crate::sources::ParseContext;
use crate::state::Status;

/// A listing that has not ended after this many pages is refused (a cursor
/// loop would otherwise never end).
const MAX_PAGES: u32 = 10_000;

pub struct HarvestPoller {
    cfg: HarvestPollConfig,
    intake: IntakeConfig,
    fetch: Fetcher,
}

impl HarvestPoller {
    pub fn new(cfg: HarvestPollConfig, intake: IntakeConfig) -> Result<Self, PollError> {
        let fetch = Fetcher::new(
            Rate::new(cfg.requests_per_15s.max(1), Duration::from_secs(15)),
            cfg.retry(),
        )?;
        Ok(Self { cfg, intake, fetch })
    }

    /// `harvest:<account id>`.
    pub fn watermark_name(&self) -> String {
        format!("harvest:{}", self.cfg.account_id)
    }

    fn base(&self) -> &str {
        self.cfg.base_url.trim_end_matches('/')
    }

    async fn get(
        &self,
        url: &str,
        token: &str,
        allow_404: bool,
        report: &mut PollReport,
    ) -> Result<super::Reply, PollError> {
        self.fetch
            .get(
                url,
                &[
                    ("Harvest-Account-Id", self.cfg.account_id.as_str()),
                    ("User-Agent", self.cfg.user_agent.as_str()),
                    ("Accept", "application/json"),
                ],
                &Auth::Bearer(token),
                allow_404,
                report,
            )
            .await
    }

    /// Every entry of a listing, following `links.next` to the end.
    async fn list(
        &self,
        first: String,
        token: &str,
        ctx: &ParseContext,
        report: &mut PollReport,
    ) -> Result<(Vec<NormalisedEntry>, u32), PollError> {
        let mut url = first;
        let mut entries = Vec::new();
        let mut pages = 0u32;
        loop {
            let reply = self.get(&url, token, false, report).await?;
            pages += 1;
            let page = parse_page(&reply.body, ctx).map_err(|source| PollError::Parse {
                what: format!("Harvest time entries page {pages}"),
                source,
            })?;
            entries.extend(page.entries);
            match page.next {
                None => return Ok((entries, pages)),
                Some(next) => {
                    // The token only ever goes to the configured host.
                    if !next.starts_with(self.base()) {
                        return Err(PollError::Protocol(format!(
                            "links.next points outside {}: {next}",
                            self.base()
                        )));
                    }
                    if next == url || pages >= MAX_PAGES {
                        return Err(PollError::Protocol(format!(
                            "pagination does not end (page {pages}, next {next})"
                        )));
                    }
                    url = next;
                }
            }
        }
    }

    pub async fn run(&self, ports: &PollPorts) -> Result<PollReport, PollError> {
        let name = self.watermark_name();
        let mut report = PollReport {
            source: "harvest".into(),
            watermark_name: name.clone(),
            ..Default::default()
        };
        let token = secret(ports, &self.cfg.token_secret).await?;
        let mut ctx = parse_context(ports, &self.intake).await?;
        ctx.harvest_account_id = Some(self.cfg.account_id.clone());

        // 1. Changes since the watermark.
        let before = ports.watermarks.get_watermark(&name).await?;
        report.watermark_before = before;
        let since = before.unwrap_or_else(|| {
            Utc::now() - chrono::Duration::days(i64::from(self.cfg.first_poll_days))
        });
        let url = format!(
            "{}/v2/time_entries?updated_since={}&per_page={}",
            self.base(),
            since.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.cfg.per_page
        );
        let (changed, pages) = self.list(url, &token, &ctx, &mut report).await?;
        report.pages = pages;
        report.fetched = changed.len();
        let seen: HashSet<String> = changed.iter().map(|e| e.key.id.clone()).collect();
        let newest = changed.iter().map(|e| e.version.updated_at).max();
        report.enqueued = intake::enqueue_entries(ports.queue.as_ref(), changed)
            .await
            .map_err(PollError::Enqueue)?;

        // 2. Deletions within the look-back window.
        if self.cfg.lookback_days > 0 {
            let (deleted, moved) = self.sweep(ports, &token, &ctx, &seen, &mut report).await?;
            report.deleted = deleted.len();
            let mut out = deleted;
            out.extend(moved);
            report.enqueued += intake::enqueue_entries(ports.queue.as_ref(), out)
                .await
                .map_err(PollError::Enqueue)?;
        }

        // 3. Only a run that got everything onto the queue moves the
        // watermark; a failure above leaves it, and the next run lists the
        // same changes again (duplicates are harmless).
        let overlap = Duration::from_secs(self.cfg.overlap_secs);
        report.watermark_after =
            store_watermark(ports, &name, since, before, newest, overlap).await?;
        tracing::info!(
            watermark = ?report.watermark_after,
            enqueued = report.enqueued,
            deleted = report.deleted,
            "poll: harvest done"
        );
        Ok(report)
    }

    /// Deleted versions of the entries gone from the window, and the current
    /// versions of those that only moved out of it.
    async fn sweep(
        &self,
        ports: &PollPorts,
        token: &str,
        ctx: &ParseContext,
        seen: &HashSet<String>,
        report: &mut PollReport,
    ) -> Result<(Vec<NormalisedEntry>, Vec<NormalisedEntry>), PollError> {
        let today = Utc::now().date_naive();
        let from = today - chrono::Duration::days(i64::from(self.cfg.lookback_days));
        let to = today + chrono::Duration::days(1);
        let url = format!(
            "{}/v2/time_entries?from={from}&to={to}&per_page={}",
            self.base(),
            self.cfg.per_page
        );
        let (listed, _) = self.list(url, token, ctx, report).await?;
        let listed: HashSet<String> = listed.into_iter().map(|e| e.key.id).collect();
        let known = ports
            .entries
            .by_source_dates(Source::Harvest, &self.cfg.account_id, from, to)
            .await?;
        let mut deleted = Vec::new();
        let mut moved = Vec::new();
        for state in known {
            let id = &state.entry.key.id;
            if state.entry.deleted
                || state.status == Status::Voided
                || listed.contains(id)
                || seen.contains(id)
            {
                continue;
            }
            let url = format!("{}/v2/time_entries/{}", self.base(), encode_id(id));
            let reply = self.get(&url, token, true, report).await?;
            if reply.status == 404 {
                let now = Utc::now();
                let mut e = state.entry.clone();
                e.deleted = true;
                e.version.updated_at = now.max(e.version.updated_at + chrono::Duration::seconds(1));
                tracing::info!(key = %e.key, "poll: harvest entry deleted");
                deleted.push(e.seal());
            } else {
                moved.extend(
                    parse_many(&reply.body, ctx).map_err(|source| PollError::Parse {
                        what: format!("Harvest time entry {id}"),
                        source,
                    })?,
                );
            }
        }
        Ok((deleted, moved))
    }
}

/// An entry id as a path segment (Harvest ids are numbers; anything else is
/// percent-encoded rather than trusted).
fn encode_id(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
