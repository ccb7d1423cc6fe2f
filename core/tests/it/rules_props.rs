//! Property tests of the business rules: rounding, overtime and currency.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use timepost_core::model::{Currency, EntryKey, Money, Source};
use timepost_core::rules::currency::{ConversionPoint, CurrencyRules, ExchangeRate};
use timepost_core::rules::overtime::{
    split_week, DailyThreshold, OvertimePolicy, SeventhDayRule, Split, WorkItem,
};
use timepost_core::rules::rounding::{
    round_day, to_minutes, DayItem, Rounding, RoundingMode, RoundingScope, RoundingWhere,
};

// ---------------------------------------------------------------- rounding

fn mode() -> impl Strategy<Value = RoundingMode> {
    prop_oneof![
        Just(RoundingMode::Nearest),
        Just(RoundingMode::Up),
        Just(RoundingMode::Down),
    ]
}

fn applies() -> impl Strategy<Value = RoundingWhere> {
    prop_oneof![
        4 => Just(RoundingWhere::Timepost),
        1 => Just(RoundingWhere::Tracker),
        1 => Just(RoundingWhere::Ledger),
    ]
}

fn rounding(scope: RoundingScope) -> impl Strategy<Value = Rounding> {
    (0u32..=60, mode(), applies()).prop_map(move |(increment_minutes, mode, applies)| Rounding {
        increment_minutes,
        mode,
        scope,
        applies,
    })
}

/// Seconds of one entry: realistic (up to ~30 days), sometimes negative.
fn secs() -> impl Strategy<Value = i64> {
    prop_oneof![9 => 0i64..2_600_000, 1 => -100_000i64..0]
}

/// How far the result of `to_minutes` may be from the exact time, in seconds.
fn tolerance(rule: &Rounding, already_rounded: bool) -> i64 {
    let passes_through = already_rounded
        || rule.applies != RoundingWhere::Timepost
        || (rule.increment_minutes <= 1 && rule.mode == RoundingMode::Nearest);
    if passes_through {
        30
    } else {
        i64::from(rule.increment_minutes.max(1)) * 60
    }
}

fn key(id: String) -> EntryKey {
    EntryKey::new(Source::Csv, "ws", id)
}

fn start_on(date: NaiveDate, minute: Option<u32>) -> Option<DateTime<Utc>> {
    let minute = minute?;
    date.and_hms_opt(minute / 60 % 24, minute % 60, 0)
        .map(|t| t.and_utc())
}

/// One worker-day of distinct keys: (key, start minute, secs, already rounded).
fn day_items() -> impl Strategy<Value = Vec<(EntryKey, Option<u32>, i64, bool)>> {
    proptest::collection::vec(
        (
            proptest::option::of(0u32..1440),
            prop_oneof![9 => 0i64..30_000, 1 => -600i64..0],
            proptest::bool::weighted(0.2),
        ),
        0..10,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (start, secs, rounded))| (key(format!("e{i}")), start, secs, rounded))
            .collect()
    })
}

fn as_day_items(raw: &[(EntryKey, Option<u32>, i64, bool)]) -> Vec<DayItem<'_>> {
    let date = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default();
    raw.iter()
        .map(|(key, start, secs, already_rounded)| DayItem {
            key,
            start: start_on(date, *start),
            secs: *secs,
            already_rounded: *already_rounded,
        })
        .collect()
}

