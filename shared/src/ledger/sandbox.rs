//! The sandbox ledger: a strict accounting API that keeps its records in the
//! embedded store. It refuses a posting that names an account, customer,
//! item, employee, vendor, class or payroll item its chart does not hold,
//! enforces idempotency keys (same key → the original answer; same key with
//! a different request → refused) and sync tokens. `timepost demo`, the
//! tests and every preview post here.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::books::{BookChanges, BookQuery, BookRecord};
use super::{Ledger, LedgerError, LedgerOp, LedgerRequest, Party, PostingLine, RecordRef};
use crate::exceptions::{Exception, ExceptionCode};
use crate::local::SqliteStore;

pub use crate::config::ledgers::Chart;

/// A record the sandbox holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub entry_key: String,
    pub sync_token: String,
    pub line: PostingLine,
    /// The fingerprint of the intent that last wrote it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A fault the next request will meet (tests and fault drills).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Fail before doing anything.
    Before(LedgerError),
    /// Do the work, then lose the answer (a timeout after the record was
    /// created): the caller sees a transient error.
    LoseResponse,
    /// No fault for this request (to let some requests through first).
    Pass,
}

pub struct SandboxLedger {
    store: SqliteStore,
    chart: Chart,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

impl SandboxLedger {
    pub fn new(store: SqliteStore, chart: Chart) -> Self {
        Self {
            store,
            chart,
            faults: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Queue a fault for an upcoming request.
    pub fn inject(&self, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(fault);
    }

    /// Let `n` requests through, then meet `faults`.
    pub fn inject_after(&self, n: usize, faults: Vec<Fault>) {
        let mut q = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        q.extend(std::iter::repeat_n(Fault::Pass, n));
        q.extend(faults);
    }

    /// Forget the faults not met yet.
    pub fn clear_faults(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Someone edits record `id` in the books (its sync token moves on),
    /// as a bookkeeper would in QuickBooks.
    pub fn touch_elsewhere(&self, id: &str) -> Result<(), LedgerError> {
        self.store
            .lock()
            .execute(
                "UPDATE sandbox_records SET sync_token = sync_token + 1, modified_at = ?2 WHERE id = ?1 AND active = 1",
                params![id, now_ms()],
            )
            .map_err(transient)?;
        Ok(())
    }

    /// Someone changes record `id`'s duration in the books (its sync token
    /// moves on; its description, and so timepost's marker, stays).
    pub fn edit_elsewhere(&self, id: &str, minutes: i64) -> Result<(), LedgerError> {
        let conn = self.store.lock();
        let line: String = conn
            .query_row(
                "SELECT line FROM sandbox_records WHERE id = ?1 AND active = 1",
                [id],
                |r| r.get(0),
            )
            .map_err(transient)?;
        let mut line: PostingLine = serde_json::from_str(&line).map_err(transient)?;
        line.minutes = minutes;
        conn.execute(
            "UPDATE sandbox_records SET line = ?2, sync_token = sync_token + 1, modified_at = ?3 WHERE id = ?1",
            params![id, serde_json::to_string(&line).map_err(transient)?, now_ms()],
        )
        .map_err(transient)?;
        Ok(())
    }

    /// Someone deletes record `id` in the books.
    pub fn delete_elsewhere(&self, id: &str) -> Result<(), LedgerError> {
        self.store
            .lock()
            .execute(
                "UPDATE sandbox_records SET active = 0, sync_token = sync_token + 1, modified_at = ?2 WHERE id = ?1 AND active = 1",
                params![id, now_ms()],
            )
            .map_err(transient)?;
        Ok(())
    }

    /// Someone keys a time record into the books by hand (no entry, no
    /// fingerprint); returns its id.
    pub fn create_elsewhere(&self, line: &PostingLine) -> Result<String, LedgerError> {
        let conn = self.store.lock();
        conn.execute(
            "INSERT INTO sandbox_records (entry_key, tier, sync_token, line, active, fingerprint, modified_at) VALUES ('', ?1, 0, ?2, 1, NULL, ?3)",
            params![line.tier, serde_json::to_string(line).map_err(transient)?, now_ms()],
        )
        .map_err(transient)?;
        Ok(conn.last_insert_rowid().to_string())
    }

    /// Records created, changed or deleted after `since` (milliseconds):
    /// (active record, or the id of a deleted one).
    fn changed_since(&self, since: i64) -> Result<BookChanges, LedgerError> {
        let ids: Vec<(i64, bool)> = {
            let conn = self.store.lock();
            let mut stmt = conn
                .prepare(
                    "SELECT id, active FROM sandbox_records WHERE modified_at > ?1 ORDER BY id",
                )
                .map_err(transient)?;
            let rows = stmt
                .query_map([since], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? == 1))
                })
                .map_err(transient)?;
            rows.collect::<Result<_, _>>().map_err(transient)?
        };
        let active: std::collections::HashMap<String, SandboxRecord> = self
            .records()?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut changed = Vec::new();
        let mut deleted = Vec::new();
        for (id, is_active) in ids {
            let id = id.to_string();
            match active.get(&id) {
                Some(r) if is_active => changed.push(book_record(r.clone())),
                _ => deleted.push(id),
            }
        }
        Ok(BookChanges::Changes { changed, deleted })
    }

