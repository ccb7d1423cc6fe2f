//! Benchmarks of the decision core.
//!
//! - `decide`: the pure decision over a realistic mix of entries (mapped,
//!   unmapped, contractors, foreign currency, unapproved, overtime splits);
//! - `toggl_parse_only`: serde_json parsing Toggl webhook bodies (the floor);
//! - `toggl_parse_and_decide`: timepost's Toggl parser plus `decide`.
//!
//! After criterion's own report, a plain timing loop prints entries/s and
//! the parse+decide / parse-only ratio (targets: ≥ 1M decisions/s per core,
//! ratio ≤ 2). Run with `cargo bench -p timepost-shared --bench decide`.

use std::hint::black_box;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, Criterion, Throughput};
use rust_decimal::Decimal;
use timepost::config::Config;
use timepost::mapping::{csv_io, Mappings};
use timepost::model::*;
use timepost::pipeline::{decide, EntryPlan, NoTrace};
use timepost::rules::Split;
use timepost::sources::{toggl, ParseContext};

const N: usize = 1000;

fn setup() -> (Mappings, timepost::rules::Rules) {
    let cfg = Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    let rows = csv_io::read(timepost::demo::MAPPINGS.as_bytes()).expect("mappings");
    (Mappings::from_rows(rows, 1), cfg.rules)
}

fn mix() -> Vec<(NormalisedEntry, EntryPlan)> {
    let users = [
        "u-ann", "u-bob", "u-dev", "u-fay", "u-ivy", "u-jon", "u-zed",
    ];
    let projects = [
        "p-acme-web",
        "p-globex-erp",
        "p-initech-audit",
        "p-stark-eu",
        "p-rnd",
    ];
    let tz = chrono_tz::America::Los_Angeles;
    (0..N)
        .map(|i| {
            let start = tz
                .with_ymd_and_hms(2026, 3, 2 + (i % 5) as u32, 8, 0, 0)
                .unwrap()
                .with_timezone(&Utc);
            let secs = 1800 + (i as i64 * 97) % 30000;
            let eur = i % 9 == 0;
            let e = NormalisedEntry {
                key: EntryKey::new(Source::Toggl, "ws", format!("e{i}")),
                version: Version {
                    updated_at: start,
                    content_hash: String::new(),
                },
                worker: Worker {
                    tracker_user_id: users[i % users.len()].into(),
                    email: None,
                    name: Some("Worker".into()),
                    kind: None,
                    form_1099: None,
                },
                time_zone: tz,
                work_date: local_date(start, tz),
                start: Some(start),
                end: Some(start + Duration::seconds(secs)),
                duration_secs: secs,
                project: Some(Ref::new(projects[i % projects.len()], None)),
                client: None,
                task: Some(Ref::new(if i % 2 == 0 { "t-dev" } else { "t-other" }, None)),
                tags: vec![],
                billable: i % 4 != 0,
                rate: Some(Money::new(
                    Decimal::new(12000, 2),
                    (if eur { "EUR" } else { "USD" }).parse().unwrap(),
                )),
                notes: "Work on the thing".into(),
                approval: if i % 13 == 0 {
                    ApprovalStatus::Pending
                } else {
                    ApprovalStatus::Approved
                },
                attachments: vec![],
                origin: Origin::Web,
                deleted: false,
                already_rounded: false,
            }
            .seal();
            let minutes = secs / 60;
            let split = if i % 3 == 0 && minutes > 60 {
                let mut s = Split::all_regular(minutes - 60);
                s.overtime.insert("overtime".into(), 60);
                s
            } else {
                Split::all_regular(minutes)
            };
            (e, EntryPlan { minutes, split })
        })
        .collect()
}

fn toggl_bodies() -> Vec<Vec<u8>> {
    let users = [101, 102, 103, 104];
    (0..N)
        .map(|i| {
            let start = Utc.with_ymd_and_hms(2026, 3, 2 + (i % 5) as u32, 16, 0, 0).unwrap();
            let dur = 1800 + (i as i64 * 97) % 30000;
            serde_json::to_vec(&serde_json::json!({
                "event_id": 9_000_000 + i,
                "created_at": "2026-03-09T10:00:00Z",
                "creator_id": 7,
                "subscription_id": 42,
                "timestamp": "2026-03-09T10:00:00Z",
                "metadata": {
                    "action": "updated", "model": "time_entry", "event_user_id": "7",
                    "workspace_id": "555", "time_entry_id": i.to_string(), "path": "/time_entries", "request_type": "PUT"
                },
                "payload": {
                    "id": i, "workspace_id": 555, "user_id": users[i % users.len()], "project_id": 9000 + i % 5,
                    "task_id": null, "billable": i % 4 != 0, "start": start.to_rfc3339(),
                    "stop": (start + Duration::seconds(dur)).to_rfc3339(), "duration": dur,
                    "description": "Work on the thing", "tags": ["dev"], "tag_ids": [1],
                    "at": "2026-03-09T09:59:00Z", "server_deleted_at": null, "duronly": false
                }
            }))
            .unwrap()
        })
        .collect()
}

