//! CSV imports: timepost's generic CSV and the detailed-report exports of
//! Clockify, Toggl Track and Harvest, told apart by their header row.
//!
//! The reader streams: rows are parsed one at a time as the iterator is
//! driven, and a bad row is an `Err` item (position = its 1-based line, field
//! = the column header) after which reading goes on. The delimiter is sniffed
//! from the header line (`,`, `;` or tab; European Harvest exports use `;`
//! with decimal commas); a UTF-8 byte order mark is skipped.
//!
//! ## Headers matched (case-insensitive, surrounding spaces ignored)
//!
//! Detection tries, in order:
//! - **Generic** (timepost's own): the configured `entry_id`, `updated_at` and
//!   `user_id` columns are all present. See [`CsvColumns`].
//! - **Clockify** detailed report: `Start Date`, `Start Time` and
//!   `Duration (h)` or `Duration (decimal)`. Also read: `Project`, `Client`,
//!   `Description`, `Task`, `User`, `Email`, `Tags` (comma-separated),
//!   `Billable` (Yes/No), `End Date`, `End Time`, `Billable Rate (XXX)` (XXX =
//!   the currency code). Dates `M/D/YYYY` (Clockify's default; `D/M/YYYY` when
//!   [`CsvColumns::day_first`]), `D.M.YYYY` or ISO; times `02:00 PM` or `14:00[:00]`.
//! - **Toggl** detailed report: `Start date`, `Start time` and `Duration`. Also
//!   read: `User`, `Email`, `Client`, `Project`, `Task`, `Description`,
//!   `Billable`, `End date`, `End time`, `Tags`. Toggl's export has an amount
//!   but no rate: rate `None`.
//! - **Harvest** detailed time report: `Date`, `Hours`, `First Name`,
//!   `Last Name`. Also read: `Client`, `Project`, `Task`, `Notes`,
//!   `Hours Rounded` (when [`ParseContext::harvest_use_rounded`]), `Billable?`,
//!   `Approved?` (Yes → approved, No → pending, absent → unknown),
//!   `Employee?` (Yes → employee, No → contractor), `Billable Rate` and
//!   `Currency` (`US Dollar - USD` or `USD`).
//!
//! These vendor headers come from the vendors' help pages and third-party
//! importers, not from a formal specification; exports localised into other
//! languages are not recognised.
//!
//! ## Vendor rows
//!
//! Vendor exports carry no entry ids: the id is a hash of (user, start — or
//! the date when there is no start —, project, description), with `#2`, `#3`…
//! appended to repeats of the same tuple within one file, so re-importing the
//! same export gives the same ids. The worker id is the email when there is
//! one, else the user name (Harvest: "First Last"). Source is `csv`, the
//! workspace the format name (`clockify`, `toggl`, `harvest`), origin
//! `import`. `updated_at` is [`ParseContext::received_at`], else the end,
//! start or start of the work date.

use std::collections::HashMap;
use std::io::{Chain, Cursor, Read};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use csv::StringRecord;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::clockify::make_ref;
use super::util::{
    clip, parse_any_duration, parse_decimal_text, parse_instant_or_local, parse_local_date,
    parse_local_time, parse_tz, resolve_local, secs_between, stable_id, start_of_day,
};
use super::{ParseContext, ParseError};
use crate::model::{
    local_date, ApprovalStatus, Currency, EntryKey, Money, NormalisedEntry, Origin, Source,
    Version, Worker, WorkerKind,
};

/// The kinds of CSV file timepost reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvFormat {
    Clockify,
    Toggl,
    Harvest,
    Generic,
}

impl CsvFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            CsvFormat::Clockify => "clockify",
            CsvFormat::Toggl => "toggl",
            CsvFormat::Harvest => "harvest",
            CsvFormat::Generic => "generic",
        }
    }
}

/// Header names of the generic CSV's columns, by role (configurable, e.g. in
/// `timepost.toml`). The defaults are the role names themselves.
///
/// Required: `entry_id`, `updated_at`, `user_id`, and either `start` + `end`
/// or `date` + `duration` (`start` + `duration` is accepted too: the end is
/// computed). A row with a start and neither end nor duration is a timer
/// still running: kept, never posted until a version with an end arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvColumns {
    pub entry_id: String,
    /// Default `default` when the column is absent or empty.
    pub workspace: String,
    /// RFC 3339, or local `YYYY-MM-DD HH:MM[:SS]` in the row's time zone.
    pub updated_at: String,
    pub user_id: String,
    pub email: String,
    pub user_name: String,
    /// `employee` | `contractor`.
    pub worker_kind: String,
    pub form_1099: String,
    /// IANA name; else the user's zone from the mapping, else the default.
    pub time_zone: String,
    /// `YYYY-MM-DD`; when absent, the local date of `start`.
    pub date: String,
    /// RFC 3339, or local `YYYY-MM-DD HH:MM[:SS]` in the row's time zone.
    pub start: String,
    pub end: String,
    /// `H:MM[:SS]`, decimal hours (`1.5`) or ISO-8601 (`PT1H30M`); ignored
    /// when `start` and `end` are both given.
    pub duration: String,
    pub project_id: String,
    pub project_name: String,
    pub client_id: String,
    pub client_name: String,
    pub task_id: String,
    pub task_name: String,
    /// `;`-separated.
    pub tags: String,
    /// true/false/yes/no/1/0, default false (also `deleted`, `rounded`).
    pub billable: String,
    /// Decimal hourly rate; needs `currency`.
    pub rate: String,
    /// ISO 4217 code.
    pub currency: String,
    pub notes: String,
    /// approved | pending | rejected | unknown (default unknown).
    pub approval: String,
    /// web | mobile | offline_edited | import (default import).
    pub origin: String,
    pub deleted: String,
    pub rounded: String,
    /// `;`-separated.
    pub attachments: String,
    /// Vendor exports: read `a/b/YYYY` dates as day/month (default: month/day).
    pub day_first: bool,
}

