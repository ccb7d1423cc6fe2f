//! The local scheduler: what EventBridge Scheduler triggers in AWS runs here
//! on timers inside `timepost serve`: re-checking held entries against the
//! mappings and settling what crashes left (open intents, dirty weeks:
//! `Engine::sweep`, which also reads what changed in the books outside
//! timepost: `crate::engine::books_watch`) ([`run`]), and the tracker pollers
//! ([`run_poller`]), and, when `[retention]` is configured, the archive
//! run ([`run_archive`]: a snapshot of every closed period past the grace
//! window; purging stays a command), the alert pass ([`run_alerts`]) and
//! the finance export of the last closed period ([`run_exports`]), and the
//! scheduled reconciliation ([`run_reconcile`]: the last closed week and
//! the current one, every `[reconcile] schedule_secs`).

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;

/// Run `pass` every `every` (the first right away, never more often than
/// once a second) until shutdown; a pass under way when the stop comes
/// finishes first.
async fn on_interval<F, Fut>(
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => pass().await,
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

pub async fn run(
    engine: Arc<Engine>,
    held_every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    on_interval(held_every, shutdown, || async {
        match engine.recheck_held(&crate::engine::new_batch_id()).await {
            Ok(o) if !o.is_empty() => tracing::info!(rechecked = o.len(), "schedule: held entries re-checked"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "schedule: held re-check failed"),
        }
        match engine.sweep(&crate::engine::new_batch_id()).await {
            Ok(r) => {
                if let Some(b) = r.books.as_ref().filter(|b| b.deleted + b.changed > 0) {
                    tracing::warn!(deleted = b.deleted, changed = b.changed, weeks = b.weeks, "schedule: records changed in the books outside timepost; their weeks are converged again");
                }
                if r.intents + r.weeks > 0 {
                    tracing::info!(intents = r.intents, weeks = r.weeks, busy = r.busy, "schedule: leftovers settled");
                }
            }
            Err(e) => tracing::error!(error = %e, "schedule: sweep failed"),
        }
    })
    .await
}

/// Run one configured poller every `every` until shutdown (the first run
/// right away). A failed run is logged; its watermark stays, so the next
/// run picks up where it left off.
pub async fn run_poller(
    poller: Arc<crate::poll::Poller>,
    ports: crate::poll::PollPorts,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let source = poller.name();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                tokio::select! {
                    r = poller.run(&ports) => {
                        match &r {
                            Ok(r) => tracing::info!(source, enqueued = r.enqueued, deleted = r.deleted, "schedule: poll done"),
                            Err(e) => tracing::error!(source, error = %e, "schedule: poll failed"),
                        }
                        // The failing-poller alert reads these marks.
                        if let Err(e) = crate::alerts::gather::record_poll(ports.watermarks.as_ref(), source, r.is_ok(), chrono::Utc::now()).await {
                            tracing::warn!(source, error = %e, "schedule: cannot record the poll outcome");
                        }
                    }
                    _ = shutdown.changed() => return,
                }
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// What the scheduled archive run works on (the local stack's ports).
pub struct ArchiveJob {
    pub store: crate::local::SqliteStore,
    pub ledger: Arc<dyn timepost_core::ledger::Ledger>,
    pub archive: Arc<dyn crate::ports::Archive>,
    pub rules_toml: String,
    pub retention: crate::archive::RetentionConfig,
}

impl ArchiveJob {
    /// The job of a local stack, when its config has `[retention]`.
    pub fn local(
        stack: &crate::stack::LocalStack,
    ) -> Result<Option<Self>, crate::archive::ArchiveError> {
        let Some(retention) = stack.config.retention.clone() else {
            return Ok(None);
        };
        Ok(Some(Self {
            store: stack.store.clone(),
            ledger: stack.ledger.clone(),
            archive: stack.archive.clone(),
            rules_toml: crate::archive::snapshot::rules_toml(&stack.config)?,
            retention,
        }))
    }

    /// One archive run now: what it did per period.
    pub async fn once(
        &self,
    ) -> Result<Vec<crate::archive::snapshot::PeriodRun>, crate::archive::ArchiveError> {
        let src = crate::archive::snapshot::Sources {
            entries: &self.store,
            journal: &self.store,
            mappings: &self.store,
            audit: &self.store,
            pending: &self.store,
            queue: &self.store,
            ledger: self.ledger.as_ref(),
            rules_toml: self.rules_toml.clone(),
        };
        let now = chrono::Utc::now();
        crate::archive::snapshot::run(
            &src,
            self.archive.as_ref(),
            None,
            &self.retention,
            now.date_naive(),
            now,
        )
        .await
    }
}

/// Archive every closed period past the grace window, every `every`
/// (the first run right away), until shutdown.
pub async fn run_archive(
    job: ArchiveJob,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    on_interval(every, shutdown, || async {
        match job.once().await {
            Ok(runs) => {
                use crate::archive::snapshot::RunOutcome;
                for r in runs {
                    if let RunOutcome::Written {
                        revision, entries, ..
                    } = r.outcome
                    {
                        tracing::info!(
                            period = r.period,
                            revision,
                            entries,
                            "schedule: period archived"
                        );
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "schedule: archive run failed"),
        }
    })
    .await
}

/// The alert pass every `every` (the first right away), until shutdown.
#[cfg(feature = "alerts")]
pub async fn run_alerts(
    job: Arc<crate::stack::alert_job::AlertJob>,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    on_interval(every, shutdown, || async {
        match job.run(chrono::Utc::now(), false).await {
            Ok(r) => {
                if !r.fired.is_empty() || !r.cleared.is_empty() || r.notices > 0 {
                    tracing::info!(
                        active = r.conditions.len(),
                        fired = r.fired.len(),
                        cleared = r.cleared.len(),
                        notices = r.notices,
                        "schedule: alert pass"
                    );
                }
                for f in r.failures {
                    tracing::error!(error = %f, "schedule: alert notice not delivered");
                }
            }
            Err(e) => tracing::error!(error = %e, "schedule: alert pass failed"),
        }
    })
    .await
}

/// Export the last closed period once it is closed (checked every
/// `every`), until shutdown.
#[cfg(feature = "alerts")]
pub async fn run_exports(
    job: Arc<crate::stack::alert_job::AlertJob>,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    on_interval(every, shutdown, || async {
        match job.export_due(chrono::Utc::now().date_naive()).await {
            Ok(Some(w)) => tracing::info!(period = %w.period, files = w.files.len(), "schedule: period exported"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "schedule: export failed"),
        }
    })
    .await
}

/// What the scheduled reconciliation works on: the reconciler (entry
/// states, ledger, where runs are kept) and the trackers' listing.
pub struct ReconcileJob {
    pub reconciler: crate::reconcile::gather::Reconciler,
    pub intake: crate::config::IntakeConfig,
    pub ports: crate::poll::PollPorts,
}

impl ReconcileJob {
    /// The job of a local stack (its store, ledger and pollers' secrets).
    pub fn local(stack: &crate::stack::LocalStack) -> Self {
        let store = Arc::new(stack.store.clone());
        Self {
            reconciler: crate::reconcile::gather::Reconciler {
                entries: store.clone(),
                ledger: stack.ledger.clone(),
                store,
                config: stack.config.reconcile.clone(),
            },
            intake: stack.config.intake.clone(),
            ports: stack.poll_ports(),
        }
    }

    /// One scheduled run on `today`: the last closed week and the current
    /// one, each stored (by `schedule`).
    pub async fn once(
        &self,
        today: chrono::NaiveDate,
    ) -> Vec<crate::reconcile::scheduled::PeriodOutcome> {
        use crate::reconcile::scheduled::{run_periods, scheduled_periods};
        let listing = crate::poll::TrackerListing {
            intake: &self.intake,
            ports: &self.ports,
        };
        run_periods(
            &self.reconciler,
            Some(&listing),
            &scheduled_periods(today),
            RECONCILE_BY,
        )
        .await
    }
}

/// Who the scheduled runs are stored as (`RunSummary::by`).
pub const RECONCILE_BY: &str = "schedule";

/// When the next scheduled reconciliation is due: `every` after the last
/// scheduled run (so a restart does not run it again early, nor put it
/// off), or `every` after `now` when none is stored yet; never before
/// `now`.
pub fn reconcile_due(
    last: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    every: Duration,
) -> chrono::DateTime<chrono::Utc> {
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    let due = last
        .unwrap_or(now)
        .checked_add_signed(every)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    due.max(now)
}

/// The newest stored scheduled run's start, among the newest runs.
async fn last_scheduled(
    store: &dyn crate::reconcile::ReconcileStore,
) -> Option<chrono::DateTime<chrono::Utc>> {
    match store.runs(crate::reconcile::gather::RUNS_SEARCHED).await {
        Ok(runs) => runs
            .iter()
            .filter(|r| r.by == RECONCILE_BY)
            .map(|r| r.started_at)
            .max(),
        Err(e) => {
            tracing::warn!(error = %e, "schedule: cannot read the stored reconciliation runs");
            None
        }
    }
}

/// Reconcile the last closed week and the current one every `every`,
/// until shutdown: the first run `every` after the last scheduled run
/// stored (or after the start, on a store without one). A failed period
/// is logged and stores nothing; the next run tries again.
pub async fn run_reconcile(
    job: ReconcileJob,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let every = every.max(Duration::from_secs(1));
    let mut last = last_scheduled(job.reconciler.store.as_ref()).await;
    loop {
        let now = chrono::Utc::now();
        let wait = (reconcile_due(last, now, every) - now)
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                let started = chrono::Utc::now();
                tokio::select! {
                    outcomes = job.once(started.date_naive()) => {
                        for o in outcomes {
                            if let Some(r) = o.run {
                                tracing::info!(period = %o.period, run = r.seq, breaks = r.breaks, "schedule: reconciled");
                            }
                        }
                    }
                    _ = shutdown.changed() => return,
                }
                last = Some(started);
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_next_reconciliation_is_due_an_interval_after_the_last_one() {
        let t = |h: u32| chrono::Utc.with_ymd_and_hms(2026, 3, 10, h, 0, 0).unwrap();
        let day = Duration::from_secs(86_400);
        let hour = Duration::from_secs(3_600);
        // None stored yet: an interval after the start.
        assert_eq!(reconcile_due(None, t(6), hour), t(7));
        // The last run two hours ago, hourly: due now (never in the past).
        assert_eq!(reconcile_due(Some(t(4)), t(6), hour), t(6));
        // The last run at 02:00, daily: a restart at 06:00 waits for 02:00
        // tomorrow, not 06:00.
        assert_eq!(
            reconcile_due(Some(t(2)), t(6), day),
            chrono::Utc.with_ymd_and_hms(2026, 3, 11, 2, 0, 0).unwrap()
        );
        // An interval too long for the calendar: not in this calendar.
        assert_eq!(
            reconcile_due(Some(t(2)), t(6), Duration::MAX),
            chrono::DateTime::<chrono::Utc>::MAX_UTC
        );
    }
}