proptest! {
    #[test]
    fn rounding_is_idempotent(s in secs(), rule in rounding(RoundingScope::Entry), rounded in any::<bool>()) {
        let once = to_minutes(s, &rule, rounded);
        prop_assert!(once >= 0);
        prop_assert_eq!(to_minutes(once * 60, &rule, rounded), once);
        // Also when the tracker's rounded value comes back flagged as rounded.
        prop_assert_eq!(to_minutes(once * 60, &rule, true), once);
    }

    #[test]
    fn rounding_stays_within_one_increment(s in secs(), rule in rounding(RoundingScope::Entry), rounded in any::<bool>()) {
        let exact = s.max(0);
        let minutes = to_minutes(s, &rule, rounded);
        prop_assert!((minutes * 60 - exact).abs() <= tolerance(&rule, rounded));
    }

    #[test]
    fn up_is_at_least_exact_and_down_at_most(s in secs(), increment in 0u32..=60) {
        let exact = s.max(0);
        let rule = |mode| Rounding { increment_minutes: increment, mode, ..Rounding::default() };
        let up = to_minutes(s, &rule(RoundingMode::Up), false);
        let down = to_minutes(s, &rule(RoundingMode::Down), false);
        let nearest = to_minutes(s, &rule(RoundingMode::Nearest), false);
        prop_assert!(up * 60 >= exact);
        prop_assert!(exact >= down * 60);
        prop_assert!(down <= nearest && nearest <= up);
    }

    #[test]
    fn entry_scope_day_rounding_is_per_entry(raw in day_items(), rule in rounding(RoundingScope::Entry)) {
        let items = as_day_items(&raw);
        let expected: Vec<i64> = items.iter().map(|i| to_minutes(i.secs, &rule, i.already_rounded)).collect();
        prop_assert_eq!(round_day(&items, &rule), expected);
    }

    #[test]
    fn day_rounding_is_order_independent(
        (raw, order) in day_items().prop_flat_map(|raw| {
            let n = raw.len();
            (Just(raw), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
        }),
        rule in rounding(RoundingScope::Day),
    ) {
        let items = as_day_items(&raw);
        let permuted: Vec<DayItem<'_>> = order.iter().map(|&i| items[i].clone()).collect();
        let result = round_day(&items, &rule);
        let permuted_result = round_day(&permuted, &rule);
        let expected: Vec<i64> = order.iter().map(|&i| result[i]).collect();
        prop_assert_eq!(permuted_result, expected);
    }

    #[test]
    fn day_rounding_conserves_the_rounded_total(raw in day_items(), rule in rounding(RoundingScope::Day)) {
        let items = as_day_items(&raw);
        let result = round_day(&items, &rule);
        prop_assert_eq!(result.len(), items.len());
        prop_assert!(result.iter().all(|&m| m >= 0));
        let pooled_secs: i64 = items.iter().filter(|i| !i.already_rounded).map(|i| i.secs.max(0)).sum();
        let pooled_minutes: i64 = items.iter().zip(&result).filter(|(i, _)| !i.already_rounded).map(|(_, m)| m).sum();
        let is_day_rule = rule.applies == RoundingWhere::Timepost;
        if is_day_rule {
            prop_assert_eq!(pooled_minutes, to_minutes(pooled_secs, &rule, false));
        }
        for (item, m) in items.iter().zip(&result) {
            if item.already_rounded {
                prop_assert_eq!(*m, to_minutes(item.secs, &rule, true));
            }
        }
    }
}

// ---------------------------------------------------------------- overtime

fn monday() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default()
}

fn hours() -> impl Strategy<Value = Decimal> {
    // 0 to 16 hours in quarter hours, sometimes with odd decimals.
    prop_oneof![
        (0i64..=64).prop_map(|q| Decimal::new(q * 25, 2)),
        (0i64..=16_000).prop_map(|m| Decimal::new(m, 3)),
    ]
}

fn tier() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("overtime".to_string()),
        Just("double_time".to_string()),
        Just("triple".to_string()),
    ]
}

fn policy() -> impl Strategy<Value = OvertimePolicy> {
    let random = (
        proptest::option::of((0i64..=60).prop_map(Decimal::from)),
        tier(),
        proptest::collection::vec(
            (hours(), tier()).prop_map(|(over_hours, tier)| DailyThreshold { over_hours, tier }),
            0..4,
        ),
        proptest::option::of((tier(), hours(), tier()).prop_map(
            |(tier, over_hours, tier_after)| SeventhDayRule {
                tier,
                over_hours,
                tier_after,
            },
        )),
    )
        .prop_map(
            |(weekly_threshold_hours, weekly_tier, daily, seventh_day)| OvertimePolicy {
                weekly_threshold_hours,
                weekly_tier,
                daily,
                seventh_day,
                tiers: BTreeMap::new(),
            },
        );
    prop_oneof![
        Just(OvertimePolicy::california()),
        Just(OvertimePolicy::flsa()),
        random,
    ]
}

/// A worker-week. Keys come from a small pool, so duplicates occur; starts
/// collide now and then; a few minutes are zero or negative.
fn week_items() -> impl Strategy<Value = Vec<WorkItem>> {
    proptest::collection::vec(
        (
            0u32..12,
            0u64..7,
            proptest::option::of((0u32..6).prop_map(|h| h * 180)),
            prop_oneof![8 => 0i64..=720, 1 => Just(0i64), 1 => -60i64..0],
        ),
        0..24,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(id, day, start, minutes)| {
                let date = monday() + Days::new(day);
                WorkItem {
                    key: key(format!("e{id}")),
                    date,
                    start: start_on(date, start),
                    minutes,
                }
            })
            .collect()
    })
}

fn shuffled_week() -> impl Strategy<Value = (Vec<WorkItem>, Vec<WorkItem>)> {
    week_items().prop_flat_map(|items| {
        let shuffled = Just(items.clone()).prop_shuffle();
        (Just(items), shuffled)
    })
}

/// The item `split_week` keeps for each key.
fn kept(items: &[WorkItem]) -> BTreeMap<EntryKey, &WorkItem> {
    let mut out: BTreeMap<EntryKey, &WorkItem> = BTreeMap::new();
    for item in items {
        let replace = out
            .get(&item.key)
            .is_none_or(|k| (item.date, item.start, item.minutes) > (k.date, k.start, k.minutes));
        if replace {
            out.insert(item.key.clone(), item);
        }
    }
    out
}

