//! The catalogue of exception codes: every reason an entry can be held or
//! refused, each with a stable code, a sentence a bookkeeper understands and a
//! fix hint. The role guides' quick reference is generated from this table
//! (`timepost explain --all`), so the words live in one place; the
//! sentence each entry's exception carries is built in [`sentences`], one
//! constructor per situation.

pub mod sentences;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($( $variant:ident => $code:literal, $title:literal, $hint:literal; )*) => {
        /// A stable exception code. The string form (e.g. `UNMAPPED_PROJECT`)
        /// is what is stored, exported and shown; it never changes meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ExceptionCode { $( $variant, )* }

        impl ExceptionCode {
            pub const ALL: &'static [ExceptionCode] = &[ $( ExceptionCode::$variant, )* ];
            pub fn as_str(self) -> &'static str {
                match self { $( ExceptionCode::$variant => $code, )* }
            }
            /// One line: what went wrong, in a bookkeeper's words.
            pub fn title(self) -> &'static str {
                match self { $( ExceptionCode::$variant => $title, )* }
            }
            /// What to do about it.
            pub fn fix_hint(self) -> &'static str {
                match self { $( ExceptionCode::$variant => $hint, )* }
            }
        }

        impl FromStr for ExceptionCode {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.to_ascii_uppercase().as_str() {
                    $( $code => Ok(ExceptionCode::$variant), )*
                    other => Err(format!("unknown exception code `{other}`")),
                }
            }
        }
    };
}

