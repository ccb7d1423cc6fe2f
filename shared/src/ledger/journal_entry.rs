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
#![allow(clippy::result_large_err)]

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
    for s in states.iter().filter(|s| s.status == Status::Posted) {
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
