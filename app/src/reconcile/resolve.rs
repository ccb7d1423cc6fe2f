//! What finance does about one break (`timepost reconcile resolve`):
//!
//! - **repost**: timepost's version goes back into the books. Under the
//!   worker-week's claim the entry state is made to say what the books
//!   hold now (a deleted or missing record is no longer the entry's; a
//!   changed one keeps its id at its new sync token with the values it
//!   holds), as the pass over changes made in the books does
//!   (`crate::engine::books_watch`), and the week is marked dirty: the next
//!   convergence (the sweep; locally the CLI runs it at once) posts what
//!   the week should hold.
//! - **accept-books**: the same change to the entry state, without marking
//!   the week: the state takes the books' record, so the next run agrees.
//!   A later change to the worker's week converges it again to what the
//!   tracker says (the books' version is only kept while nothing changes).
//! - **dismiss**: recorded with a reason; later runs show the break as
//!   dismissed and do not count it.
//!
//! Every action is stored as a [`Resolution`] and written to the audit log.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;

use super::gather::{ReconcileError, Reconciler};
use super::{Action, Break, Resolution};
use crate::engine::{Engine, EngineError};
use crate::exceptions::ExceptionCode;
use crate::intent::scope;
use crate::model::EntryKey;
use crate::ports::{AuditLog, AuditRecord, WorkerWeek};
use timepost_core::ledger::{PostingLine, RecordRef};

/// Who resolves, for the audit log.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub who: String,
    pub role: String,
}

/// Resolve break `id` (read from the newest stored run that has it) with
/// `action`; `reason` is required to dismiss. Returns what was stored.
pub async fn resolve(
    rec: &Reconciler,
    engine: &Arc<Engine>,
    audit: &dyn AuditLog,
    id: &str,
    action: Action,
    reason: &str,
    by: &Resolver,
) -> Result<Resolution, ReconcileError> {
    let (run, brk) = rec.find_break(id).await?;
    let said = match action {
        Action::Dismiss => {
            if reason.trim().is_empty() {
                return Err(ReconcileError::Refused(
                    "a dismissal needs a reason (--dismiss \"why\")".into(),
                ));
            }
            format!("Dismissed {} ({}): {}", brk.id, brk.code, reason.trim())
        }
        Action::Repost | Action::AcceptBooks => {
            let key = entry_of(&brk, action)?;
            let adopted = adopt(engine, &key, action == Action::Repost).await?;
            match action {
                Action::Repost => format!(
                    "{} ({}): entry {key} is posted again as timepost holds it; {adopted}",
                    brk.id, brk.code
                ),
                _ => format!(
                    "{} ({}): entry {key} now holds what the books hold; {adopted}",
                    brk.id, brk.code
                ),
            }
        }
    };
    let resolution = Resolution {
        break_id: brk.id.clone(),
        action,
        reason: reason.trim().to_string(),
        by: by.who.clone(),
        at: Utc::now(),
        run,
        said: said.clone(),
    };
    rec.store.add_resolution(&resolution).await?;
    audit
        .record(AuditRecord {
            seq: 0,
            at: resolution.at,
            who: by.who.clone(),
            role: by.role.clone(),
            action: format!("reconcile_{}", action.as_str()),
            entry: brk.entry.clone(),
            detail: said,
        })
        .await?;
    Ok(resolution)
}

/// The entry a re-post or an accept acts on; refused for the classes
/// where timepost has nothing to change.
fn entry_of(b: &Break, action: Action) -> Result<EntryKey, ReconcileError> {
    let refuse = |why: &str| {
        Err(ReconcileError::Refused(format!(
            "{} is {}: {why}",
            b.id, b.code
        )))
    };
    match b.code {
        ExceptionCode::NeverReceived => {
            return refuse("timepost never received the entry; fetch it with `timepost poll SOURCE`, then reconcile again")
        }
        ExceptionCode::DuplicateInBooks | ExceptionCode::UnownedInBooks | ExceptionCode::NotTimepostsRecord => {
            return refuse("no entry holds this record; delete it in the books if it should not be there, then dismiss the break with the reason")
        }
        ExceptionCode::BilledWithNewerVersion if action == Action::Repost => {
            return refuse("the record is billed, so the books refuse a change; credit or adjust the invoice in the books first, or accept the books' version")
        }
        _ => {}
    }
    let Some(k) = &b.entry else {
        return refuse("it names no entry");
    };
    k.parse()
        .map_err(|e: String| ReconcileError::Refused(format!("{}: {e}", b.id)))
}

/// Under the entry's week claim: make its state say what the books hold
/// for its records; mark the week dirty when `repost`. Returns a sentence.
async fn adopt(
    engine: &Arc<Engine>,
    key: &EntryKey,
    repost: bool,
) -> Result<String, ReconcileError> {
    let Some(st) = engine.entries.get(key).await? else {
        return Err(ReconcileError::Refused(format!(
            "timepost holds no entry {key}"
        )));
    };
    let week = WorkerWeek::of(&st.entry);
    let key2 = key.clone();
    let week2 = week.clone();
    let out = engine
        .with_weeks(BTreeSet::from([week.clone()]), |_held| async move {
            let st = engine.entries.get(&key2).await?;
            let Some(mut st) = engine.settle_intents(&key2, st, None).await? else {
                return Ok(String::from("the entry is gone"));
            };
            let books = match scope(st.posted_lines.iter()) {
                Some(q) => {
                    crate::engine::bump(&engine.counters.ledger_reads);
                    engine
                        .ledger
                        .read_books(&q)
                        .await
                        .map_err(EngineError::Books)?
                        .unwrap_or_default()
                }
                None => Vec::new(),
            };
            let mut records: Vec<RecordRef> = Vec::new();
            let mut lines: Vec<PostingLine> = Vec::new();
            let (mut gone, mut changed) = (0usize, 0usize);
            for line in &st.posted_lines {
                let rec = st.records.iter().find(|r| r.tier == line.tier);
                let book = rec.and_then(|r| books.iter().find(|b| b.id == r.id));
                match (rec, book) {
                    (Some(r), Some(b)) => {
                        let mut kept = r.clone();
                        kept.sync_token = b.sync_token.clone();
                        records.push(kept);
                        let mut l = line.clone();
                        l.minutes = b.minutes;
                        l.txn_date = b.txn_date;
                        l.customer = b.customer.clone();
                        l.description = b.description.clone();
                        if let Some(p) = &b.party {
                            l.party = p.clone();
                        }
                        if let Some(bill) = b.billable {
                            l.billable = bill;
                        }
                        if b.service_item.is_some() {
                            l.service_item = b.service_item.clone();
                        }
                        if let (Some(rate), Some(m)) = (b.hourly_rate, l.hourly_rate.as_mut()) {
                            m.amount = rate;
                        }
                        if l != *line {
                            changed += 1;
                        }
                        lines.push(l);
                    }
                    // Deleted in the books, or never there: no longer the
                    // entry's, so convergence creates it again.
                    _ => gone += 1,
                }
            }
            let now = Utc::now();
            if records != st.records || lines != st.posted_lines {
                st.records = records;
                st.posted_lines = lines;
                st.updated_at = now;
                st.revision = engine.entries.put(&st).await?;
            }
            if repost {
                engine
                    .journal
                    .mark_dirty(&week2, "reconciliation: re-post timepost's version")
                    .await?;
            }
            Ok(format!(
                "{gone} record(s) no longer in the books, {changed} changed there{}",
                if repost {
                    "; the worker's week is marked for convergence"
                } else {
                    ""
                }
            ))
        })
        .await?;
    Ok(out)
}
