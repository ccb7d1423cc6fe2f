//! Period reads on the local store ([`crate::ports::EntryStore::by_work_dates`]):
//! an index on (work date, key), and for the few entries whose posted
//! lines are dated outside their work date (re-dated after posting, the
//! new version not in the books yet) the range of those dates in
//! `booked_lo` / `booked_hi`, NULL on every other row, with a partial
//! index over the non-NULL ones. Triggers keep the two columns with every
//! write of a state (`put`, the bulk load, the key migration), so no
//! writer has to know of them; a store that predates them gets the
//! columns filled once when it is opened.

use chrono::NaiveDate;
use rusqlite::{params, Connection};

use super::{backend, states};
use crate::ports::{PeriodCursor, StoreResult};
use crate::state::EntryState;

/// The posted lines' date range of the row's state (`{S}`), NULL when it
/// is only the row's work date (`{W}`) or there are no lines.
const BOOKED: &str = "(SELECT CASE WHEN min(d) = {W} AND max(d) = {W} THEN NULL ELSE min(d) END, \
                             CASE WHEN min(d) = {W} AND max(d) = {W} THEN NULL ELSE max(d) END \
                      FROM (SELECT json_extract(value, '$.txn_date') AS d \
                            FROM json_each({S}, '$.posted_lines')))";

fn booked(state: &str, work_date: &str) -> String {
    BOOKED.replace("{S}", state).replace("{W}", work_date)
}

/// Add the columns (filled from the stored states) when missing, then the
/// indexes and the triggers. Runs after `migrate_work_date`.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    if !super::has_column(conn, "entries", "booked_lo")? {
        conn.execute_batch(&format!(
            "ALTER TABLE entries ADD COLUMN booked_lo TEXT;
             ALTER TABLE entries ADD COLUMN booked_hi TEXT;
             UPDATE entries SET (booked_lo, booked_hi) = {}
               WHERE json_array_length(state, '$.posted_lines') > 0;",
            booked("entries.state", "entries.work_date")
        ))?;
    }
    let set = format!(
        "UPDATE entries SET (booked_lo, booked_hi) = {} WHERE key = NEW.key;",
        booked("NEW.state", "NEW.work_date")
    );
    conn.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS entries_work_date ON entries(work_date, key);
         CREATE INDEX IF NOT EXISTS entries_booked ON entries(key) WHERE booked_lo IS NOT NULL;
         CREATE TRIGGER IF NOT EXISTS entries_booked_insert AFTER INSERT ON entries
           BEGIN {set} END;
         CREATE TRIGGER IF NOT EXISTS entries_booked_update AFTER UPDATE OF state, work_date ON entries
           BEGIN {set} END;"
    ))
}

/// One page of the period `from..=to` (see the port's documentation).
pub(super) fn page(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
    after: Option<&PeriodCursor>,
    limit: usize,
) -> StoreResult<Vec<EntryState>> {
    let (f, t) = (from.to_string(), to.to_string());
    let mut out = Vec::new();
    if after.is_none_or(|a| !a.booked_only) {
        let (d, k) = after
            .map(|a| (a.work_date.to_string(), a.key.clone()))
            .unwrap_or_default();
        out = states(
            conn,
            "SELECT state FROM entries INDEXED BY entries_work_date
               WHERE work_date >= ?1 AND work_date <= ?2 AND (work_date, key) > (?3, ?4)
               ORDER BY work_date, key LIMIT ?5",
            params![f, t, d, k, i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
    }
    if out.len() >= limit || from > to {
        return Ok(out);
    }
    let k = after
        .filter(|a| a.booked_only)
        .map(|a| a.key.clone())
        .unwrap_or_default();
    let rest = states(
        conn,
        "SELECT state FROM entries INDEXED BY entries_booked
           WHERE booked_lo IS NOT NULL AND key > ?1
             AND booked_lo <= ?3 AND booked_hi >= ?2
             AND NOT (work_date >= ?2 AND work_date <= ?3)
           ORDER BY key",
        params![k, f, t],
    )
    .map_err(|e| backend(format!("period read: {e}")))?;
    out.extend(
        rest.into_iter()
            .filter(|s| PeriodCursor::touches(s, from, to))
            .take(limit - out.len()),
    );
    Ok(out)
}
