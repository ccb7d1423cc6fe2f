//! Proposed mapping changes (with their impact previews) in the store's
//! SQLite file: one row per proposal, the document as JSON, the status in
//! its own column so a settle is one conditional UPDATE.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::ports::{PendingChanges, ProposalStatus, ProposedChange, StoreError, StoreResult};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS mapping_proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mapping_proposals_status ON mapping_proposals(status, id);";

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The table is created on first use, so stores opened before proposals
/// existed need no migration step.
pub(crate) fn ready(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(SCHEMA).map_err(backend)
}

fn decode(doc: &str) -> StoreResult<ProposedChange> {
    serde_json::from_str(doc).map_err(|e| backend(format!("corrupt proposal: {e}")))
}

#[async_trait]
impl PendingChanges for SqliteStore {
    async fn propose(&self, mut proposal: ProposedChange) -> StoreResult<ProposedChange> {
        let conn = self.lock();
        ready(&conn)?;
        let tx = conn.unchecked_transaction().map_err(backend)?;
        tx.execute(
            "INSERT INTO mapping_proposals (status, doc) VALUES (?1, '{}')",
            params![proposal.status.as_str()],
        )
        .map_err(backend)?;
        proposal.id = tx.last_insert_rowid() as u64;
        let doc = serde_json::to_string(&proposal).map_err(backend)?;
        tx.execute(
            "UPDATE mapping_proposals SET doc = ?1 WHERE id = ?2",
            params![doc, proposal.id as i64],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(proposal)
    }

    async fn proposal(&self, id: u64) -> StoreResult<Option<ProposedChange>> {
        let conn = self.lock();
        ready(&conn)?;
        let doc: Option<String> = conn
            .query_row(
                "SELECT doc FROM mapping_proposals WHERE id = ?1",
                params![id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        doc.as_deref().map(decode).transpose()
    }

    async fn proposals(&self, status: Option<ProposalStatus>) -> StoreResult<Vec<ProposedChange>> {
        let conn = self.lock();
        ready(&conn)?;
        let mut stmt = conn
            .prepare(
                "SELECT doc FROM mapping_proposals WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC",
            )
            .map_err(backend)?;
        let docs = stmt
            .query_map(params![status.map(ProposalStatus::as_str)], |r| {
                r.get::<_, String>(0)
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        docs.iter().map(|d| decode(d)).collect()
    }

    async fn settle(&self, proposal: &ProposedChange, expected: ProposalStatus) -> StoreResult<()> {
        let conn = self.lock();
        ready(&conn)?;
        let doc = serde_json::to_string(proposal).map_err(backend)?;
        let n = conn
            .execute(
                "UPDATE mapping_proposals SET status = ?1, doc = ?2 WHERE id = ?3 AND status = ?4",
                params![
                    proposal.status.as_str(),
                    doc,
                    proposal.id as i64,
                    expected.as_str()
                ],
            )
            .map_err(backend)?;
        if n == 1 {
            return Ok(());
        }
        let exists: bool = conn
            .prepare("SELECT 1 FROM mapping_proposals WHERE id = ?1")
            .and_then(|mut s| s.exists(params![proposal.id as i64]))
            .map_err(backend)?;
        Err(if exists {
            StoreError::Conflict(format!("mapping change proposal #{}", proposal.id))
        } else {
            StoreError::NotFound(format!("mapping change proposal #{}", proposal.id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impact::ImpactPreview;
    use crate::mapping::{MappingChange, MappingRow, MappingTable};
    use chrono::Utc;

    fn proposal(key: &str, status: ProposalStatus) -> ProposedChange {
        let d = "2026-03-01".parse().unwrap_or_default();
        ProposedChange {
            id: 0,
            change: MappingChange {
                seq: 0,
                table: MappingTable::Project,
                key: key.into(),
                before: None,
                after: Some(MappingRow::new(MappingTable::Project, key, "C-1")),
                changed_by: "ann".into(),
                changed_at: Utc::now(),
                reason: "new client".into(),
            },
            further: vec![],
            preview: ImpactPreview {
                from: d,
                to: d,
                mapping_version: 3,
                entries_checked: 0,
                changed: vec![],
                entries_replayed: 0,
                entries_affected: 0,
                entries_in_reach: 0,
            },
            status,
            needs_approval: status == ProposalStatus::Pending,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            applied_seq: None,
        }
    }

    #[tokio::test]
    async fn proposals_are_stored_listed_and_settled_once() {
        let s = SqliteStore::in_memory().expect("store");
        let a = s
            .propose(proposal("p1", ProposalStatus::Pending))
            .await
            .expect("propose");
        let b = s
            .propose(proposal("p2", ProposalStatus::Applied))
            .await
            .expect("propose");
        assert!(b.id > a.id);
        assert_eq!(s.proposal(a.id).await.expect("get"), Some(a.clone()));
        assert_eq!(s.proposal(999).await.expect("get"), None);
        let pending = s
            .proposals(Some(ProposalStatus::Pending))
            .await
            .expect("list");
        assert_eq!(pending, vec![a.clone()]);
        let all: Vec<u64> = s
            .proposals(None)
            .await
            .expect("list")
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(all, vec![b.id, a.id]);
        let mut done = a.clone();
        done.status = ProposalStatus::Rejected;
        done.decided_by = Some("bob".into());
        s.settle(&done, ProposalStatus::Pending)
            .await
            .expect("settle");
        // A second decision finds it settled already.
        let again = s.settle(&done, ProposalStatus::Pending).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        let mut ghost = done.clone();
        ghost.id = 999;
        let missing = s.settle(&ghost, ProposalStatus::Pending).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
        assert_eq!(s.proposal(a.id).await.expect("get"), Some(done));
        assert!(s
            .proposals(Some(ProposalStatus::Pending))
            .await
            .expect("list")
            .is_empty());
    }
}
