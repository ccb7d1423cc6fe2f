//! The normalised time entry and the identifiers every other module speaks in.
//!
//! A source adapter turns a tracker payload into [`NormalisedEntry`]; nothing
//! downstream ever sees a vendor's shape. Fields the plan does not need
//! (geolocation, device ids, custom fields) are dropped by the adapter and have
//! no place here, so they cannot be stored by accident.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The tracker an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Clockify,
    Toggl,
    Harvest,
    Csv,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Clockify => "clockify",
            Source::Toggl => "toggl",
            Source::Harvest => "harvest",
            Source::Csv => "csv",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "clockify" => Ok(Source::Clockify),
            "toggl" => Ok(Source::Toggl),
            "harvest" => Ok(Source::Harvest),
            "csv" => Ok(Source::Csv),
            other => Err(format!(
                "unknown source `{other}` (expected clockify, toggl, harvest or csv)"
            )),
        }
    }
}

/// The identity of an entry: the same tracker entry always has the same key,
/// whatever version of it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryKey {
    pub source: Source,
    pub workspace: String,
    pub id: String,
}

impl EntryKey {
    pub fn new(source: Source, workspace: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            source,
            workspace: workspace.into(),
            id: id.into(),
        }
    }
}

/// The text form of an entry key is `source:workspace:id`, each part
/// escaped so that the text is injective: `%` is written `%25` and `:`
/// `%3A` (nothing else changes, so a key whose parts contain neither reads
/// exactly as it always has). Workspace `ws:x` + id `y` is
/// `csv:ws%3Ax:y`, workspace `ws` + id `x:y` is `csv:ws:x%3Ay`: two keys,
/// never one. Stores key entries by this text; a key in a URL path is this
/// text, percent-encoded once more by the URL.
impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.source,
            escape_key_part(&self.workspace),
            escape_key_part(&self.id)
        )
    }
}

/// One part of an entry key's text form: `%` → `%25`, `:` → `%3A`.
pub fn escape_key_part(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains(['%', ':']) {
        std::borrow::Cow::Owned(part.replace('%', "%25").replace(':', "%3A"))
    } else {
        std::borrow::Cow::Borrowed(part)
    }
}

/// The inverse of [`escape_key_part`]; only `%25` and `%3A` are accepted
/// after a `%` (so every text has at most one reading).
fn unescape_key_part(part: &str) -> Option<String> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3)?;
        out.push(match esc {
            "%25" => '%',
            "%3A" => ':',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl FromStr for EntryKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not an entry key (source:workspace:id, with a `:` inside the \
                 workspace or id written %3A and a `%` written %25)"
            )
        };
        let mut parts = s.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(src), Some(ws), Some(id), None) if !id.is_empty() => Ok(EntryKey::new(
                src.parse()?,
                unescape_key_part(ws).ok_or_else(bad)?,
                unescape_key_part(id).ok_or_else(bad)?,
            )),
            _ => Err(bad()),
        }
    }
}

/// Which version of an entry this is. Versions are totally ordered: by the
/// tracker's last-modified instant, then by content hash so that two edits in
/// the same second still converge to one winner on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub updated_at: DateTime<Utc>,
    pub content_hash: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{}",
            self.updated_at.to_rfc3339(),
            &self.content_hash[..self.content_hash.len().min(12)]
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkerKind {
    #[default]
    Employee,
    Contractor,
}

/// Who did the work, as the tracker knows them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Worker {
    pub tracker_user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the tracker says, if it says anything; the mapping decides in the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkerKind>,
    /// IRS 1099 box code for contractors (e.g. `NEC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_1099: Option<String>,
}

