//! The work-date index on the table: what a period read
//! (`EntryStore::by_work_dates`: reconciliation, the period export, the
//! accrual, a one-period archive snapshot, the purge plan) reads instead of
//! every state.
//!
//! Items, each naming the entry's partition in `entry`:
//! - `wdate#<YYYY-MM>` / `<work date>#<entry key>`: one per entry, in the
//!   month of its work date, so a month partition reads in (work date,
//!   key) order — the first part of a period read — and a page resumes
//!   after a (date, key).
//! - `wbook#<YYYY-MM>` / `<entry key>`: one per month holding a posted line
//!   dated other than the entry's work date (an entry re-dated after
//!   posting whose new version is not in the books yet) — the second part
//!   of a period read, in key order. Only such entries have them.
//!
//! The state item lists the index items it has (`pkeys`, JSON pairs), and
//! `put` adds and removes the difference in the state's transaction, as
//! for the mapped-key index (`keyindex`); reads are strongly consistent
//! queries of the month partitions, then a consistent batch read of the
//! states, re-checked against the period.
//!
//! A table whose entries were written before the index existed has no
//! items for them: until `timepost --backend aws store rebuild-key-index`
//! has given every state its items and written the marker item (`meta` /
//! `period-index`), a period read fails with an error that says to run it,
//! rather than miss entries. A table with no entry yet (a new stack's) gets
//! the marker before its first entry is written: `put` of a new entry asks
//! [`DynamoStore::period_index_ready`] once per process.

use std::collections::{BTreeSet, HashSet};

use chrono::{Datelike, NaiveDate};

use super::codec::{entry_pk, get_s, key, s, Item, SK};
use super::io::{batch_get, query_all};
use super::DynamoStore;
use crate::aws::backend;
use crate::model::EntryKey;
use crate::ports::{PeriodCursor, StoreResult};
use crate::state::EntryState;

/// The state item's attribute listing its index items (pk, sk).
pub(super) const PKEYS: &str = "pkeys";

/// The marker item: every state has its period-index items.
const MARKER: (&str, &str) = ("meta", "period-index");

/// One index item's key: (pk, sk).
pub(super) type PeriodKey = (String, String);

