//! Reading the books back: what a ledger holds, and the fingerprint that
//! lets timepost find again a record it wrote.
//!
//! Every ledger operation timepost sends carries out one write-ahead
//! *intent* (see `crate::intent`). Each record it creates or rewrites is
//! marked with a short **fingerprint** derived from the intent and the
//! line's tier, appended to the record's description as ` [tp:<12 hex>]`.
//! When the outcome of a call is uncertain (a crash between the call and
//! the journal, a timeout, a lost response, a 5xx after the work was done)
//! the engine reads the books ([`crate::ledger::Ledger::read_books`]) and
//! looks for the fingerprint before anything is sent again: the books, not
//! the vendor's idempotency key, decide whether the work was done.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Party;

/// The characters of a fingerprint (hex of the first 6 bytes of a SHA-256).
pub const FINGERPRINT_LEN: usize = 12;
const OPEN: &str = " [tp:";

/// The fingerprint of the record `tier` of intent `intent`.
pub fn fingerprint(intent: &str, tier: &str) -> String {
    let mut h = Sha256::new();
    h.update(intent.as_bytes());
    h.update(b"\x1f");
    h.update(tier.as_bytes());
    hex::encode(h.finalize())[..FINGERPRINT_LEN].to_string()
}

/// `description` with the fingerprint marker appended, cut so the whole
/// stays within `max_chars` (the vendor's limit).
pub fn mark(description: &str, fingerprint: &str, max_chars: usize) -> String {
    let marker = format!("{OPEN}{fingerprint}]");
    let room = max_chars.saturating_sub(marker.chars().count());
    let mut out: String = description.chars().take(room).collect();
    out.push_str(&marker);
    out
}

/// The fingerprint a description carries, if any (the last marker).
pub fn fingerprint_of(description: &str) -> Option<&str> {
    let at = description.rfind(OPEN)?;
    let rest = &description[at + OPEN.len()..];
    let fp = rest.get(..FINGERPRINT_LEN)?;
    let tail = &rest[FINGERPRINT_LEN..];
    (tail.starts_with(']') && fp.bytes().all(|b| b.is_ascii_hexdigit())).then_some(fp)
}

/// The description without timepost's marker.
pub fn unmarked(description: &str) -> &str {
    match (fingerprint_of(description), description.rfind(OPEN)) {
        (Some(_), Some(at)) => &description[..at],
        _ => description,
    }
}

/// Which records to read: a date range (the records' transaction dates,
/// inclusive), narrowed to some employees / vendors and, for ledgers that
/// keep time per project (Xero), to some customers. Empty lists mean all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(default)]
    pub parties: Vec<Party>,
    #[serde(default)]
    pub customers: Vec<String>,
}

impl BookQuery {
    /// Whether a record of `party` and `customer` on `date` is in scope.
    pub fn covers(&self, date: NaiveDate, party: Option<&Party>, customer: Option<&str>) -> bool {
        let party_ok = self.parties.is_empty()
            || party.is_some_and(|p| self.parties.iter().any(|q| q.id() == p.id()));
        let customer_ok = self.customers.is_empty()
            || customer.is_some_and(|c| self.customers.iter().any(|d| d == c));
        date >= self.from && date <= self.to && party_ok && customer_ok
    }
}

/// One time record as the books hold it now, whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookRecord {
    /// The same id form as [`super::RecordRef::id`].
    pub id: String,
    /// What an update or delete must quote now (QBO `SyncToken`).
    pub sync_token: String,
    /// timepost's marker in the description, if the record has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub txn_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<Party>,
    pub minutes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    /// The service item (QBO `ItemRef`, Xero task id), when the books say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_item: Option<String>,
    /// The hourly rate the record carries (QBO `HourlyRate`), when the
    /// books keep one on the time record (Xero keeps rates on the task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_rate: Option<rust_decimal::Decimal>,
    /// The description without the marker.
    pub description: String,
    /// Billed, invoiced or otherwise locked in the books: timepost must
    /// not rewrite it (QBO `HasBeenBilled`, Xero `INVOICED` / `LOCKED`).
    #[serde(default)]
    pub locked: bool,
}

