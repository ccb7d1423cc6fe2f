//! Scheduled pollers: pull a tracker's entries changed since a stored
//! watermark and put them on the ingest queue, the same way a webhook does.
//! HTTP glue only: the payloads are parsed by `sources/`.
//!
//! One run: read the watermark → GET every page changed since it (paced by
//! the shared [`RateLimiter`]; a 429 waits for its `Retry-After`, at most
//! `max_wait_secs`; 5xx and network failures back off, capped; after
//! `max_attempts` the run fails) → enqueue every entry through
//! [`intake::enqueue_entries`] → only then advance the watermark, to the
//! newest change seen minus `overlap_secs` (never backwards). A failed run
//! leaves the watermark where it was, so the next run lists the same
//! changes again; duplicates are harmless (the engine ignores a version it
//! has seen).
//!
//! - [`harvest`]: Harvest API v2 (cursor pagination; deletions found by
//!   re-listing a look-back window);
//! - [`toggl`]: Toggl Track Reports API v3 (every user's time of one
//!   workspace, for an admin's token; deletions found by re-listing a
//!   look-back window), a fallback for its webhooks.

pub mod harvest;
pub mod listing;
pub mod toggl;

pub use listing::{list_trackers, TrackerListing};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{IntakeConfig, PollRetry};
use crate::intake;
use crate::net::ratelimit::{Limits, Rate, RateLimiter};
use crate::net::{http_client, retry_after};
use crate::ports::{EntryStore, MappingStore, Queue, Secrets, StoreError, WatermarkStore};
use crate::sources::{ParseContext, ParseError};
use timepost_core::ledger::LedgerError;

/// The stores a poll run reads and writes.
#[derive(Clone)]
pub struct PollPorts {
    pub watermarks: Arc<dyn WatermarkStore>,
    pub entries: Arc<dyn EntryStore>,
    pub queue: Arc<dyn Queue>,
    pub mappings: Arc<dyn MappingStore>,
    pub secrets: Arc<dyn Secrets>,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("secret `{0}` is not set: add it to the secrets file")]
    MissingSecret(String),
    #[error("{host} refused the credentials ({status}): check the token secret and the account id ({message})")]
    Unauthorized {
        host: String,
        status: u16,
        message: String,
    },
    #[error("{host} refused the request ({status}): {message}")]
    Refused {
        host: String,
        status: u16,
        message: String,
    },
    #[error("{host} asked to wait {wait:?}, longer than max_wait_secs: try again later")]
    RateLimited { host: String, wait: Duration },
    #[error("{host} still failing after {attempts} attempt(s): {last}")]
    Unavailable {
        host: String,
        attempts: u32,
        last: String,
    },
    #[error("cannot read {what}: {source}")]
    Parse {
        what: String,
        #[source]
        source: ParseError,
    },
    #[error("unexpected answer: {0}")]
    Protocol(String),
    #[error("cannot enqueue the polled entries: {0}")]
    Enqueue(#[source] StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl PollError {
    /// A mistake in configuration or secrets (exit 2 in the CLI), as opposed
    /// to the vendor or the store failing.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            PollError::MissingSecret(_) | PollError::Unauthorized { .. }
        )
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub source: String,
    pub watermark_name: String,
    pub watermark_before: Option<DateTime<Utc>>,
    pub watermark_after: Option<DateTime<Utc>>,
    /// HTTP requests sent (retries included).
    pub requests: u32,
    /// Pages of changed entries read.
    pub pages: u32,
    /// Entry versions listed as changed.
    pub fetched: usize,
    /// Messages put on the ingest queue (changed entries + deletions).
    pub enqueued: usize,
    /// Entries found deleted in the tracker (Harvest look-back).
    pub deleted: usize,
    /// Requests retried after a 429, 5xx or network failure.
    pub retries: u32,
    /// Entries the tracker listed that could not be read: each is recorded
    /// as an exception with its reason (`TRACKER_ENTRY_UNREADABLE`) and the
    /// watermark moves past it.
    pub rejected: usize,
}

/// The pollers a config asks for.
pub enum Poller {
    Harvest(harvest::HarvestPoller),
    Toggl(toggl::TogglPoller),
}

impl Poller {
    pub fn name(&self) -> &'static str {
        match self {
            Poller::Harvest(_) => "harvest",
            Poller::Toggl(_) => "toggl",
        }
    }

    pub async fn run(&self, ports: &PollPorts) -> Result<PollReport, PollError> {
        match self {
            Poller::Harvest(p) => p.run(ports).await,
            Poller::Toggl(p) => p.run(ports).await,
        }
    }

    /// Every entry the tracker lists with a date in `from..=to`, without
    /// enqueueing anything (what reconciliation compares).
    pub async fn list_period(
        &self,
        ports: &PollPorts,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<(Vec<crate::model::NormalisedEntry>, PollReport), PollError> {
        match self {
            Poller::Harvest(p) => p.list_period(ports, from, to).await,
            Poller::Toggl(p) => p.list_period(ports, from, to).await,
        }
    }

    /// The configured poller for `source` (`harvest` or `toggl`), if its
    /// section is present.
    pub fn for_source(source: &str, intake: &IntakeConfig) -> Result<Option<Poller>, PollError> {
        Ok(match source {
            "harvest" => match &intake.harvest {
                Some(c) => Some(Poller::Harvest(harvest::HarvestPoller::new(
                    c.clone(),
                    intake.clone(),
                )?)),
                None => None,
            },
            "toggl" => match &intake.toggl_poll {
                Some(c) => Some(Poller::Toggl(toggl::TogglPoller::new(
                    c.clone(),
                    intake.clone(),
                )?)),
                None => None,
            },
            _ => None,
        })
    }
}

