//! Helpers shared by the parsers: field access on untrusted JSON with errors
//! that name the field, decimal numbers, durations and local times. Nothing
//! here panics on any input.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use super::ParseError;

/// Parse a whole body as JSON, or say why not (field `$`, the document root).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body)
        .map_err(|e| ParseError::new(None, "$", format!("malformed JSON: {e}")))
}

/// A JSON object being read, with the path prefix its fields are named by.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: &'a str,
    pub pos: Option<usize>,
}

/// Type name of a JSON value, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Obj<'a> {
    pub fn new(map: &'a Map<String, Value>, path: &'a str, pos: Option<usize>) -> Self {
        Self { map, path, pos }
    }

    /// The full name of field `key` of this object.
    pub fn name(&self, key: &str) -> String {
        format!("{}{}", self.path, key)
    }

    pub fn err(&self, key: &str, message: impl Into<String>) -> ParseError {
        ParseError::new(self.pos, self.name(key), message)
    }

    /// The value, treating JSON null as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.err(key, format!("expected a string, found {}", kind(v)))),
        }
    }

    /// A string of at most `max` characters (see [`super::MAX_NAME_CHARS`]
    /// and [`super::MAX_NOTES_CHARS`]).
    pub fn capped_str(&self, key: &str, max: usize) -> Result<Option<&'a str>, ParseError> {
        let s = self.str(key)?;
        if let Some(s) = s {
            check_len(self, key, s, max)?;
        }
        Ok(s)
    }

    /// A name (user, e-mail, project, client, task): at most
    /// [`super::MAX_NAME_CHARS`] characters.
    pub fn name_str(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        self.capped_str(key, super::MAX_NAME_CHARS)
    }

    /// Free text (notes, description): at most [`super::MAX_NOTES_CHARS`]
    /// characters.
    pub fn notes_str(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        self.capped_str(key, super::MAX_NOTES_CHARS)
    }

    /// A string or a number, as text: vendors send ids both ways. Empty → absent.
    /// At most [`super::MAX_NAME_CHARS`] characters.
    pub fn id(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let t = s.trim();
                check_len(self, key, t, super::MAX_NAME_CHARS)?;
                Ok((!t.is_empty()).then(|| t.to_string()))
            }
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(self.err(
                key,
                format!("expected an id (string or number), found {}", kind(v)),
            )),
        }
    }

    pub fn req_id(&self, key: &str) -> Result<String, ParseError> {
        self.id(key)?
            .ok_or_else(|| self.err(key, "required field is missing"))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(key, format!("expected a boolean, found {}", kind(v)))),
        }
    }

    pub fn instant(&self, key: &str) -> Result<Option<DateTime<Utc>>, ParseError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => parse_instant(s)
                .map(Some)
                .ok_or_else(|| self.err(key, format!("`{}` is not an RFC 3339 instant", clip(s)))),
        }
    }

    pub fn decimal(&self, key: &str) -> Result<Option<Decimal>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => number_to_decimal(n)
                .map(Some)
                .ok_or_else(|| self.err(key, format!("number {n} is out of range"))),
            Some(Value::String(s)) => Decimal::from_str(s.trim())
                .map(Some)
                .map_err(|_| self.err(key, format!("`{}` is not a decimal number", clip(s)))),
            Some(v) => Err(self.err(key, format!("expected a number, found {}", kind(v)))),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.err(key, format!("expected an object, found {}", kind(v)))),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.err(key, format!("expected an array, found {}", kind(v)))),
        }
    }
}

/// Refuse a field longer than `max` characters, naming it and the limit.
pub(crate) fn check_len(obj: &Obj<'_>, key: &str, s: &str, max: usize) -> Result<(), ParseError> {
    // Bytes bound characters from above: most fields never count.
    if s.len() > max {
        let n = s.chars().count();
        if n > max {
            return Err(obj.err(key, too_long(n, max)));
        }
    }
    Ok(())
}

/// The message for a field over its cap.
pub(crate) fn too_long(chars: usize, max: usize) -> String {
    format!("is {chars} characters long; at most {max} are accepted")
}

