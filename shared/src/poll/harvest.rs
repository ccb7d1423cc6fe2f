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
//!
//! Rates: a time entry's `client` has only `id` and `name` (Harvest API v2,
//! "Time Entries" → "The time entry object"); the currency of its
//! `billable_rate` is the client's (`GET /v2/clients/{id}` → `currency`,
//! Harvest API v2 "Clients" → "The client object"), read once per client and
//! cached for the poller's life, else `[intake.harvest] currency`. A client
//! that cannot be read (403: the token's user may not see clients; 404)
//! falls back to that setting; without it the rate is left out.
//!
//! Bad entries: an entry of a page that cannot be read is recorded as an
//! exception with its reason (`TRACKER_ENTRY_UNREADABLE`), counted in
//! `rejected`, and the run goes on; the watermark moves past it (the
//! corrected entry, with a later `updated_at`, is listed again).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use super::{
    parse_context, record_unreadable, secret, store_watermark, Auth, Fetcher, PollError, PollPorts,
    PollReport, Unreadable,
};
use crate::config::{HarvestPollConfig, IntakeConfig};
use crate::intake;
use crate::model::{Currency, NormalisedEntry, Source};
use crate::net::ratelimit::Rate;
use crate::sources::harvest::{parse_many, parse_page, rate_client_ids, Rejected};
use crate::sources::ParseContext;
use crate::state::Status;

/// A listing that has not ended after this many pages is refused (a cursor
/// loop would otherwise never end).
const MAX_PAGES: u32 = 10_000;

pub struct HarvestPoller {
    cfg: HarvestPollConfig,
    intake: IntakeConfig,
    fetch: Fetcher,
    /// Each client's currency as read (`None`: could not be read), kept
    /// for the poller's life.
    client_currency: Mutex<HashMap<String, Option<Currency>>>,
}

/// What one listing found: the entries read, those that could not be read,
/// and how many pages.
struct Listing {
    entries: Vec<NormalisedEntry>,
    rejected: Vec<Rejected>,
    pages: u32,
}