/// How a request authenticates.
pub(crate) enum Auth<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

/// A successful (2xx) or 404 answer.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: reqwest::header::HeaderMap,
}

/// GETs for one vendor account: paced by the ledger adapters' token bucket,
/// 429 / 5xx / network failures retried within bounds.
pub(crate) struct Fetcher {
    http: reqwest::Client,
    limiter: RateLimiter,
    retry: PollRetry,
}

impl Fetcher {
    pub fn new(rate: Rate, retry: PollRetry) -> Result<Self, PollError> {
        let http = http_client(Duration::from_secs(retry.timeout_secs.max(1)))
            .map_err(|e| PollError::Client(e.to_string()))?;
        Ok(Self {
            http,
            limiter: RateLimiter::new(Limits {
                rates: vec![rate],
                concurrent: 1,
                per_day: None,
                minute: Duration::from_secs(60),
            }),
            retry,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        Duration::from_millis(exp.min(self.retry.backoff_cap_ms))
    }

    /// GET `url`. Returns 2xx answers, and 404 when `allow_404`.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        auth: &Auth<'_>,
        allow_404: bool,
        report: &mut PollReport,
    ) -> Result<Reply, PollError> {
        self.send(url, None, headers, auth, allow_404, report).await
    }

    /// POST `body` (JSON) to `url`; answers as [`get`](Self::get).
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
        auth: &Auth<'_>,
        report: &mut PollReport,
    ) -> Result<Reply, PollError> {
        let bytes = serde_json::to_vec(body).map_err(|e| PollError::Client(e.to_string()))?;
        self.send(url, Some(bytes), headers, auth, false, report)
            .await
    }

    async fn send(
        &self,
        url: &str,
        json: Option<Vec<u8>>,
        headers: &[(&str, &str)],
        auth: &Auth<'_>,
        allow_404: bool,
        report: &mut PollReport,
    ) -> Result<Reply, PollError> {
        let host = host_of(url).to_string();
        let max_wait = Duration::from_secs(self.retry.max_wait_secs);
        let attempts = self.retry.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                report.retries += 1;
            }
            let slot = self.limiter.acquire().await.map_err(|e| match e {
                LedgerError::RateLimited(w) => PollError::RateLimited {
                    host: host.clone(),
                    wait: w.unwrap_or_default(),
                },
                other => PollError::Client(other.to_string()),
            })?;
            let mut req = match &json {
                None => self.http.get(url),
                Some(b) => self
                    .http
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(b.clone()),
            };
            req = match auth {
                Auth::Bearer(t) => req.bearer_auth(t),
                Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            };
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            report.requests += 1;
            let sent = req.send().await;
            drop(slot);
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = format!("request failed: {}", e.without_url());
                    tracing::warn!(%host, attempt, error = %last, "poll: request failed");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let wait = retry_after(resp.headers());
            let reply_headers = resp.headers().clone();
            let body = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    last = format!("answer failed: {}", e.without_url());
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
            };
            match status {
                200..=299 => {
                    return Ok(Reply {
                        status,
                        body,
                        headers: reply_headers,
                    })
                }
                404 if allow_404 => {
                    return Ok(Reply {
                        status,
                        body,
                        headers: reply_headers,
                    })
                }
                429 => {
                    let w = wait.unwrap_or_else(|| self.backoff(attempt));
                    if w > max_wait {
                        return Err(PollError::RateLimited { host, wait: w });
                    }
                    tracing::warn!(%host, attempt, wait = ?w, "poll: 429, waiting as asked");
                    self.limiter.pause(w);
                    last = format!("429 (Retry-After {w:?})");
                }
                401 | 403 => {
                    return Err(PollError::Unauthorized {
                        host,
                        status,
                        message: snippet(&body),
                    })
                }
                s if s >= 500 => {
                    last = format!("answered {s}");
                    tracing::warn!(%host, attempt, status = s, "poll: server error");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                s => {
                    return Err(PollError::Refused {
                        host,
                        status: s,
                        message: snippet(&body),
                    })
                }
            }
        }
        Err(PollError::Unavailable {
            host,
            attempts,
            last,
        })
    }
}

/// The parse context for polled entries: config + mappings, received now.
pub(crate) async fn parse_context(
    ports: &PollPorts,
    intake_cfg: &IntakeConfig,
) -> Result<ParseContext, PollError> {
    let mappings = ports.mappings.snapshot().await?;
    let mut ctx = intake::parse_context(intake_cfg, &mappings);
    ctx.received_at = Some(Utc::now());
    Ok(ctx)
}