impl Default for CsvColumns {
    fn default() -> Self {
        Self {
            entry_id: "entry_id".into(),
            workspace: "workspace".into(),
            updated_at: "updated_at".into(),
            user_id: "user_id".into(),
            email: "email".into(),
            user_name: "user_name".into(),
            worker_kind: "worker_kind".into(),
            form_1099: "form_1099".into(),
            time_zone: "time_zone".into(),
            date: "date".into(),
            start: "start".into(),
            end: "end".into(),
            duration: "duration".into(),
            project_id: "project_id".into(),
            project_name: "project_name".into(),
            client_id: "client_id".into(),
            client_name: "client_name".into(),
            task_id: "task_id".into(),
            task_name: "task_name".into(),
            tags: "tags".into(),
            billable: "billable".into(),
            rate: "rate".into(),
            currency: "currency".into(),
            notes: "notes".into(),
            approval: "approval".into(),
            origin: "origin".into(),
            deleted: "deleted".into(),
            rounded: "rounded".into(),
            attachments: "attachments".into(),
            day_first: false,
        }
    }
}

/// Header cells, normalised for matching: trimmed, lower case, BOM removed.
struct Header {
    cells: Vec<String>,
    index: HashMap<String, usize>,
}

impl Header {
    fn new(record: &StringRecord) -> Self {
        let cells: Vec<String> = record
            .iter()
            .map(|c| c.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let mut index = HashMap::new();
        for (i, c) in cells.iter().enumerate() {
            index.entry(c.to_lowercase()).or_insert(i);
        }
        Self { cells, index }
    }
    fn find(&self, name: &str) -> Option<usize> {
        self.index.get(&name.trim().to_lowercase()).copied()
    }
    fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// Which format a header row is, with the default generic column names.
pub fn detect(header: &StringRecord) -> Option<CsvFormat> {
    detect_with(header, &CsvColumns::default())
}

/// Which format a header row is, the generic one named by `columns`.
pub fn detect_with(header: &StringRecord, columns: &CsvColumns) -> Option<CsvFormat> {
    detect_header(&Header::new(header), columns)
}

fn detect_header(h: &Header, columns: &CsvColumns) -> Option<CsvFormat> {
    if h.has(&columns.entry_id) && h.has(&columns.updated_at) && h.has(&columns.user_id) {
        return Some(CsvFormat::Generic);
    }
    if h.has("start date")
        && h.has("start time")
        && (h.has("duration (h)") || h.has("duration (decimal)"))
    {
        return Some(CsvFormat::Clockify);
    }
    if h.has("start date") && h.has("start time") && h.has("duration") {
        return Some(CsvFormat::Toggl);
    }
    if h.has("date") && h.has("hours") && h.has("first name") && h.has("last name") {
        return Some(CsvFormat::Harvest);
    }
    None
}

/// A column: its index and its header as written (for error messages).
#[derive(Clone, Debug)]
struct Col {
    idx: usize,
    name: String,
}

fn col(h: &Header, name: &str) -> Option<Col> {
    h.find(name).map(|idx| Col {
        idx,
        name: h
            .cells
            .get(idx)
            .cloned()
            .unwrap_or_else(|| name.to_string()),
    })
}

struct GenericCols {
    entry_id: Option<Col>,
    workspace: Option<Col>,
    updated_at: Option<Col>,
    user_id: Option<Col>,
    email: Option<Col>,
    user_name: Option<Col>,
    worker_kind: Option<Col>,
    form_1099: Option<Col>,
    time_zone: Option<Col>,
    date: Option<Col>,
    start: Option<Col>,
    end: Option<Col>,
    duration: Option<Col>,
    project_id: Option<Col>,
    project_name: Option<Col>,
    client_id: Option<Col>,
    client_name: Option<Col>,
    task_id: Option<Col>,
    task_name: Option<Col>,
    tags: Option<Col>,
    billable: Option<Col>,
    rate: Option<Col>,
    currency: Option<Col>,
    notes: Option<Col>,
    approval: Option<Col>,
    origin: Option<Col>,
    deleted: Option<Col>,
    rounded: Option<Col>,
    attachments: Option<Col>,
    names: CsvColumns,
}

impl GenericCols {
    fn new(h: &Header, c: &CsvColumns) -> Self {
        Self {
            entry_id: col(h, &c.entry_id),
            workspace: col(h, &c.workspace),
            updated_at: col(h, &c.updated_at),
            user_id: col(h, &c.user_id),
            email: col(h, &c.email),
            user_name: col(h, &c.user_name),
            worker_kind: col(h, &c.worker_kind),
            form_1099: col(h, &c.form_1099),
            time_zone: col(h, &c.time_zone),
            date: col(h, &c.date),
            start: col(h, &c.start),
            end: col(h, &c.end),
            duration: col(h, &c.duration),
            project_id: col(h, &c.project_id),
            project_name: col(h, &c.project_name),
            client_id: col(h, &c.client_id),
            client_name: col(h, &c.client_name),
            task_id: col(h, &c.task_id),
            task_name: col(h, &c.task_name),
            tags: col(h, &c.tags),
            billable: col(h, &c.billable),
            rate: col(h, &c.rate),
            currency: col(h, &c.currency),
            notes: col(h, &c.notes),
            approval: col(h, &c.approval),
            origin: col(h, &c.origin),
            deleted: col(h, &c.deleted),
            rounded: col(h, &c.rounded),
            attachments: col(h, &c.attachments),
            names: c.clone(),
        }
    }
}

/// Columns of the vendor exports (absent ones are `None`).
struct VendorCols {
    user: Option<Col>,
    email: Option<Col>,
    first_name: Option<Col>,
    last_name: Option<Col>,
    project: Option<Col>,
    client: Option<Col>,
    task: Option<Col>,
    description: Option<Col>,
    tags: Option<Col>,
    billable: Option<Col>,
    start_date: Option<Col>,
    start_time: Option<Col>,
    end_date: Option<Col>,
    end_time: Option<Col>,
    /// `Duration (h)` / `Duration` (clock form) or Harvest `Hours`.
    duration: Option<Col>,
    /// `Duration (decimal)`.
    duration_decimal: Option<Col>,
    hours_rounded: Option<Col>,
    rate: Option<Col>,
    /// From a `Billable Rate (XXX)` header.
    rate_currency: Option<String>,
    currency: Option<Col>,
    approved: Option<Col>,
    employee: Option<Col>,
    day_first: bool,
}

impl VendorCols {
    fn new(h: &Header, format: CsvFormat, day_first: bool) -> Self {
        let mut v = VendorCols {
            user: col(h, "user"),
            email: col(h, "email"),
            first_name: col(h, "first name"),
            last_name: col(h, "last name"),
            project: col(h, "project"),
            client: col(h, "client"),
            task: col(h, "task"),
            description: col(h, "description"),
            tags: col(h, "tags"),
            billable: col(h, "billable"),
            start_date: col(h, "start date"),
            start_time: col(h, "start time"),
            end_date: col(h, "end date"),
            end_time: col(h, "end time"),
            duration: None,
            duration_decimal: None,
            hours_rounded: None,
            rate: None,
            rate_currency: None,
            currency: None,
            approved: None,
            employee: None,
            day_first,
        };
        match format {
            CsvFormat::Clockify => {
                v.duration = col(h, "duration (h)");
                v.duration_decimal = col(h, "duration (decimal)");
                for (idx, cell) in h.cells.iter().enumerate() {
                    let lower = cell.to_lowercase();
                    if let Some(rest) = lower.strip_prefix("billable rate") {
                        let code = rest
                            .trim()
                            .strip_prefix('(')
                            .and_then(|r| r.strip_suffix(')'))
                            .map(|c| c.trim().to_string());
                        v.rate = Some(Col {
                            idx,
                            name: cell.clone(),
                        });
                        v.rate_currency = code;
                        break;
                    }
                }
            }
            CsvFormat::Toggl => {
                v.duration = col(h, "duration");
            }
            CsvFormat::Harvest => {
                v.start_date = col(h, "date");
                v.start_time = None;
                v.end_date = None;
                v.end_time = None;
                v.description = col(h, "notes");
                v.duration = col(h, "hours");
                v.hours_rounded = col(h, "hours rounded");
                v.billable = col(h, "billable?");
                v.rate = col(h, "billable rate");
                v.currency = col(h, "currency");
                v.approved = col(h, "approved?");
                v.employee = col(h, "employee?");
            }
            CsvFormat::Generic => {}
        }
        v
    }
}

enum Plan {
    Generic(Box<GenericCols>),
    Vendor(CsvFormat, Box<VendorCols>),
}

type Input<R> = Chain<Cursor<Vec<u8>>, R>;

/// The rows of a CSV file as normalised entries, parsed as they are read.
pub struct CsvEntries<R: Read> {
    rdr: csv::Reader<Input<R>>,
    plan: Plan,
    format: CsvFormat,
    ctx: ParseContext,
    seen: HashMap<String, u32>,
    record: StringRecord,
    /// The header row as written (names the column of an error).
    headers: Vec<String>,
    done: bool,
}

impl<R: Read> std::fmt::Debug for CsvEntries<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvEntries")
            .field("format", &self.format)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> CsvEntries<R> {
    /// The format the header row was recognised as.
    pub fn format(&self) -> CsvFormat {
        self.format
    }
}

/// Read up to the end of the first line (at most 64 KiB) so the delimiter
/// can be sniffed; the bytes read are put back in front of the rest.
fn read_head<R: Read>(input: &mut R) -> Result<Vec<u8>, ParseError> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.contains(&b'\n') && head.len() < 64 * 1024 {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n.min(buf.len())]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ParseError::new(
                    Some(1),
                    "header",
                    format!("cannot read: {e}"),
                ))
            }
        }
    }
    Ok(head)
}

