//! Rounding of worked time: increment, mode, scope, and where it happens.
//! Never round twice: an entry the tracker already rounded, or a rule that
//! leaves rounding to the tracker or the ledger, only converts seconds to
//! whole minutes (nearest).

use std::cmp::Ordering;

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

/// Seconds in one minute.
const MINUTE: i64 = 60;

/// Whole minutes for one entry under entry scope.
///
/// * If `already_rounded`, or `rule.applies` is not [`RoundingWhere::Timepost`],
///   or the rule is `Nearest` with an increment of at most one minute: the
///   seconds are converted to whole minutes, nearest (30 s rounds up).
/// * Otherwise the seconds are rounded to a multiple of
///   `increment_minutes * 60` by `rule.mode` (`Nearest`: half rounds up;
///   `Up`: ceiling; `Down`: floor) and returned in minutes. An increment of 0
///   is treated as 1.
///
/// Negative seconds are treated as 0. Never rounds twice: the result is a
/// fixed point, `to_minutes(to_minutes(s) * 60) == to_minutes(s)`.
pub fn to_minutes(secs: i64, rule: &Rounding, already_rounded: bool) -> i64 {
    let secs = secs.max(0);
    if already_rounded || !rounds_here(rule) {
        return nearest_minute(secs);
    }
    let increment = i64::from(rule.increment_minutes.max(1));
    // At most 2^32 * 60, far from overflowing.
    let unit = increment * MINUTE;
    let whole = secs / unit;
    let rest = secs % unit;
    let units = match rule.mode {
        RoundingMode::Nearest if rest * 2 >= unit => whole + 1,
        RoundingMode::Up if rest > 0 => whole + 1,
        RoundingMode::Nearest | RoundingMode::Up | RoundingMode::Down => whole,
    };
    // `units * increment <= secs / 60 + increment`: cannot overflow, but
    // saturate rather than trust that.
    units.saturating_mul(increment)
}

/// Rounded minutes for every entry of ONE worker-day, in the same order as
/// `items`.
///
/// * Scope [`RoundingScope::Entry`] (or rounding not done by timepost): each
///   item is [`to_minutes`] on its own.
/// * Scope [`RoundingScope::Day`] with `applies == Timepost`:
///   - items flagged `already_rounded` keep their nearest-minute value and stay
///     outside the day total;
///   - every other item first gets its nearest-minute value; the day total of
///     their seconds is rounded to the increment by mode (exactly as
///     [`to_minutes`] rounds one entry); the difference between that rounded
///     total and the sum of the nearest-minute values is then applied to the
///     day's last entries in `(start, key)` order (`None` starts first; equal
///     `(start, key)` pairs are further ordered by seconds):
///       - a positive difference is added to the last entry that has any
///         worked seconds (the last entry at all if none has), so an empty
///         entry does not collect rounding minutes;
///       - a negative difference is taken from the last entry, then the one
///         before, and so on, clamping each at 0.
///
/// Invariants guaranteed (for any day whose total seconds fit in an `i64`):
/// every result is `>= 0`; the results of the non-`already_rounded` items sum
/// to exactly the rounded day total (the clamping can never leave a remainder,
/// because the rounded total is never negative, so the nearest-minute values
/// always hold at least as many minutes as must be taken away); and the
/// result depends only on the set of items, not on their order: permuting
/// `items` permutes the result the same way (for items with distinct keys, as
/// keys in one worker-day are).
pub fn round_day(items: &[DayItem<'_>], rule: &Rounding) -> Vec<i64> {
    if rule.scope == RoundingScope::Entry || rule.applies != RoundingWhere::Timepost {
        return items
            .iter()
            .map(|item| to_minutes(item.secs, rule, item.already_rounded))
            .collect();
    }

    let mut out: Vec<i64> = items.iter().map(|item| nearest_minute(item.secs)).collect();

    // The items that take part in the day total, in day order.
    let mut pool: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].already_rounded)
        .collect();
    pool.sort_by(|&a, &b| day_order(&items[a], &items[b]));

    let total_secs = pool
        .iter()
        .fold(0i64, |acc, &i| acc.saturating_add(items[i].secs.max(0)));
    let rounded_total = to_minutes(total_secs, rule, false);
    let nearest_sum = pool.iter().fold(0i64, |acc, &i| acc.saturating_add(out[i]));
    // Both operands are >= 0, so this cannot overflow.
    let diff = rounded_total - nearest_sum;

    match diff.cmp(&0) {
        Ordering::Equal => {}
        Ordering::Greater => {
            let target = pool
                .iter()
                .rev()
                .find(|&&i| items[i].secs > 0)
                .or(pool.last());
            if let Some(&i) = target {
                out[i] = out[i].saturating_add(diff);
            }
        }
        Ordering::Less => {
            // `diff >= -i64::MAX`, so the negation is safe.
            let mut to_take = -diff;
            for &i in pool.iter().rev() {
                if to_take == 0 {
                    break;
                }
                let take = out[i].min(to_take);
                out[i] -= take;
                to_take -= take;
            }
        }
    }
    out
}

