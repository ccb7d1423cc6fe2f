//! Alert state in the store's SQLite file: one row per condition key (the
//! state as JSON, `cleared` and `last_seen` as columns for the queries).
//! Cleared states older than [`KEEP_CLEARED_DAYS`] are dropped on write.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
pub use crate::ports::KEEP_CLEARED_DAYS;
use crate::ports::{AlertState, AlertStore, StoreError, StoreResult};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS alert_states (
    key TEXT PRIMARY KEY,
    cleared TEXT,
    last_seen TEXT NOT NULL,
    doc TEXT NOT NULL
);";

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn rows(
    conn: &rusqlite::Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> StoreResult<Vec<AlertState>> {
    conn.execute_batch(SCHEMA).map_err(backend)?;
    let mut stmt = conn.prepare(sql).map_err(backend)?;
    let docs = stmt
        .query_map(p, |r| r.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    docs.iter()
        .map(|d| serde_json::from_str(d).map_err(|e| backend(format!("corrupt alert state: {e}"))))
        .collect()
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn active_alerts(&self) -> StoreResult<Vec<AlertState>> {
        rows(
            &self.lock(),
            "SELECT doc FROM alert_states WHERE cleared IS NULL ORDER BY key",
            [],
        )
    }

    async fn put_alert(&self, state: &AlertState) -> StoreResult<()> {
        let conn = self.lock();
        conn.execute_batch(SCHEMA).map_err(backend)?;
        let doc = serde_json::to_string(state).map_err(backend)?;
        conn.execute(
            "INSERT INTO alert_states (key, cleared, last_seen, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key) DO UPDATE SET cleared = ?2, last_seen = ?3, doc = ?4",
            params![
                state.key,
                state
                    .cleared
                    .map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                state
                    .last_seen
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                doc
            ],
        )
        .map_err(backend)?;
        let horizon = state.last_seen - chrono::TimeDelta::days(KEEP_CLEARED_DAYS);
        conn.execute(
            "DELETE FROM alert_states WHERE cleared IS NOT NULL AND cleared < ?1",
            params![horizon.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)],
        )
        .map_err(backend)?;
        Ok(())
    }

    async fn alert_history(&self, limit: usize) -> StoreResult<Vec<AlertState>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        rows(
            &self.lock(),
            "SELECT doc FROM alert_states ORDER BY last_seen DESC, key LIMIT ?1",
            params![limit],
        )
    }
}