fn sniff_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let delims = [b',', b';', b'\t'];
    let mut best = 0;
    for i in 1..3 {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    delims[best]
}

/// Open a CSV file: read and recognise its header row, then stream its rows.
/// Fails (at line 1, field `header`) when the header matches no known format.
pub fn reader<R: Read>(
    mut input: R,
    columns: &CsvColumns,
    ctx: &ParseContext,
) -> Result<CsvEntries<R>, ParseError> {
    let mut head = read_head(&mut input)?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        head.drain(..3);
    }
    let delimiter = sniff_delimiter(&head);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(Cursor::new(head).chain(input));
    let header_record = rdr
        .headers()
        .map_err(|e| ParseError::new(Some(1), "header", format!("unreadable header row: {e}")))?
        .clone();
    let header = Header::new(&header_record);
    let format = detect_header(&header, columns).ok_or_else(|| {
        ParseError::new(
            Some(1),
            "header",
            format!(
                "not a known CSV format (generic needs the columns `{}`, `{}` and `{}`; \
                 Clockify, Toggl and Harvest detailed exports are recognised by their own headers)",
                columns.entry_id, columns.updated_at, columns.user_id
            ),
        )
    })?;
    let plan = match format {
        CsvFormat::Generic => Plan::Generic(Box::new(GenericCols::new(&header, columns))),
        vendor => Plan::Vendor(
            vendor,
            Box::new(VendorCols::new(&header, vendor, columns.day_first)),
        ),
    };
    Ok(CsvEntries {
        rdr,
        plan,
        format,
        ctx: ctx.clone(),
        seen: HashMap::new(),
        record: StringRecord::new(),
        headers: header.cells.clone(),
        done: false,
    })
}

