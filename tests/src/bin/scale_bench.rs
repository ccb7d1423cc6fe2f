//! Scale benchmark of the local store: builds a realistic store of N entry
//! states (300 workers, 30 projects, three years of work days, posted with
//! regular and overtime lines, some awaiting approval, held for a missing
//! mapping, in exception, voided, ignored) through `EntryStore::put` — so
//! the aggregates are kept as in production — then serves the console on
//! a loopback port and prints, as one JSON object per line:
//! the state-write rate, each page's latency (p50 / p99 of 20 requests),
//! the outcome report's time (`report::collect`, what `timepost status` and
//! `/api/report` run), the rebuild of the aggregates, peak RSS and store
//! bytes per entry. See `scripts/load-scale.sh` and docs/performance.md.
//!
//! With mappings applied afterwards, the impact preview of one employee
//! and one project row and the held re-check after a row is added
//! (`--skip-mapping` leaves them out).
//!
//! Usage: scale-bench --entries 10000 [--dir DIR] [--requests 20] [--skip-report] [--skip-mapping]
//! [--build-only] [--put-batch K]
//!
//! `--put-batch K` writes the states K to a transaction
//! (`SqliteStore::put_many`: each state through the same write as `put`,
//! aggregates included), for building stores of millions; the default, 1,
//! is one transaction per state, as the engine writes.
//!
//! `--build-only` stops after the store is built and its line printed (with
//! `--dir`, the store `DIR/scale.sqlite` is kept: `scripts/load-csv.sh` uses
//! it as the store an import lands in).
//!
//! `--backend aws` (moto server at `AWS_ENDPOINT_URL`, as
//! `scripts/moto.sh` starts it): the same states through the DynamoDB
//! adapter's `put` on a fresh table, the console served with its entries
//! on that table, and, per page view and per entry written, the DynamoDB
//! read and write requests and items counted by an SDK interceptor
//! (`timepost_tests::dynamo_count`) instead of latencies.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use timepost::exceptions::{Exception, ExceptionCode};
use timepost::ledger::{Party, PostingLine, RecordRef};
use timepost::model::*;
use timepost::ports::EntryStore;
use timepost::state::{EntryState, Status};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORKERS: u64 = 300;
const PROJECTS: u64 = 30;
const DAYS: u64 = 3 * 365;

fn usd(cents: i64) -> Money {
    Money::new(
        Decimal::new(cents, 2),
        "USD".parse().unwrap_or_else(|e: String| panic!("{e}")),
    )
}