/// At most 60 characters of untrusted text for an error message.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().nth(60).is_some() {
        out.push('…');
    }
    out
}

/// A JSON number as an exact decimal (see the module docs of `sources`).
pub(crate) fn number_to_decimal(n: &Number) -> Option<Decimal> {
    if let Some(i) = n.as_i64() {
        return Some(Decimal::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Decimal::from_str(&u.to_string()).ok();
    }
    let text = n.to_string();
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text).ok()
    } else {
        Decimal::from_str(&text).ok()
    }
}

/// RFC 3339 instant (`Z` or offset), also with a space for the `T`.
pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whole seconds from a decimal amount of hours, rounded half away from zero.
pub(crate) fn hours_to_secs(hours: Decimal) -> Option<i64> {
    hours
        .checked_mul(Decimal::from(3600))?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
}

/// Seconds between two instants, if `end` is not before `start`.
pub(crate) fn secs_between(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<i64> {
    let d = end.signed_duration_since(start).num_seconds();
    (d >= 0).then_some(d)
}

/// ISO-8601 duration `PnWnDTnHnMnS` (fractions allowed on any number) in
/// whole seconds, rounded half away from zero. Years and months are refused:
/// their length in seconds is not defined. Negative durations are refused.
pub(crate) fn parse_iso_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.strip_prefix(['P', 'p'])?;
    if rest.is_empty() {
        return None;
    }
    let mut total = Decimal::ZERO;
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    // Order of designators: W, D, then after T: H, M, S.
    let mut last_rank = 0u8;
    for c in rest.chars() {
        match c {
            'T' | 't' => {
                if in_time || !number.is_empty() {
                    return None;
                }
                in_time = true;
            }
            '0'..='9' | '.' | ',' => {
                number.push(if c == ',' { '.' } else { c });
                if number.len() > 40 {
                    return None;
                }
            }
            _ => {
                let (rank, unit) = match (in_time, c.to_ascii_uppercase()) {
                    (false, 'W') => (1, 604_800),
                    (false, 'D') => (2, 86_400),
                    (true, 'H') => (3, 3_600),
                    (true, 'M') => (4, 60),
                    (true, 'S') => (5, 1),
                    _ => return None,
                };
                if rank <= last_rank || number.is_empty() {
                    return None;
                }
                last_rank = rank;
                let value = Decimal::from_str(&number).ok()?;
                total = total.checked_add(value.checked_mul(Decimal::from(unit))?)?;
                number.clear();
                any = true;
            }
        }
    }
    if !number.is_empty() || !any {
        return None;
    }
    total
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
}

/// `H:MM[:SS]` (hours may exceed 24) in seconds.
pub(crate) fn parse_clock_duration(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let num = |p: &str| -> Option<i64> {
        if p.is_empty() || p.len() > 12 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let h = num(parts[0])?;
    let m = num(parts[1])?;
    let sec = if parts.len() == 3 { num(parts[2])? } else { 0 };
    if m >= 60 || sec >= 60 {
        return None;
    }
    h.checked_mul(3600)?.checked_add(m * 60 + sec)
}

/// A duration as CSV files write it: `H:MM[:SS]`, decimal hours (`1.5`, or
/// `1,5` with a decimal comma) or ISO-8601 (`PT1H30M`). Seconds, never negative.
pub(crate) fn parse_any_duration(s: &str) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if t.starts_with(['P', 'p']) {
        return parse_iso_duration(t);
    }
    if t.contains(':') {
        return parse_clock_duration(t);
    }
    let hours = parse_decimal_text(t)?;
    if hours.is_sign_negative() && !hours.is_zero() {
        return None;
    }
    hours_to_secs(hours)
}

/// A decimal as people write it: `1.5`, `1,5` (decimal comma when there is no
/// point), `1,234.50` (thousands commas with a point).
pub(crate) fn parse_decimal_text(s: &str) -> Option<Decimal> {
    let t = s.trim();
    if t.is_empty() || t.len() > 64 {
        return None;
    }
    let normalised = if t.contains('.') {
        t.replace(',', "")
    } else {
        t.replace(',', ".")
    };
    Decimal::from_str(&normalised).ok()
}