fn toggl_mappings() -> (Mappings, timepost::rules::Rules) {
    let (mut m, mut rules) = setup();
    use timepost::mapping::{MappingRow, MappingTable};
    for (u, t) in [("101", "E-100"), ("102", "E-101"), ("103", "E-103")] {
        m.insert(MappingRow::new(MappingTable::Employee, u, t));
    }
    for p in 0..4 {
        m.insert(MappingRow::new(
            MappingTable::Project,
            &(9000 + p).to_string(),
            "C-ACME",
        ));
    }
    rules.billable.rate_source = timepost::rules::RateSource::Ledger;
    // Toggl entries carry no approval status; treat them as cleared here.
    rules.approval.required = false;
    (m, rules)
}

fn bench(c: &mut Criterion) {
    let (m, rules) = setup();
    let entries = mix();
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("decide", |b| {
        b.iter(|| {
            for (e, plan) in &entries {
                black_box(decide(e, Some(plan), &m, &rules, None, &mut NoTrace));
            }
        })
    });
    let bodies = toggl_bodies();
    let (tm, trules) = toggl_mappings();
    let ctx = ParseContext::new(chrono_tz::America::Los_Angeles);
    g.bench_function("toggl_parse_only", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(serde_json::from_slice::<serde_json::Value>(body).unwrap());
            }
        })
    });
    g.bench_function("toggl_parse_and_decide", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(parse_and_decide(body, &ctx, &tm, &trules));
            }
        })
    });
    g.finish();
}

fn parse_and_decide(
    body: &[u8],
    ctx: &ParseContext,
    m: &Mappings,
    rules: &timepost::rules::Rules,
) -> usize {
    let parsed = toggl::parse(body, ctx).expect("parses");
    match parsed.event {
        timepost::sources::Event::Entries { entries } => entries
            .iter()
            .map(|e| decide(e, None, m, rules, None, &mut NoTrace))
            .filter(|d| matches!(d, timepost::pipeline::Decision::Post(_)))
            .count(),
        _ => 0,
    }
}

/// Plain timings for the figures the issue asks for.
fn summary() {
    let (m, rules) = setup();
    let entries = mix();
    let rounds = 200;
    let t = Instant::now();
    for _ in 0..rounds {
        for (e, plan) in &entries {
            black_box(decide(e, Some(plan), &m, &rules, None, &mut NoTrace));
        }
    }
    let decide_rate = (rounds * N) as f64 / t.elapsed().as_secs_f64();

    let bodies = toggl_bodies();
    let (tm, trules) = toggl_mappings();
    let ctx = ParseContext::new(chrono_tz::America::Los_Angeles);
    let posts: usize = bodies
        .iter()
        .map(|b| parse_and_decide(b, &ctx, &tm, &trules))
        .sum();
    let rounds = 50;
    let t = Instant::now();
    for _ in 0..rounds {
        for b in &bodies {
            black_box(serde_json::from_slice::<serde_json::Value>(b).unwrap());
        }
    }
    let parse_rate = (rounds * N) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..rounds {
        for b in &bodies {
            black_box(parse_and_decide(b, &ctx, &tm, &trules));
        }
    }
    let pd_rate = (rounds * N) as f64 / t.elapsed().as_secs_f64();
    println!("\n== timepost decision core (one core) ==");
    println!("decide:                  {decide_rate:>12.0} entries/s");
    println!("toggl parse only:        {parse_rate:>12.0} entries/s (serde_json::Value)");
    println!("toggl parse + decide:    {pd_rate:>12.0} entries/s ({posts} of {N} post)");
    println!(
        "parse+decide / parse:    {:>12.2}× the parse-only time",
        parse_rate / pd_rate
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