codes! {
    UnmappedEmployee => "UNMAPPED_EMPLOYEE",
        "The person who tracked this time is not linked to an employee or vendor in the books.",
        "Add the tracker user (id or e-mail) to the `employee` table, or to `vendor` for a contractor, then redrive.";
    UnmappedProject => "UNMAPPED_PROJECT",
        "The tracker project is not linked to a customer or job in the books.",
        "Add the project (id or name) to the `project` mapping table with the customer/job it bills to.";
    UnmappedServiceItem => "UNMAPPED_SERVICE_ITEM",
        "No service item is mapped for this task or tag, so the books cannot tell what kind of work it was.",
        "Add the task or tag to the `service_item` table, or add a `*` row as the default service item.";
    UnmappedPayrollItem => "UNMAPPED_PAYROLL_ITEM",
        "These hours include overtime, but no payroll item is mapped for that overtime tier.",
        "Add the tier (e.g. `overtime`, `double_time`) to the `payroll_item` table.";
    UnmappedGlAccount => "UNMAPPED_GL_ACCOUNT",
        "A general-ledger account this posting needs (labour expense or billable income) is not mapped.",
        "Add the account role to the `gl_account` table (roles: labour_expense, billable_income, payroll_liabilities, holding).";
    ContractorMappedAsEmployee => "CONTRACTOR_MAPPED_AS_EMPLOYEE",
        "The tracker marks this person as a contractor, but they are linked to an employee; contractors must be paid as vendors, never through payroll.",
        "Move the person's mapping from the `employee` table to the `vendor` table (with their 1099 code).";
    MissingRate => "MISSING_RATE",
        "The time is billable but carries no hourly rate, and the rules say the rate comes from the tracker.",
        "Set a billable rate on the project or user in the tracker, or switch `rules.billable.rate_source` to `ledger`.";
    NoExchangeRate => "NO_EXCHANGE_RATE",
        "The rate is in a foreign currency and there is no exchange rate for that day.",
        "Add a rate for the currency pair dated on or before the work date to `rules.currency.rates`, then redrive.";
    EntryTooLong => "ENTRY_TOO_LONG",
        "This single entry is longer than the longest shift the rules allow; most often a timer left running.",
        "Correct the entry in the tracker (the corrected version will flow in), or raise `rules.max_entry_hours`.";
    InvalidEntry => "INVALID_ENTRY",
        "The entry's times do not make sense (it ends before it starts, or has no duration).",
        "Correct the entry in the tracker; the corrected version will replace this one.";
    RateOutOfBounds => "RATE_OUT_OF_BOUNDS",
        "The hourly rate on this entry is negative or higher than any rate the rules accept; most often a typo in the tracker.",
        "Correct the rate on the project or user in the tracker (the corrected version will flow in); if the rate is real, raise `rules.bounds.max_hourly_rate` (or the currency's ceiling in `rules.bounds.max_hourly_rate_by_currency`), then redrive.";
    WorkDateOutOfRange => "WORK_DATE_OUT_OF_RANGE",
        "The entry's work date lies further in the future or the past than the rules accept; most often a typo in the year.",
        "Correct the date in the tracker (the corrected version will flow in); if the date is real, widen `rules.bounds.max_days_ahead` or `rules.bounds.max_days_back`, then redrive.";
    LedgerUnknownReference => "LEDGER_UNKNOWN_REFERENCE",
        "The books do not know an account, customer, item, employee or vendor this posting refers to (deleted or made inactive?).",
        "Check the mapping points at an active record in the books, fix the mapping, then redrive.";
    LedgerRejected => "LEDGER_REJECTED",
        "The accounting system refused the posting.",
        "Read the accounting system's message below, correct the cause, then redrive.";
    PeriodClosed => "PERIOD_CLOSED",
        "The accounting period for this date is closed in the books.",
        "Ask the controller to reopen the period, or post the time into the open period, then redrive.";
    LedgerValidation => "LEDGER_VALIDATION",
        "The accounting system found a required field missing or a value it does not accept in this time record.",
        "Read the accounting system's message below (it names the field), fix the mapping or the entry, then redrive.";
    LedgerInactiveReference => "LEDGER_INACTIVE_REFERENCE",
        "A customer, item, employee, vendor or class this time record names has been made inactive in the books.",
        "Reactivate the record in the books, or point the mapping at an active one, then redrive.";
    LedgerStaleRecord => "LEDGER_STALE_RECORD",
        "Someone changed this time record in the books after timepost posted it, so timepost will not overwrite it.",
        "Check the record in the books; keep their change or remove it, then redrive the entry.";
    LedgerDuplicate => "LEDGER_DUPLICATE",
        "The accounting system says a record with the same name or number already exists.",
        "Find the existing record in the books; remove the duplicate or rename it, then redrive.";
    LedgerNotAuthorised => "LEDGER_NOT_AUTHORISED",
        "timepost is not (or no longer) allowed to post to this company in the accounting system.",
        "Reconnect the company (new OAuth consent with an admin user), store the new refresh token, then redrive.";
    LedgerCompanyStatus => "LEDGER_COMPANY_STATUS",
        "The company's subscription in the accounting system is not active, so it accepts no postings.",
        "Ask the company's admin to reactivate the subscription, then redrive.";
    LedgerRecordLocked => "LEDGER_RECORD_LOCKED",
        "The time record is locked or already invoiced in the books, so it cannot be changed or removed.",
        "Credit or adjust the invoice in the books if the time must change; otherwise leave it and dismiss this exception.";
    TrackerEntryUnreadable => "TRACKER_ENTRY_UNREADABLE",
        "The time tracker sent this entry in a form timepost cannot read, so it is not in the books as the tracker shows it.",
        "Read the reason below (it names the field); correct the entry in the tracker and the corrected version flows in with the next poll, or dismiss this exception if the entry should not be posted.";
    UnreadableMessage => "UNREADABLE_MESSAGE",
        "A message waiting in the queue could not be read by this version of timepost, so it was set aside instead of posted; nothing of it reached the books.",
        "Read the reason with the dead letter (it says what could not be read). If the message came from another timepost version, redrive it once every part runs the same version; otherwise discard it and have the tracker send the entry again.";
    LedgerCompanySetting => "LEDGER_COMPANY_SETTING",
        "A company setting in the books does not allow a field this time record uses (class or location tracking is off).",
        "Turn the setting the message names on in the books (QuickBooks: Settings → Account and settings → Advanced → Categories), or remove the class / department mapping, then redrive.";
    LedgerForeignCurrency => "LEDGER_FOREIGN_CURRENCY",
        "The billable rate is in another currency than the books' home currency, and the books keep time rates in the home currency only.",
        "Let timepost convert: set `rules.currency.conversion_point = \"timepost\"` and add a rate for the pair to `rules.currency.rates` (or correct `rules.currency.home`), then redrive.";
    RolledBack => "ROLLED_BACK",
        "This entry was taken back out of the books by a rollback of its import batch.",
        "Fix whatever the rollback was for, then redrive the entry to post it again.";
    LedgerUnavailable => "LEDGER_UNAVAILABLE",
        "The accounting system kept failing or rate-limiting this posting after every retry.",
        "Nothing is wrong with the entry; redrive it once the accounting system is reachable again.";
    MissingInBooks => "MISSING_IN_BOOKS",
        "Reconciliation: timepost posted this time, but the books hold no record of it for one of its lines.",
        "Run `timepost reconcile resolve BREAK_ID --repost` to post timepost's version again, or `--dismiss \"reason\"` if the time must stay out of the books.";
    DeletedInBooks => "DELETED_IN_BOOKS",
        "Reconciliation: a time record timepost posted was deleted in the books by someone else.",
        "If the deletion was a mistake, `timepost reconcile resolve BREAK_ID --repost` posts it again; if it was meant, correct or delete the entry in the tracker, or `--accept-books` so timepost stops expecting it.";
    ChangedInBooks => "CHANGED_IN_BOOKS",
        "Reconciliation: a time record timepost posted was changed in the books (hours, date, person, customer, service item or billable status).",
        "Keep the books' version with `timepost reconcile resolve BREAK_ID --accept-books`, or restore timepost's with `--repost`; better, make the change in the tracker so both agree.";
    DuplicateInBooks => "DUPLICATE_IN_BOOKS",
        "Reconciliation: the books hold a second record carrying the same timepost fingerprint as a record of this entry, so the time is counted twice.",
        "Delete the extra record in the books (the break names it), then `timepost reconcile resolve BREAK_ID --dismiss \"deleted the copy\"`; the next run confirms it.";
    UnownedInBooks => "UNOWNED_IN_BOOKS",
        "Reconciliation: the books hold a record marked by timepost that no entry owns any more (left behind by an earlier version or a restore).",
        "Check the record in the books: delete it if the time is already posted elsewhere, then dismiss the break with the reason.";
    BilledWithNewerVersion => "BILLED_WITH_NEWER_VERSION",
        "Reconciliation: the time record is billed or locked in the books, while timepost holds a newer version of the entry that it cannot post over it.",
        "Credit or adjust the invoice in the books so the record can change, then `--repost`; or `--accept-books` to keep the billed version.";
    NeverReceived => "NEVER_RECEIVED",
        "Reconciliation: the tracker lists this entry (or a newer version of it) for the period, but timepost never received it; most often a lost webhook.",
        "Run `timepost poll SOURCE` to fetch it now (or re-send it with `timepost ingest`); the next reconciliation confirms it arrived.";
    AmountDiffers => "AMOUNT_DIFFERS",
        "Reconciliation: the billable amount the books hold for this record differs from timepost's by more than the tolerance (most often the rate was changed in the books).",
        "Correct the rate in the books or the tracker, or `timepost reconcile resolve BREAK_ID --repost` to send timepost's amount again; widen `[reconcile] tolerance_amount` if the difference is rounding.";
    NotTimepostsRecord => "NOT_TIMEPOSTS_RECORD",
        "Reconciliation (information): the books hold a time record that timepost did not write, such as time keyed in by hand.",
        "Nothing to do unless the time is also in the tracker (then it is counted twice: delete one). Set `[reconcile] foreign_records_are_breaks = true` to treat these as breaks.";
}