fn state(i: u64, rng: &mut Rng) -> EntryState {
    let worker = rng.below(WORKERS);
    // Each worker books to three of the projects.
    let project = (worker * 7 + rng.below(3)) % PROJECTS;
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default();
    let date = start + chrono::Duration::days(rng.below(DAYS) as i64);
    let minutes = 30 + 15 * rng.below(32) as i64;
    let seen = Utc.from_utc_datetime(&date.and_hms_opt(18, 0, 0).unwrap_or_default())
        + chrono::Duration::minutes(rng.below(600) as i64);
    let entry = NormalisedEntry {
        key: EntryKey::new(Source::Toggl, "555", format!("{i}")),
        version: Version {
            updated_at: seen,
            content_hash: format!("h{i}"),
        },
        worker: Worker {
            tracker_user_id: format!("{}", 1000 + worker),
            email: None,
            name: Some(format!("Worker {worker:03}")),
            kind: None,
            form_1099: None,
        },
        time_zone: chrono_tz::UTC,
        work_date: date,
        start: None,
        end: None,
        duration_secs: minutes * 60,
        project: Some(Ref::new(
            format!("{}", 9000 + project),
            Some(format!("Project {project:02}")),
        )),
        client: None,
        task: None,
        tags: vec![],
        billable: !project.is_multiple_of(3),
        rate: Some(usd(12_500 + 500 * (worker % 10) as i64)),
        notes: String::new(),
        approval: ApprovalStatus::Approved,
        attachments: vec![],
        origin: Origin::Web,
        deleted: false,
        already_rounded: false,
    };
    let mut s = EntryState::new(entry, seen);
    let roll = rng.below(100);
    let later = seen + chrono::Duration::minutes(1 + rng.below(90) as i64);
    if roll < 3 {
        s.reason = Some(Exception::missing(
            ExceptionCode::UnmappedProject,
            "no customer for the project",
            "project",
            format!("{}", 9000 + project),
        ));
        s.set_status(Status::Held, seen);
    } else if roll < 5 {
        s.reason = Some(Exception::new(ExceptionCode::MissingRate, "no rate"));
        s.set_status(Status::Exception, seen);
    } else if roll < 10 {
        s.set_status(Status::AwaitingApproval, seen);
    } else if roll < 12 {
        s.set_status(Status::Voided, seen);
    } else if roll < 14 {
        s.set_status(Status::Ignored, seen);
    } else {
        if roll < 17 {
            // Once held, mapped since: resolved.
            s.set_status(Status::Held, seen);
        }
        let e = &s.entry;
        let overtime = minutes > 360;
        let split = if overtime { minutes - 60 } else { minutes };
        let line = |tier: &str, m: i64, rate: Money| PostingLine {
            tier: tier.into(),
            party: Party::Employee {
                id: format!("E-{}", 1000 + worker),
            },
            txn_date: e.work_date,
            minutes: m,
            customer: Some(format!("C-{project}")),
            service_item: None,
            class: None,
            department: None,
            payroll_item: None,
            account: "4000-services".into(),
            billable: e.billable,
            hourly_rate: Some(rate),
            original_rate: None,
            fx_rate: None,
            fx_date: None,
            description: String::new(),
        };
        let rate = e.rate.clone().unwrap_or_else(|| usd(0));
        s.posted_lines = vec![line("regular", split, rate.clone())];
        if overtime {
            s.posted_lines.push(line("overtime", 60, rate));
        }
        s.records = vec![RecordRef {
            id: format!("r{i}"),
            sync_token: "0".into(),
            tier: "regular".into(),
        }];
        s.set_status(Status::Posted, later);
    }
    s
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let n: u64 = arg("--entries", "10000").parse().expect("--entries");
    let requests: usize = arg("--requests", "20").parse().expect("--requests");
    let skip_report = std::env::args().any(|a| a == "--skip-report");
    let build_only = std::env::args().any(|a| a == "--build-only");
    let put_batch: u64 = arg("--put-batch", "1").parse().expect("--put-batch");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = std::path::PathBuf::from(arg("--dir", &tmp.path().display().to_string()));
    std::fs::create_dir_all(&dir).expect("dir");
    let _ = rustls::crypto::ring::default_provider().install_default();
    if arg("--backend", "local") == "aws" {
        return aws::run(n, &dir).await;
    }

    let token = "scale-bench-admin-token-0123456789abcdef";
    let secrets = dir.join("secrets.toml");
    std::fs::write(&secrets, format!("admin_token = \"{token}\"\n")).expect("secrets");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut config =
        timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    config.store.path = dir.join("scale.sqlite");
    config.store.secrets_file = secrets;
    config.store.archive_dir = dir.join("archive");
    let store = timepost::local::sqlite::SqliteStore::open(&config.store.path).expect("store");
    let stack = timepost::stack::LocalStack::with_store(config, store).expect("stack");

    // Build the store through `put`, as the engine writes states.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t = Instant::now();
    // `--reuse`: time the pages over the store an earlier `--build-only
    // --dir D` run built, without writing it again.
    let reuse = std::env::args().any(|a| a == "--reuse");
    if reuse {
        println!(
            "{}",
            serde_json::json!({"entries": n, "reused_store": stack.config.store.path})
        );
    } else if put_batch <= 1 {
        for i in 0..n {
            stack.store.put(&state(i, &mut rng)).await.expect("put");
        }
    } else {
        let mut i = 0;
        while i < n {
            let chunk: Vec<EntryState> = (i..n.min(i + put_batch))
                .map(|j| state(j, &mut rng))
                .collect();
            stack.store.put_many(&chunk).expect("put_many");
            i += chunk.len() as u64;
        }
    }
    let build = t.elapsed();
    let bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", stack.config.store.path.display())).ok())
        .map(|m| m.len())
        .sum();
    if !reuse {
        println!(
            "{}",
            serde_json::json!({"entries": n, "state_writes_per_s": (n as f64 / build.as_secs_f64()).round(), "put_batch": put_batch,
                "peak_rss_kib_after_build": peak_rss_kib()})
        );
    }
    println!(
        "{}",
        serde_json::json!({"entries": n, "store_bytes": bytes, "store_bytes_per_entry": bytes / n.max(1)})
    );
    if build_only {
        return;
    }

    // The console over loopback, as a browser reaches it.
    let state = timepost_web::AppState::local(&stack);
    let app = timepost_web::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client");
    let exception = stack
        .store
        .by_status(Status::Exception, 1)
        .await
        .expect("an exception")
        .first()
        .map(|st| st.entry.key.to_string())
        .unwrap_or_default();
    let detail = format!(
        "/console/exceptions/{}",
        exception.replace('%', "%25").replace(':', "%3A")
    );
    for (name, path) in [
        ("dashboard", "/console"),
        (
            "dashboard_one_month",
            "/console?from=2026-06-01&to=2026-06-30",
        ),
        ("hours_csv", "/console/hours-by-project.csv"),
        ("exceptions", "/console/exceptions"),
        ("approvals", "/console/approvals"),
        ("entry_detail", detail.as_str()),
        ("mappings", "/console/mappings"),
        ("mappings_history", "/console/mappings/history"),
        ("reconciliation", "/console/reconciliation"),
        ("archives", "/console/archives"),
        ("api_entries_page", "/api/entries"),
        ("api_entries_by_worker", "/api/entries?worker=1007"),
        ("api_report_summary", "/api/report"),
        ("api_report_month", "/api/report?period=2026-06"),
    ] {
        let mut lat = Vec::new();
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let resp = client
                .get(format!("http://{addr}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            bytes = resp.bytes().await.expect("body").len();
            lat.push(t.elapsed());
        }
        println!(
            "{}",
            serde_json::json!({"entries": n, "page": name, "p50_ms": pct(&mut lat, 0.5),
                "p99_ms": pct(&mut lat, 0.99), "bytes": bytes, "peak_rss_kib": peak_rss_kib()})
        );
    }
    // Approving an employee's week from the approvals page (the POST; the
    // page it redirects to is timed above).
    {
        let no_redirect = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(600))
            .build()
            .expect("client");
        let waiting = stack
            .store
            .by_status(Status::AwaitingApproval, requests)
            .await
            .expect("awaiting");
        let mut lat = Vec::new();
        for st in &waiting {
            let t = Instant::now();
            let resp = no_redirect
                .post(format!("http://{addr}/console/approvals"))
                .bearer_auth(token)
                .form(&[("all_week", st.entry.key.to_string())])
                .send()
                .await
                .expect("approve");
            assert!(
                resp.status().is_redirection(),
                "approve a week: {}",
                resp.status()
            );
            lat.push(t.elapsed());
        }
        println!(
            "{}",
            serde_json::json!({"entries": n, "action": "approve_week", "p50_ms": pct(&mut lat, 0.5),
                "p99_ms": pct(&mut lat, 0.99), "weeks": lat.len(), "peak_rss_kib": peak_rss_kib()})
        );
    }
    // The report by period (`timepost status --period P`,
    // `/api/report?period=P`): one period's aggregate rows, and the
    // all-time view summed from the year rows.
    for label in ["2026-06", "2025", "all"] {
        let p: timepost::aggregates::Period = label.parse().expect("period");
        let mut lat = Vec::new();
        let mut entries = Default::default();
        for _ in 0..requests {
            let t = Instant::now();
            let r = timepost::period_report::collect_period(&stack.store, p, label)
                .await
                .expect("period report");
            lat.push(t.elapsed());
            entries = r.entries;
        }
        println!(
            "{}",
            serde_json::json!({"entries": n, "period_report": label, "p50_ms": pct(&mut lat, 0.5),
                "p99_ms": pct(&mut lat, 0.99), "period_entries": entries, "peak_rss_kib": peak_rss_kib()})
        );
    }
    if !skip_report {
        // The outcome report still folds every state (`timepost status`).
        let t = Instant::now();
        let rep = timepost::report::collect(
            &stack.store,
            stack.ledger.as_ref(),
            &stack.store,
            Default::default(),
            &[],
        )
        .await
        .expect("report");
        println!(
            "{}",
            serde_json::json!({"entries": n, "report_collect_ms": t.elapsed().as_millis(),
                "posted": rep.posted.entries, "peak_rss_kib": peak_rss_kib()})
        );
    }
    if !std::env::args().any(|a| a == "--skip-mapping") {
        mapping_figures(&stack, n).await;
    }
    // Last, so the peak RSS above is the pages' and the report's
    // (`--skip-rebuild` leaves it out: it holds every row in memory).
    if std::env::args().any(|a| a == "--skip-rebuild") {
        return;
    }
    let t = Instant::now();
    let r = stack.store.rebuild_aggregates_now().expect("rebuild");
    println!(
        "{}",
        serde_json::json!({"entries": n, "rebuild_aggregates_ms": t.elapsed().as_millis(),
            "aggregate_rows": r.rows, "rows_differed": r.differed, "peak_rss_kib": peak_rss_kib()})
    );
}

