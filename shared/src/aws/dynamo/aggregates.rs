//! The maintained aggregates (`crate::aggregates`) and KPI samples on the
//! table, kept in the same `TransactWriteItems` as the entry-state write
//! that changes them, so a dashboard view or a period report reads a few
//! Query pages of rows instead of one item per entry.
//!
//! Items:
//! - Aggregate rows: partition `agg#day#<yyyy-mm>` (day rows, a month to a
//!   partition), `agg#week#<yyyy>` and `agg#month#<yyyy>` (the year of the
//!   period's first day), `agg#year` (every year); sort key
//!   `<period>#<kind>#<status>#<project>#<employee>#<currency>#<0|1>#<original currency>`
//!   (text parts escaped as in every key), attributes the sums (`entries`,
//!   `lines`, `hours`, `amount`, ... as numbers; an absent one is 0). A
//!   period range of one grain is one Query per partition it touches: the
//!   year rows are one, the day rows of a month one, of 30 days two.
//! - KPI samples (medians cannot be summed): one small item per entry that
//!   has one, partition `kpi#<yyyy-mm>` of its work date, sort key
//!   `<work date>#<entry partition>`, attributes `resolve` / `latency`
//!   (minutes). The dashboard's KPI window (30 days, or the filter's
//!   period) is one Query per month it touches; a page holds up to 1 MB,
//!   some ten thousand samples.
//! - A write whose rows do not fit one transaction (below) parks the rest
//!   in a pending item, partition `aggpending`.
//!
//! Every entry-state write (`put`, the archive purge) reads the stored
//! state (a consistent GetItem), computes the difference of the old and
//! the new state's rows (`aggregates::contributions`, merged by key, rows
//! whose difference is zero dropped) and the sample to put or delete, and
//! writes them with the state — conditional on the revision it read — in
//! one `TransactWriteItems`: each row an `Update` with `ADD` of the
//! (signed) differences. `ADD` on a number attribute adds a negative value
//! by subtracting, and starts an absent attribute or item from 0
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html>,
//! `UpdateExpression`), so a row needs no read and no prior existence.
//! Numbers hold 38 significant digits
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html>),
//! more than a `Decimal`: the sums are exact; one that no longer fits a
//! `Decimal` on read is counted in `overflows`, never dropped. Either the
//! state and every row change, or nothing does
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>:
//! all succeed or all fail). The SDK gives each call an idempotency token
//! (`ClientRequestToken`) that it reuses on its own retries, so a retried
//! call that had succeeded is not applied twice; a later retry by the
//! caller fails the revision condition (a conflict), never adds twice. A
//! write whose rows did not change (most console and claim-free updates:
//! same status, date, project, worker, lines) stays one conditional
//! PutItem.
//!
//! A row whose sums went back to 0 is left in place (an `ADD` cannot delete
//! its item): readers skip it, `timepost --backend aws store
//! rebuild-aggregates` removes it.
//!
//! The 100-action limit (same page): a state write is the state, at most
//! two week-membership items and two sample items, plus its changed rows:
//! 4 grains × (one entry row + one row per distinct posted-line key) for
//! the old and the new state. An entry's lines share their date, party,
//! currency and billable flag, so a status change of a posted entry is
//! 8 to 16 rows; one with dozens of lines on distinct dates could pass
//! 100. Then the first transaction writes the state, the membership, the
//! samples, as many rows as fit and a pending item holding the remaining
//! rows in chunks with a cursor `next`; each later transaction applies one
//! chunk and advances the cursor conditionally on its old value (so a
//! chunk is applied exactly once, whoever runs it, however often it is
//! retried), and the last one deletes the pending item. The writer drains
//! its own right away; one left by a crash is drained by the next write
//! that overflows, or replaced by the rebuild.
//!
//! Why all four grains, day included: the dashboard reads day rows for a
//! filtered period and its KPI window, so dropping them would make those
//! views read entries again. The cost is write units: a transaction
//! writes each of its items twice (2 WCUs per KB,
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html>),
//! so a status change of an entry with one posted line (about 12 items)
//! costs ~24 WCUs instead of the ~2–3 of a lone PutItem. Measured request
//! counts are in docs/performance.md.
//!
//! The entry listing in key order (`page`) is gsi1, partition `entries`,
//! sort key the entry key's text: written on every state item (a table
//! written before it gets it from the rebuild).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::codec::{entry_pk, get_s, key, n, s, Item, PK, SK};
use super::DynamoStore;
use crate::aggregates::{self, AggKey, AggVals, Aggregates, Grain, RowKind, Sample};
use crate::aws::backend;
use crate::ports::{StoreError, StoreResult};
use crate::state::EntryState;