/// The token named `name`, or a config error naming it.
pub(crate) async fn secret(ports: &PollPorts, name: &str) -> Result<String, PollError> {
    ports
        .secrets
        .get(name)
        .await?
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
        .ok_or_else(|| PollError::MissingSecret(name.to_string()))
}

/// Store the next watermark (see [`advance`]) unless it would not move.
pub(crate) async fn store_watermark(
    ports: &PollPorts,
    name: &str,
    since: DateTime<Utc>,
    before: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
    overlap: Duration,
) -> Result<Option<DateTime<Utc>>, PollError> {
    let after = advance(since, newest, overlap);
    if before.is_none_or(|b| after > b) {
        ports.watermarks.set_watermark(name, after).await?;
        Ok(Some(after))
    } else {
        Ok(before)
    }
}

/// One listed entry that could not be read: what identifies it and why.
pub(crate) struct Unreadable {
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub work_date: Option<chrono::NaiveDate>,
    pub updated_at: Option<DateTime<Utc>>,
    pub reason: String,
}

/// Record each unreadable entry as an exception with its reason, so one bad
/// entry never stalls a poll: the entry's stored state (if any) keeps its
/// version and what the ledger holds, and only its status and reason
/// change; an entry never seen before is stored as a placeholder (no time)
/// whose version is older than anything the tracker says, so the corrected
/// entry supersedes it. An entry without a readable id cannot be shown and
/// is logged. Returns how many were recorded.
pub(crate) async fn record_unreadable(
    ports: &PollPorts,
    source: crate::model::Source,
    workspace: &str,
    ctx: &ParseContext,
    vendor: &str,
    bad: Vec<Unreadable>,
) -> Result<usize, PollError> {
    use crate::exceptions::Exception;
    use crate::model::{ApprovalStatus, EntryKey, NormalisedEntry, Origin, Version, Worker};
    use crate::state::{EntryState, Status};
    let mut recorded = 0;
    for u in bad {
        let Some(id) = u.id.clone() else {
            tracing::warn!(source = %source, reason = %u.reason, "poll: an entry without a readable id was skipped");
            continue;
        };
        let key = EntryKey::new(source, workspace, id.clone());
        let exc = Exception::tracker_entry_unreadable(vendor, &id, &u.reason);
        let now = Utc::now();
        for attempt in 1..=2 {
            let mut state = match ports.entries.get(&key).await? {
                Some(s) => s,
                None => {
                    let user = u.user_id.clone().unwrap_or_else(|| "unknown".into());
                    let tz = ctx.tz_for(&user);
                    let stamp = u.updated_at.unwrap_or(now) - chrono::Duration::seconds(1);
                    let entry = NormalisedEntry {
                        key: key.clone(),
                        version: Version {
                            updated_at: stamp,
                            content_hash: String::new(),
                        },
                        worker: Worker {
                            tracker_user_id: user,
                            email: None,
                            name: None,
                            kind: None,
                            form_1099: None,
                        },
                        time_zone: tz,
                        work_date: u
                            .work_date
                            .unwrap_or_else(|| now.with_timezone(&tz).date_naive()),
                        start: None,
                        end: None,
                        duration_secs: 0,
                        project: None,
                        client: None,
                        task: None,
                        tags: Vec::new(),
                        billable: false,
                        rate: None,
                        notes: String::new(),
                        approval: ApprovalStatus::Pending,
                        attachments: Vec::new(),
                        origin: Origin::Web,
                        deleted: false,
                        already_rounded: false,
                    };
                    EntryState::new(entry.seal(), now)
                }
            };
            state.set_status(Status::Exception, now);
            state.reason = Some(exc.clone());
            match ports.entries.put(&state).await {
                Ok(_) => {
                    recorded += 1;
                    break;
                }
                Err(StoreError::Conflict(_)) if attempt == 1 => continue,
                Err(e) => {
                    tracing::warn!(entry = %key, error = %e, "poll: could not record the unreadable entry");
                    break;
                }
            }
        }
        tracing::warn!(entry = %key, reason = %u.reason, "poll: entry unreadable, recorded as an exception");
    }
    Ok(recorded)
}

/// The next watermark: the newest change seen minus the overlap, never
/// before the point this run listed from.
pub fn advance(
    since: DateTime<Utc>,
    newest: Option<DateTime<Utc>>,
    overlap: Duration,
) -> DateTime<Utc> {
    let overlap = chrono::Duration::from_std(overlap).unwrap_or_else(|_| chrono::Duration::zero());
    match newest.and_then(|n| n.checked_sub_signed(overlap)) {
        Some(n) => n.max(since),
        None => since,
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn watermark_moves_to_newest_minus_overlap_never_back() {
        let since = t("2026-03-01T00:00:00Z");
        let o = Duration::from_secs(60);
        assert_eq!(advance(since, None, o), since);
        assert_eq!(
            advance(since, Some(t("2026-03-02T00:01:00Z")), o),
            t("2026-03-02T00:00:00Z")
        );
        assert_eq!(advance(since, Some(t("2026-03-01T00:00:30Z")), o), since);
    }
}