impl HarvestPoller {
    pub fn new(cfg: HarvestPollConfig, intake: IntakeConfig) -> Result<Self, PollError> {
        let fetch = Fetcher::new(
            Rate::new(cfg.requests_per_15s.max(1), Duration::from_secs(15)),
            cfg.retry(),
        )?;
        Ok(Self {
            cfg,
            intake,
            fetch,
            client_currency: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Currency>>> {
        self.client_currency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Make the currency of every client of `body` whose entries carry a
    /// rate known to `ctx`: from the cache, else `GET /v2/clients/{id}`.
    async fn client_currencies(
        &self,
        body: &[u8],
        token: &str,
        ctx: &mut ParseContext,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        for id in rate_client_ids(body) {
            let known = self.cached().get(&id).cloned();
            let currency = match known {
                Some(c) => c,
                None => {
                    let c = self.fetch_client_currency(&id, token, report).await?;
                    self.cached().insert(id.clone(), c.clone());
                    c
                }
            };
            match currency {
                Some(c) => {
                    ctx.harvest_client_currency.insert(id, c);
                }
                None => {
                    ctx.harvest_client_currency.remove(&id);
                }
            }
        }
        Ok(())
    }

    async fn fetch_client_currency(
        &self,
        id: &str,
        token: &str,
        report: &mut PollReport,
    ) -> Result<Option<Currency>, PollError> {
        let url = format!("{}/v2/clients/{}", self.base(), encode_id(id));
        let reply = match self.get(&url, token, true, report).await {
            Ok(r) => r,
            // Clients need an Administrator or a Manager who may edit them
            // (Harvest API v2, "Clients" → "Required permissions").
            Err(PollError::Unauthorized { status: 403, .. }) => {
                tracing::warn!(
                    client = id,
                    "poll: harvest client not readable (403); using the configured currency"
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if reply.status == 404 {
            return Ok(None);
        }
        let currency = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("currency")?.as_str()?.parse::<Currency>().ok());
        if currency.is_none() {
            tracing::warn!(client = id, "poll: harvest client has no readable currency");
        }
        Ok(currency)
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
        ctx: &mut ParseContext,
        report: &mut PollReport,
    ) -> Result<Listing, PollError> {
        let mut url = first;
        let mut out = Listing {
            entries: Vec::new(),
            rejected: Vec::new(),
            pages: 0,
        };
        loop {
            let reply = self.get(&url, token, false, report).await?;
            out.pages += 1;
            self.client_currencies(&reply.body, token, ctx, report)
                .await?;
            let page = parse_page(&reply.body, ctx).map_err(|source| PollError::Parse {
                what: format!("Harvest time entries page {}", out.pages),
                source,
            })?;
            out.entries.extend(page.entries);
            out.rejected.extend(page.rejected);
            let pages = out.pages;
            match page.next {
                None => return Ok(out),
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

    /// Every entry Harvest lists with a date in `from..=to` (`GET
    /// /v2/time_entries?from=&to=`, every page; Harvest API v2, "List all
    /// time entries": `from` / `to` are dates, inclusive). Nothing is
    /// enqueued and no watermark moves: what reconciliation compares with
    /// what timepost received. Entries that cannot be read are left out.
    pub async fn list_period(
        &self,
        ports: &PollPorts,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<(Vec<NormalisedEntry>, PollReport), PollError> {
        let mut report = PollReport {
            source: "harvest".into(),
            ..Default::default()
        };
        let token = secret(ports, &self.cfg.token_secret).await?;
        let mut ctx = parse_context(ports, &self.intake).await?;
        ctx.harvest_account_id = Some(self.cfg.account_id.clone());
        ctx.harvest_account_currency = self.cfg.currency.clone();
        let url = format!(
            "{}/v2/time_entries?from={from}&to={to}&per_page={}",
            self.base(),
            self.cfg.per_page
        );
        let listing = self.list(url, &token, &mut ctx, &mut report).await?;
        report.pages = listing.pages;
        report.fetched = listing.entries.len();
        report.rejected = listing.rejected.len();
        Ok((listing.entries, report))
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
        ctx.harvest_account_currency = self.cfg.currency.clone();

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
        let Listing {
            entries: changed,
            rejected,
            pages,
        } = self.list(url, &token, &mut ctx, &mut report).await?;
        report.pages = pages;
        report.fetched = changed.len();
        let mut seen: HashSet<String> = changed.iter().map(|e| e.key.id.clone()).collect();
        seen.extend(rejected.iter().filter_map(|r| r.id.clone()));
        let newest = changed
            .iter()
            .map(|e| e.version.updated_at)
            .chain(rejected.iter().filter_map(|r| r.updated_at))
            .max();
        report.enqueued = intake::enqueue_entries(ports.queue.as_ref(), changed)
            .await
            .map_err(PollError::Enqueue)?;
        report.rejected = rejected.len();
        record_unreadable(
            ports,
            Source::Harvest,
            &self.cfg.account_id,
            &ctx,
            "Harvest",
            rejected.into_iter().map(unreadable).collect(),
        )
        .await?;

        // 2. Deletions within the look-back window.
        if self.cfg.lookback_days > 0 {
            let (deleted, moved) = self
                .sweep(ports, &token, &mut ctx, &seen, &mut report)
                .await?;
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
        ctx: &mut ParseContext,
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
        let listing = self.list(url, token, ctx, report).await?;
        // An entry listed but unreadable still exists: it is not deleted.
        let listed: HashSet<String> = listing
            .entries
            .into_iter()
            .map(|e| e.key.id)
            .chain(listing.rejected.into_iter().filter_map(|r| r.id))
            .collect();
        let known = ports
            .entries
            .by_source_dates(Source::Harvest, &self.cfg.account_id, from, to)
            .await?;
        let mut deleted = Vec::new();
        let mut moved = Vec::new();
        for state in known {
            let id = &state.entry.key.id;
            if state.entry.deleted
                || state.status() == Status::Voided
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
                self.client_currencies(&page_of(&reply.body), token, ctx, report)
                    .await?;
                match parse_many(&reply.body, ctx) {
                    Ok(entries) => moved.extend(entries),
                    // Unreadable now: shown as an exception, never a stall.
                    Err(e) => {
                        let bad = Unreadable {
                            id: Some(id.clone()),
                            user_id: Some(state.entry.worker.tracker_user_id.clone()),
                            work_date: None,
                            updated_at: None,
                            reason: e.to_string(),
                        };
                        report.rejected += 1;
                        record_unreadable(
                            ports,
                            Source::Harvest,
                            &self.cfg.account_id,
                            ctx,
                            "Harvest",
                            vec![bad],
                        )
                        .await?;
                    }
                }
            }
        }
        Ok((deleted, moved))
    }
}

fn unreadable(r: Rejected) -> Unreadable {
    Unreadable {
        id: r.id,
        user_id: r.user_id,
        work_date: r.work_date,
        updated_at: r.updated_at,
        reason: r.error.to_string(),
    }
}

/// A single entry's body wrapped as a page (for [`rate_client_ids`]).
fn page_of(entry: &[u8]) -> Vec<u8> {
    let mut out = b"{\"time_entries\":[".to_vec();
    out.extend_from_slice(entry);
    out.extend_from_slice(b"]}");
    out
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