/// The partition of parked row changes of writes that overflowed.
pub(super) const PENDING_PK: &str = "aggpending";
/// TransactWriteItems takes at most 100 actions.
pub(super) const TX_LIMIT: usize = 100;
/// The gsi1 partition listing every entry state in key order.
pub(super) const ENTRIES_GSI1: &str = "entries";

/// The sum attributes of a row, in `AggVals` order.
const FIELDS: [&str; 10] = [
    "entries",
    "lines",
    "hours",
    "amount",
    "unmapped",
    "unmapped_code",
    "counted",
    "opened",
    "resolved",
    "overflows",
];

fn unpart(v: &str) -> String {
    v.replace("%23", "#").replace("%25", "%")
}

/// The partition of a row.
pub(super) fn row_pk(grain: Grain, period: NaiveDate) -> String {
    match grain {
        Grain::Day => format!("agg#day#{}", period.format("%Y-%m")),
        Grain::Week => format!("agg#week#{}", period.year()),
        Grain::Month => format!("agg#month#{}", period.year()),
        Grain::Year => "agg#year".into(),
    }
}

fn row_sk(k: &AggKey) -> String {
    format!(
        "{}#{}#{}#{}#{}#{}#{}#{}",
        k.period,
        k.kind.as_str(),
        k.status.as_str(),
        super::codec::part(&k.project),
        super::codec::part(&k.employee),
        super::codec::part(&k.currency),
        u8::from(k.billable),
        super::codec::part(&k.original_currency)
    )
}

fn row_key(k: &AggKey) -> Item {
    key(row_pk(k.grain, k.period), row_sk(k))
}

fn grain_of_pk(pk: &str) -> Option<Grain> {
    let rest = pk.strip_prefix("agg#")?;
    rest.split('#').next()?.parse().ok()
}