impl fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one entry did not post: the code, the specific sentence for this entry,
/// the fix, and, when a mapping is missing, which one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub code: ExceptionCode,
    /// The specific explanation for this entry (names the person, project…).
    pub message: String,
    pub fix_hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_mapping: Option<MissingMapping>,
    /// The ledger's own words, kept verbatim when it refused the posting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_message: Option<String>,
}

/// The mapping whose absence caused an exception or a hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MissingMapping {
    pub table: String,
    pub key: String,
}

impl Exception {
    pub fn new(code: ExceptionCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            message: detail.into(),
            fix_hint: code.fix_hint().to_string(),
            missing_mapping: None,
            vendor_message: None,
        }
    }

    pub fn missing(
        code: ExceptionCode,
        detail: impl Into<String>,
        table: &str,
        key: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(code, detail);
        e.missing_mapping = Some(MissingMapping {
            table: table.to_string(),
            key: key.into(),
        });
        e
    }

    pub fn with_vendor_message(mut self, msg: impl Into<String>) -> Self {
        self.vendor_message = Some(msg.into());
        self
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_explains_itself() {
        for code in ExceptionCode::ALL {
            assert_eq!(code.as_str().parse::<ExceptionCode>().unwrap(), *code);
            assert!(code.title().ends_with('.'), "{code} title is a sentence");
            assert!(!code.fix_hint().is_empty());
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
