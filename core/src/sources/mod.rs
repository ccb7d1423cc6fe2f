//! Tracker payloads → normalised entries. One file per tracker; each is a
//! pure function of the payload bytes.
//!
//! Every parser here is fed untrusted bytes (webhook bodies, CSV uploads) and
//! is fuzzed: none may panic, whatever the input. Failures are [`ParseError`]s
//! naming the field (a JSON-pointer-like path such as `timeInterval.start` or
//! `[3].payload.start`) and, for arrays and CSV files, the position.
//!
//! ## Numbers and money
//!
//! Money and hours are never floats. JSON numbers are read as
//! [`rust_decimal::Decimal`] from the *text* of the [`serde_json::Number`]
//! (integers exactly; other numbers from their shortest round-trip decimal
//! form, which is the text the vendor sent for any value of up to 15
//! significant digits, i.e. every realistic rate or hour count). serde_json's
//! `arbitrary_precision` feature was deliberately NOT enabled: features unify
//! across the workspace and that one changes how every other crate's
//! `serde_json::Value` behaves. Numeric strings (`"1.5"`) are accepted too.
//! Rates read from decimal text (Harvest, CSV) are normalised (`100.0` and
//! `100` are the same amount) so the content hash does not depend on how the
//! vendor wrote the number; Clockify's integer minor units always give two
//! decimal places (`Money::from_minor`).
//!
//! ## Versions
//!
//! `version.updated_at` is the tracker's last-modified instant where the
//! payload has one (Toggl `at`, Harvest `updated_at`, Clockify
//! `lastUpdated`/`updatedAt` when present). Otherwise it is
//! [`ParseContext::received_at`] (the delivery time, which the webhook
//! handler sets), and only when that is unset too does it fall back to the
//! entry's end, then start (then, for date-only CSV rows, the start of the
//! work date). That last fallback cannot order two edits of the same entry:
//! callers that can know the delivery time must set `received_at`.
//!
//! ## Field sizes
//!
//! Every field read is capped, so one hostile cell cannot fill the queue,
//! the store or a page: free text (notes, descriptions) at
//! [`MAX_NOTES_CHARS`] (4,000 characters, QuickBooks Online's limit for a
//! time record's description), names, e-mails, ids and each tag at
//! [`MAX_NAME_CHARS`] (255). In a CSV file the list columns (`tags`,
//! `attachments`) take [`MAX_NOTES_CHARS`] too, every other cell
//! [`MAX_NAME_CHARS`]. A longer field is a [`ParseError`] naming the field
//! (and the CSV line): the webhook answers 400, the import reports the row.
//! Fields timepost does not read are not checked (the body limit of the
//! HTTP router, 1 MiB, bounds them).
//!
//! ## Local times
//!
//! Local wall-clock times (CSV, Harvest `started_time`) are resolved in the
//! user's time zone ([`ParseContext::tz_for`]). An ambiguous local time (the
//! repeated hour when clocks go back) resolves to the earlier instant; a
//! nonexistent one (the hour skipped when clocks go forward) resolves to the
//! first valid instant after the gap, i.e. the moment of the transition.

pub mod clockify;
pub mod csv_import;
#[doc(hidden)]
pub mod fuzzing;
pub mod harvest;
pub mod signature;
pub mod toggl;

mod util;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::model::{ApprovalStatus, Currency, NormalisedEntry, Source};

/// The longest notes / description accepted, in characters (QuickBooks
/// Online's limit for a time record's description).
pub const MAX_NOTES_CHARS: usize = crate::pipeline::MAX_DESCRIPTION_CHARS;

/// The longest name, e-mail, id or tag accepted, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// What a parser needs beyond the bytes: time zones for local work dates.
#[derive(Debug, Clone)]
pub struct ParseContext {
    pub default_tz: Tz,
    /// Time zone per tracker user id (from the employee mapping), overriding default_tz.
    pub user_tz: HashMap<String, Tz>,
    /// Harvest: post `rounded_hours` (and mark already_rounded) instead of `hours`.
    pub harvest_use_rounded: bool,
    /// When the delivery was received. Used as `version.updated_at` when the
    /// payload carries no modification time (Clockify webhooks, vendor CSV
    /// exports); see the module documentation.
    pub received_at: Option<DateTime<Utc>>,
    /// Harvest: the account id (`Harvest-Account-Id`), used as the entry key's
    /// workspace since Harvest entries do not carry it. `None` → `"default"`.
    pub harvest_account_id: Option<String>,
    /// Harvest: the currency of each client's rates, by client id (from
    /// `GET /v2/clients/{id}`, whose client object has `currency`). A time
    /// entry's `client` holds only `id` and `name`.
    pub harvest_client_currency: HashMap<String, Currency>,
    /// Harvest: the account's currency (`[intake.harvest] currency`), for a
    /// client whose own currency is not known.
    pub harvest_account_currency: Option<Currency>,
}

impl ParseContext {
    pub fn new(default_tz: Tz) -> Self {
        Self {
            default_tz,
            user_tz: HashMap::new(),
            harvest_use_rounded: false,
            received_at: None,
            harvest_account_id: None,
            harvest_client_currency: HashMap::new(),
            harvest_account_currency: None,
        }
    }

    /// The time zone of a tracker user: the mapping's, else the default.
    pub fn tz_for(&self, user_id: &str) -> Tz {
        self.user_tz
            .get(user_id)
            .copied()
            .unwrap_or(self.default_tz)
    }

    /// The time zone the mapping sets for a tracker user, if any (a
    /// payload's own time zone comes next, then the default).
    pub fn mapped_tz(&self, user_id: &str) -> Option<Tz> {
        self.user_tz.get(user_id).copied()
    }

    /// The Harvest account id used as workspace (`"default"` when unset).
    pub fn harvest_workspace(&self) -> &str {
        self.harvest_account_id.as_deref().unwrap_or("default")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Entries created or updated (also deletions carried as entries with deleted = true).
    Entries { entries: Vec<NormalisedEntry> },
    /// Toggl subscription validation: answer 200 with {"validation_code": code}.
    Ping { validation_code: Option<String> },
    /// A manager approved/rejected a user's time for a date range (Clockify APPROVAL_REQUEST_STATUS_UPDATED).
    Approval {
        source: Source,
        workspace: String,
        user_id: String,
        from: NaiveDate,
        to: NaiveDate,
        status: ApprovalStatus,
    },
    /// A known-but-irrelevant or unknown event kind: acknowledged and ignored, with the reason to log.
    Ignored { reason: String },
}

/// A delivery, parsed: the vendor's event id when it has one (for replay detection) and the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parsed {
    pub event_id: Option<String>,
    pub event: Event,
}

/// Why a payload could not be parsed: names the field (JSON pointer-like path, e.g. `timeInterval.start` or
/// `[3].payload.start`) and, for arrays/CSV, the position (0-based index or 1-based CSV line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {message}", .position.map(|p| format!("at {p}: ")).unwrap_or_default())]
pub struct ParseError {
    pub position: Option<usize>,
    pub field: String,
    pub message: String,
}

impl ParseError {
    pub fn new(
        position: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            position,
            field: field.into(),
            message: message.into(),
        }
    }
}