impl<R: Read> Iterator for CsvEntries<R> {
    type Item = Result<NormalisedEntry, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rdr.read_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                let line = self
                    .record
                    .position()
                    .map(|p| usize::try_from(p.line()).unwrap_or(usize::MAX))
                    .unwrap_or(0);
                if let Some(e) = oversized_cell(&self.record, &self.plan, &self.headers, line) {
                    return Some(Err(e));
                }
                let row = Row {
                    record: &self.record,
                    line,
                };
                Some(match &self.plan {
                    Plan::Generic(cols) => generic_row(&row, cols, &self.ctx),
                    Plan::Vendor(format, cols) => {
                        vendor_row(&row, *format, cols, &self.ctx, &mut self.seen)
                    }
                })
            }
            Err(e) => {
                let line = match e.kind() {
                    csv::ErrorKind::Utf8 { pos: Some(p), .. }
                    | csv::ErrorKind::UnequalLengths { pos: Some(p), .. } => {
                        usize::try_from(p.line()).ok()
                    }
                    _ => None,
                };
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                ) {
                    // I/O and other errors are not recoverable: stop here.
                    self.done = true;
                }
                Some(Err(ParseError::new(line, "row", e.to_string())))
            }
        }
    }
}

/// The first cell of a row over its cap (see the module docs of
/// `sources`): notes / description and the list columns take
/// [`super::MAX_NOTES_CHARS`] characters, every other cell
/// [`super::MAX_NAME_CHARS`].
fn oversized_cell(
    record: &StringRecord,
    plan: &Plan,
    headers: &[String],
    line: usize,
) -> Option<ParseError> {
    let long: Vec<&Col> = match plan {
        Plan::Generic(c) => [&c.notes, &c.tags, &c.attachments]
            .into_iter()
            .flatten()
            .collect(),
        Plan::Vendor(_, c) => [&c.description, &c.tags].into_iter().flatten().collect(),
    };
    for (idx, cell) in record.iter().enumerate() {
        let max = if long.iter().any(|c| c.idx == idx) {
            super::MAX_NOTES_CHARS
        } else {
            super::MAX_NAME_CHARS
        };
        // Bytes bound characters from above: most cells never count.
        if cell.len() <= max {
            continue;
        }
        let n = cell.trim().chars().count();
        if n > max {
            return Some(ParseError::new(
                Some(line),
                headers
                    .get(idx)
                    .filter(|h| !h.is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("column {}", idx + 1)),
                super::util::too_long(n, max),
            ));
        }
    }
    None
}

struct Row<'a> {
    record: &'a StringRecord,
    line: usize,
}

