//! Plausibility bounds (`[rules.bounds]`): what an entry must look like to
//! be believed before any amount is computed from it. A tracker (or whoever
//! holds a webhook secret, or edits a CSV) can send any rate and any date;
//! an hourly rate of 79228162514264337593543950335 or a work date in 2206 is
//! a typo or an attack, never time worked. Such an entry becomes an
//! exception (`RATE_OUT_OF_BOUNDS`, `WORK_DATE_OUT_OF_RANGE`) with a
//! bookkeeper's sentence, and no line is built from it.
//!
//! Pure, like the rest of the decision: no clock is read. The work-date
//! window is measured from when timepost first received the entry
//! (`EntryState::first_seen_at`, stamped by the engine from its own clock,
//! never from the payload), so replaying or previewing an old entry years
//! later gives the same answer.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::Money;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// The highest hourly rate believed, in the rate's own currency (as the
    /// tracker sends it, before any conversion). Negative rates are always
    /// refused. Default 10000.
    #[serde(default = "default_max_hourly_rate")]
    pub max_hourly_rate: Decimal,
    /// Per-currency ceilings that replace `max_hourly_rate` for that
    /// currency (e.g. `{ JPY = "1500000" }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_hourly_rate_by_currency: BTreeMap<String, Decimal>,
    /// A work date more than this many days after timepost first received
    /// the entry is refused. Default 366.
    #[serde(default = "default_max_days_ahead")]
    pub max_days_ahead: u32,
    /// A work date more than this many days before timepost first received
    /// the entry is refused. Default 3660 (about ten years).
    #[serde(default = "default_max_days_back")]
    pub max_days_back: u32,
}

fn default_max_hourly_rate() -> Decimal {
    Decimal::from(10_000)
}
fn default_max_days_ahead() -> u32 {
    366
}
fn default_max_days_back() -> u32 {
    3660
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_hourly_rate: default_max_hourly_rate(),
            max_hourly_rate_by_currency: BTreeMap::new(),
            max_days_ahead: default_max_days_ahead(),
            max_days_back: default_max_days_back(),
        }
    }
}

/// Why a rate is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateProblem {
    Negative,
    TooHigh { max: Decimal },
}

/// Why a work date is not believed: it lies outside `[earliest, latest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateProblem {
    pub earliest: NaiveDate,
    pub latest: NaiveDate,
}

impl Bounds {
    /// The ceiling for a currency.
    pub fn max_rate_for(&self, currency: &str) -> Decimal {
        self.max_hourly_rate_by_currency
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(currency))
            .map(|(_, m)| *m)
            .unwrap_or(self.max_hourly_rate)
    }

    /// Is this hourly rate believable?
    pub fn check_rate(&self, rate: &Money) -> Result<(), RateProblem> {
        if rate.amount.is_sign_negative() && !rate.amount.is_zero() {
            return Err(RateProblem::Negative);
        }
        let max = self.max_rate_for(rate.currency.as_str());
        if rate.amount > max {
            return Err(RateProblem::TooHigh { max });
        }
        Ok(())
    }

    /// Is `work_date` believable for an entry first received at
    /// `received`? The window is `received`'s UTC date minus
    /// `max_days_back` to plus `max_days_ahead` (clamped to the calendar).
    pub fn check_work_date(
        &self,
        work_date: NaiveDate,
        received: DateTime<Utc>,
    ) -> Result<(), DateProblem> {
        let day = received.date_naive();
        let earliest = day
            .checked_sub_days(Days::new(u64::from(self.max_days_back)))
            .unwrap_or(NaiveDate::MIN);
        let latest = day
            .checked_add_days(Days::new(u64::from(self.max_days_ahead)))
            .unwrap_or(NaiveDate::MAX);
        if work_date < earliest || work_date > latest {
            return Err(DateProblem { earliest, latest });
        }
        Ok(())
    }

    /// The first thing wrong with the configured bounds, as (field,
    /// message), for config validation.
    pub fn problem(&self) -> Option<(String, String)> {
        if self.max_hourly_rate.is_sign_negative() {
            return Some((
                "rules.bounds.max_hourly_rate".into(),
                "must not be negative".into(),
            ));
        }
        for (c, m) in &self.max_hourly_rate_by_currency {
            if c.parse::<crate::model::Currency>().is_err() {
                return Some((
                    "rules.bounds.max_hourly_rate_by_currency".into(),
                    format!("`{c}` is not an ISO 4217 currency code"),
                ));
            }
            if m.is_sign_negative() {
                return Some((
                    "rules.bounds.max_hourly_rate_by_currency".into(),
                    format!("the ceiling for {c} must not be negative"),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str, c: &str) -> Money {
        Money::new(s.parse().unwrap(), c.parse().unwrap())
    }

    #[test]
    fn rates_are_bounded_per_currency_and_never_negative() {
        let mut b = Bounds::default();
        assert_eq!(b.check_rate(&money("125.50", "USD")), Ok(()));
        assert_eq!(b.check_rate(&money("0", "USD")), Ok(()));
        assert_eq!(b.check_rate(&money("10000", "USD")), Ok(()));
        assert_eq!(
            b.check_rate(&money("10000.01", "USD")),
            Err(RateProblem::TooHigh {
                max: Decimal::from(10_000)
            })
        );
        assert_eq!(
            b.check_rate(&money("79228162514264337593543950335", "USD")),
            Err(RateProblem::TooHigh {
                max: Decimal::from(10_000)
            })
        );
        assert_eq!(
            b.check_rate(&money("-1", "USD")),
            Err(RateProblem::Negative)
        );
        b.max_hourly_rate_by_currency
            .insert("JPY".into(), Decimal::from(1_500_000));
        assert_eq!(b.check_rate(&money("15000", "JPY")), Ok(()));
        assert!(b.check_rate(&money("15000", "EUR")).is_err());
        assert_eq!(b.problem(), None);
        b.max_hourly_rate_by_currency
            .insert("yens".into(), Decimal::ONE);
        assert!(b.problem().is_some());
    }

    #[test]
    fn work_dates_must_lie_in_the_window_around_receipt() {
        let b = Bounds::default();
        let at: DateTime<Utc> = "2026-03-04T09:00:00Z".parse().unwrap();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(b.check_work_date(d("2026-03-02"), at), Ok(()));
        assert_eq!(b.check_work_date(d("2027-03-05"), at), Ok(()));
        assert!(b.check_work_date(d("2027-03-06"), at).is_err());
        assert_eq!(b.check_work_date(d("2016-02-25"), at), Ok(()));
        assert!(b.check_work_date(d("2016-02-24"), at).is_err());
        let e = b.check_work_date(d("1926-03-02"), at).unwrap_err();
        assert_eq!(e.earliest, d("2016-02-25"));
        assert_eq!(e.latest, d("2027-03-05"));
        assert!(b.check_work_date(NaiveDate::MAX, at).is_err());
        assert!(b.check_work_date(NaiveDate::MIN, at).is_err());
        let wide = Bounds {
            max_days_ahead: u32::MAX,
            max_days_back: u32::MAX,
            ..Bounds::default()
        };
        assert_eq!(wide.check_work_date(NaiveDate::MAX, at), Ok(()));
        assert_eq!(wide.check_work_date(NaiveDate::MIN, at), Ok(()));
    }
}
