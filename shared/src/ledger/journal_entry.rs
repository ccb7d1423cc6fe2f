//! The optional labour-cost accrual: one balanced QBO `JournalEntry` per
//! period, debiting labour expense and crediting payroll liabilities for
//! the time in the books.
//!
//! Cost = hours × the worker's cost rate (attribute `cost_rate` on their
//! `employee` or `vendor` mapping row) × the tier's overtime multiplier
//! (from the rules). Accounts come from the `gl_account` mappings
//! `labour_expense` and `payroll_liabilities`. Time of a worker with no
//! cost rate is left out and listed, never guessed.

// `LedgerError` is the port's error type and carries the exception inline.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::qbo::{decimal_number, Ref};
use super::{LedgerError, Party};
use crate::mapping::{MappingTable, Mappings};
use crate::rules::Rules;
use crate::state::{EntryState, Status};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JournalEntry {
    pub txn_date: NaiveDate,
    pub private_note: String,
    pub line: Vec<JournalLine>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JournalLine {
    pub amount: Box<serde_json::value::RawValue>,
    pub description: String,
    pub detail_type: &'static str,
    pub journal_entry_line_detail: LineDetail,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LineDetail {
    pub posting_type: &'static str,
    pub account_ref: Ref,
}

/// The accrual for one period, with what it left out.
#[derive(Debug, Clone, Serialize)]
pub struct Accrual {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub total: Decimal,
    /// Cost per ledger party id.
    pub by_party: BTreeMap<String, Decimal>,
    /// Parties with time but no `cost_rate`, and their minutes.
    pub skipped: BTreeMap<String, i64>,
    #[serde(skip)]
    pub entry: Option<JournalEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccrualError {
    #[error("the `{0}` account is not mapped (gl_account table)")]
    UnmappedAccount(&'static str),
    #[error("{0}")]
    Encode(String),
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
}

fn cost_rates(m: &Mappings) -> BTreeMap<String, Decimal> {
    m.rows()
        .into_iter()
        .filter(|r| matches!(r.table, MappingTable::Employee | MappingTable::Vendor))
        .filter_map(|r| Some((r.target.clone(), r.attr("cost_rate")?.trim().parse().ok()?)))
        .collect()
}

fn multiplier(rules: &Rules, tier: &str) -> Decimal {
    if tier == "regular" {
        return Decimal::ONE;
    }
    rules
        .overtime
        .values()
        .find(|p| p.tiers.contains_key(tier))
        .map_or(Decimal::ONE, |p| p.multiplier(tier))
}

/// [`accrue`] over the entries of `from..=to` read from `store` (its
/// period read, `EntryStore::by_work_dates`: the period's entries, not the
/// store's): what `timepost accrue` posts.
pub async fn accrue_from(
    store: &dyn crate::ports::EntryStore,
    from: NaiveDate,
    to: NaiveDate,
    mappings: &Mappings,
    rules: &Rules,
) -> Result<Accrual, AccrualError> {
    let states = crate::ports::period_states(store, from, to).await?;
    accrue(from, to, &states, mappings, rules)
}

/// Build the accrual for posted time dated `from..=to`.
pub fn accrue(
    from: NaiveDate,
    to: NaiveDate,
    states: &[EntryState],
    mappings: &Mappings,
    rules: &Rules,
) -> Result<Accrual, AccrualError> {
    let account = |role: &'static str| {
        mappings
            .get(MappingTable::GlAccount, role)
            .map(|r| r.target.clone())
            .ok_or(AccrualError::UnmappedAccount(role))
    };
    let expense = account("labour_expense")?;
    let liabilities = account("payroll_liabilities")?;
    let rates = cost_rates(mappings);
    let mut by_party: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
    for s in states.iter().filter(|s| s.status() == Status::Posted) {
        for l in &s.posted_lines {
            if l.txn_date < from || l.txn_date > to {
                continue;
            }
            let party = match &l.party {
                Party::Employee { id } | Party::Vendor { id, .. } => id.clone(),
            };
            match rates.get(&party) {
                Some(rate) => {
                    let cost = (crate::rules::hours(l.minutes) * rate * multiplier(rules, &l.tier))
                        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
                    *by_party.entry(party).or_default() += cost;
                }
                None => *skipped.entry(party).or_default() += l.minutes,
            }
        }
    }
    let total: Decimal = by_party.values().copied().sum();
    let enc = |d: Decimal| {
        decimal_number(d).map_err(|e: LedgerError| AccrualError::Encode(e.to_string()))
    };
    let entry = if total.is_zero() {
        None
    } else {
        let mut line = Vec::new();
        for (party, cost) in &by_party {
            line.push(JournalLine {
                amount: enc(*cost)?,
                description: format!("Labour cost accrual {from}..{to}: {party}"),
                detail_type: "JournalEntryLineDetail",
                journal_entry_line_detail: LineDetail {
                    posting_type: "Debit",
                    account_ref: Ref {
                        value: expense.clone(),
                    },
                },
            });
        }
        line.push(JournalLine {
            amount: enc(total)?,
            description: format!("Labour cost accrual {from}..{to}"),
            detail_type: "JournalEntryLineDetail",
            journal_entry_line_detail: LineDetail {
                posting_type: "Credit",
                account_ref: Ref { value: liabilities },
            },
        });
        Some(JournalEntry {
            txn_date: to,
            private_note: format!("timepost labour-cost accrual {from}..{to}"),
            line,
        })
    };
    Ok(Accrual {
        from,
        to,
        total,
        by_party,
        skipped,
        entry,
    })
}

/// Debits minus credits of a journal entry (zero when balanced).
pub fn imbalance(e: &JournalEntry) -> Decimal {
    e.line
        .iter()
        .map(|l| {
            let amount: Decimal = l.amount.get().parse().unwrap_or_default();
            if l.journal_entry_line_detail.posting_type == "Debit" {
                amount
            } else {
                -amount
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MappingRow;

    #[test]
    fn accrual_is_balanced_and_skips_workers_without_a_cost_rate() {
        let mappings = Mappings::from_rows(
            vec![
                MappingRow::new(MappingTable::Employee, "u-ann", "E-100")
                    .with_attr("cost_rate", "40.00"),
                MappingRow::new(MappingTable::Employee, "u-bob", "E-101"),
                MappingRow::new(MappingTable::GlAccount, "labour_expense", "5000"),
                MappingRow::new(MappingTable::GlAccount, "payroll_liabilities", "2100"),
            ],
            1,
        );
        let rules = crate::rules::minimal("USD".parse().unwrap_or_else(|e: String| panic!("{e}")));
        let demo = crate::config::Config::parse(
            include_str!("../../../examples/sandbox/timepost.toml"),
            "demo",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rules = Rules {
            overtime: demo.rules.overtime,
            ..rules
        };
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default();
        let line = |party: &str, tier: &str, minutes: i64| timepost_core::ledger::PostingLine {
            tier: tier.into(),
            party: Party::Employee { id: party.into() },
            txn_date: day,
            minutes,
            customer: None,
            service_item: None,
            class: None,
            department: None,
            payroll_item: None,
            account: "5000".into(),
            billable: false,
            hourly_rate: None,
            original_rate: None,
            fx_rate: None,
            fx_date: None,
            description: String::new(),
        };
        let entry: crate::model::NormalisedEntry = serde_json::from_value(serde_json::json!({
            "key": {"source": "csv", "workspace": "w", "id": "1"},
            "version": {"updated_at": "2026-03-02T00:00:00Z", "content_hash": "h"},
            "worker": {"tracker_user_id": "u-ann"}, "time_zone": "UTC", "work_date": "2026-03-02",
            "duration_secs": 0, "billable": false, "approval": "approved", "origin": "web"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut s = EntryState::new(entry, chrono::Utc::now());
        s.set_status(Status::Posted, s.updated_at);
        s.posted_lines = vec![
            line("E-100", "regular", 480),
            line("E-100", "overtime", 90),
            line("E-101", "regular", 60),
        ];
        let a = accrue(day, day, &[s], &mappings, &rules).unwrap_or_else(|e| panic!("{e}"));
        // 8 h × 40 + 1.5 h × 40 × 1.5 = 320 + 90
        assert_eq!(a.total, Decimal::new(41000, 2));
        assert_eq!(a.skipped.get("E-101"), Some(&60));
        let je = a.entry.unwrap_or_else(|| panic!("an entry"));
        assert!(imbalance(&je).is_zero());
        assert_eq!(
            je.line
                .last()
                .map(|l| l.journal_entry_line_detail.posting_type),
            Some("Credit")
        );
    }
}
