//! Many workers settling entries of the same worker-weeks at once: each
//! task is its own `Engine` (its own claim owner) on a shared store, as
//! separate `sync` Lambda instances or the local worker's tasks are. The
//! messages are taken in a shuffled order; a busy entry or week, a lost
//! revision race or a transient ledger failure puts the message back, as
//! the worker's retry does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use timepost::engine::{Engine, EngineError};
use timepost::ledger::{Ledger, LedgerError, LedgerRequest, RecordRef};
use timepost::model::NormalisedEntry;
use timepost::ports::{QueueMessage, StoreError, WorkerWeek};

use crate::kit::E;

/// Three worker-weeks (two users, one of them over two weeks), six or
/// seven days of 7–9 h each so weekly overtime is split, days of two
/// entries, an edited entry and one re-dated into the next week.
pub fn scenario() -> Vec<NormalisedEntry> {
    let mut out = Vec::new();
    let days = ["02", "03", "04", "05", "06", "07"];
    for (user, week) in [("u-ann", 0u32), ("u-bob", 0), ("u-bob", 7)] {
        for (i, day) in days.iter().enumerate() {
            let date = format!("2026-03-{:02}", day.parse::<u32>().unwrap_or(2) + week);
            let id = |part: &str| format!("{user}-{week}-{i}{part}");
            let end = ["13:00", "14:00", "12:00"][i % 3];
            out.push(E::new(&id("a"), user, &date, "06:00", "09:00").build());
            out.push(E::new(&id("b"), user, &date, "09:00", end).build());
        }
    }
    // An edit (longer) and a re-dating into the next week, as later versions.
    out.push(
        E::new("u-ann-0-1b", "u-ann", "2026-03-03", "09:00", "15:30")
            .updated("2026-03-10T00:00:00Z")
            .build(),
    );
    out.push(
        E::new("u-bob-0-5b", "u-bob", "2026-03-10", "09:00", "12:00")
            .updated("2026-03-11T00:00:00Z")
            .build(),
    );
    out
}

pub fn messages(entries: &[NormalisedEntry]) -> Vec<QueueMessage> {
    entries
        .iter()
        .map(|e| QueueMessage::Entry {
            entry: Box::new(e.clone()),
            received_at: Utc::now(),
        })
        .collect()
}

/// A deterministic shuffle (xorshift), so a failing seed can be replayed.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = usize::try_from(x % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

/// Run `messages` through `engines` (one task each), every message until
/// it is settled. Panics on an error no retry can fix, or when a message
/// is still failing after many tries.
pub async fn race(engines: Vec<Arc<Engine>>, messages: Vec<QueueMessage>) {
    let queue: Arc<Mutex<VecDeque<(QueueMessage, u32)>>> =
        Arc::new(Mutex::new(messages.into_iter().map(|m| (m, 0)).collect()));
    let mut tasks = Vec::new();
    for (n, engine) in engines.into_iter().enumerate() {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some((message, tries)) = next else { return };
                match engine.handle(&message, &format!("race-{n}")).await {
                    Ok(_) => {}
                    Err(
                        EngineError::Busy(_)
                        | EngineError::Store(StoreError::Conflict(_))
                        | EngineError::LedgerUnavailable { .. },
                    ) if tries < 500 => {
                        queue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push_back((message, tries + 1));
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(e) => panic!("worker {n}: {e} after {tries} retries"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker task");
    }
}

/// A ledger that answers after a short pause (1–4 ms, by request), so
/// concurrent settles overlap the way they do against a real API.
pub struct Paced(pub Arc<dyn Ledger>);

#[async_trait]
impl Ledger for Paced {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn apply(&self, request: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError> {
        let pause = request.idempotency_key.bytes().map(u64::from).sum::<u64>() % 4 + 1;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        self.0.apply(request).await
    }
}

/// (worker-week, tier) → minutes, from the ledger's (entry key, tier,
/// minutes) records and each entry's final version.
pub fn minutes_by_week_and_tier(
    final_versions: &BTreeMap<String, NormalisedEntry>,
    records: &[(String, String, i64)],
) -> BTreeMap<(String, String), i64> {
    let mut m = BTreeMap::new();
    for (key, tier, minutes) in records {
        let week = final_versions
            .get(key)
            .map(|e| {
                let w = WorkerWeek::of(e);
                format!("{}:{}", w.user_id, w.week_start)
            })
            .unwrap_or_else(|| format!("unknown entry {key}"));
        *m.entry((week, tier.clone())).or_default() += minutes;
    }
    m
}

/// Each entry's newest version, by key text.
pub fn final_versions(entries: &[NormalisedEntry]) -> BTreeMap<String, NormalisedEntry> {
    let mut m: BTreeMap<String, NormalisedEntry> = BTreeMap::new();
    for e in entries {
        let k = e.key.to_string();
        if m.get(&k).is_none_or(|old| old.version < e.version) {
            m.insert(k, e.clone());
        }
    }
    m
}
