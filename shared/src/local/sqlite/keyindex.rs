//! The mapped-key index in the store file: one `(kind, key, entry,
//! work_date)` row per key an entry is looked up by
//! (`crate::mapping::keys_of`), with the entry's work date (so a period's
//! part of a key reads an index range, no entry touched), written in the
//! same transaction as every entry-state write (`put`, the bulk load, the
//! purge), built once for a store that predates it, and rewritten on demand
//! (`timepost store rebuild-key-index`). What the impact preview, the held
//! re-check after a mapping change and the listings by worker or project
//! read instead of every entry.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use rusqlite::{params, Connection};

use super::{backend, decode, states, SqliteStore};
use crate::mapping::keys::IndexRebuild;
use crate::mapping::{keys_of, MappedKey};
use crate::model::EntryKey;
use crate::ports::StoreResult;
use crate::state::EntryState;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS entry_keys (
    kind TEXT NOT NULL, k TEXT NOT NULL, entry TEXT NOT NULL, work_date TEXT,
    PRIMARY KEY (kind, k, entry)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entry_keys_entry ON entry_keys(entry);
CREATE TABLE IF NOT EXISTS entry_keys_built (one INTEGER PRIMARY KEY CHECK (one = 1));
"#;

/// Keys per statement (each key is two parameters; SQLite allows 999 in
/// its oldest builds).
const CHUNK: usize = 200;

/// An index written before the rows carried the work date gets the
/// column, filled from the entries, and the index by date (once, at open).
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    if !super::has_column(conn, "entry_keys", "work_date")? {
        conn.execute_batch(
            "ALTER TABLE entry_keys ADD COLUMN work_date TEXT;
             UPDATE entry_keys SET work_date =
                 (SELECT work_date FROM entries WHERE entries.key = entry_keys.entry);",
        )?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS entry_keys_dated ON entry_keys(kind, k, work_date);",
    )
}

fn insert(conn: &Connection, entry: &str, date: &str, keys: &[MappedKey]) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT OR IGNORE INTO entry_keys (kind, k, entry, work_date) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (kind, k) in keys {
        st.execute(params![kind.as_str(), k, entry, date])?;
    }
    Ok(())
}

/// One entry's state goes from `old` to `new` (None: absent): move its
/// index rows along, inside the caller's transaction. A write that keeps
/// the entry's keys (nearly every write) changes nothing.
pub(super) fn on_write(
    conn: &Connection,
    old: Option<&EntryState>,
    new: Option<&EntryState>,
) -> rusqlite::Result<()> {
    let of = |s: &EntryState| {
        (
            s.entry.key.to_string(),
            keys_of(&s.entry),
            s.entry.work_date.to_string(),
        )
    };
    let old_keys = old.map(of);
    let new_keys = new.map(of);
    if old_keys.is_some() && old_keys == new_keys {
        return Ok(());
    }
    if let (Some((e0, k0, _)), Some((e1, k1, date))) = (&old_keys, &new_keys) {
        if e0 == e1 && k0 == k1 {
            // Re-dated: the same rows, another date.
            conn.prepare_cached("UPDATE entry_keys SET work_date = ?2 WHERE entry = ?1")?
                .execute([e1, date])?;
            return Ok(());
        }
    }
    if let Some((entry, _, _)) = &old_keys {
        conn.prepare_cached("DELETE FROM entry_keys WHERE entry = ?1")?
            .execute([entry])?;
    }
    if let Some((entry, keys, date)) = &new_keys {
        insert(conn, entry, date, keys)?;
    }
    Ok(())
}

/// The distinct entry keys indexed under any of `keys`, after `after`, in
/// key order, at most `limit` (every one when None); with `dates`, only
/// those whose work date is in `from..=to` (a range of the index by date,
/// no entry read).
fn entries_of(
    conn: &Connection,
    keys: &[MappedKey],
    dates: Option<(NaiveDate, NaiveDate)>,
    after: Option<&EntryKey>,
    limit: Option<usize>,
) -> rusqlite::Result<BTreeSet<String>> {
    let after = after.map(|k| k.to_string()).unwrap_or_default();
    let (from, to) = dates
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .unwrap_or_default();
    // ?1 after, ?2 limit, ?3 / ?4 the dates when given, then two per key.
    let first = if dates.is_some() { 5 } else { 3 };
    let (by, dated) = if dates.is_some() {
        (
            " INDEXED BY entry_keys_dated",
            " AND work_date >= ?3 AND work_date <= ?4",
        )
    } else {
        ("", "")
    };
    let mut out = BTreeSet::new();
    for chunk in keys.chunks(CHUNK) {
        // One index range per key, merged by SQLite (UNION dedupes).
        let legs: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "SELECT entry FROM entry_keys{by} WHERE kind = ?{} AND k = ?{} AND entry > ?1{dated}",
                    2 * i + first,
                    2 * i + first + 1
                )
            })
            .collect();
        let sql = format!("{} ORDER BY entry LIMIT ?2", legs.join(" UNION "));
        let mut p: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(4 + 2 * chunk.len());
        let lim = limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64);
        p.push(&after);
        p.push(&lim);
        if dates.is_some() {
            p.push(&from);
            p.push(&to);
        }
        let kinds: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        for (i, (_, v)) in chunk.iter().enumerate() {
            p.push(&kinds[i]);
            p.push(v);
        }
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(p.as_slice(), |r| r.get::<_, String>(0))?;
        for r in rows {
            out.insert(r?);
        }
        if let Some(l) = limit {
            while out.len() > l {
                out.pop_last();
            }
        }
    }
    Ok(out)
}

