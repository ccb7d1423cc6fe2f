//! `[retention]`: how the archive cuts periods and how long it keeps them
//! (`crate::archive`).

use serde::{Deserialize, Serialize};

/// How the archive cuts time into periods (by work date).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// Calendar months: `2026-03`.
    #[default]
    Month,
    /// ISO weeks, Monday to Sunday: `2026-W10`.
    Week,
}

fn default_grace() -> u32 {
    35
}
fn default_keep() -> u32 {
    10
}

/// `[retention]` in `timepost.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// `month` (default) or `week`: how periods are cut, by work date.
    #[serde(default)]
    pub period: PeriodKind,
    /// Days after a period's last day before it is archived (late edits
    /// and approvals land first).
    #[serde(default = "default_grace")]
    pub grace_days: u32,
    /// Years a snapshot is kept after its period's end; past that it is
    /// listed for deletion (never deleted by timepost).
    #[serde(default = "default_keep")]
    pub keep_years: u32,
    /// Days after a period's last day that its archived entries stay in
    /// the live store; absent: never purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_days: Option<u32>,
    /// Nothing is purged nor listed for deletion while set.
    #[serde(default)]
    pub legal_hold: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            period: PeriodKind::default(),
            grace_days: default_grace(),
            keep_years: default_keep(),
            live_days: None,
            legal_hold: false,
        }
    }
}
