//! The regular / overtime split of one worker-week.
//!
//! Overtime is a property of the worker's whole day and week, not of one
//! entry. [`split_week`] is a pure function of the *set* of the week's current
//! entries: it sorts them itself, so any arrival order of the same entries
//! gives the same split. The engine re-splits the week whenever an entry in it
//! changes and posts the difference (see docs/reference.md, "Overtime").

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::model::EntryKey;

/// An overtime tier: its pay multiplier. The tier's name is what the
/// `payroll_item` mapping table maps to a ledger payroll item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvertimeTier {
    pub multiplier: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyThreshold {
    /// Hours in one day beyond which minutes fall in `tier`.
    pub over_hours: Decimal,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeventhDayRule {
    /// Tier for the first `over_hours` of the seventh consecutive day.
    pub tier: String,
    pub over_hours: Decimal,
    /// Tier for the minutes beyond `over_hours` on that day.
    pub tier_after: String,
}

/// One jurisdiction's overtime policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvertimePolicy {
    /// Regular hours in a week beyond which minutes fall in `weekly_tier`.
    #[serde(default)]
    pub weekly_threshold_hours: Option<Decimal>,
    #[serde(default = "default_weekly_tier")]
    pub weekly_tier: String,
    /// Daily thresholds, any order; the highest one exceeded wins.
    #[serde(default)]
    pub daily: Vec<DailyThreshold>,
    #[serde(default)]
    pub seventh_day: Option<SeventhDayRule>,
    /// Multipliers by tier name.
    #[serde(default)]
    pub tiers: BTreeMap<String, OvertimeTier>,
}

fn default_weekly_tier() -> String {
    "overtime".to_string()
}

/// One entry of a worker-week, with its already-rounded minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub key: EntryKey,
    pub date: NaiveDate,
    pub start: Option<DateTime<Utc>>,
    pub minutes: i64,
}

/// How one entry's minutes divide into regular time and overtime tiers.
/// `regular + sum(overtime)` always equals the entry's minutes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    pub regular: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overtime: BTreeMap<String, i64>,
}

impl Split {
    pub fn all_regular(minutes: i64) -> Self {
        Self {
            regular: minutes,
            overtime: BTreeMap::new(),
        }
    }
    pub fn total(&self) -> i64 {
        self.regular + self.overtime.values().sum::<i64>()
    }
}

/// The name of the regular (straight-time) tier.
pub const REGULAR: &str = "regular";

impl OvertimePolicy {
    /// The multiplier of a tier (1 for `"regular"` and for unknown tiers).
    pub fn multiplier(&self, tier: &str) -> Decimal {
        if tier == REGULAR {
            return Decimal::ONE;
        }
        self.tiers.get(tier).map_or(Decimal::ONE, |t| t.multiplier)
    }

    /// A ready-made California-like policy: weekly 40 h `"overtime"`; daily
    /// more than 8 h `"overtime"`, more than 12 h `"double_time"`; on the
    /// seventh consecutive day the first 8 h `"overtime"`, then
    /// `"double_time"`; multipliers overtime 1.5, double_time 2.0.
    pub fn california() -> Self {
        Self {
            weekly_threshold_hours: Some(Decimal::from(40)),
            weekly_tier: "overtime".to_string(),
            daily: vec![
                DailyThreshold {
                    over_hours: Decimal::from(8),
                    tier: "overtime".to_string(),
                },
                DailyThreshold {
                    over_hours: Decimal::from(12),
                    tier: "double_time".to_string(),
                },
            ],
            seventh_day: Some(SeventhDayRule {
                tier: "overtime".to_string(),
                over_hours: Decimal::from(8),
                tier_after: "double_time".to_string(),
            }),
            tiers: BTreeMap::from([
                (
                    "overtime".to_string(),
                    OvertimeTier {
                        multiplier: Decimal::new(15, 1),
                    },
                ),
                (
                    "double_time".to_string(),
                    OvertimeTier {
                        multiplier: Decimal::from(2),
                    },
                ),
            ]),
        }
    }