fn values(v: &AggVals) -> [(&'static str, String, bool); 10] {
    let i = |x: i64| (x.to_string(), x == 0);
    let d = |x: Decimal| (x.normalize().to_string(), x.is_zero());
    let all = [
        i(v.entries),
        i(v.lines),
        d(v.hours),
        d(v.amount),
        i(v.unmapped),
        i(v.unmapped_code),
        i(v.counted),
        i(v.opened),
        i(v.resolved),
        i(v.overflows),
    ];
    let mut out: [(&'static str, String, bool); 10] = Default::default();
    for (slot, (name, (text, zero))) in out.iter_mut().zip(FIELDS.iter().zip(all)) {
        *slot = (name, text, zero);
    }
    out
}

/// A stored row back to its key and sums (None: not a row).
fn decode_row(item: &Item) -> StoreResult<Option<(AggKey, AggVals)>> {
    let bad = |what: &str| StoreError::Backend(format!("corrupt aggregate row: {what}"));
    let pk = get_s(item, PK)?;
    let Some(grain) = grain_of_pk(pk) else {
        return Ok(None);
    };
    let sk = get_s(item, SK)?;
    let parts: Vec<&str> = sk.split('#').collect();
    let [period, kind, status, project, employee, currency, billable, ocur] = parts[..] else {
        return Err(bad(sk));
    };
    let key = AggKey {
        grain,
        period: period.parse().map_err(|_| bad(sk))?,
        kind: kind.parse::<RowKind>().map_err(|_| bad(sk))?,
        status: status.parse().map_err(|_| bad(sk))?,
        project: unpart(project),
        employee: unpart(employee),
        currency: unpart(currency),
        billable: billable == "1",
        original_currency: unpart(ocur),
    };
    let mut overflows = 0i64;
    let num = |name: &str| -> Option<&str> {
        match item.get(name) {
            Some(AttributeValue::N(v)) => Some(v.as_str()),
            _ => None,
        }
    };
    let int = |name: &str, overflows: &mut i64| -> i64 {
        match num(name) {
            None => 0,
            Some(t) => t.parse().unwrap_or_else(|_| {
                *overflows += 1;
                0
            }),
        }
    };
    let dec = |name: &str, overflows: &mut i64| -> Decimal {
        match num(name) {
            None => Decimal::ZERO,
            Some(t) => t
                .parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(t))
                .unwrap_or_else(|_| {
                    *overflows += 1;
                    Decimal::ZERO
                }),
        }
    };
    let mut v = AggVals {
        entries: int("entries", &mut overflows),
        lines: int("lines", &mut overflows),
        hours: dec("hours", &mut overflows),
        amount: dec("amount", &mut overflows),
        unmapped: int("unmapped", &mut overflows),
        unmapped_code: int("unmapped_code", &mut overflows),
        counted: int("counted", &mut overflows),
        opened: int("opened", &mut overflows),
        resolved: int("resolved", &mut overflows),
        overflows: int("overflows", &mut overflows),
    };
    v.overflows = v.overflows.saturating_add(overflows);
    Ok(Some((key, v)))
}

/// The full item of a row (the rebuild and the bundle load write these).
pub(super) fn row_item(k: &AggKey, v: &AggVals) -> Item {
    let mut item = row_key(k);
    for (name, text, zero) in values(v) {
        if !zero {
            item.insert(name.into(), AttributeValue::N(text));
        }
    }
    item
}

/// The row changes from state `old` to `new` (None: absent), merged by
/// key; rows that do not change are left out.
pub(super) fn delta(old: Option<&EntryState>, new: Option<&EntryState>) -> Vec<(AggKey, AggVals)> {
    let mut m = Aggregates::new();
    for (st, sign) in [(old, -1), (new, 1)] {
        if let Some(st) = st {
            for (k, v) in aggregates::contributions(st) {
                m.entry(k).or_default().add(&v, sign);
            }
        }
    }
    m.into_iter().filter(|(_, v)| !v.is_empty()).collect()
}

fn build_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    backend("aggregate write", e)
}

/// The `Update` adding `v` to row `k`.
pub(super) fn row_update(table: &str, k: &AggKey, v: &AggVals) -> StoreResult<TransactWriteItem> {
    let mut adds = Vec::new();
    let mut u = Update::builder()
        .table_name(table)
        .set_key(Some(row_key(k)));
    for (i, (name, text, zero)) in values(v).into_iter().enumerate() {
        if zero {
            continue;
        }
        adds.push(format!("#f{i} :v{i}"));
        u = u
            .expression_attribute_names(format!("#f{i}"), name)
            .expression_attribute_values(format!(":v{i}"), AttributeValue::N(text));
    }
    let u = u
        .update_expression(format!("ADD {}", adds.join(", ")))
        .build()
        .map_err(build_err)?;
    Ok(TransactWriteItem::builder().update(u).build())
}

/// The sample item's key.
pub(super) fn sample_key(entry_pk: &str, day: NaiveDate) -> Item {
    key(
        format!("kpi#{}", day.format("%Y-%m")),
        format!("{day}#{entry_pk}"),
    )
}

pub(super) fn sample_item(entry_pk: &str, x: &Sample) -> Item {
    let mut item = sample_key(entry_pk, x.day);
    if let Some(r) = x.resolve_minutes {
        item.insert("resolve".into(), n(r));
    }
    if let Some(l) = x.latency_minutes {
        item.insert("latency".into(), n(l));
    }
    item
}

fn decode_sample(item: &Item) -> StoreResult<Sample> {
    let sk = get_s(item, SK)?;
    let day = sk
        .split('#')
        .next()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| StoreError::Backend(format!("corrupt KPI sample {sk}")))?;
    let f = |name: &str| match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse::<f64>().ok(),
        _ => None,
    };
    Ok(Sample {
        day,
        resolve_minutes: f("resolve"),
        latency_minutes: f("latency"),
    })
}