fn month(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn worked_pk(m: &str) -> String {
    format!("wdate#{m}")
}

fn booked_pk(m: &str) -> String {
    format!("wbook#{m}")
}

/// The index items a state belongs in, sorted.
pub(super) fn keys_of(st: &EntryState) -> Vec<PeriodKey> {
    let e = &st.entry;
    let text = e.key.to_string();
    let mut out = vec![(
        worked_pk(&month(e.work_date)),
        format!("{}#{text}", e.work_date),
    )];
    let booked: BTreeSet<String> = st
        .posted_lines
        .iter()
        .filter(|l| l.txn_date != e.work_date)
        .map(|l| month(l.txn_date))
        .collect();
    out.extend(booked.iter().map(|m| (booked_pk(m), text.clone())));
    out.sort();
    out
}

/// `keys` as the state item's `pkeys` value.
pub(super) fn encode(keys: &[PeriodKey]) -> StoreResult<String> {
    super::codec::json_attr(keys, "encode period keys")
}

/// The index items a stored state item has: None when it carries no
/// `pkeys` (written before the index existed, or moved by a re-key).
pub(super) fn stored(item: &Item) -> StoreResult<Option<Vec<PeriodKey>>> {
    super::codec::json_attr_of(item, PKEYS, "decode period keys")
}

/// The index items to add and the keys of those to remove when an entry's
/// index goes from `old` to `new`.
pub(super) fn diff(
    entry: &EntryKey,
    old: &[PeriodKey],
    new: &[PeriodKey],
) -> (Vec<Item>, Vec<Item>) {
    let add = new
        .iter()
        .filter(|k| !old.contains(k))
        .map(|(pk, sk)| {
            let mut item = key(pk.as_str(), sk.as_str());
            item.insert("entry".into(), s(entry_pk(entry)));
            item
        })
        .collect();
    let remove = old
        .iter()
        .filter(|k| !new.contains(k))
        .map(|(pk, sk)| key(pk.as_str(), sk.as_str()))
        .collect();
    (add, remove)
}

/// The months `from..=to` spans, earliest first.
fn months(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut out = Vec::new();
    if from > to {
        return out;
    }
    let mut d = from.with_day(1).unwrap_or(from);
    while d <= to {
        out.push(month(d));
        d = if d.month() == 12 {
            NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
        }
        .unwrap_or(NaiveDate::MAX);
    }
    out
}

impl DynamoStore {
    /// Whether every state has its period-index items: the marker item is
    /// there, or the table holds no entry yet (a new stack's table, which
    /// gets the marker now: every entry written from here on writes its
    /// items).
    pub(super) async fn period_index_ready(&self) -> StoreResult<bool> {
        if self.period_index.get().is_some() {
            return Ok(true);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(MARKER.0, MARKER.1)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("read the period index marker", e))?;
        if out.item.is_some() {
            let _ = self.period_index.set(());
            return Ok(true);
        }
        for status in crate::state::Status::ALL {
            let q = super::io::status_partition(self, *status).limit(1);
            if !query_all(q, "is there an entry", Some(1)).await?.is_empty() {
                return Ok(false);
            }
        }
        self.mark_period_index_ready().await?;
        let _ = self.period_index.set(());
        Ok(true)
    }

    /// Say that every state has its period-index items.
    pub(super) async fn mark_period_index_ready(&self) -> StoreResult<()> {
        super::io::put_plain(self, key(MARKER.0, MARKER.1), "period index marker").await
    }

    /// Say that some state lacks its work-date items (period reads refuse
    /// until the rebuild marks the index ready again).
    pub(super) async fn forget_period_index(&self) -> StoreResult<()> {
        super::io::delete_plain(self, key(MARKER.0, MARKER.1), "period index marker").await
    }

    /// The (sort key, entry partition) of the items of partition `pk`
    /// with sort key in `lo..=hi` other than `skip` (the cursor a page
    /// resumes after), at most `limit`, in order.
    async fn index_range(
        &self,
        pk: &str,
        lo: Option<&str>,
        hi: Option<&str>,
        skip: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        let ask = limit.saturating_add(usize::from(skip.is_some()));
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":p", s(pk))
            .consistent_read(true)
            .limit(i32::try_from(ask.clamp(1, 1000)).unwrap_or(1000));
        q = match (lo, hi) {
            (Some(l), Some(h)) => q
                .expression_attribute_values(":l", s(l))
                .expression_attribute_values(":h", s(h))
                .key_condition_expression("pk = :p AND #s BETWEEN :l AND :h"),
            (Some(l), None) => q
                .expression_attribute_values(":l", s(l))
                .key_condition_expression("pk = :p AND #s >= :l"),
            (None, Some(h)) => q
                .expression_attribute_values(":h", s(h))
                .key_condition_expression("pk = :p AND #s <= :h"),
            (None, None) => q.key_condition_expression("pk = :p"),
        };
        if lo.is_some() || hi.is_some() {
            q = q.expression_attribute_names("#s", SK);
        }
        let items = query_all(q, "query period index", Some(ask)).await?;
        let mut out = Vec::new();
        for i in &items {
            let sk = get_s(i, SK)?;
            if Some(sk) == skip {
                continue;
            }
            out.push((sk.to_string(), get_s(i, "entry")?.to_string()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn states_named(&self, mut pks: Vec<String>) -> StoreResult<Vec<EntryState>> {
        // A state named by two items (one left by a write that did not
        // finish) is read once: a batch read refuses duplicate keys.
        pks.sort();
        pks.dedup();
        let items = batch_get(self, pks.into_iter().map(|pk| key(pk, "state")).collect()).await?;
        items
            .iter()
            .map(|i| super::codec::decode::<EntryState>(i, "state"))
            .collect()
    }

    /// One page of a period read over the index (see
    /// `EntryStore::by_work_dates`).
    pub(super) async fn by_work_dates_now(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: Option<&PeriodCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        let within = |d: NaiveDate| d >= from && d <= to;
        let mut out: Vec<EntryState> = Vec::new();
        // Part one: worked in the period, by (work date, key).
        if after.is_none_or(|a| !a.booked_only) {
            let hi = format!("{to}#\u{10FFFF}");
            let mut resume = after.map(|a| format!("{}#{}", a.work_date, a.key));
            for m in months(from, to) {
                let lo = match &resume {
                    Some(r) if r.get(..7).is_some_and(|rm| rm > m.as_str()) => continue,
                    Some(r) => r.clone(),
                    None => format!("{from}#"),
                };
                let mut lo = lo;
                loop {
                    let want = limit - out.len();
                    if want == 0 {
                        return Ok(out);
                    }
                    let hits = self
                        .index_range(
                            &worked_pk(&m),
                            Some(&lo),
                            Some(&hi),
                            resume.as_deref(),
                            want,
                        )
                        .await?;
                    let Some(last) = hits.last().map(|h| h.0.clone()) else {
                        break;
                    };
                    let full = hits.len() >= want;
                    let named: HashSet<String> = hits.iter().map(|h| h.0.clone()).collect();
                    let mut page = self
                        .states_named(hits.into_iter().map(|h| h.1).collect())
                        .await?;
                    // Re-checked: an item left behind by a write that did
                    // not finish names a state that has moved on.
                    page.retain(|st| {
                        within(st.entry.work_date)
                            && named.contains(&format!("{}#{}", st.entry.work_date, st.entry.key))
                    });
                    page.sort_by_cached_key(|st| (st.entry.work_date, st.entry.key.to_string()));
                    out.extend(page);
                    lo = last.clone();
                    resume = Some(last);
                    if !full {
                        break;
                    }
                }
            }
        }
        // Part two: worked outside it, posted lines dated in it, by key.
        let mut found: BTreeSet<(String, String)> = BTreeSet::new();
        let after_key = after.filter(|a| a.booked_only).map(|a| a.key.clone());
        for m in months(from, to) {
            let hits = self
                .index_range(
                    &booked_pk(&m),
                    after_key.as_deref(),
                    None,
                    after_key.as_deref(),
                    usize::MAX,
                )
                .await?;
            found.extend(hits);
        }
        let mut rest = Vec::new();
        for chunk in found.into_iter().collect::<Vec<_>>().chunks(100) {
            if out.len() + rest.len() >= limit {
                break;
            }
            let mut page = self
                .states_named(chunk.iter().map(|(_, pk)| pk.clone()).collect())
                .await?;
            page.retain(|st| !within(st.entry.work_date) && PeriodCursor::touches(st, from, to));
            page.sort_by_cached_key(|st| st.entry.key.to_string());
            rest.extend(page);
        }
        out.extend(rest);
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_span_the_period_across_a_year_end() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            months(d("2025-11-30"), d("2026-02-01")),
            ["2025-11", "2025-12", "2026-01", "2026-02"]
        );
        assert_eq!(months(d("2026-03-05"), d("2026-03-05")), ["2026-03"]);
        assert!(months(d("2026-03-05"), d("2026-03-04")).is_empty());
    }
}