/// The mapping-index figures (docs/performance.md, "Mapping changes"): the
/// impact preview of one employee row and of one project row (what the
/// review threshold counts), and the held re-check after a project row is
/// added, over mappings for every worker and every project but the last.
async fn mapping_figures(stack: &timepost::stack::LocalStack, n: u64) {
    use timepost::mapping::{diff, MappingRow, MappingTable};
    use timepost::ports::MappingStore;
    let mut rows: Vec<MappingRow> =
        timepost::mapping::csv_io::read(timepost::demo::MAPPINGS.as_bytes())
            .expect("demo mappings")
            .into_iter()
            .filter(|r| {
                matches!(
                    r.table,
                    MappingTable::ServiceItem | MappingTable::GlAccount | MappingTable::PayrollItem
                )
            })
            .collect();
    for w in 0..WORKERS {
        rows.push(MappingRow::new(
            MappingTable::Employee,
            &format!("{}", 1000 + w),
            &format!("E-{}", 1000 + w),
        ));
    }
    for p in 0..PROJECTS - 1 {
        rows.push(MappingRow::new(
            MappingTable::Project,
            &format!("{}", 9000 + p),
            &format!("C-{p}"),
        ));
    }
    let current = stack.store.snapshot().await.expect("snapshot");
    let changes = diff(&current, &rows, false, "bench", Utc::now(), "bench");
    stack.store.apply(changes).await.expect("apply");
    let current = stack.store.snapshot().await.expect("snapshot");
    let review = timepost::review::MappingReview {
        entries: &stack.store,
        mappings: &stack.store,
        audit: &stack.store,
        pending: None,
        engine: &stack.engine,
        threshold: u64::MAX,
    };
    // The console's preview lists the last 30 days of work dates: here,
    // the 30 days up to the store's newest work date.
    let newest = stack
        .store
        .newest_work_date()
        .await
        .expect("newest")
        .unwrap_or_default();
    let period = timepost::review::Period {
        from: newest - chrono::Duration::days(timepost::review::Period::DEFAULT_DAYS),
        to: newest,
    };
    for (name, table, key) in [
        ("preview_employee_change", MappingTable::Employee, "1007"),
        ("preview_project_change", MappingTable::Project, "9007"),
    ] {
        let after = Some(MappingRow::new(table, key, "X-NEW"));
        let change = timepost::review::draft(&current, "bench", table, key, after, "bench")
            .expect("draft")
            .expect("a change");
        // The console's preview (one period listed, the reach counted),
        // then every date replayed (what `mappings import` does), once.
        for (figure, period, runs) in [
            (name.to_string(), Some(period), 20),
            (format!("{name}_every_date"), None, 1),
        ] {
            let mut lat = Vec::new();
            let mut last = None;
            for _ in 0..runs {
                let t = Instant::now();
                last = Some(
                    review
                        .preview(&current, std::slice::from_ref(&change), period)
                        .await
                        .expect("preview"),
                );
                lat.push(t.elapsed());
            }
            let p = last.expect("a preview");
            println!(
                "{}",
                serde_json::json!({"entries": n, "figure": figure, "p50_ms": pct(&mut lat, 0.5),
                    "p99_ms": pct(&mut lat, 0.99), "entries_in_reach": p.in_reach(),
                    "entries_read": p.entries_replayed, "entries_listed": p.changed_count(),
                    "entries_affected": p.entries_affected, "peak_rss_kib": peak_rss_kib()})
            );
        }
    }
    // For comparison, what the preview did before the index: every state
    // read and replayed (one run; it holds every state, so the peak RSS
    // printed after it is its own: `--skip-full-replay` leaves it out).
    if !std::env::args().any(|a| a == "--skip-full-replay") {
        let change = timepost::review::draft(
            &current,
            "bench",
            MappingTable::Employee,
            "1007",
            Some(MappingRow::new(MappingTable::Employee, "1007", "X-NEW")),
            "bench",
        )
        .expect("draft")
        .expect("a change");
        let mut proposed = current.clone();
        timepost::mapping::change::apply(&mut proposed, std::slice::from_ref(&change));
        let t = Instant::now();
        let all = stack.store.all().await.expect("all");
        let (from, to) = (
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default(),
        );
        let p = timepost::impact::preview(&all, from, to, &current, &proposed, &stack.engine.rules);
        println!(
            "{}",
            serde_json::json!({"entries": n, "figure": "preview_employee_change_full_replay",
                "ms": t.elapsed().as_millis(), "entries_read": all.len(),
                "entries_affected": p.entries_affected})
        );
    }
    // The last project gets its row: the re-check reads that project's
    // entries over the index and re-decides its held ones.
    let key = format!("{}", 9000 + PROJECTS - 1);
    let Some(change) = timepost::review::draft(
        &current,
        "bench",
        MappingTable::Project,
        &key,
        Some(MappingRow::new(MappingTable::Project, &key, "C-LAST")),
        "bench",
    )
    .expect("draft") else {
        // A store reused after an earlier run already has the row.
        println!(
            "{}",
            serde_json::json!({"entries": n, "figure": "recheck_after_project_row",
                "skipped": format!("project {key} is mapped already (a reused store)")})
        );
        return;
    };
    let applied = stack.store.apply(vec![change]).await.expect("apply");
    let t = Instant::now();
    let out = stack
        .engine
        .recheck_held_for(&applied, "bench")
        .await
        .expect("recheck");
    let ms = t.elapsed().as_millis();
    let held_left = stack
        .store
        .by_status(Status::Held, 1_000_000)
        .await
        .expect("held")
        .len();
    println!(
        "{}",
        serde_json::json!({"entries": n, "figure": "recheck_after_project_row",
            "ms": ms, "re_decided": out.len(),
            "held_in_store_after": held_left, "peak_rss_kib": peak_rss_kib()})
    );
}

