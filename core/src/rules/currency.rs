//! Currencies: a dated exchange-rate table and the configurable point where
//! conversion happens. A converted amount keeps its original amount, the rate
//! and the rate's date, so a bookkeeper can retrace it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
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
    #[error("converting {amount} at rate {rate} overflows")]
    Overflow { amount: Money, rate: Decimal },
}

/// Decimal places an inverse rate is rounded to.
const INVERSE_RATE_DP: u32 = 10;

/// Decimal places of a converted amount (cents).
const AMOUNT_DP: u32 = 2;

impl CurrencyRules {
    /// The rate to convert `from` into `to` valid on `date`, with the date of
    /// the table row it comes from.
    ///
    /// * Same currency: rate 1, dated `date`.
    /// * Otherwise the latest row `from -> to` with `row.date <= date`. Rows
    ///   with a rate `<= 0` are ignored (see [`CurrencyRules::problems`]); of
    ///   two rows for the same pair and date, the later one in the table wins.
    /// * If no direct row applies, the latest applicable inverse row
    ///   `to -> from` is used as `1 / rate`, rounded to 10 decimal places.
    ///   A direct row always wins over an inverse one, even an older one.
    /// * `None` when no row applies.
    pub fn rate_on(
        &self,
        from: &Currency,
        to: &Currency,
        date: NaiveDate,
    ) -> Option<(Decimal, NaiveDate)> {
        if from == to {
            return Some((Decimal::ONE, date));
        }
        if let Some(row) = self.latest_row(from, to, date) {
            return Some((row.rate, row.date));
        }
        let row = self.latest_row(to, from, date)?;
        let inverse = Decimal::ONE
            .checked_div(row.rate)?
            .round_dp_with_strategy(INVERSE_RATE_DP, RoundingStrategy::MidpointAwayFromZero);
        // A rate so large its inverse rounds to 0 cannot convert anything.
        (inverse > Decimal::ZERO).then_some((inverse, row.date))
    }

    /// Convert an amount to the home currency on `date`.
    ///
    /// `Ok(None)` when no conversion is due: the amount is already in the home
    /// currency, or the conversion point is the tracker or the ledger. The
    /// converted amount is `original * rate`, rounded to cents half away from
    /// zero. Errors when no rate applies, or when the product does not fit a
    /// `Decimal`.
    pub fn convert(
        &self,
        money: &Money,
        date: NaiveDate,
    ) -> Result<Option<Converted>, CurrencyError> {
        if self.conversion_point != ConversionPoint::Timepost || money.currency == self.home {
            return Ok(None);
        }
        let (rate, rate_date) =
            self.rate_on(&money.currency, &self.home, date)
                .ok_or_else(|| CurrencyError::NoRate {
                    from: money.currency.clone(),
                    to: self.home.clone(),
                    date,
                })?;
        let amount = money
            .amount
            .checked_mul(rate)
            .ok_or_else(|| CurrencyError::Overflow {
                amount: money.clone(),
                rate,
            })?
            .round_dp_with_strategy(AMOUNT_DP, RoundingStrategy::MidpointAwayFromZero);
        Ok(Some(Converted {
            amount: Money::new(amount, self.home.clone()),
            original: money.clone(),
            rate,
            rate_date,
        }))
    }