/// What changed in the books since an instant, as a ledger's change feed
/// tells it ([`crate::ledger::Ledger::book_changes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BookChanges {
    /// Every time record created, changed or deleted since the instant
    /// asked for, complete (never cut at a vendor's cap).
    Changes {
        /// Records created or changed, as the books hold them now.
        changed: Vec<BookRecord>,
        /// Ids of records deleted (a deleted record comes back with its id
        /// only).
        deleted: Vec<String>,
    },
    /// The ledger cannot say what changed (it has no change feed, or the
    /// instant is further back than its feed keeps): read the books
    /// ([`crate::ledger::Ledger::read_books`]) and compare instead. `why`
    /// says so in words.
    ReadBooks { why: String },
}

impl BookChanges {
    /// "No change feed": what a ledger without one answers.
    pub fn no_feed(ledger: &str) -> Self {
        BookChanges::ReadBooks {
            why: format!("{ledger} has no change feed for time records"),
        }
    }
}

/// How closely [`differences`] compares a book record with a posted line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Closeness {
    /// Minutes the record may differ by and still agree.
    pub tolerance_minutes: i64,
    /// Also report a description someone changed in the books.
    pub description: bool,
    /// Also compare the service item (when the record reports one).
    pub service_item: bool,
}

/// What a book record shows differently from the line timepost posted, in
/// a bookkeeper's words ("3:00 h instead of 8:00 h", "customer C-2 instead
/// of C-1"): empty when they agree within `how`.
pub fn differences(line: &super::PostingLine, book: &BookRecord, how: Closeness) -> Vec<String> {
    let mut out = Vec::new();
    if (book.minutes - line.minutes).abs() > how.tolerance_minutes.max(0) {
        out.push(format!(
            "{} instead of {}",
            hours(book.minutes),
            hours(line.minutes)
        ));
    }
    if book.txn_date != line.txn_date {
        out.push(format!(
            "dated {} instead of {}",
            book.txn_date, line.txn_date
        ));
    }
    if book.party.as_ref().map(|p| p.id()) != Some(line.party.id()) {
        out.push(format!(
            "for {} instead of {}",
            book.party.as_ref().map_or("nobody", |p| p.id()),
            line.party.id()
        ));
    }
    if book.customer != line.customer {
        out.push(format!(
            "customer {} instead of {}",
            book.customer.as_deref().unwrap_or("none"),
            line.customer.as_deref().unwrap_or("none")
        ));
    }
    if how.service_item && book.service_item.is_some() && book.service_item != line.service_item {
        out.push(format!(
            "service item {} instead of {}",
            book.service_item.as_deref().unwrap_or("none"),
            line.service_item.as_deref().unwrap_or("none")
        ));
    }
    if book.billable.is_some_and(|b| b != line.billable) {
        out.push(if line.billable {
            "not billable".to_string()
        } else {
            "billable".to_string()
        });
    }
    if how.description
        && (book.fingerprint.is_none() || !line.description.starts_with(&book.description))
    {
        out.push(format!("description \"{}\"", book.description));
    }
    out
}

/// Minutes as `H:MM h` (`-H:MM h` below zero).
pub fn hours(minutes: i64) -> String {
    let sign = if minutes < 0 { "-" } else { "" };
    let m = minutes.abs();
    format!("{sign}{}:{:02} h", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_description_gives_its_fingerprint_back() {
        let fp = fingerprint("0f3c", "regular");
        assert_eq!(fp.len(), FINGERPRINT_LEN);
        assert_ne!(fp, fingerprint("0f3c", "overtime"));
        let d = mark("Design review", &fp, 4000);
        assert_eq!(fingerprint_of(&d), Some(fp.as_str()));
        assert_eq!(unmarked(&d), "Design review");
        assert_eq!(fingerprint_of("Design review"), None);
        assert_eq!(
            unmarked("Design review [tp:nothex]"),
            "Design review [tp:nothex]"
        );
    }

    #[test]
    fn the_marker_always_fits_the_vendor_limit() {
        let long = "x".repeat(5000);
        let fp = fingerprint("i", "regular");
        let d = mark(&long, &fp, 4000);
        assert_eq!(d.chars().count(), 4000);
        assert_eq!(fingerprint_of(&d), Some(fp.as_str()));
        let short = mark("", &fp, 4000);
        assert_eq!(fingerprint_of(&short), Some(fp.as_str()));
    }
}
