//! Reconciliation runs, their breaks and the resolutions in the store's
//! SQLite file: one row per run (the summary as JSON), one per break (the
//! run's sequence, its position, the document), one per resolution.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::ports::{StoreError, StoreResult};
use crate::reconcile::{Break, ReconcileStore, Resolution, RunSummary};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS reconcile_runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reconcile_breaks (
    run INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (run, pos)
);
CREATE TABLE IF NOT EXISTS reconcile_resolutions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    break_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reconcile_resolutions_break ON reconcile_resolutions(break_id, seq);";

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The tables are created on first use, so stores opened before
/// reconciliation existed need no migration step.
fn ready(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(SCHEMA).map_err(backend)
}

fn decode<T: serde::de::DeserializeOwned>(doc: &str) -> StoreResult<T> {
    serde_json::from_str(doc).map_err(|e| backend(format!("corrupt reconciliation row: {e}")))
}

fn docs(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare(sql).map_err(backend)?;
    let rows = stmt
        .query_map(p, |r| r.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows)
}

#[async_trait]
impl ReconcileStore for SqliteStore {
    async fn save_run(&self, run: &RunSummary, breaks: &[Break]) -> StoreResult<u64> {
        let conn = self.lock();
        ready(&conn)?;
        let tx = conn.unchecked_transaction().map_err(backend)?;
        tx.execute("INSERT INTO reconcile_runs (doc) VALUES ('{}')", [])
            .map_err(backend)?;
        let seq = tx.last_insert_rowid() as u64;
        let mut stored = run.clone();
        stored.seq = seq;
        let doc = serde_json::to_string(&stored).map_err(backend)?;
        tx.execute(
            "UPDATE reconcile_runs SET doc = ?1 WHERE seq = ?2",
            params![doc, seq as i64],
        )
        .map_err(backend)?;
        {
            let mut ins = tx
                .prepare("INSERT INTO reconcile_breaks (run, pos, id, doc) VALUES (?1, ?2, ?3, ?4)")
                .map_err(backend)?;
            for (pos, b) in breaks.iter().enumerate() {
                let doc = serde_json::to_string(b).map_err(backend)?;
                ins.execute(params![seq as i64, pos as i64, b.id, doc])
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(seq)
    }

    async fn runs(&self, limit: usize) -> StoreResult<Vec<RunSummary>> {
        let conn = self.lock();
        ready(&conn)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        docs(
            &conn,
            "SELECT doc FROM reconcile_runs ORDER BY seq DESC LIMIT ?1",
            params![limit],
        )?
        .iter()
        .map(|d| decode(d))
        .collect()
    }

    async fn run_breaks(&self, seq: u64) -> StoreResult<Vec<Break>> {
        let conn = self.lock();
        ready(&conn)?;
        docs(
            &conn,
            "SELECT doc FROM reconcile_breaks WHERE run = ?1 ORDER BY pos",
            params![seq as i64],
        )?
        .iter()
        .map(|d| decode(d))
        .collect()
    }

    async fn add_resolution(&self, resolution: &Resolution) -> StoreResult<()> {
        let conn = self.lock();
        ready(&conn)?;
        let doc = serde_json::to_string(resolution).map_err(backend)?;
        conn.execute(
            "INSERT INTO reconcile_resolutions (break_id, doc) VALUES (?1, ?2)",
            params![resolution.break_id, doc],
        )
        .map_err(backend)?;
        Ok(())
    }

    async fn resolutions(&self, break_id: Option<&str>) -> StoreResult<Vec<Resolution>> {
        let conn = self.lock();
        ready(&conn)?;
        docs(
            &conn,
            "SELECT doc FROM reconcile_resolutions WHERE ?1 IS NULL OR break_id = ?1 ORDER BY seq",
            params![break_id],
        )?
        .iter()
        .map(|d| decode(d))
        .collect()
    }
}