    /// A federal FLSA-like policy: weekly 40 h `"overtime"` at 1.5, nothing
    /// else.
    pub fn flsa() -> Self {
        Self {
            weekly_threshold_hours: Some(Decimal::from(40)),
            weekly_tier: "overtime".to_string(),
            daily: Vec::new(),
            seventh_day: None,
            tiers: BTreeMap::from([(
                "overtime".to_string(),
                OvertimeTier {
                    multiplier: Decimal::new(15, 1),
                },
            )]),
        }
    }
}

/// Split a worker-week's entries into regular and overtime minutes.
///
/// A pure function of the *set* of items: any permutation of `items` gives
/// the same map. Items are sorted internally by `(date, start, key)` (`None`
/// starts sort first).
///
/// * **Duplicate keys** keep one item: the greatest by
///   `(date, start, minutes)`; two items with the same key and the same
///   triple are identical, so the choice never depends on order.
/// * **Minutes <= 0** count as zero: such an item gets `Split::all_regular(0)`
///   and does not make its date a worked day.
/// * **Thresholds** are hours, turned into minutes as `hours * 60` rounded
///   (half away from zero); negative thresholds count as 0.
/// * **Daily**: per date, minutes are consumed in entry order; the first
///   `min(daily thresholds)` minutes are regular, a minute beyond a threshold
///   falls in the tier of the highest threshold it exceeds (equal thresholds:
///   the tier name that sorts last wins). An entry straddling a threshold is
///   split across tiers.
/// * **Seventh day**: if `seventh_day` is set and all seven dates Monday to
///   Sunday of an ISO week have worked minutes, then on that Sunday the first
///   `over_hours` go to `seventh_day.tier` and the rest to `tier_after`,
///   instead of the daily rule.
/// * **Weekly**: walking the entries in order, the cumulative *regular*
///   minutes (after the daily / seventh-day split, so daily overtime does not
///   count again: no pyramiding) beyond `weekly_threshold_hours` move to
///   `weekly_tier`.
///
/// Items are expected to lie in one ISO week; if they do not, the seventh-day
/// and weekly rules are applied to each ISO week on its own.
///
/// Invariants: one [`Split`] per distinct key; `split.total()` equals the
/// kept item's minutes (or 0 if they are negative); overtime maps hold only
/// tiers with minutes > 0.
pub fn split_week(items: &[WorkItem], policy: &OvertimePolicy) -> BTreeMap<EntryKey, Split> {
    let sorted = dedupe_and_sort(items);

    let daily_bands = daily_bands(policy);
    let seventh_bands = policy.seventh_day.as_ref().map(|rule| {
        vec![
            (0, Some(rule.tier.as_str())),
            (
                hours_to_minutes(rule.over_hours),
                Some(rule.tier_after.as_str()),
            ),
        ]
    });
    let weekly_threshold = policy.weekly_threshold_hours.map(hours_to_minutes);

    let worked: BTreeSet<NaiveDate> = sorted
        .iter()
        .filter(|item| item.minutes > 0)
        .map(|item| item.date)
        .collect();

    let mut out = BTreeMap::new();
    let mut day: Option<NaiveDate> = None;
    let mut day_minutes = 0i64;
    let mut week: Option<NaiveDate> = None;
    let mut week_regular = 0i64;

    for item in sorted {
        let minutes = item.minutes.max(0);
        if day != Some(item.date) {
            day = Some(item.date);
            day_minutes = 0;
        }
        let monday = monday_of(item.date);
        if week != Some(monday) {
            week = Some(monday);
            week_regular = 0;
        }

        let bands = match &seventh_bands {
            Some(bands) if is_seventh_day(item.date, &worked) => bands.as_slice(),
            _ => daily_bands.as_slice(),
        };
        let mut split = Split::default();
        allocate(day_minutes, minutes, bands, &mut split);
        day_minutes = day_minutes.saturating_add(minutes);

        if let Some(threshold) = weekly_threshold {
            let regular = split.regular;
            // Both are >= 0: no overflow.
            let fits = (threshold - week_regular).clamp(0, regular);
            week_regular = week_regular.saturating_add(regular);
            let moved = regular - fits;
            split.regular = fits;
            add(&mut split, Some(policy.weekly_tier.as_str()), moved);
        }

        out.insert(item.key.clone(), split);
    }
    out
}

