//! Listing a period in the trackers for reconciliation (nothing enqueued):
//! what `timepost reconcile` and the scheduled runs compare timepost with.

use crate::config::IntakeConfig;
use crate::reconcile::gather::{ListTrackers, Listing};
use crate::reconcile::Period;

use super::{PollError, PollPorts, Poller};

/// List `period` in every tracker whose poller the config sets up
/// (`[intake.harvest]`, `[intake.toggl_poll]`). `None` when none is.
pub async fn list_trackers(
    intake: &IntakeConfig,
    ports: &PollPorts,
    period: &Period,
) -> Result<Option<Listing>, PollError> {
    let mut out: Option<Listing> = None;
    for source in ["harvest", "toggl"] {
        let Some(poller) = Poller::for_source(source, intake)? else {
            continue;
        };
        let (entries, report) = poller.list_period(ports, period.from, period.to).await?;
        let l = out.get_or_insert_with(Listing::default);
        if !l.from.is_empty() {
            l.from.push('+');
        }
        l.from.push_str(source);
        l.entries.extend(entries);
        l.requests += report.requests;
    }
    Ok(out)
}

/// The trackers the config sets up, listed through `ports`: what a
/// scheduled reconciliation run lists.
pub struct TrackerListing<'a> {
    pub intake: &'a IntakeConfig,
    pub ports: &'a PollPorts,
}

#[async_trait::async_trait]
impl ListTrackers for TrackerListing<'_> {
    async fn list(&self, period: &Period) -> Result<Option<Listing>, String> {
        list_trackers(self.intake, self.ports, period)
            .await
            .map_err(|e| e.to_string())
    }
}
