//! Property tests through the whole engine: arrival order never changes
//! what ends up in the books.

use std::collections::BTreeMap;

use proptest::prelude::*;
use timepost::ports::EntryStore;
use timepost_tests::kit::{deliver, sandbox_stack, E};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn books(s: &timepost::stack::LocalStack) -> BTreeMap<(String, String), i64> {
    let mut m = BTreeMap::new();
    for r in s.sandbox.records().unwrap() {
        *m.entry((r.entry_key, r.line.tier)).or_default() += r.line.minutes;
    }
    m
}

/// Versions of one entry: each a later edit with a different end time.
fn versions(n: usize, ends: &[u32]) -> Vec<timepost::model::NormalisedEntry> {
    (0..n)
        .map(|i| {
            let end = format!("{:02}:{:02}", 10 + ends[i] / 60 % 8, ends[i] % 60);
            let b = E::new("v", "u-ann", "2026-03-03", "09:00", &end)
                .updated(&format!("2026-03-0{}T00:00:00Z", 3 + i));
            if i == n - 1 && ends[i].is_multiple_of(5) {
                b.deleted().build()
            } else {
                b.build()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any permutation and duplication of an entry's versions converges to
    /// the state and the books of in-order delivery.
    #[test]
    fn versions_converge_whatever_the_order(
        n in 1usize..5,
        ends in proptest::collection::vec(0u32..480, 5),
        order in proptest::collection::vec(0usize..100, 1..10),
    ) {
        let vs = versions(n, &ends);
        let mut arrival: Vec<_> = order.iter().map(|i| vs[i % n].clone()).collect();
        arrival.extend(vs.iter().cloned()); // every version arrives at least once
        rt().block_on(async {
            let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (a, b) = (sandbox_stack(d1.path()).await, sandbox_stack(d2.path()).await);
            deliver(&a, &vs).await;
            deliver(&b, &arrival).await;
            let key = vs[0].key.clone();
            let (sa, sb) = (a.store.get(&key).await.unwrap().unwrap(), b.store.get(&key).await.unwrap().unwrap());
            prop_assert_eq!(&sa.entry, &sb.entry);
            prop_assert_eq!(sa.status(), sb.status());
            prop_assert_eq!(&sa.posted_lines, &sb.posted_lines);
            prop_assert_eq!(books(&a).await, books(&b).await);
            Ok(())
        })?;
    }

    /// Any arrival order of a worker-week's entries ends in the same
    /// regular / overtime split, and conserves the minutes.
    #[test]
    fn week_split_is_independent_of_arrival_order(
        hours in proptest::collection::vec((0usize..7, 1u32..13), 3..9),
        perm in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..9).collect();
            for i in (1..v.len()).rev() { v.swap(i, rng.random_range(0..=i)); }
            v
        }),
    ) {
        let entries: Vec<_> = hours
            .iter()
            .enumerate()
            .map(|(i, (day, h))| {
                let date = format!("2026-03-{:02}", 2 + day);
                let start = if i % 2 == 0 { "06:00" } else { "12:00" };
                let end = format!("{:02}:00", if i % 2 == 0 { 6 + h } else { (12 + h).min(23) });
                E::new(&format!("w{i}"), "u-ann", &date, start, &end).build()
            })
            .collect();
        let shuffled: Vec<_> = perm.iter().filter(|i| **i < entries.len()).map(|i| entries[*i].clone()).collect();
        rt().block_on(async {
            let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (a, b) = (sandbox_stack(d1.path()).await, sandbox_stack(d2.path()).await);
            deliver(&a, &entries).await;
            deliver(&b, &shuffled).await;
            let (ba, bb) = (books(&a).await, books(&b).await);
            prop_assert_eq!(&ba, &bb);
            let worked: i64 = entries.iter().map(|e| e.duration_secs / 60).sum();
            prop_assert_eq!(ba.values().sum::<i64>(), worked);
            Ok(())
        })?;
    }
}
