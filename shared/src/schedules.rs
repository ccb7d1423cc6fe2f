//! The local scheduler: what EventBridge Scheduler triggers in AWS runs here
//! on timers inside `timepost serve`: re-checking held entries against the
//! mappings and settling what crashes left (open intents, dirty weeks:
//! `Engine::sweep`, which also reads what changed in the books outside
//! timepost: `crate::books_watch`) ([`run`]), and the tracker pollers
//! ([`run_poller`]), and, when `[retention]` is configured, the archive
//! run ([`run_archive`]: a snapshot of every closed period past the grace
//! window; purging stays a command), the alert pass ([`run_alerts`]) and
//! the finance export of the last closed period ([`run_exports`]). The
//! reconciliation job joins here.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;

pub async fn run(
    engine: Arc<Engine>,
    held_every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(held_every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match engine.recheck_held(&crate::worker::new_batch_id()).await {
                    Ok(o) if !o.is_empty() => tracing::info!(rechecked = o.len(), "schedule: held entries re-checked"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "schedule: held re-check failed"),
                }
                match engine.sweep(&crate::worker::new_batch_id()).await {
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
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
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
    pub ledger: Arc<dyn crate::ledger::Ledger>,
    pub archive: Arc<dyn crate::ports::Archive>,
    pub rules_toml: String,
    pub retention: crate::archive::RetentionConfig,
}

impl ArchiveJob {
    /// The job of a local stack, when its config has `[retention]`.
    pub fn local(
        stack: &crate::local::stack::LocalStack,
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
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match job.once().await {
                    Ok(runs) => {
                        use crate::archive::snapshot::RunOutcome;
                        for r in runs {
                            if let RunOutcome::Written { revision, entries, .. } = r.outcome {
                                tracing::info!(period = r.period, revision, entries, "schedule: period archived");
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "schedule: archive run failed"),
                }
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// The alert pass every `every` (the first right away), until shutdown.
pub async fn run_alerts(
    job: Arc<crate::alerts::job::AlertJob>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match job.run(chrono::Utc::now(), false).await {
                    Ok(r) => {
                        if !r.fired.is_empty() || !r.cleared.is_empty() || r.notices > 0 {
                            tracing::info!(active = r.conditions.len(), fired = r.fired.len(), cleared = r.cleared.len(), notices = r.notices, "schedule: alert pass");
                        }
                        for f in r.failures {
                            tracing::error!(error = %f, "schedule: alert notice not delivered");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "schedule: alert pass failed"),
                }
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Export the last closed period once it is closed (checked every
/// `every`), until shutdown.
pub async fn run_exports(
    job: Arc<crate::alerts::job::AlertJob>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match job.export_due(chrono::Utc::now().date_naive()).await {
                    Ok(Some(w)) => tracing::info!(period = %w.period, files = w.files.len(), "schedule: period exported"),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "schedule: export failed"),
                }
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
