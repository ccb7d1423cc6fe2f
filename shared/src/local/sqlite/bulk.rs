//! Bulk operations of the archive on the local store: load a snapshot or a
//! full export into a fresh store (ids, sequence numbers and revisions
//! kept), and remove the live entries of an archived period.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{backend, encode, SqliteStore};
use crate::archive::restore::{LoadStore, Loaded};
use crate::archive::retention::PurgeStore;
use crate::model::EntryKey;
use crate::ports::StoreResult;

impl LoadStore for SqliteStore {
    fn is_empty_store(&self) -> StoreResult<bool> {
        let conn = self.lock();
        crate::local::pending::ready(&conn)?;
        for table in [
            "entries",
            "mapping_changes",
            "mappings",
            "journal",
            "intents",
            "audit",
            "queue",
            "dead_letters",
            "mapping_proposals",
            "sandbox_records",
        ] {
            let n: i64 = conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .map_err(backend)?;
            if n > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn load(&self, d: &Loaded) -> StoreResult<()> {
        let mut conn = self.lock();
        crate::local::pending::ready(&conn)?;
        let tx = conn.transaction().map_err(backend)?;
        for s in &d.entries {
            let e = &s.entry;
            tx.execute(
                "INSERT OR REPLACE INTO entries (key, source, workspace, user_id, week_start, status, revision, updated_at, state, work_date)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.key.to_string(),
                    e.key.source.as_str(),
                    e.key.workspace,
                    e.worker.tracker_user_id,
                    e.week_start().to_string(),
                    s.status().as_str(),
                    s.revision as i64,
                    s.updated_at.to_rfc3339(),
                    encode(s)?,
                    e.work_date.to_string(),
                ],
            )
            .map_err(backend)?;
        }
        // The loaded states' aggregates, in the same transaction.
        for s in &d.entries {
            super::aggregates::on_write(&tx, None, Some(s)).map_err(backend)?;
            super::keyindex::on_write(&tx, None, Some(s)).map_err(backend)?;
        }
        for v in &d.versions {
            let at = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            };
            tx.execute(
                "INSERT OR IGNORE INTO entry_versions (key, updated_at, content_hash, received_at, version)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    v.entry.key.to_string(),
                    at(v.entry.version.updated_at),
                    v.entry.version.content_hash,
                    at(v.received_at),
                    encode(v)?,
                ],
            )
            .map_err(backend)?;
        }
        for r in &d.journal {
            tx.execute(
                "INSERT OR REPLACE INTO journal (seq, batch_id, key, record) VALUES (?1, ?2, ?3, ?4)",
                params![r.seq as i64, r.batch_id, r.key.to_string(), encode(r)?],
            )
            .map_err(backend)?;
        }
        for i in &d.intents {
            tx.execute(
                "INSERT OR REPLACE INTO intents (id, key, open, opened_at, intent) VALUES (?1, ?2, 1, ?3, ?4)",
                params![i.id, i.key.to_string(), i.opened_at.to_rfc3339(), encode(i)?],
            )
            .map_err(backend)?;
        }
        for a in &d.audit {
            tx.execute(
                "INSERT OR REPLACE INTO audit (seq, at, who, role, action, entry, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![a.seq as i64, a.at.to_rfc3339(), a.who, a.role, a.action, a.entry, a.detail],
            )
            .map_err(backend)?;
        }
        // The tables are what the change log makes of them.
        SqliteStore::apply_changes(&tx, d.mapping_changes.clone()).map_err(backend)?;
        for p in &d.proposals {
            tx.execute(
                "INSERT OR REPLACE INTO mapping_proposals (id, status, doc) VALUES (?1, ?2, ?3)",
                params![p.id as i64, p.status.as_str(), encode(p)?],
            )
            .map_err(backend)?;
        }
        for l in &d.dead_letters {
            tx.execute(
                "INSERT OR REPLACE INTO dead_letters (id, body, reason, code, receive_count, parked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![l.id, encode(&l.message)?, l.reason, l.code, l.receive_count, l.parked_at.to_rfc3339()],
            )
            .map_err(backend)?;
        }
        // The books' lines, as the sandbox ledger keeps them (no
        // modification time: unchanged since, for the change feed).
        for r in &d.ledger_records {
            tx.execute(
                "INSERT INTO sandbox_records (entry_key, tier, sync_token, line, active, fingerprint, modified_at)
                 VALUES (?1, ?2, 0, ?3, 1, NULL, NULL)",
                params![r.entry, r.line.tier, encode(&r.line)?],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

#[async_trait]
impl PurgeStore for SqliteStore {
    async fn purge_entries(&self, keys: &[EntryKey]) -> StoreResult<usize> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend)?;
        let mut n = 0;
        for k in keys {
            let k = k.to_string();
            let before: Option<String> = tx
                .query_row("SELECT state FROM entries WHERE key = ?1", [&k], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            if let Some(json) = before {
                let before: crate::state::EntryState = super::decode(&json)?;
                super::aggregates::on_write(&tx, Some(&before), None).map_err(backend)?;
                super::keyindex::on_write(&tx, Some(&before), None).map_err(backend)?;
            }
            n += tx
                .execute("DELETE FROM entries WHERE key = ?1", [&k])
                .map_err(backend)?;
            tx.execute("DELETE FROM journal WHERE key = ?1", [&k])
                .map_err(backend)?;
            tx.execute("DELETE FROM entry_versions WHERE key = ?1", [&k])
                .map_err(backend)?;
            tx.execute("DELETE FROM intents WHERE key = ?1 AND open = 0", [&k])
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(n)
    }
}
