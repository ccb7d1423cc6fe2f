//! Measures the cold start of the Lambda functions locally: a minimal
//! Lambda Runtime API emulator (the `/2018-06-01/runtime/...` routes the
//! runtime client calls) that spawns a function binary, times its init
//! (spawn → first `invocation/next`, which is when the real service ends
//! the Init phase) and its first invocation (event handed out → response),
//! and reads its peak memory (VmHWM). Resources are created on whatever
//! `AWS_ENDPOINT_URL` names (moto server; see `scripts/measure-functions.sh`).
//!
//! Usage: lambda-init --bin target/release/timepost-sync [--bin ...] [--runs 10]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

#[derive(Default)]
struct Run {
    first_next: Option<Instant>,
    handed_out: Option<Instant>,
    answered: Option<(Instant, bool)>,
}

#[derive(Clone)]
struct Emulator {
    run: Arc<Mutex<Run>>,
    event: Arc<String>,
}

async fn next(State(s): State<Emulator>) -> impl IntoResponse {
    let first = {
        let mut r = s.run.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let first = r.first_next.is_none();
        if first {
            r.first_next = Some(now);
            r.handed_out = Some(now);
        }
        first
    };
    if !first {
        // One invocation per run: park the runtime until it is killed.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
    let mut h = HeaderMap::new();
    h.insert(
        "Lambda-Runtime-Aws-Request-Id",
        "req-1".parse().expect("hdr"),
    );
    h.insert(
        "Lambda-Runtime-Deadline-Ms",
        deadline.to_string().parse().expect("hdr"),
    );
    h.insert(
        "Lambda-Runtime-Invoked-Function-Arn",
        "arn:aws:lambda:us-east-1:123456789012:function:timepost"
            .parse()
            .expect("hdr"),
    );
    h.insert(
        "Lambda-Runtime-Trace-Id",
        "Root=1-00000000-000000000000000000000000"
            .parse()
            .expect("hdr"),
    );
    (StatusCode::OK, h, s.event.as_str().to_string())
}

async fn respond(State(s): State<Emulator>, Path(_id): Path<String>) -> StatusCode {
    s.run.lock().unwrap_or_else(|p| p.into_inner()).answered = Some((Instant::now(), true));
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Emulator>, body: String) -> StatusCode {
    eprintln!("  function reported an error: {body}");
    s.run.lock().unwrap_or_else(|p| p.into_inner()).answered = Some((Instant::now(), false));
    StatusCode::ACCEPTED
}

fn event_for(bin: &str) -> String {
    if bin.ends_with("sync") {
        return r#"{"Records":[]}"#.into();
    }
    if bin.ends_with("poller") {
        return r#"{"source":"harvest"}"#.into();
    }
    if bin.ends_with("archive") {
        return "{}".into();
    }
    serde_json::json!({
        "version": "2.0", "routeKey": "GET /healthz", "rawPath": "/healthz", "rawQueryString": "",
        "headers": {},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "x", "domainPrefix": "x",
            "requestId": "r", "routeKey": "GET /healthz", "stage": "$default", "time": "03/Mar/2026:18:00:05 +0000",
            "timeEpoch": 1772560805000u64,
            "http": {"method": "GET", "path": "/healthz", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}},
        "isBase64Encoded": false
    })
    .to_string()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Measured {
    init: Duration,
    first: Duration,
    ok: bool,
    rss_kib: u64,
}

async fn measure(bin: &str, env: &[(String, String)]) -> anyhow::Result<Measured> {
    let emu = Emulator {
        run: Arc::new(Mutex::new(Run::default())),
        event: Arc::new(event_for(bin)),
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(emu.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let spawned = Instant::now();
    let mut child = std::process::Command::new(bin)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "timepost")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let give_up = Instant::now() + Duration::from_secs(30);
    let result = loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let r = emu.run.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(first_next), Some(out), Some((answered, ok))) =
            (r.first_next, r.handed_out, r.answered)
        {
            break Some((first_next - spawned, answered - out, ok));
        }
        if Instant::now() > give_up {
            break None;
        }
    };
    let rss_kib = peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    let (init, first, ok) =
        result.ok_or_else(|| anyhow::anyhow!("{bin} did not answer within 30 s"))?;
    Ok(Measured {
        init,
        first,
        ok,
        rss_kib,
    })
}

/// Create the table, queues, bucket and config the functions read, and
/// return the environment the SAM template would give them.
async fn setup() -> anyhow::Result<Vec<(String, String)>> {
    let sdk = timepost::aws::sdk_defaults().load().await;
    let name = format!("init-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let settings = timepost_tests::aws_world::provision(
        &sdk,
        &name,
        &timepost_tests::aws_world::config_without_approval(),
    )
    .await?;
    Ok(timepost_tests::aws_world::environment(&settings))
}

fn arg_values(name: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bins = arg_values("--bin");
    anyhow::ensure!(
        !bins.is_empty(),
        "usage: lambda-init --bin PATH [--bin PATH ...] [--runs N]"
    );
    let runs: usize = arg_values("--runs").first().map_or(Ok(10), |r| r.parse())?;
    let env = setup().await?;
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>11} {:>8} {:>6}",
        "function", "size MB", "init p50", "init max", "1st call", "RSS MB", "ok"
    );
    for bin in &bins {
        let size = std::fs::metadata(bin)?.len() as f64 / 1_000_000.0;
        let mut inits = Vec::new();
        let mut firsts = Vec::new();
        let mut rss = 0;
        let mut all_ok = true;
        for _ in 0..runs {
            let m = measure(bin, &env).await?;
            inits.push(m.init);
            firsts.push(m.first);
            rss = rss.max(m.rss_kib);
            all_ok &= m.ok;
        }
        let name = std::path::Path::new(bin)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        println!(
            "{:<24} {:>9.2} {:>7.1}ms {:>7.1}ms {:>9.1}ms {:>8.1} {:>6}",
            name,
            size,
            percentile(inits.clone(), 0.5).as_secs_f64() * 1e3,
            percentile(inits, 1.0).as_secs_f64() * 1e3,
            percentile(firsts, 0.5).as_secs_f64() * 1e3,
            rss as f64 / 1024.0,
            if all_ok { "yes" } else { "error" }
        );
    }
    Ok(())
}
