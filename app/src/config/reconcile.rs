//! `[reconcile]`: tolerances and schedule of three-way reconciliation
//! (`crate::reconcile`).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `[reconcile]` in `timepost.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// A record's minutes may differ from timepost's by this much without
    /// a break.
    #[serde(default)]
    pub tolerance_minutes: i64,
    /// A record's billable amount may differ by this much (per line, in
    /// the books' currency) without a break.
    #[serde(default = "default_tolerance_amount")]
    pub tolerance_amount: Decimal,
    /// Count records timepost did not write (no fingerprint) as breaks
    /// (`NOT_TIMEPOSTS_RECORD`); by default they are information only.
    #[serde(default)]
    pub foreign_records_are_breaks: bool,
    /// How often `timepost serve` reconciles the last closed week and the
    /// current one (seconds; default daily, 0 = never). In AWS the
    /// reconcile function's schedule (`ReconcileSchedule`) decides.
    #[serde(default = "default_schedule_secs")]
    pub schedule_secs: u64,
}

fn default_schedule_secs() -> u64 {
    86_400
}

fn default_tolerance_amount() -> Decimal {
    Decimal::new(1, 2)
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            tolerance_minutes: 0,
            tolerance_amount: default_tolerance_amount(),
            foreign_records_are_breaks: false,
            schedule_secs: default_schedule_secs(),
        }
    }
}
