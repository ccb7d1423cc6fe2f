//! Route open entries to the holding account (`rules.holding_account`):
//! the routing is recorded on each entry state (`EntryState::holding`)
//! under the entry's claim and audited, then every selected entry is
//! redriven through the queue; the engine posts it to the holding account
//! (`pipeline::with_holding`) with its usual idempotency key, so it reaches
//! the books exactly once however often it is routed or redriven.

use std::time::Duration;

use chrono::Utc;

use super::entries::{audit_record, redrive};
use crate::model::EntryKey;
use crate::ports::{AuditLog, EntryStore, Queue, StoreError};
use crate::review::Actor;
use crate::state::{HoldingRoute, Status};

/// Why a routing was refused (nothing was routed unless said).
#[derive(Debug, thiserror::Error)]
pub enum HoldingError {
    #[error("no holding account is configured (set `holding_account` under [rules] in timepost.toml), so entries cannot be routed to one")]
    NotConfigured,
    #[error("no entry {0}")]
    NotFound(EntryKey),
    #[error("entry {key} is {status}; only exceptions and held entries can be routed to the holding account")]
    NotOpen { key: EntryKey, status: Status },
    #[error("entry {key} is being processed; {} routed before it, try again in a moment", routed_words(*.routed))]
    Busy { key: EntryKey, routed: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn routed_words(n: usize) -> String {
    format!("{n} entr{}", if n == 1 { "y was" } else { "ies were" })
}

/// Route `keys` to `account` (None: not configured). Every entry is checked
/// first (exists, and is an exception or held), so a bad selection changes
/// nothing; then each is marked under its claim, audited (`route_holding`,
/// with `scope`: what was selected), and all are redriven. Returns how many
/// were newly routed (one routed before is redriven, not routed again).
pub async fn route(
    entries: &dyn EntryStore,
    queue: &dyn Queue,
    audit: &dyn AuditLog,
    account: Option<&str>,
    who: &Actor,
    keys: &[EntryKey],
    scope: &str,
) -> Result<usize, HoldingError> {
    let Some(account) = account else {
        return Err(HoldingError::NotConfigured);
    };
    for key in keys {
        let st = entries
            .get(key)
            .await?
            .ok_or_else(|| HoldingError::NotFound(key.clone()))?;
        if !matches!(st.status(), Status::Exception | Status::Held) {
            return Err(HoldingError::NotOpen {
                key: key.clone(),
                status: st.status(),
            });
        }
    }
    const OWNER: &str = "console-holding";
    let mut routed = Vec::with_capacity(keys.len());
    for key in keys {
        if !entries.claim(key, OWNER, Duration::from_secs(30)).await? {
            return Err(HoldingError::Busy {
                key: key.clone(),
                routed: routed.len(),
            });
        }
        let result = async {
            let mut st = entries
                .get(key)
                .await?
                .ok_or_else(|| HoldingError::NotFound(key.clone()))?;
            if st.holding.is_some() {
                return Ok(false);
            }
            let was = st
                .reason
                .as_ref()
                .map(|r| r.code.as_str())
                .unwrap_or("no reason");
            let detail = format!("to {account} ({scope}); was {} ({was})", st.status());
            st.holding = Some(HoldingRoute {
                by: who.name.clone(),
                at: Utc::now(),
                reason: st.reason.clone(),
            });
            entries.put(&st).await?;
            audit
                .record(audit_record(who, "route_holding", Some(key), detail))
                .await?;
            Ok::<_, HoldingError>(true)
        }
        .await;
        if let Err(e) = entries.release(key, OWNER).await {
            tracing::warn!(entry = %key, error = %e, "could not release claim");
        }
        if result? {
            routed.push(key.clone());
        }
    }
    // Redrive every selected entry (an already-routed one that has not
    // posted yet is retried; one that has posted is left unchanged).
    redrive(
        queue,
        audit,
        who,
        keys,
        "after routing to the holding account",
    )
    .await?;
    Ok(routed.len())
}
