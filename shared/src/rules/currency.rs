//! Currencies: a dated exchange-rate table and the configurable point where
//! conversion happens. A converted amount keeps its original amount, the rate
//! and the rate's date, so a bookkeeper can retrace it.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{Currency, Money};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConversionPoint {
    /// The tracker already reports amounts in the home currency.
    Tracker,
    /// timepost converts to the home currency with its rate table.
    #[default]
    Timepost,
    /// Amounts go to the ledger in their own currency; it converts.
    Ledger,
}

/// `1 from = rate to`, valid from `date` until a later rate for the pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRate {
    pub date: NaiveDate,
    pub from: Currency,
    pub to: Currency,
    pub rate: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyRules {
    pub home: Currency,
    #[serde(default)]
    pub conversion_point: ConversionPoint,
    #[serde(default)]
    pub rates: Vec<ExchangeRate>,
}

/// An amount converted to the home currency, with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converted {
    pub amount: Money,
    pub original: Money,
    pub rate: Decimal,
    pub rate_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("no exchange rate from {from} to {to} on or before {date}")]
    NoRate {
        from: Currency,
        to: Currency,
        date: NaiveDate,
    },
}