/// The sample writes from `old` to `new`: a Put of the new one when it
/// differs, a Delete of the old one when it is gone or moved.
pub(super) fn sample_writes(
    table: &str,
    entry_pk: &str,
    old: Option<&EntryState>,
    new: Option<&EntryState>,
) -> StoreResult<Vec<TransactWriteItem>> {
    let old = old.and_then(aggregates::sample);
    let new = new.and_then(aggregates::sample);
    let mut out = Vec::new();
    if new != old {
        if let Some(x) = &new {
            out.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(table)
                            .set_item(Some(sample_item(entry_pk, x)))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        if let Some(o) = &old {
            if new.as_ref().is_none_or(|x| x.day != o.day) {
                out.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(table)
                                .set_key(Some(sample_key(entry_pk, o.day)))
                                .build()
                                .map_err(build_err)?,
                        )
                        .build(),
                );
            }
        }
    }
    Ok(out)
}

/// The rows a write leaves for later (see the module documentation).
#[derive(serde::Serialize, serde::Deserialize)]
struct Parked {
    chunks: Vec<Vec<(AggKey, AggVals)>>,
}

impl DynamoStore {
    /// Split `rows` into what fits beside `fixed` actions in the first
    /// transaction and the pending item (with its Put) for the rest.
    pub(super) fn plan_rows(
        &self,
        entry_pk: &str,
        revision: u64,
        fixed: usize,
        rows: Vec<(AggKey, AggVals)>,
    ) -> StoreResult<(Vec<TransactWriteItem>, Option<String>)> {
        if fixed + rows.len() <= TX_LIMIT {
            let items = rows
                .iter()
                .map(|(k, v)| row_update(&self.table, k, v))
                .collect::<StoreResult<_>>()?;
            return Ok((items, None));
        }
        // One slot for the pending item's Put.
        let first = TX_LIMIT.saturating_sub(fixed + 1);
        let mut rows = rows;
        let rest = rows.split_off(first.min(rows.len()));
        let mut items: Vec<TransactWriteItem> = rows
            .iter()
            .map(|(k, v)| row_update(&self.table, k, v))
            .collect::<StoreResult<_>>()?;
        let parked = Parked {
            // One slot of each later transaction advances the cursor.
            chunks: rest.chunks(TX_LIMIT - 1).map(<[_]>::to_vec).collect(),
        };
        let sk = format!("{entry_pk}#{revision:020}");
        let mut item = key(PENDING_PK, sk.as_str());
        item.insert("rows".into(), s(super::codec::encode(&parked)?));
        item.insert("next".into(), n(0));
        items.push(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        );
        Ok((items, Some(sk)))
    }