/// `--backend aws`: request counts on moto (see the module comment).
mod aws {
    use std::sync::Arc;
    use std::time::Duration;

    use timepost::ports::EntryStore;
    use timepost_tests::dynamo_count::{counting_client, RequestCounter, Snapshot};

    fn json(what: &str, n: u64, used: Snapshot, per: u64) -> serde_json::Value {
        let per = per.max(1) as f64;
        serde_json::json!({"entries": n, "backend": "dynamodb (moto)", "what": what,
            "read_requests": used.reads as f64 / per, "items_read": used.items_read as f64 / per,
            "write_requests": used.writes as f64 / per, "items_written": used.items_written as f64 / per})
    }

    pub async fn run(n: u64, dir: &std::path::Path) {
        let config = timepost_tests::moto::sdk_config()
            .await
            .expect("--backend aws needs moto: source scripts/moto.sh && moto_start");
        let counter = RequestCounter::default();
        let dynamo = timepost::aws::DynamoStore::new(
            counting_client(&config, &counter),
            timepost_tests::moto::unique("scale"),
        );
        dynamo.create_table().await.expect("create table");
        let mut rng = super::Rng(0x9E37_79B9_7F4A_7C15);
        let before = counter.snapshot();
        for i in 0..n {
            dynamo.put(&super::state(i, &mut rng)).await.expect("put");
        }
        println!(
            "{}",
            json(
                "per entry written (create)",
                n,
                counter.snapshot() - before,
                n
            )
        );
        // A second write of every 10th entry: a status change (awaiting
        // approval, then posted by the first write's lines) moves rows.
        let mut rng = super::Rng(0x9E37_79B9_7F4A_7C15);
        let mut changed = 0u64;
        let before = counter.snapshot();
        for i in 0..n {
            let s = super::state(i, &mut rng);
            if i % 10 != 0 {
                continue;
            }
            let mut s = dynamo
                .get(&s.entry.key)
                .await
                .expect("get")
                .expect("stored");
            let now = s.updated_at + chrono::Duration::minutes(5);
            if s.status() == timepost::state::Status::Posted {
                s.posted_lines.clear();
                s.set_status(timepost::state::Status::AwaitingApproval, now);
            } else {
                s.set_status(timepost::state::Status::Voided, now);
            }
            dynamo.put(&s).await.expect("put");
            changed += 1;
        }
        println!(
            "{}",
            json(
                "per entry written (status change, incl. the get)",
                n,
                counter.snapshot() - before,
                changed
            )
        );

        let token = "scale-bench-admin-token-0123456789abcdef";
        let secrets = dir.join("secrets-aws.toml");
        std::fs::write(&secrets, format!("admin_token = \"{token}\"\n")).expect("secrets");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
        let mut cfg =
            timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
        cfg.store.path = dir.join("local-aws.sqlite");
        cfg.store.secrets_file = secrets;
        cfg.store.archive_dir = dir.join("archive-aws");
        let stack = timepost::stack::LocalStack::open(cfg).expect("stack");
        let store = Arc::new(stack.store.clone());
        let state = timepost_web::AppState::new(timepost_web::Inner {
            engine: stack.engine.clone(),
            queue: store.clone(),
            entries: Arc::new(dynamo.clone()),
            mappings: store.clone(),
            secrets: stack.secrets.clone(),
            ledger: stack.ledger.clone(),
            intake: stack.config.intake.clone(),
            audit: store,
            users: stack.config.console.users.clone(),
            sessions: timepost_web::auth::Sessions::new(Duration::from_secs(600)),
        });
        let app = timepost_web::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("client");
        for (name, path) in [
            ("page: dashboard", "/console"),
            (
                "page: dashboard_one_month",
                "/console?from=2026-06-01&to=2026-06-30",
            ),
            ("page: hours_csv", "/console/hours-by-project.csv"),
            ("page: exceptions", "/console/exceptions"),
            ("page: approvals", "/console/approvals"),
            ("api: report summary", "/api/report"),
            ("api: entries, first page", "/api/entries"),
            ("api: entries of one worker", "/api/entries?worker=1007"),
        ] {
            let before = counter.snapshot();
            let resp = client
                .get(format!("http://{addr}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let _ = resp.bytes().await.expect("body");
            println!("{}", json(name, n, counter.snapshot() - before, 1));
        }
        for period in ["2025", "2025-06", "all"] {
            let p: timepost::aggregates::Period = period.parse().expect("period");
            let before = counter.snapshot();
            timepost::period_report::collect_period(&dynamo, p, period)
                .await
                .expect("report");
            println!(
                "{}",
                json(
                    &format!("report by period {period}"),
                    n,
                    counter.snapshot() - before,
                    1
                )
            );
        }
        // A period read (reconciliation, the period export, the accrual):
        // one month over the work-date index.
        let (from, to) = (
            chrono::NaiveDate::from_ymd_opt(2026, 6, 1).expect("date"),
            chrono::NaiveDate::from_ymd_opt(2026, 6, 30).expect("date"),
        );
        let before = counter.snapshot();
        let month = timepost::ports::period_states(&dynamo, from, to)
            .await
            .expect("period read");
        let used = counter.snapshot() - before;
        println!(
            "{}",
            serde_json::json!({"entries": n, "backend": "dynamodb (moto)", "what": "period read 2026-06",
                "period_entries": month.len(), "read_requests": used.reads, "items_read": used.items_read})
        );
        let before = counter.snapshot();
        let r = dynamo.rebuild_aggregates().await.expect("rebuild");
        assert_eq!((r.differed, r.samples_differed), (0, 0), "{r:?}");
        println!(
            "{}",
            serde_json::json!({"entries": n, "backend": "dynamodb (moto)", "what": "rebuild-aggregates",
                "aggregate_rows": r.rows, "rows_differed": r.differed,
                "read_requests": (counter.snapshot() - before).reads,
                "write_requests": (counter.snapshot() - before).writes})
        );
    }
}
