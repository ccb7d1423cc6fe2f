//! The I/O of a reconciliation run: fill the three sides, compare them
//! ([`super::compare`]), mark the breaks already dismissed, store the run.
//!
//! - timepost and the tracker as received: the entry states of the period
//!   (work date or a posted line's date in it), from the `EntryStore`'s
//!   period read (`by_work_dates`: the period's entries, not the store's);
//! - the tracker as it is now: through the [`ListTrackers`] port (the
//!   Harvest and Toggl pollers' listing of a period, nothing enqueued:
//!   `timepost::poll::list_trackers`), when the config sets them up;
//! - the books: one [`Ledger::read_books`] over the period, every party
//!   and customer (the adapter pages as its vendor does).
//!
//! Callers: `timepost reconcile` (the CLI), and any scheduled caller or
//! console page: everything here works on ports.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use super::{
    compare, counts, Break, Expected, Period, ReconcileConfig, ReconcileStore, Row, RunSummary,
    Sides, TrackerEntry, TrackerSide,
};
use crate::model::NormalisedEntry;
use crate::ports::{EntryStore, StoreError};
use timepost_core::ledger::books::BookQuery;
use timepost_core::ledger::{Ledger, LedgerError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the books: {0}")]
    Books(#[source] LedgerError),
    #[error("the {0} ledger cannot read its books back, so there is nothing to reconcile with")]
    NoReadBack(String),
    #[error("cannot list the tracker's period: {0}")]
    Tracker(String),
    #[error("no break {0} in the stored runs (see `timepost reconcile history`)")]
    UnknownBreak(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// What the tracker lists now for a period.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// `harvest`, `toggl`, or both joined with `+`.
    pub from: String,
    pub entries: Vec<NormalisedEntry>,
    /// HTTP requests the listing took.
    pub requests: u32,
}

/// Where a run lists the trackers as they are now: the Harvest and Toggl
/// pollers' listing of a period (`crate::poll::TrackerListing`).
#[async_trait::async_trait]
pub trait ListTrackers: Send + Sync {
    /// `period` in every tracker set up for listing; `None` when none is.
    /// The error is the tracker's, in words.
    async fn list(&self, period: &Period) -> Result<Option<Listing>, String>;
}

/// What a run needs: where the entry states are, the ledger, where runs
/// are kept, and the tolerances.
#[derive(Clone)]
pub struct Reconciler {
    pub entries: Arc<dyn EntryStore>,
    pub ledger: Arc<dyn Ledger>,
    pub store: Arc<dyn ReconcileStore>,
    pub config: ReconcileConfig,
}

/// One run: its stored summary, the breaks, and the per-day figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Run {
    pub summary: RunSummary,
    pub breaks: Vec<Break>,
    pub rows: Vec<Row>,
}

impl Reconciler {
    /// The three sides of `period` (and the ledger reads it took).
    pub async fn sides(
        &self,
        period: &Period,
        listing: Option<&Listing>,
    ) -> Result<(Sides, u64), ReconcileError> {
        // Only the period's entries: worked in it, or a posted line dated
        // in it (`EntryStore::by_work_dates`, page by page).
        let mut sides = Sides::default();
        crate::ports::each_period_page(self.entries.as_ref(), period.from, period.to, |page| {
            for s in &page {
                sides.tracker.received.push(TrackerEntry::of(&s.entry));
                sides.timepost.push(Expected::of(s));
            }
            Ok::<(), ReconcileError>(())
        })
        .await?;
        if let Some(l) = listing {
            sides.tracker = TrackerSide {
                received: sides.tracker.received,
                listed: Some(l.entries.iter().map(TrackerEntry::of).collect()),
                listed_from: Some(l.from.clone()),
            };
        }
        let query = BookQuery {
            from: period.from,
            to: period.to,
            parties: Vec::new(),
            customers: Vec::new(),
        };
        sides.books = self
            .ledger
            .read_books(&query)
            .await
            .map_err(ReconcileError::Books)?
            .ok_or_else(|| ReconcileError::NoReadBack(self.ledger.name().to_string()))?;
        Ok((sides, 1))
    }

    /// Reconcile `period`: gather, compare, mark what was dismissed, store
    /// the run. `by` is who ran it.
    pub async fn run(
        &self,
        period: &Period,
        listing: Option<&Listing>,
        by: &str,
    ) -> Result<Run, ReconcileError> {
        let started_at = Utc::now();
        let clock = Instant::now();
        let (sides, reads) = self.sides(period, listing).await?;
        let mut cmp = compare(period, &sides, &self.config, self.ledger.name());
        let dismissed = self.store.resolutions(None).await?;
        for b in &mut cmp.breaks {
            // The newest resolution of the break decides.
            if let Some(r) = dismissed.iter().rev().find(|r| r.break_id == b.id) {
                if r.action == super::Action::Dismiss {
                    b.dismissed = Some(r.reason.clone());
                }
            }
        }
        let mut summary = RunSummary {
            seq: 0,
            period: *period,
            ledger: self.ledger.name().to_string(),
            started_at,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            counts: counts(&cmp.breaks),
            breaks: cmp.breaks.iter().filter(|b| b.counts()).count(),
            info: cmp.breaks.iter().filter(|b| b.info).count(),
            dismissed: cmp
                .breaks
                .iter()
                .filter(|b| !b.info && b.dismissed.is_some())
                .count(),
            ledger_reads: reads,
            tracker: match listing {
                Some(l) => format!("received + {} listing", l.from),
                None => "received".into(),
            },
            by: by.to_string(),
        };
        summary.seq = self.store.save_run(&summary, &cmp.breaks).await?;
        tracing::info!(period = %period, breaks = summary.breaks, info = summary.info, "reconciled");
        Ok(Run {
            summary,
            breaks: cmp.breaks,
            rows: cmp.rows,
        })
    }

    /// The newest stored break with `id` and the run it is from (the
    /// newest runs are searched first, at most `RUNS_SEARCHED`).
    pub async fn find_break(&self, id: &str) -> Result<(u64, Break), ReconcileError> {
        for run in self.store.runs(RUNS_SEARCHED).await? {
            if let Some(b) = self
                .store
                .run_breaks(run.seq)
                .await?
                .into_iter()
                .find(|b| b.id == id)
            {
                return Ok((run.seq, b));
            }
        }
        Err(ReconcileError::UnknownBreak(id.to_string()))
    }
}

/// How many of the newest runs `resolve` searches for a break.
pub const RUNS_SEARCHED: usize = 50;
