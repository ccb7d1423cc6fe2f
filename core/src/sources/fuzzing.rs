//! Fuzz harness bodies, shared by the cargo-fuzz targets in `fuzz/` and the
//! stable-Rust smoke fuzz in `core/tests/it/sources_fuzz.rs`, so both exercise
//! exactly the same code. Each function takes arbitrary bytes, feeds them to
//! the parsers and checks invariants of whatever they accept; a panic (an
//! assertion included) is a bug.
//!
//! Input layout: the first byte selects options (event type, context flags),
//! the rest is the payload.

use std::io::Read;

use chrono_tz::Tz;

use super::{clockify, csv_import, harvest, signature, toggl, Event, ParseContext, Parsed};
use crate::model::NormalisedEntry;

const CLOCKIFY_EVENTS: [Option<&str>; 9] = [
    None,
    Some("NEW_TIME_ENTRY"),
    Some("TIME_ENTRY_UPDATED"),
    Some("TIME_ENTRY_DELETED"),
    Some("NEW_TIMER_STARTED"),
    Some("TIMER_STOPPED"),
    Some("APPROVAL_REQUEST_STATUS_UPDATED"),
    Some("NEW_APPROVAL_REQUEST"),
    Some("NEW_PROJECT"),
];

const ZONES: [Tz; 4] = [
    chrono_tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Apia,
];

fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((sel, rest)) => (*sel, rest),
        None => (0, data),
    }
}

fn context(sel: u8) -> ParseContext {
    let mut ctx = ParseContext::new(ZONES[usize::from(sel >> 4) % ZONES.len()]);
    ctx.harvest_use_rounded = sel & 0x08 != 0;
    if sel & 0x04 != 0 {
        ctx.received_at = "2026-03-04T09:00:00Z".parse().ok();
    }
    ctx.user_tz.insert("6".into(), chrono_tz::Europe::Berlin);
    ctx
}

/// Invariants of every entry a parser accepts.
pub fn check_entry(e: &NormalisedEntry) {
    assert!(e.duration_secs >= 0, "negative duration");
    assert_eq!(
        e.version.content_hash,
        e.compute_content_hash(),
        "not sealed"
    );
    if let (Some(s), Some(end)) = (e.start, e.end) {
        assert!(end >= s, "end before start");
    }
    let json = serde_json::to_string(e).expect("entry serialises");
    let back: NormalisedEntry = serde_json::from_str(&json).expect("entry deserialises");
    assert_eq!(&back, e, "serde round trip");
}

fn check_parsed(p: &Parsed) {
    match &p.event {
        Event::Entries { entries } => entries.iter().for_each(check_entry),
        Event::Approval { from, to, .. } => assert!(from <= to, "empty approval range"),
        Event::Ping { .. } | Event::Ignored { .. } => {}
    }
    let json = serde_json::to_string(p).expect("parsed serialises");
    let back: Parsed = serde_json::from_str(&json).expect("parsed deserialises");
    assert_eq!(&back, p, "serde round trip");
}

pub fn clockify(data: &[u8]) {
    let (sel, body) = split(data);
    let event = CLOCKIFY_EVENTS[usize::from(sel & 0x0f) % CLOCKIFY_EVENTS.len()];
    let ctx = context(sel);
    if let Ok(p) = clockify::parse(body, event, &ctx) {
        check_parsed(&p);
    }
    if let Ok(ps) = clockify::parse_many(body, event, &ctx) {
        ps.iter().for_each(check_parsed);
    }
}

pub fn toggl(data: &[u8]) {
    let (sel, body) = split(data);
    let ctx = context(sel);
    if let Ok(p) = toggl::parse(body, &ctx) {
        check_parsed(&p);
    }
    if let Ok(ps) = toggl::parse_many(body, &ctx) {
        ps.iter().for_each(check_parsed);
    }
    if let Ok(es) = toggl::parse_api_entries(body, &ctx) {
        es.iter().for_each(check_entry);
    }
}

pub fn harvest(data: &[u8]) {
    let (sel, body) = split(data);
    let mut ctx = context(sel);
    if sel & 1 != 0 {
        ctx.harvest_account_id = Some("123".into());
    }
    if let Ok(p) = harvest::parse_page(body, &ctx) {
        p.entries.iter().for_each(check_entry);
    }
    if let Ok(es) = harvest::parse_many(body, &ctx) {
        es.iter().for_each(check_entry);
    }
}

pub fn csv(data: &[u8]) {
    let (sel, body) = split(data);
    let ctx = context(sel);
    let mut columns = csv_import::CsvColumns {
        day_first: sel & 1 != 0,
        ..Default::default()
    };
    if sel & 2 != 0 {
        columns.duration = "Hours".into();
    }
    // Also through a reader that returns one byte at a time.
    let inputs: [Box<dyn Read>; 2] = [Box::new(body), Box::new(OneByte(body))];
    for input in inputs {
        if let Ok(rows) = csv_import::reader(input, &columns, &ctx) {
            for row in rows.take(100_000).flatten() {
                check_entry(&row);
            }
        }
    }
}

/// A reader handing out one byte per call.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

pub fn signature(data: &[u8]) {
    let (sel, rest) = split(data);
    let cut = usize::from(sel).min(rest.len());
    let (secret, body) = rest.split_at(cut);
    let header = String::from_utf8_lossy(body);
    let header = header.lines().next().unwrap_or_default();
    // Arbitrary headers must not panic.
    let _ = signature::verify_toggl(body, Some(header), &[secret]);
    let _ = signature::verify_clockify(Some(header), &[secret]);
    // What we sign verifies, with any secret; with another secret it does not.
    let signed = signature::sign_toggl(body, secret);
    if !secret.is_empty() {
        assert!(signature::verify_toggl(
            body,
            Some(&signed),
            &[b"other", secret]
        ));
        // A different key (not merely `secret` with zero bytes appended,
        // which HMAC pads to the same key) must not verify.
        let mut other = secret.to_vec();
        other[0] ^= 1;
        assert!(!signature::verify_toggl(body, Some(&signed), &[&other]));
        if let Ok(token) = std::str::from_utf8(secret) {
            if token.trim() == token {
                assert!(signature::verify_clockify(Some(token), &[secret]));
            }
        }
    }
}
