//! The I/O that fills an alert [`Snapshot`], bounded: entries of the
//! watched workspaces worked in the look-back window (`by_source_dates`,
//! at most `max_entries`), the open entries (`by_status`, at most
//! `max_entries` each), at most [`DEAD_LETTERS`] parked messages, the
//! newest reconciliation run, the ledger's refresh-token state (one
//! secret) and the pollers' health marks (watermarks). Never
//! `EntryStore::all()`.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::{PollerHealth, Snapshot, TokenInfo};
use crate::config::{Config, LedgerKind};
use crate::model::Source;
use crate::ports::{EntryStore, Queue, Secrets, StoreResult, WatermarkStore};
use crate::reconcile::ReconcileStore;
use crate::state::Status;

/// How many parked messages a pass reads (enough to say "at least").
pub const DEAD_LETTERS: usize = 100;

/// The stores a pass reads.
pub struct Sources<'a> {
    pub entries: &'a dyn EntryStore,
    pub queue: &'a dyn Queue,
    pub reconcile: &'a dyn ReconcileStore,
    pub watermarks: &'a dyn WatermarkStore,
    pub secrets: &'a dyn Secrets,
}

/// Watermark names of a poller's health marks.
pub fn poll_ok_mark(source: &str) -> String {
    format!("alerts:poll_ok:{source}")
}
pub fn poll_failed_mark(source: &str) -> String {
    format!("alerts:poll_failed:{source}")
}

/// Record one poll run's outcome for the failing-poller alert (the
/// scheduled pollers call this after each run).
pub async fn record_poll(
    watermarks: &dyn WatermarkStore,
    source: &str,
    ok: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let name = if ok {
        poll_ok_mark(source)
    } else {
        poll_failed_mark(source)
    };
    watermarks.set_watermark(&name, now).await
}

/// The pollers a config sets up, with the workspace their entries carry.
pub fn polled(config: &Config) -> Vec<(Source, String)> {
    let mut out = Vec::new();
    if let Some(h) = &config.intake.harvest {
        out.push((Source::Harvest, h.account_id.clone()));
    }
    if let Some(t) = &config.intake.toggl_poll {
        out.push((Source::Toggl, t.workspace.clone().unwrap_or_default()));
    }
    out
}

fn parse_workspace(s: &str) -> Option<(Source, String)> {
    let (src, ws) = s.split_once(':')?;
    Some((src.parse().ok()?, ws.to_string()))
}

/// Fill a snapshot for `config` at `now`.
pub async fn gather(
    src: &Sources<'_>,
    config: &Config,
    now: DateTime<Utc>,
) -> StoreResult<Snapshot> {
    let rules = &config.alerts;
    let cap = rules.max_entries.max(1);
    let mut snap = Snapshot::default();
    for status in [Status::Exception, Status::Held] {
        snap.open.extend(src.entries.by_status(status, cap).await?);
    }

    let mut workspaces: BTreeSet<(Source, String)> = polled(config).into_iter().collect();
    workspaces.extend(rules.workspaces.iter().filter_map(|w| parse_workspace(w)));
    workspaces.extend(
        snap.open
            .iter()
            .map(|e| (e.entry.key.source, e.entry.key.workspace.clone())),
    );
    let today = now.date_naive();
    let from = TimeDelta::try_days(i64::from(rules.lookback_days))
        .and_then(|d| today.checked_sub_signed(d))
        .unwrap_or(today);
    let to = today.succ_opt().unwrap_or(today);
    for (source, ws) in workspaces {
        if snap.recent.len() >= cap {
            break;
        }
        let mut got = src.entries.by_source_dates(source, &ws, from, to).await?;
        got.truncate(cap - snap.recent.len());
        snap.recent.extend(got);
    }

    let mut dl = src.queue.dead_letters(DEAD_LETTERS + 1).await?;
    snap.dead_letters_more = dl.len() > DEAD_LETTERS;
    dl.truncate(DEAD_LETTERS);
    snap.dead_letters = dl;

    snap.latest_run = src.reconcile.runs(1).await?.into_iter().next();

    let prefix = match config.ledger.kind {
        LedgerKind::Qbo => config
            .ledger
            .qbo
            .as_ref()
            .map(|q| ("qbo", q.secret_prefix.clone())),
        LedgerKind::Xero => config
            .ledger
            .xero
            .as_ref()
            .map(|x| ("xero", x.secret_prefix.clone())),
        LedgerKind::Sandbox => None,
    };
    if let Some((ledger, prefix)) = prefix {
        let name = format!("{prefix}_oauth_state");
        let state = src.secrets.get(&name).await?.and_then(|json| {
            serde_json::from_str::<timepost_core::ledger::tokens::TokenState>(&json).ok()
        });
        snap.tokens.push(TokenInfo {
            ledger: ledger.to_string(),
            refreshed_at: state.as_ref().and_then(|s| s.refreshed_at),
            expires_at: state.as_ref().and_then(|s| s.refresh_expires_at),
            refused: state
                .as_ref()
                .and_then(|s| s.refused.as_ref())
                .map(|r| (r.at, r.code.clone())),
        });
    }

    for (source, _) in polled(config) {
        let source = source.as_str().to_string();
        snap.pollers.push(PollerHealth {
            last_ok: src.watermarks.get_watermark(&poll_ok_mark(&source)).await?,
            last_failed: src
                .watermarks
                .get_watermark(&poll_failed_mark(&source))
                .await?,
            source,
        });
    }
    Ok(snap)
}