    /// Validate the rate table: every rate is positive, no two rows share
    /// `(date, from, to)`, and no row converts a currency into itself.
    /// Returns human-readable problems, one per offending row and fault
    /// (empty when the table is fine). Rows are numbered from 1.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<(NaiveDate, &Currency, &Currency), usize> = BTreeMap::new();
        for (index, row) in self.rates.iter().enumerate() {
            let n = index + 1;
            let label = format!("rate #{n} ({} {} -> {})", row.date, row.from, row.to);
            if row.rate <= Decimal::ZERO {
                problems.push(format!("{label}: rate {} is not positive", row.rate));
            }
            if row.from == row.to {
                problems.push(format!("{label}: converts {} into itself", row.from));
            }
            match seen.get(&(row.date, &row.from, &row.to)) {
                Some(first) => problems.push(format!(
                    "{label}: duplicates rate #{first} for the same pair and date"
                )),
                None => {
                    seen.insert((row.date, &row.from, &row.to), n);
                }
            }
        }
        problems
    }

    /// The latest usable row `from -> to` dated on or before `date`; on equal
    /// dates the later row in the table.
    fn latest_row(&self, from: &Currency, to: &Currency, date: NaiveDate) -> Option<&ExchangeRate> {
        self.rates
            .iter()
            .filter(|r| &r.from == from && &r.to == to && r.date <= date && r.rate > Decimal::ZERO)
            // `max_by_key` returns the last of equal maxima.
            .max_by_key(|r| r.date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        code.parse()
            .unwrap_or_else(|_| panic!("bad test currency {code}"))
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    fn row(d: NaiveDate, from: &str, to: &str, rate: &str) -> ExchangeRate {
        ExchangeRate {
            date: d,
            from: cur(from),
            to: cur(to),
            rate: dec(rate),
        }
    }

    fn rules(rates: Vec<ExchangeRate>) -> CurrencyRules {
        CurrencyRules {
            home: cur("USD"),
            conversion_point: ConversionPoint::Timepost,
            rates,
        }
    }

    #[test]
    fn same_currency_is_rate_one_on_the_day() {
        let r = rules(vec![]);
        let d = date(2026, 3, 2);
        assert_eq!(
            r.rate_on(&cur("EUR"), &cur("EUR"), d),
            Some((Decimal::ONE, d))
        );
    }

    #[test]
    fn latest_row_on_or_before_the_date_applies() {
        let r = rules(vec![
            row(date(2026, 3, 1), "EUR", "USD", "1.08"),
            row(date(2026, 3, 5), "EUR", "USD", "1.10"),
            row(date(2026, 2, 1), "EUR", "USD", "1.05"),
        ]);
        let (eur, usd) = (cur("EUR"), cur("USD"));
        assert_eq!(
            r.rate_on(&eur, &usd, date(2026, 2, 28)),
            Some((dec("1.05"), date(2026, 2, 1)))
        );
        assert_eq!(
            r.rate_on(&eur, &usd, date(2026, 3, 4)),
            Some((dec("1.08"), date(2026, 3, 1)))
        );
        assert_eq!(
            r.rate_on(&eur, &usd, date(2026, 3, 5)),
            Some((dec("1.10"), date(2026, 3, 5)))
        );
        assert_eq!(r.rate_on(&eur, &usd, date(2026, 1, 31)), None);
    }

    #[test]
    fn inverse_pair_is_used_when_no_direct_row_applies() {
        let r = rules(vec![row(date(2026, 3, 1), "USD", "EUR", "3")]);
        assert_eq!(
            r.rate_on(&cur("EUR"), &cur("USD"), date(2026, 3, 2)),
            Some((dec("0.3333333333"), date(2026, 3, 1)))
        );
        let both = rules(vec![
            row(date(2026, 3, 1), "USD", "EUR", "3"),
            row(date(2026, 1, 1), "EUR", "USD", "0.5"),
        ]);
        assert_eq!(
            both.rate_on(&cur("EUR"), &cur("USD"), date(2026, 3, 2)),
            Some((dec("0.5"), date(2026, 1, 1)))
        );
    }

    #[test]
    fn non_positive_rates_are_ignored() {
        let r = rules(vec![
            row(date(2026, 3, 1), "USD", "EUR", "0"),
            row(date(2026, 3, 1), "GBP", "USD", "-1"),
        ]);
        assert_eq!(r.rate_on(&cur("EUR"), &cur("USD"), date(2026, 3, 2)), None);
        assert_eq!(r.rate_on(&cur("GBP"), &cur("USD"), date(2026, 3, 2)), None);
    }

    #[test]
    fn convert_rounds_to_cents_half_away_from_zero() {
        let r = rules(vec![row(date(2026, 3, 1), "EUR", "USD", "1.5")]);
        let d = date(2026, 3, 2);
        let money = Money::new(dec("10.01"), cur("EUR"));
        let converted = r.convert(&money, d).ok().flatten();
        assert_eq!(
            converted,
            Some(Converted {
                amount: Money::new(dec("15.02"), cur("USD")),
                original: money,
                rate: dec("1.5"),
                rate_date: date(2026, 3, 1),
            })
        );
        let negative = Money::new(dec("-10.01"), cur("EUR"));
        let amount = r
            .convert(&negative, d)
            .ok()
            .flatten()
            .map(|c| c.amount.amount);
        assert_eq!(amount, Some(dec("-15.02")));
    }

    #[test]
    fn no_conversion_when_home_or_elsewhere() {
        let mut r = rules(vec![row(date(2026, 3, 1), "EUR", "USD", "1.5")]);
        let d = date(2026, 3, 2);
        assert_eq!(r.convert(&Money::new(dec("5"), cur("USD")), d), Ok(None));
        r.conversion_point = ConversionPoint::Ledger;
        assert_eq!(r.convert(&Money::new(dec("5"), cur("EUR")), d), Ok(None));
        r.conversion_point = ConversionPoint::Tracker;
        assert_eq!(r.convert(&Money::new(dec("5"), cur("EUR")), d), Ok(None));
    }

    #[test]
    fn missing_rate_is_an_error() {
        let r = rules(vec![]);
        let d = date(2026, 3, 2);
        assert_eq!(
            r.convert(&Money::new(dec("5"), cur("EUR")), d),
            Err(CurrencyError::NoRate {
                from: cur("EUR"),
                to: cur("USD"),
                date: d,
            })
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let r = rules(vec![row(date(2026, 3, 1), "EUR", "USD", "1000")]);
        let money = Money::new(Decimal::MAX, cur("EUR"));
        assert!(matches!(
            r.convert(&money, date(2026, 3, 2)),
            Err(CurrencyError::Overflow { .. })
        ));
    }

    #[test]
    fn problems_name_each_bad_row() {
        let d = date(2026, 3, 1);
        let r = rules(vec![
            row(d, "EUR", "USD", "1.1"),
            row(d, "EUR", "USD", "1.2"),
            row(d, "GBP", "USD", "0"),
            row(d, "USD", "USD", "1"),
        ]);
        let problems = r.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("#2") && problems[0].contains("duplicates rate #1"));
        assert!(problems[1].contains("#3") && problems[1].contains("not positive"));
        assert!(problems[2].contains("#4") && problems[2].contains("into itself"));
        assert!(rules(vec![row(d, "EUR", "USD", "1.1")])
            .problems()
            .is_empty());
    }
}
