//! The local scheduler: what EventBridge Scheduler triggers in AWS runs here
//! on timers inside `timepost serve`. Today: re-checking held entries
//! against the mappings. The reconciliation and archive jobs join here.

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
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
