//! Stable-Rust "smoke fuzz" of the source parsers: a deterministic
//! pseudo-random mutation loop over the fixture payloads, a few seconds per
//! parser, through the same harness bodies as the cargo-fuzz targets in
//! `fuzz/` (`timepost_core::sources::fuzzing`). Any panic fails the test and
//! prints the offending input (hex) so it can be added as a regression case.
//!
//! `TIMEPOST_FUZZ_SECS` sets the time per parser (default 5; 0 runs only the
//! seeds). `TIMEPOST_FUZZ_SEED` changes the pseudo-random sequence.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use timepost_core::sources::fuzzing;

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens worth splicing into JSON and CSV payloads.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "-1",
    "0",
    "1e400",
    "-0",
    "99999999999999999999999",
    "1.5",
    "\"\"",
    "\"PT\"",
    "\"P1DT-1H\"",
    "\"9999-12-31T23:59:59Z\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"2026-03-08T02:30:00\"",
    "[]",
    "{}",
    "\"ping\"",
    "\"deleted\"",
    "\"time_entry\"",
    ",",
    ":",
    "\"",
    "\n",
    "\r\n",
    ";",
    "\t",
    "\u{feff}",
    "12:00 PM",
    "13:00 pm",
    "24:00",
    "02/30/2026",
    "-1:00",
    "PT1H",
    "yes",
    "maybe",
    "Mars/Olympus",
    "America/New_York",
    "sha256=",
    "\\u0000",
    "\u{10ffff}",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk: Vec<u8> = input[a..b].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            5 | 6 => {
                let tok = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(len + 1);
                // Replace a short run or insert.
                let end = (at + rng.below(8)).min(len);
                input.splice(at..end, tok.iter().copied());
            }
            7 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(128)).min(other.len());
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            _ if len > 0 => {
                // Change the selector byte.
                input[0] = rng.next() as u8;
            }
            _ => input.push(rng.next() as u8),
        }
    }
    input.truncate(64 * 1024);
}

/// A value worth putting where a JSON payload had another.
fn random_value(rng: &mut Rng) -> Value {
    const STRINGS: &[&str] = &[
        "",
        " ",
        "ping",
        "PT",
        "PT0S",
        "PT2H54M",
        "P1DT1H1M1.5S",
        "PT-1H",
        "P1M",
        "2026-03-02T10:00:00Z",
        "2026-03-02T10:00:00+14:00",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "2026-03-08",
        "2026-02-30",
        "9999-12-31",
        "8:00am",
        "12:00am",
        "11:59pm",
        "13:00pm",
        "USD",
        "usd",
        "EU",
        "APPROVED",
        "REJECTED",
        "PENDING",
        "WITHDRAWN_APPROVAL",
        "time_entry",
        "deleted",
        "created",
        "1.5",
        "-1",
        "1e400",
        "America/New_York",
        "Mars/Olympus",
    ];
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(rng.next()),
        4 => json!([-1, 0, 1, 59, 60, 3600, 86_400, i64::MAX, i64::MIN][rng.below(9)]),
        5 => json!([0.5, 1.25, -0.01, 1e300, 1e-300, 123_456_789.123_456_79][rng.below(6)]),
        6 => json!([]),
        7 => json!({}),
        8 => json!({"amount": rng.next() as i64, "currency": "USD"}),
        9 => {
            json!({"start": STRINGS[rng.below(STRINGS.len())], "end": STRINGS[rng.below(STRINGS.len())]})
        }
        _ => json!(STRINGS[rng.below(STRINGS.len())]),
    }
}

/// Replace, remove or duplicate one node of a JSON document.
fn mutate_value(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.below(4) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            if rng.below(8) == 0 {
                m.remove(k);
            } else if let Some(child) = m.get_mut(k) {
                mutate_value(rng, child);
            }
        }
        Value::Array(a) if !a.is_empty() && rng.below(4) != 0 => {
            let i = rng.below(a.len());
            match rng.below(8) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let copy = a[i].clone();
                    a.push(copy);
                }
                _ => mutate_value(rng, &mut a[i]),
            }
        }
        _ => *v = random_value(rng),
    }
}

/// Structure-aware mutation of `[selector] + JSON` inputs; false if the
/// payload is not JSON.
fn mutate_json(rng: &mut Rng, input: &mut Vec<u8>) -> bool {
    let Some((sel, body)) = input.split_first() else {
        return false;
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    for _ in 0..1 + rng.below(3) {
        mutate_value(rng, &mut v);
    }
    let mut out = vec![if rng.below(4) == 0 {
        rng.next() as u8
    } else {
        *sel
    }];
    out.extend(serde_json::to_vec(&v).unwrap_or_default());
    *input = out;
    true
}

fn fixtures(dir: &str) -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Seeds: every fixture behind every selector byte in `selectors`.
fn seeds(dir: &str, selectors: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for body in fixtures(dir) {
        for &s in selectors {
            let mut v = vec![s];
            v.extend_from_slice(&body);
            out.push(v);
        }
    }
    out
}

fn secs() -> u64 {
    std::env::var("TIMEPOST_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn run(name: &str, target: fn(&[u8]), seeds: Vec<Vec<u8>>) {
    let check = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            panic!(
                "{name}: panic on input (hex) {}\n(lossy: {:?})",
                hex::encode(input),
                String::from_utf8_lossy(input)
            );
        }
    };
    for s in &seeds {
        check(s);
    }
    let salt: u64 = std::env::var("TIMEPOST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7157_9057);
    let mut rng = Rng(salt ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 32);
    let deadline = Instant::now() + Duration::from_secs(secs());
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let mut input = if seeds.is_empty() {
            Vec::new()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        let structured = rng.below(3) != 0 && mutate_json(&mut rng, &mut input);
        if !structured || rng.below(4) == 0 {
            mutate(&mut rng, &mut input, &seeds);
        }
        check(&input);
        runs += 1;
    }
    eprintln!(
        "{name}: {} seeds, {runs} mutated inputs, no panic",
        seeds.len()
    );
}

#[test]
fn smoke_fuzz_clockify() {
    run(
        "clockify",
        fuzzing::clockify,
        seeds("clockify", &[0, 1, 3, 4, 6, 8, 0x16]),
    );
}

#[test]
fn smoke_fuzz_toggl() {
    run("toggl", fuzzing::toggl, seeds("toggl", &[0, 0x14, 0x24]));
}

#[test]
fn smoke_fuzz_harvest() {
    run(
        "harvest",
        fuzzing::harvest,
        seeds("harvest", &[0, 0x09, 0x1c]),
    );
}

#[test]
fn smoke_fuzz_csv() {
    run("csv", fuzzing::csv, seeds("csv", &[0, 1, 2, 0x14, 0x3c]));
}

#[test]
fn smoke_fuzz_signature() {
    let mut s = Vec::new();
    for body in fixtures("toggl") {
        for key_len in [0u8, 1, 20] {
            let mut v = vec![key_len];
            v.extend_from_slice(b"PGuRrhCFajIyEvFlreKL");
            v.extend_from_slice(&body);
            s.push(v);
        }
    }
    s.push(
        b"\x07secret!sha256=6d011bcd0b5bfb7e45372af01bc18f30cc04599df72eca189cdac1094008b095"
            .to_vec(),
    );
    // Found by libFuzzer: keys differing only by trailing zero bytes are the
    // same HMAC key (the harness once assumed otherwise).
    s.push(b"\x7bx\0\0\0\0\0\0\0".to_vec());
    run("signature", fuzzing::signature, s);
}