impl SqliteStore {
    pub(super) fn by_mapped_keys_now(
        &self,
        keys: &[MappedKey],
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        self.by_mapped_keys_in(keys, None, after, limit)
    }

    /// [`Self::by_mapped_keys_now`], only work dates in `dates` when given.
    pub(super) fn by_mapped_keys_in(
        &self,
        keys: &[MappedKey],
        dates: Option<(NaiveDate, NaiveDate)>,
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        let conn = self.lock();
        let found = entries_of(&conn, keys, dates, after, Some(limit)).map_err(backend)?;
        let mut out = Vec::with_capacity(found.len());
        for k in &found {
            out.extend(states(
                &conn,
                "SELECT state FROM entries WHERE key = ?1",
                [k],
            )?);
        }
        Ok(out)
    }

    pub(super) fn count_by_mapped_keys_now(&self, keys: &[MappedKey]) -> StoreResult<usize> {
        let conn = self.lock();
        if keys.len() <= CHUNK {
            // Counted by SQLite over the index alone.
            let legs: Vec<String> = (0..keys.len())
                .map(|i| {
                    format!(
                        "SELECT entry FROM entry_keys WHERE kind = ?{} AND k = ?{}",
                        2 * i + 1,
                        2 * i + 2
                    )
                })
                .collect();
            if legs.is_empty() {
                return Ok(0);
            }
            let sql = format!("SELECT COUNT(*) FROM ({})", legs.join(" UNION "));
            let kinds: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
            let mut p: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(2 * keys.len());
            for (i, (_, v)) in keys.iter().enumerate() {
                p.push(&kinds[i]);
                p.push(v);
            }
            let n: i64 = conn
                .query_row(&sql, p.as_slice(), |r| r.get(0))
                .map_err(backend)?;
            return Ok(n as usize);
        }
        Ok(entries_of(&conn, keys, None, None, None)
            .map_err(backend)?
            .len())
    }

    /// Rewrite the index from every entry state in one transaction; says
    /// how many entries' rows were wrong before.
    pub fn rebuild_key_index_now(&self) -> StoreResult<IndexRebuild> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let r = rebuild(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(r)
    }
}

/// Compare every entry's index rows with its keys, rewrite those that
/// differ, drop rows of entries that are gone, in the caller's
/// transaction.
pub(super) fn rebuild(conn: &Connection) -> StoreResult<IndexRebuild> {
    let mut r = IndexRebuild::default();
    {
        let mut stmt = conn
            .prepare("SELECT key, state FROM entries ORDER BY key")
            .map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        let mut stored_of = conn
            .prepare("SELECT kind, k, work_date FROM entry_keys WHERE entry = ?1 ORDER BY kind, k")
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let key: String = row.get(0).map_err(backend)?;
            let s: EntryState = decode(&row.get::<_, String>(1).map_err(backend)?)?;
            r.entries += 1;
            let mut want = keys_of(&s.entry);
            want.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
            r.keys += want.len();
            let date = s.entry.work_date.to_string();
            let have: Vec<(String, String, Option<String>)> = stored_of
                .query_map([&key], |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let same = have.len() == want.len()
                && have.iter().zip(&want).all(|(h, w)| {
                    h.0 == w.0.as_str() && h.1 == w.1 && h.2.as_deref() == Some(date.as_str())
                });
            if !same {
                r.differed += 1;
                conn.execute("DELETE FROM entry_keys WHERE entry = ?1", [&key])
                    .map_err(backend)?;
                insert(conn, &key, &date, &want).map_err(backend)?;
            }
        }
    }
    let orphans: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT entry) FROM entry_keys WHERE entry NOT IN (SELECT key FROM entries)",
            [],
            |x| x.get(0),
        )
        .map_err(backend)?;
    r.differed += orphans as usize;
    conn.execute(
        "DELETE FROM entry_keys WHERE entry NOT IN (SELECT key FROM entries)",
        [],
    )
    .map_err(backend)?;
    conn.execute(
        "INSERT OR IGNORE INTO entry_keys_built (one) VALUES (1)",
        [],
    )
    .map_err(backend)?;
    Ok(r)
}

/// A store written before the index existed gets it built once, at open.
pub(super) fn build_if_missing(conn: &mut Connection) -> StoreResult<()> {
    super::build_once(conn, "entry_keys_built", |tx| rebuild(tx).map(|_| ()))
}
