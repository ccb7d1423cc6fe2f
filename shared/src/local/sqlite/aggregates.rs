//! The maintained aggregates (`crate::aggregates`) and KPI samples in the
//! store file: written in the same transaction as every entry-state write
//! (`put`, the bulk load, the purge), built once for a store that predates
//! them, and recomputed on demand (`timepost store rebuild-aggregates`).

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;

use super::{backend, decode, SqliteStore};
use crate::aggregates::{self, AggKey, AggVals, Aggregates, Grain, Rebuild, RowKind, Sample};
use crate::ports::StoreResult;
use crate::state::EntryState;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS aggregates (
    grain TEXT NOT NULL, period TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    project TEXT NOT NULL, employee TEXT NOT NULL, currency TEXT NOT NULL,
    billable INTEGER NOT NULL, original_currency TEXT NOT NULL,
    entries INTEGER NOT NULL, lines INTEGER NOT NULL, hours TEXT NOT NULL, amount TEXT NOT NULL,
    unmapped INTEGER NOT NULL, unmapped_code INTEGER NOT NULL, counted INTEGER NOT NULL,
    opened INTEGER NOT NULL, resolved INTEGER NOT NULL, overflows INTEGER NOT NULL,
    PRIMARY KEY (grain, period, kind, status, project, employee, currency, billable, original_currency)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kpi_samples (
    key TEXT PRIMARY KEY, day TEXT NOT NULL, resolve REAL, latency REAL
);
CREATE INDEX IF NOT EXISTS kpi_samples_day ON kpi_samples(day);
CREATE TABLE IF NOT EXISTS aggregates_built (one INTEGER PRIMARY KEY CHECK (one = 1));
"#;

const COLUMNS: &str =
    "grain, period, kind, status, project, employee, currency, billable, original_currency, \
     entries, lines, hours, amount, unmapped, unmapped_code, counted, opened, resolved, overflows";

const KEY_MATCH: &str =
    "grain = ?1 AND period = ?2 AND kind = ?3 AND status = ?4 AND project = ?5 \
     AND employee = ?6 AND currency = ?7 AND billable = ?8 AND original_currency = ?9";

fn dec(s: &str) -> rusqlite::Result<Decimal> {
    s.parse().map_err(|e: rust_decimal::Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse<T: std::str::FromStr<Err = String>>(s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn vals(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<AggVals> {
    Ok(AggVals {
        entries: r.get(at)?,
        lines: r.get(at + 1)?,
        hours: dec(&r.get::<_, String>(at + 2)?)?,
        amount: dec(&r.get::<_, String>(at + 3)?)?,
        unmapped: r.get(at + 4)?,
        unmapped_code: r.get(at + 5)?,
        counted: r.get(at + 6)?,
        opened: r.get(at + 7)?,
        resolved: r.get(at + 8)?,
        overflows: r.get(at + 9)?,
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(AggKey, AggVals)> {
    let key = AggKey {
        grain: parse(r.get(0)?)?,
        period: parse_date(r.get(1)?)?,
        kind: parse::<RowKind>(r.get(2)?)?,
        status: parse(r.get(3)?)?,
        project: r.get(4)?,
        employee: r.get(5)?,
        currency: r.get(6)?,
        billable: r.get(7)?,
        original_currency: r.get(8)?,
    };
    Ok((key, vals(r, 9)?))
}

fn parse_date(s: String) -> rusqlite::Result<NaiveDate> {
    s.parse().map_err(|e: chrono::ParseError| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Add `sign` × each of `s`'s rows to the stored ones (a row left empty is
/// deleted).
fn add(conn: &Connection, s: &EntryState, sign: i64) -> rusqlite::Result<()> {
    for (k, v) in aggregates::contributions(s) {
        let key = params![
            k.grain.as_str(),
            k.period.to_string(),
            k.kind.as_str(),
            k.status.as_str(),
            k.project,
            k.employee,
            k.currency,
            k.billable,
            k.original_currency
        ];
        let mut stored: AggVals = conn
            .prepare_cached(&format!(
                "SELECT entries, lines, hours, amount, unmapped, unmapped_code, counted, opened, resolved, overflows
                 FROM aggregates WHERE {KEY_MATCH}"
            ))?
            .query_row(key, |r| vals(r, 0))
            .optional()?
            .unwrap_or_default();
        stored.add(&v, sign);
        if stored.is_empty() {
            conn.prepare_cached(&format!("DELETE FROM aggregates WHERE {KEY_MATCH}"))?
                .execute(key)?;
        } else {
            write_row(conn, &k, &stored)?;
        }
    }
    Ok(())
}

fn write_row(conn: &Connection, k: &AggKey, v: &AggVals) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO aggregates ({COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    ))?
    .execute(params![
        k.grain.as_str(),
        k.period.to_string(),
        k.kind.as_str(),
        k.status.as_str(),
        k.project,
        k.employee,
        k.currency,
        k.billable,
        k.original_currency,
        v.entries,
        v.lines,
        v.hours.to_string(),
        v.amount.to_string(),
        v.unmapped,
        v.unmapped_code,
        v.counted,
        v.opened,
        v.resolved,
        v.overflows
    ])?;
    Ok(())
}

fn write_sample(conn: &Connection, key: &str, s: Option<&Sample>) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM kpi_samples WHERE key = ?1")?
        .execute([key])?;
    if let Some(s) = s {
        conn.prepare_cached(
            "INSERT INTO kpi_samples (key, day, resolve, latency) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            key,
            s.day.to_string(),
            s.resolve_minutes,
            s.latency_minutes
        ])?;
    }
    Ok(())
}

/// One entry's state goes from `old` to `new` (None: absent): move its
/// aggregate rows and KPI sample along, inside the caller's transaction.
pub(super) fn on_write(
    conn: &Connection,
    old: Option<&EntryState>,
    new: Option<&EntryState>,
) -> rusqlite::Result<()> {
    if let Some(o) = old {
        add(conn, o, -1)?;
    }
    if let Some(n) = new {
        add(conn, n, 1)?;
    }
    if let Some(s) = new.or(old) {
        let sample = new.and_then(aggregates::sample);
        write_sample(conn, &s.entry.key.to_string(), sample.as_ref())?;
    }
    Ok(())
}

/// The stored rows of one grain with a period start in `from..=to`.
pub(super) fn read(
    conn: &Connection,
    grain: Grain,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> StoreResult<Vec<(AggKey, AggVals)>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM aggregates WHERE grain = ?1 AND period >= ?2 AND period <= ?3"
        ))
        .map_err(backend)?;
    let lo = from.map(|d| d.to_string()).unwrap_or_default();
    let hi = to
        .map(|d| d.to_string())
        .unwrap_or_else(|| "9999-12-31".into());
    let rows = stmt
        .query_map(params![grain.as_str(), lo, hi], row)
        .map_err(backend)?;
    rows.map(|r| r.map_err(backend)).collect()
}

/// The newest work date: the last day with an entry row (walked from the
/// end of the primary key).
pub(super) fn newest_day(conn: &Connection) -> StoreResult<Option<NaiveDate>> {
    let day: Option<String> = conn
        .query_row(
            "SELECT period FROM aggregates WHERE grain = 'day' AND kind = 'entry'
             ORDER BY period DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    day.map(|d| parse_date(d).map_err(backend)).transpose()
}

fn read_all(conn: &Connection) -> rusqlite::Result<Aggregates> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM aggregates"))?;
    let rows = stmt.query_map([], row)?;
    rows.collect()
}

pub(super) fn samples(
    conn: &Connection,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> StoreResult<Vec<Sample>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT day, resolve, latency FROM kpi_samples WHERE day >= ?1 AND day <= ?2",
        )
        .map_err(backend)?;
    let lo = from.map(|d| d.to_string()).unwrap_or_default();
    let hi = to
        .map(|d| d.to_string())
        .unwrap_or_else(|| "9999-12-31".into());
    let rows = stmt
        .query_map(params![lo, hi], |r| {
            Ok(Sample {
                day: parse_date(r.get(0)?)?,
                resolve_minutes: r.get(1)?,
                latency_minutes: r.get(2)?,
            })
        })
        .map_err(backend)?;
    rows.map(|r| r.map_err(backend)).collect()
}

type SampleRows = std::collections::BTreeMap<String, (String, Option<f64>, Option<f64>)>;

fn read_samples(conn: &Connection) -> rusqlite::Result<SampleRows> {
    let mut stmt = conn.prepare("SELECT key, day, resolve, latency FROM kpi_samples")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?;
    rows.collect()
}

/// Recompute every row and sample from the entry states (one pass; memory
/// holds the aggregates, not the states), count how many stored ones
/// differed, and replace them — all in the caller's transaction.
pub(super) fn rebuild(conn: &Connection) -> StoreResult<Rebuild> {
    let mut fresh = Aggregates::new();
    let mut fresh_samples = SampleRows::new();
    let mut entries = 0usize;
    {
        let mut stmt = conn.prepare("SELECT state FROM entries").map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let s: EntryState = decode(&r.get::<_, String>(0).map_err(backend)?)?;
            entries += 1;
            aggregates::apply(&mut fresh, &s, 1);
            if let Some(x) = aggregates::sample(&s) {
                fresh_samples.insert(
                    s.entry.key.to_string(),
                    (x.day.to_string(), x.resolve_minutes, x.latency_minutes),
                );
            }
        }
    }
    let stored = read_all(conn).map_err(backend)?;
    let stored_samples = read_samples(conn).map_err(backend)?;
    let samples_differed = fresh_samples
        .iter()
        .filter(|(k, v)| stored_samples.get(*k) != Some(*v))
        .count()
        + stored_samples
            .keys()
            .filter(|k| !fresh_samples.contains_key(*k))
            .count();
    let report = Rebuild {
        entries,
        rows: fresh.len(),
        differed: aggregates::differences(&stored, &fresh),
        samples_differed,
    };
    conn.execute_batch("DELETE FROM aggregates; DELETE FROM kpi_samples;")
        .map_err(backend)?;
    for (k, v) in &fresh {
        write_row(conn, k, v).map_err(backend)?;
    }
    for (key, (day, resolve, latency)) in &fresh_samples {
        conn.prepare_cached(
            "INSERT INTO kpi_samples (key, day, resolve, latency) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut st| st.execute(params![key, day, resolve, latency]))
        .map_err(backend)?;
    }
    conn.execute(
        "INSERT OR IGNORE INTO aggregates_built (one) VALUES (1)",
        [],
    )
    .map_err(backend)?;
    Ok(report)
}

/// A store written before the aggregates existed gets them built once, at
/// open.
pub(super) fn build_if_missing(conn: &mut Connection) -> StoreResult<()> {
    super::build_once(conn, "aggregates_built", |tx| rebuild(tx).map(|_| ()))
}

impl SqliteStore {
    /// Recompute the aggregates from every entry state and replace them,
    /// in one transaction; says how many rows were wrong before.
    pub fn rebuild_aggregates_now(&self) -> StoreResult<Rebuild> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let r = rebuild(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    //! The maintained aggregates equal a fold over every state, whatever
    //! sequence of writes led there; the rebuild finds nothing to fix.

    use chrono::{DateTime, Duration, NaiveDate, Utc};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use crate::aggregates::{self, Grain};
    use crate::archive::retention::PurgeStore;
    use crate::exceptions::{Exception, ExceptionCode};
    use crate::local::sqlite::SqliteStore;
    use crate::model::*;
    use crate::ports::EntryStore;
    use crate::state::{EntryState, Status};
    use timepost_core::ledger::{Party, PostingLine, RecordRef};

    /// One write the engine, a console action or an archive purge makes.
    #[derive(Debug, Clone)]
    enum Op {
        /// A new entry (or a new version of an existing one).
        Upsert {
            id: usize,
            day: i64,
            worker: usize,
            project: usize,
            minutes: i64,
            billable: bool,
            eur: bool,
        },
        /// Re-dated by this many days (across weeks and months).
        Redate { id: usize, days: i64 },
        /// Decided: posted (lines split in `parts`), held or in exception
        /// for a missing mapping, awaiting approval, voided, ignored.
        Decide {
            id: usize,
            status: usize,
            parts: usize,
        },
        /// A manager approves: awaiting → posted.
        Approve { id: usize },
        /// An import batch rolled back: posted → awaiting, books emptied.
        Rollback { id: usize },
        /// A mapping change makes a held entry postable, or one unmapped.
        Remap { id: usize, unmapped: bool },
        /// Purged after archival.
        Delete { id: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = 0usize..12;
        prop_oneof![
            4 => (id.clone(), -400i64..400, 0usize..4, 0usize..4, 0i64..900, any::<bool>(), any::<bool>())
                .prop_map(|(id, day, worker, project, minutes, billable, eur)| Op::Upsert {
                    id, day, worker, project, minutes, billable, eur
                }),
            2 => (id.clone(), -70i64..70).prop_map(|(id, days)| Op::Redate { id, days }),
            4 => (id.clone(), 0usize..6, 1usize..4).prop_map(|(id, status, parts)| Op::Decide { id, status, parts }),
            1 => id.clone().prop_map(|id| Op::Approve { id }),
            1 => id.clone().prop_map(|id| Op::Rollback { id }),
            1 => (id.clone(), any::<bool>()).prop_map(|(id, unmapped)| Op::Remap { id, unmapped }),
            1 => id.prop_map(|id| Op::Delete { id }),
        ]
    }

    fn t0() -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse().unwrap_or_default()
    }

    fn entry(id: usize, day: i64, worker: usize, project: usize, minutes: i64) -> NormalisedEntry {
        let base = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap_or_default();
        NormalisedEntry {
            key: EntryKey::new(Source::Csv, "w", id.to_string()),
            version: Version {
                updated_at: t0(),
                content_hash: format!("h{id}-{day}-{minutes}"),
            },
            worker: Worker {
                tracker_user_id: format!("u{worker}"),
                email: None,
                name: (worker != 3).then(|| format!("Worker {worker}")),
                kind: None,
                form_1099: None,
            },
            time_zone: chrono_tz::UTC,
            work_date: base + Duration::days(day),
            start: None,
            end: None,
            duration_secs: minutes * 60,
            project: (project != 0)
                .then(|| Ref::new(format!("p{project}"), Some(format!("P{project}")))),
            client: None,
            task: None,
            tags: vec![],
            billable: false,
            rate: None,
            notes: String::new(),
            approval: ApprovalStatus::Approved,
            attachments: vec![],
            origin: Origin::Import,
            deleted: false,
            already_rounded: false,
        }
    }

    fn money(amount: i64, eur: bool) -> Money {
        let c: Currency = if eur { "EUR" } else { "USD" }
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"));
        Money::new(Decimal::new(amount, 2), c)
    }

    fn lines(s: &EntryState, parts: usize) -> Vec<PostingLine> {
        let e = &s.entry;
        let minutes = e.duration_secs / 60;
        (0..parts)
            .map(|i| PostingLine {
                tier: if i == 0 {
                    "regular".into()
                } else {
                    "overtime".into()
                },
                party: if e.worker.tracker_user_id == "u2" {
                    Party::Vendor {
                        id: "V-2".into(),
                        form_1099: None,
                    }
                } else {
                    Party::Employee {
                        id: format!("E-{}", e.worker.tracker_user_id),
                    }
                },
                txn_date: e.work_date + Duration::days(i as i64),
                minutes: minutes / parts as i64,
                customer: None,
                service_item: None,
                class: None,
                department: None,
                payroll_item: None,
                account: "4000".into(),
                billable: e.billable,
                hourly_rate: e.rate.clone(),
                original_rate: (i == 1).then(|| money(9_999, true)),
                fx_rate: None,
                fx_date: None,
                description: String::new(),
            })
            .collect()
    }

    fn unmapped() -> Exception {
        Exception::missing(
            ExceptionCode::UnmappedProject,
            "no project",
            "projects",
            "p1",
        )
    }

    /// The next state of `id` under `op`, from its current one.
    fn next(cur: Option<&EntryState>, op: &Op, step: i64) -> Option<EntryState> {
        let now = t0() + Duration::minutes(step * 7);
        match op {
            Op::Upsert {
                id,
                day,
                worker,
                project,
                minutes,
                billable,
                eur,
            } => {
                let mut e = entry(*id, *day, *worker, *project, *minutes);
                e.billable = *billable;
                e.rate = Some(money(12_550 + *minutes, *eur));
                let mut s = match cur {
                    Some(c) => {
                        let mut s = c.clone();
                        s.entry = e;
                        s
                    }
                    None => EntryState::new(e, now),
                };
                s.updated_at = now;
                Some(s)
            }
            Op::Redate { days, .. } => {
                let mut s = cur?.clone();
                s.entry.work_date += Duration::days(*days);
                s.posted_lines
                    .iter_mut()
                    .for_each(|l| l.txn_date += Duration::days(*days));
                Some(s)
            }
            Op::Decide { status, parts, .. } => {
                let mut s = cur?.clone();
                s.reason = None;
                let st = Status::ALL[*status % Status::ALL.len()];
                match st {
                    Status::Posted => {
                        s.posted_lines = lines(&s, *parts);
                        s.records = vec![RecordRef {
                            id: "r".into(),
                            sync_token: "0".into(),
                            tier: "regular".into(),
                        }];
                    }
                    Status::Held | Status::Exception => s.reason = Some(unmapped()),
                    _ => {}
                }
                s.set_status(st, now);
                Some(s)
            }
            Op::Approve { .. } => {
                let mut s = cur?.clone();
                if s.status() != Status::AwaitingApproval {
                    return Some(s);
                }
                s.approved_hash = Some(s.entry.version.content_hash.clone());
                s.posted_lines = lines(&s, 1);
                s.set_status(Status::Posted, now);
                Some(s)
            }
            Op::Rollback { .. } => {
                let mut s = cur?.clone();
                s.records.clear();
                s.posted_lines.clear();
                s.set_status(Status::AwaitingApproval, now);
                Some(s)
            }
            Op::Remap { unmapped: u, .. } => {
                let mut s = cur?.clone();
                if *u {
                    s.reason = Some(unmapped());
                    s.set_status(Status::Held, now);
                } else {
                    s.reason = None;
                    s.posted_lines = lines(&s, 2);
                    s.set_status(Status::Posted, now);
                }
                Some(s)
            }
            Op::Delete { .. } => None,
        }
    }

    fn id_of(op: &Op) -> usize {
        match op {
            Op::Upsert { id, .. }
            | Op::Redate { id, .. }
            | Op::Decide { id, .. }
            | Op::Approve { id }
            | Op::Rollback { id }
            | Op::Remap { id, .. }
            | Op::Delete { id } => *id,
        }
    }

    async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let store = SqliteStore::in_memory().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (step, op) in ops.iter().enumerate() {
            let key = EntryKey::new(Source::Csv, "w", id_of(op).to_string());
            let cur = store
                .get(&key)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            match next(cur.as_ref(), op, step as i64) {
                Some(s) => {
                    store
                        .put(&s)
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                None => {
                    store
                        .purge_entries(&[key])
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
        }
        let all = store
            .all()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let folded = aggregates::fold(&all);
        for &g in Grain::ALL {
            let kept: aggregates::Aggregates = store
                .aggregates(g, None, None)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .into_iter()
                .collect();
            let want = aggregates::select(&folded, g, None, None);
            prop_assert_eq!(kept.len(), want.len(), "{:?}", g);
            for ((ka, va), (kb, vb)) in kept.iter().zip(&want) {
                prop_assert_eq!(ka, kb);
                prop_assert!(aggregates::same(va, vb), "{:?}: {:?} != {:?}", ka, va, vb);
            }
        }
        let mut kept = store
            .kpi_samples(None, None)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut want: Vec<_> = all.iter().filter_map(aggregates::sample).collect();
        let order = |a: &aggregates::Sample, b: &aggregates::Sample| {
            (
                a.day,
                a.resolve_minutes.map(f64::to_bits),
                a.latency_minutes.map(f64::to_bits),
            )
                .cmp(&(
                    b.day,
                    b.resolve_minutes.map(f64::to_bits),
                    b.latency_minutes.map(f64::to_bits),
                ))
        };
        kept.sort_by(order);
        want.sort_by(order);
        prop_assert_eq!(kept, want);
        // The dashboard's figures from the aggregates equal those from the
        // states, for any filter.
        let fail = |e: crate::ports::StoreError| TestCaseError::fail(e.to_string());
        let day = store
            .aggregates(Grain::Day, None, None)
            .await
            .map_err(fail)?;
        let month = store
            .aggregates(Grain::Month, None, None)
            .await
            .map_err(fail)?;
        let samples = store.kpi_samples(None, None).await.map_err(fail)?;
        let d = |s: &str| s.parse::<NaiveDate>().ok();
        for f in [
            crate::kpis::Filter::default(),
            crate::kpis::Filter {
                billable: Some(true),
                ..Default::default()
            },
            crate::kpis::Filter {
                currency: Some("EUR".into()),
                ..Default::default()
            },
            crate::kpis::Filter {
                from: d("2026-01-10"),
                to: d("2026-02-20"),
                billable: Some(false),
                ..Default::default()
            },
        ] {
            let want = crate::kpis::hours(&all, &f);
            prop_assert_eq!(&crate::kpis::hours_from(&day, &f), &want, "{:?}", f);
            if f.from.is_none() && f.to.is_none() {
                prop_assert_eq!(&crate::kpis::hours_from(&month, &f), &want, "{:?}", f);
            }
            prop_assert_eq!(
                crate::kpis::by_day_from(&day, &samples, &f),
                crate::kpis::by_day(&all, &f)
            );
        }
        prop_assert_eq!(
            store.newest_work_date().await.map_err(fail)?,
            all.iter().map(|s| s.entry.work_date).max()
        );
        // Paging by key yields every entry once, in `all()`'s order.
        let mut paged = Vec::new();
        let mut after: Option<EntryKey> = None;
        loop {
            let page = store.page(after.as_ref(), 5).await.map_err(fail)?;
            let Some(last) = page.last() else { break };
            after = Some(last.entry.key.clone());
            paged.extend(page);
        }
        prop_assert_eq!(&paged, &all);
        let totals = aggregates::Totals::of(&month);
        prop_assert_eq!(totals.counts().known, all.len());
        prop_assert_eq!(
            totals.count(Status::Posted),
            all.iter().filter(|s| s.status() == Status::Posted).count()
        );
        let r = store
            .rebuild_aggregates()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            (r.entries, r.rows, r.differed, r.samples_differed),
            (all.len(), folded.len(), 0, 0)
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn maintained_aggregates_equal_a_fold_over_every_state(ops in proptest::collection::vec(op(), 1..60)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
            rt.block_on(run(ops))?;
        }
    }

    #[tokio::test]
    async fn a_rebuild_repairs_rows_that_went_wrong_and_says_so() {
        let store = SqliteStore::in_memory().expect("store");
        let mut s = EntryState::new(entry(1, 0, 0, 1, 120), t0());
        s.set_status(Status::AwaitingApproval, t0());
        store.put(&s).await.expect("put");
        let rows = aggregates::fold([&s]).len();
        store
            .lock()
            .execute_batch(
                "UPDATE aggregates SET entries = 5 WHERE grain = 'month'; DELETE FROM kpi_samples;",
            )
            .expect("tamper");
        let r = store.rebuild_aggregates().await.expect("rebuild");
        assert_eq!((r.entries, r.rows, r.differed), (1, rows, 1));
        let r = store.rebuild_aggregates().await.expect("rebuild");
        assert_eq!((r.differed, r.samples_differed), (0, 0));
        let month = store
            .aggregates(Grain::Month, None, None)
            .await
            .expect("read");
        assert_eq!(month[0].1.entries, 1);
    }
}
