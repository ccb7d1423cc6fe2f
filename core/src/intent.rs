//! Write-ahead intents: how a ledger operation is made safe to crash in.
//!
//! Before the engine calls a ledger it records an [`Intent`]: which entry,
//! which version, the operation with its lines and the records it replaces.
//! The intent's id gives the request its idempotency key and every record
//! it writes a fingerprint (`ledger::books`). The intent is closed only
//! after the entry's state records the outcome, so at any crash point one
//! of these holds:
//! - the intent is open and the journal holds its answer: adopt the answer;
//! - the intent is open and the journal does not: the outcome is uncertain,
//!   and the books decide: [`resolve`] compares what they hold with what
//!   the intent would leave (found → adopt; absent → the call never took
//!   effect);
//! - the intent is closed: the entry's state already holds its outcome.
//!
//! [`resolve`] is pure; the engine does the reading and writing.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::books::{BookQuery, BookRecord};
use crate::ledger::{LedgerOp, Party, PostingLine, RecordRef};
use crate::model::{EntryKey, Version};

/// What became of an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IntentOutcome {
    /// Recorded before the call; not settled yet.
    Open,
    /// The ledger did it (answered, or found in the books afterwards).
    Applied,
    /// Found in part in the books (a batch cut short); the entry holds
    /// what was found and converges from there.
    Partial,
    /// The books show it never took effect.
    NotApplied,
    /// The ledger refused it; the next attempt is a new intent.
    Failed { reason: String },
}

/// One ledger operation, recorded before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Unique per attempt (a UUID's 32 hex digits).
    pub id: String,
    pub key: EntryKey,
    pub version: Version,
    pub batch_id: String,
    pub op: LedgerOp,
    /// The lines the entry's records held before (`op`'s targets), so the
    /// books can be read where they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<PostingLine>,
    pub opened_at: DateTime<Utc>,
    pub outcome: IntentOutcome,
}

impl Intent {
    pub fn new(
        key: EntryKey,
        version: Version,
        batch_id: &str,
        op: LedgerOp,
        before: Vec<PostingLine>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            key,
            version,
            batch_id: batch_id.to_string(),
            op,
            before,
            opened_at: now,
            outcome: IntentOutcome::Open,
        }
    }

    /// The idempotency key sent to the ledger for this intent: unique per
    /// attempt, 35 characters (QBO's batch `requestid` allows 36, Xero's
    /// `Idempotency-Key` 128).
    pub fn idempotency_key(&self) -> String {
        format!("tp-{}", &self.id[..self.id.len().min(32)])
    }

    /// The lines the operation writes (none for a delete).
    pub fn lines(&self) -> &[PostingLine] {
        match &self.op {
            LedgerOp::Create { lines } | LedgerOp::Update { lines, .. } => lines,
            LedgerOp::Delete { .. } => &[],
        }
    }

    /// The records the operation replaces or deletes.
    pub fn targets(&self) -> &[RecordRef] {
        match &self.op {
            LedgerOp::Create { .. } => &[],
            LedgerOp::Update { records, .. } | LedgerOp::Delete { records } => records,
        }
    }

    /// Where in the books this intent's records are: the dates, parties
    /// and customers of its lines and of the lines it replaces.
    pub fn book_query(&self) -> Option<BookQuery> {
        scope(self.lines().iter().chain(&self.before))
    }
}

/// The smallest query that covers `lines`.
pub fn scope<'a>(lines: impl Iterator<Item = &'a PostingLine>) -> Option<BookQuery> {
    let mut dates: Vec<NaiveDate> = Vec::new();
    let mut parties: Vec<Party> = Vec::new();
    let mut customers: Vec<String> = Vec::new();
    for l in lines {
        dates.push(l.txn_date);
        if !parties.iter().any(|p| p.id() == l.party.id()) {
            parties.push(l.party.clone());
        }
        if let Some(c) = &l.customer {
            if !customers.contains(c) {
                customers.push(c.clone());
            }
        }
    }
    Some(BookQuery {
        from: *dates.iter().min()?,
        to: *dates.iter().max()?,
        parties,
        customers,
    })
}

/// What the ledger holds for one entry: records and the lines they were
/// written with, paired by tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actual {
    pub records: Vec<RecordRef>,
    pub lines: Vec<PostingLine>,
}

/// How far an intent got, as the books show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub outcome: IntentOutcome,
    /// What the entry holds in the books now.
    pub actual: Actual,
    /// Records carrying one of the intent's fingerprints more than once
    /// (a vendor that ignored the idempotency key): extra copies to delete.
    pub strays: Vec<RecordRef>,
}