proptest! {
    #[test]
    fn overtime_conserves_minutes(items in week_items(), policy in policy()) {
        let out = split_week(&items, &policy);
        let kept = kept(&items);
        prop_assert_eq!(out.len(), kept.len());
        let mut total_in = 0i64;
        let mut total_out = 0i64;
        for (key, item) in &kept {
            let split = &out[key];
            prop_assert_eq!(split.total(), item.minutes.max(0));
            prop_assert!(split.regular >= 0);
            prop_assert!(split.overtime.values().all(|&m| m > 0));
            total_in += item.minutes.max(0);
            total_out += split.total();
        }
        prop_assert_eq!(total_in, total_out);
    }

    #[test]
    fn overtime_is_order_independent((items, shuffled) in shuffled_week(), policy in policy()) {
        prop_assert_eq!(split_week(&items, &policy), split_week(&shuffled, &policy));
    }

    #[test]
    fn overtime_is_order_independent_for_reversal(items in week_items(), policy in policy()) {
        let reversed: Vec<WorkItem> = items.iter().rev().cloned().collect();
        prop_assert_eq!(split_week(&items, &policy), split_week(&reversed, &policy));
    }

    #[test]
    fn zero_minute_items_change_nothing_for_others(
        items in week_items(),
        extra in proptest::collection::vec((0u64..7, proptest::option::of(0u32..1440), -60i64..=0), 1..6),
        policy in policy(),
    ) {
        let before = split_week(&items, &policy);
        let mut more = items.clone();
        for (i, (day, start, minutes)) in extra.into_iter().enumerate() {
            let date = monday() + Days::new(day);
            more.push(WorkItem { key: key(format!("zero{i}")), date, start: start_on(date, start), minutes });
        }
        let after = split_week(&more, &policy);
        for (key, split) in &before {
            prop_assert_eq!(after.get(key), Some(split));
        }
        for (key, split) in &after {
            if !before.contains_key(key) {
                prop_assert_eq!(split, &Split::all_regular(0));
            }
        }
    }
}

// ---------------------------------------------------------------- currency

fn cur(code: &str) -> Currency {
    code.parse()
        .unwrap_or_else(|_| panic!("bad test currency {code}"))
}

fn eur_to_usd(rate: Decimal) -> CurrencyRules {
    CurrencyRules {
        home: cur("USD"),
        conversion_point: ConversionPoint::Timepost,
        rates: vec![ExchangeRate {
            date: monday(),
            from: cur("EUR"),
            to: cur("USD"),
            rate,
        }],
    }
}

proptest! {
    #[test]
    fn conversion_keeps_amounts_to_the_cent(
        // Amounts with up to 4 decimal places, up to ten million, either sign.
        amount in (-100_000_000_000i64..100_000_000_000).prop_map(|n| Decimal::new(n, 4)),
        // Rates from 0.000001 to 1000 with up to 6 decimal places.
        rate in (1i64..1_000_000_000).prop_map(|n| Decimal::new(n, 6)),
        days_after in 0u64..400,
    ) {
        let rules = eur_to_usd(rate);
        let date = monday() + Days::new(days_after);
        let converted = rules.convert(&Money::new(amount, cur("EUR")), date);
        let converted = converted.ok().flatten();
        prop_assert!(converted.is_some());
        if let Some(c) = converted {
            prop_assert!(c.amount.amount.scale() <= 2);
            prop_assert_eq!(c.amount.currency, cur("USD"));
            prop_assert_eq!(c.rate, rate);
            prop_assert_eq!(c.rate_date, monday());
            let exact = amount * rate;
            prop_assert!((c.amount.amount - exact).abs() <= Decimal::new(5, 3));
        }
    }

    #[test]
    fn conversion_at_rate_one_keeps_the_amount(cents in -10_000_000_000i64..10_000_000_000) {
        let amount = Decimal::new(cents, 2);
        let rules = eur_to_usd(Decimal::ONE);
        let converted = rules.convert(&Money::new(amount, cur("EUR")), monday()).ok().flatten();
        prop_assert_eq!(converted.map(|c| c.amount.amount), Some(amount));
    }

    #[test]
    fn inverse_rates_also_keep_cents(
        cents in -10_000_000_000i64..10_000_000_000,
        rate in (1i64..1_000_000_000).prop_map(|n| Decimal::new(n, 6)),
    ) {
        let rules = CurrencyRules {
            home: cur("EUR"),
            ..eur_to_usd(rate)
        };
        let amount = Decimal::new(cents, 2);
        let result = rules.convert(&Money::new(amount, cur("USD")), monday());
        // Either a rate applies (its inverse) or the inverse rounded to zero.
        if let Ok(Some(c)) = result {
            prop_assert!(c.amount.amount.scale() <= 2);
            prop_assert!((c.amount.amount - amount * c.rate).abs() <= Decimal::new(5, 3));
        }
    }
}