/// A reference to a tracker object (project, client, task).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ref {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Ref {
    pub fn new(id: impl Into<String>, name: Option<String>) -> Self {
        Self {
            id: id.into(),
            name,
        }
    }
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// An ISO 4217 currency code, upper case, three letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let up = s.trim().to_ascii_uppercase();
        if up.len() == 3 && up.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(up))
        } else {
            Err(format!("`{s}` is not an ISO 4217 currency code"))
        }
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::try_from(s.to_string())
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decimal money with its currency. Never a float.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }
    /// Build from minor units (cents), as Clockify sends them.
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self {
            amount: Decimal::new(minor, 2),
            currency,
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount.round_dp(2), self.currency)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Approved,
    Pending,
    Rejected,
    /// The tracker says nothing about approval in this payload (Clockify
    /// entries; approval arrives by separate events).
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    #[default]
    Web,
    Mobile,
    OfflineEdited,
    Import,
}

/// One time entry in timepost's own terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalisedEntry {
    pub key: EntryKey,
    pub version: Version,
    pub worker: Worker,
    /// IANA time zone the work date is computed in.
    pub time_zone: Tz,
    /// The worker's local calendar date of the start of the work.
    pub work_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// `None` while a timer is running: such an entry is never posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// Worked seconds, measured between instants (so a DST day is right).
    pub duration_secs: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Ref>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub billable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Money>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    pub approval: ApprovalStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    pub origin: Origin,
    #[serde(default)]
    pub deleted: bool,
    /// The tracker has already rounded this duration (Harvest `rounded_hours`,
    /// a CSV column flagged as rounded): timepost must not round it again.
    #[serde(default)]
    pub already_rounded: bool,
}

impl NormalisedEntry {
    pub fn is_running(&self) -> bool {
        self.end.is_none() && self.start.is_some() && !self.deleted
    }

    /// Monday of the ISO week the work date falls in: the unit overtime is
    /// computed over.
    pub fn week_start(&self) -> NaiveDate {
        week_start(self.work_date)
    }

    /// Hash of everything that changes what would be posted. Two payloads
    /// with the same content hash are the same entry version.
    pub fn compute_content_hash(&self) -> String {
        content_hash(self)
    }

    /// Fill `version.content_hash` from the content. Adapters call this last.
    pub fn seal(mut self) -> Self {
        self.version.content_hash = content_hash(&self);
        self
    }
}

/// Monday of the ISO week of `d`.
pub fn week_start(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

/// The local date of `instant` in `tz`.
pub fn local_date(instant: DateTime<Utc>, tz: Tz) -> NaiveDate {
    instant.with_timezone(&tz).date_naive()
}

fn content_hash(e: &NormalisedEntry) -> String {
    /// Everything that changes what would be posted; not the version itself.
    #[derive(Serialize)]
    struct Content<'a> {
        worker: &'a Worker,
        tz: &'a str,
        // Dates and instants as integers: formatting them as text for every
        // entry was a measurable share of parsing a webhook.
        date: i32,
        start: Option<i64>,
        end: Option<i64>,
        secs: i64,
        project: &'a Option<Ref>,
        client: &'a Option<Ref>,
        task: &'a Option<Ref>,
        tags: &'a [String],
        billable: bool,
        rate: &'a Option<Money>,
        notes: &'a str,
        approval: ApprovalStatus,
        attachments: &'a [String],
        deleted: bool,
        rounded: bool,
    }
    /// Streams serialised bytes straight into the hash (no allocation).
    struct HashWriter(Sha256);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = HashWriter(Sha256::new());
    // Serialising these plain types into a writer that never fails cannot fail.
    let _ = serde_json::to_writer(
        &mut w,
        &Content {
            worker: &e.worker,
            tz: e.time_zone.name(),
            date: e.work_date.num_days_from_ce(),
            start: e.start.map(|t| t.timestamp_micros()),
            end: e.end.map(|t| t.timestamp_micros()),
            secs: e.duration_secs,
            project: &e.project,
            client: &e.client,
            task: &e.task,
            tags: &e.tags,
            billable: e.billable,
            rate: &e.rate,
            notes: &e.notes,
            approval: e.approval,
            attachments: &e.attachments,
            deleted: e.deleted,
            rounded: e.already_rounded,
        },
    );
    hex::encode(&w.0.finalize()[..16])
}

