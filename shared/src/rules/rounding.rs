//! Rounding of worked time: increment, mode, scope, and where it happens.
//! Never round twice: an entry the tracker already rounded, or a rule that
//! leaves rounding to the tracker or the ledger, only converts seconds to
//! whole minutes (nearest).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::EntryKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    #[default]
    Nearest,
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoundingScope {
    /// Each entry is rounded on its own.
    #[default]
    Entry,
    /// The worker's day total is rounded; the difference lands on the day's
    /// last entries.
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoundingWhere {
    /// The tracker rounds; timepost converts to minutes only.
    Tracker,
    /// timepost rounds, as configured here.
    #[default]
    Timepost,
    /// The ledger rounds; timepost converts to minutes only.
    Ledger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rounding {
    #[serde(default = "one")]
    pub increment_minutes: u32,
    #[serde(default)]
    pub mode: RoundingMode,
    #[serde(default)]
    pub scope: RoundingScope,
    #[serde(default, rename = "where")]
    pub applies: RoundingWhere,
}

fn one() -> u32 {
    1
}

impl Default for Rounding {
    fn default() -> Self {
        Self {
            increment_minutes: 1,
            mode: RoundingMode::Nearest,
            scope: RoundingScope::Entry,
            applies: RoundingWhere::Timepost,
        }
    }
}

/// One entry of a worker-day, as day-scope rounding needs it.
#[derive(Debug, Clone)]
pub struct DayItem<'a> {
    pub key: &'a EntryKey,
    pub start: Option<DateTime<Utc>>,
    pub secs: i64,
    pub already_rounded: bool,
}