/// One band of a day: minutes at or after `.0` (counted from the start of the
/// day) fall in tier `.1` (`None` is regular time), until the next band.
type Band<'a> = (i64, Option<&'a str>);

/// Keep one item per key (the greatest by `(date, start, minutes)`) and sort
/// by `(date, start, key)`.
fn dedupe_and_sort(items: &[WorkItem]) -> Vec<&WorkItem> {
    let mut by_key: BTreeMap<&EntryKey, &WorkItem> = BTreeMap::new();
    for item in items {
        match by_key.entry(&item.key) {
            Entry::Vacant(slot) => {
                slot.insert(item);
            }
            Entry::Occupied(mut slot) => {
                let kept = slot.get();
                if (item.date, item.start, item.minutes) > (kept.date, kept.start, kept.minutes) {
                    slot.insert(item);
                }
            }
        }
    }
    let mut sorted: Vec<&WorkItem> = by_key.into_values().collect();
    sorted.sort_by(|a, b| (a.date, a.start, &a.key).cmp(&(b.date, b.start, &b.key)));
    sorted
}

/// The daily bands of a policy, ascending: regular from 0, then one band per
/// threshold. Equal thresholds sort by tier name, so the last name wins.
fn daily_bands(policy: &OvertimePolicy) -> Vec<Band<'_>> {
    let mut thresholds: Vec<Band<'_>> = policy
        .daily
        .iter()
        .map(|t| (hours_to_minutes(t.over_hours), Some(t.tier.as_str())))
        .collect();
    thresholds.sort();
    let mut bands = vec![(0, None)];
    bands.extend(thresholds);
    bands
}

/// Hand out `minutes` minutes that start `day_minutes` into the day to the
/// bands they fall in. Every minute is handed out, whatever the bands say.
fn allocate(day_minutes: i64, minutes: i64, bands: &[Band<'_>], split: &mut Split) {
    let mut position = day_minutes.max(0);
    let mut left = minutes.max(0);
    while left > 0 {
        // The band holding `position`: the last one starting at or before it.
        let Some(index) = bands.iter().rposition(|(from, _)| *from <= position) else {
            add(split, None, left);
            return;
        };
        let tier = bands[index].1;
        // The next band starts after `position`, so `take > 0`.
        let take = match bands.get(index + 1) {
            Some((next, _)) => left.min(next - position),
            None => left,
        };
        add(split, tier, take);
        position = position.saturating_add(take);
        left -= take;
    }
}

/// Add minutes to a tier of a split (`None` is regular); zero adds nothing,
/// so overtime maps only hold tiers with minutes.
fn add(split: &mut Split, tier: Option<&str>, minutes: i64) {
    if minutes <= 0 {
        return;
    }
    match tier {
        None => split.regular = split.regular.saturating_add(minutes),
        Some(name) => {
            let slot = split.overtime.entry(name.to_string()).or_insert(0);
            *slot = slot.saturating_add(minutes);
        }
    }
}

/// Hours to whole minutes: `hours * 60` rounded half away from zero;
/// negative hours are 0, hours too large for an `i64` are `i64::MAX`.
fn hours_to_minutes(hours: Decimal) -> i64 {
    if hours <= Decimal::ZERO {
        return 0;
    }
    hours
        .checked_mul(Decimal::from(60))
        .map(|m| m.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero))
        .and_then(|m| i64::try_from(m).ok())
        .unwrap_or(i64::MAX)
}

/// Monday of the ISO week of `date` (the date itself at the very start of
/// the calendar, where there is no Monday before it).
fn monday_of(date: NaiveDate) -> NaiveDate {
    let back = u64::from(date.weekday().num_days_from_monday());
    date.checked_sub_days(Days::new(back)).unwrap_or(date)
}