    /// Apply the chunks left of one pending item, each exactly once.
    pub(super) async fn drain_pending(&self, sk: &str) -> StoreResult<()> {
        let mut raced = 0u32;
        loop {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(PENDING_PK, sk)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| backend("read pending aggregate rows", e))?;
            let Some(item) = out.item else {
                return Ok(());
            };
            let parked: Parked = super::codec::decode(&item, "rows")?;
            let next: usize = super::codec::get_n(&item, "next")?;
            let Some(chunk) = parked.chunks.get(next) else {
                // Every chunk applied: only the item is left.
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(PENDING_PK, sk)))
                    .send()
                    .await
                    .map_err(|e| backend("remove pending aggregate rows", e))?;
                return Ok(());
            };
            let last = next + 1 == parked.chunks.len();
            let cursor = if last {
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(PENDING_PK, sk)))
                            .condition_expression("#n = :n")
                            .expression_attribute_names("#n", "next")
                            .expression_attribute_values(":n", n(next))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            } else {
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(PENDING_PK, sk)))
                            .update_expression("SET #n = :m")
                            .condition_expression("#n = :n")
                            .expression_attribute_names("#n", "next")
                            .expression_attribute_values(":n", n(next))
                            .expression_attribute_values(":m", n(next + 1))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            };
            let mut tx = self.client.transact_write_items().transact_items(cursor);
            for (k, v) in chunk {
                tx = tx.transact_items(row_update(&self.table, k, v)?);
            }
            match tx.send().await {
                Ok(_) => {}
                // Someone else applied this chunk (or is applying it):
                // read the cursor again.
                Err(e)
                    if raced < 20
                        && e.as_service_error().is_some_and(super::entries::lost_race) =>
                {
                    raced += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(backend("apply pending aggregate rows", e)),
            }
        }
    }

    /// Drain every pending item (what a crashed writer left).
    pub(super) async fn drain_all_pending(&self) -> StoreResult<()> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(PENDING_PK))
            .projection_expression("sk")
            .consistent_read(true);
        for item in super::io::query_all(q, "pending aggregate rows", None).await? {
            self.drain_pending(get_s(&item, SK)?).await?;
        }
        Ok(())
    }

    /// Every item of one partition whose sort key is in `lo..=hi`.
    async fn range(&self, pk: &str, lo: &str, hi: &str, what: &str) -> StoreResult<Vec<Item>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":p", s(pk))
            .expression_attribute_values(":a", s(lo))
            .expression_attribute_values(":b", s(hi))
            .consistent_read(true);
        super::io::query_all(q, what, None).await
    }

    /// The first (or last) period of any year row: the span the unbounded
    /// reads cover. None: no rows at all.
    async fn year_edge(&self, last: bool) -> StoreResult<Option<NaiveDate>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(row_pk(Grain::Year, NaiveDate::MIN)))
            .scan_index_forward(!last)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("aggregate span", e))?;
        Ok(out
            .items()
            .first()
            .and_then(|i| get_s(i, SK).ok())
            .and_then(|sk| sk.split('#').next())
            .and_then(|d| d.parse().ok()))
    }

    /// `from..=to` with open ends closed at the span of the year rows.
    async fn span(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Option<(NaiveDate, NaiveDate)>> {
        let lo = match from {
            Some(f) => f,
            None => match self.year_edge(false).await? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        let hi = match to {
            Some(t) => t,
            None => match self.year_edge(true).await? {
                Some(d) => d.with_month(12).and_then(|d| d.with_day(31)).unwrap_or(d),
                None => return Ok(None),
            },
        };
        Ok((lo <= hi).then_some((lo, hi)))
    }

    /// The month partitions (`yyyy-mm`) `lo..=hi` touches.
    fn months(lo: NaiveDate, hi: NaiveDate) -> Vec<String> {
        let mut out = Vec::new();
        let (mut y, mut m) = (lo.year(), lo.month());
        while (y, m) <= (hi.year(), hi.month()) {
            out.push(format!("{y:04}-{m:02}"));
            (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        }
        out
    }

    pub(super) async fn read_rows(
        &self,
        grain: Grain,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<(AggKey, AggVals)>> {
        // A period is a date: every one sorts above "0".
        let lo = from.map(|d| d.to_string()).unwrap_or_else(|| "0".into());
        let hi = to
            .map(|d| format!("{d}$"))
            .unwrap_or_else(|| "9999-12-31$".into());
        let pks: Vec<String> = match grain {
            Grain::Year => vec![row_pk(Grain::Year, NaiveDate::MIN)],
            _ => {
                // A period starts no earlier than its grain's start of
                // `from`'s period, so the partitions from there on.
                let Some((a, b)) = self.span(from, to).await? else {
                    return Ok(Vec::new());
                };
                match grain {
                    Grain::Day => Self::months(a, b)
                        .into_iter()
                        .map(|m| format!("agg#day#{m}"))
                        .collect(),
                    _ => (a.year()..=b.year())
                        .map(|y| format!("agg#{}#{y}", grain.as_str()))
                        .collect(),
                }
            }
        };
        let mut rows = Vec::new();
        for pk in pks {
            for item in self.range(&pk, &lo, &hi, "read aggregates").await? {
                if let Some((k, v)) = decode_row(&item)? {
                    if !v.is_empty() {
                        rows.push((k, v));
                    }
                }
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(rows)
    }

    pub(super) async fn read_samples(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<Sample>> {
        let Some((a, b)) = self.span(from, to).await? else {
            return Ok(Vec::new());
        };
        let lo = a.to_string();
        let hi = format!("{b}$");
        let mut out = Vec::new();
        for m in Self::months(a, b) {
            for item in self
                .range(&format!("kpi#{m}"), &lo, &hi, "read KPI samples")
                .await?
            {
                out.push(decode_sample(&item)?);
            }
        }
        Ok(out)
    }

    /// The newest day with an entry row: the newest year with one, that
    /// year's newest month with one, that month's newest day (three
    /// partitions, each read from its end).
    pub(super) async fn newest_day(&self) -> StoreResult<Option<NaiveDate>> {
        let Some(year) = self
            .newest_entry_row(&row_pk(Grain::Year, NaiveDate::MIN))
            .await?
        else {
            return Ok(None);
        };
        let Some(month) = self.newest_entry_row(&row_pk(Grain::Month, year)).await? else {
            return Ok(None);
        };
        self.newest_entry_row(&row_pk(Grain::Day, month)).await
    }

    /// The newest period of a non-empty entry row in one partition,
    /// reading from the end in small pages.
    async fn newest_entry_row(&self, pk: &str) -> StoreResult<Option<NaiveDate>> {
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(pk))
                .scan_index_forward(false)
                .limit(50)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("newest work date", e))?;
            for item in out.items() {
                if let Some((k, v)) = decode_row(item)? {
                    if k.kind == RowKind::Entry && v.entries != 0 {
                        return Ok(Some(k.period));
                    }
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(None),
            }
        }
    }

    /// Recompute every row and sample from the entry states, count the
    /// stored ones that differ, and replace them (see
    /// `EntryStore::rebuild_aggregates` on this store).
    pub(super) async fn rebuild(&self) -> StoreResult<aggregates::Rebuild> {
        use crate::ports::EntryStore;
        self.drain_all_pending().await?;
        self.backfill_listing().await?;
        let states = self.all().await?;
        let fresh = aggregates::fold(&states);
        let mut fresh_samples: BTreeMap<(String, String), Item> = BTreeMap::new();
        for st in &states {
            if let Some(x) = aggregates::sample(st) {
                let item = sample_item(&entry_pk(&st.entry.key), &x);
                fresh_samples.insert(
                    (get_s(&item, PK)?.to_string(), get_s(&item, SK)?.to_string()),
                    item,
                );
            }
        }
        // Every stored row, sample and pending item (one scan).
        let mut stored_rows: BTreeMap<AggKey, (AggVals, Item)> = BTreeMap::new();
        let mut stored_samples: BTreeMap<(String, String), Item> = BTreeMap::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :a) OR begins_with(pk, :k) OR pk = :p")
                .expression_attribute_values(":a", s("agg#"))
                .expression_attribute_values(":k", s("kpi#"))
                .expression_attribute_values(":p", s(PENDING_PK))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("scan aggregates", e))?;
            for item in out.items() {
                let pk = get_s(item, PK)?;
                let k = key(pk, get_s(item, SK)?);
                if pk.starts_with("kpi#") {
                    stored_samples
                        .insert((pk.to_string(), get_s(item, SK)?.to_string()), item.clone());
                } else if let Some((rk, v)) = decode_row(item)? {
                    stored_rows.insert(rk, (v, k));
                } else {
                    // A pending item the drain did not reach: the fresh
                    // rows include its write.
                    super::io::delete_plain(self, k, "rebuild aggregates: delete").await?;
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let live: Aggregates = stored_rows
            .iter()
            .filter(|(_, (v, _))| !v.is_empty())
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let differed = aggregates::differences(&live, &fresh);
        let same_sample = |a: &Item, b: &Item| {
            let f = |i: &Item| decode_sample(i).ok();
            f(a) == f(b)
        };
        let samples_differed = fresh_samples
            .iter()
            .filter(|(k, v)| stored_samples.get(*k).is_none_or(|w| !same_sample(v, w)))
            .count()
            + stored_samples
                .keys()
                .filter(|k| !fresh_samples.contains_key(*k))
                .count();
        // Replace: rows that differ are put whole, rows that should not be
        // there (empty ones included) are deleted.
        for (k, v) in &fresh {
            if stored_rows
                .get(k)
                .is_none_or(|(w, _)| !aggregates::same(v, w))
            {
                super::io::put_plain(self, row_item(k, v), "rebuild aggregates: write").await?;
            }
        }
        for (k, (_, item_key)) in &stored_rows {
            if !fresh.contains_key(k) {
                super::io::delete_plain(self, item_key.clone(), "rebuild aggregates: delete")
                    .await?;
            }
        }
        for (k, item) in &fresh_samples {
            if stored_samples.get(k).is_none_or(|w| !same_sample(item, w)) {
                super::io::put_plain(self, item.clone(), "rebuild aggregates: write").await?;
            }
        }
        for (pk, sk) in stored_samples.keys() {
            if !fresh_samples.contains_key(&(pk.clone(), sk.clone())) {
                super::io::delete_plain(
                    self,
                    key(pk.as_str(), sk.as_str()),
                    "rebuild aggregates: delete",
                )
                .await?;
            }
        }
        Ok(aggregates::Rebuild {
            entries: states.len(),
            rows: fresh.len(),
            differed,
            samples_differed,
        })
    }

    /// Give state items written before the key-ordered listing existed
    /// their gsi1 attributes (found through gsi2, where every state is).
    async fn backfill_listing(&self) -> StoreResult<()> {
        for status in crate::state::Status::ALL {
            let q = super::io::status_partition(self, *status)
                .projection_expression("pk, gsi1pk, #st")
                .expression_attribute_names("#st", "state");
            for item in super::io::query_all(q, "entries to list", None).await? {
                // (Older builds put other gsi1 keys on state items.)
                if matches!(item.get("gsi1pk"), Some(AttributeValue::S(v)) if v == ENTRIES_GSI1) {
                    continue;
                }
                let pk = get_s(&item, PK)?;
                let st: EntryState = super::codec::decode(&item, "state")?;
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, "state")))
                    .update_expression("SET gsi1pk = :e, gsi1sk = :k")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":e", s(ENTRIES_GSI1))
                    .expression_attribute_values(":k", s(st.entry.key.to_string()))
                    .send()
                    .await;
                match result {
                    Ok(_) => {}
                    // Purged meanwhile.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|x| x.is_conditional_check_failed_exception()) => {}
                    Err(e) => return Err(backend("list entries: backfill", e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_round_trip_through_the_sort_key() {
        let k = AggKey {
            grain: Grain::Day,
            period: NaiveDate::from_ymd_opt(2026, 3, 4).unwrap_or_default(),
            kind: RowKind::Line,
            status: crate::state::Status::Posted,
            project: "A#1 100%".into(),
            employee: "Ann (employee E#1)".into(),
            currency: String::new(),
            billable: true,
            original_currency: "EUR".into(),
        };
        let v = AggVals {
            lines: 2,
            hours: Decimal::new(-150, 2),
            ..AggVals::default()
        };
        let item = row_item(&k, &v);
        assert_eq!(get_s(&item, PK).ok(), Some("agg#day#2026-03"));
        let (k2, v2) = decode_row(&item).ok().flatten().unwrap_or_else(|| {
            panic!("not a row");
        });
        assert_eq!(k2, k);
        assert!(aggregates::same(&v2, &v));
    }

    #[test]
    fn month_partitions_cover_the_span() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap_or_default();
        assert_eq!(
            DynamoStore::months(d("2025-11-20"), d("2026-02-01")),
            ["2025-11", "2025-12", "2026-01", "2026-02"]
        );
    }
}