/// Compare what the books hold with what `intent` would leave, starting
/// from `before` (what the entry's state says the ledger held: the
/// intent's targets and their lines).
///
/// - a line of the intent whose fingerprint is in the books is there, in
///   the record that carries it (the targeted record for its tier first;
///   further copies are strays);
/// - a record held before that the intent did not rewrite keeps its old
///   line while the books still have it, and is gone when they do not
///   (deleted by the intent or by someone else);
/// - the outcome is `Applied` when the books hold exactly what the intent
///   writes, `NotApplied` when they hold exactly what was there before,
///   else `Partial`.
pub fn resolve(
    intent: &Intent,
    before: &Actual,
    books: &[BookRecord],
    fingerprint: impl Fn(&str) -> Option<String>,
) -> Resolution {
    let mut actual = Actual::default();
    let mut strays = Vec::new();
    for line in intent.lines() {
        let Some(fp) = fingerprint(&line.tier) else {
            continue;
        };
        let marked: Vec<&BookRecord> = books
            .iter()
            .filter(|b| b.fingerprint.as_deref() == Some(fp.as_str()))
            .collect();
        let target = before
            .records
            .iter()
            .find(|t| t.tier == line.tier)
            .map(|t| t.id.as_str());
        let keep = marked
            .iter()
            .find(|b| Some(b.id.as_str()) == target)
            .or_else(|| marked.first())
            .copied();
        if let Some(b) = keep {
            actual.records.push(RecordRef {
                id: b.id.clone(),
                sync_token: b.sync_token.clone(),
                tier: line.tier.clone(),
            });
            actual.lines.push(line.clone());
            strays.extend(marked.iter().filter(|o| o.id != b.id).map(|o| RecordRef {
                id: o.id.clone(),
                sync_token: o.sync_token.clone(),
                tier: line.tier.clone(),
            }));
        }
    }
    let written = actual.records.len();
    let mut kept = 0usize;
    for r in &before.records {
        if actual.records.iter().any(|a| a.id == r.id) {
            continue;
        }
        let (Some(b), Some(line)) = (
            books.iter().find(|b| b.id == r.id),
            before.lines.iter().find(|l| l.tier == r.tier),
        ) else {
            continue;
        };
        kept += 1;
        actual.records.push(RecordRef {
            id: r.id.clone(),
            sync_token: b.sync_token.clone(),
            tier: r.tier.clone(),
        });
        actual.lines.push(line.clone());
    }
    let outcome = if written == intent.lines().len() && kept == 0 {
        IntentOutcome::Applied
    } else if written == 0 && kept == before.records.len() {
        IntentOutcome::NotApplied
    } else {
        IntentOutcome::Partial
    };
    Resolution {
        outcome,
        actual,
        strays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::books::fingerprint;
    use crate::ledger::Party;
    use crate::model::Source;

    fn line(tier: &str, minutes: i64) -> PostingLine {
        PostingLine {
            tier: tier.into(),
            party: Party::Employee { id: "E-1".into() },
            txn_date: "2026-03-03".parse().expect("date"),
            minutes,
            customer: Some("C-1".into()),
            service_item: None,
            class: None,
            department: None,
            payroll_item: None,
            account: "4000".into(),
            billable: true,
            hourly_rate: None,
            original_rate: None,
            fx_rate: None,
            fx_date: None,
            description: "work".into(),
        }
    }

    fn rec(id: &str, token: &str, tier: &str) -> RecordRef {
        RecordRef {
            id: id.into(),
            sync_token: token.into(),
            tier: tier.into(),
        }
    }

    fn book(id: &str, token: &str, fp: Option<String>, minutes: i64) -> BookRecord {
        BookRecord {
            id: id.into(),
            sync_token: token.into(),
            fingerprint: fp,
            txn_date: "2026-03-03".parse().expect("date"),
            party: Some(Party::Employee { id: "E-1".into() }),
            minutes,
            customer: Some("C-1".into()),
            billable: Some(true),
            service_item: None,
            hourly_rate: None,
            description: "work".into(),
            locked: false,
        }
    }

    fn intent(op: LedgerOp, before: Vec<PostingLine>) -> Intent {
        Intent::new(
            EntryKey::new(Source::Csv, "ws", "e"),
            crate::model::Version {
                updated_at: "2026-03-09T00:00:00Z".parse().expect("instant"),
                content_hash: "h".into(),
            },
            "b",
            op,
            before,
            "2026-03-09T00:00:00Z".parse().expect("instant"),
        )
    }

    fn run(i: &Intent, before: Actual, books: &[BookRecord]) -> Resolution {
        resolve(i, &before, books, |tier| Some(fingerprint(&i.id, tier)))
    }

    #[test]
    fn a_create_found_by_its_fingerprint_is_applied_and_absent_is_not() {
        let i = intent(
            LedgerOp::Create {
                lines: vec![line("regular", 480), line("overtime", 60)],
            },
            vec![],
        );
        let fp = |t: &str| Some(fingerprint(&i.id, t));
        let found = [
            book("7", "0", fp("regular"), 480),
            book("8", "0", fp("overtime"), 60),
        ];
        let r = run(&i, Actual::default(), &found);
        assert_eq!(r.outcome, IntentOutcome::Applied);
        assert_eq!(
            r.actual.records,
            vec![rec("7", "0", "regular"), rec("8", "0", "overtime")]
        );
        assert_eq!(r.actual.lines, i.lines());
        // Someone else's record on the same day is not ours.
        let r = run(&i, Actual::default(), &[book("9", "0", None, 480)]);
        assert_eq!(
            (r.outcome, r.actual),
            (IntentOutcome::NotApplied, Actual::default())
        );
        // One line of two made it (a batch cut short).
        let r = run(&i, Actual::default(), &found[..1]);
        assert_eq!(r.outcome, IntentOutcome::Partial);
        assert_eq!(r.actual.records, vec![rec("7", "0", "regular")]);
    }

    #[test]
    fn an_update_in_place_is_told_apart_by_the_new_fingerprint() {
        let old = line("regular", 480);
        let before = Actual {
            records: vec![rec("7", "0", "regular"), rec("8", "0", "overtime")],
            lines: vec![old.clone(), line("overtime", 60)],
        };
        // The week lost its overtime: regular rewritten, overtime deleted.
        let i = intent(
            LedgerOp::Update {
                records: before.records.clone(),
                lines: vec![line("regular", 420)],
            },
            before.lines.clone(),
        );
        let new_fp = Some(fingerprint(&i.id, "regular"));
        let applied = run(&i, before.clone(), &[book("7", "1", new_fp.clone(), 420)]);
        assert_eq!(applied.outcome, IntentOutcome::Applied);
        assert_eq!(applied.actual.records, vec![rec("7", "1", "regular")]);
        let untouched = [
            book("7", "0", Some("oldfingerprnt".into()), 480),
            book("8", "0", None, 60),
        ];
        let not = run(&i, before.clone(), &untouched);
        assert_eq!(not.outcome, IntentOutcome::NotApplied);
        assert_eq!(not.actual, before);
        // Rewritten but the extra record still there: partial.
        let part = run(
            &i,
            before.clone(),
            &[book("7", "1", new_fp, 420), book("8", "0", None, 60)],
        );
        assert_eq!(part.outcome, IntentOutcome::Partial);
        assert_eq!(
            part.actual.records,
            vec![rec("7", "1", "regular"), rec("8", "0", "overtime")]
        );
    }

    #[test]
    fn a_delete_is_applied_when_its_records_are_gone_and_copies_are_strays() {
        let before = Actual {
            records: vec![rec("7", "3", "regular")],
            lines: vec![line("regular", 480)],
        };
        let i = intent(
            LedgerOp::Delete {
                records: before.records.clone(),
            },
            before.lines.clone(),
        );
        assert_eq!(run(&i, before.clone(), &[]).outcome, IntentOutcome::Applied);
        // Still there, with a token someone else moved: not applied, and
        // the fresh token is what the next attempt must quote.
        let r = run(&i, before.clone(), &[book("7", "4", None, 480)]);
        assert_eq!(r.outcome, IntentOutcome::NotApplied);
        assert_eq!(r.actual.records, vec![rec("7", "4", "regular")]);

        let create = intent(
            LedgerOp::Create {
                lines: vec![line("regular", 480)],
            },
            vec![],
        );
        let fp = Some(fingerprint(&create.id, "regular"));
        let r = run(
            &create,
            Actual::default(),
            &[book("7", "0", fp.clone(), 480), book("9", "0", fp, 480)],
        );
        assert_eq!(r.outcome, IntentOutcome::Applied);
        assert_eq!(r.strays, vec![rec("9", "0", "regular")]);
    }

    #[test]
    fn each_attempt_has_its_own_key_and_the_query_covers_old_and_new_lines() {
        let mut moved = line("regular", 60);
        moved.txn_date = "2026-03-10".parse().expect("date");
        let a = intent(
            LedgerOp::Create { lines: vec![moved] },
            vec![line("regular", 60)],
        );
        let b = intent(LedgerOp::Create { lines: vec![] }, vec![]);
        assert_ne!(a.idempotency_key(), b.idempotency_key());
        assert!(a.idempotency_key().len() <= 36);
        let q = a.book_query().expect("query");
        assert_eq!(
            (q.from.to_string(), q.to.to_string()),
            ("2026-03-03".into(), "2026-03-10".into())
        );
        assert_eq!(b.book_query(), None);
    }
}