/// Does timepost itself round under this rule (rather than only converting
/// seconds to the nearest minute)?
fn rounds_here(rule: &Rounding) -> bool {
    rule.applies == RoundingWhere::Timepost
        && !(rule.increment_minutes <= 1 && rule.mode == RoundingMode::Nearest)
}

/// Whole minutes, nearest; 30 s rounds up. Negative seconds count as 0.
fn nearest_minute(secs: i64) -> i64 {
    let secs = secs.max(0);
    secs / MINUTE + i64::from(secs % MINUTE >= MINUTE / 2)
}

/// The order of a worker-day: by start (`None` first), then key, then seconds
/// (only to make the order total when a key repeats).
fn day_order(a: &DayItem<'_>, b: &DayItem<'_>) -> Ordering {
    (a.start, a.key, a.secs).cmp(&(b.start, b.key, b.secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    fn rule(increment_minutes: u32, mode: RoundingMode) -> Rounding {
        Rounding {
            increment_minutes,
            mode,
            ..Rounding::default()
        }
    }

    fn day_rule(increment_minutes: u32, mode: RoundingMode) -> Rounding {
        Rounding {
            scope: RoundingScope::Day,
            ..rule(increment_minutes, mode)
        }
    }

    fn key(id: &str) -> EntryKey {
        EntryKey::new(Source::Csv, "ws", id)
    }

    fn at(hour: u32) -> Option<DateTime<Utc>> {
        format!("2026-03-02T{hour:02}:00:00Z").parse().ok()
    }

    #[test]
    fn default_rule_gives_nearest_minute() {
        let r = Rounding::default();
        assert_eq!(to_minutes(0, &r, false), 0);
        assert_eq!(to_minutes(29, &r, false), 0);
        assert_eq!(to_minutes(30, &r, false), 1);
        assert_eq!(to_minutes(89, &r, false), 1);
        assert_eq!(to_minutes(90, &r, false), 2);
    }

    #[test]
    fn negative_seconds_count_as_zero() {
        assert_eq!(to_minutes(-600, &rule(15, RoundingMode::Up), false), 0);
        assert_eq!(to_minutes(-1, &Rounding::default(), true), 0);
    }

    #[test]
    fn nearest_increment_rounds_half_up() {
        let r = rule(15, RoundingMode::Nearest);
        assert_eq!(to_minutes(7 * 60 + 29, &r, false), 0);
        assert_eq!(to_minutes(7 * 60 + 30, &r, false), 15);
        assert_eq!(to_minutes(22 * 60 + 29, &r, false), 15);
        assert_eq!(to_minutes(22 * 60 + 30, &r, false), 30);
    }

    #[test]
    fn up_and_down_are_ceiling_and_floor() {
        let up = rule(6, RoundingMode::Up);
        let down = rule(6, RoundingMode::Down);
        assert_eq!(to_minutes(1, &up, false), 6);
        assert_eq!(to_minutes(6 * 60, &up, false), 6);
        assert_eq!(to_minutes(6 * 60 + 1, &up, false), 12);
        assert_eq!(to_minutes(11 * 60 + 59, &down, false), 6);
        assert_eq!(to_minutes(5 * 60, &down, false), 0);
    }

    #[test]
    fn up_with_unit_increment_is_minute_ceiling() {
        assert_eq!(to_minutes(61, &rule(1, RoundingMode::Up), false), 2);
        assert_eq!(to_minutes(119, &rule(0, RoundingMode::Down), false), 1);
        assert_eq!(to_minutes(61, &rule(0, RoundingMode::Nearest), false), 1);
    }

    #[test]
    fn already_rounded_or_elsewhere_only_converts() {
        let r = rule(15, RoundingMode::Up);
        assert_eq!(to_minutes(61, &r, true), 1);
        let tracker = Rounding {
            applies: RoundingWhere::Tracker,
            ..r
        };
        assert_eq!(to_minutes(61, &tracker, false), 1);
        let ledger = Rounding {
            applies: RoundingWhere::Ledger,
            ..r
        };
        assert_eq!(to_minutes(61, &ledger, false), 1);
    }

    #[test]
    fn rounding_is_a_fixed_point() {
        let r = rule(15, RoundingMode::Up);
        let once = to_minutes(1000, &r, false);
        assert_eq!(to_minutes(once * 60, &r, false), once);
    }

    #[test]
    fn extreme_seconds_do_not_panic() {
        for mode in [RoundingMode::Nearest, RoundingMode::Up, RoundingMode::Down] {
            let r = rule(u32::MAX, mode);
            assert!(to_minutes(i64::MAX, &r, false) >= 0);
            assert!(to_minutes(i64::MIN, &r, false) == 0);
        }
        assert_eq!(
            to_minutes(i64::MAX, &Rounding::default(), false),
            i64::MAX / 60
        );
    }

    #[test]
    fn entry_scope_rounds_each_item() {
        let (a, b) = (key("a"), key("b"));
        let items = [
            DayItem {
                key: &a,
                start: at(9),
                secs: 7 * 60,
                already_rounded: false,
            },
            DayItem {
                key: &b,
                start: at(10),
                secs: 7 * 60,
                already_rounded: true,
            },
        ];
        assert_eq!(round_day(&items, &rule(15, RoundingMode::Up)), vec![15, 7]);
    }

    #[test]
    fn day_scope_puts_a_positive_difference_on_the_last_entry() {
        let (a, b) = (key("a"), key("b"));
        // Given out of order: b starts later than a.
        let items = [
            DayItem {
                key: &b,
                start: at(10),
                secs: 7 * 60,
                already_rounded: false,
            },
            DayItem {
                key: &a,
                start: at(9),
                secs: 7 * 60,
                already_rounded: false,
            },
        ];
        // 14 min -> 15 min, the extra minute lands on b (the last entry).
        assert_eq!(
            round_day(&items, &day_rule(15, RoundingMode::Up)),
            vec![8, 7]
        );
    }

    #[test]
    fn day_scope_takes_a_negative_difference_backwards_clamping_at_zero() {
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let items = [
            DayItem {
                key: &a,
                start: at(9),
                secs: 20 * 60,
                already_rounded: false,
            },
            DayItem {
                key: &b,
                start: at(10),
                secs: 60,
                already_rounded: false,
            },
            DayItem {
                key: &c,
                start: at(11),
                secs: 2 * 60,
                already_rounded: false,
            },
        ];
        // 23 min -> 15 min down: 8 minutes come off c (2), b (1), then a (5).
        assert_eq!(
            round_day(&items, &day_rule(15, RoundingMode::Down)),
            vec![15, 0, 0]
        );
    }

    #[test]
    fn day_scope_leaves_already_rounded_entries_outside_the_total() {
        let (a, b) = (key("a"), key("b"));
        let items = [
            DayItem {
                key: &a,
                start: at(9),
                secs: 10 * 60,
                already_rounded: false,
            },
            DayItem {
                key: &b,
                start: at(10),
                secs: 4 * 60,
                already_rounded: true,
            },
        ];
        assert_eq!(
            round_day(&items, &day_rule(15, RoundingMode::Up)),
            vec![15, 4]
        );
    }

    #[test]
    fn day_scope_does_not_give_rounding_minutes_to_an_empty_entry() {
        let (a, b) = (key("a"), key("b"));
        let items = [
            DayItem {
                key: &a,
                start: at(9),
                secs: 10 * 60,
                already_rounded: false,
            },
            DayItem {
                key: &b,
                start: at(10),
                secs: 0,
                already_rounded: false,
            },
        ];
        assert_eq!(
            round_day(&items, &day_rule(15, RoundingMode::Up)),
            vec![15, 0]
        );
    }

    #[test]
    fn day_scope_without_start_times_orders_by_key() {
        let (a, b) = (key("a"), key("b"));
        let items = [
            DayItem {
                key: &b,
                start: None,
                secs: 5 * 60,
                already_rounded: false,
            },
            DayItem {
                key: &a,
                start: None,
                secs: 5 * 60,
                already_rounded: false,
            },
        ];
        assert_eq!(
            round_day(&items, &day_rule(15, RoundingMode::Up)),
            vec![10, 5]
        );
        assert!(round_day(&[], &day_rule(15, RoundingMode::Up)).is_empty());
    }

    #[test]
    fn day_scope_handed_to_the_tracker_only_converts() {
        let a = key("a");
        let items = [DayItem {
            key: &a,
            start: None,
            secs: 5 * 60,
            already_rounded: false,
        }];
        let r = Rounding {
            applies: RoundingWhere::Ledger,
            ..day_rule(15, RoundingMode::Up)
        };
        assert_eq!(round_day(&items, &r), vec![5]);
    }
}