/// Resolve a local wall-clock time in `tz` to an instant: the earlier one
/// when ambiguous, the first valid instant after the gap when nonexistent.
pub(crate) fn resolve_local(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    if let Some(dt) = naive.and_local_timezone(tz).earliest() {
        return Some(dt.with_timezone(&Utc));
    }
    // In a gap: step forward by minutes (gaps are at most a day long) to the
    // first valid local time, then back by seconds to the transition itself.
    let minute = Duration::try_minutes(1)?;
    let second = Duration::try_seconds(1)?;
    let mut probe = naive;
    for _ in 0..(49 * 60) {
        probe = probe.checked_add_signed(minute)?;
        if let Some(dt) = probe.and_local_timezone(tz).earliest() {
            let mut instant = dt.with_timezone(&Utc);
            for _ in 0..120 {
                let earlier = instant.checked_sub_signed(second)?;
                if earlier.with_timezone(&tz).naive_local() >= naive {
                    instant = earlier;
                } else {
                    break;
                }
            }
            return Some(instant);
        }
    }
    None
}

/// The first instant of a local date in `tz`.
pub(crate) fn start_of_day(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    resolve_local(date.and_time(NaiveTime::MIN), tz)
}

/// A local date: `YYYY-MM-DD`, or with slashes/dots. `M/D/YYYY` unless
/// `day_first` (`D/M/YYYY`); dots are always day first (`D.M.YYYY`).
pub(crate) fn parse_local_date(s: &str, day_first: bool) -> Option<NaiveDate> {
    let t = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(d);
    }
    let (sep, dmy) = if t.contains('/') {
        ('/', day_first)
    } else if t.contains('.') {
        ('.', true)
    } else {
        return None;
    };
    let parts: Vec<&str> = t.split(sep).collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.len() > 4) {
        return None;
    }
    let n = |p: &str| -> Option<u32> {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    let (a, b, y) = (n(parts[0])?, n(parts[1])?, n(parts[2])?);
    if parts[2].len() != 4 {
        return None;
    }
    let (day, month) = if dmy { (a, b) } else { (b, a) };
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, month, day)
}

/// A wall-clock time: `14:05`, `14:05:09`, `2:05 PM`, `2:05pm`, `2:05:09 PM`.
pub(crate) fn parse_local_time(s: &str) -> Option<NaiveTime> {
    let t = s.trim().to_ascii_lowercase();
    let (clock, meridiem) = if let Some(x) = t.strip_suffix("am") {
        (x.trim_end(), Some(false))
    } else if let Some(x) = t.strip_suffix("pm") {
        (x.trim_end(), Some(true))
    } else {
        (t.as_str(), None)
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let n = |p: &str| -> Option<u32> {
        if !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    let mut h = n(parts[0])?;
    let m = n(parts[1])?;
    let sec = if parts.len() == 3 { n(parts[2])? } else { 0 };
    if let Some(pm) = meridiem {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = match (h, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    NaiveTime::from_hms_opt(h, m, sec)
}

/// A local date-time `YYYY-MM-DD HH:MM[:SS]` (or with `T`), no offset.
pub(crate) fn parse_local_datetime(s: &str) -> Option<NaiveDateTime> {
    let t = s.trim();
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(d);
        }
    }
    None
}

/// An instant written either as RFC 3339 or as a local time in `tz`.
pub(crate) fn parse_instant_or_local(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    parse_instant(s).or_else(|| resolve_local(parse_local_datetime(s)?, tz))
}

/// Whether a local time is exactly midnight.
pub(crate) fn is_midnight(t: NaiveTime) -> bool {
    t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0
}

/// A short stable id: hex of SHA-256 over the parts (unit-separated).
pub(crate) fn stable_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\x1f");
    }
    hex::encode(&h.finalize()[..16])
}