    /// Active records, in creation order.
    pub fn records(&self) -> Result<Vec<SandboxRecord>, LedgerError> {
        let conn = self.store.lock();
        let mut stmt = conn
            .prepare("SELECT id, entry_key, sync_token, line, fingerprint FROM sandbox_records WHERE active = 1 ORDER BY id")
            .map_err(transient)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(transient)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, entry_key, token, line, fingerprint) = row.map_err(transient)?;
            out.push(SandboxRecord {
                id: id.to_string(),
                entry_key,
                sync_token: token.to_string(),
                line: serde_json::from_str(&line).map_err(transient)?,
                fingerprint,
            });
        }
        Ok(out)
    }

    fn check_refs(&self, line: &PostingLine) -> Result<(), LedgerError> {
        let c = &self.chart;
        let check = |kind: &str, set: &BTreeSet<String>, id: Option<&str>| match id {
            Some(id) if !set.contains(id) => Err(LedgerError::Rejected(
                Exception::new(
                    ExceptionCode::LedgerUnknownReference,
                    format!("The books have no {kind} with id `{id}`."),
                )
                .with_vendor_message(format!("Object Not Found: {kind} {id}")),
            )),
            _ => Ok(()),
        };
        match &line.party {
            Party::Employee { id } => check("employee", &c.employees, Some(id))?,
            Party::Vendor { id, .. } => check("vendor", &c.vendors, Some(id))?,
        }
        check("account", &c.accounts, Some(&line.account))?;
        check("customer", &c.customers, line.customer.as_deref())?;
        check("service item", &c.items, line.service_item.as_deref())?;
        check("class", &c.classes, line.class.as_deref())?;
        check("department", &c.departments, line.department.as_deref())?;
        check(
            "payroll item",
            &c.payroll_items,
            line.payroll_item.as_deref(),
        )?;
        if line.billable && line.customer.is_none() {
            return Err(LedgerError::Rejected(Exception::new(
                ExceptionCode::LedgerRejected,
                "Billable time needs a customer.".to_string(),
            )));
        }
        if line.minutes <= 0 {
            return Err(LedgerError::Rejected(Exception::new(
                ExceptionCode::LedgerRejected,
                format!(
                    "A time record needs a positive duration, not {} minutes.",
                    line.minutes
                ),
            )));
        }
        Ok(())
    }

    fn execute(
        &self,
        conn: &mut Connection,
        req: &LedgerRequest,
    ) -> Result<Vec<RecordRef>, LedgerError> {
        let request_hash = {
            let mut h = Sha256::new();
            h.update(serde_json::to_vec(&req.op).map_err(transient)?);
            hex::encode(h.finalize())
        };
        let tx = conn.transaction().map_err(transient)?;
        let prior: Option<(String, String)> = tx
            .query_row(
                "SELECT request_hash, response FROM sandbox_requests WHERE idempotency_key = ?1",
                [&req.idempotency_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(transient)?;
        if let Some((hash, response)) = prior {
            if hash != request_hash {
                return Err(LedgerError::Rejected(Exception::new(
                    ExceptionCode::LedgerRejected,
                    format!(
                        "Idempotency key {} was already used for a different request.",
                        req.idempotency_key
                    ),
                )));
            }
            return serde_json::from_str(&response).map_err(transient);
        }
        let key = req.key.to_string();
        let refs = match &req.op {
            LedgerOp::Create { lines } => {
                for l in lines {
                    self.check_refs(l)?;
                }
                lines
                    .iter()
                    .map(|l| insert(&tx, &key, l, req.fingerprint(&l.tier)))
                    .collect::<Result<Vec<_>, _>>()?
            }
            LedgerOp::Update { records, lines } => {
                for l in lines {
                    self.check_refs(l)?;
                }
                for r in records {
                    check_token(&tx, r)?;
                }
                let mut out = Vec::new();
                for l in lines {
                    match records.iter().find(|r| r.tier == l.tier) {
                        Some(r) => {
                            let token: i64 = r.sync_token.parse().unwrap_or(0) + 1;
                            tx.execute(
                                "UPDATE sandbox_records SET line = ?1, sync_token = ?2, fingerprint = ?4, modified_at = ?5 WHERE id = ?3",
                                params![
                                    serde_json::to_string(l).map_err(transient)?,
                                    token,
                                    r.id,
                                    req.fingerprint(&l.tier),
                                    now_ms()
                                ],
                            )
                            .map_err(transient)?;
                            out.push(RecordRef {
                                id: r.id.clone(),
                                sync_token: token.to_string(),
                                tier: l.tier.clone(),
                            });
                        }
                        None => out.push(insert(&tx, &key, l, req.fingerprint(&l.tier))?),
                    }
                }
                for r in records
                    .iter()
                    .filter(|r| !lines.iter().any(|l| l.tier == r.tier))
                {
                    deactivate(&tx, r)?;
                }
                out
            }
            LedgerOp::Delete { records } => {
                for r in records {
                    check_token(&tx, r)?;
                    deactivate(&tx, r)?;
                }
                Vec::new()
            }
        };
        tx.execute(
            "INSERT INTO sandbox_requests (idempotency_key, request_hash, response) VALUES (?1, ?2, ?3)",
            params![
                req.idempotency_key,
                request_hash,
                serde_json::to_string(&refs).map_err(transient)?
            ],
        )
        .map_err(transient)?;
        tx.commit().map_err(transient)?;
        Ok(refs)
    }
}

/// Now, in milliseconds since the epoch (a record's modification time).
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A sandbox record as the books show it.
fn book_record(r: SandboxRecord) -> BookRecord {
    BookRecord {
        id: r.id,
        sync_token: r.sync_token,
        fingerprint: r.fingerprint,
        txn_date: r.line.txn_date,
        party: Some(r.line.party.clone()),
        minutes: r.line.minutes,
        customer: r.line.customer.clone(),
        billable: Some(r.line.billable),
        service_item: r.line.service_item.clone(),
        hourly_rate: r.line.hourly_rate.as_ref().map(|m| m.amount),
        description: r.line.description,
        locked: false,
    }
}

fn transient(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Transient(e.to_string())
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    l: &PostingLine,
    fingerprint: Option<String>,
) -> Result<RecordRef, LedgerError> {
    tx.execute(
        "INSERT INTO sandbox_records (entry_key, tier, sync_token, line, active, fingerprint, modified_at) VALUES (?1, ?2, 0, ?3, 1, ?4, ?5)",
        params![key, l.tier, serde_json::to_string(l).map_err(transient)?, fingerprint, now_ms()],
    )
    .map_err(transient)?;
    Ok(RecordRef {
        id: tx.last_insert_rowid().to_string(),
        sync_token: "0".into(),
        tier: l.tier.clone(),
    })
}

fn check_token(tx: &rusqlite::Transaction<'_>, r: &RecordRef) -> Result<(), LedgerError> {
    let token: Option<i64> = tx
        .query_row(
            "SELECT sync_token FROM sandbox_records WHERE id = ?1 AND active = 1",
            [&r.id],
            |row| row.get(0),
        )
        .optional()
        .map_err(transient)?;
    match token {
        None => Err(LedgerError::Rejected(Exception::new(
            ExceptionCode::LedgerUnknownReference,
            format!("The books have no active time record {}.", r.id),
        ))),
        Some(t) if t.to_string() != r.sync_token => Err(LedgerError::Rejected(Exception::new(
            ExceptionCode::LedgerStaleRecord,
            format!(
                "Time record {} was changed in the books since timepost posted it (sync token {} ≠ {}).",
                r.id, t, r.sync_token
            ),
        ))),
        Some(_) => Ok(()),
    }
}

fn deactivate(tx: &rusqlite::Transaction<'_>, r: &RecordRef) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE sandbox_records SET active = 0, sync_token = sync_token + 1, modified_at = ?2 WHERE id = ?1",
        params![r.id, now_ms()],
    )
    .map_err(transient)?;
    Ok(())
}