impl Row<'_> {
    fn get(&self, c: &Option<Col>) -> Option<&str> {
        let c = c.as_ref()?;
        let v = self.record.get(c.idx)?.trim();
        (!v.is_empty()).then_some(v)
    }
    fn err(&self, c: &Option<Col>, fallback: &str, message: impl Into<String>) -> ParseError {
        let name = c.as_ref().map_or(fallback, |c| c.name.as_str());
        ParseError::new(Some(self.line), name, message)
    }
    fn bool(&self, c: &Option<Col>, fallback: &str) -> Result<Option<bool>, ParseError> {
        match self.get(c) {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| self.err(c, fallback, format!("`{}` is not yes/no", clip(v)))),
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn split_list(s: Option<&str>, sep: char) -> Vec<String> {
    s.map(|s| {
        s.split(sep)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn generic_row(
    row: &Row<'_>,
    c: &GenericCols,
    ctx: &ParseContext,
) -> Result<NormalisedEntry, ParseError> {
    let n = &c.names;
    let entry_id = row
        .get(&c.entry_id)
        .ok_or_else(|| row.err(&c.entry_id, &n.entry_id, "required value is empty"))?;
    let user_id = row
        .get(&c.user_id)
        .ok_or_else(|| row.err(&c.user_id, &n.user_id, "required value is empty"))?;
    let tz: Tz = match row.get(&c.time_zone) {
        Some(z) => parse_tz(z).ok_or_else(|| {
            row.err(
                &c.time_zone,
                &n.time_zone,
                format!("`{}` is not an IANA time zone", clip(z)),
            )
        })?,
        None => ctx.tz_for(user_id),
    };
    let instant = |col: &Option<Col>, name: &str| -> Result<Option<DateTime<Utc>>, ParseError> {
        match row.get(col) {
            None => Ok(None),
            Some(v) => parse_instant_or_local(v, tz).map(Some).ok_or_else(|| {
                row.err(
                    col,
                    name,
                    format!("`{}` is not RFC 3339 or YYYY-MM-DD HH:MM[:SS]", clip(v)),
                )
            }),
        }
    };
    let updated_at = instant(&c.updated_at, &n.updated_at)?
        .ok_or_else(|| row.err(&c.updated_at, &n.updated_at, "required value is empty"))?;
    let start = instant(&c.start, &n.start)?;
    let mut end = instant(&c.end, &n.end)?;
    let date =
        match row.get(&c.date) {
            None => None,
            Some(v) => Some(NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                row.err(&c.date, &n.date, format!("`{}` is not YYYY-MM-DD", clip(v)))
            })?),
        };
    let duration = match row.get(&c.duration) {
        None => None,
        Some(v) => Some(parse_any_duration(v).ok_or_else(|| {
            row.err(
                &c.duration,
                &n.duration,
                format!("`{}` is not H:MM[:SS], decimal hours or ISO-8601", clip(v)),
            )
        })?),
    };
    let need = "needs start and end, or date and duration";
    let (duration_secs, work_date) = match (start, end) {
        (Some(s), Some(e)) => (
            secs_between(s, e).ok_or_else(|| row.err(&c.end, &n.end, "ends before it starts"))?,
            date.unwrap_or_else(|| local_date(s, tz)),
        ),
        // A start with neither end nor duration is a timer still running:
        // kept (end None) and never posted until a version with an end
        // arrives.
        (Some(s), None) if duration.is_none() => (0, date.unwrap_or_else(|| local_date(s, tz))),
        (Some(s), None) => {
            let d = duration.unwrap_or_default();
            end = Duration::try_seconds(d)
                .and_then(|d| s.checked_add_signed(d))
                .map(Some)
                .ok_or_else(|| row.err(&c.duration, &n.duration, "out of range"))?;
            (d, date.unwrap_or_else(|| local_date(s, tz)))
        }
        (None, Some(_)) => return Err(row.err(&c.start, &n.start, "an end needs a start")),
        (None, None) => {
            let d = date.ok_or_else(|| row.err(&c.date, &n.date, need))?;
            let secs = duration.ok_or_else(|| row.err(&c.duration, &n.duration, need))?;
            (secs, d)
        }
    };

    let rate = match row.get(&c.rate) {
        None => None,
        Some(v) => {
            let amount = parse_decimal_text(v).ok_or_else(|| {
                row.err(&c.rate, &n.rate, format!("`{}` is not a decimal", clip(v)))
            })?;
            let code = row
                .get(&c.currency)
                .ok_or_else(|| row.err(&c.currency, &n.currency, "a rate needs its currency"))?;
            let currency: Currency = code
                .parse()
                .map_err(|e: String| row.err(&c.currency, &n.currency, e))?;
            Some(Money::new(amount.normalize(), currency))
        }
    };
    let kind = match row.get(&c.worker_kind) {
        None => None,
        Some(v) => Some(match v.to_ascii_lowercase().as_str() {
            "employee" => WorkerKind::Employee,
            "contractor" => WorkerKind::Contractor,
            _ => {
                return Err(row.err(
                    &c.worker_kind,
                    &n.worker_kind,
                    format!("`{}` is not employee or contractor", clip(v)),
                ))
            }
        }),
    };
    let approval = match row.get(&c.approval) {
        None => ApprovalStatus::Unknown,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "approved" => ApprovalStatus::Approved,
            "pending" => ApprovalStatus::Pending,
            "rejected" => ApprovalStatus::Rejected,
            "unknown" => ApprovalStatus::Unknown,
            _ => {
                return Err(row.err(
                    &c.approval,
                    &n.approval,
                    format!(
                        "`{}` is not approved, pending, rejected or unknown",
                        clip(v)
                    ),
                ))
            }
        },
    };
    let origin = match row.get(&c.origin) {
        None => Origin::Import,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "web" => Origin::Web,
            "mobile" => Origin::Mobile,
            "offline_edited" => Origin::OfflineEdited,
            "import" => Origin::Import,
            _ => {
                return Err(row.err(
                    &c.origin,
                    &n.origin,
                    format!("`{}` is not web, mobile, offline_edited or import", clip(v)),
                ))
            }
        },
    };

    let entry = NormalisedEntry {
        key: EntryKey::new(
            Source::Csv,
            row.get(&c.workspace).unwrap_or("default"),
            entry_id,
        ),
        version: Version {
            updated_at,
            content_hash: String::new(),
        },
        worker: Worker {
            tracker_user_id: user_id.to_string(),
            email: row.get(&c.email).map(str::to_string),
            name: row.get(&c.user_name).map(str::to_string),
            kind,
            form_1099: row.get(&c.form_1099).map(str::to_string),
        },
        time_zone: tz,
        work_date,
        start,
        end,
        duration_secs,
        project: make_ref(
            row.get(&c.project_id).map(str::to_string),
            row.get(&c.project_name).map(str::to_string),
        ),
        client: make_ref(
            row.get(&c.client_id).map(str::to_string),
            row.get(&c.client_name).map(str::to_string),
        ),
        task: make_ref(
            row.get(&c.task_id).map(str::to_string),
            row.get(&c.task_name).map(str::to_string),
        ),
        tags: split_list(row.get(&c.tags), ';'),
        billable: row.bool(&c.billable, &n.billable)?.unwrap_or(false),
        rate,
        notes: row.get(&c.notes).unwrap_or_default().to_string(),
        approval,
        attachments: split_list(row.get(&c.attachments), ';'),
        origin,
        deleted: row.bool(&c.deleted, &n.deleted)?.unwrap_or(false),
        already_rounded: row.bool(&c.rounded, &n.rounded)?.unwrap_or(false),
    };
    Ok(entry.seal())
}

/// The currency code in a Harvest `Currency` cell (`US Dollar - USD` or `USD`).
fn harvest_currency(s: &str) -> Option<Currency> {
    let code = s.rsplit(" - ").next().unwrap_or(s).trim();
    code.parse().ok()
}

