//! Business rules, all driven by configuration (`timepost.toml`).
//!
//! Each rule lives in its own file and is a pure function of its inputs:
//! - [`rounding`]: increment, mode, scope and where rounding happens;
//! - [`overtime`]: the regular / overtime split of a worker-week;
//! - [`currency`]: dated exchange rates and the conversion point;
//! - [`bounds`]: plausibility bounds on rates and work dates;
//! - approval and billable rules are small enough to sit in this file.

pub mod bounds;
pub mod currency;
pub mod overtime;
pub mod rounding;

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{ApprovalStatus, Currency};

pub use bounds::Bounds;
pub use currency::{ConversionPoint, CurrencyRules, ExchangeRate};
pub use overtime::{OvertimePolicy, OvertimeTier, Split};
pub use rounding::{Rounding, RoundingMode, RoundingScope, RoundingWhere};

/// Every rule timepost applies, as read from the `[rules]` part of
/// `timepost.toml`. Defaults are deliberately conservative: no rounding, no
/// overtime, approval required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub rounding: Rounding,
    /// Overtime policies by jurisdiction name.
    #[serde(default)]
    pub overtime: BTreeMap<String, OvertimePolicy>,
    /// The jurisdiction used for workers whose mapping names none.
    #[serde(default)]
    pub default_jurisdiction: Option<String>,
    #[serde(default)]
    pub approval: ApprovalRule,
    #[serde(default)]
    pub billable: BillableRule,
    pub currency: CurrencyRules,
    #[serde(default)]
    pub unmapped: UnmappedPolicies,
    /// Longest single entry accepted, in hours; longer is an exception
    /// (a timer left running over a weekend, most often).
    #[serde(default = "default_max_entry_hours")]
    pub max_entry_hours: u32,
    /// `[rules.bounds]`: the highest believable hourly rate and the
    /// work-date window; an entry outside them is an exception.
    #[serde(default)]
    pub bounds: Bounds,
    /// The holding (suspense) account an exception can be routed to from
    /// the console instead of waiting for its fix. Unset: no routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding_account: Option<String>,
    /// The employee id in the books that time of an unmapped worker is
    /// recorded against when routed to holding (a time record needs a
    /// person). Unset: an unmapped worker's entry cannot be routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding_employee: Option<String>,
    /// The books have no payroll (`[ledger.qbo] payroll = false`; set from
    /// the ledger's settings when the config is read, never written in
    /// `[rules]`): lines carry no payroll item, overtime still gets its own
    /// lines (its tier named in the description) and is never held for
    /// want of a payroll item.
    #[serde(skip)]
    pub no_payroll: bool,
}

fn default_max_entry_hours() -> u32 {
    16
}

impl Rules {
    pub fn overtime_for(&self, jurisdiction: Option<&str>) -> Option<&OvertimePolicy> {
        let name = jurisdiction.or(self.default_jurisdiction.as_deref())?;
        self.overtime.get(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// Only approved entries post when true.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

impl Default for ApprovalRule {
    fn default() -> Self {
        Self { required: true }
    }
}

impl ApprovalRule {
    /// Is this entry version cleared to post? `approved_hash` is the content
    /// hash of the version a manager last approved: an approved entry that is
    /// edited afterwards carries a new hash and waits again.
    pub fn is_cleared(
        &self,
        status: ApprovalStatus,
        content_hash: &str,
        approved_hash: Option<&str>,
    ) -> bool {
        if !self.required {
            return true;
        }
        match status {
            ApprovalStatus::Approved => true,
            ApprovalStatus::Rejected => false,
            ApprovalStatus::Pending | ApprovalStatus::Unknown => {
                approved_hash == Some(content_hash)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RateSource {
    /// Send the tracker's hourly rate with the hours.
    #[default]
    Tracker,
    /// Send hours only; the ledger prices them from its service item.
    Ledger,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BillableRule {
    #[serde(default)]
    pub rate_source: RateSource,
}

/// What to do when a mapping is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmappedPolicy {
    /// Park the entry, name the missing mapping, and post it by itself once
    /// the mapping exists.
    Hold,
    /// Raise an exception that finance must resolve and redrive.
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmappedPolicies {
    #[serde(default = "block")]
    pub employee: UnmappedPolicy,
    #[serde(default = "hold")]
    pub project: UnmappedPolicy,
    #[serde(default = "hold")]
    pub service_item: UnmappedPolicy,
}

fn block() -> UnmappedPolicy {
    UnmappedPolicy::Block
}
fn hold() -> UnmappedPolicy {
    UnmappedPolicy::Hold
}

impl Default for UnmappedPolicies {
    fn default() -> Self {
        Self {
            employee: UnmappedPolicy::Block,
            project: UnmappedPolicy::Hold,
            service_item: UnmappedPolicy::Hold,
        }
    }
}

/// Hours as a decimal, from minutes, exactly.
pub fn hours(minutes: i64) -> Decimal {
    Decimal::from(minutes) / Decimal::from(60)
}

/// A convenience for tests and the sandbox: rules with a home currency and
/// nothing else configured.
pub fn minimal(home: Currency) -> Rules {
    Rules {
        rounding: Rounding::default(),
        overtime: BTreeMap::new(),
        default_jurisdiction: None,
        approval: ApprovalRule::default(),
        billable: BillableRule::default(),
        currency: CurrencyRules {
            home,
            conversion_point: ConversionPoint::Timepost,
            rates: Vec::new(),
        },
        unmapped: UnmappedPolicies::default(),
        max_entry_hours: default_max_entry_hours(),
        bounds: Bounds::default(),
        holding_account: None,
        holding_employee: None,
        no_payroll: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approved_entry_edited_afterwards_waits_again() {
        let rule = ApprovalRule { required: true };
        assert!(rule.is_cleared(ApprovalStatus::Approved, "h2", None));
        assert!(rule.is_cleared(ApprovalStatus::Unknown, "h1", Some("h1")));
        assert!(!rule.is_cleared(ApprovalStatus::Unknown, "h2", Some("h1")));
        assert!(!rule.is_cleared(ApprovalStatus::Rejected, "h1", Some("h1")));
        let off = ApprovalRule { required: false };
        assert!(off.is_cleared(ApprovalStatus::Pending, "h2", None));
    }
}