#[async_trait]
impl Ledger for SandboxLedger {
    fn name(&self) -> &str {
        "sandbox"
    }

    async fn apply(&self, request: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError> {
        let fault = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if let Some(Fault::Before(err)) = fault {
            return Err(err);
        }
        let result = {
            let mut conn = self.store.lock();
            self.execute(&mut conn, request)
        };
        match fault {
            Some(Fault::LoseResponse) => Err(LedgerError::Transient(
                "connection dropped after the record was created".into(),
            )),
            _ => result,
        }
    }

    async fn read_books(&self, query: &BookQuery) -> Result<Option<Vec<BookRecord>>, LedgerError> {
        Ok(Some(
            self.records()?
                .into_iter()
                .filter(|r| {
                    query.covers(
                        r.line.txn_date,
                        Some(&r.line.party),
                        r.line.customer.as_deref(),
                    )
                })
                .map(book_record)
                .collect(),
        ))
    }

    /// The sandbox keeps a modification time per record and deleted
    /// records as inactive rows, so its feed is complete and has no limit.
    async fn book_changes(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<BookChanges, LedgerError> {
        self.changed_since(since.timestamp_millis())
    }

    async fn read_back(&self) -> Result<Option<Vec<(String, PostingLine)>>, LedgerError> {
        Ok(Some(
            self.records()?
                .into_iter()
                .map(|r| (r.entry_key, r.line))
                .collect(),
        ))
    }
}
