//! What timepost sends to an accounting system, and the port every ledger
//! adapter implements ([`Ledger`]). The adapters themselves (QuickBooks
//! Online, Xero, the strict sandbox ledger) live outside the core, in the
//! `timepost` crate's `ledger` module; [`books`] is what the engine reads
//! back from the books.

pub mod books;
pub mod tokens;

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::exceptions::Exception;
use crate::model::{EntryKey, Money, Version};

/// Who is paid for the time: an employee (payroll) or a vendor (contractor).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Party {
    Employee {
        id: String,
    },
    Vendor {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        form_1099: Option<String>,
    },
}

impl Party {
    pub fn id(&self) -> &str {
        match self {
            Party::Employee { id } | Party::Vendor { id, .. } => id,
        }
    }
}

/// One time record for the ledger (a QBO TimeActivity, a Xero time entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PostingLine {
    /// `regular` or an overtime tier name.
    pub tier: String,
    pub party: Party,
    pub txn_date: NaiveDate,
    pub minutes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payroll_item: Option<String>,
    /// The GL account this time is costed to (labour expense) or earns into
    /// (billable income).
    pub account: String,
    pub billable: bool,
    /// Hourly rate sent to the ledger (home currency when converted here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_rate: Option<Money>,
    /// The tracker's rate before conversion, with the rate and its date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_rate: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx_date: Option<NaiveDate>,
    pub description: String,
}

impl PostingLine {
    /// Billable amount of this line (hours × rate), to the cent. `None`
    /// when the line is not billable, has no rate, or the product does not
    /// fit a `Decimal` (see [`PostingLine::checked_billable_amount`], which
    /// tells the last case apart). Never panics.
    pub fn billable_amount(&self) -> Option<Money> {
        self.checked_billable_amount().ok().flatten()
    }

    /// Billable amount of this line (hours × rate), to the cent:
    /// `Ok(None)` when the line is not billable or has no rate, an error
    /// when hours × rate does not fit a `Decimal`.
    pub fn checked_billable_amount(&self) -> Result<Option<Money>, crate::money::AmountOverflow> {
        let Some(rate) = self.hourly_rate.as_ref().filter(|_| self.billable) else {
            return Ok(None);
        };
        let amount = crate::rules::hours(self.minutes)
            .checked_mul(rate.amount)
            .ok_or(crate::money::AmountOverflow)?
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        Ok(Some(Money::new(amount, rate.currency.clone())))
    }
}

/// A record the ledger holds for one posting line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRef {
    pub id: String,
    /// QBO `SyncToken` (or the equivalent), needed to update or delete.
    pub sync_token: String,
    pub tier: String,
}

/// What to do in the ledger for one entry version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LedgerOp {
    Create {
        lines: Vec<PostingLine>,
    },
    /// Replace the entry's records with `lines` (matching by tier; extra
    /// records are deleted, missing ones created).
    Update {
        records: Vec<RecordRef>,
        lines: Vec<PostingLine>,
    },
    Delete {
        records: Vec<RecordRef>,
    },
}

impl LedgerOp {
    pub fn name(&self) -> &'static str {
        match self {
            LedgerOp::Create { .. } => "create",
            LedgerOp::Update { .. } => "update",
            LedgerOp::Delete { .. } => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRequest {
    pub key: EntryKey,
    pub version: Version,
    /// Derived from the write-ahead intent this request carries out: a
    /// retry of the same intent sends the same key; after a definite
    /// failure the next attempt is a new intent with a new key, so a
    /// vendor's cached fault is never replayed after a fix.
    pub idempotency_key: String,
    /// The intent's id ("" for none). Each record written is marked with
    /// [`books::fingerprint`]`(intent, tier)` in its description, so it can
    /// be found again by reading the books.
    #[serde(default)]
    pub intent: String,
    pub op: LedgerOp,
}

impl LedgerRequest {
    /// The fingerprint the record of `tier` carries (None without an intent).
    pub fn fingerprint(&self, tier: &str) -> Option<String> {
        (!self.intent.is_empty()).then(|| books::fingerprint(&self.intent, tier))
    }

    /// `line`'s description as sent: with the fingerprint marker, within
    /// `max_chars` (the vendor's limit).
    pub fn marked_description(&self, line: &PostingLine, max_chars: usize) -> String {
        match self.fingerprint(&line.tier) {
            Some(fp) => books::mark(&line.description, &fp, max_chars),
            None => line.description.chars().take(max_chars).collect(),
        }
    }
}

/// Why the ledger did not take a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// The ledger refused the content: retrying will not help.
    #[error("rejected: {0}")]
    Rejected(Exception),
    /// Rate-limited; wait at least this long.
    #[error("rate limited (retry after {0:?})")]
    RateLimited(Option<Duration>),
    /// Network, timeout, 5xx: retry with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
}

impl LedgerError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, LedgerError::Rejected(_))
    }

    /// The exception recorded when retries are exhausted or not allowed.
    pub fn into_exception(self) -> Exception {
        match self {
            LedgerError::Rejected(e) => e,
            other => Exception::ledger_unavailable(other),
        }
    }
}

/// The port every accounting adapter implements.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// A short name for logs and reports (`sandbox`, `qbo`, `xero`).
    fn name(&self) -> &str;
    /// Apply one request. Idempotent by `idempotency_key`.
    async fn apply(&self, request: &LedgerRequest) -> Result<Vec<RecordRef>, LedgerError>;
    /// Apply several requests, each with its own result, in order. Adapters
    /// that can batch (QBO) override this; by default one after another.
    async fn apply_many(
        &self,
        requests: &[LedgerRequest],
    ) -> Vec<Result<Vec<RecordRef>, LedgerError>> {
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            out.push(self.apply(r).await);
        }
        out
    }
    /// Every time record the ledger holds that timepost posted, as
    /// (entry key, line): what reconciliation compares with the tracker.
    /// `None` when the adapter cannot read back.
    async fn read_back(&self) -> Result<Option<Vec<(String, PostingLine)>>, LedgerError> {
        Ok(None)
    }
    /// The time records the books hold now in `query`'s scope, whoever
    /// wrote them, with the vendor's own paging. What resolves an uncertain
    /// outcome (is the intent's fingerprint there?) and what reconciliation
    /// compares. `None` when the adapter cannot read the books.
    async fn read_books(
        &self,
        _query: &books::BookQuery,
    ) -> Result<Option<Vec<books::BookRecord>>, LedgerError> {
        Ok(None)
    }
    /// The time records created, changed or deleted in the books since
    /// `since`, whoever did it: what the scheduled pass over the books
    /// (the engine's `watch_books_pass`, in the `timepost` crate) reads. By default
    /// [`books::BookChanges::ReadBooks`]: this ledger has no change feed,
    /// so callers read the books ([`Ledger::read_books`]) and compare. An
    /// adapter with a feed answers in full or not at all: a feed that
    /// would be cut at the vendor's cap, or an instant further back than
    /// the feed keeps, is `ReadBooks` with the reason, never a silent
    /// truncation.
    async fn book_changes(
        &self,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<books::BookChanges, LedgerError> {
        Ok(books::BookChanges::no_feed(self.name()))
    }
}
