//! Worker-week claims: only one worker plans a given worker-week at a time.
//!
//! The overtime split is a function of the whole week, so two workers
//! settling two entries of one week at once could each plan the week
//! without the other's new entry and post the wrong tiers. The engine
//! therefore claims the week (and the old week of an entry that moved)
//! before the entry, through the same expiring `EntryStore::claim` as
//! entries: the week's claim is held under a synthetic entry key, so the
//! port and its adapters stay as they are, and a crashed worker's week
//! claim lapses by itself like any other.

use std::collections::BTreeSet;

use crate::model::EntryKey;
use crate::ports::WorkerWeek;

/// Starts the id of every week claim key. U+001F (the ASCII unit
/// separator) appears in no tracker's ids, so a week's claim can never be
/// an entry's.
const WEEK_MARK: char = '\u{1f}';

/// The key the claim on `week` is held under.
pub fn week_claim_key(week: &WorkerWeek) -> EntryKey {
    EntryKey::new(
        week.source,
        week.workspace.clone(),
        format!(
            "{WEEK_MARK}week{WEEK_MARK}{}{WEEK_MARK}{}",
            week.user_id, week.week_start
        ),
    )
}

/// What a claim key stands for, in words: "entry toggl:555:7" or "the week
/// of tracker user 101 (toggl:555) starting 2026-03-02".
pub fn describe_claim(key: &EntryKey) -> String {
    let mut parts = key.id.split(WEEK_MARK);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some("week"), Some(user), Some(start)) => format!(
            "the week of tracker user {user} ({}:{}) starting {start}",
            key.source, key.workspace
        ),
        _ => format!("entry {key}"),
    }
}

/// The worker-weeks a settle holds the claims of. Weeks are always claimed
/// in this set's (sorted) order, so two workers that need the same two
/// weeks contend for the first one instead of each holding one.
#[derive(Debug, Clone, Default)]
pub struct HeldWeeks(BTreeSet<WorkerWeek>);

impl HeldWeeks {
    pub fn new(weeks: BTreeSet<WorkerWeek>) -> Self {
        Self(weeks)
    }

    /// In claiming order.
    pub fn iter(&self) -> impl Iterator<Item = &WorkerWeek> {
        self.0.iter()
    }

    pub fn contains(&self, week: &WorkerWeek) -> bool {
        self.0.contains(week)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    #[test]
    fn a_week_claim_reads_as_the_week_in_words() {
        let w = week("101", "2026-03-02");
        let text = describe_claim(&week_claim_key(&w));
        assert!(text.starts_with("the week of tracker user 101 ("), "{text}");
        assert!(text.ends_with("starting 2026-03-02"), "{text}");
        assert!(!text.contains(WEEK_MARK));
        let entry = EntryKey::new(Source::Toggl, "555", "7");
        assert_eq!(describe_claim(&entry), format!("entry {entry}"));
    }

    fn week(user: &str, start: &str) -> WorkerWeek {
        WorkerWeek {
            source: Source::Csv,
            workspace: "ws".into(),
            user_id: user.into(),
            week_start: start.parse().expect("date"),
        }
    }

    #[test]
    fn week_keys_are_distinct_per_week_and_never_an_entry_id() {
        let a = week_claim_key(&week("u-ann", "2026-03-02"));
        assert_ne!(a, week_claim_key(&week("u-ann", "2026-03-09")));
        assert_ne!(a, week_claim_key(&week("u-bob", "2026-03-02")));
        assert_eq!(a, week_claim_key(&week("u-ann", "2026-03-02")));
        assert!(a.id.starts_with(WEEK_MARK));
        // The key survives its text form (what the stores key claims by).
        assert_eq!(a.to_string().parse::<EntryKey>(), Ok(a));
    }

    #[test]
    fn weeks_are_claimed_in_one_order_whatever_the_insertion_order() {
        let (x, y) = (week("u-ann", "2026-03-09"), week("u-ann", "2026-03-02"));
        let one = HeldWeeks::new(BTreeSet::from([x.clone(), y.clone()]));
        let two = HeldWeeks::new(BTreeSet::from([y, x]));
        assert!(one.iter().eq(two.iter()));
        assert_eq!(
            one.iter().next().map(|w| w.week_start.to_string()),
            Some("2026-03-02".to_string())
        );
    }
}