fn vendor_row(
    row: &Row<'_>,
    format: CsvFormat,
    c: &VendorCols,
    ctx: &ParseContext,
    seen: &mut HashMap<String, u32>,
) -> Result<NormalisedEntry, ParseError> {
    // Who.
    let name = match format {
        CsvFormat::Harvest => {
            let full = [row.get(&c.first_name), row.get(&c.last_name)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!full.is_empty()).then_some(full)
        }
        _ => row.get(&c.user).map(str::to_string),
    };
    let email = row.get(&c.email).map(str::to_string);
    let user_id = email
        .clone()
        .or_else(|| name.clone())
        .ok_or_else(|| match format {
            CsvFormat::Harvest => row.err(&c.first_name, "First Name", "no user on this row"),
            _ => row.err(&c.user, "User", "no user on this row"),
        })?;
    let tz = ctx.tz_for(&user_id);

    // When.
    let date_col_name = if format == CsvFormat::Harvest {
        "Date"
    } else {
        "Start Date"
    };
    let date_text = row
        .get(&c.start_date)
        .ok_or_else(|| row.err(&c.start_date, date_col_name, "required value is empty"))?;
    let date = parse_local_date(date_text, c.day_first).ok_or_else(|| {
        row.err(
            &c.start_date,
            date_col_name,
            format!("`{}` is not a date", clip(date_text)),
        )
    })?;
    let local = |time_col: &Option<Col>,
                 time_name: &str,
                 day: NaiveDate|
     -> Result<Option<DateTime<Utc>>, ParseError> {
        match row.get(time_col) {
            None => Ok(None),
            Some(t) => {
                let time = parse_local_time(t).ok_or_else(|| {
                    row.err(
                        time_col,
                        time_name,
                        format!("`{}` is not a clock time", clip(t)),
                    )
                })?;
                resolve_local(day.and_time(time), tz)
                    .map(Some)
                    .ok_or_else(|| row.err(time_col, time_name, "no such local time"))
            }
        }
    };
    let start = local(&c.start_time, "Start Time", date)?;
    let end_date = match row.get(&c.end_date) {
        None => date,
        Some(t) => parse_local_date(t, c.day_first).ok_or_else(|| {
            row.err(
                &c.end_date,
                "End Date",
                format!("`{}` is not a date", clip(t)),
            )
        })?,
    };
    let end = if start.is_some() {
        local(&c.end_time, "End Time", end_date)?
    } else {
        None
    };

    // How long.
    let use_rounded = format == CsvFormat::Harvest && ctx.harvest_use_rounded;
    let (dur_col, already_rounded) = match (use_rounded, row.get(&c.hours_rounded)) {
        (true, Some(_)) => (&c.hours_rounded, true),
        _ => (&c.duration, false),
    };
    let stated = match row.get(dur_col) {
        Some(v) => Some(parse_any_duration(v).ok_or_else(|| {
            row.err(
                dur_col,
                "Duration",
                format!("`{}` is not a duration", clip(v)),
            )
        })?),
        None => match row.get(&c.duration_decimal) {
            Some(v) => Some(parse_any_duration(v).ok_or_else(|| {
                row.err(
                    &c.duration_decimal,
                    "Duration (decimal)",
                    format!("`{}` is not a duration", clip(v)),
                )
            })?),
            None => None,
        },
    };
    let mut end = end;
    let duration_secs = match (start, end) {
        (Some(s), Some(e)) if !already_rounded => secs_between(s, e)
            .ok_or_else(|| row.err(&c.end_time, "End Time", "ends before it starts"))?,
        (Some(s), _) => {
            let d =
                stated.ok_or_else(|| row.err(&c.duration, "Duration", "no end and no duration"))?;
            if end.is_none() {
                end = Duration::try_seconds(d).and_then(|d| s.checked_add_signed(d));
            }
            d
        }
        (None, _) => stated.ok_or_else(|| row.err(dur_col, "Hours", "required value is empty"))?,
    };

    // What.
    let project = row.get(&c.project).map(str::to_string);
    let notes = row.get(&c.description).unwrap_or_default().to_string();
    let tags = split_list(row.get(&c.tags), ',');
    let billable = row.bool(&c.billable, "Billable")?.unwrap_or(false);
    let rate = match row.get(&c.rate) {
        None => None,
        Some(v) => {
            let amount: Decimal = parse_decimal_text(v).ok_or_else(|| {
                row.err(
                    &c.rate,
                    "Billable Rate",
                    format!("`{}` is not a decimal", clip(v)),
                )
            })?;
            let currency = match (&c.rate_currency, row.get(&c.currency)) {
                (Some(code), _) => code
                    .parse::<Currency>()
                    .map_err(|e| row.err(&c.rate, "Billable Rate", e))?,
                (None, Some(cell)) => harvest_currency(cell).ok_or_else(|| {
                    row.err(
                        &c.currency,
                        "Currency",
                        format!("`{}` names no ISO currency", clip(cell)),
                    )
                })?,
                (None, None) => {
                    return Err(row.err(&c.currency, "Currency", "a rate needs its currency"))
                }
            };
            Some(Money::new(amount.normalize(), currency))
        }
    };
    let approval = match row.bool(&c.approved, "Approved?")? {
        Some(true) => ApprovalStatus::Approved,
        Some(false) => ApprovalStatus::Pending,
        None => ApprovalStatus::Unknown,
    };
    let kind = row.bool(&c.employee, "Employee?")?.map(|employee| {
        if employee {
            WorkerKind::Employee
        } else {
            WorkerKind::Contractor
        }
    });

    // Identity.
    let when = start.map_or_else(|| date.to_string(), |s| s.to_rfc3339());
    let base = stable_id(&[
        format.as_str(),
        &user_id,
        &when,
        project.as_deref().unwrap_or_default(),
        &notes,
    ]);
    let count = seen.entry(base.clone()).or_insert(0);
    *count = count.saturating_add(1);
    let id = if *count == 1 {
        base
    } else {
        format!("{base}#{count}")
    };
    let updated_at = match ctx.received_at.or(end).or(start) {
        Some(t) => t,
        None => start_of_day(date, tz)
            .ok_or_else(|| row.err(&c.start_date, date_col_name, "no such local date"))?,
    };

    let entry = NormalisedEntry {
        key: EntryKey::new(Source::Csv, format.as_str(), id),
        version: Version {
            updated_at,
            content_hash: String::new(),
        },
        worker: Worker {
            tracker_user_id: user_id,
            email,
            name,
            kind,
            form_1099: None,
        },
        time_zone: tz,
        work_date: date,
        start,
        end,
        duration_secs,
        project: make_ref(None, project),
        client: make_ref(None, row.get(&c.client).map(str::to_string)),
        task: make_ref(None, row.get(&c.task).map(str::to_string)),
        tags,
        billable,
        rate,
        notes,
        approval,
        attachments: Vec::new(),
        origin: Origin::Import,
        deleted: false,
        already_rounded,
    };
    Ok(entry.seal())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERIC: &str = include_str!("../../../tests/fixtures/csv/generic.csv");
    const CLOCKIFY: &str = include_str!("../../../tests/fixtures/csv/clockify_detailed.csv");
    const TOGGL: &str = include_str!("../../../tests/fixtures/csv/toggl_detailed.csv");
    const HARVEST: &str = include_str!("../../../tests/fixtures/csv/harvest_detailed.csv");
    const HARVEST_SEMI: &str =
        include_str!("../../../tests/fixtures/csv/harvest_detailed_semicolon.csv");
    const BAD: &str = include_str!("../../../tests/fixtures/csv/generic_errors.csv");

    fn ctx() -> ParseContext {
        let mut c = ParseContext::new(chrono_tz::America::New_York);
        c.user_tz
            .insert("u-berlin".into(), chrono_tz::Europe::Berlin);
        c
    }

    fn all(
        text: &str,
        ctx: &ParseContext,
    ) -> (CsvFormat, Vec<Result<NormalisedEntry, ParseError>>) {
        let r = reader(text.as_bytes(), &CsvColumns::default(), ctx).unwrap();
        let f = r.format();
        (f, r.collect())
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn fields_over_their_cap_name_the_row_and_the_column() {
        let head = "entry_id,updated_at,user_id,user_name,date,duration,tags,notes\n";
        let row = |id: &str, name: &str, tags: &str, notes: &str| {
            format!("{id},2026-03-03T18:00:00Z,u-1,{name},2026-03-03,1:00,{tags},{notes}\n")
        };
        let ok = format!(
            "{head}{}",
            row("a", &"é".repeat(255), &"t".repeat(4000), &"ü".repeat(4000))
        );
        let (_, rows) = all(&ok, &ctx());
        assert!(rows[0].is_ok(), "{:?}", rows[0]);
        let bad = format!(
            "{head}{}{}{}",
            row("b", "Ann", "", &"x".repeat(4001)),
            row("c", &"n".repeat(256), "", ""),
            row(&"i".repeat(256), "Ann", "", "")
        );
        let (_, rows) = all(&bad, &ctx());
        let errs: Vec<ParseError> = rows.into_iter().map(|r| r.unwrap_err()).collect();
        assert_eq!(
            errs.iter()
                .map(|e| (e.position, e.field.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (Some(2), "notes"),
                (Some(3), "user_name"),
                (Some(4), "entry_id")
            ]
        );
        assert_eq!(
            errs[0].message,
            "is 4001 characters long; at most 4000 are accepted"
        );
        // A vendor export: its Description column takes notes' cap.
        let clockify = format!(
            "Project,Description,User,Email,Start Date,Start Time,Duration (h)\nP,{},Ann,a@x.io,03/03/2026,09:00 AM,01:00:00\n",
            "d".repeat(4001)
        );
        let (_, rows) = all(&clockify, &ctx());
        let e = rows[0].clone().unwrap_err();
        assert_eq!((e.position, e.field.as_str()), (Some(2), "Description"));
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn detects_formats() {
        let rec = |s: &str| StringRecord::from(s.split(',').collect::<Vec<_>>());
        for (text, format) in [
            (GENERIC, CsvFormat::Generic),
            (CLOCKIFY, CsvFormat::Clockify),
            (TOGGL, CsvFormat::Toggl),
            (HARVEST, CsvFormat::Harvest),
        ] {
            let header = text.lines().next().unwrap().trim_start_matches('\u{feff}');
            assert_eq!(detect(&rec(header)), Some(format), "{header}");
        }
        assert_eq!(detect(&rec("Title,Due")), None);
        let custom = CsvColumns {
            entry_id: "ID".into(),
            ..Default::default()
        };
        assert_eq!(
            detect_with(&rec("id,updated_at,user_id"), &custom),
            Some(CsvFormat::Generic)
        );
    }

    #[test]
    fn generic_rows() {
        let (f, rows) = all(GENERIC, &ctx());
        assert_eq!(f, CsvFormat::Generic);
        let rows: Vec<NormalisedEntry> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 5);

        // RFC 3339 start/end.
        let e = &rows[0];
        assert_eq!(e.key, EntryKey::new(Source::Csv, "acme", "row-1"));
        assert_eq!(e.version.updated_at, t("2026-03-05T12:00:00Z"));
        assert_eq!(e.worker.email.as_deref(), Some("ada@example.com"));
        assert_eq!(e.worker.kind, Some(WorkerKind::Contractor));
        assert_eq!(e.worker.form_1099.as_deref(), Some("NEC"));
        assert_eq!(e.duration_secs, 9000);
        assert_eq!(e.work_date, d(2026, 3, 2));
        assert_eq!(e.project.as_ref().unwrap().id, "p1");
        assert_eq!(
            e.client.as_ref().unwrap().name.as_deref(),
            Some("Acme Corp")
        );
        assert_eq!(e.tags, ["alpha", "beta"]);
        assert!(e.billable);
        assert_eq!(e.rate.as_ref().unwrap().amount, Decimal::new(12550, 2));
        assert_eq!(e.approval, ApprovalStatus::Approved);
        assert_eq!(e.origin, Origin::Import);
        assert_eq!(e.attachments, ["s3://bucket/receipt.pdf"]);

        // Local times in the row's zone, across the spring-forward night.
        let e = &rows[1];
        assert_eq!(e.time_zone, chrono_tz::America::New_York);
        assert_eq!(e.start, Some(t("2026-03-08T05:00:00Z")));
        assert_eq!(e.end, Some(t("2026-03-08T12:00:00Z")));
        assert_eq!(
            e.duration_secs,
            7 * 3600,
            "00:00 → 08:00 local is 7 h on a DST day"
        );
        assert_eq!(e.work_date, d(2026, 3, 8));
        assert_eq!(e.origin, Origin::Mobile);
        assert!(e.deleted);

        // Date + decimal duration, zone from the mapping.
        let e = &rows[2];
        assert_eq!(e.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(e.start, None);
        assert_eq!(e.duration_secs, 5400);
        assert_eq!(e.key.workspace, "default");
        assert!(e.already_rounded);

        // ISO duration; clock duration.
        assert_eq!(rows[3].duration_secs, 5400);
        assert_eq!(rows[4].duration_secs, 4 * 3600 + 15 * 60);
        // Nonexistent local start (02:30 on the spring-forward day) → 03:00 EDT.
        assert_eq!(rows[4].start, Some(t("2026-03-08T07:00:00Z")));
    }

    #[test]
    fn generic_errors_name_line_and_column() {
        let (_, rows) = all(BAD, &ctx());
        let errs: Vec<ParseError> = rows.into_iter().map(Result::unwrap_err).collect();
        let got: Vec<(Option<usize>, &str)> = errs
            .iter()
            .map(|e| (e.position, e.field.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(2), "currency"),
                (Some(3), "entry_id"),
                (Some(4), "end"),
                (Some(5), "date"),
                (Some(6), "time_zone"),
                (Some(7), "billable"),
                (Some(8), "row"),
                (Some(9), "duration"),
            ]
        );
        assert!(errs[0].to_string().starts_with("at 2: currency: "));
    }

    #[test]
    fn custom_column_names() {
        let text = "ID;Changed;Who;Day;Hours\nx1;2026-03-02T10:00:00Z;u1;2026-03-02;1,5\n";
        let cols: CsvColumns = serde_json::from_str(
            r#"{"entry_id":"ID","updated_at":"Changed","user_id":"Who","date":"Day","duration":"Hours"}"#,
        )
        .unwrap();
        let r = reader(text.as_bytes(), &cols, &ctx()).unwrap();
        let rows: Vec<_> = r.map(Result::unwrap).collect();
        assert_eq!(rows[0].duration_secs, 5400);
        assert_eq!(rows[0].key.id, "x1");
        assert!(serde_json::from_str::<CsvColumns>(r#"{"entry":"x"}"#).is_err());
    }

    #[test]
    fn clockify_export() {
        let (f, rows) = all(CLOCKIFY, &ctx());
        assert_eq!(f, CsvFormat::Clockify);
        let rows: Vec<NormalisedEntry> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        let e = &rows[0];
        assert_eq!(e.key.source, Source::Csv);
        assert_eq!(e.key.workspace, "clockify");
        assert_eq!(e.worker.tracker_user_id, "hugo@example.com");
        assert_eq!(e.worker.name.as_deref(), Some("Hugo Bernard"));
        assert_eq!(e.start, Some(t("2026-09-15T18:00:00Z")));
        assert_eq!(e.end, Some(t("2026-09-15T19:30:00Z")));
        assert_eq!(e.duration_secs, 5400);
        assert_eq!(e.project.as_ref().unwrap().label(), "Brand");
        assert_eq!(e.client.as_ref().unwrap().label(), "Garage Leroy");
        assert_eq!(e.task.as_ref().unwrap().label(), "Design");
        assert_eq!(e.tags, ["print", "logo"]);
        assert!(e.billable);
        assert_eq!(e.rate.as_ref().unwrap().amount, Decimal::new(8000, 2));
        assert_eq!(e.rate.as_ref().unwrap().currency.as_str(), "EUR");
        assert_eq!(e.origin, Origin::Import);
        // Same user, start, project and description twice: distinct ids.
        assert_ne!(rows[1].key, rows[2].key);
        assert!(rows[2].key.id.ends_with("#2"));
        // Ids are stable across reads.
        let (_, again) = all(CLOCKIFY, &ctx());
        assert_eq!(again[0].as_ref().unwrap().key, rows[0].key);
    }

    #[test]
    fn toggl_export() {
        let (f, rows) = all(TOGGL, &ctx());
        assert_eq!(f, CsvFormat::Toggl);
        let rows: Vec<NormalisedEntry> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].duration_secs, 9000);
        assert_eq!(rows[0].notes, "Homepage mock-ups");
        assert_eq!(rows[0].rate, None);
        assert_eq!(rows[1].notes, "Call, with the owner");
        assert!(!rows[1].billable);
        assert_eq!(rows[1].key.workspace, "toggl");
    }

    #[test]
    fn harvest_export() {
        let (f, rows) = all(HARVEST, &ctx());
        assert_eq!(f, CsvFormat::Harvest);
        let rows: Vec<NormalisedEntry> = rows.into_iter().map(Result::unwrap).collect();
        let e = &rows[0];
        assert_eq!(e.worker.tracker_user_id, "Hugo Bernard");
        assert_eq!(e.work_date, d(2025, 1, 13));
        assert_eq!(e.start, None);
        assert_eq!(e.duration_secs, 3 * 3600 + 1800);
        assert_eq!(e.rate.as_ref().unwrap().currency.as_str(), "EUR");
        assert_eq!(e.rate.as_ref().unwrap().amount, Decimal::new(9500, 2));
        assert_eq!(e.approval, ApprovalStatus::Approved);
        assert_eq!(e.worker.kind, Some(WorkerKind::Employee));
        assert_eq!(rows[1].worker.kind, Some(WorkerKind::Contractor));
        assert_eq!(rows[3].approval, ApprovalStatus::Pending);
        let mut c = ctx();
        c.harvest_use_rounded = true;
        let (_, rounded) = all(HARVEST, &c);
        let r = rounded[2].as_ref().unwrap();
        assert_eq!(r.duration_secs, 3600);
        assert!(r.already_rounded);
    }

    #[test]
    fn harvest_semicolon_export() {
        let (f, rows) = all(HARVEST_SEMI, &ctx());
        assert_eq!(f, CsvFormat::Harvest);
        let rows: Vec<NormalisedEntry> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].duration_secs, 5400);
        assert_eq!(rows[0].approval, ApprovalStatus::Unknown);
    }

    #[test]
    fn unknown_header_is_an_error() {
        let e = reader(
            "Title,Due\nA,B\n".as_bytes(),
            &CsvColumns::default(),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!((e.position, e.field.as_str()), (Some(1), "header"));
        let e = reader("".as_bytes(), &CsvColumns::default(), &ctx()).unwrap_err();
        assert_eq!(e.field, "header");
    }
}
