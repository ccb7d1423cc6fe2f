//! The OAuth refresh-token state a cloud ledger keeps in one secret
//! (`<prefix>_oauth_state`): written by the ledger adapters' token manager,
//! read by the alert pass for the token's age and refusals.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The refresh tokens timepost keeps (stored as JSON in one secret), and
/// what the alert pass reads about them. The OAuth adapters write it; the
/// alert pass only reads it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    pub current: String,
    /// The token `current` replaced, kept until `current` is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// When a refresh last succeeded: the refresh token's lifetime runs
    /// from its last use (QuickBooks 100 days, Xero 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The expiry the token endpoint announced for the refresh token
    /// (Intuit's `x_refresh_token_expires_in`), when it announces one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// The token endpoint refused the refresh token (and none has worked
    /// since): when, and its error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

/// A refused refresh, as kept in [`TokenState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at: DateTime<Utc>,
    pub code: String,
}

impl TokenState {
    /// A state holding only `current` (what the admin stored once).
    pub fn fresh(current: String) -> Self {
        Self {
            current,
            previous: None,
            refreshed_at: None,
            refresh_expires_at: None,
            refused: None,
        }
    }

    /// Whether both hold the same refresh tokens.
    pub fn same_tokens(&self, other: &Self) -> bool {
        self.current == other.current && self.previous == other.previous
    }
}

impl std::fmt::Debug for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenState")
            .field("previous", &self.previous.is_some())
            .field("refreshed_at", &self.refreshed_at)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}