/// Is `date` the seventh consecutive worked day of its week: a Sunday whose
/// whole week, Monday to Sunday, has worked minutes on every date?
fn is_seventh_day(date: NaiveDate, worked: &BTreeSet<NaiveDate>) -> bool {
    if date.weekday() != Weekday::Sun {
        return false;
    }
    (0..7u64).all(|back| {
        date.checked_sub_days(Days::new(back))
            .is_some_and(|d| worked.contains(&d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    /// Monday 2 March 2026.
    fn monday() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default()
    }

    fn day(offset: u64) -> NaiveDate {
        monday() + Days::new(offset)
    }

    fn item(id: &str, date: NaiveDate, hour: Option<u32>, minutes: i64) -> WorkItem {
        WorkItem {
            key: EntryKey::new(Source::Csv, "ws", id),
            date,
            start: hour.and_then(|h| date.and_hms_opt(h, 0, 0).map(|t| t.and_utc())),
            minutes,
        }
    }

    fn key(id: &str) -> EntryKey {
        EntryKey::new(Source::Csv, "ws", id)
    }

    fn split(regular: i64, overtime: &[(&str, i64)]) -> Split {
        Split {
            regular,
            overtime: overtime.iter().map(|(t, m)| (t.to_string(), *m)).collect(),
        }
    }

    /// Sum of all splits' regular minutes and of each tier.
    fn totals(map: &BTreeMap<EntryKey, Split>) -> Split {
        let mut total = Split::default();
        for s in map.values() {
            add(&mut total, None, s.regular);
            for (tier, m) in &s.overtime {
                add(&mut total, Some(tier), *m);
            }
        }
        total
    }

    #[test]
    fn nine_hour_day_is_eight_regular_and_one_overtime() {
        let out = split_week(
            &[item("a", day(0), Some(9), 540)],
            &OvertimePolicy::california(),
        );
        assert_eq!(out[&key("a")], split(480, &[("overtime", 60)]));
    }

    #[test]
    fn thirteen_hour_day_reaches_double_time() {
        let out = split_week(
            &[item("a", day(0), Some(6), 780)],
            &OvertimePolicy::california(),
        );
        assert_eq!(
            out[&key("a")],
            split(480, &[("overtime", 240), ("double_time", 60)])
        );
    }

    #[test]
    fn five_nine_hour_days_are_forty_regular_and_five_daily_overtime() {
        let items: Vec<WorkItem> = (0..5)
            .map(|d| item(&format!("e{d}"), day(d), Some(9), 540))
            .collect();
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(totals(&out), split(2400, &[("overtime", 300)]));
    }

    #[test]
    fn six_eight_hour_days_are_forty_regular_and_eight_weekly_overtime() {
        let items: Vec<WorkItem> = (0..6)
            .map(|d| item(&format!("e{d}"), day(d), Some(9), 480))
            .collect();
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(totals(&out), split(2400, &[("overtime", 480)]));
        assert_eq!(out[&key("e5")], split(0, &[("overtime", 480)]));
    }

    #[test]
    fn seventh_consecutive_day_uses_its_own_tiers() {
        // Six 4 h days, then a 10 h Sunday: all seven dates worked.
        let mut items: Vec<WorkItem> = (0..6)
            .map(|d| item(&format!("e{d}"), day(d), Some(9), 240))
            .collect();
        items.push(item("sun", day(6), Some(9), 600));
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(
            out[&key("sun")],
            split(0, &[("overtime", 480), ("double_time", 120)])
        );
        // Without a Saturday the Sunday is an ordinary day.
        items.retain(|i| i.key != key("e5"));
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(out[&key("sun")], split(480, &[("overtime", 120)]));
    }

    #[test]
    fn a_zero_minute_day_does_not_count_as_worked() {
        let mut items: Vec<WorkItem> = (0..6)
            .map(|d| item(&format!("e{d}"), day(d), Some(9), 240))
            .collect();
        items.push(item("sun", day(6), Some(9), 0));
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(out[&key("sun")], Split::all_regular(0));
    }

    #[test]
    fn an_entry_straddling_thresholds_is_split() {
        let items = [
            item("morning", day(0), Some(6), 420),
            item("evening", day(0), Some(14), 360),
        ];
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(out[&key("morning")], split(420, &[]));
        // 7 h in: 1 h regular, 4 h overtime (8-12 h), 1 h double time.
        assert_eq!(
            out[&key("evening")],
            split(60, &[("overtime", 240), ("double_time", 60)])
        );
    }

    #[test]
    fn weekly_threshold_straddled_mid_entry() {
        let items: Vec<WorkItem> = (0..5)
            .map(|d| item(&format!("e{d}"), day(d), None, 540))
            .collect();
        let out = split_week(&items, &OvertimePolicy::flsa());
        assert_eq!(out[&key("e3")], split(540, &[]));
        // 4 x 9 h = 36 h: 4 h of the fifth day fit under 40 h.
        assert_eq!(out[&key("e4")], split(240, &[("overtime", 300)]));
        assert_eq!(totals(&out), split(2400, &[("overtime", 300)]));
    }

    #[test]
    fn flsa_forty_five_hours_is_forty_and_five() {
        let items = [
            item("a", day(0), Some(8), 1500),
            item("b", day(1), Some(8), 1200),
        ];
        let out = split_week(&items, &OvertimePolicy::flsa());
        assert_eq!(out[&key("a")], split(1500, &[]));
        assert_eq!(out[&key("b")], split(900, &[("overtime", 300)]));
    }

    #[test]
    fn entries_are_ordered_by_start_with_none_first() {
        let items = [
            item("late", day(0), Some(13), 300),
            item("untimed", day(0), None, 300),
        ];
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(out[&key("untimed")], split(300, &[]));
        assert_eq!(out[&key("late")], split(180, &[("overtime", 120)]));
    }

    #[test]
    fn duplicate_keys_keep_the_greatest_item() {
        let items = [
            item("a", day(0), Some(9), 600),
            item("a", day(0), Some(9), 300),
        ];
        let out = split_week(&items, &OvertimePolicy::california());
        assert_eq!(out.len(), 1);
        assert_eq!(out[&key("a")], split(480, &[("overtime", 120)]));
        let reversed: Vec<WorkItem> = items.iter().rev().cloned().collect();
        assert_eq!(split_week(&reversed, &OvertimePolicy::california()), out);
    }

    #[test]
    fn negative_minutes_are_zero() {
        let out = split_week(
            &[item("a", day(0), None, -30)],
            &OvertimePolicy::california(),
        );
        assert_eq!(out[&key("a")], Split::all_regular(0));
    }

    #[test]
    fn no_policy_means_all_regular() {
        let policy = OvertimePolicy {
            weekly_threshold_hours: None,
            weekly_tier: "overtime".into(),
            daily: Vec::new(),
            seventh_day: None,
            tiers: BTreeMap::new(),
        };
        let out = split_week(&[item("a", day(0), None, 2000)], &policy);
        assert_eq!(out[&key("a")], Split::all_regular(2000));
    }

    #[test]
    fn extreme_values_do_not_panic_and_conserve() {
        let policy = OvertimePolicy {
            weekly_threshold_hours: Some(Decimal::MAX),
            weekly_tier: "w".into(),
            daily: vec![DailyThreshold {
                over_hours: Decimal::new(-5, 0),
                tier: "d".into(),
            }],
            seventh_day: None,
            tiers: BTreeMap::new(),
        };
        let items = [
            item("a", day(0), None, i64::MAX),
            item("b", day(0), Some(1), i64::MAX),
        ];
        let out = split_week(&items, &policy);
        assert_eq!(out[&key("a")].total(), i64::MAX);
        assert_eq!(out[&key("b")].total(), i64::MAX);
        let edge = [
            item("a", NaiveDate::MIN, None, 5),
            item("b", NaiveDate::MAX, None, 5),
        ];
        let out = split_week(&edge, &OvertimePolicy::california());
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn thresholds_round_to_whole_minutes() {
        assert_eq!(hours_to_minutes(Decimal::new(8, 0)), 480);
        assert_eq!(hours_to_minutes(Decimal::new(7999, 3)), 480);
        assert_eq!(hours_to_minutes(Decimal::new(-1, 0)), 0);
        assert_eq!(hours_to_minutes(Decimal::MAX), i64::MAX);
    }

    #[test]
    fn multipliers_come_from_the_tiers() {
        let ca = OvertimePolicy::california();
        assert_eq!(ca.multiplier("regular"), Decimal::ONE);
        assert_eq!(ca.multiplier("overtime"), Decimal::new(15, 1));
        assert_eq!(ca.multiplier("double_time"), Decimal::from(2));
        assert_eq!(ca.multiplier("unknown"), Decimal::ONE);
        assert_eq!(
            OvertimePolicy::flsa().multiplier("double_time"),
            Decimal::ONE
        );
    }
}
