//! The text form of an entry key (what every store keys entries by) is
//! injective: two different identities never share a key.

use proptest::prelude::*;

use timepost_core::model::{EntryKey, Source};

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Clockify),
        Just(Source::Toggl),
        Just(Source::Harvest),
        Just(Source::Csv),
    ]
}

/// Parts built mostly from the characters that matter (`:`, `%`, the
/// escapes' letters), so near-collisions are tried, not just random text.
fn part() -> impl Strategy<Value = String> {
    prop_oneof!["[:%3Aa2-5]{0,8}", any::<String>(),]
}

fn key() -> impl Strategy<Value = EntryKey> {
    (
        source(),
        part(),
        part().prop_filter("an id is never empty", |p| !p.is_empty()),
    )
        .prop_map(|(s, w, i)| EntryKey::new(s, w, i))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn distinct_identities_never_share_a_key(a in key(), b in key()) {
        prop_assert_eq!(a == b, a.to_string() == b.to_string());
    }

    #[test]
    fn a_key_reads_back_as_itself(k in key()) {
        prop_assert_eq!(k.to_string().parse::<EntryKey>(), Ok(k));
    }

    /// Moving a `:` from the end of the workspace to the start of the id
    /// (the collision the unescaped form had) gives another key.
    #[test]
    fn the_colon_cannot_move_between_parts(s in source(), w in "[a-z:%]{0,6}", i in "[a-z:%]{1,6}") {
        let a = EntryKey::new(s, format!("{w}:x"), i.clone());
        let b = EntryKey::new(s, w, format!("x:{i}"));
        prop_assert_ne!(a.to_string(), b.to_string());
    }
}
