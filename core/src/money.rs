//! Checked arithmetic for everything that adds money and hours up: the
//! outcome report, the dashboard, the KPIs and the CSV exports.
//!
//! `rust_decimal`'s `+`, `-`, `*` and `Sum` panic when a result does not fit
//! (about ±7.9 × 10²⁸), and a hostile or mistyped rate can get there. Nothing
//! here panics: [`Tally`] saturates at `Decimal::MAX` / `Decimal::MIN` and
//! counts each overflow, so a report built from a poisoned store still
//! answers and says that some of its figures are out of range (the
//! `amount_overflows` KPI; the reconciliation then never "agrees").
//!
//! The rules keep such amounts out of the books in the first place
//! (`rules::bounds`): an implausible rate is an exception before any line is
//! built. This module is the second line, for what is already stored and
//! for what the ledger reads back.

use rust_decimal::Decimal;

/// An amount that does not fit a `Decimal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the amount is too large to compute")]
pub struct AmountOverflow;

/// Saturating arithmetic that counts how often it saturated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    overflows: usize,
}

/// The bound a result that did not fit saturates to.
fn bound(negative: bool) -> Decimal {
    if negative {
        Decimal::MIN
    } else {
        Decimal::MAX
    }
}

impl Tally {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many results did not fit.
    pub fn overflows(&self) -> usize {
        self.overflows
    }

    /// Count one overflow found elsewhere (e.g. a line's billable amount).
    pub fn note_overflow(&mut self) {
        self.overflows = self.overflows.saturating_add(1);
    }

    /// `a + b`, saturating.
    pub fn add(&mut self, a: Decimal, b: Decimal) -> Decimal {
        a.checked_add(b).unwrap_or_else(|| {
            self.note_overflow();
            bound(b.is_sign_negative())
        })
    }

    /// `*acc += v`, saturating.
    pub fn add_to(&mut self, acc: &mut Decimal, v: Decimal) {
        *acc = self.add(*acc, v);
    }

    /// `a - b`, saturating.
    pub fn sub(&mut self, a: Decimal, b: Decimal) -> Decimal {
        a.checked_sub(b).unwrap_or_else(|| {
            self.note_overflow();
            bound(!b.is_sign_negative())
        })
    }

    /// `a × b`, saturating.
    pub fn mul(&mut self, a: Decimal, b: Decimal) -> Decimal {
        a.checked_mul(b).unwrap_or_else(|| {
            self.note_overflow();
            bound(a.is_sign_negative() != b.is_sign_negative())
        })
    }

    /// The sum of `values`, saturating.
    pub fn sum(&mut self, values: impl IntoIterator<Item = Decimal>) -> Decimal {
        values
            .into_iter()
            .fold(Decimal::ZERO, |acc, v| self.add(acc, v))
    }
}

/// The sum of `values`, saturating (when the overflow count is not needed).
pub fn saturating_sum(values: impl IntoIterator<Item = Decimal>) -> Decimal {
    Tally::new().sum(values)
}

/// The sum of whole minutes (or seconds), saturating at the `i64` bounds.
pub fn sum_i64(values: impl IntoIterator<Item = i64>) -> i64 {
    values.into_iter().fold(0i64, i64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_and_counts_instead_of_panicking() {
        let mut t = Tally::new();
        assert_eq!(t.add(Decimal::MAX, Decimal::ONE), Decimal::MAX);
        assert_eq!(t.sub(Decimal::MIN, Decimal::ONE), Decimal::MIN);
        assert_eq!(t.mul(Decimal::MAX, Decimal::from(-2)), Decimal::MIN);
        assert_eq!(t.sum([Decimal::MAX, Decimal::MAX]), Decimal::MAX);
        assert_eq!(t.overflows(), 4);
        assert_eq!(t.add(Decimal::ONE, Decimal::ONE), Decimal::from(2));
        assert_eq!(t.overflows(), 4);
        assert_eq!(sum_i64([i64::MAX, 1]), i64::MAX);
        assert_eq!(sum_i64([i64::MIN, -1]), i64::MIN);
    }
}