/// The worker time zone: an IANA name if valid.
pub(crate) fn parse_tz(s: &str) -> Option<Tz> {
    s.trim().parse::<Tz>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_duration("PT2H54M"), Some(2 * 3600 + 54 * 60));
        assert_eq!(parse_iso_duration("PT1H30M"), Some(5400));
        assert_eq!(parse_iso_duration("PT0S"), Some(0));
        assert_eq!(parse_iso_duration("P1DT1S"), Some(86_401));
        assert_eq!(parse_iso_duration("PT1.5S"), Some(2));
        assert_eq!(parse_iso_duration("PT0.25H"), Some(900));
        assert_eq!(parse_iso_duration("P1W"), Some(604_800));
        assert_eq!(parse_iso_duration("PT"), None);
        assert_eq!(parse_iso_duration("P"), None);
        assert_eq!(parse_iso_duration("PT1M2H"), None);
        assert_eq!(parse_iso_duration("P1M"), None);
        assert_eq!(parse_iso_duration("-PT1H"), None);
        assert_eq!(parse_iso_duration("PT99999999999999999999999999999H"), None);
    }

    #[test]
    fn clock_and_decimal_durations() {
        assert_eq!(parse_any_duration("1:30"), Some(5400));
        assert_eq!(parse_any_duration("01:30:15"), Some(5415));
        assert_eq!(parse_any_duration("26:00:00"), Some(93_600));
        assert_eq!(parse_any_duration("1.5"), Some(5400));
        assert_eq!(parse_any_duration("1,5"), Some(5400));
        assert_eq!(parse_any_duration("PT1H30M"), Some(5400));
        assert_eq!(parse_any_duration("-1"), None);
        assert_eq!(parse_any_duration("1:60"), None);
        assert_eq!(parse_any_duration(""), None);
    }

    #[test]
    fn local_times() {
        assert_eq!(parse_local_time("8:00am"), NaiveTime::from_hms_opt(8, 0, 0));
        assert_eq!(
            parse_local_time("12:05 am"),
            NaiveTime::from_hms_opt(0, 5, 0)
        );
        assert_eq!(
            parse_local_time("12:30pm"),
            NaiveTime::from_hms_opt(12, 30, 0)
        );
        assert_eq!(
            parse_local_time("02:00 PM"),
            NaiveTime::from_hms_opt(14, 0, 0)
        );
        assert_eq!(
            parse_local_time("23:59:59"),
            NaiveTime::from_hms_opt(23, 59, 59)
        );
        assert_eq!(parse_local_time("13:00 pm"), None);
        assert_eq!(parse_local_time("24:00"), None);
    }

    #[test]
    fn local_dates() {
        let d = NaiveDate::from_ymd_opt(2026, 9, 15).unwrap();
        assert_eq!(parse_local_date("2026-09-15", false), Some(d));
        assert_eq!(parse_local_date("09/15/2026", false), Some(d));
        assert_eq!(parse_local_date("15/09/2026", true), Some(d));
        assert_eq!(parse_local_date("15.09.2026", false), Some(d));
        assert_eq!(parse_local_date("15/09/2026", false), None);
        assert_eq!(parse_local_date("9/15/26", false), None);
    }

    #[test]
    fn dst_resolution() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // Spring forward 2026-03-08 02:00 → 03:00: 02:30 does not exist.
        let gap = parse_local_datetime("2026-03-08 02:30").unwrap();
        assert_eq!(
            resolve_local(gap, tz).unwrap(),
            "2026-03-08T07:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // Fall back 2026-11-01: 01:30 happens twice; the earlier is EDT.
        let amb = parse_local_datetime("2026-11-01 01:30").unwrap();
        assert_eq!(
            resolve_local(amb, tz).unwrap(),
            "2026-11-01T05:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn numbers_are_exact() {
        let v: Value = serde_json::from_str("[1.1, 0.1, 2000, 1e2, 12345.6789]").unwrap();
        let got: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                number_to_decimal(n.as_number().unwrap())
                    .unwrap()
                    .normalize()
                    .to_string()
            })
            .collect();
        assert_eq!(got, ["1.1", "0.1", "2000", "100", "12345.6789"]);
    }
}