/// The idempotency key sent to a ledger for one operation on one entry
/// version. Derived, never random, so a retry after a crash sends the same
/// key and the ledger answers with the original record. 36 characters: QBO's
/// batch `requestid` limit.
pub fn idempotency_key(key: &EntryKey, version: &Version, operation: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.to_string().as_bytes());
    h.update(b"\x1f");
    h.update(version.updated_at.to_rfc3339().as_bytes());
    h.update(b"\x1f");
    h.update(version.content_hash.as_bytes());
    h.update(b"\x1f");
    h.update(operation.as_bytes());
    let hex = hex::encode(h.finalize());
    format!("tp-{}", &hex[..33])
}

/// The worker a week belongs to: same tracker, workspace and user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerWeek {
    pub source: Source,
    pub workspace: String,
    pub user_id: String,
    pub week_start: NaiveDate,
}

impl WorkerWeek {
    /// The weeks of one tracker user that the dates `from..=to` touch (in
    /// either order), earliest first: what an approval of a range settles.
    pub fn spanning(
        source: Source,
        workspace: &str,
        user_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<Self> {
        let (lo, hi) = (from.min(to), from.max(to));
        let mut out = Vec::new();
        let mut start = week_start(lo);
        while start <= hi {
            out.push(Self {
                source,
                workspace: workspace.to_string(),
                user_id: user_id.to_string(),
                week_start: start,
            });
            start += chrono::Duration::days(7);
        }
        out
    }

    pub fn of(e: &NormalisedEntry) -> Self {
        Self {
            source: e.key.source,
            workspace: e.key.workspace.clone(),
            user_id: e.worker.tracker_user_id.clone(),
            week_start: e.week_start(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_key_round_trips_through_text() {
        let k = EntryKey::new(Source::Toggl, "123", "abc:def");
        assert_eq!(k.to_string(), "toggl:123:abc%3Adef");
        assert_eq!(k.to_string().parse::<EntryKey>().unwrap(), k);
        let k = EntryKey::new(Source::Csv, "w%s:", "%3A");
        assert_eq!(k.to_string(), "csv:w%25s%3A:%253A");
        assert_eq!(k.to_string().parse::<EntryKey>().unwrap(), k);
    }

    #[test]
    fn keys_without_colon_or_percent_read_as_before() {
        let k = EntryKey::new(Source::Clockify, "5f1e2d3c", "64a0b1c2-x_y.z#1");
        assert_eq!(k.to_string(), "clockify:5f1e2d3c:64a0b1c2-x_y.z#1");
    }

    #[test]
    fn colliding_identities_have_distinct_keys() {
        let a = EntryKey::new(Source::Csv, "ws:x", "y");
        let b = EntryKey::new(Source::Csv, "ws", "x:y");
        assert_ne!(a.to_string(), b.to_string());
        assert_eq!(a.to_string().parse::<EntryKey>().unwrap(), a);
        assert_eq!(b.to_string().parse::<EntryKey>().unwrap(), b);
    }

    #[test]
    fn text_that_is_no_canonical_key_is_refused() {
        for bad in [
            "csv:ws:x:y",
            "csv:ws",
            "csv:ws:",
            "csv:ws:a%3a",
            "csv:ws:a%",
            "csv:w%zz:a",
            "nope:ws:a",
        ] {
            assert!(bad.parse::<EntryKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn idempotency_key_is_stable_and_short() {
        let k = EntryKey::new(Source::Clockify, "ws", "e1");
        let v = Version {
            updated_at: "2026-03-02T10:00:00Z".parse().unwrap(),
            content_hash: "abc".into(),
        };
        let a = idempotency_key(&k, &v, "create");
        assert_eq!(a, idempotency_key(&k, &v, "create"));
        assert_ne!(a, idempotency_key(&k, &v, "update"));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn week_starts_on_monday() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(); // Sunday
        assert_eq!(week_start(d), NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    }

    #[test]
    fn currency_is_validated() {
        assert!("usd".parse::<Currency>().is_ok());
        assert!("US".parse::<Currency>().is_err());
        assert!("U5D".parse::<Currency>().is_err());
    }
}
